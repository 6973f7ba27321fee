import { DynamoDBClient, type TransactWriteItem, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Lease } from '../../../src/coordination/lease.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import { type CommittedSegment, combineObservers } from '../../../src/coordination/pipelineObserver.js';
import { RegistryStore, requestToken } from '../../../src/coordination/registryStore.js';
import {
  classifyCommitFailure,
  SegmentCommitter,
  type SegmentCommitterOptions,
} from '../../../src/ingest/segmentCommitter.js';
import { ChangelogError } from '../../../src/support/errors.js';
import {
  type FlatSettings,
  KEY_SCHEMA,
  objectsPage,
  recordRun,
  seq,
  sessionOf,
  shardName,
  W,
  withSettings,
} from '../../helpers/commitFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';

/*
 * SegmentCommitter's own logic with DynamoDB replaced at the transport: the real item builders
 * (RegistryStore.segmentPut/windowOpenCheck/gapPut, LeaseStore.checkpointUpdate) with transact and
 * reads stubbed, and an in-memory object store. The protocol against real DynamoDB is in
 * test/integration/pipeline/segmentCommitter.test.ts.
 */

const A = shardName(1);
const B = shardName(2);
const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const client = new DynamoDBClient({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9', // never called: every call below is stubbed
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
});

afterEach(() => {
  vi.restoreAllMocks();
});

function held(shardId: string, epoch = 1): Lease {
  return {
    shardId,
    owner: 'worker-a',
    leaseCounter: 1,
    leaseEpoch: epoch,
    checkpoint: 'TRIM_HORIZON',
    parentShardIds: [],
  };
}

function setup(over: Partial<SegmentCommitterOptions> & FlatSettings = {}) {
  const leases = new LeaseStore({ client, tableName: 'leases', streamArn: ARN, workerId: 'worker-a' });
  const registry = new RegistryStore({ client, tableName: 'leases', table: 'orders' });
  const store = new MemoryObjectStore();
  const transactions: { items: TransactWriteItem[]; token: string }[] = [];
  // The registry derives a transaction's ClientRequestToken from its items.
  const tokenOf = (items: TransactWriteItem[]) => requestToken('transact', JSON.stringify(items));
  const transact = vi.spyOn(registry, 'transact').mockImplementation(async (items) => {
    transactions.push({ items, token: tokenOf(items) });
  });
  const getSegment = vi.spyOn(registry, 'getSegment').mockResolvedValue(undefined);
  vi.spyOn(registry, 'getState').mockResolvedValue(undefined);
  vi.spyOn(registry, 'getWatermark').mockResolvedValue(undefined);
  const getLease = vi.spyOn(leases, 'getLease').mockImplementation(async (id) => held(id));
  // No changelog-start item: the check for trims after the start has nothing to compare with.
  vi.spyOn(leases, 'changelogStart').mockResolvedValue(undefined);
  const commits: CommittedSegment[] = [];
  const committer = new SegmentCommitter(
    withSettings({
      workerId: 'worker-a',
      streamArn: ARN,
      table: 'orders',
      keySchema: KEY_SCHEMA,
      leases,
      registry,
      store,
      retry: { baseDelayMs: 1, maxDelayMs: 2, retries: 3 },
      ...over,
      observer: combineObservers({ segmentCommitted: (e) => commits.push(e) }, over.observer),
    }),
  );
  return { committer, commits, store, transactions, transact, getSegment, getLease, leases, registry };
}

function canceled(...codes: string[]): Error {
  return Object.assign(new Error(`Transaction cancelled [${codes.join(', ')}]`), {
    name: 'TransactionCanceledException',
    CancellationReasons: codes.map((Code) => ({ Code })),
    $metadata: { httpStatusCode: 400 },
  });
}

describe('SegmentCommitter commit transaction', () => {
  it('is one transaction: segment item, window-open check, a fenced checkpoint move per shard, gaps', async () => {
    const t = setup();
    const sa = sessionOf(held(A));
    const sb = sessionOf(held(B, 7));
    t.committer.open(sa);
    t.committer.open(sb);
    await t.committer.gap(sb, {
      shardId: B,
      afterSequenceNumber: undefined,
      reason: 'TrimmedDataAccessException',
      detectedAt: undefined,
    });
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 2, (n) => W(0) + n * 1000),
      ),
    );
    await t.committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 1, 1, () => W(0)),
      ),
    );
    await t.committer.drain();

    expect(t.transactions).toHaveLength(1);
    const { items } = t.transactions[0]!;
    expect(items.map((i) => Object.keys(i)[0])).toEqual(['Put', 'ConditionCheck', 'Update', 'Update', 'Put']);
    expect(items[0]!.Put?.Item?.['leaseKey']?.S).toMatch(/^segment#20260115T100000Z#s1-[0-9a-f]{32}$/);
    expect(items[0]!.Put?.ConditionExpression).toBe('attribute_not_exists(#sk)');
    expect(items[1]!.ConditionCheck?.ExpressionAttributeValues?.[':start']).toEqual({ N: String(W(0)) });
    const updates = items.slice(2, 4).map((i) => i.Update!);
    for (const u of updates) {
      expect(u.ConditionExpression).toBe('#owner = :me AND #leaseEpoch = :epoch AND #checkpoint = :from');
      expect(u.ExpressionAttributeValues?.[':from']).toEqual({ S: 'TRIM_HORIZON' });
      expect(u.ExpressionAttributeValues?.[':me']).toEqual({ S: 'worker-a' });
    }
    const byShard = new Map(updates.map((u) => [u.Key?.['leaseKey']?.S, u]));
    expect(byShard.get(`shard#${A}`)?.ExpressionAttributeValues?.[':to']).toEqual({ S: seq(1, 2) });
    expect(byShard.get(`shard#${A}`)?.ExpressionAttributeValues?.[':epoch']).toEqual({ N: '1' });
    expect(byShard.get(`shard#${B}`)?.ExpressionAttributeValues?.[':epoch']).toEqual({ N: '7' });
    expect(items[4]!.Put?.Item?.['resumedAtSequenceNumber']).toEqual({ S: seq(2, 1) });
    expect(t.commits[0]?.gaps).toBe(1);
  });

  it('retries a transaction canceled by a conflict with the same token, and commits once', async () => {
    const conflicts: string[] = [];
    const t = setup({ observer: { commitFailed: (kind) => conflicts.push(kind) } });
    // The conflict is retried by the registry's retry layer (the only one): cancel at the transport.
    t.transact.mockRestore();
    let calls = 0;
    vi.spyOn(client, 'send').mockImplementation(async (command: unknown) => {
      if (!(command instanceof TransactWriteItemsCommand)) throw new Error('unexpected call');
      const { TransactItems = [], ClientRequestToken = '' } = command.input;
      t.transactions.push({ items: TransactItems, token: ClientRequestToken });
      calls++;
      if (calls <= 2) throw canceled('None', 'None', 'TransactionConflict');
      return {};
    });
    const sa = sessionOf(held(A));
    t.committer.open(sa);
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, () => W(0)),
      ),
    );
    await t.committer.drain();
    expect(t.transactions).toHaveLength(3);
    expect(new Set(t.transactions.map((x) => x.token)).size).toBe(1);
    expect(new Set(t.transactions.map((x) => JSON.stringify(x.items))).size).toBe(1);
    expect(t.commits).toHaveLength(1);
    expect(sa.restarts).toEqual([]);
    expect(conflicts).toEqual(['conflict', 'conflict']);
  });

  it('drops and restarts every shard of a segment refused for a reason it cannot explain', async () => {
    const t = setup();
    const failure = Object.assign(
      new Error('Transaction request cannot include multiple operations on one item'),
      {
        name: 'ValidationException',
        $metadata: { httpStatusCode: 400 },
      },
    );
    t.transact.mockRejectedValue(failure);
    const sa = sessionOf(held(A));
    const sb = sessionOf(held(B));
    t.committer.open(sa);
    t.committer.open(sb);
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 1, () => W(0)),
      ),
    );
    await t.committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 1, 1, () => W(0)),
      ),
    );
    await t.committer.drain();
    expect(t.commits).toEqual([]);
    expect(sa.restarts).toEqual([failure]);
    expect(sb.restarts).toEqual([failure]);
    expect(t.committer.bufferedBytes).toBe(0);
    expect(t.store.objects.size).toBe(1); // the orphan
  });

  it('explains a refused checkpoint move whose lease is still ours as a moved checkpoint', async () => {
    const t = setup();
    t.transact.mockRejectedValue(canceled('None', 'None', 'ConditionalCheckFailed'));
    t.getLease.mockImplementation(async (id) => ({ ...held(id), checkpoint: seq(1, 99) }));
    const sa = sessionOf(held(A));
    t.committer.open(sa);
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 1, () => W(0)),
      ),
    );
    await t.committer.drain();
    expect(sa.restarts).toHaveLength(1);
    expect(sa.restarts[0]).toBeInstanceOf(ChangelogError);
    expect(sa.restarts[0]!.name).toBe('ChangelogError');
    expect(sa.restarts[0]!.message).toBe(
      `checkpoint of ${A} is ${seq(1, 99)}, not TRIM_HORIZON as this worker committed`,
    );
  });

  it('keeps window order: a later window is never committed before an earlier one that failed', async () => {
    const t = setup();
    const sa = sessionOf(held(A));
    t.committer.open(sa);
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 1, () => W(0)),
      ),
    );
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 2, 2, () => W(1)),
      ),
    );
    t.store.failing = true;
    await expect(t.committer.drain()).rejects.toThrow(/2 buffered segment\(s\) could not be committed/);
    expect(t.store.puts).toBe(1); // the head failed; the next one was not tried
    expect(t.transactions).toEqual([]);
    t.store.failing = false;
    await t.committer.drain();
    expect(t.commits.map((c) => [c.windowStartMs, c.shards[0]!.afterSequenceNumber])).toEqual([
      [W(0), 'TRIM_HORIZON'],
      [W(1), seq(1, 1)],
    ]);
  });

  it('moves the rest of the pending gaps to later commits when they would exceed 100 transaction items', async () => {
    const t = setup();
    const sa = sessionOf(held(A));
    t.committer.open(sa);
    // 120 separate holes, each followed by a record read (gaps with no record between them are
    // one hole and merge).
    for (let i = 0; i < 120; i++) {
      await t.committer.gap(sa, {
        shardId: A,
        afterSequenceNumber: seq(1, 2 * i),
        reason: 'TrimmedDataAccessException',
        detectedAt: undefined,
      });
      await t.committer.accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 2 * i + 1, 2 * i + 1, () => W(0)),
        ),
      );
    }
    await t.committer.drain();
    expect(t.transactions[0]!.items).toHaveLength(100);
    expect(t.commits[0]!.gaps).toBe(97);
    expect(t.committer.progress(A)).toBeUndefined(); // gaps still pending
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 300, 300, () => W(0)),
      ),
    );
    await t.committer.drain();
    expect(t.commits[1]!.gaps).toBe(23);
  });
});

describe('SegmentCommitter backpressure', () => {
  it('lets a reader whose session was stopped out of the backpressure wait while writes keep failing', async () => {
    const t = setup({ maxBufferBytes: 1000 });
    const sa = sessionOf(held(A));
    t.committer.open(sa);
    t.store.failing = true; // the object store is down
    let settled = false;
    const accepting = t.committer
      .accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 1, 4, () => W(0), 500),
        ),
      )
      .then(
        () => {
          settled = true;
        },
        (error: unknown) => {
          settled = true;
          return error;
        },
      );
    // The reader is stopped (lease lost, or the worker shutting down) while the store still fails.
    let attemptsAfterAbort = 0;
    const spinning = new Promise<void>((resolve) => {
      t.store.onPut = () => {
        if (!sa.signal.aborted && t.store.puts >= 3) sa.controller.abort(new Error('reader stopped'));
        else if (sa.signal.aborted && ++attemptsAfterAbort >= 200) resolve();
      };
    });
    await Promise.race([spinning, accepting]);
    const stillWaiting = !settled;
    // Let it finish whatever the outcome, so the test never hangs.
    t.store.failing = false;
    await accepting;
    // After the abort, accept went on re-encoding and re-writing the segment 200 more times,
    // back to back (no back-off), instead of giving up: a worker stopping during an object store
    // outage cannot stop its readers until the store recovers.
    expect(stillWaiting).toBe(false);
  });
});

describe('classifyCommitFailure', () => {
  // Items of a commit transaction: [segment put, window check, lease updates..., gap puts...].
  const itemShard = new Map([
    [2, 'shard-a'],
    [3, 'shard-b'],
    [4, 'shard-c'],
  ]);
  const canceled = (...codes: string[]) =>
    Object.assign(new Error('Transaction cancelled'), {
      name: 'TransactionCanceledException',
      CancellationReasons: codes.map((Code) => ({ Code })),
    });

  it('refuses only the shards whose fenced checkpoint updates failed', () => {
    expect(
      classifyCommitFailure(canceled('None', 'None', 'None', 'ConditionalCheckFailed', 'None'), itemShard),
    ).toEqual({ kind: 'shards', shardIds: ['shard-b'] });
    expect(
      classifyCommitFailure(
        canceled('None', 'None', 'ConditionalCheckFailed', 'None', 'ConditionalCheckFailed'),
        itemShard,
      ),
    ).toEqual({ kind: 'shards', shardIds: ['shard-a', 'shard-c'] });
  });

  it('a segment item that exists already goes with the lease updates that failed beside it', () => {
    expect(
      classifyCommitFailure(canceled('ConditionalCheckFailed', 'None', 'ConditionalCheckFailed'), itemShard),
    ).toEqual({ kind: 'shards', shardIds: ['shard-a'] });
    expect(classifyCommitFailure(canceled('ConditionalCheckFailed', 'None', 'None'), itemShard)).toEqual({
      kind: 'other',
    });
  });

  it('a closed window refuses the whole buffer, whatever else failed', () => {
    expect(
      classifyCommitFailure(canceled('None', 'ConditionalCheckFailed', 'ConditionalCheckFailed'), itemShard),
    ).toEqual({ kind: 'window-closed' });
  });

  it('anything it cannot attribute (a failed gap put, another code, another error) refuses everything', () => {
    expect(
      classifyCommitFailure(
        canceled('None', 'None', 'ConditionalCheckFailed', 'None', 'None', 'ConditionalCheckFailed'),
        itemShard,
      ),
    ).toEqual({ kind: 'other' });
    expect(classifyCommitFailure(canceled('None', 'None', 'ValidationError'), itemShard)).toEqual({
      kind: 'other',
    });
    expect(classifyCommitFailure(new Error('boom'), itemShard)).toEqual({ kind: 'other' });
  });
});
