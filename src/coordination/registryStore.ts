import { createHash } from 'node:crypto';
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type TransactWriteItem,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { windowId } from '../changelog/layout.js';
import { ChangelogError, LeaseLostError } from '../support/errors.js';
import type { RetryOptions } from '../support/retry.js';
import {
  type AwsCallOptions,
  awsCall,
  hasName,
  isConditionFailure,
  isTransactionConflict,
  isTransientAwsError,
} from './awsCall.js';
import { FencedLease } from './fencedLease.js';
import type { HeldLease, LeaseFields } from './lease.js';
import { LEASE_PARTITION_KEY, LEASE_SORT_KEY } from './leaseTable.js';

/*
 * The changelog registry lives in the lease table, beside the shard leases, under the partition
 * `table#<source table>` (the partition key attribute is the lease table's `streamArn`):
 *
 *   state                          window state: size, closed/sealed pointers (one item)
 *   sealer                         the sealer lease: owner, leaseCounter, leaseEpoch (a lease
 *                                  item like a shard's, without the shard fields; other roles'
 *                                  leases, e.g. `compactor`, go beside it: see lease())
 *   watermark                      the last watermark the sealer computed (advisory: workers
 *                                  flush windows about to close; never a commit condition)
 *   segment#<windowId>#<segmentId> one committed segment: object, counts, per-shard ranges
 *   gap#<windowId>#<shard>#<after> data the stream trimmed before it was read
 *
 * One table keeps a commit inside one DynamoDB transaction over a single table the operator
 * already provisions, backs up and grants (the shard checkpoints and the registry entry must
 * change together). Partitioning by source table, not by stream, keeps one window sequence
 * per table across stream ARN changes (a stream disabled and enabled again).
 */

/** How `transact` retries, besides transient faults. */
export interface TransactOptions {
  /**
   * Also retry a transaction cancelled only by conflicts with other transactions (same token, so
   * idempotent), in the same retry layer and budget as transient faults. Without it the caller
   * gets that TransactionCanceledException like any other.
   */
  retryConflicts?: boolean;
  /** Told of each retry, after the store's own `retry.onRetry` (the committer counts conflicts). */
  onRetry?: RetryOptions['onRetry'];
}

export const REGISTRY_PARTITION_PREFIX = 'table#';
const STATE_KEY = 'state';
const SEALER_KEY = 'sealer';
const WATERMARK_KEY = 'watermark';
const SEGMENT_PREFIX = 'segment#';
const GAP_PREFIX = 'gap#';

export interface RegistryShardEntry {
  shardId: string;
  /** The shard's checkpoint before this segment (TRIM_HORIZON for its first). */
  afterSequenceNumber: string;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
  records: number;
}

export interface SegmentRecord {
  windowStartMs: number;
  segmentId: string;
  /** Object key relative to the destination prefix. */
  key: string;
  bytes: number;
  records: number;
  checksum: string;
  minEventTimeMs: number;
  maxEventTimeMs: number;
  lateRecords: number;
  shards: RegistryShardEntry[];
  streamArn: string;
  workerId: string;
  /** Identifies the commit attempt (worker, key, epochs, checkpoints) that wrote this item. */
  commitId: string;
}

export interface GapRecord {
  windowStartMs: number;
  shardId: string;
  afterSequenceNumber: string;
  resumedAtSequenceNumber?: string | undefined;
  fromTimeMs?: number | undefined;
  toTimeMs?: number | undefined;
  detectedAtMs?: number | undefined;
  reason: 'TrimmedDataAccessException';
}

/**
 * The windows' lifecycle pointers. Windows before `closedThroughMs` take no more commits; windows
 * before `sealedThroughMs` have their manifests written (or hold nothing and precede the first
 * manifest). Always sealedThroughMs <= closedThroughMs.
 */
export interface WindowState {
  windowMs: number;
  streamArn: string;
  closedThroughMs: number;
  sealedThroughMs: number;
  /** When the windows in [sealedThroughMs, closedThroughMs) were closed: their manifests' sealedAt. */
  closedAtMs: number;
  /** Start of the first window that got a manifest; earlier empty windows get none. */
  firstManifestMs?: number | undefined;
  /** Windows before this were swept for orphan objects. */
  gcThroughMs?: number | undefined;
}

/** The sealer lease (and any lease of the registry partition): the lease fields alone. */
export interface SealerLeaseItem extends LeaseFields {
  owner?: string | undefined;
  leaseCounter: number;
  leaseEpoch: number;
}

export interface RegistryStoreOptions {
  client: DynamoDBClient;
  /** The lease table. */
  tableName: string;
  /** The source table whose changelog this is. */
  table: string;
  retry?: RetryOptions;
}

const N = (n: number): AttributeValue => ({ N: String(n) });
const S = (s: string): AttributeValue => ({ S: s });

export class RegistryStore {
  readonly tableName: string;
  readonly table: string;
  private readonly client: DynamoDBClient;
  private readonly retryOptions: RetryOptions;

  constructor(options: RegistryStoreOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.table = options.table;
    this.retryOptions = options.retry ?? {};
  }

  private key(sortKey: string): Record<string, AttributeValue> {
    return { [LEASE_PARTITION_KEY]: S(REGISTRY_PARTITION_PREFIX + this.table), [LEASE_SORT_KEY]: S(sortKey) };
  }

  /** The registry entry of a committed segment, as a transaction element (fails if it exists). */
  segmentPut(segment: SegmentRecord): TransactWriteItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...this.key(segmentSortKey(segment.windowStartMs, segment.segmentId)),
          windowStartMs: N(segment.windowStartMs),
          segmentId: S(segment.segmentId),
          objectKey: S(segment.key),
          bytes: N(segment.bytes),
          records: N(segment.records),
          checksum: S(segment.checksum),
          minEventTimeMs: N(segment.minEventTimeMs),
          maxEventTimeMs: N(segment.maxEventTimeMs),
          lateRecords: N(segment.lateRecords),
          // One JSON attribute: read back whole, never queried by field.
          shards: S(JSON.stringify(segment.shards)),
          sourceStreamArn: S(segment.streamArn),
          workerId: S(segment.workerId),
          commitId: S(segment.commitId),
        },
        ConditionExpression: 'attribute_not_exists(#sk)',
        ExpressionAttributeNames: { '#sk': LEASE_SORT_KEY },
      },
    };
  }

  /** A gap entry, as a transaction element. Rewriting the same gap is harmless. */
  gapPut(gap: GapRecord): TransactWriteItem {
    const item: Record<string, AttributeValue> = {
      ...this.key(`${GAP_PREFIX}${windowId(gap.windowStartMs)}#${gap.shardId}#${gap.afterSequenceNumber}`),
      windowStartMs: N(gap.windowStartMs),
      shardId: S(gap.shardId),
      afterSequenceNumber: S(gap.afterSequenceNumber),
      reason: S(gap.reason),
    };
    if (gap.resumedAtSequenceNumber !== undefined)
      item['resumedAtSequenceNumber'] = S(gap.resumedAtSequenceNumber);
    if (gap.fromTimeMs !== undefined) item['fromTimeMs'] = N(gap.fromTimeMs);
    if (gap.toTimeMs !== undefined) item['toTimeMs'] = N(gap.toTimeMs);
    if (gap.detectedAtMs !== undefined) item['detectedAtMs'] = N(gap.detectedAtMs);
    return { Put: { TableName: this.tableName, Item: item } };
  }

  /** Transaction element: the window is still open (the sealer has not closed it). */
  windowOpenCheck(windowStartMs: number): TransactWriteItem {
    return {
      ConditionCheck: {
        TableName: this.tableName,
        Key: this.key(STATE_KEY),
        ConditionExpression: 'attribute_not_exists(#closed) OR #closed <= :start',
        ExpressionAttributeNames: { '#closed': 'closedThroughMs' },
        ExpressionAttributeValues: { ':start': N(windowStartMs) },
      },
    };
  }

  /**
   * Sends one transaction. Its ClientRequestToken is a hash of the items, so a retry of the same
   * transaction is idempotent for DynamoDB's 10 minutes, and a transaction with other values can
   * never reuse a token (DynamoDB would refuse that as an IdempotentParameterMismatch). A
   * TransactionCanceledException is passed through for the caller to read its reasons with
   * awsCall's `cancellationReasons` (it knows what each element was).
   */
  async transact(
    items: TransactWriteItem[],
    signal?: AbortSignal,
    options: TransactOptions = {},
  ): Promise<void> {
    const token = requestToken('transact', JSON.stringify(items));
    await this.call(
      'transaction',
      signal,
      (s) =>
        this.client.send(new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: token }), {
          abortSignal: s,
        }),
      {
        ...(options.retryConflicts && {
          isTransient: (error: unknown) => isTransientAwsError(error) || isTransactionConflict(error),
        }),
        onRetry: options.onRetry,
      },
    );
  }

  async getSegment(
    windowStartMs: number,
    segmentId: string,
    signal?: AbortSignal,
  ): Promise<SegmentRecord | undefined> {
    const out = await this.call('read segment', signal, (s) =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: this.key(segmentSortKey(windowStartMs, segmentId)),
          ConsistentRead: true,
        }),
        { abortSignal: s },
      ),
    );
    return out.Item === undefined ? undefined : segmentFromItem(out.Item);
  }

  /** An item of this changelog's registry partition by its sort key (other roles' state), read consistently. */
  async getItem(sortKey: string, signal?: AbortSignal): Promise<Record<string, AttributeValue> | undefined> {
    const out = await this.call(`read ${sortKey}`, signal, (s) =>
      this.client.send(
        new GetItemCommand({ TableName: this.tableName, Key: this.key(sortKey), ConsistentRead: true }),
        { abortSignal: s },
      ),
    );
    return out.Item;
  }

  /** The Put of an item of this changelog's registry partition, as a transaction element. */
  itemPut(sortKey: string, attributes: Record<string, AttributeValue>): TransactWriteItem {
    return { Put: { TableName: this.tableName, Item: { ...this.key(sortKey), ...attributes } } };
  }

  async getState(signal?: AbortSignal): Promise<WindowState | undefined> {
    const out = await this.call('read state', signal, (s) =>
      this.client.send(
        new GetItemCommand({ TableName: this.tableName, Key: this.key(STATE_KEY), ConsistentRead: true }),
        { abortSignal: s },
      ),
    );
    return out.Item === undefined ? undefined : stateFromItem(out.Item);
  }

  /** Creates the window state unless it exists; returns the state as stored. */
  async initState(initial: WindowState, signal?: AbortSignal): Promise<WindowState> {
    try {
      await this.call('create state', signal, (s) =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: { ...this.key(STATE_KEY), ...stateAttributes(initial) },
            ConditionExpression: 'attribute_not_exists(#sk)',
            ExpressionAttributeNames: { '#sk': LEASE_SORT_KEY },
          }),
          { abortSignal: s },
        ),
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
    }
    const state = await this.getState(signal);
    if (state === undefined) throw new ChangelogError('window state vanished right after creation');
    return state;
  }

  /**
   * Replaces the state if it still is `expected` and the sealer lease is still `sealer`'s at its
   * epoch (fencing: a sealer that lost its lease cannot move the pointers). False when either
   * condition failed.
   */
  async updateState(
    expected: WindowState,
    next: WindowState,
    sealer: { owner: string; leaseEpoch: number },
    signal?: AbortSignal,
  ): Promise<boolean> {
    const names: Record<string, string> = { '#closed': 'closedThroughMs', '#sealed': 'sealedThroughMs' };
    const values: Record<string, AttributeValue> = {
      ':closed': N(expected.closedThroughMs),
      ':sealed': N(expected.sealedThroughMs),
    };
    const attributes = stateAttributes(next);
    const sets: string[] = [];
    let i = 0;
    for (const [name, value] of Object.entries(attributes)) {
      names[`#a${i}`] = name;
      values[`:a${i}`] = value;
      sets.push(`#a${i} = :a${i}`);
      i++;
    }
    const items: TransactWriteItem[] = [
      {
        ConditionCheck: {
          TableName: this.tableName,
          Key: this.key(SEALER_KEY),
          ConditionExpression: '#owner = :owner AND #epoch = :epoch',
          ExpressionAttributeNames: { '#owner': 'owner', '#epoch': 'leaseEpoch' },
          ExpressionAttributeValues: { ':owner': S(sealer.owner), ':epoch': N(sealer.leaseEpoch) },
        },
      },
      {
        Update: {
          TableName: this.tableName,
          Key: this.key(STATE_KEY),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: '#closed = :closed AND #sealed = :sealed',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        },
      },
    ];
    try {
      await this.transact(items, signal);
      return true;
    } catch (error) {
      if (hasName(error, 'TransactionCanceledException')) {
        const current = await this.getState(signal);
        // An earlier attempt of this very update may have landed.
        return current !== undefined && sameState(current, next);
      }
      throw error;
    }
  }

  /** Segments and gaps of the windows in [fromMs, toMs), in key order. */
  async queryRange(
    fromMs: number,
    toMs: number,
    signal?: AbortSignal,
  ): Promise<{ segments: SegmentRecord[]; gaps: GapRecord[] }> {
    const segments = (await this.queryBetween(SEGMENT_PREFIX, fromMs, toMs, signal)).map(segmentFromItem);
    const gaps = (await this.queryBetween(GAP_PREFIX, fromMs, toMs, signal)).map(gapFromItem);
    return { segments, gaps };
  }

  private async queryBetween(
    prefix: string,
    fromMs: number,
    toMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, AttributeValue>[]> {
    if (toMs <= fromMs) return [];
    const items: Record<string, AttributeValue>[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.call('query', signal, (s) =>
        this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            // `<prefix><id>#...` sorts after `<prefix><id>`: BETWEEN takes [from's window, to's).
            KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :from AND :to',
            ExpressionAttributeNames: { '#pk': LEASE_PARTITION_KEY, '#sk': LEASE_SORT_KEY },
            ExpressionAttributeValues: {
              ':pk': S(REGISTRY_PARTITION_PREFIX + this.table),
              ':from': S(prefix + windowId(fromMs)),
              ':to': S(prefix + windowId(toMs)),
            },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
          { abortSignal: s },
        ),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return items;
  }

  /** The watermark the sealer last published, if any. */
  async getWatermark(signal?: AbortSignal): Promise<number | undefined> {
    const out = await this.call('read watermark', signal, (s) =>
      this.client.send(
        new GetItemCommand({ TableName: this.tableName, Key: this.key(WATERMARK_KEY), ConsistentRead: true }),
        { abortSignal: s },
      ),
    );
    return out.Item === undefined ? undefined : optionalNum(out.Item, 'watermarkMs');
  }

  async putWatermark(watermarkMs: number, signal?: AbortSignal): Promise<void> {
    await this.call('write watermark', signal, (s) =>
      this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: { ...this.key(WATERMARK_KEY), watermarkMs: N(watermarkMs) },
        }),
        { abortSignal: s },
      ),
    );
  }

  /**
   * The fenced lease (fencedLease.ts) on the item `leaseKey` of this changelog's registry
   * partition: one per role that must run on one worker at a time (`sealer`, ...).
   */
  lease(leaseKey: string): FencedLease<SealerLeaseItem> {
    return new FencedLease({
      client: this.client,
      tableName: this.tableName,
      key: this.key(leaseKey),
      name: `${leaseKey} (table ${this.table})`,
      parse: registryLeaseFromItem,
      call: (operation, signal, fn) => this.call(`${operation} ${leaseKey} lease`, signal, fn),
    });
  }

  async getSealerLease(signal?: AbortSignal): Promise<SealerLeaseItem | undefined> {
    return this.lease(SEALER_KEY).get(signal);
  }

  /**
   * Takes the sealer lease if it is still as observed (undefined = no item yet). Returns the
   * lease now held, or undefined when another worker moved first.
   */
  async takeSealerLease(
    observed: SealerLeaseItem | undefined,
    workerId: string,
    signal?: AbortSignal,
  ): Promise<HeldLease<SealerLeaseItem> | undefined> {
    return this.lease(SEALER_KEY).take(observed, workerId, signal);
  }

  /** Heartbeat of the held sealer lease; undefined when it was lost. */
  async renewSealerLease(
    held: HeldLease<SealerLeaseItem>,
    signal?: AbortSignal,
  ): Promise<HeldLease<SealerLeaseItem> | undefined> {
    return this.lease(SEALER_KEY).renew(held, signal).catch(undefinedIfLost);
  }

  /** Gives the sealer lease up; a holder that lost it already is fenced out (nothing happens). */
  async releaseSealerLease(held: HeldLease<SealerLeaseItem>, signal?: AbortSignal): Promise<void> {
    await this.lease(SEALER_KEY).release(held, signal).catch(undefinedIfLost);
  }

  /** One DynamoDB call through awsCall (its one retry layer); failed conditions pass through. */
  private call<T>(
    operation: string,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal | undefined) => Promise<T>,
    more: Pick<AwsCallOptions, 'isTransient' | 'onRetry'> = {},
  ): Promise<T> {
    return awsCall(fn, {
      retry: this.retryOptions,
      signal,
      passThrough: isConditionFailure,
      wrap: (error, description, retriable) =>
        new ChangelogError(`registry ${operation} for table ${this.table} failed: ${description}`, {
          cause: error,
          retriable,
        }),
      ...more,
    });
  }
}

/** A lease of the registry partition, as stored (fields a take has not written yet read as 0). */
function registryLeaseFromItem(item: Record<string, AttributeValue>): SealerLeaseItem {
  return {
    owner: item['owner']?.S,
    leaseCounter: Number(item['leaseCounter']?.N ?? '0'),
    leaseEpoch: Number(item['leaseEpoch']?.N ?? '0'),
  };
}

function undefinedIfLost(error: unknown): undefined {
  if (error instanceof LeaseLostError) return undefined;
  throw error;
}

/** Every worker of a changelog must use the window size stored in its state. */
export function windowSizeMismatch(table: string, storedMs: number, configuredMs: number): ChangelogError {
  return new ChangelogError(
    `the changelog of ${table} uses ${storedMs} ms windows, this worker ${configuredMs} ms: every worker must run with the same --window`,
    { retriable: false },
  );
}

/** A ClientRequestToken (max 36 characters) derived from what makes the request unique. */
export function requestToken(...parts: (string | number)[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 36);
}

function segmentSortKey(windowStartMs: number, segmentId: string): string {
  return `${SEGMENT_PREFIX}${windowId(windowStartMs)}#${segmentId}`;
}

function stateAttributes(state: WindowState): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {
    windowMs: N(state.windowMs),
    sourceStreamArn: S(state.streamArn),
    closedThroughMs: N(state.closedThroughMs),
    sealedThroughMs: N(state.sealedThroughMs),
    closedAtMs: N(state.closedAtMs),
  };
  if (state.firstManifestMs !== undefined) out['firstManifestMs'] = N(state.firstManifestMs);
  if (state.gcThroughMs !== undefined) out['gcThroughMs'] = N(state.gcThroughMs);
  return out;
}

function sameState(a: WindowState, b: WindowState): boolean {
  return (
    a.closedThroughMs === b.closedThroughMs &&
    a.sealedThroughMs === b.sealedThroughMs &&
    a.closedAtMs === b.closedAtMs &&
    a.firstManifestMs === b.firstManifestMs &&
    a.gcThroughMs === b.gcThroughMs
  );
}

function num(item: Record<string, AttributeValue>, name: string, what: string): number {
  const value = Number(item[name]?.N);
  if (!Number.isSafeInteger(value)) {
    throw new ChangelogError(`malformed registry ${what}: ${name} is not an integer`, { retriable: false });
  }
  return value;
}

function str(item: Record<string, AttributeValue>, name: string, what: string): string {
  const value = item[name]?.S;
  if (value === undefined) {
    throw new ChangelogError(`malformed registry ${what}: ${name} is missing`, { retriable: false });
  }
  return value;
}

function optionalNum(item: Record<string, AttributeValue>, name: string): number | undefined {
  return item[name]?.N === undefined ? undefined : Number(item[name].N);
}

function stateFromItem(item: Record<string, AttributeValue>): WindowState {
  return {
    windowMs: num(item, 'windowMs', 'state'),
    streamArn: str(item, 'sourceStreamArn', 'state'),
    closedThroughMs: num(item, 'closedThroughMs', 'state'),
    sealedThroughMs: num(item, 'sealedThroughMs', 'state'),
    closedAtMs: num(item, 'closedAtMs', 'state'),
    firstManifestMs: optionalNum(item, 'firstManifestMs'),
    gcThroughMs: optionalNum(item, 'gcThroughMs'),
  };
}

export function segmentFromItem(item: Record<string, AttributeValue>): SegmentRecord {
  const what = `segment ${item[LEASE_SORT_KEY]?.S ?? '?'}`;
  let shards: RegistryShardEntry[];
  try {
    shards = JSON.parse(str(item, 'shards', what)) as RegistryShardEntry[];
  } catch (error) {
    throw new ChangelogError(`malformed registry ${what}: shards is not JSON`, {
      retriable: false,
      cause: error,
    });
  }
  return {
    windowStartMs: num(item, 'windowStartMs', what),
    segmentId: str(item, 'segmentId', what),
    key: str(item, 'objectKey', what),
    bytes: num(item, 'bytes', what),
    records: num(item, 'records', what),
    checksum: str(item, 'checksum', what),
    minEventTimeMs: num(item, 'minEventTimeMs', what),
    maxEventTimeMs: num(item, 'maxEventTimeMs', what),
    lateRecords: num(item, 'lateRecords', what),
    shards,
    streamArn: str(item, 'sourceStreamArn', what),
    workerId: str(item, 'workerId', what),
    commitId: str(item, 'commitId', what),
  };
}

function gapFromItem(item: Record<string, AttributeValue>): GapRecord {
  const what = `gap ${item[LEASE_SORT_KEY]?.S ?? '?'}`;
  return {
    windowStartMs: num(item, 'windowStartMs', what),
    shardId: str(item, 'shardId', what),
    afterSequenceNumber: str(item, 'afterSequenceNumber', what),
    resumedAtSequenceNumber: item['resumedAtSequenceNumber']?.S,
    fromTimeMs: optionalNum(item, 'fromTimeMs'),
    toTimeMs: optionalNum(item, 'toTimeMs'),
    detectedAtMs: optionalNum(item, 'detectedAtMs'),
    reason: 'TrimmedDataAccessException',
  };
}
