/**
 * A DynamoDB Streams client scripted with aws-sdk-client-mock: `shards` open shards, every one busy
 * forever. GetRecords always answers a full page (by default as many records as fit DynamoDB's
 * 1 MB response limit, at most 1,000) of realistic NEW_AND_OLD_IMAGES records, with sequence
 * numbers increasing by 1 per shard, ApproximateCreationDateTime = now, and a next iterator.
 *
 * Records are the AWS SDK's object shape (Dates, Uint8Array binaries), as GetRecordsCommand would
 * return them; no wire JSON is parsed. Images are drawn from a pool of 256 realistic items
 * (test/helpers/streamRecords.ts, ~900 bytes each) and shallow-copied per record with fresh
 * random values in their high-entropy attributes (version, 38-digit numbers, a 32-byte binary,
 * the metrics map), so segments compress about as real data does rather than 100x; generating
 * whole random items per record would cost the process more CPU than decoding them.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb-streams';
import {
  type _Record,
  DescribeStreamCommand,
  type DescribeStreamCommandInput,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  type GetRecordsCommandInput,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import {
  realisticItem,
  rng,
  type WireAttributeValue,
  type WireItem,
} from '../../test/helpers/streamRecords.js';

export const MOCK_STREAM_ARN =
  'arn:aws:dynamodb:us-east-1:123456789012:table/bench-busy/stream/2026-01-01T00:00:00.000';
export const MOCK_TABLE = 'bench-busy';

type SdkItem = Record<string, AttributeValue>;

function toSdk(value: WireAttributeValue): AttributeValue {
  if ('B' in value) return { B: Buffer.from(value.B, 'base64') };
  if ('BS' in value) return { BS: value.BS.map((b) => Buffer.from(b, 'base64')) };
  if ('M' in value) return { M: toSdkItem(value.M) };
  if ('L' in value) return { L: value.L.map(toSdk) };
  return value as AttributeValue;
}

function toSdkItem(item: WireItem): SdkItem {
  return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, toSdk(v)]));
}

export interface MockStreamOptions {
  shards: number;
  /** Records per GetRecords page; default: what fits in 1 MB of wire JSON, at most 1,000. */
  pageRecords?: number;
}

export interface MockStream {
  client: DynamoDBStreamsClient;
  pageRecords: number;
  /** Average wire JSON bytes of one record (what GetRecords would have sent). */
  wireBytesPerRecord: number;
  /** GetRecords pages served so far and their records. */
  served: { pages: number; records: number };
  restore(): void;
}

const shardId = (i: number) => `shardId-00000001767225600000-${String(i).padStart(8, '0')}`;
const seq = (n: number) => '1' + String(n).padStart(20, '0');

/** Fast, seeded digits and bytes for the varied attributes. */
class Entropy {
  private state = 0x9e3779b9;
  private readonly bytes = Buffer.alloc(1 << 20);
  private at = this.bytes.length;
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  digits(n: number): string {
    let s = String(1 + (this.next() % 9));
    while (s.length < n) s += String(this.next()).padStart(10, '0');
    return s.slice(0, n);
  }
  raw(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) {
      for (let i = 0; i < this.bytes.length; i += 4) this.bytes.writeUInt32LE(this.next(), i);
      this.at = 0;
    }
    // A copy: the SDK would hand each record its own bytes.
    const out = Buffer.from(this.bytes.subarray(this.at, this.at + n));
    this.at += n;
    return out;
  }
}

function varied(item: SdkItem, n: number, e: Entropy): SdkItem {
  return {
    ...item,
    version: { N: String(n) },
    balance: { N: `${e.digits(20)}.${e.digits(18)}` },
    bigCounter: { N: e.digits(38) },
    checksum: { B: e.raw(32) },
    metrics: {
      M: {
        views: { N: e.digits(7) },
        clicks: { N: e.digits(5) },
        revenue: { N: `${e.digits(9)}.${e.digits(4)}` },
        score: { N: `0.${e.digits(16)}` },
        rank: { N: e.digits(3) },
        latencyP50: { N: `${e.digits(3)}.${e.digits(3)}` },
        latencyP99: { N: `${e.digits(4)}.${e.digits(3)}` },
      },
    },
  };
}

export function mockBusyStream(options: MockStreamOptions): MockStream {
  const random = rng(42);
  const entropy = new Entropy();
  const pool = Array.from({ length: 256 }, (_, i) => {
    const pk = `tenant-${i % 7}#object-${i}`;
    const wire = realisticItem(random, pk, String(i % 13), 1 + i);
    return { pk, sk: String(i % 13), wire, sdk: toSdkItem(wire) };
  });
  // What GetRecords sends per record: envelope + keys + both images for a MODIFY (85% of records).
  const imageBytes = pool.reduce((s, p) => s + JSON.stringify(p.wire).length, 0) / pool.length;
  const wireBytesPerRecord = Math.round(350 + imageBytes * 1.85);
  const pageRecords = options.pageRecords ?? Math.min(1000, Math.floor(1_000_000 / wireBytesPerRecord));

  const shards: Shard[] = Array.from({ length: options.shards }, (_, i) => ({
    ShardId: shardId(i),
    SequenceNumberRange: { StartingSequenceNumber: seq(1) },
  }));
  const index = new Map(shards.map((s, i) => [s.ShardId!, i]));
  const served = { pages: 0, records: 0 };

  const client = new DynamoDBStreamsClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  });
  const mock = mockClient(client);
  mock.on(DescribeStreamCommand).callsFake((input: DescribeStreamCommandInput) => {
    const limit = Math.min(100, input.Limit ?? 100);
    const from = input.ExclusiveStartShardId === undefined ? 0 : index.get(input.ExclusiveStartShardId)! + 1;
    const page = shards.slice(from, from + limit);
    const more = from + limit < shards.length;
    return {
      StreamDescription: {
        StreamArn: MOCK_STREAM_ARN,
        StreamStatus: 'ENABLED',
        StreamViewType: 'NEW_AND_OLD_IMAGES',
        TableName: MOCK_TABLE,
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        Shards: page,
        ...(more && { LastEvaluatedShardId: page.at(-1)!.ShardId }),
      },
    };
  });
  mock.on(GetShardIteratorCommand).callsFake((input: GetShardIteratorCommandInput) => {
    const i = index.get(input.ShardId!)!;
    const n = input.SequenceNumber === undefined ? 0 : Number(input.SequenceNumber.slice(1));
    const after =
      input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER'
        ? n
        : input.ShardIteratorType === 'AT_SEQUENCE_NUMBER'
          ? n - 1
          : 0;
    return { ShardIterator: `${i}:${after}` };
  });
  mock.on(GetRecordsCommand).callsFake(async (input: GetRecordsCommandInput) => {
    // Answer on a later turn of the event loop, as a network response would: a mock resolved in
    // microtasks lets 100 readers loop without ever yielding to timers and I/O (commits, renewals).
    await new Promise((resolve) => setImmediate(resolve));
    // sinon (under aws-sdk-client-mock) keeps every call's arguments and return value, i.e.
    // every page served: forget them, or the benchmark measures the mock's memory.
    mock.resetHistory();
    const [i, after] = input.ShardIterator!.split(':').map(Number) as [number, number];
    const count = Math.min(pageRecords, input.Limit ?? 1000);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const records: _Record[] = new Array(count);
    for (let r = 0; r < count; r++) {
      const n = after + 1 + r;
      const item = pool[(entropy.next() + i) % pool.length]!;
      const before = pool[(entropy.next() + i) % pool.length]!;
      const kind = ((Math.imul(n, 2654435761) >>> 0) + i) % 100;
      const eventName = kind < 10 ? 'INSERT' : kind < 15 ? 'REMOVE' : 'MODIFY';
      records[r] = {
        eventID: `${i}-${n}`,
        eventName,
        eventVersion: '1.1',
        eventSource: 'aws:dynamodb',
        awsRegion: 'us-east-1',
        dynamodb: {
          ApproximateCreationDateTime: now,
          Keys: { pk: { S: item.pk }, sk: { N: item.sk } },
          ...(eventName !== 'REMOVE' && { NewImage: varied(item.sdk, n, entropy) }),
          ...(eventName !== 'INSERT' && { OldImage: varied(before.sdk, n - 1, entropy) }),
          SequenceNumber: seq(n),
          SizeBytes: 900,
          StreamViewType: 'NEW_AND_OLD_IMAGES',
        },
      };
    }
    served.pages++;
    served.records += count;
    return { Records: records, NextShardIterator: `${i}:${after + count}` };
  });
  return { client, pageRecords, wireBytesPerRecord, served, restore: () => mock.restore() };
}

/** The numeric part of a mock sequence number. */
export function mockSeqNumber(sequenceNumber: string): number {
  return Number(sequenceNumber.slice(1));
}
