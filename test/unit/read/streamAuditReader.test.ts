import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  LimitExceededException,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  canonicalKeys,
  createRatePacer,
  type ShardReadPlan,
  StreamAuditReader,
} from '../../../src/read/streamAuditReader.js';
import { expired, type FakeShard, FakeStream, virtualClock } from '../../helpers/auditStream.js';
import { generateRecords, type WireRecord } from '../../helpers/streamRecords.js';

const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const fastRetry = { baseDelayMs: 0, maxDelayMs: 0, retries: 3 };
const idOf = (i: number) => `shardId-00000001700000000000-0000000${i}`;
const seqs = (records: readonly { dynamodb: { SequenceNumber: string } }[]) =>
  records.map((r) => r.dynamodb.SequenceNumber);

function shardRecords(i: number, n: number): WireRecord[] {
  return generateRecords({ records: n, seed: 20 + i, startSequence: BigInt(i) * 10n ** 20n });
}

const streamsMock = mockClient(DynamoDBStreamsClient);
let streams: DynamoDBStreamsClient;

beforeEach(() => {
  streamsMock.reset();
  streams = new DynamoDBStreamsClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
});
afterEach(() => streams.destroy());

/** A plan that collects every record and never stops on its own. */
function collect(shardId: string, closed = true, extra: Partial<ShardReadPlan> = {}) {
  const got: AuditRecord[] = [];
  const plan: ShardReadPlan = {
    shardId,
    closed,
    onPage: (records) => {
      got.push(...records);
      return true;
    },
    ...extra,
  };
  return { plan, got };
}

describe('StreamAuditReader', () => {
  // Two settings, so that each limit is the one that binds in one of them.
  it.each([
    { binding: 'per-shard rate', shardRate: 5, totalRate: 100, concurrency: 2 },
    { binding: 'total rate', shardRate: 5, totalRate: 8, concurrency: 3 },
  ])(
    '(g) keeps one GetRecords per shard at a time, under the per-shard and total rates and the shard cap ($binding binds)',
    async ({ shardRate, totalRate, concurrency }) => {
      const clock = virtualClock();
      const shards: FakeShard[] = [1, 2, 3, 4, 5].map((i) => ({
        shardId: idOf(i),
        closed: true,
        records: shardRecords(i, 12),
      }));
      // Each call takes 50 ms of virtual time, so calls would overlap if the reader let them.
      const fake = new FakeStream({
        streamArn: ARN,
        shards,
        pageSize: 1,
        now: clock.now,
        latency: () => clock.sleep(50),
      });
      fake.install(streamsMock);
      const reader = new StreamAuditReader({
        streams,
        shardRate,
        totalRate,
        concurrency,
        retry: fastRetry,
        now: clock.now,
        sleep: clock.sleep,
      });
      const plans = shards.map((s) => collect(s.shardId));
      const outcomes = await reader.readShards(
        ARN,
        plans.map((p) => p.plan),
        new AbortController().signal,
      );

      // Everything read, once, in order: 12 calls a shard (one record each; the last has no next iterator).
      for (const [i, p] of plans.entries())
        expect(p.got.map((r) => r.sequenceNumber)).toEqual(seqs(shards[i]!.records));
      expect(outcomes.map((o) => [o.end, o.records, o.getRecordsCalls])).toEqual(
        shards.map(() => ['shard-end', 12, 12]),
      );
      expect(fake.calls).toHaveLength(60);
      expect(reader.getRecordsCalls).toBe(60);

      expect(fake.maxInFlightPerShard).toBe(1);
      expect(fake.maxInFlight).toBeLessThanOrEqual(concurrency);
      // Per shard: call starts at least 1/shardRate apart.
      for (const s of shards) {
        const starts = fake.calls.filter((c) => c.shardId === s.shardId).map((c) => c.startedAt);
        for (let i = 1; i < starts.length; i++)
          expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(1000 / shardRate);
      }
      // Over all shards: never more than totalRate starts in any 1 s.
      const starts = fake.calls.map((c) => c.startedAt).sort((a, b) => a - b);
      for (let i = 0; i < starts.length; i++) {
        const inSecond = starts.filter((t) => t >= starts[i]! && t < starts[i]! + 1000).length;
        expect(inSecond).toBeLessThanOrEqual(totalRate);
      }
      // The cap on shards: the last shard starts only after one of the first ones has ended.
      const firstCall = (id: string) => fake.calls.findIndex((c) => c.shardId === id);
      const lastCall = (id: string) => fake.calls.findLastIndex((c) => c.shardId === id);
      const firstEnd = Math.min(...shards.slice(0, concurrency).map((s) => lastCall(s.shardId)));
      expect(firstCall(idOf(5))).toBeGreaterThan(firstEnd);
    },
  );

  it('retries throttling through the retry layer, pacing every attempt', async () => {
    const clock = virtualClock();
    const shard: FakeShard = { shardId: idOf(1), closed: true, records: shardRecords(1, 6) };
    const failures = new Map<string, (Error | undefined)[]>([
      [idOf(1), [new LimitExceededException({ message: 'slow down', $metadata: {} })]],
    ]);
    const fake = new FakeStream({ streamArn: ARN, shards: [shard], pageSize: 3, now: clock.now, failures });
    fake.install(streamsMock);
    const reader = new StreamAuditReader({ streams, retry: fastRetry, now: clock.now, sleep: clock.sleep });
    const { plan, got } = collect(shard.shardId);
    const outcome = await reader.readShard(ARN, plan, new AbortController().signal);
    expect(got.map((r) => r.sequenceNumber)).toEqual(seqs(shard.records));
    // The throttled attempt, then two pages of 3.
    expect(outcome).toMatchObject({ end: 'shard-end', records: 6, getRecordsCalls: 3 });
    expect(fake.calls.map((c) => c.records)).toEqual([0, 3, 3]);
    const starts = fake.calls.map((c) => c.startedAt);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(200);
  });

  it('renews an expired iterator after the last record read, in the same span', async () => {
    const clock = virtualClock();
    const shard: FakeShard = { shardId: idOf(1), closed: true, records: shardRecords(1, 6) };
    const fake = new FakeStream({
      streamArn: ARN,
      shards: [shard],
      pageSize: 2,
      now: clock.now,
      failures: new Map([[idOf(1), [undefined, expired()]]]),
    });
    fake.install(streamsMock);
    const reader = new StreamAuditReader({ streams, retry: fastRetry, now: clock.now, sleep: clock.sleep });
    const { plan, got } = collect(shard.shardId);
    const outcome = await reader.readShard(
      ARN,
      { ...plan, afterSequenceNumber: '1' },
      new AbortController().signal,
    );
    expect(got.map((r) => r.sequenceNumber)).toEqual(seqs(shard.records));
    const [, second] = fake.iteratorRequests;
    expect(second).toMatchObject({
      ShardIteratorType: 'AFTER_SEQUENCE_NUMBER',
      SequenceNumber: shard.records[1]!.dynamodb.SequenceNumber,
    });
    expect(outcome.spans).toEqual([
      {
        afterSequenceNumber: '1',
        firstSequenceNumber: seqs(shard.records)[0],
        lastSequenceNumber: seqs(shard.records)[5],
        toEnd: true,
      },
    ]);
  });

  it('starts a new span at the trim horizon when records are trimmed under it', async () => {
    const clock = virtualClock();
    const records = shardRecords(1, 8);
    const shard: FakeShard = { shardId: idOf(1), closed: false, records };
    const fake = new FakeStream({ streamArn: ARN, shards: [shard], pageSize: 2, now: clock.now });
    fake.install(streamsMock);
    const reader = new StreamAuditReader({
      streams,
      retry: fastRetry,
      emptyReads: 2,
      now: clock.now,
      sleep: clock.sleep,
    });
    const got: string[] = [];
    const plan: ShardReadPlan = {
      shardId: shard.shardId,
      closed: false,
      onPage: (page) => {
        got.push(...page.map((r) => r.sequenceNumber));
        // After the first page, the stream trims up to the 6th record.
        if (got.length === 2) shard.trimHorizon = BigInt(records[5]!.dynamodb.SequenceNumber);
        return true;
      },
    };
    const outcome = await reader.readShard(ARN, plan, new AbortController().signal);
    const s = seqs(records);
    expect(got).toEqual([s[0], s[1], s[5], s[6], s[7]]);
    expect(outcome.end).toBe('caught-up');
    expect(outcome.spans).toEqual([
      { firstSequenceNumber: s[0], lastSequenceNumber: s[1], toEnd: false },
      { firstSequenceNumber: s[5], lastSequenceNumber: s[7], toEnd: true },
    ]);
  });

  it('stops when the plan says so, and on an abort', async () => {
    const clock = virtualClock();
    const shard: FakeShard = { shardId: idOf(1), closed: false, records: shardRecords(1, 10) };
    new FakeStream({ streamArn: ARN, shards: [shard], pageSize: 2, now: clock.now }).install(streamsMock);
    const reader = new StreamAuditReader({ streams, retry: fastRetry, now: clock.now, sleep: clock.sleep });
    const stopped = await reader.readShard(
      ARN,
      { shardId: shard.shardId, closed: false, onPage: () => false },
      new AbortController().signal,
    );
    expect(stopped).toMatchObject({ end: 'stopped', records: 2 });
    expect(stopped.spans).toEqual([
      {
        firstSequenceNumber: seqs(shard.records)[0],
        lastSequenceNumber: seqs(shard.records)[1],
        toEnd: false,
      },
    ]);

    const controller = new AbortController();
    const reason = new Error('stop now');
    const read = reader.readShards(
      ARN,
      [
        {
          shardId: shard.shardId,
          closed: false,
          onPage: () => {
            controller.abort(reason);
            return true;
          },
        },
      ],
      controller.signal,
    );
    await expect(read).rejects.toBe(reason);
  });

  it('lists shards with their lineage, and says when the stream is gone', async () => {
    const fake = new FakeStream({
      streamArn: ARN,
      shards: [
        { shardId: idOf(1), closed: true, records: shardRecords(1, 2) },
        { shardId: idOf(2), parentShardId: idOf(1), closed: false, records: [] },
      ],
    });
    fake.install(streamsMock);
    const reader = new StreamAuditReader({ streams, retry: fastRetry });
    const graph = await reader.listShards(ARN);
    expect(graph?.childrenOf(idOf(1))).toEqual([idOf(2)]);
    expect(graph?.isClosed(idOf(1))).toBe(true);

    streamsMock
      .on(DescribeStreamCommand)
      .rejects(new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} }));
    expect(await reader.listShards(ARN)).toBeUndefined();
  });
});

describe('createRatePacer', () => {
  it('spaces concurrent callers one interval apart', async () => {
    const clock = virtualClock();
    const pacer = createRatePacer(4, clock);
    const times: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map(async () => {
        await pacer.wait();
        times.push(clock.now());
      }),
    );
    expect(times).toEqual([0, 250, 500, 750, 1000]);
  });
});

describe('canonicalKeys', () => {
  it('gives the same text for the same keys in any attribute order', () => {
    expect(canonicalKeys('{"sk":{"N":"1"},"pk":{"S":"a"}}')).toBe(
      canonicalKeys({ pk: { S: 'a' }, sk: { N: '1' } }),
    );
    expect(canonicalKeys({ b: { B: new Uint8Array([1, 2]) } })).toBe('{"b":{"B":"AQI="}}');
  });
});
