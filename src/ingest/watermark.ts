import { SHARD_END } from '../changelog/sequenceNumber.js';
import type { Lease } from '../coordination/lease.js';

/** What a shard lease says about progress: every record with an event time before it is committed. */
export function shardProgress(lease: Lease): number | undefined {
  const a = lease.lastEventTimeMs;
  const b = lease.caughtUpAtMs;
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.max(a, b);
}

/**
 * The stream's watermark: the minimum progress over shards that are not finished. A shard whose
 * parents are still unfinished is skipped (its records are later than theirs, which already hold
 * the watermark back). Undefined while any shard that should count has no progress yet (not read
 * since its lease was made): nothing can be said about its records. When every shard is finished,
 * the latest progress of any shard.
 */
export function computeWatermark(leases: readonly Lease[]): number | undefined {
  if (leases.length === 0) return undefined;
  const byId = new Map(leases.map((l) => [l.shardId, l]));
  const unfinished = leases.filter((l) => l.checkpoint !== SHARD_END);
  if (unfinished.length === 0) {
    let max: number | undefined;
    for (const l of leases) {
      const p = shardProgress(l);
      if (p !== undefined && (max === undefined || p > max)) max = p;
    }
    return max;
  }
  let min: number | undefined;
  for (const lease of unfinished) {
    const waiting = lease.parentShardIds.some((p) => {
      const parent = byId.get(p);
      return parent !== undefined && parent.checkpoint !== SHARD_END;
    });
    if (waiting) continue;
    const p = shardProgress(lease);
    if (p === undefined) return undefined;
    if (min === undefined || p < min) min = p;
  }
  return min;
}
