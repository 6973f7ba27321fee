/** What a change row says happened (DESIGN.md "Ops"): stream ops, then replay's snapshot and net rows. */
export type ChangeOp = 'INSERT' | 'MODIFY' | 'REMOVE' | 'SNAPSHOT' | 'NET';

export const CHANGE_OPS: readonly ChangeOp[] = ['INSERT', 'MODIFY', 'REMOVE', 'SNAPSHOT', 'NET'];

/**
 * One row of a change segment as the read side hands it out: the segment's columns (DESIGN.md
 * "Parquet change segment columns") with images kept as the stored DynamoDB JSON text, byte for
 * byte, and where the row was read from.
 */
export interface ChangeRow {
  eventId: string;
  op: ChangeOp;
  /** ApproximateCreationDateTime, epoch milliseconds (UTC). */
  eventTimeMs: number;
  /** Decimal digits as the stream gave them; compare with compareSequenceNumbers. */
  sequenceNumber: string;
  shardId: string;
  /** The item's key attributes, DynamoDB JSON text. */
  keys: string;
  /** DynamoDB JSON text, or null (no new image: a REMOVE, or a KEYS_ONLY/OLD_IMAGE stream). */
  newImage: string | null;
  oldImage: string | null;
  sizeBytes: number;
  /** A REMOVE done by TTL. */
  ttlDelete: boolean;
  /**
   * The typed key columns by Parquet column name (keyColumnName): S and N as their text, B as
   * base64 of the bytes.
   */
  keyColumns: Record<string, string>;
  /** The window the row was committed in (a late row's window starts after its event time). */
  windowStartMs: number;
  /** The segment object holding the row, relative to the destination. */
  segmentKey: string;
}

/**
 * What the latest-per-key merge and the key order read of a row: a ChangeRow has all of it, and so
 * has a row decoded only that far (segmentRows.ts DecodedRow), whose images stay bytes until used.
 */
export type KeyedRow = Pick<
  ChangeRow,
  | 'eventId'
  | 'op'
  | 'sequenceNumber'
  | 'shardId'
  | 'keys'
  | 'keyColumns'
  | 'segmentKey'
  // Read only where a SNAPSHOT or NET row meets the item's other rows (latestMerge.ts).
  | 'eventTimeMs'
  | 'newImage'
>;

/** Replay's rows: an item's state at a time (sequence number "0", no shard), not a stream record. */
export function isSnapshotOp(op: ChangeOp): op is 'SNAPSHOT' | 'NET' {
  return op === 'SNAPSHOT' || op === 'NET';
}

/**
 * Whether a row says the item does not exist: a REMOVE, or a NET row without a new image (an
 * incremental export's item that was deleted in its period).
 */
export function isTombstone(row: Pick<ChangeRow, 'op' | 'newImage'>): boolean {
  return row.op === 'REMOVE' || (row.op === 'NET' && row.newImage === null);
}
