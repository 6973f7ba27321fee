import {
  CreateTableCommand,
  DescribeTableCommand,
  GetItemCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareCheckpoints, SHARD_END, TRIM_HORIZON } from '../../../src/changelog/sequenceNumber.js';
import type { Lease } from '../../../src/coordination/lease.js';
import { planLeaseTakes } from '../../../src/coordination/leaseBalancer.js';
import { LeaseExpiryTracker } from '../../../src/coordination/leaseExpiry.js';
import { type ChangelogStart, LeaseStore } from '../../../src/coordination/leaseStore.js';
import { changelogStartKey, createLeaseTable, leaseItemKey } from '../../../src/coordination/leaseTable.js';
import { ChangelogError, LeaseLostError } from '../../../src/support/errors.js';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

const TABLE = 'changelog-leases';
let local: DynamoDbLocal;
let streamCounter = 0;

beforeAll(async () => {
  local = await startDynamoDbLocal();
  await createLeaseTable(local.client, TABLE, { pollIntervalMs: 100 });
});

afterAll(async () => {
  await local?.stop();
});

/** A fresh stream per test, so tests share the table but never each other's leases. */
function newStream(): string {
  streamCounter += 1;
  return `arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2024-01-0${streamCounter}T00:00:00.000`;
}

function storeFor(
  streamArn: string,
  workerId: string,
  listPageSize?: number,
  options: { startChunkSize?: number; continuesFrom?: string } = {},
): LeaseStore {
  return new LeaseStore({
    client: local.client,
    tableName: TABLE,
    streamArn,
    workerId,
    retry: { baseDelayMs: 5, retries: 3 },
    listPageSize,
    ...options,
  });
}

/** A shard as ensureLeases gets it from the graph; sequence numbers follow the shard's number. */
function listed(shardId: string, parent?: string) {
  return {
    shardId,
    parentShardIds: parent === undefined ? [] : [parent],
    startingSequenceNumber: `${100 + Number(shardId.replace(/\D/g, '') || 0)}000000000000000000`,
  };
}

async function storedCheckpoint(store: LeaseStore, shardId: string): Promise<string | undefined> {
  return (await store.getLease(shardId))?.checkpoint;
}

describe('lease table on DynamoDB Local', () => {
  it('creates the table idempotently, on-demand, with the lease key schema', async () => {
    await createLeaseTable(local.client, TABLE);
    await createLeaseTable(local.client, TABLE);
    const { Table } = await local.client.send(new DescribeTableCommand({ TableName: TABLE }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(Table?.KeySchema).toEqual([
      { AttributeName: 'streamArn', KeyType: 'HASH' },
      { AttributeName: 'leaseKey', KeyType: 'RANGE' },
    ]);
  });

  it('refuses an existing table with another key schema', async () => {
    await local.client.send(
      new CreateTableCommand({
        TableName: 'not-a-lease-table',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      }),
    );
    await expect(
      createLeaseTable(local.client, 'not-a-lease-table', { pollIntervalMs: 100 }),
    ).rejects.toThrow(/not a lease table/);
  });

  it('ensureLeases creates each lease once and keeps streams apart', async () => {
    const stream = newStream();
    const other = newStream();
    const a = storeFor(stream, 'worker-a', 2);
    const shards = [
      { shardId: 'shard-1', parentShardIds: [] },
      { shardId: 'shard-2', parentShardIds: [] },
      { shardId: 'shard-3', parentShardIds: ['shard-1', 'shard-2'] },
    ];
    expect(await a.ensureLeases(shards)).toBe(3);
    expect(await a.ensureLeases(shards)).toBe(0);
    expect(await storeFor(other, 'worker-a').ensureLeases([{ shardId: 'shard-1', parentShardIds: [] }])).toBe(
      1,
    );

    // Page size 2 makes the 3 leases take two pages.
    const leases = await a.listLeases();
    expect(leases).toEqual([
      {
        shardId: 'shard-1',
        owner: undefined,
        leaseCounter: 0,
        leaseEpoch: 0,
        checkpoint: TRIM_HORIZON,
        parentShardIds: [],
        startAt: TRIM_HORIZON,
      },
      {
        shardId: 'shard-2',
        owner: undefined,
        leaseCounter: 0,
        leaseEpoch: 0,
        checkpoint: TRIM_HORIZON,
        parentShardIds: [],
        startAt: TRIM_HORIZON,
      },
      {
        shardId: 'shard-3',
        owner: undefined,
        leaseCounter: 0,
        leaseEpoch: 0,
        checkpoint: TRIM_HORIZON,
        parentShardIds: ['shard-1', 'shard-2'],
        startAt: TRIM_HORIZON,
      },
    ]);
    expect(await storeFor(other, 'worker-b').listLeases()).toHaveLength(1);
  });

  it('writes the changelog start once under concurrent ensureLeases, and both workers classify alike', async () => {
    const stream = newStream();
    const a = storeFor(stream, 'worker-a');
    const b = storeFor(stream, 'worker-b');
    // The two workers listed the stream a moment apart: B also saw shard-3, a new child of shard-1.
    const listingA = [listed('shard-1'), listed('shard-2')];
    const listingB = [...listingA, listed('shard-3', 'shard-1')];
    const started: [string, ChangelogStart][] = [];
    await Promise.all([
      a.ensureLeases(listingA, undefined, { onChangelogStart: (s) => started.push(['a', s]) }),
      b.ensureLeases(listingB, undefined, { onChangelogStart: (s) => started.push(['b', s]) }),
    ]);
    // Only the winner logs, and both stores hold the item it wrote.
    expect(started).toHaveLength(1);
    const [winner, start] = started[0]!;
    expect([...start.shardIds]).toEqual(
      winner === 'a' ? ['shard-1', 'shard-2'] : ['shard-1', 'shard-2', 'shard-3'],
    );
    expect(start.startedBy).toBe(`worker-${winner}`);
    for (const store of [a, b, storeFor(stream, 'worker-c')]) {
      expect(await store.changelogStart()).toEqual(start);
    }
    const raw = await local.client.send(
      new GetItemCommand({ TableName: TABLE, Key: changelogStartKey(stream), ConsistentRead: true }),
    );
    expect(raw.Item?.['startId']?.S).toBe(start.startId);

    // Every lease follows the stored start, whoever created it.
    await a.ensureLeases(listingB);
    const leases = await b.listLeases();
    expect(leases.map((l) => [l.shardId, l.startAt])).toEqual([
      ['shard-1', TRIM_HORIZON],
      ['shard-2', TRIM_HORIZON],
      ['shard-3', start.shardIds.has('shard-3') ? TRIM_HORIZON : 'AT_SEQUENCE_NUMBER'],
    ]);
  });

  it('starts a shard discovered after the changelog began AT_SEQUENCE_NUMBER its first sequence number', async () => {
    const stream = newStream();
    const a = storeFor(stream, 'worker-a');
    expect(await a.ensureLeases([listed('shard-1', 'trimmed-0')])).toBe(1);
    // shard-1 splits; a second worker (fresh store) lists the stream later.
    const later = storeFor(stream, 'worker-b');
    expect(await later.ensureLeases([listed('shard-1', 'trimmed-0'), listed('shard-2', 'shard-1')])).toBe(1);
    expect(await later.getLease('shard-1')).toMatchObject({
      startAt: TRIM_HORIZON,
      parentShardIds: ['trimmed-0'],
    });
    expect(await later.getLease('shard-2')).toMatchObject({
      startAt: 'AT_SEQUENCE_NUMBER',
      startingSequenceNumber: listed('shard-2').startingSequenceNumber,
      checkpoint: TRIM_HORIZON,
    });
    // A start-set shard's missing parent was trimmed before the changelog began: no lease for it.
    expect(await later.getLease('trimmed-0')).toBeUndefined();
  });

  it('creates a VANISHED lease for the unlisted parent of a later child, read before the child', async () => {
    const stream = newStream();
    const a = storeFor(stream, 'worker-a');
    await a.ensureLeases([listed('shard-1')]);
    // Much later (the fleet was down): shard-1 split into shard-2, which split into shard-3 and
    // shard-4; shard-2 was trimmed away entirely meanwhile, unread. shard-1 is still listed.
    const created = await a.ensureLeases([
      listed('shard-1'),
      listed('shard-3', 'shard-2'),
      listed('shard-4', 'shard-2'),
    ]);
    expect(created).toBe(3);
    const leases = await a.listLeases();
    expect(leases.find((l) => l.shardId === 'shard-2')).toEqual({
      shardId: 'shard-2',
      owner: undefined,
      leaseCounter: 0,
      leaseEpoch: 0,
      checkpoint: TRIM_HORIZON,
      parentShardIds: [],
      startAt: 'VANISHED',
    });
    expect(leases.find((l) => l.shardId === 'shard-3')).toMatchObject({
      parentShardIds: ['shard-2'],
      startAt: 'AT_SEQUENCE_NUMBER',
    });
    // The balancer reads the vanished parent first; its children wait for its SHARD_END.
    const expiry = new LeaseExpiryTracker({ failoverMs: 10_000, now: () => 0 });
    const plan = planLeaseTakes({ leases, workerId: 'worker-a', expiry, now: 0 });
    expect(plan.available.map((l) => l.shardId)).toEqual(['shard-1', 'shard-2']);
    const held = await a.take(leases.find((l) => l.shardId === 'shard-2')!);
    await a.checkpoint(held!, { from: TRIM_HORIZON, to: SHARD_END });
    const after = planLeaseTakes({ leases: await a.listLeases(), workerId: 'worker-a', expiry, now: 0 });
    expect(after.available.map((l) => l.shardId)).toEqual(['shard-1', 'shard-3', 'shard-4']);
    // Children that already have leases get no parent lease made up later.
    const b = storeFor(stream, 'worker-b');
    expect(await b.ensureLeases([listed('shard-3', 'shard-9'), listed('shard-4', 'shard-2')])).toBe(0);
    expect(await b.getLease('shard-9')).toBeUndefined();
  });

  it('keeps a start of many shards in chunk items and reads it back', async () => {
    const stream = newStream();
    const shards = Array.from({ length: 30 }, (_, i) => listed(`shard-${i}`));
    const a = storeFor(stream, 'worker-a', undefined, { startChunkSize: 7 });
    expect(await a.ensureLeases(shards)).toBe(30);
    const start = await storeFor(stream, 'worker-b', 2).changelogStart();
    expect(start?.shardIds).toEqual(new Set(shards.map((s) => s.shardId)));
    // The chunk items are not shard leases.
    expect(await storeFor(stream, 'worker-b').listLeases()).toHaveLength(30);
  });

  it('a stream that continues an earlier one starts no shard at TRIM_HORIZON', async () => {
    const earlier = newStream();
    const stream = newStream();
    const a = storeFor(stream, 'worker-a', undefined, { continuesFrom: earlier });
    const messages: string[] = [];
    await a.ensureLeases([listed('shard-1')], undefined, {
      onChangelogStart: (s) => messages.push(String(s.continuesFrom)),
    });
    expect(messages).toEqual([earlier]);
    expect(await a.getLease('shard-1')).toMatchObject({ startAt: 'AT_SEQUENCE_NUMBER' });
  });

  it('fences a worker whose lease was taken: its checkpoint, renew and release fail and change nothing', async () => {
    const stream = newStream();
    const a = storeFor(stream, 'worker-a');
    const b = storeFor(stream, 'worker-b');
    await a.ensureLeases([{ shardId: 'shard-1', parentShardIds: [] }]);
    const [observed] = await a.listLeases();

    const heldA = await a.take(observed!);
    expect(heldA).toMatchObject({ owner: 'worker-a', leaseEpoch: 1, leaseCounter: 1 });
    // B saw the same free lease, but A moved first.
    expect(await b.take(observed!)).toBeUndefined();

    const renewedA = await a.renew(heldA!);
    expect(renewedA.leaseCounter).toBe(2);
    await a.checkpoint(renewedA, { from: TRIM_HORIZON, to: '100', lastEventTimeMs: 1_000 });
    // The same move again is what a retry after a lost response sends: it succeeds.
    await expect(a.checkpoint(renewedA, { from: TRIM_HORIZON, to: '100' })).resolves.toMatchObject({
      checkpoint: '100',
      lastEventTimeMs: 1_000,
    });

    // B decides A's lease expired and takes it from the state it observed (a steal).
    const seenByB = await b.getLease('shard-1');
    const heldB = await b.take(seenByB!);
    expect(heldB).toMatchObject({ owner: 'worker-b', leaseEpoch: 2 });

    await expect(a.checkpoint(renewedA, { from: '100', to: '200' })).rejects.toBeInstanceOf(LeaseLostError);
    await expect(a.renew(renewedA)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(a.release(renewedA)).rejects.toBeInstanceOf(LeaseLostError);
    expect(await b.getLease('shard-1')).toMatchObject({
      owner: 'worker-b',
      leaseEpoch: 2,
      checkpoint: '100',
    });

    // In a transaction, A's stale update cancels it; B's commits.
    await expect(
      local.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [{ Update: a.checkpointUpdate(renewedA, { from: '100', to: '200' }) }],
        }),
      ),
    ).rejects.toMatchObject({ name: 'TransactionCanceledException' });
    expect(await storedCheckpoint(b, 'shard-1')).toBe('100');
    await local.client.send(
      new TransactWriteItemsCommand({
        TransactItems: [{ Update: b.checkpointUpdate(heldB!, { from: '100', to: '200' }) }],
      }),
    );
    expect(await storedCheckpoint(b, 'shard-1')).toBe('200');

    // A takes the lease back: a new epoch. Its old lease object stays fenced out by the epoch alone.
    const heldAgain = await a.take((await a.getLease('shard-1'))!);
    expect(heldAgain).toMatchObject({ owner: 'worker-a', leaseEpoch: 3 });
    await expect(a.checkpoint(renewedA, { from: '200', to: '300' })).rejects.toBeInstanceOf(LeaseLostError);
    await expect(a.checkpoint(heldAgain!, { from: '200', to: '300' })).resolves.toMatchObject({
      checkpoint: '300',
    });

    // A stale `from` under a lease we do hold is a bug, not a lease loss.
    const stale = await a.checkpoint(heldAgain!, { from: '200', to: '400' }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ChangelogError);
    expect(stale).not.toBeInstanceOf(LeaseLostError);

    // Releasing frees the item with a counter move; the next taker needs no steal.
    const released = await a.release(heldAgain!);
    expect(released.owner).toBeUndefined();
    const raw = await local.client.send(
      new GetItemCommand({ TableName: TABLE, Key: leaseItemKey(stream, 'shard-1'), ConsistentRead: true }),
    );
    expect(raw.Item?.['owner']).toBeUndefined();
    await expect(b.take(released)).resolves.toMatchObject({
      owner: 'worker-b',
      leaseEpoch: 4,
      checkpoint: '300',
    });
  });

  it('history: under competing takes and stale writers, applied checkpoints only move forward', async () => {
    const stream = newStream();
    const workers = [storeFor(stream, 'worker-a'), storeFor(stream, 'worker-b')];
    await workers[0]!.ensureLeases([{ shardId: 'shard-1', parentShardIds: [] }]);

    // Each worker's belief: the lease it thinks it holds and the checkpoint it last committed.
    const held: (Lease | undefined)[] = [undefined, undefined];
    // mulberry32: a small seeded generator, so the interleaving is the same on every run.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4_294_967_296) * n);
    };
    const history: string[] = [TRIM_HORIZON];
    let applied = 0;
    let fenced = 0;
    let refused = 0;

    for (let step = 0; step < 40; step++) {
      const w = random(2);
      const store = workers[w]!;
      const mine = held[w];
      if (mine === undefined || random(4) === 0) {
        const observed = await store.getLease('shard-1');
        held[w] = (await store.take(observed!)) ?? mine;
      } else {
        const from = mine.checkpoint;
        const base = from === TRIM_HORIZON ? 0 : Number(from);
        const to = random(10) === 0 ? SHARD_END : String(base + random(200) - 50);
        const before = await storedCheckpoint(store, 'shard-1');
        try {
          held[w] = await store.checkpoint(mine, { from, to });
          applied++;
          expect(await storedCheckpoint(store, 'shard-1')).toBe(to);
        } catch (error) {
          // Backwards moves are refused locally; stale holders are fenced: nothing changes.
          expect(error).toBeInstanceOf(ChangelogError);
          if (error instanceof LeaseLostError) fenced++;
          else refused++;
          expect(await storedCheckpoint(store, 'shard-1')).toBe(before);
        }
        if (held[w]?.checkpoint === SHARD_END) break;
      }
      const now = (await store.getLease('shard-1'))!.checkpoint;
      if (now !== history[history.length - 1]) history.push(now);
    }

    for (let i = 1; i < history.length; i++) {
      expect(compareCheckpoints(history[i]!, history[i - 1]!)).toBeGreaterThan(0);
    }
    expect(applied).toBeGreaterThan(0);
    expect(fenced).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
