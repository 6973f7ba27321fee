import { createHash } from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
  type _Record as SdkRecord,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { afterEach, describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { StreamError } from '../../../src/support/errors.js';
import { createStreamTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import {
  type AppendRecord,
  type StreamsEmulator,
  type StreamsEmulatorOptions,
  startStreamsEmulator,
} from '../../helpers/streamsEmulator.js';

/*
 * The many-shard Streams emulator (test/helpers/streamsEmulator.ts) against the AWS SDK, the
 * repo's own raw GetRecords client, and DynamoDB Local's own answers to the same calls.
 */

const local = useDynamoDbLocal();
const running: StreamsEmulator[] = [];
const clients: { destroy(): void }[] = [];
let tableCounter = 0;

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function newTable(name: string): Promise<string> {
  const table = `emu-${name}-${++tableCounter}`;
  await createStreamTable(local().client, table);
  return table;
}

async function startEmulator(
  options: Omit<StreamsEmulatorOptions, 'dynamoDbEndpoint'>,
): Promise<StreamsEmulator> {
  const emulator = await startStreamsEmulator({ dynamoDbEndpoint: local().endpoint, ...options });
  running.push(emulator);
  return emulator;
}

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

function streamsClient(endpoint: string): DynamoDBStreamsClient {
  const client = new DynamoDBStreamsClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  clients.push(client);
  return client;
}

function dynamoClient(endpoint: string): DynamoDBClient {
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  clients.push(client);
  return client;
}

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: AWS JSON, compared by shape
  json: any;
}

/** One AWS JSON 1.0 call without the SDK, signed the way DynamoDB Local reads it (key id only). */
function rawCall(endpoint: string, target: string, body: unknown): Promise<RawAnswer> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      endpoint,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': target,
          authorization:
            'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, ' +
            'SignedHeaders=host, Signature=0',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function md5Of(text: string): bigint {
  return BigInt(`0x${createHash('md5').update(text, 'utf8').digest('hex')}`);
}

/** Writes each item with BatchWriteItem (25 a call). */
async function putAll(client: DynamoDBClient, table: string, items: Record<string, AttributeValue>[]) {
  for (let i = 0; i < items.length; i += 25) {
    const chunk = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [table]: chunk } }));
    expect(Object.keys(out.UnprocessedItems ?? {})).toEqual([]);
  }
}

async function describeAll(
  client: DynamoDBStreamsClient,
  streamArn: string,
  limit?: number,
): Promise<Shard[]> {
  const shards: Shard[] = [];
  let exclusiveStart: string | undefined;
  do {
    const out = await client.send(
      new DescribeStreamCommand({
        StreamArn: streamArn,
        Limit: limit,
        ExclusiveStartShardId: exclusiveStart,
      }),
    );
    shards.push(...(out.StreamDescription?.Shards ?? []));
    exclusiveStart = out.StreamDescription?.LastEvaluatedShardId;
  } while (exclusiveStart !== undefined);
  return shards;
}

/** Parents before children (roots first), each level in shard id order. */
function lineageOrder(shards: Shard[]): Shard[] {
  const ids = new Set(shards.map((s) => s.ShardId));
  const ordered: Shard[] = [];
  const done = new Set<string>();
  while (ordered.length < shards.length) {
    const before = ordered.length;
    for (const shard of shards) {
      if (done.has(shard.ShardId!)) continue;
      const parent = shard.ParentShardId;
      if (parent === undefined || !ids.has(parent) || done.has(parent)) {
        ordered.push(shard);
        done.add(shard.ShardId!);
      }
    }
    if (ordered.length === before) throw new Error('shard lineage has a cycle');
  }
  return ordered;
}

interface ReadRecord {
  shardId: string;
  record: SdkRecord;
}

/** Reads every shard from TRIM_HORIZON in lineage order: closed ones to SHARD_END, open ones to an empty page. */
async function readStream(client: DynamoDBStreamsClient, streamArn: string): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  for (const shard of lineageOrder(await describeAll(client, streamArn))) {
    const closed = shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shard.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    for (let pages = 0; iterator !== undefined; pages++) {
      if (pages > 1000) throw new Error(`shard ${shard.ShardId} never ended`);
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
      for (const record of page.Records ?? []) out.push({ shardId: shard.ShardId!, record });
      iterator = page.NextShardIterator;
      if (!closed && (page.Records ?? []).length === 0) break;
    }
  }
  return out;
}

async function errorOf(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await promise;
  } catch (error) {
    const e = error as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to fail');
}

function appendRecord(pk: string, v: number): AppendRecord {
  const keys = { pk: { S: pk }, sk: { N: '0' } };
  return { eventName: v === 1 ? 'INSERT' : 'MODIFY', keys, newImage: { ...keys, v: { N: String(v) } } };
}

describe('streams emulator', () => {
  it('pages DescribeStream over 150 shards and lists a split shard’s children with ShardFilter', async () => {
    const table = await newTable('paging');
    const emulator = await startEmulator({
      tableName: table,
      shards: 150,
      pump: false,
      describeStreamLimitPerSecond: 1000,
    });
    const client = streamsClient(emulator.endpoint);

    const first = await client.send(new DescribeStreamCommand({ StreamArn: emulator.streamArn }));
    const firstShards = first.StreamDescription?.Shards ?? [];
    expect(firstShards).toHaveLength(100);
    expect(first.StreamDescription?.LastEvaluatedShardId).toBe(firstShards[99]?.ShardId);
    expect(first.StreamDescription?.StreamStatus).toBe('ENABLED');
    const second = await client.send(
      new DescribeStreamCommand({
        StreamArn: emulator.streamArn,
        ExclusiveStartShardId: first.StreamDescription?.LastEvaluatedShardId,
      }),
    );
    expect(second.StreamDescription?.Shards).toHaveLength(50);
    expect(second.StreamDescription?.LastEvaluatedShardId).toBeUndefined();

    const ids = [...firstShards, ...(second.StreamDescription?.Shards ?? [])].map((s) => s.ShardId!);
    expect(ids).toEqual(emulator.shards().map((s) => s.shardId));
    expect(new Set(ids).size).toBe(150);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(/^shardId-\d{20}-[0-9a-f]{8}$/);
    for (const shard of firstShards) {
      expect(shard.SequenceNumberRange).toEqual({ StartingSequenceNumber: '999999999999999990000' });
      expect(shard.ParentShardId).toBeUndefined();
    }
    // The initial shards split the 128-bit hash space evenly and without a gap.
    const ranges = emulator.shards().map((s) => s.hashKeyRange);
    expect(ranges[0]?.start).toBe(0n);
    expect(ranges.at(-1)?.end).toBe((1n << 128n) - 1n);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]?.start).toBe(ranges[i - 1]!.end + 1n);

    const small = await describeAll(client, emulator.streamArn, 7);
    expect(small.map((s) => s.ShardId)).toEqual(ids);

    const parent = ids[3]!;
    const children = emulator.split(parent);
    const filtered = await client.send(
      new DescribeStreamCommand({
        StreamArn: emulator.streamArn,
        ShardFilter: { Type: 'CHILD_SHARDS', ShardId: parent },
      }),
    );
    expect(filtered.StreamDescription?.Shards?.map((s) => s.ShardId)).toEqual(children);
    for (const child of filtered.StreamDescription?.Shards ?? []) expect(child.ParentShardId).toBe(parent);
    const none = await client.send(
      new DescribeStreamCommand({
        StreamArn: emulator.streamArn,
        ShardFilter: { Type: 'CHILD_SHARDS', ShardId: ids[4] },
      }),
    );
    expect(none.StreamDescription?.Shards).toEqual([]);

    const after = await describeAll(client, emulator.streamArn);
    expect(after).toHaveLength(152);
    // An empty shard closes with EndingSequenceNumber = StartingSequenceNumber.
    expect(after.find((s) => s.ShardId === parent)?.SequenceNumberRange).toEqual({
      StartingSequenceNumber: '999999999999999990000',
      EndingSequenceNumber: '999999999999999990000',
    });
    const [left, right] = emulator.shards().filter((s) => s.parentShardId === parent);
    const parentRange = ranges[3]!;
    expect(left?.hashKeyRange.start).toBe(parentRange.start);
    expect(right?.hashKeyRange.end).toBe(parentRange.end);
    expect(right?.hashKeyRange.start).toBe(left!.hashKeyRange.end + 1n);

    expect(
      await errorOf(client.send(new DescribeStreamCommand({ StreamArn: emulator.streamArn, Limit: 101 }))),
    ).toEqual({ name: 'ValidationException', status: 400 });
    expect(
      await errorOf(client.send(new DescribeStreamCommand({ StreamArn: `${emulator.streamArn}x` }))),
    ).toEqual({ name: 'ResourceNotFoundException', status: 400 });
  });

  it('places DynamoDB Local writes by key hash with rising sequence numbers, keeps per-key order across splits, and reads back exactly once', async () => {
    const table = await newTable('placement');
    const emulator = await startEmulator({
      tableName: table,
      shards: 4,
      seed: 3,
      firstSequenceNumber: 999999999999999999950n,
    });
    const startedSeconds = Math.floor(Date.now() / 1000);
    const client = streamsClient(emulator.endpoint);
    const writer = local().client;
    const pks = Array.from({ length: 24 }, (_, i) => `key-${String(i).padStart(2, '0')}`);
    const round = (v: number) =>
      putAll(
        writer,
        table,
        pks.map((pk) => ({ pk: { S: pk }, sk: { N: '0' }, v: { N: String(v) } })),
      );

    await round(1);
    await round(2);
    await emulator.waitForPump();
    expect(emulator.records()).toHaveLength(48);
    const initial = emulator.shards().map((s) => s.shardId);
    const [child] = emulator.split(initial[1]);
    emulator.split(initial[2]);
    await round(3);
    await emulator.waitForPump();
    emulator.rollover(child);
    await round(4);
    await emulator.waitForPump();

    const records = emulator.records();
    expect(records).toHaveLength(96);
    expect(emulator.counts.splits).toBe(3);
    // One global counter: strictly rising, and past 10^21 the numbers grow to 22 digits.
    for (let i = 1; i < records.length; i++) {
      expect(BigInt(records[i]!.sequenceNumber)).toBeGreaterThan(BigInt(records[i - 1]!.sequenceNumber));
    }
    expect(records[0]?.sequenceNumber).toBe('999999999999999999950');
    expect(records.filter((r) => r.sequenceNumber.length === 21)).toHaveLength(50);
    expect(records.filter((r) => r.sequenceNumber.length === 22)).toHaveLength(46);

    const shards = new Map(emulator.shards().map((s) => [s.shardId, s]));
    for (const record of records) {
      const shard = shards.get(record.shardId)!;
      const hash = md5Of(record.keys['pk']?.['S'] as string);
      expect(hash >= shard.hashKeyRange.start && hash <= shard.hashKeyRange.end).toBe(true);
      const seconds = record.approximateCreationDateTime.getTime() / 1000;
      expect(Number.isInteger(seconds)).toBe(true);
      expect(seconds).toBeGreaterThanOrEqual(startedSeconds);
    }
    // Per key: each record sits in the previous one's shard or a descendant of it, at a larger number.
    const isAncestor = (ancestor: string, shardId: string): boolean => {
      for (let s = shards.get(shardId); s !== undefined; s = shards.get(s.parentShardId ?? '')) {
        if (s.shardId === ancestor) return true;
      }
      return false;
    };
    for (const pk of pks) {
      const ofKey = records.filter((r) => r.keys['pk']?.['S'] === pk);
      expect(ofKey).toHaveLength(4);
      for (let i = 1; i < ofKey.length; i++)
        expect(isAncestor(ofKey[i - 1]!.shardId, ofKey[i]!.shardId)).toBe(true);
    }
    // The split parents are closed at their last record; the children start above it.
    for (const shard of shards.values()) {
      if (shard.open) continue;
      const last = records.filter((r) => r.shardId === shard.shardId).at(-1);
      expect(shard.endingSequenceNumber).toBe(last?.sequenceNumber ?? shard.startingSequenceNumber);
      for (const child of [...shards.values()].filter((s) => s.parentShardId === shard.shardId)) {
        expect(BigInt(child.startingSequenceNumber)).toBeGreaterThan(BigInt(shard.endingSequenceNumber!));
      }
    }

    const read = await readStream(client, emulator.streamArn);
    expect(read.map((r) => r.record.eventID).sort()).toEqual(records.map((r) => r.eventId).sort());
    const byEvent = new Map(records.map((r) => [r.eventId, r]));
    for (const { shardId, record } of read) {
      expect(byEvent.get(record.eventID!)?.shardId).toBe(shardId);
      expect(record.dynamodb?.SequenceNumber).toBe(byEvent.get(record.eventID!)?.sequenceNumber);
    }
    for (const pk of pks) {
      const versions = read
        .filter((r) => r.record.dynamodb?.Keys?.['pk']?.S === pk)
        .map((r) => r.record.dynamodb?.NewImage?.['v']?.N);
      expect(versions).toEqual(['1', '2', '3', '4']);
    }

    // Every record of DynamoDB Local's own (single-shard) stream was placed, none twice.
    const localTable = await writer.send(new DescribeTableCommand({ TableName: table }));
    const localStream = streamsClient(local().endpoint);
    const localRead = await readStream(localStream, localTable.Table!.LatestStreamArn!);
    expect(localRead.map((r) => r.record.eventID).sort()).toEqual(records.map((r) => r.eventId).sort());
  });

  it('splits on a schedule, and a lineage-ordered read still gets every appended record once', async () => {
    const table = await newTable('scheduled');
    const emulator = await startEmulator({
      tableName: table,
      shards: 2,
      pump: false,
      splitEveryMs: 40,
      splitsPerTick: 2,
    });
    const client = streamsClient(emulator.endpoint);
    for (let v = 1; v <= 6; v++) {
      emulator.append(Array.from({ length: 20 }, (_, i) => appendRecord(`k${i}`, v)));
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    expect(emulator.counts.splits).toBeGreaterThanOrEqual(4);
    const shards = emulator.shards();
    expect(shards.filter((s) => s.open)).toHaveLength(2 + emulator.counts.splits);
    const read = await readStream(client, emulator.streamArn);
    expect(read).toHaveLength(120);
    expect(new Set(read.map((r) => r.record.eventID)).size).toBe(120);
    for (let i = 0; i < 20; i++) {
      const versions = read
        .filter((r) => r.record.dynamodb?.Keys?.['pk']?.S === `k${i}`)
        .map((r) => r.record.dynamodb?.NewImage?.['v']?.N);
      expect(versions).toEqual(['1', '2', '3', '4', '5', '6']);
    }
  });

  it('trims past retention (TrimmedDataAccessException, TRIM_HORIZON skips), drops gone shards, and expires iterators', async () => {
    const table = await newTable('retention');
    const t0 = Date.parse('2030-01-01T00:00:00.000Z');
    let clock = t0;
    const emulator = await startEmulator({
      tableName: table,
      shards: 1,
      pump: false,
      retentionMs: 60_000,
      now: () => clock,
    });
    const client = streamsClient(emulator.endpoint);
    const arn = emulator.streamArn;
    const shardId = emulator.shards()[0]!.shardId;
    const startSeq = emulator.shards()[0]!.startingSequenceNumber;
    const iteratorOf = async (
      type: 'TRIM_HORIZON' | 'LATEST' | 'AT_SEQUENCE_NUMBER' | 'AFTER_SEQUENCE_NUMBER',
      seq?: string,
      shard = shardId,
    ) =>
      (
        await client.send(
          new GetShardIteratorCommand({
            StreamArn: arn,
            ShardId: shard,
            ShardIteratorType: type,
            SequenceNumber: seq,
          }),
        )
      ).ShardIterator!;

    const old = emulator.append([appendRecord('a', 1), appendRecord('b', 1), appendRecord('c', 1)]);
    clock = t0 + 30_000;
    const kept = emulator.append([appendRecord('a', 2), appendRecord('b', 2)]);
    const early = await iteratorOf('TRIM_HORIZON');

    clock = t0 + 61_000; // the first three are now older than 60 s
    expect(emulator.records().map((r) => r.trimmed)).toEqual([true, true, true, false, false]);
    expect(await errorOf(client.send(new GetRecordsCommand({ ShardIterator: early })))).toEqual({
      name: 'TrimmedDataAccessException',
      status: 400,
    });
    expect(await errorOf(iteratorOf('AT_SEQUENCE_NUMBER', old[1]!.sequenceNumber))).toEqual({
      name: 'TrimmedDataAccessException',
      status: 400,
    });
    expect(await errorOf(iteratorOf('AT_SEQUENCE_NUMBER', startSeq))).toEqual({
      name: 'TrimmedDataAccessException',
      status: 400,
    });
    expect(emulator.counts.trimmedErrors).toBe(3);
    const horizon = await client.send(
      new GetRecordsCommand({ ShardIterator: await iteratorOf('TRIM_HORIZON') }),
    );
    expect(horizon.Records?.map((r) => r.eventID)).toEqual(kept.map((r) => r.eventId));
    const afterTrimmed = await client.send(
      new GetRecordsCommand({
        ShardIterator: await iteratorOf('AFTER_SEQUENCE_NUMBER', old[2]!.sequenceNumber),
      }),
    );
    expect(afterTrimmed.Records?.map((r) => r.eventID)).toEqual(kept.map((r) => r.eventId));
    expect(horizon.Records?.[0]?.dynamodb?.ApproximateCreationDateTime?.getTime()).toBe(t0 + 30_000);

    // Close the shard; once its records are trimmed and it closed over 60 s ago, it is gone.
    const child = emulator.rollover(shardId);
    clock = t0 + 100_000;
    const late = emulator.append([appendRecord('a', 3)]);
    expect(late[0]?.shardId).toBe(child);
    clock = t0 + 125_000;
    const listed = await describeAll(client, arn);
    expect(listed.map((s) => s.ShardId)).toEqual([child]);
    expect(listed[0]?.ParentShardId).toBe(shardId);
    expect(emulator.shards().find((s) => s.shardId === shardId)?.listed).toBe(false);
    expect(await errorOf(iteratorOf('TRIM_HORIZON'))).toEqual({
      name: 'ResourceNotFoundException',
      status: 400,
    });

    // Iterators live 15 minutes.
    const fresh = await iteratorOf('TRIM_HORIZON', undefined, child);
    clock += 15 * 60 * 1000 + 1;
    expect(await errorOf(client.send(new GetRecordsCommand({ ShardIterator: fresh })))).toEqual({
      name: 'ExpiredIteratorException',
      status: 400,
    });
    expect(emulator.counts.expiredErrors).toBe(1);
  });

  it('injects throttling and 500s at the set rates, limits DescribeStream to 10/s, and never faults forwarded calls', async () => {
    const table = await newTable('faults');
    const emulator = await startEmulator({ tableName: table, shards: 2, pump: false, seed: 7 });
    const client = streamsClient(emulator.endpoint);
    const shardId = emulator.shards()[0]!.shardId;
    const getIterator = () =>
      client.send(
        new GetShardIteratorCommand({
          StreamArn: emulator.streamArn,
          ShardId: shardId,
          ShardIteratorType: 'LATEST',
        }),
      );
    const tally = async (calls: number) => {
      const names = new Map<string, number>();
      for (let i = 0; i < calls; i++) {
        const name = await getIterator().then(
          () => 'ok',
          (e: { name: string; $metadata?: { httpStatusCode?: number } }) =>
            `${e.name}/${e.$metadata?.httpStatusCode}`,
        );
        names.set(name, (names.get(name) ?? 0) + 1);
      }
      return names;
    };

    emulator.setFaults({ throttleRate: 0.3 });
    const throttled = await tally(200);
    expect(throttled.get('LimitExceededException/400')).toBe(emulator.counts.throttled);
    expect(emulator.counts.throttled).toBeGreaterThan(30);
    expect(emulator.counts.throttled).toBeLessThan(90);
    expect(throttled.get('ok')).toBe(200 - emulator.counts.throttled);

    emulator.setFaults({ throttleRate: 0, errorRate: 0.25 });
    const failed = await tally(200);
    expect(failed.get('InternalServerError/500')).toBe(emulator.counts.errors);
    expect(emulator.counts.errors).toBeGreaterThan(20);
    expect(emulator.counts.errors).toBeLessThan(80);

    // The DynamoDB API goes to DynamoDB Local untouched, whatever the fault rates.
    emulator.setFaults({ throttleRate: 1, errorRate: 1 });
    const dynamo = dynamoClient(emulator.endpoint);
    const item = { pk: { S: 'x' }, sk: { N: '1' }, v: { N: '1' } };
    await dynamo.send(new PutItemCommand({ TableName: table, Item: item }));
    expect(
      (await dynamo.send(new GetItemCommand({ TableName: table, Key: { pk: item.pk, sk: item.sk } }))).Item,
    ).toEqual(item);
    expect(await errorOf(getIterator())).toEqual({ name: 'InternalServerError', status: 500 });

    emulator.setFaults({ throttleRate: 0, errorRate: 0 });
    const burst = await Promise.allSettled(
      Array.from({ length: 15 }, () =>
        client.send(new DescribeStreamCommand({ StreamArn: emulator.streamArn })),
      ),
    );
    const rejected = burst.filter((r) => r.status === 'rejected');
    expect(burst.filter((r) => r.status === 'fulfilled').length).toBeLessThanOrEqual(10);
    expect(rejected.length).toBeGreaterThanOrEqual(5);
    for (const r of rejected) expect((r.reason as Error).name).toBe('LimitExceededException');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await client.send(new DescribeStreamCommand({ StreamArn: emulator.streamArn }));
    expect(emulator.counts.describeStream).toBe(16);
  });

  it('answers DescribeTable with the emulated stream, forwards everything else, and disables/re-enables the stream', async () => {
    const table = await newTable('forward');
    const emulator = await startEmulator({ tableName: table, shards: 3 });
    const dynamo = dynamoClient(emulator.endpoint);
    const streams = streamsClient(emulator.endpoint);
    const localTable = await local().client.send(new DescribeTableCommand({ TableName: table }));

    const described = await dynamo.send(new DescribeTableCommand({ TableName: table }));
    expect(described.Table?.LatestStreamArn).toBe(emulator.streamArn);
    expect(described.Table?.LatestStreamArn).not.toBe(localTable.Table?.LatestStreamArn);
    expect(emulator.streamArn.endsWith(`/stream/${described.Table?.LatestStreamLabel}`)).toBe(true);
    expect(described.Table?.StreamSpecification).toEqual({
      StreamEnabled: true,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    });
    expect(described.Table?.KeySchema).toEqual(localTable.Table?.KeySchema);
    const raw = await rawCall(emulator.endpoint, 'DynamoDB_20120810.DescribeTable', { TableName: table });
    expect(raw.headers['x-amz-crc32']).toBe(String(zlib.crc32(Buffer.from(raw.text)) >>> 0));
    expect(raw.headers['content-length']).toBe(String(Buffer.byteLength(raw.text)));

    // A lease table: created, written and read through the emulator, stored in DynamoDB Local.
    const leases = `${table}-leases`;
    await dynamo.send(
      new CreateTableCommand({
        TableName: leases,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'leaseKey', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'leaseKey', AttributeType: 'S' }],
      }),
    );
    const lease = { leaseKey: { S: 'shard-1' }, owner: { S: 'worker-a' }, epoch: { N: '3' } };
    await dynamo.send(new PutItemCommand({ TableName: leases, Item: lease }));
    const key = { leaseKey: lease.leaseKey };
    expect((await dynamo.send(new GetItemCommand({ TableName: leases, Key: key }))).Item).toEqual(lease);
    expect((await local().client.send(new GetItemCommand({ TableName: leases, Key: key }))).Item).toEqual(
      lease,
    );
    expect(
      (await dynamo.send(new DescribeTableCommand({ TableName: leases }))).Table?.LatestStreamArn,
    ).toBeUndefined();
    expect(emulator.counts.forwarded).toBe(6);

    // Disable: writes are not streamed; LatestStreamArn stays, StreamSpecification goes.
    const put = (pk: string) =>
      dynamo.send(new PutItemCommand({ TableName: table, Item: { pk: { S: pk }, sk: { N: '0' } } }));
    await put('before');
    await emulator.waitForPump();
    const oldArn = emulator.streamArn;
    expect(emulator.records().map((r) => [r.keys['pk']?.['S'], r.streamArn])).toEqual([['before', oldArn]]);
    emulator.disableStream();
    await put('while-disabled');
    await emulator.waitForPump();
    expect(emulator.records()).toHaveLength(1);
    expect(emulator.counts.dropped).toBe(1);
    const disabled = await dynamo.send(new DescribeTableCommand({ TableName: table }));
    expect(disabled.Table?.LatestStreamArn).toBe(oldArn);
    expect(disabled.Table?.StreamSpecification).toBeUndefined();
    const oldStream = await streams.send(new DescribeStreamCommand({ StreamArn: oldArn }));
    expect(oldStream.StreamDescription?.StreamStatus).toBe('DISABLED');
    for (const shard of oldStream.StreamDescription?.Shards ?? []) {
      expect(shard.SequenceNumberRange?.EndingSequenceNumber).toBeDefined();
    }

    // Re-enable: a new stream with fresh shards; the old one stays readable.
    const newArn = emulator.enableStream();
    expect(newArn).not.toBe(oldArn);
    await put('after');
    await emulator.waitForPump();
    expect(emulator.records().map((r) => [r.keys['pk']?.['S'], r.streamArn])).toEqual([
      ['before', oldArn],
      ['after', newArn],
    ]);
    expect(emulator.shards(newArn).filter((s) => s.open)).toHaveLength(3);
    const enabled = await dynamo.send(new DescribeTableCommand({ TableName: table }));
    expect(enabled.Table?.LatestStreamArn).toBe(newArn);
    expect(enabled.Table?.StreamSpecification?.StreamEnabled).toBe(true);
    const listed = await streams.send(new ListStreamsCommand({ TableName: table }));
    expect(listed.Streams?.map((s) => s.StreamArn)).toEqual([newArn, oldArn]);
    const oldRead = await readStream(streams, oldArn);
    expect(oldRead.map((r) => r.record.dynamodb?.Keys?.['pk']?.S)).toEqual(['before']);
    const newRead = await readStream(streams, newArn);
    expect(newRead.map((r) => r.record.dynamodb?.Keys?.['pk']?.S)).toEqual(['after']);
  });

  it('serves pages the repo’s raw GetRecords client checks (x-amz-crc32) and decodes, within the byte cap', async () => {
    const table = await newTable('raw');
    const emulator = await startEmulator({ tableName: table, shards: 2, maxGetRecordsBytes: 4096 });
    const streams = streamsClient(emulator.endpoint);
    const raw = new RawGetRecordsClient(streams);
    clients.push(raw);
    await putAll(
      local().client,
      table,
      Array.from({ length: 30 }, (_, i) => ({
        pk: { S: `raw-${i} ünïcödé 😀` },
        sk: { N: String(i * 7 - 100) },
        big: { N: '12345678901234567890123456789012345678' },
        bin: { B: Uint8Array.of(i, 0, 255) },
        nested: { M: { list: { L: [{ S: '' }, { BOOL: true }, { NULL: true }] } } },
        payload: { S: 'x'.repeat(900) },
      })),
    );
    await emulator.waitForPump();

    const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
    const pageSizes: number[] = [];
    for (const shard of emulator.shards()) {
      const iterator = await streams.send(
        new GetShardIteratorCommand({
          StreamArn: emulator.streamArn,
          ShardId: shard.shardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      );
      let next = iterator.ShardIterator;
      while (next !== undefined) {
        const response = await raw.getRecords({ ShardIterator: next, Limit: 1000 });
        expect(response.requestId).toBeDefined();
        expect(response.serverTime).toBeInstanceOf(Date);
        const page = decodeGetRecordsResponse(response.body, shard.shardId, buffer);
        if (page.records === 0) break;
        pageSizes.push(page.records);
        next = page.nextShardIterator;
      }
    }
    expect(buffer.rowCount).toBe(30);
    // ~1 KB records under a 4 KB cap: never more than 4 a page, though Limit is 1000.
    expect(Math.max(...pageSizes)).toBeLessThanOrEqual(4);

    const shardId = emulator.shards()[0]!.shardId;
    const iterator = (
      await streams.send(
        new GetShardIteratorCommand({
          StreamArn: emulator.streamArn,
          ShardId: shardId,
          ShardIteratorType: 'LATEST',
        }),
      )
    ).ShardIterator!;
    emulator.setFaults({ throttleRate: 1 });
    const throttled = await raw.getRecords({ ShardIterator: iterator }).catch((e: unknown) => e);
    expect(throttled).toBeInstanceOf(StreamError);
    expect((throttled as StreamError).code).toBe('LimitExceededException');
    expect((throttled as StreamError).retriable).toBe(true);
    emulator.setFaults({ throttleRate: 0, errorRate: 1 });
    const failed = await raw.getRecords({ ShardIterator: iterator }).catch((e: unknown) => e);
    expect((failed as StreamError).code).toBe('InternalServerError');
    expect((failed as StreamError).retriable).toBe(true);
  });

  it('answers in the shapes DynamoDB Local gives the same calls', async () => {
    const table = await newTable('shapes');
    const emulator = await startEmulator({ tableName: table, shards: 2 });
    const item = (pk: string, v: number): Record<string, AttributeValue> => ({
      pk: { S: pk },
      sk: { N: '1' },
      v: { N: String(v) },
      text: { S: 'emoji 😀 control \u001f' },
    });
    await local().client.send(new PutItemCommand({ TableName: table, Item: item('shape', 1) }));
    await local().client.send(new PutItemCommand({ TableName: table, Item: item('shape', 2) }));
    await emulator.waitForPump();
    const localTable = await local().client.send(new DescribeTableCommand({ TableName: table }));
    const localArn = localTable.Table!.LatestStreamArn!;
    const sides = [
      { endpoint: local().endpoint, arn: localArn },
      { endpoint: emulator.endpoint, arn: emulator.streamArn },
    ];
    const call = (side: (typeof sides)[number], op: string, body: unknown) =>
      rawCall(side.endpoint, `DynamoDBStreams_20120810.${op}`, body);
    const keys = (o: object | undefined) => Object.keys(o ?? {}).sort();

    const answers = await Promise.all(
      sides.map(async (side) => {
        const description = await call(side, 'DescribeStream', { StreamArn: side.arn });
        // The emulator holds the records in whichever shard their key hashes to.
        const shardId = (description.json.StreamDescription.Shards as { ShardId: string }[]).find((s) =>
          side.endpoint === emulator.endpoint ? emulator.records()[0]?.shardId === s.ShardId : true,
        )!.ShardId;
        const iterator = await call(side, 'GetShardIterator', {
          StreamArn: side.arn,
          ShardId: shardId,
          ShardIteratorType: 'TRIM_HORIZON',
        });
        const records = await call(side, 'GetRecords', { ShardIterator: iterator.json.ShardIterator });
        return { description, iterator, records };
      }),
    );
    const [real, emulated] = answers as [(typeof answers)[number], (typeof answers)[number]];

    for (const answer of [
      real.description,
      real.iterator,
      real.records,
      emulated.description,
      emulated.iterator,
      emulated.records,
    ]) {
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe('application/x-amz-json-1.0');
      expect(answer.headers['x-amzn-requestid']).toBeDefined();
      expect(answer.headers['x-amz-crc32']).toBe(String(zlib.crc32(Buffer.from(answer.text)) >>> 0));
      expect(Number.isNaN(Date.parse(String(answer.headers.date)))).toBe(false);
    }
    expect(keys(emulated.description.json)).toEqual(keys(real.description.json));
    expect(keys(emulated.description.json.StreamDescription)).toEqual(
      keys(real.description.json.StreamDescription),
    );
    const {
      StreamArn: _a,
      StreamLabel: _l,
      CreationRequestDateTime: _c,
      Shards: _s,
      ...realRest
    } = real.description.json.StreamDescription;
    const {
      StreamArn: _b,
      StreamLabel: _m,
      CreationRequestDateTime: _d,
      Shards: _t,
      ...emulatedRest
    } = emulated.description.json.StreamDescription;
    expect(emulatedRest).toEqual(realRest);
    expect(keys(emulated.description.json.StreamDescription.Shards[0])).toEqual(
      keys(real.description.json.StreamDescription.Shards[0]),
    );
    expect(keys(emulated.iterator.json)).toEqual(keys(real.iterator.json));
    expect(keys(emulated.records.json)).toEqual(keys(real.records.json));
    const realRecords = real.records.json.Records as Record<string, Record<string, unknown>>[];
    const emulatedRecords = emulated.records.json.Records as Record<string, Record<string, unknown>>[];
    expect(emulatedRecords).toHaveLength(2);
    expect(emulatedRecords.map((r) => r['eventID'])).toEqual(realRecords.map((r) => r['eventID']));
    emulatedRecords.forEach((record, i) => {
      const twin = realRecords[i]!;
      expect(keys(record)).toEqual(keys(twin));
      expect(keys(record['dynamodb'])).toEqual(keys(twin['dynamodb']));
      for (const field of ['eventName', 'eventVersion', 'eventSource', 'awsRegion'])
        expect(record[field]).toEqual(twin[field]);
      for (const field of ['Keys', 'NewImage', 'OldImage', 'SizeBytes', 'StreamViewType']) {
        expect(record['dynamodb']?.[field]).toEqual(twin['dynamodb']?.[field]);
      }
    });
    // The images keep DynamoDB Local's exact text (its escapes included), not JSON.stringify's.
    expect(real.records.text).toContain('\\uD83D\\uDE00');
    expect(emulated.records.text.match(/\\uD83D\\uDE00|\\u001F/g)).toEqual(
      real.records.text.match(/\\uD83D\\uDE00|\\u001F/g),
    );

    // Errors: the same __type for the same mistakes.
    const errorTypes = async (side: (typeof sides)[number]) => {
      const shardId = (await call(side, 'DescribeStream', { StreamArn: side.arn })).json.StreamDescription
        .Shards[0].ShardId;
      const answers = [
        await call(side, 'GetRecords', { ShardIterator: 'not-an-iterator' }),
        await call(side, 'DescribeStream', { StreamArn: `${side.arn}0` }),
        await call(side, 'DescribeStream', { StreamArn: side.arn, Limit: 101 }),
        await call(side, 'GetShardIterator', {
          StreamArn: side.arn,
          ShardId: 'shardId-00000000000000000001-00000000',
          ShardIteratorType: 'TRIM_HORIZON',
        }),
        await call(side, 'GetShardIterator', {
          StreamArn: side.arn,
          ShardId: shardId,
          ShardIteratorType: 'AT_SEQUENCE_NUMBER',
          SequenceNumber: '1',
        }),
      ];
      return answers.map((a) => `${a.status} ${a.json.__type}`);
    };
    const realErrors = await errorTypes(sides[0]!);
    expect(realErrors[0]).toBe('400 com.amazon.coral.validate#ValidationException');
    expect(realErrors[1]).toBe('400 com.amazonaws.dynamodb.v20120810#ResourceNotFoundException');
    expect(await errorTypes(sides[1]!)).toEqual(realErrors);
  });
});
