import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ResourceNotFoundException,
  TrimmedDataAccessException,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { SHARD_END } from '../../../src/changelog/sequenceNumber.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { decodePage, type StreamGap } from '../../../src/ingest/shardReader.js';
import { type CheckpointEvent, StreamWorker } from '../../../src/ingest/streamWorker.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import { generateRecords, getRecordsResponse, type WireRecord } from '../../helpers/streamRecords.js';

/*
 * The changelog began with one shard, P. The fleet then fell more than 24 h behind: P split into C,
 * whose first records the stream trimmed before anyone read them, and another lineage's parent V
 * was trimmed away entirely, unread, leaving only its child D listed. The stream is scripted
 * (aws-sdk-client-mock) the way DynamoDB Streams answers: TRIM_HORIZON silently starts after the
 * trimmed records, AT_SEQUENCE_NUMBER at a trimmed record raises TrimmedDataAccessException, and a
 * trimmed-away shard is ResourceNotFound. The lease table is the real DynamoDB Local. Both losses
 * must reach the sink as gaps; nothing may be skipped silently.
 */
const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const P = 'shardId-00000001700000000000-parent00';
const C = 'shardId-00000001700000010000-child001';
const V = 'shardId-00000001700000005000-vanished';
const D = 'shardId-00000001700000020000-child002';
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

const local = useDynamoDbLocal();

describe('StreamWorker when the stream trimmed shards nobody read yet', () => {
  it('records a gap for a child trimmed at its start and for a vanished parent, then reads on', async () => {
    const all = generateRecords({ records: 180, seed: 5, keyCount: 12, startSequence: 10n ** 20n });
    const parent = all.slice(0, 60);
    const child = all.slice(60, 120);
    const trimmedOfChild = child.slice(0, 20);
    const orphan = all.slice(120);
    const seq = (r: WireRecord) => r.dynamodb.SequenceNumber;
    // What TRIM_HORIZON serves today: the child's trimmed records are gone.
    const served = new Map<string, WireRecord[]>([
      [P, parent],
      [C, child.slice(20)],
      [D, orphan],
    ]);

    const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
    const mock = mockClient(streams);
    const closed = (first: WireRecord, last: WireRecord) => ({
      StartingSequenceNumber: seq(first),
      EndingSequenceNumber: seq(last),
    });
    mock.on(DescribeStreamCommand).resolves({
      StreamDescription: {
        StreamArn: STREAM,
        StreamStatus: 'ENABLED',
        Shards: [
          { ShardId: P, SequenceNumberRange: closed(parent[0]!, parent.at(-1)!) },
          { ShardId: C, ParentShardId: P, SequenceNumberRange: closed(child[0]!, child.at(-1)!) },
          // V is not listed any more: only its child names it.
          { ShardId: D, ParentShardId: V, SequenceNumberRange: closed(orphan[0]!, orphan.at(-1)!) },
        ],
      },
    });
    const iteratorCalls: string[] = [];
    mock
      .on(GetShardIteratorCommand)
      .callsFake(async (input: { ShardId: string; ShardIteratorType: string; SequenceNumber?: string }) => {
        iteratorCalls.push(`${input.ShardId} ${input.ShardIteratorType}`);
        if (input.ShardId === V) {
          throw new ResourceNotFoundException({ message: 'Shard does not exist', $metadata: {} });
        }
        const records = served.get(input.ShardId)!;
        const at = input.SequenceNumber === undefined ? undefined : BigInt(input.SequenceNumber);
        if (
          input.ShardIteratorType === 'AT_SEQUENCE_NUMBER' &&
          at !== undefined &&
          BigInt(seq(records[0]!)) > at
        ) {
          throw new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} });
        }
        // Iterators are `<shard>#<index of the first record to serve>`.
        let index = 0;
        if (at !== undefined) {
          const after = input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER';
          index = records.findIndex((r) => (after ? BigInt(seq(r)) > at : BigInt(seq(r)) >= at));
          if (index < 0) index = records.length;
        }
        return { ShardIterator: `${input.ShardId}#${index}` };
      });
    mock.on(GetRecordsCommand).callsFake(async (input: { ShardIterator: string }) => {
      const [shard, n] = input.ShardIterator.split('#') as [string, string];
      const records = served.get(shard)!;
      const from = Number(n);
      const page = records.slice(from, from + 25);
      const next = from + 25 >= records.length ? undefined : `${shard}#${from + 25}`;
      return sdkDeserializeGetRecords(getRecordsResponse(page, next));
    });

    const leaseTable = `trim-leases-${Date.now()}`;
    await createLeaseTable(local().client, leaseTable);
    const store = (workerId: string) =>
      new LeaseStore({ client: local().client, tableName: leaseTable, streamArn: STREAM, workerId });
    // The changelog began when the stream listed P alone.
    await store('first-worker').ensureLeases([
      { shardId: P, parentShardIds: [], startingSequenceNumber: seq(parent[0]!) },
    ]);

    const delivered: { shardId: string; sequenceNumber: string }[] = [];
    const gaps: StreamGap[] = [];
    const checkpoints: CheckpointEvent[] = [];
    const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
    const leases = store('w1');
    const worker = new StreamWorker({
      workerId: 'w1',
      streamArn: STREAM,
      streams,
      leases,
      lease: { failoverMs: 1500 },
      renewIntervalMs: 100,
      idleMinMs: 10,
      idleMaxMs: 40,
      consume: async (page, shardId) => {
        const mark = buffer.rowCount;
        const summary = decodePage(page, buffer);
        for (let row = mark; row < buffer.rowCount; row++) {
          delivered.push({
            shardId,
            sequenceNumber: Buffer.from(buffer.sequenceNumber.value(row)).toString(),
          });
        }
        return summary;
      },
      onGap: (gap) => {
        gaps.push(gap);
      },
      onCheckpoint: (event) => checkpoints.push(event),
    });
    const controller = new AbortController();
    const running = worker.run(controller.signal);
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const listed = await leases.listLeases();
        if (listed.length === 4 && listed.every((l) => l.checkpoint === SHARD_END)) break;
        if (Date.now() > deadline) {
          throw new Error(`not every shard ended: ${listed.map((l) => `${l.shardId}=${l.checkpoint}`)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      controller.abort(new Error('test over'));
      await running;
      streams.destroy();
    }

    // Both losses reached the sink as gaps, each once, from the start of the shard.
    expect(gaps.map((g) => [g.shardId, g.afterSequenceNumber, g.reason]).sort()).toEqual(
      [
        [C, undefined, 'TrimmedDataAccessException'],
        [V, undefined, 'TrimmedDataAccessException'],
      ].sort(),
    );
    // The child was opened at its first sequence number, not at TRIM_HORIZON; P at TRIM_HORIZON.
    expect(iteratorCalls.filter((c) => c.startsWith(C))[0]).toBe(`${C} AT_SEQUENCE_NUMBER`);
    expect(iteratorCalls.filter((c) => c.startsWith(P))[0]).toBe(`${P} TRIM_HORIZON`);
    // Everything the stream still held was delivered; nothing trimmed was.
    const got = new Set(delivered.map((d) => d.sequenceNumber));
    expect(got).toEqual(new Set([...parent, ...child.slice(20), ...orphan].map(seq)));
    for (const r of trimmedOfChild) expect(got.has(seq(r))).toBe(false);
    // Lineage held: V's SHARD_END (with its gap) came before any of D's checkpoints.
    const vEnd = checkpoints.findIndex((c) => c.shardId === V && c.to === SHARD_END);
    expect(vEnd).toBeGreaterThanOrEqual(0);
    expect(checkpoints.findIndex((c) => c.shardId === D)).toBeGreaterThan(vEnd);
    expect(await leases.getLease(V)).toMatchObject({ startAt: 'VANISHED', parentShardIds: [] });
    expect(await leases.getLease(C)).toMatchObject({
      startAt: 'AT_SEQUENCE_NUMBER',
      startingSequenceNumber: seq(child[0]!),
    });
  }, 120_000);
});
