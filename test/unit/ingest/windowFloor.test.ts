import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SHARD_END } from '../../../src/changelog/sequenceNumber.js';
import { DEFAULTS } from '../../../src/coordination/config.js';
import type { Lease } from '../../../src/coordination/lease.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import type { CommittedSegment } from '../../../src/coordination/pipelineObserver.js';
import { RegistryStore } from '../../../src/coordination/registryStore.js';
import { SegmentCommitter } from '../../../src/ingest/segmentCommitter.js';
import {
  KEY_SCHEMA,
  objectsPage,
  recordRun,
  sessionOf,
  shardName,
  W,
  WINDOW_MS,
} from '../../helpers/commitFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';

/*
 * The committer's window floor (windowFloorMs): the daemon following a table across a stream
 * re-enable opens the new stream's shards with it, so no item's new records land in an earlier
 * window than the old stream's records of the same item. DynamoDB is stubbed at the registry and
 * lease store, as in segmentCommitter.test.ts.
 */

const A = shardName(1);
const B = shardName(2);
const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-02T00:00:00.000';
const client = new DynamoDBClient({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9', // never called: every call below is stubbed
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
});

afterEach(() => {
  vi.restoreAllMocks();
});

function held(shardId: string, over: Partial<Lease> = {}): Lease {
  return {
    shardId,
    owner: 'worker-a',
    leaseCounter: 1,
    leaseEpoch: 1,
    checkpoint: 'TRIM_HORIZON',
    parentShardIds: [],
    ...over,
  };
}

function setup(windowFloorMs: number | undefined) {
  const leases = new LeaseStore({ client, tableName: 'leases', streamArn: ARN, workerId: 'worker-a' });
  // No changelog-start item: the check for trims after the start has nothing to compare with.
  vi.spyOn(leases, 'changelogStart').mockResolvedValue(undefined);
  const registry = new RegistryStore({ client, tableName: 'leases', table: 'orders' });
  vi.spyOn(registry, 'transact').mockResolvedValue(undefined);
  vi.spyOn(registry, 'getSegment').mockResolvedValue(undefined);
  vi.spyOn(registry, 'getState').mockResolvedValue(undefined);
  vi.spyOn(registry, 'getWatermark').mockResolvedValue(undefined);
  const checkpoint = vi.spyOn(leases, 'checkpoint').mockImplementation(async (lease, move) => ({
    ...lease,
    checkpoint: move.to,
    windowStartMs: move.windowStartMs,
  }));
  const commits: CommittedSegment[] = [];
  const committer = new SegmentCommitter({
    workerId: 'worker-a',
    streamArn: ARN,
    table: 'orders',
    keySchema: KEY_SCHEMA,
    leases,
    registry,
    store: new MemoryObjectStore(),
    window: { windowMs: WINDOW_MS, allowedLatenessMs: 0 },
    buffer: { ...DEFAULTS.buffer, flushIntervalMs: 3_600_000 },
    observer: { segmentCommitted: (e) => commits.push(e) },
    windowFloorMs,
  });
  return { committer, commits, checkpoint };
}

describe('SegmentCommitter window floor', () => {
  it('puts no row of a shard before the floor; rows after it keep their own window', async () => {
    const t = setup(W(2));
    const sa = sessionOf(held(A));
    t.committer.open(sa);
    // Event times in windows 0, 1, 3: the first two go to the floor (window 2), then window 3.
    await t.committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, (n) => W([0, 1, 3][n - 1]!)),
      ),
    );
    await t.committer.drain();
    expect(t.commits.map((c) => [c.windowStartMs, c.records, c.lateRecords])).toEqual([
      [W(2), 2, 2],
      [W(3), 1, 0],
    ]);
  });

  it('a lease already past the floor keeps its own window; a shard ending empty ends at the floor', async () => {
    const t = setup(W(2));
    const sb = sessionOf(held(B, { windowStartMs: W(4) }));
    t.committer.open(sb);
    await t.committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 1, 1, () => W(0)),
      ),
    );
    await t.committer.drain();
    expect(t.commits.map((c) => c.windowStartMs)).toEqual([W(4)]);

    const sa = sessionOf(held(A));
    t.committer.open(sa);
    const ended = await t.committer.finish(sa);
    expect(ended.checkpoint).toBe(SHARD_END);
    expect(t.checkpoint).toHaveBeenCalledWith(expect.objectContaining({ shardId: A }), {
      from: 'TRIM_HORIZON',
      to: SHARD_END,
      windowStartMs: W(2),
    });
  });

  it('without a floor, rows go to their own window as before', async () => {
    const t = setup(undefined);
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
    expect(t.commits.map((c) => c.windowStartMs)).toEqual([W(0)]);
  });
});
