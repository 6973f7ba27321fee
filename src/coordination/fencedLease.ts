import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  type Update,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { ChangelogError, LeaseLostError } from '../support/errors.js';
import { isConditionalCheckFailed } from './awsCall.js';
import type { HeldLease, LeaseFields } from './lease.js';
import { LEASE_SORT_KEY } from './leaseTable.js';

/**
 * Runs one DynamoDB call of a lease under its store's retry and error wrapping (each store names
 * its own failures). A ConditionalCheckFailedException must pass through untouched: the lease
 * resolves it from a re-read.
 */
export type LeaseCall = <T>(
  operation: string,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal | undefined) => Promise<T>,
) => Promise<T>;

export interface FencedLeaseOptions<L extends LeaseFields> {
  client: DynamoDBClient;
  tableName: string;
  /** The lease item's primary key (see leaseTable.ts for where each kind of lease lives). */
  key: Record<string, AttributeValue>;
  /** The lease in messages, as in "the lease of <name>": a shard id, `sealer (table orders)`. */
  name: string;
  /** The shard of a shard lease, for the context of its errors. */
  shardId?: string | undefined;
  /** The lease as stored (a consistent read, or what an update wrote). */
  parse: (item: Record<string, AttributeValue>) => L;
  call: LeaseCall;
}

/** A write of the holder, fenced by fencedUpdate. */
export interface HolderWrite {
  /** The whole UpdateExpression. */
  update: string;
  /** A condition besides the fencing (ANDed after it). */
  condition?: string;
  names?: Record<string, string>;
  values?: Record<string, AttributeValue>;
}

/** Attributes a renew sets besides the counter (the heartbeat's progress). */
export interface RenewSet {
  /** `#name = :value` clauses, comma-separated. */
  set: string;
  names: Record<string, string>;
  values: Record<string, AttributeValue>;
}

/** Placeholders of the lease attributes (`owner` is a DynamoDB reserved word). */
export const LEASE_NAMES = {
  owner: '#owner',
  counter: '#leaseCounter',
  epoch: '#leaseEpoch',
  /** A worker that asked the holder to hand the lease over (shard leases); a take clears it. */
  pendingOwner: '#pendingOwner',
} as const;

const { owner: OWNER, counter: COUNTER, epoch: EPOCH, pendingOwner: PENDING } = LEASE_NAMES;
const ONE: AttributeValue = { N: '1' };
const ZERO: AttributeValue = { N: '0' };
const FENCING = `${OWNER} = :me AND ${EPOCH} = :epoch`;

/**
 * The one fenced lease mechanism, on one lease item of the lease table, whatever the lease is of
 * (a shard's, with its checkpoint beside it; the sealer's in the registry partition; ...):
 * - take: conditional on the item being as observed (same counter and owner, or no item at all);
 *   every acquisition bumps `leaseEpoch`, the fencing token;
 * - every write of the holder (renew, release, and the store's own through fencedUpdate) is
 *   conditional on owner = holder AND leaseEpoch = the epoch it acquired, so a holder that lost
 *   the lease is fenced out even if it took it back later (a new epoch);
 * - renew, take and release bump `leaseCounter`: watchers judge liveness by whether it moves
 *   (leaseExpiry.ts), never by a stored time.
 *
 * A write can fail its own condition when an attempt that reached DynamoDB is retried (by the SDK
 * or by retry() after a lost response). So a failed condition is never taken at face value: the
 * item is re-read with a consistent read and the outcome decided from what it holds.
 *
 * It knows no worker: take is told who takes; holder writes are fenced on the held lease's owner,
 * so a store serving one worker checks first that the lease it is given is its own.
 */
export class FencedLease<L extends LeaseFields> {
  private readonly o: FencedLeaseOptions<L>;

  constructor(options: FencedLeaseOptions<L>) {
    this.o = options;
  }

  /** The lease, read consistently; undefined when it has no item. */
  async get(signal?: AbortSignal): Promise<L | undefined> {
    const out = await this.o.call('read', signal, (s) =>
      this.o.client.send(
        new GetItemCommand({ TableName: this.o.tableName, Key: this.o.key, ConsistentRead: true }),
        { abortSignal: s },
      ),
    );
    return out.Item === undefined ? undefined : this.o.parse(out.Item);
  }

  /**
   * Acquires the lease for `workerId` if it is still exactly as observed (same leaseCounter and
   * owner; `undefined`: no item yet, which the take creates). Returns the held lease with its new
   * epoch, or undefined when another worker moved first: losing that race is normal, not an error.
   */
  async take(
    observed: L | undefined,
    workerId: string,
    signal?: AbortSignal,
  ): Promise<HeldLease<L> | undefined> {
    const names: Record<string, string> = {
      [OWNER]: 'owner',
      [COUNTER]: 'leaseCounter',
      [EPOCH]: 'leaseEpoch',
      [PENDING]: 'pendingOwner',
    };
    const values: Record<string, AttributeValue> = { ':me': { S: workerId }, ':one': ONE, ':zero': ZERO };
    let condition: string;
    if (observed === undefined) {
      condition = 'attribute_not_exists(#leaseKey)';
      names['#leaseKey'] = LEASE_SORT_KEY;
    } else {
      condition = `${COUNTER} = :observedCounter AND `;
      values[':observedCounter'] = { N: String(observed.leaseCounter) };
      if (observed.owner === undefined) {
        condition += `attribute_not_exists(${OWNER})`;
      } else {
        condition += `${OWNER} = :observedOwner`;
        values[':observedOwner'] = { S: observed.owner };
      }
    }
    try {
      const taken = await this.send(
        'take',
        {
          // A take also clears any hand-off request: it was addressed to the previous holder.
          UpdateExpression: `SET ${OWNER} = :me, ${COUNTER} = if_not_exists(${COUNTER}, :zero) + :one, ${EPOCH} = if_not_exists(${EPOCH}, :zero) + :one REMOVE ${PENDING}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        },
        signal,
      );
      return taken as HeldLease<L>;
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw error;
      const current = await this.get(signal);
      // Ours with exactly one acquisition more: an earlier attempt of this very call landed.
      const epoch = (observed?.leaseEpoch ?? 0) + 1;
      return current?.owner === workerId && current.leaseEpoch === epoch
        ? (current as HeldLease<L>)
        : undefined;
    }
  }

  /** Heartbeat: advances the counter (and sets `also`) so other workers see the holder alive. */
  async renew(held: HeldLease<L>, signal?: AbortSignal, also?: RenewSet): Promise<HeldLease<L>> {
    const update = this.fencedUpdate(held, {
      update: `SET ${COUNTER} = ${COUNTER} + :one${also === undefined ? '' : `, ${also.set}`}`,
      names: { [COUNTER]: 'leaseCounter', ...also?.names },
      values: { ':one': ONE, ...also?.values },
    });
    try {
      return (await this.send('renew', update, signal)) as HeldLease<L>;
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw error;
      const current = await this.get(signal);
      if (current !== undefined && this.holds(current, held) && current.leaseCounter > held.leaseCounter) {
        return current as HeldLease<L>;
      }
      throw this.lost(held, current, 'renew');
    }
  }

  /** Gives the lease up; the counter moves too, so watchers see a change at once. */
  async release(held: HeldLease<L>, signal?: AbortSignal): Promise<L> {
    const update = this.fencedUpdate(held, {
      update: `REMOVE ${OWNER} SET ${COUNTER} = ${COUNTER} + :one`,
      names: { [COUNTER]: 'leaseCounter' },
      values: { ':one': ONE },
    });
    try {
      return await this.send('release', update, signal);
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw error;
      const current = await this.get(signal);
      // Free at our epoch with the counter moved: our own earlier attempt released it.
      if (
        current !== undefined &&
        current.owner === undefined &&
        current.leaseEpoch === held.leaseEpoch &&
        current.leaseCounter > held.leaseCounter
      ) {
        return current;
      }
      throw this.lost(held, current, 'release');
    }
  }

  /**
   * A write of the holder as an `Update` (send it, or put it in a TransactWriteItems): it applies
   * only while `held`'s owner holds the lease at `held`'s epoch, and `write.condition` holds.
   */
  fencedUpdate(held: HeldLease<L>, write: HolderWrite): Update {
    return {
      TableName: this.o.tableName,
      Key: this.o.key,
      UpdateExpression: write.update,
      ConditionExpression: write.condition === undefined ? FENCING : `${FENCING} AND ${write.condition}`,
      ExpressionAttributeNames: { [OWNER]: 'owner', [EPOCH]: 'leaseEpoch', ...write.names },
      ExpressionAttributeValues: {
        ':me': { S: held.owner },
        ':epoch': { N: String(held.leaseEpoch) },
        ...write.values,
      },
    };
  }

  /** A conditional UpdateItem on the lease item, returning the lease as written. */
  async send(operation: string, input: Omit<Update, 'TableName' | 'Key'>, signal?: AbortSignal): Promise<L> {
    const out = await this.o.call(operation, signal, (s) =>
      this.o.client.send(
        new UpdateItemCommand({
          ...input,
          TableName: this.o.tableName,
          Key: this.o.key,
          ReturnValues: 'ALL_NEW',
        }),
        { abortSignal: s },
      ),
    );
    if (out.Attributes === undefined) {
      throw new ChangelogError(`${operation} of ${this.o.name} returned no item`, {
        retriable: false,
        shardId: this.o.shardId,
      });
    }
    return this.o.parse(out.Attributes);
  }

  /** `current` is still `held`: the same owner at the same epoch. */
  holds(current: L, held: HeldLease<L>): boolean {
    return current.owner === held.owner && current.leaseEpoch === held.leaseEpoch;
  }

  /** The error for a holder write that found the lease no longer `held` (`current`: as re-read). */
  lost(
    held: HeldLease<L>,
    current: L | undefined,
    operation: string,
    sequenceNumber?: string,
  ): LeaseLostError {
    const now =
      current === undefined
        ? 'its lease item is gone'
        : `it is now ${current.owner === undefined ? 'free' : `held by ${current.owner}`} at epoch ${current.leaseEpoch}`;
    return new LeaseLostError(
      `${operation} failed: ${held.owner} lost the lease of ${this.o.name} (held at epoch ${held.leaseEpoch}; ${now})`,
      { shardId: this.o.shardId, sequenceNumber },
    );
  }
}
