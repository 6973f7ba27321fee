import { ChangelogError } from '../support/errors.js';

/**
 * Stream positions: sequence numbers and the two checkpoint literals. One home for their ordering,
 * used by the committer, the leases, the sealer, `verify` and the read side alike.
 */

/** Checkpoint of a shard nothing has been read from yet: reading starts at the oldest record. */
export const TRIM_HORIZON = 'TRIM_HORIZON';
/** Checkpoint of a shard read to its end; its children may start. */
export const SHARD_END = 'SHARD_END';

const SEQUENCE_NUMBER = /^\d+$/;

/**
 * Compares two sequence-number strings as integers: they are 21-40 digit strings, beyond float64
 * and not of equal length (the 21st digit becomes a 22nd as a stream ages).
 */
export function compareSequenceNumbers(a: string, b: string): number {
  const ta = a.replace(/^0+(?=\d)/, '');
  const tb = b.replace(/^0+(?=\d)/, '');
  if (ta.length !== tb.length) return ta.length - tb.length;
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

/** True for a stream sequence number (a string of digits). */
export function isSequenceNumber(value: string): boolean {
  return SEQUENCE_NUMBER.test(value);
}

/** True for the values a checkpoint may hold: a sequence number or one of the two literals. */
export function isValidCheckpoint(value: string): boolean {
  return value === TRIM_HORIZON || value === SHARD_END || SEQUENCE_NUMBER.test(value);
}

/**
 * Orders checkpoints: TRIM_HORIZON before every sequence number, SHARD_END after every one, and
 * sequence numbers as integers.
 */
export function compareCheckpoints(a: string, b: string): number {
  assertValidCheckpoint(a);
  assertValidCheckpoint(b);
  if (a === b) return 0;
  if (a === TRIM_HORIZON || b === SHARD_END) return -1;
  if (a === SHARD_END || b === TRIM_HORIZON) return 1;
  return compareSequenceNumbers(a, b);
}

/** The same position: equal checkpoints, or sequence numbers equal as integers. */
export function samePosition(a: string, b: string): boolean {
  if (isSequenceNumber(a) && isSequenceNumber(b)) return compareSequenceNumbers(a, b) === 0;
  return a === b;
}

function assertValidCheckpoint(value: string): void {
  if (!isValidCheckpoint(value)) {
    throw new ChangelogError(
      `invalid checkpoint ${JSON.stringify(value)}: expected a sequence number, ${TRIM_HORIZON} or ${SHARD_END}`,
      { retriable: false },
    );
  }
}

/** A sequence number without leading zeros (a canonical map key); the literals unchanged. */
export function normalizeSequenceNumber(value: string): string {
  return isSequenceNumber(value) ? value.replace(/^0+(?=\d)/, '') : value;
}
