import type { LeaseChange, PipelineObserver } from '../coordination/pipelineObserver.js';
import type { Logger } from '../support/logger.js';

export interface StalledShard {
  shardId: string;
  /**
   * `no-progress`: this worker holds the shard but its reader has handed on no page (not even an
   * empty one at the tip) for the stall timeout: stuck in retries, a failing commit, or a reader
   * that keeps failing to start. `not-read`: the shard is readable (its parents ended) but no live
   * worker has held it for the stall timeout: a child shard nobody picked up.
   */
  reason: 'no-progress' | 'not-read';
  sinceMs: number;
}

export interface StallDetectorOptions {
  /** A shard counts as stalled after this long without progress. */
  stallTimeoutMs: number;
  /**
   * Not ready when no lease cycle has succeeded for this long (the lease table is unreachable:
   * this worker's leases are expiring). Default: no such check.
   */
  maxLeaseCycleAgeMs?: number;
  logger?: Logger;
  /** Monotonic clock. */
  now?: () => number;
}

/**
 * Notices shards that stopped moving: the failure mode where a consumer looks alive (process up,
 * leases renewed) while a shard's reader is stuck, or a child shard is never picked up after its
 * parent ended. Fed by pipeline events; `stalled()` is read by /readyz and the metrics.
 */
export class StallDetector implements PipelineObserver {
  private readonly o: StallDetectorOptions;
  private readonly now: () => number;
  /** Held shards: when their reader last made progress (or the lease was taken). */
  private readonly progress = new Map<string, number>();
  /** Readable shards nobody holds: since when. */
  private readonly unowned = new Map<string, number>();
  private readonly reported = new Set<string>();
  private cycles = 0;
  private lastCycleAt = 0;
  private heldCount = 0;

  constructor(options: StallDetectorOptions) {
    this.o = options;
    this.now = options.now ?? (() => performance.now());
  }

  pageConsumed(page: { shardId: string }): void {
    if (this.progress.has(page.shardId)) this.progress.set(page.shardId, this.now());
  }

  leaseChanged(shardId: string, change: LeaseChange): void {
    if (change === 'taken' || change === 'stolen') this.progress.set(shardId, this.now());
    else this.progress.delete(shardId);
  }

  leaseCycle(cycle: { held: readonly string[]; readableUnowned: readonly string[] }): void {
    this.cycles++;
    const now = this.now();
    this.lastCycleAt = now;
    const held = new Set(cycle.held);
    this.heldCount = held.size;
    for (const shardId of this.progress.keys()) if (!held.has(shardId)) this.progress.delete(shardId);
    for (const shardId of held) if (!this.progress.has(shardId)) this.progress.set(shardId, now);
    const unowned = new Set(cycle.readableUnowned);
    for (const shardId of this.unowned.keys()) if (!unowned.has(shardId)) this.unowned.delete(shardId);
    for (const shardId of unowned) if (!this.unowned.has(shardId)) this.unowned.set(shardId, now);
    this.report();
  }

  /** Shards stalled now. */
  stalled(): StalledShard[] {
    const now = this.now();
    const limit = this.o.stallTimeoutMs;
    const out: StalledShard[] = [];
    for (const [shardId, since] of this.progress) {
      if (now - since >= limit) out.push({ shardId, reason: 'no-progress', sinceMs: since });
    }
    for (const [shardId, since] of this.unowned) {
      if (now - since >= limit) out.push({ shardId, reason: 'not-read', sinceMs: since });
    }
    return out.sort((a, b) => (a.shardId < b.shardId ? -1 : a.shardId > b.shardId ? 1 : 0));
  }

  /**
   * Ready: a lease cycle has run (recently, when maxLeaseCycleAgeMs is set), and this worker holds
   * leases or none are waiting to be taken, and no shard is stalled.
   */
  readiness(): { ready: boolean; reason: string } {
    if (this.cycles === 0) return { ready: false, reason: 'no lease cycle has completed yet' };
    const cycleAge = this.now() - this.lastCycleAt;
    if (this.o.maxLeaseCycleAgeMs !== undefined && cycleAge > this.o.maxLeaseCycleAgeMs) {
      return {
        ready: false,
        reason: `no lease cycle has succeeded for ${Math.round(cycleAge / 1000)} s (lease table unreachable?)`,
      };
    }
    const stalled = this.stalled();
    if (stalled.length > 0) {
      return {
        ready: false,
        reason: `stalled shards: ${stalled.map((s) => `${s.shardId} (${s.reason})`).join(', ')}`,
      };
    }
    if (this.heldCount === 0 && this.unowned.size > 0) {
      return { ready: false, reason: `${this.unowned.size} readable shards are waiting to be taken` };
    }
    return { ready: true, reason: `${this.heldCount} leases held` };
  }

  /** One error log per shard as it becomes stalled, one info log when it recovers. */
  private report(): void {
    const now = new Set<string>();
    for (const s of this.stalled()) {
      const key = `${s.shardId}|${s.reason}`;
      now.add(key);
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      this.o.logger?.error(
        {
          shardId: s.shardId,
          reason: s.reason,
          stalledForMs: Math.round(this.now() - s.sinceMs),
        },
        s.reason === 'no-progress'
          ? 'shard stalled: its reader made no progress'
          : 'shard stalled: readable but no worker is reading it',
      );
    }
    for (const key of this.reported) {
      if (now.has(key)) continue;
      this.reported.delete(key);
      const [shardId, reason] = key.split('|');
      this.o.logger?.info({ shardId, reason }, 'shard no longer stalled');
    }
  }
}
