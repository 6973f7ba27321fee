import {
  CreateTableCommand,
  DescribeTableCommand,
  GetItemCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangelogError, LeaseLostError } from '../../../src/errors.js';
import { compareCheckpoints, type Lease, SHARD_END, TRIM_HORIZON } from '../../../src/lease/lease.js';
import { LeaseStore } from '../../../src/lease/leaseStore.js';
import { createLeaseTable, leaseItemKey } from '../../../src/lease/leaseTable.js';
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

function storeFor(streamArn: string, workerId: string, listPageSize?: number): LeaseStore {
  return new LeaseStore({
    client: local.client,
    tableName: TABLE,
    streamArn,
    workerId,
    retry: { baseDelayMs: 5, retries: 3 },
    listPageSize,
  });
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
      },
      {
        shardId: 'shard-2',
        owner: undefined,
        leaseCounter: 0,
        leaseEpoch: 0,
        checkpoint: TRIM_HORIZON,
        parentShardIds: [],
      },
      {
        shardId: 'shard-3',
        owner: undefined,
        leaseCounter: 0,
        leaseEpoch: 0,
        checkpoint: TRIM_HORIZON,
        parentShardIds: ['shard-1', 'shard-2'],
      },
    ]);
    expect(await storeFor(other, 'worker-b').listLeases()).toHaveLength(1);
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
