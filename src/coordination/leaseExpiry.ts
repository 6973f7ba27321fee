import { DEFAULTS } from './config.js';
import type { Lease, LeaseFields } from './lease.js';

export interface LeaseExpiryOptions<L extends LeaseFields = Lease> {
  /** How long a held lease's counter may stand still before the lease counts as expired. Default 10 s. */
  failoverMs?: number;
  /** Monotonic milliseconds; defaults to performance.now(). Injectable for tests. */
  now?: () => number;
  /** What a lease is known by from one listing to the next. Default its shardId (shard leases). */
  idOf?: (lease: L) => string;
}

/** The options of a tracker of `L`: leases without a shardId (the sealer's, ...) must say what names them. */
export type LeaseExpiryTrackerOptions<L extends LeaseFields = Lease> = LeaseExpiryOptions<L> &
  (L extends { shardId: string } ? unknown : { idOf: (lease: L) => string });

/** What the balancer needs to know about expiry. */
export interface LeaseExpiry<L extends LeaseFields = Lease> {
  isExpired(lease: L, now?: number): boolean;
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
 * The one expiry rule of every lease (fencedLease.ts): the shard leases, the sealer lease.
 */
export class LeaseExpiryTracker<L extends LeaseFields = Lease> implements LeaseExpiry<L> {
  readonly failoverMs: number;
  private readonly now: () => number;
  private readonly idOf: (lease: L) => string;
  private readonly sightings = new Map<string, Sighting>();

  constructor(options: LeaseExpiryTrackerOptions<L> = {} as LeaseExpiryTrackerOptions<L>) {
    this.failoverMs = options.failoverMs ?? DEFAULTS.lease.failoverMs;
    this.now = options.now ?? (() => performance.now());
    this.idOf = options.idOf ?? ((lease) => (lease as Partial<Lease>).shardId ?? '');
  }

  /**
   * Records a full listing of the leases (the stream's shard leases; the sealer lease alone): a
   * counter seen for the first time, or changed since the last listing, starts a new wait. Leases
   * missing from the listing are forgotten.
   */
  observe(leases: readonly L[], now: number = this.now()): void {
    const listed = new Set<string>();
    for (const lease of leases) {
      const id = this.idOf(lease);
      listed.add(id);
      const seen = this.sightings.get(id);
      if (seen === undefined || seen.counter !== lease.leaseCounter) {
        this.sightings.set(id, { counter: lease.leaseCounter, since: now });
      }
    }
    for (const id of this.sightings.keys()) {
      if (!listed.has(id)) this.sightings.delete(id);
    }
  }

  /**
   * True when `lease` may be taken without stealing: it is free, or its holder has not renewed it
   * for failoverMs. A counter this tracker has not observed (never seen, or newer than the last
   * listing) is fresh evidence of life, so not expired.
   */
  isExpired(lease: L, now: number = this.now()): boolean {
    if (lease.owner === undefined) return true;
    const seen = this.sightings.get(this.idOf(lease));
    if (seen === undefined || seen.counter !== lease.leaseCounter) return false;
    return now - seen.since >= this.failoverMs;
  }
}
