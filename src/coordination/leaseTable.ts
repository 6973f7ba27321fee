import {
  type AttributeValue,
  CreateTableCommand,
  DescribeTableCommand,
  type DescribeTableCommandOutput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { isSequenceNumber, isValidCheckpoint, TRIM_HORIZON } from '../changelog/sequenceNumber.js';
import { ChangelogError } from '../support/errors.js';
import { type RetryOptions, sleep } from '../support/retry.js';
import { awsCall, hasName, isTransientAwsError } from './awsCall.js';
import { LEASE_START_AT, type Lease, type LeaseStartAt } from './lease.js';

/*
 * Lease table schema (one table per fleet; several streams may share it).
 *
 *   streamArn  S  partition key: the DynamoDB Stream the item belongs to, so the leases of two
 *                 streams never mix and one Query lists a stream's leases.
 *   leaseKey   S  sort key: the item kind and its id. Shard leases are `shard#<shardId>`; other
 *                 kinds (e.g. `sealer`) live beside them under other prefixes.
 *
 * Shard lease item (`leaseKey` = `shard#<shardId>`):
 *   shardId          S     the shard, repeated so the item reads on its own.
 *   owner            S     worker id of the holder; absent while the lease is free.
 *   leaseCounter     N     +1 on every renew, take and release. Other workers judge liveness by
 *                          whether it moves, on their own clock: no wall-clock time is stored.
 *   leaseEpoch       N     +1 on every acquisition. Every write of the holder is conditional on
 *                          owner + leaseEpoch, so a worker that lost the lease is fenced out
 *                          even if it took the lease back later (a new epoch).
 *   checkpoint       S     last committed sequence number, or TRIM_HORIZON (nothing read yet) or
 *                          SHARD_END (read to the end; children may start). Only moves forward.
 *   parentShardIds   L(S)  the shard's parents (empty for a root shard); read only after every
 *                          parent's checkpoint is SHARD_END.
 *   lastEventTimeMs  N     optional: event time of the last committed record (watermark input).
 *   caughtUpAtMs     N     optional: DynamoDB's time when the holder found the shard read to its
 *                          tip with nothing uncommitted (watermark input for idle shards).
 *   windowStartMs    N     optional: the window the last committed records went to; a shard's
 *                          records never go to an earlier window than that.
 *   startAt          S     optional: where reading starts while checkpoint is TRIM_HORIZON, fixed
 *                          when the item is created: TRIM_HORIZON (a shard of the changelog start
 *                          or an ancestor of one), AT_SEQUENCE_NUMBER (every later shard: from
 *                          startingSequenceNumber, so a trim is a gap) or VANISHED (an unlisted
 *                          parent of a later child: the whole shard is a gap). Absent on items
 *                          written before it existed: TRIM_HORIZON.
 *   startingSequenceNumber S optional: the shard's StartingSequenceNumber from DescribeStream.
 *
 * Changelog start item (`leaseKey` = `changelog-start`), one per stream, written once (conditional
 * put) by the first ensureLeases that finds it missing; it says where the changelog began:
 *   startId          S     random id of the writer's attempt (names its chunk items).
 *   startedAtMs      N     the writer's clock when the changelog began.
 *   startedBy        S     the worker that wrote it.
 *   shardCount       N     how many shards the stream listed then: those may start at TRIM_HORIZON.
 *   shardIds         L(S)  their ids, when at most START_CHUNK_SIZE; otherwise
 *   chunkCount       N     the number of chunk items `changelog-start#<startId>#<n>` (n from 0, five
 *                          digits), each with `shardIds` L(S), written before the header.
 *   continuesFrom    S     optional: the stream this one continues (a re-enabled table stream); its
 *                          shards were created after the changelog began, so none is in the set.
 *
 * Changelog registry items (segments, gaps, window state, the sealer lease) share the table under
 * the partition `table#<name>`; see coordination/registryStore.ts.
 */

export const LEASE_PARTITION_KEY = 'streamArn';
export const LEASE_SORT_KEY = 'leaseKey';
export const SHARD_LEASE_PREFIX = 'shard#';
export const CHANGELOG_START_KEY = 'changelog-start';
/** Shard ids per changelog start item: ids are at most 65 characters, so a chunk stays far below 400 KB. */
export const START_CHUNK_SIZE = 2000;

export function shardLeaseKey(shardId: string): string {
  return SHARD_LEASE_PREFIX + shardId;
}

/** The primary key of a shard's lease item. */
export function leaseItemKey(streamArn: string, shardId: string): Record<string, AttributeValue> {
  return {
    [LEASE_PARTITION_KEY]: { S: streamArn },
    [LEASE_SORT_KEY]: { S: shardLeaseKey(shardId) },
  };
}

/** A new, free lease item: nothing read, never acquired. */
export function newLeaseItem(
  streamArn: string,
  shard: {
    shardId: string;
    parentShardIds: readonly string[];
    startAt?: LeaseStartAt | undefined;
    startingSequenceNumber?: string | undefined;
  },
): Record<string, AttributeValue> {
  return {
    ...leaseItemKey(streamArn, shard.shardId),
    shardId: { S: shard.shardId },
    leaseCounter: { N: '0' },
    leaseEpoch: { N: '0' },
    checkpoint: { S: TRIM_HORIZON },
    parentShardIds: { L: shard.parentShardIds.map((id) => ({ S: id })) },
    ...(shard.startAt !== undefined && { startAt: { S: shard.startAt } }),
    ...(shard.startingSequenceNumber !== undefined && {
      startingSequenceNumber: { S: shard.startingSequenceNumber },
    }),
  };
}

/** The primary key of a stream's changelog start item (`chunk` = one of its chunk items). */
export function changelogStartKey(
  streamArn: string,
  chunk?: { startId: string; index: number },
): Record<string, AttributeValue> {
  return {
    [LEASE_PARTITION_KEY]: { S: streamArn },
    [LEASE_SORT_KEY]: {
      S: chunk === undefined ? CHANGELOG_START_KEY : startChunkKey(chunk.startId, chunk.index),
    },
  };
}

/** The sort key of a chunk item: `changelog-start#<startId>#<index, 5 digits>`, so they sort in order. */
export function startChunkKey(startId: string, index: number): string {
  return `${startChunkPrefix(startId)}${String(index).padStart(5, '0')}`;
}

export function startChunkPrefix(startId: string): string {
  return `${CHANGELOG_START_KEY}#${startId}#`;
}

/** Parses a shard lease item; a malformed one is an error, never a guess. */
export function leaseFromItem(item: Record<string, AttributeValue>): Lease {
  const shardId = item['shardId']?.S;
  const where =
    shardId === undefined ? `lease item ${item[LEASE_SORT_KEY]?.S ?? '?'}` : `lease of ${shardId}`;
  const fail = (what: string): never => {
    throw new ChangelogError(`malformed ${where}: ${what}`, { retriable: false, shardId });
  };
  if (shardId === undefined) return fail('shardId is missing');
  const owner = item['owner'];
  if (owner !== undefined && owner.S === undefined) return fail('owner is not a string');
  const pendingOwner = item['pendingOwner'];
  if (pendingOwner !== undefined && pendingOwner.S === undefined) return fail('pendingOwner is not a string');
  const checkpoint = item['checkpoint']?.S;
  if (checkpoint === undefined || !isValidCheckpoint(checkpoint))
    return fail('checkpoint is missing or invalid');
  const parents = item['parentShardIds']?.L;
  if (parents === undefined) return fail('parentShardIds is not a list');
  const optional = (name: 'lastEventTimeMs' | 'caughtUpAtMs' | 'windowStartMs') => {
    const value = item[name];
    return value === undefined ? {} : { [name]: readInteger(value, name, fail) };
  };
  const startAt = item['startAt'];
  if (startAt !== undefined && !LEASE_START_AT.includes(startAt.S as LeaseStartAt)) {
    return fail('startAt is not TRIM_HORIZON, AT_SEQUENCE_NUMBER or VANISHED');
  }
  const starting = item['startingSequenceNumber'];
  if (starting !== undefined && (starting.S === undefined || !isSequenceNumber(starting.S))) {
    return fail('startingSequenceNumber is not a sequence number');
  }
  return {
    shardId,
    owner: owner?.S,
    leaseCounter: readInteger(item['leaseCounter'], 'leaseCounter', fail),
    leaseEpoch: readInteger(item['leaseEpoch'], 'leaseEpoch', fail),
    checkpoint,
    parentShardIds: parents.map((p) => p.S ?? fail('parentShardIds holds a non-string')),
    ...optional('lastEventTimeMs'),
    ...optional('caughtUpAtMs'),
    ...optional('windowStartMs'),
    ...(startAt !== undefined && { startAt: startAt.S as LeaseStartAt }),
    ...(starting !== undefined && { startingSequenceNumber: starting.S }),
    ...(pendingOwner !== undefined && { pendingOwner: pendingOwner.S }),
  };
}

export function readInteger(
  value: AttributeValue | undefined,
  name: string,
  fail: (what: string) => never,
): number {
  const n = value?.N === undefined ? Number.NaN : Number(value.N);
  return Number.isSafeInteger(n) && n >= 0 ? n : fail(`${name} is not a non-negative integer`);
}

export interface CreateLeaseTableOptions {
  signal?: AbortSignal;
  /** How long to wait for the table to become ACTIVE. Default 120 s. */
  timeoutMs?: number;
  /** Pause between DescribeTable polls. Default 500 ms. */
  pollIntervalMs?: number;
  /** Back-off for transient errors of the create call. */
  retry?: RetryOptions;
}

/**
 * Creates the lease table (on-demand capacity) unless it exists, then waits until it is ACTIVE.
 * Describing first lets a worker whose role may not create tables start against an existing one;
 * a concurrent creator (ResourceInUseException) is fine. An existing table with another key
 * schema is refused: every lease call against it would fail later, less clearly.
 */
export async function createLeaseTable(
  client: DynamoDBClient,
  tableName: string,
  options: CreateLeaseTableOptions = {},
): Promise<void> {
  const { timeoutMs = 120_000, pollIntervalMs = 500 } = options;
  const signal = options.signal ?? options.retry?.signal;
  const retryOptions: RetryOptions = { ...options.retry, signal };
  const existing = await awsCall((s) => describe(client, tableName, s), { retry: retryOptions });
  if (existing === undefined) {
    try {
      await awsCall(
        (s) =>
          client.send(
            new CreateTableCommand({
              TableName: tableName,
              BillingMode: 'PAY_PER_REQUEST',
              AttributeDefinitions: [
                { AttributeName: LEASE_PARTITION_KEY, AttributeType: 'S' },
                { AttributeName: LEASE_SORT_KEY, AttributeType: 'S' },
              ],
              KeySchema: [
                { AttributeName: LEASE_PARTITION_KEY, KeyType: 'HASH' },
                { AttributeName: LEASE_SORT_KEY, KeyType: 'RANGE' },
              ],
            }),
            { abortSignal: s },
          ),
        { retry: retryOptions },
      );
    } catch (error) {
      if (!hasName(error, 'ResourceInUseException')) throw error;
    }
  }
  await waitUntilActive(client, tableName, timeoutMs, pollIntervalMs, signal);
}

async function waitUntilActive(
  client: DynamoDBClient,
  tableName: string,
  timeoutMs: number,
  pollIntervalMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let status = 'absent';
  for (;;) {
    signal?.throwIfAborted();
    try {
      const table = await describe(client, tableName, signal);
      status = table?.TableStatus ?? 'absent';
      if (table !== undefined && status === 'ACTIVE') {
        assertKeySchema(tableName, table);
        return;
      }
    } catch (error) {
      // A transient fault while polling is just another "not yet"; the deadline still bounds it.
      if (signal?.aborted || !isTransientAwsError(error)) throw error;
    }
    if (performance.now() + pollIntervalMs > deadline) {
      throw new ChangelogError(
        `lease table ${tableName} not ACTIVE after ${timeoutMs} ms (status ${status})`,
        {
          retriable: false,
        },
      );
    }
    await sleep(pollIntervalMs, signal);
  }
}

type TableDescription = NonNullable<DescribeTableCommandOutput['Table']>;

/** DescribeTable, with "no such table" as undefined (also briefly true right after CreateTable). */
async function describe(
  client: DynamoDBClient,
  tableName: string,
  signal: AbortSignal | undefined,
): Promise<TableDescription | undefined> {
  try {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }), {
      abortSignal: signal,
    });
    return out.Table;
  } catch (error) {
    if (hasName(error, 'ResourceNotFoundException')) return undefined;
    throw error;
  }
}

function assertKeySchema(tableName: string, table: TableDescription): void {
  const keys = (table.KeySchema ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`).join(',');
  const expected = `${LEASE_PARTITION_KEY}:HASH,${LEASE_SORT_KEY}:RANGE`;
  if (keys !== expected) {
    throw new ChangelogError(
      `table ${tableName} exists with key schema [${keys}], not a lease table [${expected}]`,
      { retriable: false },
    );
  }
}
