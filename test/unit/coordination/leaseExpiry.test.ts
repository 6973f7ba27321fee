import { describe, expect, it } from 'vitest';
import type { Lease } from '../../../src/coordination/lease.js';
import { LeaseExpiryTracker } from '../../../src/coordination/leaseExpiry.js';

function lease(shardId: string, leaseCounter: number): Lease {
  return {
    shardId,
    owner: 'worker-b',
    leaseCounter,
    leaseEpoch: 1,
    checkpoint: 'TRIM_HORIZON',
    parentShardIds: [],
  };
}

function free(shardId: string, leaseCounter: number): Lease {
  return { ...lease(shardId, leaseCounter), owner: undefined };
}

function trackerWithClock(failoverMs = 10_000) {
  const clock = { t: 5_000 };
  const tracker = new LeaseExpiryTracker({ failoverMs, now: () => clock.t });
  return { tracker, clock };
}

describe('LeaseExpiryTracker', () => {
  it('defaults to a 10 s failover', () => {
    expect(new LeaseExpiryTracker().failoverMs).toBe(10_000);
  });

  it('expires a held lease whose counter did not move for failoverMs, and not before', () => {
    const { tracker, clock } = trackerWithClock();
    tracker.observe([lease('s1', 4)]);
    clock.t += 9_999;
    tracker.observe([lease('s1', 4)]);
    expect(tracker.isExpired(lease('s1', 4))).toBe(false);
    clock.t += 1;
    expect(tracker.isExpired(lease('s1', 4))).toBe(true);
  });

  it('restarts the wait when the counter changes', () => {
    const { tracker, clock } = trackerWithClock();
    tracker.observe([lease('s1', 4)]);
    clock.t += 8_000;
    tracker.observe([lease('s1', 5)]);
    clock.t += 8_000;
    tracker.observe([lease('s1', 5)]);
    expect(tracker.isExpired(lease('s1', 5))).toBe(false);
    clock.t += 2_000;
    expect(tracker.isExpired(lease('s1', 5))).toBe(true);
  });

  it('does not expire a lease first seen now, until failoverMs after that first sighting', () => {
    const { tracker, clock } = trackerWithClock();
    clock.t = 1_000_000; // a long-running worker sees a lease for the first time
    tracker.observe([lease('s1', 40)]);
    expect(tracker.isExpired(lease('s1', 40))).toBe(false);
    clock.t += 10_000;
    expect(tracker.isExpired(lease('s1', 40))).toBe(true);
  });

  it('treats a counter newer than the last observation as alive', () => {
    const { tracker, clock } = trackerWithClock();
    tracker.observe([lease('s1', 4)]);
    clock.t += 60_000;
    expect(tracker.isExpired(lease('s1', 5))).toBe(false);
    expect(tracker.isExpired(lease('never-observed', 1))).toBe(false);
  });

  it('always makes a free lease available', () => {
    const { tracker } = trackerWithClock();
    expect(tracker.isExpired(free('s1', 0))).toBe(true);
    tracker.observe([free('s1', 0)]);
    expect(tracker.isExpired(free('s1', 0))).toBe(true);
  });

  it('forgets shards no longer listed, so a returning one starts a fresh wait', () => {
    const { tracker, clock } = trackerWithClock();
    tracker.observe([lease('s1', 4), lease('s2', 1)]);
    clock.t += 5_000;
    tracker.observe([lease('s2', 1)]);
    tracker.observe([lease('s1', 4), lease('s2', 1)]);
    clock.t += 5_000;
    expect(tracker.isExpired(lease('s2', 1))).toBe(true);
    expect(tracker.isExpired(lease('s1', 4))).toBe(false);
  });

  it('accepts an explicit time, so a plan can use one instant throughout', () => {
    const { tracker } = trackerWithClock(1_000);
    tracker.observe([lease('s1', 4)], 0);
    expect(tracker.isExpired(lease('s1', 4), 999)).toBe(false);
    expect(tracker.isExpired(lease('s1', 4), 1_000)).toBe(true);
  });
});
