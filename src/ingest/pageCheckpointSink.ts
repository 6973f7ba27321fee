import { SHARD_END } from '../changelog/sequenceNumber.js';
import type { Lease } from '../coordination/lease.js';
import type { LeaseStore } from '../coordination/leaseStore.js';
import type { FetchedPage, PageSummary, StreamGap } from './shardReader.js';
import type { ShardSession, ShardSink } from './shardSink.js';

export interface CheckpointEvent {
  workerId: string;
  shardId: string;
  leaseEpoch: number;
  from: string;
  to: string;
}

export interface PageCheckpointSinkOptions {
  leases: LeaseStore;
  /** Takes a page; the page's last sequence number is checkpointed once this resolves. */
  consume: (page: FetchedPage, shardId: string) => Promise<PageSummary>;
  onGap?: ((gap: StreamGap) => Promise<void> | void) | undefined;
  onCheckpoint?: ((event: CheckpointEvent) => void) | undefined;
}

/**
 * At-least-once delivery: every page is handed to `consume`, then its last sequence number is
 * checkpointed under the lease (owner + epoch). A crash between the two repeats the page.
 */
export class PageCheckpointSink implements ShardSink {
  private readonly o: PageCheckpointSinkOptions;
  private readonly held = new Map<ShardSession, Lease>();

  constructor(options: PageCheckpointSinkOptions) {
    this.o = options;
  }

  open(session: ShardSession): void {
    this.held.set(session, session.lease);
  }

  async accept(session: ShardSession, page: FetchedPage): Promise<PageSummary> {
    const summary = await this.o.consume(page, session.shardId);
    if (summary.records > 0 && summary.lastSequenceNumber) {
      await this.checkpoint(session, summary.lastSequenceNumber, summary.lastEventTimeMs, session.signal);
    }
    return summary;
  }

  async gap(_session: ShardSession, gap: StreamGap): Promise<void> {
    await this.o.onGap?.(gap);
  }

  async finish(session: ShardSession): Promise<Lease> {
    // Not cut short by a stopping reader: a SHARD_END write that landed must be seen to land.
    return this.checkpoint(session, SHARD_END, undefined, undefined);
  }

  close(session: ShardSession): void {
    this.held.delete(session);
  }

  private async checkpoint(
    session: ShardSession,
    to: string,
    lastEventTimeMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Lease> {
    const held = this.held.get(session) ?? session.lease;
    const from = held.checkpoint;
    const next = await this.o.leases.checkpoint(held, { from, to, lastEventTimeMs }, signal);
    this.held.set(session, next);
    this.o.onCheckpoint?.({
      workerId: this.o.leases.workerId,
      shardId: session.shardId,
      leaseEpoch: next.leaseEpoch,
      from,
      to,
    });
    return next;
  }
}
