/**
 * Replay benchmark (issue 13): `replay --mode bootstrap` from a full export and from a scan, each
 * against a baseline measured in the same run.
 *
 *   npm run bench:replay [-- --case a|b --items 100000 --files 8 --scan-items 10000 --segments 4 --repeat 3]
 *
 * s3rver and DynamoDB Local run for the whole run (pinned to core 1 where taskset exists); every
 * case runs in its own child process pinned to core 0, so its CPU and peak RSS are its own:
 *   a   export replay: runReplay bootstrap `--export` of a full DYNAMODB_JSON export (gzip, --files
 *       data files of --items ~400-byte items, written by test/helpers/exportFixtures.ts) on
 *       s3rver into a changelog on the same s3rver, to a published version 2 of the window. Each run
 *       has its own lease table, changelog prefix and replay id, so it really writes.
 *   a0  baseline: the same items as INSERT stream records in raw GetRecords pages of 1,000, read
 *       from disk, decodeGetRecordsResponse -> ChangeBuffer -> encodeSegment (bench:encode's path),
 *       flushed at the daemon's segment size.
 *   b   scan replay: runReplay bootstrap `--source scan --segments N` of a DynamoDB Local table of
 *       --scan-items of the same items (loaded with BatchWriteItem).
 *   b0  baseline: a bare parallel Scan of that table (N segments, the same page size: DynamoDB's
 *       1 MB default, ReturnConsumedCapacity), counting items.
 * MB/s is of the items' DynamoDB JSON in every case, so rates compare. Each case also reports its
 * CPU time over the timed part. The first run of (a) splits its time (`--split 0`: not): S3
 * segment puts and DynamoDB calls as the replay made them, and a second pass of the same loop
 * without them (download, gunzip + line split, lines -> buffer, encode).
 * The export and the baseline's pages are generated once, seeded, into .bench-cache/.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  CreateTableCommand,
  type DynamoDBClient,
  ScanCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { runReplay } from '../src/app/replay.js';
import type { ReplayConfig } from '../src/app/replayConfig.js';
import type { AttributeMap } from '../src/changelog/attributeValueJson.js';
import { ChangeBuffer } from '../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../src/changelog/keySchema.js';
import { encodeSegment } from '../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../src/changelog/wireRecordDecoder.js';
import { DEFAULTS } from '../src/coordination/config.js';
import { openExport, readExportFileChunks } from '../src/coordination/dynamoExport.js';
import { createLeaseTable } from '../src/coordination/leaseTable.js';
import { type ObjectStore, parseDestination } from '../src/coordination/objectStore.js';
import { RegistryStore } from '../src/coordination/registryStore.js';
import { S3ObjectStore } from '../src/coordination/s3ObjectStore.js';
import { ReplaySegmentWriter } from '../src/ingest/replayWriter.js';
import { seededRandom } from '../src/support/random.js';
import {
  buildManifest,
  buildSegment,
  SHARD_A,
  STREAM_ARN,
  TABLE,
  WINDOW_MS,
  writeManifest,
} from '../test/helpers/changelogFixtures.js';
import { dynamoDbLocalClient, startDynamoDbLocal } from '../test/helpers/dynamoDbLocalServer.js';
import { writeExport } from '../test/helpers/exportFixtures.js';
import { MemoryObjectStore } from '../test/helpers/memoryObjectStore.js';
import { s3rverClient, startS3rver } from '../test/helpers/s3rverServer.js';
import {
  generateRecords,
  getRecordsResponse,
  type WireAttributeValue,
  type WireItem,
  type WireRecord,
} from '../test/helpers/streamRecords.js';
import { type CaseResult, parseArgs, peakRssMiB, pinTo, runCase, runInterleaved } from './benchHarness.js';

const SCRIPT = 'scripts/benchReplay.ts';
const args = parseArgs();
const ITEMS = Number(args.get('items') ?? 100_000);
const FILES = Number(args.get('files') ?? 8);
const SCAN_ITEMS = Number(args.get('scan-items') ?? 10_000);
const SEGMENTS = Number(args.get('segments') ?? 4);
const REPEAT = Number(args.get('repeat') ?? 3);
const PAGE = 1000;
/** `--split 0`: no split pass (e.g. under --cpu-prof, so the profile is the replay's alone). */
const SPLIT = args.get('split') !== '0';
const BUCKET = 'bench-replay';
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}`;
const EXPORT_ID = '01763805630000-benchrep';
/** The window of every case's changelog (sealed, one stream segment) and of the replay's rows. */
const W0 = Date.UTC(2026, 10, 22, 10, 0, 0);
/** The export's point in time. */
const EXPORT_TIME_MS = W0 + 30_000;
/** replay's clock (io.now): a scan's start, so its snapshot time (a few seconds earlier) is in W0 too. */
const NOW = W0 + 50_000;
const SEGMENT_BYTES = DEFAULTS.buffer.maxSegmentBytes;
const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');

interface Endpoints {
  s3: string;
  dynamodb: string;
}

// --- the data -------------------------------------------------------------------------------

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];

/**
 * A ~540-byte item (DynamoDB JSON; ~590 bytes as an export line): the attribute mix of bench:encode's realistic
 * items (38-digit and decimal numbers, SS/NS sets, binary, BOOL, NULL, a nested map, a list), fewer
 * of them.
 */
function benchItem(random: () => number, i: number): WireItem {
  const word = () => WORDS[Math.floor(random() * WORDS.length)]!;
  const digits = (n: number) => {
    let s = String(1 + Math.floor(random() * 9));
    while (s.length < n) s += String(Math.floor(random() * 10));
    return s;
  };
  const bytes = Buffer.alloc(16);
  for (let b = 0; b < bytes.length; b++) bytes[b] = Math.floor(random() * 256);
  return {
    pk: { S: `tenant-${i % 97}#object-${i}` },
    sk: { N: String(i % 13) },
    version: { N: String(1 + Math.floor(random() * 50)) },
    name: { S: `${word()} ${word()} ${Math.floor(random() * 1e6)}` },
    status: { S: random() < 0.5 ? 'ACTIVE' : 'PENDING' },
    owner: { S: `user-${digits(8)}@example.com` },
    balance: { N: `${digits(12)}.${digits(6)}` },
    bigCounter: { N: digits(38) },
    tags: { SS: [`${word()}-1`, `${word()}-2`] },
    scores: { NS: [digits(3), `${digits(2)}.5`] },
    checksum: { B: bytes.toString('base64') },
    active: { BOOL: random() < 0.5 },
    deletedAt: { NULL: true },
    address: { M: { city: { S: word() }, zip: { S: digits(5) } } },
    labels: { L: [{ S: word() }, { N: digits(4) }] },
  };
}

function items(count: number): WireItem[] {
  const random = seededRandom(13);
  return Array.from({ length: count }, (_, i) => benchItem(random, i));
}

interface Cached {
  /** The export's objects, by key (relative to the bucket), as files under `exportDir`. */
  exportDir: string;
  /** The baseline's GetRecords pages, in order. */
  pages: string[];
  /** UTF-8 bytes of the items' DynamoDB JSON (JSON.stringify of each item). */
  itemBytes: number;
  /** The same, of the first SCAN_ITEMS items. */
  scanItemBytes: number;
  gzipBytes: number;
}

/** The export (writeExport, gzip) and the baseline's pages, generated once into .bench-cache/. */
async function cached(): Promise<Cached> {
  const dir = resolve('.bench-cache', `replay-v1-${ITEMS}-${FILES}-${SCAN_ITEMS}`);
  const exportDir = join(dir, 'export');
  const pagesDir = join(dir, 'pages');
  if (!existsSync(join(dir, 'done'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(pagesDir, { recursive: true });
    process.stderr.write(`generating ${ITEMS} items, their export and their GetRecords pages into ${dir}\n`);
    const all = items(ITEMS);
    const memory = new MemoryObjectStore();
    await writeExport(memory, {
      prefix: '',
      exportId: EXPORT_ID,
      tableArn: TABLE_ARN,
      type: 'full',
      items: all as AttributeMap[],
      filesCount: FILES,
      exportTimeMs: EXPORT_TIME_MS,
    });
    let gzipBytes = 0;
    for (const [key, object] of memory.objects) {
      const file = join(exportDir, key);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, object.body);
      if (key.endsWith('.json.gz')) gzipBytes += object.body.length;
    }
    // The same items as INSERT records: what the stream would have carried for them.
    let sequence = 100_000_000_000_000_000_000n;
    for (let p = 0; p * PAGE < ITEMS; p++) {
      const records = all.slice(p * PAGE, (p + 1) * PAGE).map((item, i): WireRecord => {
        sequence += 17n;
        const image = JSON.stringify(item);
        return {
          awsRegion: 'us-east-1',
          dynamodb: {
            ApproximateCreationDateTime: Math.floor(EXPORT_TIME_MS / 1000),
            Keys: { pk: item.pk!, sk: item.sk! },
            NewImage: item,
            SequenceNumber: String(sequence),
            SizeBytes: image.length,
            StreamViewType: 'NEW_AND_OLD_IMAGES',
          },
          eventID: (p * PAGE + i).toString(16).padStart(32, '0'),
          eventName: 'INSERT',
          eventSource: 'aws:dynamodb',
          eventVersion: '1.1',
        };
      });
      const body = getRecordsResponse(records, `AAAAAAAAAAE${'x'.repeat(200)}${p}`);
      writeFileSync(join(pagesDir, `page-${String(p).padStart(5, '0')}.json`), body);
    }
    const size = (list: WireItem[]) =>
      list.reduce((n, item) => n + Buffer.byteLength(JSON.stringify(item)), 0);
    const meta = { itemBytes: size(all), scanItemBytes: size(all.slice(0, SCAN_ITEMS)), gzipBytes };
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
    writeFileSync(join(dir, 'done'), '');
  }
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Omit<
    Cached,
    'exportDir' | 'pages'
  >;
  const pages = readdirSync(pagesDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(pagesDir, f));
  return { exportDir, pages, ...meta };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

function toSdk(value: WireAttributeValue): AttributeValue {
  if ('B' in value) return { B: Buffer.from(value.B, 'base64') };
  if ('BS' in value) return { BS: value.BS.map((b) => Buffer.from(b, 'base64')) };
  if ('M' in value) return { M: Object.fromEntries(Object.entries(value.M).map(([k, v]) => [k, toSdk(v)])) };
  if ('L' in value) return { L: value.L.map(toSdk) };
  return value as AttributeValue;
}

/** The source table: pk S + sk N, no stream (DescribeTable and Scan need none). */
async function createSourceTable(client: DynamoDBClient): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'N' },
      ],
    }),
  );
}

/** The first `count` items into the source table, BatchWriteItem of 25 in 8 lanes. */
async function loadTable(client: DynamoDBClient, count: number): Promise<void> {
  const all = items(count);
  let next = 0;
  const lane = async () => {
    for (let at = next; at < all.length; at = next) {
      next += 25;
      let pending: WriteRequest[] = all.slice(at, at + 25).map((item) => ({
        PutRequest: { Item: Object.fromEntries(Object.entries(item).map(([k, v]) => [k, toSdk(v)])) },
      }));
      while (pending.length > 0) {
        const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: pending } }));
        pending = out.UnprocessedItems?.[TABLE] ?? [];
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
}

// --- the cases (child processes) ------------------------------------------------------------

/** Calls of `target`'s methods, timed: total milliseconds and count by name (`classify`). */
class CallTimes {
  readonly ms = new Map<string, number>();
  readonly count = new Map<string, number>();

  wrap<T extends object>(target: T, classify: (method: string, args: unknown[]) => string | undefined): T {
    return new Proxy(target, {
      get: (t, p, receiver) => {
        const value: unknown = Reflect.get(t, p, receiver);
        if (typeof value !== 'function') return value;
        return (...callArgs: unknown[]) => {
          const name = classify(String(p), callArgs);
          const out: unknown = (value as (...a: unknown[]) => unknown).apply(t, callArgs);
          if (name === undefined || !(out instanceof Promise)) return out;
          const start = performance.now();
          return out.finally(() => {
            this.ms.set(name, (this.ms.get(name) ?? 0) + performance.now() - start);
            this.count.set(name, (this.count.get(name) ?? 0) + 1);
          });
        };
      },
    });
  }

  seconds(name: string): number {
    return (this.ms.get(name) ?? 0) / 1000;
  }

  describe(): string {
    return [...this.ms.entries()]
      .sort((x, y) => y[1] - x[1])
      .map(([name, ms]) => `${name} ${(ms / 1000).toFixed(2)} s/${this.count.get(name)}`)
      .join(', ');
  }
}

function s3Store(endpoint: string, url: string, times?: CallTimes): ObjectStore {
  const destination = parseDestination(url);
  if (destination.kind !== 's3') throw new Error(`not an s3:// URL: ${url}`);
  const store = new S3ObjectStore({
    bucket: destination.bucket,
    prefix: destination.prefix,
    client: s3rverClient(endpoint),
    forcePathStyle: true,
  });
  if (times === undefined) return store;
  return times.wrap(store, (method, callArgs) => {
    const key = String(callArgs[0]);
    if (method === 'putIfAbsent') return key.includes('/replay-') ? 'S3 segment put' : 'S3 other put';
    if (method === 'get') return key.endsWith('.json.gz') ? 'S3 export get' : 'S3 other get';
    return method === 'list' ? undefined : `S3 ${method}`;
  });
}

/**
 * A sealed changelog for one run: a lease table with the window state (sealed well past W0, W0 the
 * first manifest's window) and a v1 manifest of W0 with one small stream segment (records at W0 +
 * 1 s, before every snapshot time here), under a prefix of its own.
 */
async function sealedChangelog(endpoints: Endpoints, run: string) {
  const windowStartMs = W0;
  const client = dynamoDbLocalClient(endpoints.dynamodb);
  const leaseTable = `bench-leases-${run}`;
  await createLeaseTable(client, leaseTable);
  const registry = new RegistryStore({ client, tableName: leaseTable, table: TABLE });
  await registry.initState({
    windowMs: WINDOW_MS,
    streamArn: STREAM_ARN,
    closedThroughMs: W0 + 60 * WINDOW_MS,
    sealedThroughMs: W0 + 60 * WINDOW_MS,
    closedAtMs: W0 + 60 * WINDOW_MS,
    firstManifestMs: W0,
  });
  const url = `s3://${BUCKET}/changelog-${run}`;
  const store = s3Store(endpoints.s3, url);
  const records = generateRecords({
    records: 2,
    keyCount: 2,
    startTimeSeconds: Math.floor(windowStartMs / 1000) + 1,
  });
  const segment = buildSegment(windowStartMs, [
    { shardId: SHARD_A, records, afterSequenceNumber: 'TRIM_HORIZON' },
  ]);
  await store.putIfAbsent(segment.key, segment.bytes);
  await writeManifest(store, buildManifest(windowStartMs, [segment.entry]));
  store.close?.();
  return { client, leaseTable, url };
}

async function replayCase(
  name: 'a' | 'b',
  endpoints: Endpoints,
  inputBytes: number,
  split: boolean,
): Promise<CaseResult> {
  const run = `${name}-${process.pid}-${Date.now().toString(36)}`;
  const { client, leaseTable, url } = await sealedChangelog(endpoints, run);
  const times = new CallTimes();
  const dynamodb = times.wrap(client, (method, callArgs) =>
    method === 'send'
      ? `DynamoDB ${(callArgs[0] as object).constructor.name.replace(/Command$/, '')}`
      : undefined,
  );
  const exportUrl = `s3://${BUCKET}/AWSDynamoDB/${EXPORT_ID}/`;
  const config: ReplayConfig = {
    destination: { url, s3ForcePathStyle: true },
    table: TABLE,
    leaseTable,
    mode: 'bootstrap',
    source: name === 'a' ? 'export' : 'scan',
    sinceMs: undefined,
    untilMs: undefined,
    exportUrl: name === 'a' ? exportUrl : undefined,
    startExport: undefined,
    segments: SEGMENTS,
    maxSegmentBytes: SEGMENT_BYTES,
    maxRcuPerSecond: undefined,
    replayId: `bench-${run}`,
    dryRun: false,
    waitForSealMs: 0,
    progress: 'none',
  };
  const stores: ObjectStore[] = [];
  const cpu = process.cpuUsage();
  const start = performance.now();
  const result = await runReplay(config, {
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    openStore: (u) => {
      const store = s3Store(endpoints.s3, u, times);
      stores.push(store);
      return store;
    },
    dynamodb,
    now: () => NOW,
  });
  const seconds = (performance.now() - start) / 1000;
  const cpuUsed = cpuSince(cpu);
  const peak = peakRssMiB();
  if (result.published.length !== 1 || result.published[0]!.version !== 2) {
    throw new Error(`replay published ${JSON.stringify(result.published)}, expected version 2 of one window`);
  }
  let outputBytes = 0;
  for await (const object of stores[0]!.list(''))
    if (object.key.includes('/replay-')) outputBytes += object.bytes;
  let detail = `${cpuUsed} in ${seconds.toFixed(2)} s; ${times.describe()}`;
  if (split) detail += `\n${' '.repeat(44)}${await exportSplit(endpoints, exportUrl, result.replayId)}`;
  for (const store of stores) store.close?.();
  client.destroy();
  return {
    name,
    seconds,
    records: result.rows,
    inputBytes,
    outputBytes,
    segments: result.segments,
    peakRssMiB: peak,
    detail,
  };
}

/**
 * The export replay's loop again (readExportFileChunks -> batches of lines into a ReplaySegmentWriter,
 * flushed when full) with an in-memory store instead of S3 and no progress saves, each step timed.
 */
async function exportSplit(endpoints: Endpoints, exportUrl: string, replayId: string): Promise<string> {
  const times = new CallTimes();
  const store = s3Store(endpoints.s3, `s3://${BUCKET}`, times);
  const exp = await openExport(store, exportUrl.slice(`s3://${BUCKET}/`.length), { table: TABLE });
  const writer = new ReplaySegmentWriter({
    store: new MemoryObjectStore(),
    table: TABLE,
    keySchema: KEY_SCHEMA,
    replayId,
    windowStartMs: W0,
    flushBytes: SEGMENT_BYTES,
    nextPart: 0,
  });
  let read = 0;
  let append = 0;
  let encode = 0;
  const start = performance.now();
  const flush = async () => {
    const t = performance.now();
    await writer.flush();
    encode += performance.now() - t;
  };
  for (const file of exp.files) {
    const batches = readExportFileChunks(store, exp, file)[Symbol.asyncIterator]();
    let line = 0;
    for (;;) {
      let t = performance.now();
      const next = await batches.next();
      read += performance.now() - t;
      if (next.done) break;
      const batch = next.value;
      let at = 0;
      while (at < batch.bytes.length) {
        t = performance.now();
        const appended = writer.appendExportLines(
          batch.bytes,
          at,
          batch.bytes.length,
          'full',
          EXPORT_TIME_MS,
          {
            file: file.key,
            firstLine: line + 1,
          },
        );
        append += performance.now() - t;
        at = appended.end;
        line += appended.lines;
        if (writer.full) await flush();
      }
    }
  }
  await flush();
  const total = (performance.now() - start) / 1000;
  store.close?.();
  const download = times.seconds('S3 export get');
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return (
    `split (same loop, no S3 puts, no saves; ${total.toFixed(2)} s): download ${download.toFixed(2)} s, ` +
    `md5 + gunzip + line split ${(read / 1000 - download).toFixed(2)} s, lines -> buffer (scan, sha256) ${s(append)} s, ` +
    `encode + sha256 ${s(encode)} s`
  );
}

/** bench:encode's path over the same items as INSERT records: raw pages -> buffer -> segments. */
function encodeCase(data: Cached): CaseResult {
  const buffer = new ChangeBuffer(KEY_SCHEMA);
  let pageBytes = 0;
  let outputBytes = 0;
  let segments = 0;
  let records = 0;
  const flush = () => {
    const segment = encodeSegment(buffer);
    outputBytes += segment.bytes.length;
    records += segment.records;
    segments++;
    buffer.clear();
  };
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (const file of data.pages) {
    const body = readFileSync(file);
    pageBytes += body.length;
    decodeGetRecordsResponse(body, 'shardId-00000001700000000000-0123abcd', buffer);
    if (buffer.byteSize >= SEGMENT_BYTES) flush();
  }
  if (buffer.rowCount > 0) flush();
  const seconds = (performance.now() - start) / 1000;
  return {
    name: 'a0',
    seconds,
    records,
    inputBytes: data.itemBytes,
    outputBytes,
    segments,
    peakRssMiB: peakRssMiB(),
    detail: `${cpuSince(cpu)} in ${seconds.toFixed(2)} s; ${(pageBytes / 2 ** 20).toFixed(1)} MiB of GetRecords JSON read from disk`,
  };
}

/** A bare parallel Scan: SEGMENTS segments at once, DynamoDB's page size, items counted. */
async function bareScanCase(endpoints: Endpoints, inputBytes: number): Promise<CaseResult> {
  const client = dynamoDbLocalClient(endpoints.dynamodb);
  const result = await bareScan(client, inputBytes);
  client.destroy();
  return result;
}

async function bareScan(client: DynamoDBClient, inputBytes: number): Promise<CaseResult> {
  let records = 0;
  let pages = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: SEGMENTS }, async (_, segment) => {
      let startKey: Record<string, AttributeValue> | undefined;
      do {
        const out = await client.send(
          new ScanCommand({
            TableName: TABLE,
            Segment: segment,
            TotalSegments: SEGMENTS,
            ReturnConsumedCapacity: 'TOTAL',
            ...(startKey !== undefined && { ExclusiveStartKey: startKey }),
          }),
        );
        records += out.Items?.length ?? 0;
        pages++;
        startKey = out.LastEvaluatedKey;
      } while (startKey !== undefined && Object.keys(startKey).length > 0);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return {
    name: 'b0',
    seconds,
    records,
    inputBytes,
    peakRssMiB: peakRssMiB(),
    detail: `${cpuSince(cpu)} in ${seconds.toFixed(2)} s; ${pages} pages`,
  };
}

/** CPU time (user + system) of this process since `from`, to set against the case's wall time. */
function cpuSince(from: NodeJS.CpuUsage): string {
  const { user, system } = process.cpuUsage(from);
  return `CPU ${((user + system) / 1e6).toFixed(2)} s`;
}

async function child(name: string): Promise<void> {
  const endpoints: Endpoints = { s3: args.get('s3')!, dynamodb: args.get('dynamodb')! };
  const data = await cached();
  const result =
    name === 'a'
      ? await replayCase('a', endpoints, data.itemBytes, args.get('split') === '1')
      : name === 'a0'
        ? encodeCase(data)
        : name === 'b'
          ? await replayCase('b', endpoints, data.scanItemBytes, false)
          : await bareScanCase(endpoints, data.scanItemBytes);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

// --- the run ----------------------------------------------------------------------------------

/** Moves this process's children (s3rver, DynamoDB Local) to core 1, leaving core 0 to the cases. */
function pinServers(): string {
  if (pinTo(1).length === 0) return 'servers not pinned (no taskset)';
  const ps = spawnSync('ps', ['-o', 'pid=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  const pids = ps.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  for (const pid of pids) spawnSync('taskset', ['-a', '-p', '-c', '1', pid], { stdio: 'ignore' });
  return `servers (${pids.length} processes) pinned to core 1, each case to core 0`;
}

async function main(): Promise<void> {
  if (args.has('child')) return child(args.get('case')!);
  const parts = args.has('case') ? [args.get('case')!] : ['a', 'b'];
  const started = performance.now();
  const data = await cached();
  const s3 = await startS3rver(BUCKET);
  const dynamo = await startDynamoDbLocal();
  try {
    await createSourceTable(dynamo.client);
    // The table is loaded on both cores, before the servers are pinned to one.
    const loadStart = performance.now();
    if (parts.includes('b')) {
      await loadTable(dynamo.client, SCAN_ITEMS);
      // DynamoDB Local's first scans of a table are slower (JIT): one before the measured rounds.
      await bareScan(dynamo.client, 0);
    }
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const pinned = pinServers();
    const endpoints = ['--s3', s3.endpoint, '--dynamodb', dynamo.endpoint];
    const caseArgs = [
      ...['--items', String(ITEMS), '--files', String(FILES), '--scan-items', String(SCAN_ITEMS)],
      ...['--segments', String(SEGMENTS), ...endpoints, '--child', '1'],
    ];
    // The export, uploaded through the S3 object store as writeExport wrote it.
    const bucket = s3Store(s3.endpoint, `s3://${BUCKET}`);
    const objects = filesUnder(data.exportDir);
    for (const file of objects) {
      await bucket.putIfAbsent(relative(data.exportDir, file).split('\\').join('/'), readFileSync(file));
    }
    bucket.close?.();
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    console.log(
      `replay benchmark: ${pinned}; setup ${((performance.now() - started) / 1000).toFixed(0)} s so far\n` +
        `(a) full export of ${ITEMS.toLocaleString('en-US')} items in ${FILES} gzip files ` +
        `(${mib(data.gzipBytes)} MiB gzip, ${mib(data.itemBytes)} MiB of item JSON, ${Math.round(data.itemBytes / ITEMS)} bytes/item)`,
    );
    if (parts.includes('a')) {
      let first = true;
      runInterleaved(
        { a: '(a) replay bootstrap --export', a0: '(a0) encode: GetRecords -> segments' },
        REPEAT,
        (name) => {
          const split = SPLIT && name === 'a' && first;
          if (split) first = false;
          return runCase(SCRIPT, name, [...caseArgs, ...(split ? ['--split', '1'] : [])], ITEMS);
        },
        [['a', 'a0']],
      );
    }
    if (parts.includes('b')) {
      console.log(
        `\n(b) table of ${SCAN_ITEMS.toLocaleString('en-US')} items (${mib(data.scanItemBytes)} MiB of item JSON) on DynamoDB Local, ` +
          `loaded in ${loadSeconds.toFixed(1)} s; ${SEGMENTS} scan segments`,
      );
      runInterleaved(
        { b: `(b) replay bootstrap --source scan`, b0: `(b0) bare parallel Scan, ${SEGMENTS} segments` },
        REPEAT,
        (name) => runCase(SCRIPT, name, caseArgs, SCAN_ITEMS),
        [['b', 'b0']],
      );
    }
    console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await dynamo.stop();
    await s3.stop();
  }
}

await main();
