import { ChangelogError, LeaseLostError } from '../support/errors.js';
import { sleep as abortableSleep } from '../support/retry.js';
import { DEFAULTS } from './config.js';
import type { FencedLease } from './fencedLease.js';
import type { HeldLease } from './lease.js';
import type { RegistryStore, SealerLeaseItem } from './registryStore.js';

/*
 * What `replay` keeps in the lease table, in the changelog's registry partition:
 *
 *   rewriter            the lease every window rewriter (replay, compaction) holds while it
 *                       writes: one at a time per table, so two never publish versions of the
 *                       same window from different bases
 *   replay#<replayId>   the replay's progress (JSON), written in one transaction with a fenced
 *                       bump of the lease: only the holder saves, and a save after the lease was
 *                       lost fails
 */

export const REWRITER_LEASE = 'rewriter';
const PROGRESS_PREFIX = 'replay#';
/** A DynamoDB item holds 400 KB; the progress must leave room for the key and attributes. */
const MAX_PROGRESS_BYTES = 380_000;

export interface ReplayStateStoreOptions {
  registry: RegistryStore;
  replayId: string;
  /** Default DEFAULTS.lease.failoverMs: a holder whose counter stands still this long is dead. */
  failoverMs?: number;
  /** Longest wait for another holder's lease to expire. Default 3 × failoverMs. */
  maxWaitMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * The replay's lease and its saved progress. Owner `replay:<replayId>`: the same replay run again
 * (after a crash or Ctrl-C) takes its own lease over at once, fencing out any earlier run of it;
 * another rewriter's lease is taken only once its counter stood still for failoverMs (the holder
 * died), otherwise the replay is refused, naming the holder.
 */
export class ReplayStateStore {
  private readonly lease: FencedLease<SealerLeaseItem>;
  private readonly owner: string;
  private readonly failoverMs: number;
  private readonly maxWaitMs: number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(private readonly o: ReplayStateStoreOptions) {
    this.lease = o.registry.lease(REWRITER_LEASE);
    this.owner = `replay:${o.replayId}`;
    this.failoverMs = o.failoverMs ?? DEFAULTS.lease.failoverMs;
    this.maxWaitMs = o.maxWaitMs ?? 3 * this.failoverMs;
    this.sleep = o.sleep ?? abortableSleep;
  }

  async acquire(signal?: AbortSignal): Promise<HeldLease<SealerLeaseItem>> {
    let waited = 0;
    let observed = await this.lease.get(signal);
    let standingSince = 0;
    for (;;) {
      const free = observed?.owner === undefined || observed.owner === this.owner;
      if (free || waited - standingSince >= this.failoverMs) {
        const held = await this.lease.take(observed, this.owner, signal);
        if (held !== undefined) return held;
        // Another rewriter moved first: look again.
        observed = await this.lease.get(signal);
        standingSince = waited;
        continue;
      }
      if (waited >= this.maxWaitMs) {
        throw new ChangelogError(
          `replay ${this.o.replayId}: ${observed!.owner} holds the rewriter lease of table ${this.o.registry.table} (in lease table ${this.o.registry.tableName}) and is alive; a replay or compaction rewrites windows one at a time: wait for it to finish`,
          { retriable: true },
        );
      }
      const step = Math.max(1, Math.min(1000, this.failoverMs / 4));
      await this.sleep(step, signal);
      waited += step;
      const again = await this.lease.get(signal);
      if (again?.leaseCounter !== observed?.leaseCounter || again?.owner !== observed?.owner)
        standingSince = waited;
      observed = again;
    }
  }

  /** Heartbeat: throws LeaseLostError when another rewriter took the lease. */
  renew(held: HeldLease<SealerLeaseItem>, signal?: AbortSignal): Promise<HeldLease<SealerLeaseItem>> {
    return this.lease.renew(held, signal);
  }

  async release(held: HeldLease<SealerLeaseItem>, signal?: AbortSignal): Promise<void> {
    await this.lease.release(held, signal).catch((error: unknown) => {
      if (!(error instanceof LeaseLostError)) throw error;
    });
  }

  /** The replay's saved progress (the JSON text `save` stored), or undefined for a new replay. */
  async load(signal?: AbortSignal): Promise<string | undefined> {
    const item = await this.o.registry.getItem(PROGRESS_PREFIX + this.o.replayId, signal);
    return item?.['progress']?.S;
  }

  /**
   * Saves the progress, fenced: one transaction bumps the lease's counter (only while this run
   * holds it at its epoch) and puts the progress item. Throws LeaseLostError when the lease was
   * taken, so a replay that lost it stops before it writes anything more.
   */
  async save(
    held: HeldLease<SealerLeaseItem>,
    progress: string,
    signal?: AbortSignal,
  ): Promise<HeldLease<SealerLeaseItem>> {
    if (Buffer.byteLength(progress, 'utf8') > MAX_PROGRESS_BYTES) {
      throw new ChangelogError(
        `replay ${this.o.replayId}: its progress is ${Buffer.byteLength(progress, 'utf8')} bytes, more than a lease-table item holds (${MAX_PROGRESS_BYTES}); replay a shorter range`,
        { retriable: false },
      );
    }
    const bump = this.lease.fencedUpdate(held, {
      update: 'SET #leaseCounter = #leaseCounter + :one',
      names: { '#leaseCounter': 'leaseCounter' },
      values: { ':one': { N: '1' } },
    });
    try {
      await this.o.registry.transact(
        [
          { Update: bump },
          this.o.registry.itemPut(PROGRESS_PREFIX + this.o.replayId, { progress: { S: progress } }),
        ],
        signal,
      );
    } catch (error) {
      const current = await this.lease.get(signal);
      if (current === undefined || !this.lease.holds(current, held))
        throw this.lease.lost(held, current, 'save progress');
      throw error;
    }
    return { ...held, leaseCounter: held.leaseCounter + 1 };
  }
}
