import type { Lease } from './lease.js';

export interface LeaseExpiryOptions {
  /** How long a held lease's counter may stand still before the lease counts as expired. Default 10 s. */
  failoverMs?: number;
  /** Monotonic milliseconds; defaults to performance.now(). Injectable for tests. */
  now?: () => number;
}

/** What the balancer needs to know about expiry. */
export interface LeaseExpiry {
  isExpired(lease: Lease, now?: number): boolean;
}

interface Sighting {
  counter: number;
  /** When this worker first saw the lease at `counter`, on its own monotonic clock. */
  since: number;
}

/**
 * Decides lease expiry the way KCL does: a held lease is expired when its leaseCounter has not
 * moved for `failoverMs` as measured on THIS worker's monotonic clock. No timestamp from another
 * machine is ever compared, so clock skew or a wall-clock jump cannot expire a live lease.
 */
export class LeaseExpiryTracker implements LeaseExpiry {
  readonly failoverMs: number;
  private readonly now: () => number;
  private readonly sightings = new Map<string, Sighting>();

  constructor(options: LeaseExpiryOptions = {}) {
    this.failoverMs = options.failoverMs ?? 10_000;
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Records a full listing of the stream's leases: a counter seen for the first time, or changed
   * since the last listing, starts a new wait. Shards missing from the listing are forgotten.
   */
  observe(leases: readonly Lease[], now: number = this.now()): void {
    const listed = new Set<string>();
    for (const lease of leases) {
      listed.add(lease.shardId);
      const seen = this.sightings.get(lease.shardId);
      if (seen === undefined || seen.counter !== lease.leaseCounter) {
        this.sightings.set(lease.shardId, { counter: lease.leaseCounter, since: now });
      }
    }
    for (const shardId of this.sightings.keys()) {
      if (!listed.has(shardId)) this.sightings.delete(shardId);
    }
  }

  /**
   * True when `lease` may be taken without stealing: it is free, or its holder has not renewed it
   * for failoverMs. A counter this tracker has not observed (never seen, or newer than the last
   * listing) is fresh evidence of life, so not expired.
   */
  isExpired(lease: Lease, now: number = this.now()): boolean {
    if (lease.owner === undefined) return true;
    const seen = this.sightings.get(lease.shardId);
    if (seen === undefined || seen.counter !== lease.leaseCounter) return false;
    return now - seen.since >= this.failoverMs;
  }
}
