import { randomBytes } from 'node:crypto';
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type Update,
} from '@aws-sdk/client-dynamodb';
import { compareCheckpoints } from '../changelog/sequenceNumber.js';
import { ChangelogError } from '../support/errors.js';
import type { RetryOptions } from '../support/retry.js';
import { awsCall, hasName } from './awsCall.js';
import { FencedLease, LEASE_NAMES, type RenewSet } from './fencedLease.js';
import type { HeldLease, Lease, LeaseStartAt } from './lease.js';
import {
  changelogStartKey,
  LEASE_PARTITION_KEY,
  LEASE_SORT_KEY,
  leaseFromItem,
  leaseItemKey,
  newLeaseItem,
  readInteger,
  SHARD_LEASE_PREFIX,
  START_CHUNK_SIZE,
  startChunkPrefix,
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
  /** Shard ids per changelog start item (default START_CHUNK_SIZE); tests lower it to exercise chunks. */
  startChunkSize?: number;
  /** Wall clock (ms since the epoch) for the changelog start time. Default Date.now. */
  wallClock?: () => number;
  /**
   * The stream this one continues (a table's stream re-enabled after the changelog began on an
   * earlier one): its changelog start then holds no shard, so none starts at TRIM_HORIZON.
   */
  continuesFrom?: string;
}

export interface ShardLineage {
  shardId: string;
  parentShardIds: readonly string[];
  /** The shard's StartingSequenceNumber from DescribeStream; stored in its lease item. */
  startingSequenceNumber?: string | undefined;
}

/** Where the changelog of a stream began: its changelog start item (see leaseTable.ts). */
export interface ChangelogStart {
  readonly startId: string;
  readonly startedAtMs: number;
  readonly startedBy: string;
  /** The shards the stream listed then: they and their ancestors may start at TRIM_HORIZON. */
  readonly shardIds: ReadonlySet<string>;
  readonly continuesFrom?: string | undefined;
}

export interface EnsureLeasesHooks {
  /** Called by the one call that wrote the stream's changelog start item (to log it, once). */
  onChangelogStart?: (start: ChangelogStart, existingLeases: number) => void;
}

/** The line logged once when a stream's changelog start is written. */
export function changelogStartMessage(start: ChangelogStart, existingLeases: number): string {
  const at = new Date(start.startedAtMs).toISOString();
  const what =
    start.continuesFrom === undefined
      ? `changelog starts at ${at} with ${start.shardIds.size} shards from TRIM_HORIZON`
      : `changelog continues at ${at} from stream ${start.continuesFrom}: no shard starts at TRIM_HORIZON`;
  return existingLeases === 0
    ? what
    : `${what} (recorded now for a changelog that already has ${existingLeases} shard leases)`;
}

/** A lease item ensureLeases is about to create. */
export interface NewLease extends ShardLineage {
  startAt: LeaseStartAt;
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
  ...LEASE_NAMES,
  checkpoint: '#checkpoint',
  lastEventTime: '#lastEventTimeMs',
  caughtUpAt: '#caughtUpAtMs',
  windowStart: '#windowStartMs',
} as const;

const ONE: AttributeValue = { N: '1' };

/**
 * Reads and writes the shard leases of one stream for one worker. Taking, renewing, releasing and
 * fencing are the one lease mechanism (fencedLease.ts) on each shard's lease item: every write of
 * a holder is conditional on owner = this worker AND leaseEpoch = the epoch it acquired. The
 * checkpoint and the hand-off are this store's own holder writes, fenced the same way.
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
  private readonly startChunkSize: number;
  private readonly wallClock: () => number;
  private readonly continuesFrom: string | undefined;
  /** The changelog start once read or written: it never changes. */
  private start: ChangelogStart | undefined;

  constructor(options: LeaseStoreOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.streamArn = options.streamArn;
    this.workerId = options.workerId;
    this.retryOptions = options.retry ?? {};
    this.listPageSize = options.listPageSize;
    this.ensureConcurrency = Math.max(1, options.ensureConcurrency ?? 8);
    this.startChunkSize = Math.max(1, options.startChunkSize ?? START_CHUNK_SIZE);
    this.wallClock = options.wallClock ?? Date.now;
    this.continuesFrom = options.continuesFrom;
  }

  /**
   * Creates a free lease (TRIM_HORIZON, epoch 0, counter 0) for every shard that has none yet.
   * Existing leases are left untouched, so calling it on every shard sync is safe.
   * Returns how many leases this call created.
   *
   * The first call on a stream writes its changelog start (the shards of `shards`), or reads the
   * one another worker wrote: it decides where each new lease starts reading (planNewLeases), so
   * concurrent workers agree whoever creates the item. An empty listing creates nothing.
   *
   * Parents are written before their children (level by level, each level concurrently): the
   * balancer reads a parent with no lease item as finished (trimmed), so a child item that
   * appeared first could be taken and read before its parent.
   */
  async ensureLeases(
    shards: readonly ShardLineage[],
    signal?: AbortSignal,
    hooks: EnsureLeasesHooks = {},
  ): Promise<number> {
    if (shards.length === 0) return 0;
    const existing = new Set((await this.listLeases(signal)).map((l) => l.shardId));
    const start = await this.ensureChangelogStart(shards, existing.size, signal, hooks);
    let created = 0;
    for (const level of lineageLevels(planNewLeases(shards, existing, start.shardIds))) {
      await this.eachConcurrently(level, async (shard) => {
        if (await this.createIfAbsent(shard, signal)) created++;
      });
    }
    return created;
  }

  /** The stream's changelog start, read consistently (and kept: it never changes); undefined before it is written. */
  async changelogStart(signal?: AbortSignal): Promise<ChangelogStart | undefined> {
    if (this.start !== undefined) return this.start;
    const out = await this.call('read changelog start', undefined, signal, (s) =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: changelogStartKey(this.streamArn),
          ConsistentRead: true,
        }),
        { abortSignal: s },
      ),
    );
    if (out.Item === undefined) return undefined;
    this.start = await this.parseStart(out.Item, signal);
    return this.start;
  }

  /**
   * The changelog start, written now (conditional put) when the stream has none. Chunk items go
   * first, so a visible header always names chunks that exist; a loser's chunks stay unreferenced.
   */
  private async ensureChangelogStart(
    shards: readonly ShardLineage[],
    existingLeases: number,
    signal: AbortSignal | undefined,
    hooks: EnsureLeasesHooks,
  ): Promise<ChangelogStart> {
    const found = await this.changelogStart(signal);
    if (found !== undefined) return found;
    const continuesFrom = this.continuesFrom;
    const ids = continuesFrom === undefined ? [...new Set(shards.map((s) => s.shardId))].sort() : [];
    const mine: ChangelogStart = {
      startId: randomBytes(8).toString('hex'),
      startedAtMs: this.wallClock(),
      startedBy: this.workerId,
      shardIds: new Set(ids),
      ...(continuesFrom !== undefined && { continuesFrom }),
    };
    const chunks: string[][] = [];
    const size = this.startChunkSize;
    if (ids.length > size) {
      for (let i = 0; i < ids.length; i += size) chunks.push(ids.slice(i, i + size));
    }
    await this.eachConcurrently(chunks, async (chunk, index) => {
      await this.call('write changelog start', undefined, signal, (s) =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: {
              ...changelogStartKey(this.streamArn, { startId: mine.startId, index }),
              shardIds: { L: chunk.map((id) => ({ S: id })) },
            },
          }),
          { abortSignal: s },
        ),
      );
    });
    const header: Record<string, AttributeValue> = {
      ...changelogStartKey(this.streamArn),
      startId: { S: mine.startId },
      startedAtMs: { N: String(mine.startedAtMs) },
      startedBy: { S: mine.startedBy },
      shardCount: { N: String(ids.length) },
      ...(chunks.length > 0
        ? { chunkCount: { N: String(chunks.length) } }
        : { shardIds: { L: ids.map((id) => ({ S: id })) } }),
      ...(continuesFrom !== undefined && { continuesFrom: { S: continuesFrom } }),
    };
    let start: ChangelogStart | undefined = mine;
    try {
      await this.call('write changelog start', undefined, signal, (s) =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: header,
            ConditionExpression: 'attribute_not_exists(#sortKey)',
            ExpressionAttributeNames: { '#sortKey': LEASE_SORT_KEY },
          }),
          { abortSignal: s },
        ),
      );
      this.start = mine;
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      // Another worker wrote it first (or an earlier attempt of ours landed): its item decides.
      start = await this.changelogStart(signal);
      if (start === undefined) {
        throw new ChangelogError(`changelog start of ${this.streamArn} is missing after a failed create`, {
          retriable: true,
        });
      }
    }
    if (start.startId === mine.startId) hooks.onChangelogStart?.(start, existingLeases);
    return start;
  }

  private async parseStart(
    item: Record<string, AttributeValue>,
    signal: AbortSignal | undefined,
  ): Promise<ChangelogStart> {
    const fail = (what: string): never => {
      throw new ChangelogError(`malformed changelog start of ${this.streamArn}: ${what}`, {
        retriable: false,
      });
    };
    const startId = item['startId']?.S ?? fail('startId is missing');
    const startedBy = item['startedBy']?.S ?? fail('startedBy is missing');
    const startedAtMs = readInteger(item['startedAtMs'], 'startedAtMs', fail);
    const shardCount = readInteger(item['shardCount'], 'shardCount', fail);
    const strings = (list: AttributeValue[] | undefined) =>
      (list ?? fail('shardIds is not a list')).map((v) => v.S ?? fail('shardIds holds a non-string'));
    let ids: string[];
    if (item['chunkCount'] === undefined) {
      ids = strings(item['shardIds']?.L);
    } else {
      const chunkCount = readInteger(item['chunkCount'], 'chunkCount', fail);
      const chunks = await this.queryPrefix(startChunkPrefix(startId), signal);
      if (chunks.length !== chunkCount) fail(`${chunks.length} of its ${chunkCount} chunk items found`);
      ids = chunks.flatMap((chunk) => strings(chunk['shardIds']?.L));
    }
    if (ids.length !== shardCount) fail(`${ids.length} shard ids, expected ${shardCount}`);
    const continuesFrom = item['continuesFrom']?.S;
    return {
      startId,
      startedAtMs,
      startedBy,
      shardIds: new Set(ids),
      ...(continuesFrom !== undefined && { continuesFrom }),
    };
  }

  /** Every item of the stream's partition whose sort key begins with `prefix`, in key order. */
  private async queryPrefix(
    prefix: string,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, AttributeValue>[]> {
    const items: Record<string, AttributeValue>[] = [];
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
              ':prefix': { S: prefix },
            },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
            Limit: this.listPageSize,
          }),
          { abortSignal: s },
        ),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return items;
  }

  /** Runs `fn` over `items`, at most ensureConcurrency at once. */
  private async eachConcurrently<T>(items: readonly T[], fn: (item: T, index: number) => Promise<void>) {
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const index = next++;
        await fn(items[index]!, index);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.ensureConcurrency, items.length) }, worker));
  }

  private async createIfAbsent(shard: NewLease, signal: AbortSignal | undefined): Promise<boolean> {
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
    return (await this.queryPrefix(SHARD_LEASE_PREFIX, signal)).map(leaseFromItem);
  }

  /** One shard's lease, read consistently; undefined when it has no item. */
  async getLease(shardId: string, signal?: AbortSignal): Promise<Lease | undefined> {
    return this.lease(shardId).get(signal);
  }

  /**
   * Acquires `observed` (free, expired or stolen) if it is still exactly as the caller saw it
   * (same leaseCounter and owner). Returns the held lease with its new epoch, or undefined when
   * another worker moved first: losing that race is normal, not an error.
   */
  async take(observed: Lease, signal?: AbortSignal): Promise<Lease | undefined> {
    return this.lease(observed.shardId).take(observed, this.workerId, signal);
  }

  /**
   * Balancing without a refusal: asks the live holder of `observed` to hand the lease over (KCL 3's
   * graceful hand-off). Only while the lease is still held as observed and no other worker asked
   * first. The holder sees the request on its next renewal, commits what it has of the shard and
   * calls handOff. True when the request is recorded.
   */
  async requestHandoff(observed: Lease, signal?: AbortSignal): Promise<boolean> {
    if (observed.owner === undefined || observed.owner === this.workerId) return false;
    try {
      await this.lease(observed.shardId).send(
        'request-handoff',
        {
          UpdateExpression: `SET ${NAMES.pendingOwner} = :me`,
          ConditionExpression: `${NAMES.owner} = :observedOwner AND ${NAMES.epoch} = :observedEpoch AND (attribute_not_exists(${NAMES.pendingOwner}) OR ${NAMES.pendingOwner} = :me)`,
          ExpressionAttributeNames: pick(NAMES.owner, NAMES.epoch, NAMES.pendingOwner),
          ExpressionAttributeValues: {
            ':me': { S: this.workerId },
            ':observedOwner': { S: observed.owner },
            ':observedEpoch': { N: String(observed.leaseEpoch) },
          },
        },
        signal,
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw error;
    }
  }

  /**
   * The holder gives the lease to the worker that asked for it (`pendingOwner`), after committing
   * what it had read: the new owner holds it at the next epoch, so nothing this holder still has
   * in flight can commit. Fenced like every holder write.
   */
  async handOff(held: Lease, to: string, signal?: AbortSignal): Promise<Lease> {
    this.assertHolder(held, 'hand off');
    const lease = this.lease(held.shardId);
    const update = lease.fencedUpdate(held, {
      update: `SET ${NAMES.owner} = :to, ${NAMES.counter} = ${NAMES.counter} + :one, ${NAMES.epoch} = ${NAMES.epoch} + :one REMOVE ${NAMES.pendingOwner}`,
      condition: `${NAMES.pendingOwner} = :to`,
      names: pick(NAMES.counter, NAMES.pendingOwner),
      values: { ':to': { S: to }, ':one': ONE },
    });
    try {
      return await lease.send('handoff', update, signal);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await lease.get(signal);
      // An earlier attempt of this very call landed.
      if (current?.owner === to && current.leaseEpoch === held.leaseEpoch + 1) return current;
      throw lease.lost(held, current, 'hand off');
    }
  }

  /** Heartbeat: advances the counter so other workers see this holder alive. */
  async renew(held: Lease, signal?: AbortSignal, progress: RenewProgress = {}): Promise<Lease> {
    this.assertHolder(held, 'renew');
    let also: RenewSet | undefined;
    if (progress.caughtUpAtMs !== undefined) {
      assertTime(progress.caughtUpAtMs, 'caughtUpAtMs', held.shardId);
      also = {
        set: `${NAMES.caughtUpAt} = :caughtUpAt`,
        names: pick(NAMES.caughtUpAt),
        values: { ':caughtUpAt': { N: String(progress.caughtUpAtMs) } },
      };
    }
    return this.lease(held.shardId).renew(held, signal, also);
  }

  /** Gives the lease up; the counter moves too, so watchers see a change at once. */
  async release(held: Lease, signal?: AbortSignal): Promise<Lease> {
    this.assertHolder(held, 'release');
    return this.lease(held.shardId).release(held, signal);
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
    const values: Record<string, AttributeValue> = { ':from': { S: from }, ':to': { S: to } };
    let set = `${NAMES.checkpoint} = :to`;
    const names: string[] = [NAMES.checkpoint];
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
    return this.lease(held.shardId).fencedUpdate(held, {
      update: `SET ${set}`,
      condition: `${NAMES.checkpoint} = :from`,
      names: pick(...names),
      values,
    });
  }

  /**
   * Sends checkpointUpdate alone. A failed condition is resolved from a re-read: our checkpoint
   * already at `to` means an earlier attempt landed (success); another owner or epoch means the
   * lease is lost (LeaseLostError); anything else means the checkpoint moved under a holder that
   * did not move it, which no retry can repair (non-retriable ChangelogError).
   */
  async checkpoint(held: Lease, move: CheckpointMove, signal?: AbortSignal): Promise<Lease> {
    this.assertHolder(held, 'checkpoint');
    const update = this.checkpointUpdate(held, move);
    const lease = this.lease(held.shardId);
    try {
      return await lease.send('checkpoint', update, signal);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await lease.get(signal);
      if (current === undefined || !lease.holds(current, held)) {
        throw lease.lost(held, current, 'checkpoint', move.to);
      }
      if (current.checkpoint === move.to) return current;
      throw new ChangelogError(
        `checkpoint of ${held.shardId} moved unexpectedly: expected ${move.from}, found ${current.checkpoint} while moving to ${move.to}`,
        { retriable: false, shardId: held.shardId, sequenceNumber: move.to, cause: error },
      );
    }
  }

  /** The one lease mechanism on a shard's lease item. */
  private lease(shardId: string): FencedLease<Lease> {
    return new FencedLease({
      client: this.client,
      tableName: this.tableName,
      key: leaseItemKey(this.streamArn, shardId),
      name: shardId,
      shardId,
      parse: leaseFromItem,
      call: (operation, signal, fn) => this.call(operation, shardId, signal, fn),
    });
  }

  /** Only this worker's own lease may be written as its holder. */
  private assertHolder(held: Lease, operation: string): asserts held is HeldLease<Lease> {
    if (held.owner !== this.workerId) {
      throw new ChangelogError(
        `cannot ${operation} the lease of ${held.shardId}: it is held by ${held.owner ?? 'nobody'}, not ${this.workerId}`,
        { retriable: false, shardId: held.shardId },
      );
    }
  }

  /**
   * Runs one DynamoDB call through awsCall (its one retry layer). A failed condition passes through
   * untouched for the caller to resolve; other failures are wrapped with the operation and shard
   * they belong to.
   */
  private call<T>(
    operation: string,
    shardId: string | undefined,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    return awsCall(fn, {
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
 * The lease items to create for `shards` (a listing, with lineage) given the leases that exist and
 * the shards of the changelog start. Pure, so every worker decides the same from the same inputs:
 * - a shard of the start set, or an ancestor of one, starts at TRIM_HORIZON: that is where the
 *   changelog began, not a gap;
 * - every other shard starts AT_SEQUENCE_NUMBER its startingSequenceNumber, so records trimmed
 *   before they were read raise TrimmedDataAccessException and become a gap;
 * - a parent of such a shard that is neither listed nor leased was trimmed away entirely while
 *   unread: it gets a VANISHED lease (no parents of its own), created before the child, so the
 *   child waits for its reader to record the whole shard as a gap and reach SHARD_END. Parents of
 *   shards that already have a lease are left alone: their lineage was settled when they were
 *   created.
 */
export function planNewLeases(
  shards: readonly ShardLineage[],
  existing: ReadonlySet<string>,
  startShardIds: ReadonlySet<string>,
): NewLease[] {
  const listed = new Map(shards.map((s) => [s.shardId, s]));
  const fromHorizon = new Set<string>();
  const stack = shards.map((s) => s.shardId).filter((id) => startShardIds.has(id));
  for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
    if (fromHorizon.has(id)) continue;
    fromHorizon.add(id);
    for (const parent of listed.get(id)?.parentShardIds ?? []) if (listed.has(parent)) stack.push(parent);
  }
  const planned = new Map<string, NewLease>();
  for (const shard of shards) {
    if (existing.has(shard.shardId) || planned.has(shard.shardId)) continue;
    const lineage = { shardId: shard.shardId, parentShardIds: shard.parentShardIds };
    if (fromHorizon.has(shard.shardId)) {
      planned.set(shard.shardId, { ...lineage, startAt: 'TRIM_HORIZON' });
      continue;
    }
    for (const parent of shard.parentShardIds) {
      if (listed.has(parent) || existing.has(parent) || planned.has(parent)) continue;
      planned.set(parent, { shardId: parent, parentShardIds: [], startAt: 'VANISHED' });
    }
    planned.set(shard.shardId, {
      ...lineage,
      startAt: 'AT_SEQUENCE_NUMBER',
      ...(shard.startingSequenceNumber !== undefined && {
        startingSequenceNumber: shard.startingSequenceNumber,
      }),
    });
  }
  return [...planned.values()];
}

/**
 * Splits shards into levels: first those whose parents are not in the list, then those whose
 * parents are all in earlier levels, and so on.
 */
export function lineageLevels<T extends ShardLineage>(shards: readonly T[]): T[][] {
  const pending = new Map(shards.map((s) => [s.shardId, s]));
  const levels: T[][] = [];
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
  [NAMES.pendingOwner]: 'pendingOwner',
};

/** ExpressionAttributeNames for exactly the placeholders an expression uses (DynamoDB rejects extras). */
function pick(...placeholders: string[]): Record<string, string> {
  return Object.fromEntries(placeholders.map((p) => [p, ATTRIBUTE_OF[p]!]));
}
