import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { SHARD_END } from '../../../src/changelog/sequenceNumber.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { decodePage } from '../../../src/ingest/shardReader.js';
import { type CheckpointEvent, StreamWorker } from '../../../src/ingest/streamWorker.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import { generateRecords, getRecordsResponse, type WireRecord } from '../../helpers/streamRecords.js';

/*
 * A shard split while the fleet reads: parent P is closed with children C1 and C2. The stream is
 * scripted (aws-sdk-client-mock); the lease table is the real DynamoDB Local. Children must not be
 * read before P's SHARD_END is committed, and every item's changes must arrive in stream order
 * across parent and child.
 */
const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const P = 'shardId-00000001700000000000-parent00';
const C1 = 'shardId-00000001700000010000-child001';
const C2 = 'shardId-00000001700000010000-child002';
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

const local = useDynamoDbLocal();

/** The history: P holds each key's first changes, then the key's later changes go to one child. */
function history(): Map<string, WireRecord[][]> {
  const all = generateRecords({ records: 240, seed: 9, keyCount: 12, startSequence: 10n ** 20n });
  const parent = all.slice(0, 120);
  const later = all.slice(120);
  const child = (r: WireRecord) =>
    Number(/object-(\d+)/.exec(JSON.stringify(r.dynamodb.Keys))![1]) % 2 === 0 ? C1 : C2;
  const pages = (records: WireRecord[]) => [
    records.slice(0, records.length / 2),
    records.slice(records.length / 2),
  ];
  return new Map([
    [P, pages(parent)],
    [C1, pages(later.filter((r) => child(r) === C1))],
    [C2, pages(later.filter((r) => child(r) === C2))],
  ]);
}

/** A DynamoDBStreamsClient whose stream is scripted: P split into C1 and C2, serving `pages`. */
function mockSplitStream(pages: Map<string, WireRecord[][]>): DynamoDBStreamsClient {
  const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
  const mock = mockClient(streams);
  mock.on(DescribeStreamCommand).resolves({
    StreamDescription: {
      StreamArn: STREAM,
      StreamStatus: 'ENABLED',
      Shards: [
        {
          ShardId: P,
          SequenceNumberRange: {
            StartingSequenceNumber: '1',
            EndingSequenceNumber: '99999999999999999999999',
          },
        },
        { ShardId: C1, ParentShardId: P, SequenceNumberRange: { StartingSequenceNumber: '2' } },
        { ShardId: C2, ParentShardId: P, SequenceNumberRange: { StartingSequenceNumber: '3' } },
      ],
    },
  });
  // Iterators are `<shard>#<page>#<after>`: the page to serve, and the sequence number the
  // records must follow (AFTER_SEQUENCE_NUMBER), as GetShardIterator positions them.
  mock
    .on(GetShardIteratorCommand)
    .callsFake((input: { ShardId: string; ShardIteratorType: string; SequenceNumber?: string }) => {
      const after = input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER' ? input.SequenceNumber! : '';
      const shardPages = pages.get(input.ShardId)!;
      let page = 0;
      if (after !== '') {
        page = shardPages.findIndex((p) => p.some((r) => BigInt(r.dynamodb.SequenceNumber) > BigInt(after)));
        if (page < 0) page = shardPages.length;
      }
      return { ShardIterator: `${input.ShardId}#${page}#${after}` };
    });
  mock.on(GetRecordsCommand).callsFake(async (input: { ShardIterator: string }) => {
    const [shard, n, after] = input.ShardIterator.split('#') as [string, string, string];
    const index = Number(n);
    const shardPages = pages.get(shard)!;
    const records = (shardPages[index] ?? []).filter(
      (r) => after === '' || BigInt(r.dynamodb.SequenceNumber) > BigInt(after),
    );
    // The parent ends after its pages; open children keep answering empty pages.
    const next = shard === P && index + 1 >= shardPages.length ? undefined : `${shard}#${index + 1}#`;
    return sdkDeserializeGetRecords(getRecordsResponse(records, next));
  });

  return streams;
}

describe('StreamWorker across a shard split', () => {
  it('reads children only after the parent’s SHARD_END, keeping per-item order', async () => {
    const pages = history();
    const streams = mockSplitStream(pages);

    const leaseTable = `split-leases-${Date.now()}`;
    await createLeaseTable(local().client, leaseTable);
    const delivered: { shardId: string; key: string; sequenceNumber: string }[] = [];
    const checkpoints: CheckpointEvent[] = [];
    const controllers: AbortController[] = [];
    const runs: Promise<void>[] = [];
    for (const workerId of ['w1', 'w2']) {
      const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
      const worker = new StreamWorker({
        workerId,
        streamArn: STREAM,
        streams,
        leases: new LeaseStore({
          client: local().client,
          tableName: leaseTable,
          streamArn: STREAM,
          workerId,
        }),
        lease: { failoverMs: 1500 },
        renewIntervalMs: 200,
        idleMinMs: 10,
        idleMaxMs: 40,
        consume: async (page, shardId) => {
          const mark = buffer.rowCount;
          const summary = decodePage(page, buffer);
          for (let row = mark; row < buffer.rowCount; row++) {
            delivered.push({
              shardId,
              key: Buffer.from(buffer.keys.value(row)).toString(),
              sequenceNumber: Buffer.from(buffer.sequenceNumber.value(row)).toString(),
            });
          }
          return summary;
        },
        onCheckpoint: (event) => checkpoints.push(event),
      });
      const controller = new AbortController();
      controllers.push(controller);
      runs.push(worker.run(controller.signal));
    }

    try {
      const total = [...pages.values()].flat(2).length;
      const deadline = Date.now() + 60_000;
      while (new Set(delivered.map((d) => d.sequenceNumber)).size < total) {
        if (Date.now() > deadline) throw new Error(`only ${delivered.length} of ${total} records delivered`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      for (const c of controllers) c.abort(new Error('test over'));
      await Promise.all(runs);
    }

    // Fenced, so strict: no child checkpoint was committed before the parent's SHARD_END.
    const parentEnd = checkpoints.findIndex((c) => c.shardId === P && c.to === SHARD_END);
    expect(parentEnd).toBeGreaterThanOrEqual(0);
    const firstChildCheckpoint = checkpoints.findIndex((c) => c.shardId !== P);
    expect(firstChildCheckpoint).toBeGreaterThan(parentEnd);

    // Delivery is at-least-once at this stage: a page is repeated when its lease moves before its
    // checkpoint lands, or when a reader restarts from its checkpoint after an error; and a worker
    // slowed past the failover time may still hand over a page its new owner has read too, before
    // its checkpoint is refused (the next issue's fenced commit keeps such repeats out of the
    // changelog). So ordering is checked on each record's first delivery: every parent record was
    // first delivered before any child record, and per item the stream order holds.
    const first = new Map<string, (typeof delivered)[number]>();
    for (const d of delivered) if (!first.has(d.sequenceNumber)) first.set(d.sequenceNumber, d);
    const firstOrder = [...first.values()];
    const lastParentFirst = firstOrder.map((d) => d.shardId).lastIndexOf(P);
    const firstChild = firstOrder.findIndex((d) => d.shardId !== P);
    expect(firstChild).toBeGreaterThan(lastParentFirst);
    const byKey = new Map<string, bigint[]>();
    for (const d of firstOrder) byKey.set(d.key, [...(byKey.get(d.key) ?? []), BigInt(d.sequenceNumber)]);
    for (const seqs of byKey.values()) {
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]! > seqs[i - 1]!).toBe(true);
    }
    expect(new Set(delivered.map((d) => d.shardId))).toEqual(new Set([P, C1, C2]));
    streams.destroy();
  }, 120_000);

  it('starts the children as soon as the parent’s SHARD_END is committed, not on the next lease cycle', async () => {
    const pages = history();
    const streams = mockSplitStream(pages);
    const leaseTable = `split-prompt-${Date.now()}`;
    await createLeaseTable(local().client, leaseTable);
    const leases = new LeaseStore({
      client: local().client,
      tableName: leaseTable,
      streamArn: STREAM,
      workerId: 'w1',
    });
    // The lease items exist before the worker starts, so its first cycle takes P (the children
    // are not readable yet); the next cycle is a minute away, past the test's deadline.
    await leases.ensureLeases([
      { shardId: P, parentShardIds: [] },
      { shardId: C1, parentShardIds: [P] },
      { shardId: C2, parentShardIds: [P] },
    ]);
    const delivered = new Set<string>();
    const cycles: number[] = [];
    const worker = new StreamWorker({
      workerId: 'w1',
      streamArn: STREAM,
      streams,
      leases,
      lease: { failoverMs: 180_000 },
      renewIntervalMs: 60_000,
      idleMinMs: 10,
      idleMaxMs: 40,
      consume: async (page, shardId) => {
        const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
        const summary = decodePage(page, buffer);
        if (summary.records > 0) delivered.add(shardId);
        return summary;
      },
      observer: { leaseCycle: () => cycles.push(Date.now()) },
    });
    const controller = new AbortController();
    const running = worker.run(controller.signal);
    try {
      const deadline = Date.now() + 30_000;
      while (!(delivered.has(C1) && delivered.has(C2))) {
        if (Date.now() > deadline) throw new Error(`children not read; delivered from ${[...delivered]}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(cycles).toHaveLength(1);
      expect(worker.heldShards).toEqual([P, C1, C2].sort());
    } finally {
      controller.abort(new Error('test over'));
      await running;
      streams.destroy();
    }
  }, 60_000);
});
