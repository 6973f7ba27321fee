import { describe, expect, it } from 'vitest';
import { StallDetector } from '../../../src/app/stallDetector.js';
import type { Logger } from '../../../src/support/logger.js';

function setup(stallTimeoutMs = 60_000, maxLeaseCycleAgeMs?: number) {
  let now = 0;
  const logs: { level: string; details: Record<string, unknown>; message: string }[] = [];
  const push = (level: string) => (details: Record<string, unknown>, message: string) =>
    logs.push({ level, details, message });
  const logger: Logger = {
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
  };
  const detector = new StallDetector({ stallTimeoutMs, maxLeaseCycleAgeMs, logger, now: () => now });
  return {
    detector,
    logs,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe('StallDetector', () => {
  it('is not ready before the first lease cycle', () => {
    const { detector } = setup();
    expect(detector.readiness()).toEqual({ ready: false, reason: 'no lease cycle has completed yet' });
  });

  it('is ready holding leases, or holding none when none are waiting', () => {
    const { detector } = setup();
    detector.leaseCycle({ held: [], readableUnowned: [] });
    expect(detector.readiness().ready).toBe(true);
    detector.leaseCycle({ held: [], readableUnowned: ['shard-1'] });
    expect(detector.readiness()).toEqual({
      ready: false,
      reason: '1 readable shards are waiting to be taken',
    });
    detector.leaseChanged('shard-1', 'taken');
    detector.leaseCycle({ held: ['shard-1'], readableUnowned: [] });
    expect(detector.readiness()).toEqual({ ready: true, reason: '1 leases held' });
  });

  it('flags a held shard whose reader hands on no page for the stall timeout, once, and clears it', () => {
    const { detector, logs, advance } = setup(60_000);
    detector.leaseChanged('shard-1', 'taken');
    detector.leaseCycle({ held: ['shard-1'], readableUnowned: [] });
    advance(30_000);
    detector.pageConsumed({ shardId: 'shard-1' });
    advance(59_999);
    detector.leaseCycle({ held: ['shard-1'], readableUnowned: [] });
    expect(detector.stalled()).toEqual([]);
    advance(1);
    detector.leaseCycle({ held: ['shard-1'], readableUnowned: [] });
    detector.leaseCycle({ held: ['shard-1'], readableUnowned: [] });
    expect(detector.stalled()).toEqual([{ shardId: 'shard-1', reason: 'no-progress', sinceMs: 30_000 }]);
    expect(detector.readiness()).toEqual({ ready: false, reason: 'stalled shards: shard-1 (no-progress)' });
    const errors = logs.filter((l) => l.level === 'error');
    expect(errors).toEqual([
      {
        level: 'error',
        details: { shardId: 'shard-1', reason: 'no-progress', stalledForMs: 60_000 },
        message: 'shard stalled: its reader made no progress',
      },
    ]);
    // Empty pages at the tip count as progress: a quiet shard is not stalled.
    detector.pageConsumed({ shardId: 'shard-1' });
    detector.leaseCycle({ held: ['shard-1'], readableUnowned: [] });
    expect(detector.stalled()).toEqual([]);
    expect(logs.at(-1)).toMatchObject({ level: 'info', message: 'shard no longer stalled' });
    expect(detector.readiness().ready).toBe(true);
  });

  it('flags a readable shard nobody reads (a child not picked up after its parent ended)', () => {
    const { detector, advance } = setup(60_000);
    detector.leaseCycle({ held: [], readableUnowned: [] });
    detector.leaseCycle({ held: [], readableUnowned: ['child-1'] });
    advance(59_000);
    detector.leaseCycle({ held: [], readableUnowned: ['child-1'] });
    expect(detector.stalled()).toEqual([]);
    advance(1_000);
    expect(detector.stalled()).toEqual([{ shardId: 'child-1', reason: 'not-read', sinceMs: 0 }]);
    // Taken by someone: no longer waiting.
    detector.leaseCycle({ held: [], readableUnowned: [] });
    expect(detector.stalled()).toEqual([]);
  });

  it('is not ready when lease cycles stop succeeding (the lease table is unreachable)', () => {
    const { detector, advance } = setup(600_000, 20_000);
    detector.leaseCycle({ held: [], readableUnowned: [] });
    advance(20_000);
    expect(detector.readiness().ready).toBe(true);
    advance(1_000);
    expect(detector.readiness()).toEqual({
      ready: false,
      reason: 'no lease cycle has succeeded for 21 s (lease table unreachable?)',
    });
    detector.leaseCycle({ held: [], readableUnowned: [] });
    expect(detector.readiness().ready).toBe(true);
  });

  it('forgets a shard whose lease is lost, released or ended', () => {
    const { detector, advance } = setup(1_000);
    for (const change of ['lost', 'released', 'ended'] as const) {
      detector.leaseChanged('shard-1', 'taken');
      advance(5_000);
      expect(detector.stalled()).toHaveLength(1);
      detector.leaseChanged('shard-1', change);
      expect(detector.stalled()).toEqual([]);
    }
  });
});
