/**
 * Where a shard whose checkpoint is still TRIM_HORIZON (nothing committed yet) starts reading,
 * decided once when its lease is created (see leaseStore.ts, ensureLeases):
 * - `TRIM_HORIZON`: the shard was listed when the changelog began (or is an ancestor of such a
 *   shard). Its oldest retained record is where the changelog starts: not a gap.
 * - `AT_SEQUENCE_NUMBER`: every later shard starts at its `startingSequenceNumber`, so records the
 *   stream trimmed before they were read raise TrimmedDataAccessException and become a gap.
 * - `VANISHED`: a parent no longer listed (trimmed away entirely) of a child created after the
 *   changelog began; its reader records the whole shard as a gap and ends it.
 */
export type LeaseStartAt = 'TRIM_HORIZON' | 'AT_SEQUENCE_NUMBER' | 'VANISHED';

export const LEASE_START_AT: readonly LeaseStartAt[] = ['TRIM_HORIZON', 'AT_SEQUENCE_NUMBER', 'VANISHED'];

/** The reader's start position for a lease without a checkpoint (see ShardReaderOptions.startAt). */
export type LeaseStartPosition =
  | { readonly type: 'TRIM_HORIZON' }
  | { readonly type: 'AT_SEQUENCE_NUMBER'; readonly sequenceNumber: string }
  | { readonly type: 'VANISHED' };

/**
 * What every lease item carries, whatever it is the lease of (a shard, the sealer, ...); the one
 * mechanism on it is coordination/fencedLease.ts.
 */
export interface LeaseFields {
  /** Worker id of the holder; undefined when the lease is free. */
  readonly owner?: string | undefined;
  /** +1 on every renew, take and release: a counter that stops moving means a dead holder. */
  readonly leaseCounter: number;
  /** +1 on every acquisition: the fencing token every write of the holder is conditional on. */
  readonly leaseEpoch: number;
}

/** A lease as its holder has it: owned. */
export type HeldLease<L extends LeaseFields> = L & { readonly owner: string };

/** One shard's lease, as read from the lease table (see leaseTable.ts for the item layout). */
export interface Lease extends LeaseFields {
  readonly shardId: string;
  /** A sequence number (the last record committed), TRIM_HORIZON or SHARD_END. */
  readonly checkpoint: string;
  readonly parentShardIds: readonly string[];
  /** Event time of the last committed record, for the watermark. */
  readonly lastEventTimeMs?: number | undefined;
  /**
   * DynamoDB's clock (Date header) when the holder last found the shard read to its tip with
   * nothing of it left uncommitted: every record older than that is committed (watermark input).
   */
  readonly caughtUpAtMs?: number | undefined;
  /**
   * The window the shard's last committed records went to. A shard's records never go to an
   * earlier window than its previous ones, so each window holds a contiguous run of every shard.
   */
  readonly windowStartMs?: number | undefined;
  /**
   * Where reading starts while the checkpoint is TRIM_HORIZON. Absent on items written before it
   * existed: those start at TRIM_HORIZON, as they always did.
   */
  readonly startAt?: LeaseStartAt | undefined;
  /** The shard's StartingSequenceNumber from DescribeStream, when it was listed with one. */
  readonly startingSequenceNumber?: string | undefined;
  /**
   * A worker that asked the holder to hand the lease over (balancing): the holder commits what
   * it has of the shard, then transfers the lease to it (LeaseStore.handOff).
   */
  readonly pendingOwner?: string | undefined;
}

/**
 * Where a lease with no checkpoint starts reading. A lease marked AT_SEQUENCE_NUMBER without a
 * starting sequence number (a listing that lacked it) is read like a VANISHED one: the reader looks
 * the shard up and records a gap when it cannot prove nothing was trimmed.
 */
export function startPositionOf(
  lease: Pick<Lease, 'startAt' | 'startingSequenceNumber'>,
): LeaseStartPosition {
  switch (lease.startAt) {
    case undefined:
    case 'TRIM_HORIZON':
      return { type: 'TRIM_HORIZON' };
    case 'AT_SEQUENCE_NUMBER':
      return lease.startingSequenceNumber === undefined
        ? { type: 'VANISHED' }
        : { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: lease.startingSequenceNumber };
    case 'VANISHED':
      return { type: 'VANISHED' };
  }
}
