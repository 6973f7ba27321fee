import type { Lease } from '../coordination/lease.js';
import type { RenewProgress } from '../coordination/leaseStore.js';
import type { FetchedPage, PageSummary, StreamGap } from './shardReader.js';

/** One reader run of a held shard lease. */
export interface ShardSession {
  readonly shardId: string;
  /** The lease as read right before the reader started: held by this worker at its epoch. */
  readonly lease: Lease;
  /** Aborted when the reader stops. */
  readonly signal: AbortSignal;
  /**
   * Stops the reader (e.g. its data could not be committed). It starts again on the next lease
   * cycle from the committed checkpoint, unless the lease turns out lost.
   */
  restart(reason: Error): void;
}

/**
 * Where a StreamWorker's readers deliver: decides what is buffered, when it is committed and how
 * the shard checkpoints move. The worker only keeps leases and runs readers.
 */
export interface ShardSink {
  /** A reader starts at `session.lease.checkpoint`. */
  open(session: ShardSession): void;
  /** A page of the shard, in order; resolves once it is taken (waiting here is backpressure). */
  accept(session: ShardSession, page: FetchedPage): Promise<PageSummary>;
  /** The stream trimmed data before it was read. */
  gap(session: ShardSession, gap: StreamGap): Promise<void>;
  /** The shard was read to its end: commit what is left of it and move it to SHARD_END. */
  finish(session: ShardSession): Promise<Lease>;
  /**
   * The reader stopped. `keep` is true when the worker is stopping gracefully (buffered data is
   * committed by `drain`); otherwise anything of the shard not yet committed is dropped.
   */
  close(session: ShardSession, keep: boolean): void;
  /**
   * The shard is being handed to another worker (balancing) and its reader has stopped: commit
   * everything of it that is buffered, so the next holder starts where this one stopped. If this
   * fails, the shard's uncommitted rows are dropped by `close` (the next holder reads them again).
   */
  handOff?(session: ShardSession): Promise<void>;
  /** What the shard's next lease renewal reports (e.g. caught up at the tip). */
  progress?(shardId: string): RenewProgress | undefined;
  /** Graceful stop: commit everything kept, while the leases are still held. */
  drain?(signal?: AbortSignal): Promise<void>;
}
