import { DescribeTableCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  type DescribeStreamCommandInput,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { SHARD_END } from '../../../src/changelog/sequenceNumber.js';
import type { Lease } from '../../../src/coordination/lease.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import { createLeaseTable, LEASE_PARTITION_KEY } from '../../../src/coordination/leaseTable.js';
import { decodePage } from '../../../src/ingest/shardReader.js';
import { isStreamDrained, TableWorker } from '../../../src/ingest/tableWorker.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import { generateRecords, getRecordsResponse, type WireRecord } from '../../helpers/streamRecords.js';

/*
 * A table whose stream was disabled and enabled again: S1 (DISABLED, one closed shard) holds the
 * first changes of keys K1..K6, S2 (ENABLED, the LatestStreamArn, one open shard) their later
 * changes. Streams and DescribeTable are scripted (aws-sdk-client-mock); the lease table is the
 * real DynamoDB Local. Nothing of S2 may be read before S1 is read to its committed SHARD_END.
 */
const TABLE = 'orders';
const S1 = `arn:aws:dynamodb:us-east-1:123456789012:table/${TABLE}/stream/2026-01-01T00:00:00.000`;
const S2 = `arn:aws:dynamodb:us-east-1:123456789012:table/${TABLE}/stream/2026-01-02T00:00:00.000`;
const SHARD1 = 'shardId-00000001700000000000-s1shard0';
const SHARD2 = 'shardId-00000001700086400000-s2shard0';
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const CLOSED = { StartingSequenceNumber: '1', EndingSequenceNumber: '99999999999999999999999' };

const local = useDynamoDbLocal();

/** DescribeTable answers from a separate, mocked client; `local().client` is the real lease table. */
function tableClient(latest: string, enabled: boolean): DynamoDBClient {
  const client = new DynamoDBClient({ region: 'us-east-1', credentials });
  mockClient(client)
    .on(DescribeTableCommand)
    .resolves({
      Table: {
        TableName: TABLE,
        LatestStreamArn: latest,
        StreamSpecification: { StreamEnabled: enabled, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      },
    });
  return client;
}

describe('TableWorker across stream disable / re-enable', () => {
  it('drains the old stream to SHARD_END before reading the new one, keeping per-item order', async () => {
    // Six keys; the first half of their history is in S1, the rest in S2.
    const all = generateRecords({ records: 120, seed: 21, keyCount: 6, startSequence: 10n ** 20n });
    const pages = new Map<string, WireRecord[][]>([
      [SHARD1, [all.slice(0, 30), all.slice(30, 60)]],
      [SHARD2, [all.slice(60, 90), all.slice(90)]],
    ]);
    const streamOf = (shardId: string) => (shardId === SHARD1 ? S1 : S2);

    const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
    const mock = mockClient(streams);
    mock.on(ListStreamsCommand).resolves({
      Streams: [
        { StreamArn: S2, TableName: TABLE, StreamLabel: '2026-01-02T00:00:00.000' },
        { StreamArn: S1, TableName: TABLE, StreamLabel: '2026-01-01T00:00:00.000' },
      ],
    });
    mock.on(DescribeStreamCommand).callsFake((input: DescribeStreamCommandInput) =>
      input.StreamArn === S1
        ? {
            StreamDescription: {
              StreamArn: S1,
              StreamStatus: 'DISABLED',
              Shards: [{ ShardId: SHARD1, SequenceNumberRange: CLOSED }],
            },
          }
        : {
            StreamDescription: {
              StreamArn: S2,
              StreamStatus: 'ENABLED',
              Shards: [{ ShardId: SHARD2, SequenceNumberRange: { StartingSequenceNumber: '2' } }],
            },
          },
    );
    mock
      .on(GetShardIteratorCommand)
      .callsFake((input: { ShardId: string }) => ({ ShardIterator: `${input.ShardId}#0` }));
    const deserialised = new Map<string, Awaited<ReturnType<typeof sdkDeserializeGetRecords>>>();
    mock.on(GetRecordsCommand).callsFake(async (input: { ShardIterator: string }) => {
      const [shard, n] = input.ShardIterator.split('#') as [string, string];
      const index = Number(n);
      const shardPages = pages.get(shard)!;
      // S1's shard is closed and ends after its pages; S2's is open and keeps answering empty pages.
      const next = shard === SHARD1 && index + 1 >= shardPages.length ? undefined : `${shard}#${index + 1}`;
      const key = `${shard}#${index}#${next}`;
      if (!deserialised.has(key)) {
        deserialised.set(
          key,
          await sdkDeserializeGetRecords(getRecordsResponse(shardPages[index] ?? [], next)),
        );
      }
      return deserialised.get(key)!;
    });

    const leaseTableName = `table-leases-${Date.now()}`;
    await createLeaseTable(local().client, leaseTableName);
    const describer = tableClient(S2, true);
    // One timeline of deliveries and checkpoints, across both workers.
    type Event =
      | { kind: 'delivered'; stream: string; key: string; sequenceNumber: string }
      | { kind: 'checkpoint'; shardId: string; to: string };
    const events: Event[] = [];
    const controllers: AbortController[] = [];
    const runs: Promise<void>[] = [];
    for (const workerId of ['w1', 'w2']) {
      const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
      const worker = new TableWorker({
        workerId,
        tableName: TABLE,
        dynamodb: describer,
        leaseClient: local().client,
        streams,
        leaseTableName,
        lease: { failoverMs: 1500 },
        renewIntervalMs: 200,
        idleMinMs: 10,
        idleMaxMs: 40,
        pollIntervalMs: 100,
        consume: async (page, shardId) => {
          const mark = buffer.rowCount;
          const summary = decodePage(page, buffer);
          for (let row = mark; row < buffer.rowCount; row++) {
            events.push({
              kind: 'delivered',
              stream: streamOf(shardId),
              key: Buffer.from(buffer.keys.value(row)).toString(),
              sequenceNumber: Buffer.from(buffer.sequenceNumber.value(row)).toString(),
            });
          }
          return summary;
        },
        onCheckpoint: (event) => events.push({ kind: 'checkpoint', shardId: event.shardId, to: event.to }),
      });
      const controller = new AbortController();
      controllers.push(controller);
      runs.push(worker.run(controller.signal));
    }

    const delivered = () => events.filter((e) => e.kind === 'delivered');
    try {
      // Wait for every record to be delivered and for the last one's checkpoint (which follows
      // its delivery) to land, so the lease table is checked at rest.
      const lastSequence = all.at(-1)!.dynamodb.SequenceNumber;
      const done = () =>
        new Set(delivered().map((d) => d.sequenceNumber)).size >= all.length &&
        events.some((e) => e.kind === 'checkpoint' && e.to === lastSequence);
      const deadline = Date.now() + 60_000;
      while (!done()) {
        if (Date.now() > deadline) {
          throw new Error(`only ${delivered().length} of ${all.length} records delivered and checkpointed`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      for (const c of controllers) c.abort(new Error('test over'));
      await Promise.all(runs);
    }

    // Every record of both streams arrived, each exactly where the scripted stream had it.
    const got = delivered();
    expect(new Set(got.map((d) => d.sequenceNumber)).size).toBe(all.length);
    const s1Sequences = new Set([...pages.get(SHARD1)!.flat()].map((r) => r.dynamodb.SequenceNumber));
    for (const d of got) expect(d.stream === S1).toBe(s1Sequences.has(d.sequenceNumber));

    // No S2 record before every S1 record was delivered and S1's shard lease reached SHARD_END.
    const firstS2 = events.findIndex((e) => e.kind === 'delivered' && e.stream === S2);
    const lastS1 = events.findLastIndex((e) => e.kind === 'delivered' && e.stream === S1);
    const s1End = events.findIndex(
      (e) => e.kind === 'checkpoint' && e.shardId === SHARD1 && e.to === SHARD_END,
    );
    expect(lastS1).toBeGreaterThanOrEqual(0);
    expect(s1End).toBeGreaterThan(lastS1);
    expect(firstS2).toBeGreaterThan(s1End);

    // Per item, changes arrive ordered by stream, then sequence number.
    const rank = (d: { stream: string; sequenceNumber: string }) =>
      [d.stream === S1 ? 0 : 1, BigInt(d.sequenceNumber)] as const;
    const byKey = new Map<string, (readonly [number, bigint])[]>();
    for (const d of got) byKey.set(d.key, [...(byKey.get(d.key) ?? []), rank(d)]);
    expect(byKey.size).toBe(6);
    for (const ranks of byKey.values()) {
      for (let i = 1; i < ranks.length; i++) {
        const [prevStream, prevSeq] = ranks[i - 1]!;
        const [stream, seq] = ranks[i]!;
        expect(stream > prevStream || (stream === prevStream && seq > prevSeq)).toBe(true);
      }
    }

    // Leases of the two streams live under their own partition keys.
    const scan = await local().client.send(
      new ScanCommand({ TableName: leaseTableName, ConsistentRead: true }),
    );
    const partitions = new Set((scan.Items ?? []).map((item) => item[LEASE_PARTITION_KEY]?.S));
    expect(partitions).toEqual(new Set([S1, S2]));
    const leasesOf = (streamArn: string) =>
      new LeaseStore({
        client: local().client,
        tableName: leaseTableName,
        streamArn,
        workerId: 'inspector',
      }).listLeases();
    const [s1Leases, s2Leases] = await Promise.all([leasesOf(S1), leasesOf(S2)]);
    expect(s1Leases.map((l) => [l.shardId, l.checkpoint])).toEqual([[SHARD1, SHARD_END]]);
    expect(s2Leases.map((l) => l.shardId)).toEqual([SHARD2]);
    expect(s2Leases[0]!.checkpoint).toBe(all.at(-1)!.dynamodb.SequenceNumber);

    // The changelog began on S1 (its shard may start at TRIM_HORIZON); S2 continues it, so its
    // first shard starts at its first sequence number: records trimmed unread would be a gap.
    const startOf = (streamArn: string) =>
      new LeaseStore({
        client: local().client,
        tableName: leaseTableName,
        streamArn,
        workerId: 'inspector',
      }).changelogStart();
    const [s1Start, s2Start] = await Promise.all([startOf(S1), startOf(S2)]);
    expect(s1Start).toMatchObject({ shardIds: new Set([SHARD1]) });
    expect(s1Start?.continuesFrom).toBeUndefined();
    expect(s2Start).toMatchObject({ shardIds: new Set(), continuesFrom: S1 });
    expect(s1Leases[0]!.startAt).toBe('TRIM_HORIZON');
    expect(s2Leases[0]).toMatchObject({ startAt: 'AT_SEQUENCE_NUMBER', startingSequenceNumber: '2' });

    describer.destroy();
    streams.destroy();
  }, 120_000);
});

describe('isStreamDrained', () => {
  const endedLease: Lease = {
    shardId: SHARD2,
    leaseCounter: 3,
    leaseEpoch: 1,
    checkpoint: SHARD_END,
    parentShardIds: [],
  };
  const leases = { listLeases: async () => [endedLease] };

  function streamsClient(status: 'ENABLED' | 'DISABLED'): DynamoDBStreamsClient {
    const client = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
    mockClient(client)
      .on(DescribeStreamCommand)
      .resolves({
        StreamDescription: {
          StreamArn: S2,
          StreamStatus: status,
          Shards: [{ ShardId: SHARD2, SequenceNumberRange: CLOSED }],
        },
      });
    return client;
  }

  it('never treats the table’s current, enabled stream as drained', async () => {
    // Even with every listed shard closed and every lease at SHARD_END.
    const table = { tableName: TABLE, latestStreamArn: S2, streamEnabled: true };
    const streams = streamsClient('ENABLED');
    expect(await isStreamDrained({ streamArn: S2, table, streams, leases })).toBe(false);
    // Nor when DescribeStream disagrees (a lagging read says DISABLED): DescribeTable's word wins.
    expect(await isStreamDrained({ streamArn: S2, table, streams: streamsClient('DISABLED'), leases })).toBe(
      false,
    );
    // The same stream once disabled, everything closed and at SHARD_END, is drained.
    const disabled = { ...table, streamEnabled: false };
    expect(
      await isStreamDrained({ streamArn: S2, table: disabled, streams: streamsClient('DISABLED'), leases }),
    ).toBe(true);
  });

  it('is not drained while a shard lease is short of SHARD_END or a shard has no lease', async () => {
    const table = { tableName: TABLE, latestStreamArn: S1, streamEnabled: true };
    const streams = streamsClient('DISABLED');
    const reading = { listLeases: async () => [{ ...endedLease, checkpoint: '100' }] };
    expect(await isStreamDrained({ streamArn: S2, table, streams, leases: reading })).toBe(false);
    const none = { listLeases: async () => [] };
    expect(await isStreamDrained({ streamArn: S2, table, streams, leases: none })).toBe(false);
    expect(await isStreamDrained({ streamArn: S2, table, streams, leases })).toBe(true);
  });

  it('treats a stream gone past retention as drained, with a warning', async () => {
    const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
    mockClient(streams)
      .on(DescribeStreamCommand)
      .rejects(
        Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' }),
      );
    const warnings: Record<string, unknown>[] = [];
    const logger = {
      info() {},
      error() {},
      warn: (details: Record<string, unknown>) => warnings.push(details),
    };
    const table = { tableName: TABLE, latestStreamArn: S2, streamEnabled: true };
    expect(await isStreamDrained({ streamArn: S1, table, streams, leases, logger })).toBe(true);
    expect(warnings).toEqual([{ streamArn: S1 }]);
  });
});
