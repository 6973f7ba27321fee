import { SHARD_END } from '../changelog/sequenceNumber.js';
import type { Lease } from './lease.js';
import type { LeaseExpiry } from './leaseExpiry.js';

export interface PlanLeaseTakesInput {
  /** A full listing of the stream's leases. */
  leases: readonly Lease[];
  workerId: string;
  expiry: LeaseExpiry;
  /** The expiry clock's current time, so the plan depends on its inputs only. */
  now: number;
}

export interface LeaseTakePlan {
  /** Free or expired leases to take, in shardId order. */
  take: Lease[];
  /** At most one lease to take from a live, more loaded worker. */
  steal?: Lease;
  /** Readable leases no live worker holds (before this plan's takes): stall detection watches them. */
  available: Lease[];
}

/**
 * Decides which leases this worker should try to take in one balancing cycle.
 *
 * Only readable shards count as work: not SHARD_END, and every parent finished (its lease at
 * SHARD_END, or gone from the table: trimmed or cleaned up). Shards still waiting on a parent are
 * left out of the target, or the first worker would size its share by work nobody can start yet
 * and keep every readable shard. Live workers are the owners of unexpired leases, plus this one;
 * the target is ceil(readable / workers).
 *
 * Below target, free and expired readable leases are taken first. Only when there are none does
 * the worker steal, one lease per cycle, from the most loaded worker, and only if that worker is
 * above target or at least two ahead of this one (without the latter, 10 shards over 3 workers
 * can stick at 4/4/2). One steal per cycle keeps a fleet from thrashing while it converges.
 */
export function planLeaseTakes(input: PlanLeaseTakesInput): LeaseTakePlan {
  const { workerId, expiry, now } = input;
  const leases = [...input.leases].sort((a, b) => compareIds(a.shardId, b.shardId));
  const byShard = new Map(leases.map((lease) => [lease.shardId, lease]));
  const finished = (shardId: string) => {
    const parent = byShard.get(shardId);
    return parent === undefined || parent.checkpoint === SHARD_END;
  };
  // Our own leases are live whatever the tracker says: taking one would fence out our own reader.
  const live = (lease: Lease) =>
    lease.owner !== undefined && (lease.owner === workerId || !expiry.isExpired(lease, now));

  const workers = new Set([workerId]);
  for (const lease of leases) if (live(lease)) workers.add(lease.owner!);

  const readable = leases.filter((l) => l.checkpoint !== SHARD_END && l.parentShardIds.every(finished));
  const load = new Map<string, Lease[]>();
  for (const lease of readable) {
    if (!live(lease)) continue;
    const owned = load.get(lease.owner!) ?? [];
    owned.push(lease);
    load.set(lease.owner!, owned);
  }

  const target = Math.ceil(readable.length / workers.size);
  const held = load.get(workerId)?.length ?? 0;
  const available = readable.filter((lease) => !live(lease));
  if (held >= target) return { take: [], available };
  if (available.length > 0) return { take: available.slice(0, target - held), available };

  let victim: Lease[] | undefined;
  for (const owner of [...load.keys()].sort(compareIds)) {
    const owned = load.get(owner)!;
    if (owner !== workerId && (victim === undefined || owned.length > victim.length)) victim = owned;
  }
  if (victim !== undefined && (victim.length > target || victim.length - held >= 2)) {
    return { take: [], steal: victim[0]!, available };
  }
  return { take: [], available };
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
