import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { parseKeySchema } from '../../src/changelog/keySchema.js';
import { dataPrefix } from '../../src/changelog/layout.js';
import type { StreamRecordObject } from '../../src/changelog/sdkRecordDecoder.js';
import {
  type BufferConfig,
  type LeaseConfig,
  type OrphanConfig,
  type PipelineConfig,
  type PipelineOverrides,
  pipelineConfig,
  type StreamConfig,
  type WindowConfig,
} from '../../src/coordination/config.js';
import type { Lease } from '../../src/coordination/lease.js';
import { LeaseStore } from '../../src/coordination/leaseStore.js';
import { createLeaseTable } from '../../src/coordination/leaseTable.js';
import { LocalObjectStore } from '../../src/coordination/localObjectStore.js';
import type {
  ListOptions,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  PutResult,
} from '../../src/coordination/objectStore.js';
import { type CommittedSegment, combineObservers } from '../../src/coordination/pipelineObserver.js';
import { RegistryStore } from '../../src/coordination/registryStore.js';
import { SegmentCommitter, type SegmentCommitterOptions } from '../../src/ingest/segmentCommitter.js';
import type { FetchedPage } from '../../src/ingest/shardReader.js';
import type { ShardSession } from '../../src/ingest/shardSink.js';
import { ObjectStoreError } from '../../src/support/errors.js';
import type { Logger } from '../../src/support/logger.js';
import type { RetryOptions } from '../../src/support/retry.js';

/*
 * Fixtures for the commit protocol and the sealer on DynamoDB Local: a lease table per test, shard
 * leases taken by a named worker, hand-built stream records with chosen sequence numbers and event
 * times (so window assignment is exact), an ObjectStore wrapper that injects faults, and a
 * DynamoDB client that loses the response of a request after DynamoDB applied it.
 */

export const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');
export const WINDOW_MS = 60_000;
/** 2026-01-15T10:00:00Z: a window boundary well inside one UTC day. */
export const T0 = Date.UTC(2026, 0, 15, 10, 0, 0);
/** Start of window n (counted from T0). */
export const W = (n: number): number => T0 + n * WINDOW_MS;
export const RETRY = { baseDelayMs: 2, maxDelayMs: 20, retries: 4 };

let counter = 0;
/** A name unique in this process (and across processes, by its random part). */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}-${randomBytes(3).toString('hex')}`;
}

export function shardName(n: number): string {
  return `shardId-00000001768400000000-${String(n).padStart(8, '0')}`;
}

/** A 21-digit sequence number: shard `s`, position `n` (positions compare as integers). */
export function seq(s: number, n: number): string {
  return `${s}${String(n).padStart(20, '0')}`;
}

export interface RecordSpec {
  seq: string;
  timeMs: number;
  pk?: string;
  sk?: number;
  op?: 'INSERT' | 'MODIFY' | 'REMOVE';
  /** Extra bytes in the new image (to control buffer sizes). */
  pad?: number;
}

/** A stream record object (SDK/Lambda shape) with event time in whole seconds. */
export function streamRecord(spec: RecordSpec): StreamRecordObject {
  if (spec.timeMs % 1000 !== 0) throw new Error('ApproximateCreationDateTime has second precision');
  const pk = spec.pk ?? `item-${spec.seq.slice(-4)}`;
  const sk = String(spec.sk ?? 1);
  const op = spec.op ?? 'INSERT';
  const keys = { pk: { S: pk }, sk: { N: sk } };
  return {
    eventID: `ev-${spec.seq}`,
    eventName: op,
    dynamodb: {
      ApproximateCreationDateTime: spec.timeMs / 1000,
      Keys: keys,
      ...(op === 'REMOVE' ? {} : { NewImage: { ...keys, v: { S: 'x'.repeat(spec.pad ?? 8) } } }),
      SequenceNumber: spec.seq,
      SizeBytes: 64 + (spec.pad ?? 8),
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  };
}

/** Records of shard `s` at positions from..to (inclusive), all at `timeMs` unless `timeOf` says. */
export function recordRun(
  s: number,
  from: number,
  to: number,
  timeOf: (n: number) => number,
  pad?: number,
): RecordSpec[] {
  const out: RecordSpec[] = [];
  for (let n = from; n <= to; n++) out.push({ seq: seq(s, n), timeMs: timeOf(n), pad });
  return out;
}

/** A page as the SDK GetRecords path delivers it. */
export function objectsPage(
  shardId: string,
  records: readonly RecordSpec[],
  options: { nextShardIterator?: string | undefined; serverTime?: Date } = {},
): FetchedPage {
  return {
    kind: 'objects',
    shardId,
    records: records.map(streamRecord),
    nextShardIterator: 'nextShardIterator' in options ? options.nextShardIterator : 'iterator',
    serverTime: options.serverTime,
  };
}

/** A ShardSession built by hand, recording every restart request. */
export interface TestSession extends ShardSession {
  readonly restarts: Error[];
  readonly controller: AbortController;
}

export function sessionOf(lease: Lease): TestSession {
  const controller = new AbortController();
  const restarts: Error[] = [];
  return {
    shardId: lease.shardId,
    lease,
    signal: controller.signal,
    restarts,
    controller,
    restart(reason: Error) {
      restarts.push(reason);
      controller.abort(reason);
    },
  };
}

/** Takes the shard's lease for `leases`' worker (free or stolen) and opens a session on it. */
export async function takeSession(leases: LeaseStore, shardId: string): Promise<TestSession> {
  const observed = await leases.getLease(shardId);
  if (!observed) throw new Error(`no lease for ${shardId}`);
  const taken = await leases.take(observed);
  if (!taken) throw new Error(`${leases.workerId} could not take ${shardId}`);
  return sessionOf(taken);
}

/** A session on the lease as stored now (already held by `leases`' worker), as a reader restart does. */
export async function reopenSession(leases: LeaseStore, shardId: string): Promise<TestSession> {
  const current = await leases.getLease(shardId);
  if (current?.owner !== leases.workerId) throw new Error(`${leases.workerId} does not hold ${shardId}`);
  return sessionOf(current);
}

/** One test's world: a fresh lease table, a source table name, a stream, a store directory. */
export interface CommitEnv {
  client: DynamoDBClient;
  leaseTable: string;
  table: string;
  streamArn: string;
  dir: string;
  store: LocalObjectStore;
  registry: RegistryStore;
  leasesFor(workerId: string, client?: DynamoDBClient): LeaseStore;
  registryWith(client: DynamoDBClient, retry?: RetryOptions): RegistryStore;
  cleanup(): Promise<void>;
}

export async function createCommitEnv(
  client: DynamoDBClient,
  shardIds: readonly string[],
  lineage: Record<string, string[]> = {},
): Promise<CommitEnv> {
  const leaseTable = uniqueName('leases');
  const table = uniqueName('orders');
  const streamArn = `arn:aws:dynamodb:us-east-1:123456789012:table/${table}/stream/2026-01-01T00:00:00.000`;
  await createLeaseTable(client, leaseTable, { pollIntervalMs: 50 });
  const dir = await mkdtemp(path.join(tmpdir(), 'commit-'));
  const store = new LocalObjectStore({ dir });
  const leasesFor = (workerId: string, c: DynamoDBClient = client) =>
    new LeaseStore({ client: c, tableName: leaseTable, streamArn, workerId, retry: RETRY });
  const registryWith = (c: DynamoDBClient, retry: RetryOptions = RETRY) =>
    new RegistryStore({ client: c, tableName: leaseTable, table, retry });
  await leasesFor('setup').ensureLeases(
    shardIds.map((shardId) => ({ shardId, parentShardIds: lineage[shardId] ?? [] })),
  );
  return {
    client,
    leaseTable,
    table,
    streamArn,
    dir,
    store,
    registry: registryWith(client),
    leasesFor,
    registryWith,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface CommitterUnderTest {
  committer: SegmentCommitter;
  commits: CommittedSegment[];
  leases: LeaseStore;
  registry: RegistryStore;
}

/**
 * A SegmentCommitter with test defaults: 1-minute windows, no flush by age or size (tests flush
 * with drain/finish, or through the buffer bound), the state re-read on every accept.
 */
export function makeCommitter(
  env: CommitEnv,
  workerId: string,
  overrides: Partial<SegmentCommitterOptions> & FlatSettings = {},
): CommitterUnderTest {
  const commits: CommittedSegment[] = [];
  const leases = overrides.leases ?? env.leasesFor(workerId);
  const registry = overrides.registry ?? env.registry;
  const committer = new SegmentCommitter(
    withSettings({
      workerId,
      streamArn: env.streamArn,
      table: env.table,
      keySchema: KEY_SCHEMA,
      leases,
      registry,
      store: env.store,
      retry: RETRY,
      stateRefreshMs: 0,
      ...overrides,
      observer: combineObservers({ segmentCommitted: (event) => commits.push(event) }, overrides.observer),
    }),
  );
  return { committer, commits, leases, registry };
}

/** Keys of every object under the table's data prefix. */
export async function dataKeys(store: ObjectStore, table: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(dataPrefix(table))) keys.push(object.key);
  return keys;
}

/** The rows of a stored segment: event id, sequence number and shard, in file order (hyparquet). */
export async function segmentRows(
  store: ObjectStore,
  key: string,
): Promise<{ event_id: string; sequence_number: string; shard_id: string; event_time: number }[]> {
  const bytes = await store.get(key);
  if (!bytes) throw new Error(`no object at ${key}`);
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const rows = (await parquetReadObjects({
    file,
    compressors,
    rowFormat: 'object',
    columns: ['event_id', 'sequence_number', 'shard_id', 'event_time'],
  })) as Record<string, unknown>[];
  return rows.map((r) => ({
    event_id: String(r['event_id']),
    sequence_number: String(r['sequence_number']),
    shard_id: String(r['shard_id']),
    event_time: r['event_time'] instanceof Date ? r['event_time'].getTime() : Number(r['event_time']),
  }));
}

/** Sets an object's modification time in a LocalObjectStore (its age for orphan collection). */
export async function setObjectTime(store: LocalObjectStore, key: string, timeMs: number): Promise<void> {
  const t = new Date(timeMs);
  await utimes(path.join(store.dir, ...key.split('/')), t, t);
}

/** An ObjectStore that delegates to another and injects faults into writes. */
export class FaultyStore implements ObjectStore {
  readonly url: string;
  /** Every putIfAbsent call, in order, with what came of it. */
  readonly puts: { key: string; outcome: PutResult['outcome'] | 'failed' | 'lost' }[] = [];
  /** The next this many puts throw a retriable ObjectStoreError before writing anything. */
  failPuts = 0;
  /** Puts whose key matches land in the inner store, then throw (the answer is lost). */
  loseAnswerOf: ((key: string) => boolean) | undefined;
  /** While set, puts wait for it before doing anything. */
  gate: Promise<void> | undefined;
  private started: (() => void)[] = [];

  constructor(private readonly inner: ObjectStore) {
    this.url = inner.url;
  }

  /** Resolves when the next put is called (before the gate and the failure injection). */
  nextPutStarted(): Promise<void> {
    return new Promise((resolve) => this.started.push(resolve));
  }

  async putIfAbsent(key: string, body: Uint8Array, options?: PutOptions): Promise<PutResult> {
    const waiters = this.started.splice(0);
    for (const w of waiters) w();
    if (this.gate) await this.gate;
    if (this.failPuts > 0) {
      this.failPuts -= 1;
      this.puts.push({ key, outcome: 'failed' });
      throw new ObjectStoreError(`PUT ${key} failed: 503 SlowDown (injected)`, { key, retriable: true });
    }
    const result = await this.inner.putIfAbsent(key, body, options);
    if (this.loseAnswerOf?.(key)) {
      this.puts.push({ key, outcome: 'lost' });
      throw new ObjectStoreError(`PUT ${key}: connection reset after the write (injected)`, {
        key,
        retriable: false,
      });
    }
    this.puts.push({ key, outcome: result.outcome });
    return result;
  }

  get(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    return this.inner.get(key, signal);
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    return this.inner.head(key, signal);
  }

  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix, options);
  }

  delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    return this.inner.delete(keys, signal);
  }
}

/** A network failure the SDK would surface after the request was sent (retriable by isRetriable). */
export function lostResponseError(): Error {
  return Object.assign(new Error('socket hang up (injected: the response was lost)'), {
    name: 'TimeoutError',
    code: 'ECONNRESET',
    $metadata: {},
  });
}

export interface LossyClient {
  client: DynamoDBClient;
  /** Commands (by name) sent through the client, in order, with whether their answer was lost. */
  sent: { command: string; lost: boolean; sentToServer: boolean }[];
  /** The next `n` commands named `command` reach DynamoDB, then their answer is lost. */
  loseAnswers(command: string, n: number): void;
  /** The next `n` commands named `command` fail before they are sent. */
  failBeforeSend(command: string, n: number): void;
  destroy(): void;
}

/**
 * A DynamoDBClient on `endpoint` whose requests can be made to fail after DynamoDB applied them
 * (response lost) or before they leave (connection refused), through an outermost middleware.
 */
export function lossyClient(endpoint: string): LossyClient {
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const sent: LossyClient['sent'] = [];
  const lose = new Map<string, number>();
  const refuse = new Map<string, number>();
  const take = (m: Map<string, number>, name: string) => {
    const n = m.get(name) ?? 0;
    if (n > 0) m.set(name, n - 1);
    return n > 0;
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName);
      if (take(refuse, name)) {
        sent.push({ command: name, lost: true, sentToServer: false });
        throw Object.assign(new Error('connect ECONNREFUSED (injected)'), {
          name: 'Error',
          code: 'ECONNREFUSED',
          $metadata: {},
        });
      }
      const out = await next(args);
      const lost = take(lose, name);
      sent.push({ command: name, lost, sentToServer: true });
      if (lost) throw lostResponseError();
      return out;
    },
    { step: 'initialize', name: 'injectLostResponses', priority: 'high' },
  );
  return {
    client,
    sent,
    loseAnswers: (command, n) => lose.set(command, n),
    failBeforeSend: (command, n) => refuse.set(command, n),
    destroy: () => client.destroy(),
  };
}

/** A logger that keeps every line, for assertions on what was logged. */
export interface CapturingLogger extends Logger {
  lines: { level: 'debug' | 'info' | 'warn' | 'error'; details: Record<string, unknown>; message: string }[];
}

export function capturingLogger(): CapturingLogger {
  const lines: CapturingLogger['lines'] = [];
  const at =
    (level: CapturingLogger['lines'][number]['level']) =>
    (details: Record<string, unknown>, message: string) =>
      lines.push({ level, details, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Polls until `condition` holds (no timing is asserted; the deadline only bounds a hang). */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Settings a test gives flat (`{ maxBufferBytes: 1 }`); the components take them as groups. */
export type FlatSettings = Partial<WindowConfig & BufferConfig & StreamConfig & LeaseConfig & OrphanConfig>;

const GROUP_OF: Record<keyof FlatSettings, keyof PipelineConfig> = {
  windowMs: 'window',
  allowedLatenessMs: 'window',
  flushIntervalMs: 'buffer',
  maxSegmentBytes: 'buffer',
  maxBufferBytes: 'buffer',
  maxShardsPerSegment: 'buffer',
  compression: 'buffer',
  failoverMs: 'lease',
  streamRetentionMs: 'stream',
  orphanGraceMs: 'orphans',
  orphanBatch: 'orphans',
};

/** The tests' settings: 1-minute windows, no lateness, no flush by age (tests flush themselves). */
export const TEST_SETTINGS: FlatSettings = {
  windowMs: WINDOW_MS,
  allowedLatenessMs: 0,
  flushIntervalMs: 3_600_000,
};

/**
 * Component options with flat settings turned into the groups (DEFAULTS for what neither `base`
 * nor `options` sets): `new SegmentCommitter(withSettings({ ...options, maxBufferBytes: 1 }))`.
 */
export function withSettings<T extends object>(
  options: T,
  base: FlatSettings = TEST_SETTINGS,
): Omit<T, keyof FlatSettings> & PipelineConfig {
  const overrides: Record<string, Record<string, unknown>> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries({ ...base, ...options })) {
    const group = GROUP_OF[key as keyof FlatSettings];
    if (group === undefined) rest[key] = value;
    else if (value !== undefined) {
      overrides[group] ??= {};
      overrides[group][key] = value;
    }
  }
  return { ...rest, ...pipelineConfig(overrides as PipelineOverrides) } as Omit<T, keyof FlatSettings> &
    PipelineConfig;
}
