import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type Update,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { ChangelogError, LeaseLostError } from '../errors.js';
import type { RetryOptions } from '../retry.js';
import { callDynamo } from './dynamoCall.js';
import { compareCheckpoints, type Lease } from './lease.js';
import {
  hasName,
  LEASE_PARTITION_KEY,
  LEASE_SORT_KEY,
  leaseFromItem,
  leaseItemKey,
  newLeaseItem,
  SHARD_LEASE_PREFIX,
} from './leaseTable.js';

export interface LeaseStoreOptions {
  /** Best built with `maxAttempts: 1`: the store retries transient faults itself. */
  client: DynamoDBClient;
  tableName: string;
  streamArn: string;
  /**
   * This worker's id, written as the lease owner. Unique per process incarnation (host, pid and a
   * random part): a restarted worker reusing an id would look like the holder of leases it lost.
   */
  workerId: string;
  /** Back-off for transient faults. A signal here aborts every call, alongside each call's own. */
  retry?: RetryOptions;
  /** Query page size for listLeases; tests lower it to exercise paging. */
  listPageSize?: number;
  /** Lease items ensureLeases creates at once. Default 8. */
  ensureConcurrency?: number;
}

export interface ShardLineage {
  shardId: string;
  parentShardIds: readonly string[];
}

/** A checkpoint move: from the value the holder last committed to a strictly later one. */
export interface CheckpointMove {
  from: string;
  to: string;
  lastEventTimeMs?: number;
  /** The window the committed records went to (kept so the shard's windows never go backwards). */
  windowStartMs?: number;
}

/** Progress a renew reports with the heartbeat. */
export interface RenewProgress {
  caughtUpAtMs?: number;
}

// Placeholders for every attribute an expression touches: `owner` is a DynamoDB reserved word,
// and one naming scheme keeps the expressions uniform.
const NAMES = {
  owner: '#owner',
  counter: '#leaseCounter',
  epoch: '#leaseEpoch',
  checkpoint: '#checkpoint',
  lastEventTime: '#lastEventTimeMs',
  caughtUpAt: '#caughtUpAtMs',
  windowStart: '#windowStartMs',
} as const;

const ONE: AttributeValue = { N: '1' };

/**
 * Reads and writes the shard leases of one stream for one worker. Every write of a holder is
 * conditional on owner = this worker AND leaseEpoch = the epoch it acquired (fencing).
 *
 * A write can fail its own condition when an attempt that reached DynamoDB is retried (by the
 * SDK or by retry() after a lost response). So a failed condition is never taken at face value:
 * the item is re-read with a consistent read and the outcome decided from what it holds.
 */
export class LeaseStore {
  readonly tableName: string;
  readonly streamArn: string;
  readonly workerId: string;
  private readonly client: DynamoDBClient;
  private readonly retryOptions: RetryOptions;
  private readonly listPageSize: number | undefined;
  private readonly ensureConcurrency: number;

  constructor(options: LeaseStoreOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.streamArn = options.streamArn;
    this.workerId = options.workerId;
    this.retryOptions = options.retry ?? {};
    this.listPageSize = options.listPageSize;
    this.ensureConcurrency = Math.max(1, options.ensureConcurrency ?? 8);
  }

  /**
   * Creates a free lease (TRIM_HORIZON, epoch 0, counter 0) for every shard that has none yet.
   * Existing leases are left untouched, so calling it on every shard sync is safe.
   * Returns how many leases this call created.
   *
   * Parents are written before their children (level by level, each level concurrently): the
   * balancer reads a parent with no lease item as finished (trimmed), so a child item that
   * appeared first could be taken and read before its parent.
   */
  async ensureLeases(shards: readonly ShardLineage[], signal?: AbortSignal): Promise<number> {
    let created = 0;
    for (const level of lineageLevels(shards)) {
      let next = 0;
      const worker = async () => {
        while (next < level.length) {
          const shard = level[next++]!;
          if (await this.createIfAbsent(shard, signal)) created++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.ensureConcurrency, level.length) }, worker));
    }
    return created;
  }

  private async createIfAbsent(shard: ShardLineage, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.call('create', shard.shardId, signal, (s) =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: newLeaseItem(this.streamArn, shard),
            ConditionExpression: 'attribute_not_exists(#sortKey)',
            ExpressionAttributeNames: { '#sortKey': LEASE_SORT_KEY },
          }),
          { abortSignal: s },
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw error;
    }
  }

  /** Every shard lease of the stream, sorted by leaseKey (consistent reads). */
  async listLeases(signal?: AbortSignal): Promise<Lease[]> {
    const leases: Lease[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.call('list', undefined, signal, (s) =>
        this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: '#pk = :streamArn AND begins_with(#sk, :prefix)',
            ExpressionAttributeNames: { '#pk': LEASE_PARTITION_KEY, '#sk': LEASE_SORT_KEY },
            ExpressionAttributeValues: {
              ':streamArn': { S: this.streamArn },
              ':prefix': { S: SHARD_LEASE_PREFIX },
            },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
            Limit: this.listPageSize,
          }),
          { abortSignal: s },
        ),
      );
      for (const item of page.Items ?? []) leases.push(leaseFromItem(item));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return leases;
  }

  /** One shard's lease, read consistently; undefined when it has no item. */
  async getLease(shardId: string, signal?: AbortSignal): Promise<Lease | undefined> {
    const out = await this.call('read', shardId, signal, (s) =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: leaseItemKey(this.streamArn, shardId),
          ConsistentRead: true,
        }),
        { abortSignal: s },
      ),
    );
    return out.Item === undefined ? undefined : leaseFromItem(out.Item);
  }

  /**
   * Acquires `observed` (free, expired or stolen) if it is still exactly as the caller saw it
   * (same leaseCounter and owner). Returns the held lease with its new epoch, or undefined when
   * another worker moved first: losing that race is normal, not an error.
   */
  async take(observed: Lease, signal?: AbortSignal): Promise<Lease | undefined> {
    const values: Record<string, AttributeValue> = {
      ':me': { S: this.workerId },
      ':one': ONE,
      ':observedCounter': { N: String(observed.leaseCounter) },
    };
    let condition = `${NAMES.counter} = :observedCounter AND `;
    if (observed.owner === undefined) {
      condition += `attribute_not_exists(${NAMES.owner})`;
    } else {
      condition += `${NAMES.owner} = :observedOwner`;
      values[':observedOwner'] = { S: observed.owner };
    }
    try {
      return await this.update('take', observed.shardId, signal, {
        UpdateExpression: `SET ${NAMES.owner} = :me, ${NAMES.counter} = ${NAMES.counter} + :one, ${NAMES.epoch} = ${NAMES.epoch} + :one`,
        ConditionExpression: condition,
        ExpressionAttributeNames: pick(NAMES.owner, NAMES.counter, NAMES.epoch),
        ExpressionAttributeValues: values,
      });
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await this.getLease(observed.shardId, signal);
      // Ours with exactly one acquisition more: an earlier attempt of this very call landed.
      if (current?.owner === this.workerId && current.leaseEpoch === observed.leaseEpoch + 1) return current;
      return undefined;
    }
  }

  /** Heartbeat: advances the counter so other workers see this holder alive. */
  async renew(held: Lease, signal?: AbortSignal, progress: RenewProgress = {}): Promise<Lease> {
    this.assertHolder(held, 'renew');
    const names: string[] = [NAMES.owner, NAMES.epoch, NAMES.counter];
    const values: Record<string, AttributeValue> = { ...this.fencingValues(held), ':one': ONE };
    let set = `${NAMES.counter} = ${NAMES.counter} + :one`;
    if (progress.caughtUpAtMs !== undefined) {
      assertTime(progress.caughtUpAtMs, 'caughtUpAtMs', held.shardId);
      set += `, ${NAMES.caughtUpAt} = :caughtUpAt`;
      names.push(NAMES.caughtUpAt);
      values[':caughtUpAt'] = { N: String(progress.caughtUpAtMs) };
    }
    try {
      return await this.update('renew', held.shardId, signal, {
        UpdateExpression: `SET ${set}`,
        ConditionExpression: this.fencing(),
        ExpressionAttributeNames: pick(...names),
        ExpressionAttributeValues: values,
      });
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await this.getLease(held.shardId, signal);
      if (current !== undefined && this.holds(current, held) && current.leaseCounter > held.leaseCounter) {
        return current;
      }
      throw this.lost(held, current, 'renew');
    }
  }

  /** Gives the lease up; the counter moves too, so watchers see a change at once. */
  async release(held: Lease, signal?: AbortSignal): Promise<Lease> {
    this.assertHolder(held, 'release');
    try {
      return await this.update('release', held.shardId, signal, {
        UpdateExpression: `REMOVE ${NAMES.owner} SET ${NAMES.counter} = ${NAMES.counter} + :one`,
        ConditionExpression: this.fencing(),
        ExpressionAttributeNames: pick(NAMES.owner, NAMES.epoch, NAMES.counter),
        ExpressionAttributeValues: { ...this.fencingValues(held), ':one': ONE },
      });
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await this.getLease(held.shardId, signal);
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
   * The fenced checkpoint write as a TransactWriteItems `Update` element, so a commit can put it in
   * one transaction with a segment-registry item. It applies only while this worker holds the
   * lease at `held`'s epoch and the checkpoint still is `from`.
   */
  checkpointUpdate(held: Lease, move: CheckpointMove): Update {
    this.assertHolder(held, 'checkpoint');
    const { from, to, lastEventTimeMs, windowStartMs } = move;
    if (compareCheckpoints(to, from) <= 0) {
      throw new ChangelogError(
        `checkpoint of ${held.shardId} must move forward: ${to} is not after ${from}`,
        { retriable: false, shardId: held.shardId, sequenceNumber: to },
      );
    }
    const values: Record<string, AttributeValue> = {
      ...this.fencingValues(held),
      ':from': { S: from },
      ':to': { S: to },
    };
    let set = `${NAMES.checkpoint} = :to`;
    const names: string[] = [NAMES.owner, NAMES.epoch, NAMES.checkpoint];
    if (lastEventTimeMs !== undefined) {
      assertTime(lastEventTimeMs, 'lastEventTimeMs', held.shardId);
      set += `, ${NAMES.lastEventTime} = :lastEventTimeMs`;
      names.push(NAMES.lastEventTime);
      values[':lastEventTimeMs'] = { N: String(lastEventTimeMs) };
    }
    if (windowStartMs !== undefined) {
      assertTime(windowStartMs, 'windowStartMs', held.shardId);
      set += `, ${NAMES.windowStart} = :windowStartMs`;
      names.push(NAMES.windowStart);
      values[':windowStartMs'] = { N: String(windowStartMs) };
    }
    return {
      TableName: this.tableName,
      Key: leaseItemKey(this.streamArn, held.shardId),
      UpdateExpression: `SET ${set}`,
      ConditionExpression: `${this.fencing()} AND ${NAMES.checkpoint} = :from`,
      ExpressionAttributeNames: pick(...names),
      ExpressionAttributeValues: values,
    };
  }

  /**
   * Sends checkpointUpdate alone. A failed condition is resolved from a re-read: our checkpoint
   * already at `to` means an earlier attempt landed (success); another owner or epoch means the
   * lease is lost (LeaseLostError); anything else means the checkpoint moved under a holder that
   * did not move it, which no retry can repair (non-retriable ChangelogError).
   */
  async checkpoint(held: Lease, move: CheckpointMove, signal?: AbortSignal): Promise<Lease> {
    const update = this.checkpointUpdate(held, move);
    try {
      return await this.update('checkpoint', held.shardId, signal, update);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await this.getLease(held.shardId, signal);
      if (current === undefined || !this.holds(current, held)) {
        throw this.lost(held, current, 'checkpoint', move.to);
      }
      if (current.checkpoint === move.to) return current;
      throw new ChangelogError(
        `checkpoint of ${held.shardId} moved unexpectedly: expected ${move.from}, found ${current.checkpoint} while moving to ${move.to}`,
        { retriable: false, shardId: held.shardId, sequenceNumber: move.to, cause: error },
      );
    }
  }

  private fencing(): string {
    return `${NAMES.owner} = :me AND ${NAMES.epoch} = :epoch`;
  }

  private fencingValues(held: Lease): Record<string, AttributeValue> {
    return { ':me': { S: this.workerId }, ':epoch': { N: String(held.leaseEpoch) } };
  }

  private holds(current: Lease, held: Lease): boolean {
    return current.owner === this.workerId && current.leaseEpoch === held.leaseEpoch;
  }

  private assertHolder(held: Lease, operation: string): void {
    if (held.owner !== this.workerId) {
      throw new ChangelogError(
        `cannot ${operation} the lease of ${held.shardId}: it is held by ${held.owner ?? 'nobody'}, not ${this.workerId}`,
        { retriable: false, shardId: held.shardId },
      );
    }
  }

  private lost(
    held: Lease,
    current: Lease | undefined,
    operation: string,
    sequenceNumber?: string,
  ): LeaseLostError {
    const now =
      current === undefined
        ? 'its lease item is gone'
        : `it is now ${current.owner === undefined ? 'free' : `held by ${current.owner}`} at epoch ${current.leaseEpoch}`;
    return new LeaseLostError(
      `${operation} failed: ${this.workerId} lost the lease of ${held.shardId} (held at epoch ${held.leaseEpoch}; ${now})`,
      { shardId: held.shardId, sequenceNumber },
    );
  }

  /** A conditional UpdateItem on one lease, returning the lease as written. */
  private async update(
    operation: string,
    shardId: string,
    signal: AbortSignal | undefined,
    input: Omit<Update, 'TableName' | 'Key'>,
  ): Promise<Lease> {
    const out = await this.call(operation, shardId, signal, (s) =>
      this.client.send(
        new UpdateItemCommand({
          ...input,
          TableName: this.tableName,
          Key: leaseItemKey(this.streamArn, shardId),
          ReturnValues: 'ALL_NEW',
        }),
        { abortSignal: s },
      ),
    );
    if (out.Attributes === undefined) {
      throw new ChangelogError(`${operation} of ${shardId} returned no item`, { retriable: false, shardId });
    }
    return leaseFromItem(out.Attributes);
  }

  /**
   * Runs one DynamoDB call under retry(). A failed condition passes through untouched for the
   * caller to resolve; other failures are wrapped with the operation and shard they belong to.
   */
  private call<T>(
    operation: string,
    shardId: string | undefined,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    return callDynamo(fn, {
      retry: this.retryOptions,
      signal,
      passThrough: isConditionFailed,
      wrap: (error, description, retriable) => {
        const where = shardId === undefined ? `stream ${this.streamArn}` : `shard ${shardId}`;
        return new ChangelogError(`lease ${operation} for ${where} failed: ${description}`, {
          cause: error,
          retriable,
          shardId,
        });
      },
    });
  }
}

function assertTime(value: number, name: string, shardId: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ChangelogError(`${name} must be a non-negative integer, got ${value}`, {
      retriable: false,
      shardId,
    });
  }
}

/**
 * Splits shards into levels: first those whose parents are not in the list, then those whose
 * parents are all in earlier levels, and so on.
 */
export function lineageLevels(shards: readonly ShardLineage[]): ShardLineage[][] {
  const pending = new Map(shards.map((s) => [s.shardId, s]));
  const levels: ShardLineage[][] = [];
  while (pending.size > 0) {
    const level = [...pending.values()].filter((s) => s.parentShardIds.every((p) => !pending.has(p)));
    // Lineage has no cycles; if a malformed listing had one, write the rest rather than stall.
    const batch = level.length > 0 ? level : [...pending.values()];
    for (const s of batch) pending.delete(s.shardId);
    levels.push(batch);
  }
  return levels;
}

function isConditionFailed(error: unknown): boolean {
  return hasName(error, 'ConditionalCheckFailedException');
}

const ATTRIBUTE_OF: Record<string, string> = {
  [NAMES.owner]: 'owner',
  [NAMES.counter]: 'leaseCounter',
  [NAMES.epoch]: 'leaseEpoch',
  [NAMES.checkpoint]: 'checkpoint',
  [NAMES.lastEventTime]: 'lastEventTimeMs',
  [NAMES.caughtUpAt]: 'caughtUpAtMs',
  [NAMES.windowStart]: 'windowStartMs',
};

/** ExpressionAttributeNames for exactly the placeholders an expression uses (DynamoDB rejects extras). */
function pick(...placeholders: string[]): Record<string, string> {
  return Object.fromEntries(placeholders.map((p) => [p, ATTRIBUTE_OF[p]!]));
}
