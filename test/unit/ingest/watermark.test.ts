import { describe, expect, it } from 'vitest';
import { SHARD_END, TRIM_HORIZON } from '../../../src/changelog/sequenceNumber.js';
import type { Lease } from '../../../src/coordination/lease.js';
import { computeWatermark, shardProgress } from '../../../src/ingest/watermark.js';

function lease(shardId: string, over: Partial<Lease> = {}): Lease {
  return {
    shardId,
    owner: 'w',
    leaseCounter: 1,
    leaseEpoch: 1,
    checkpoint: '100000000000000000001',
    parentShardIds: [],
    ...over,
  };
}

describe('shardProgress', () => {
  it('is the later of the last committed event time and the caught-up time', () => {
    expect(shardProgress(lease('a'))).toBeUndefined();
    expect(shardProgress(lease('a', { lastEventTimeMs: 500 }))).toBe(500);
    expect(shardProgress(lease('a', { caughtUpAtMs: 700 }))).toBe(700);
    expect(shardProgress(lease('a', { lastEventTimeMs: 900, caughtUpAtMs: 700 }))).toBe(900);
    expect(shardProgress(lease('a', { lastEventTimeMs: 500, caughtUpAtMs: 700 }))).toBe(700);
  });
});

describe('computeWatermark', () => {
  it('is undefined with no leases', () => {
    expect(computeWatermark([])).toBeUndefined();
  });

  it('is the minimum progress over unfinished shards', () => {
    expect(
      computeWatermark([
        lease('a', { lastEventTimeMs: 5_000 }),
        lease('b', { caughtUpAtMs: 3_000 }),
        lease('c', { lastEventTimeMs: 1_000, caughtUpAtMs: 4_000 }),
      ]),
    ).toBe(3_000);
  });

  it('leaves out shards read to their end', () => {
    expect(
      computeWatermark([
        lease('a', { checkpoint: SHARD_END, lastEventTimeMs: 1_000 }),
        lease('b', { lastEventTimeMs: 5_000 }),
      ]),
    ).toBe(5_000);
    // A finished shard without any progress does not hold the watermark back either.
    expect(computeWatermark([lease('a', { checkpoint: SHARD_END }), lease('b', { caughtUpAtMs: 9 })])).toBe(
      9,
    );
  });

  it('skips children whose parents are not finished (their records come later)', () => {
    const leases = [
      lease('parent', { lastEventTimeMs: 2_000 }),
      lease('child', { checkpoint: TRIM_HORIZON, parentShardIds: ['parent'] }),
    ];
    expect(computeWatermark(leases)).toBe(2_000);
    // A grandchild waits for its own parent, which waits too.
    expect(
      computeWatermark([
        ...leases,
        lease('grandchild', { checkpoint: TRIM_HORIZON, parentShardIds: ['child'] }),
      ]),
    ).toBe(2_000);
  });

  it('counts a child once its parents are finished, and a child of a parent with no lease (trimmed)', () => {
    expect(
      computeWatermark([
        lease('parent', { checkpoint: SHARD_END, lastEventTimeMs: 2_000 }),
        lease('child', { checkpoint: TRIM_HORIZON, parentShardIds: ['parent'], caughtUpAtMs: 8_000 }),
      ]),
    ).toBe(8_000);
    expect(computeWatermark([lease('orphan', { parentShardIds: ['gone'], lastEventTimeMs: 7_000 })])).toBe(
      7_000,
    );
    // Merged shard: both parents must be finished.
    expect(
      computeWatermark([
        lease('p1', { checkpoint: SHARD_END, lastEventTimeMs: 1 }),
        lease('p2', { lastEventTimeMs: 3_000 }),
        lease('child', { checkpoint: TRIM_HORIZON, parentShardIds: ['p1', 'p2'] }),
      ]),
    ).toBe(3_000);
  });

  it('is undefined while a readable shard has no progress yet', () => {
    expect(
      computeWatermark([lease('a', { lastEventTimeMs: 5_000 }), lease('b', { checkpoint: TRIM_HORIZON })]),
    ).toBeUndefined();
    expect(
      computeWatermark([
        lease('parent', { checkpoint: SHARD_END, lastEventTimeMs: 2_000 }),
        lease('child', { checkpoint: TRIM_HORIZON, parentShardIds: ['parent'] }),
      ]),
    ).toBeUndefined();
  });

  it('is the latest progress of any shard when every shard is finished', () => {
    expect(
      computeWatermark([
        lease('a', { checkpoint: SHARD_END, lastEventTimeMs: 1_000 }),
        lease('b', { checkpoint: SHARD_END, lastEventTimeMs: 4_000, caughtUpAtMs: 6_000 }),
        lease('c', { checkpoint: SHARD_END }),
      ]),
    ).toBe(6_000);
    expect(computeWatermark([lease('a', { checkpoint: SHARD_END })])).toBeUndefined();
  });
});
