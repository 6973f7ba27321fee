import { ChangelogError } from '../errors.js';
import { compareSequenceNumbers } from '../segment/byteColumn.js';

/** Checkpoint of a shard nothing has been read from yet: reading starts at the oldest record. */
export const TRIM_HORIZON = 'TRIM_HORIZON';
/** Checkpoint of a shard read to its end; its children may start. */
export const SHARD_END = 'SHARD_END';

/** One shard's lease, as read from the lease table (see leaseTable.ts for the item layout). */
export interface Lease {
  readonly shardId: string;
  /** Worker id of the holder; undefined when the lease is free. */
  readonly owner?: string | undefined;
  /** +1 on every renew, take and release: a counter that stops moving means a dead holder. */
  readonly leaseCounter: number;
  /** +1 on every acquisition: the fencing token every write of the holder is conditional on. */
  readonly leaseEpoch: number;
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
}

const SEQUENCE_NUMBER = /^\d+$/;

/** True for the values a checkpoint may hold: a sequence number or one of the two literals. */
export function isValidCheckpoint(value: string): boolean {
  return value === TRIM_HORIZON || value === SHARD_END || SEQUENCE_NUMBER.test(value);
}

/**
 * Orders checkpoints: TRIM_HORIZON before every sequence number, SHARD_END after every one, and
 * sequence numbers as integers (they are 21-40 digit strings, beyond float64 and not equal-length).
 */
export function compareCheckpoints(a: string, b: string): number {
  assertValidCheckpoint(a);
  assertValidCheckpoint(b);
  if (a === b) return 0;
  if (a === TRIM_HORIZON || b === SHARD_END) return -1;
  if (a === SHARD_END || b === TRIM_HORIZON) return 1;
  return compareSequenceNumbers(a, b);
}

function assertValidCheckpoint(value: string): void {
  if (!isValidCheckpoint(value)) {
    throw new ChangelogError(
      `invalid checkpoint ${JSON.stringify(value)}: expected a sequence number, ${TRIM_HORIZON} or ${SHARD_END}`,
      { retriable: false },
    );
  }
}
