import { createHash } from 'node:crypto';
import { MalformedRecordError } from '../support/errors.js';
import { type AttributeMap, attributeMapToJson } from './attributeValueJson.js';
import { type ChangeBuffer, OP_NET, OP_SNAPSHOT } from './changeBuffer.js';
import { appendObjectRow } from './sdkRecordDecoder.js';

/*
 * Rows that did not come from the stream: an item's state at a snapshot time (SNAPSHOT: a full
 * export or a scan) or an incremental export's final state of an item over its period (NET). They
 * have no sequence number and no shard, so by convention:
 *
 * - `sequence_number` is "0" and `shard_id` is "" (both columns are required);
 * - `event_id` is `<replayId>:<32 hex of sha256(keys)>`: one row per item and replay, and the same
 *   id when a resumed replay writes the row again (segments stay byte-identical);
 * - `event_time` is the snapshot time (scan start, export time) for SNAPSHOT and the item's last
 *   write (WriteTimestampMicros, truncated to ms) for NET;
 * - a NET row of a deleted item has no new image (a tombstone: `changes --latest` drops it);
 * - `size_bytes` is the UTF-8 length of the keys and images as DynamoDB JSON (the stream's
 *   SizeBytes is DynamoDB's own measure, not available here);
 * - `ttl_delete` is false (an export does not say who deleted an item).
 *
 * How these rows order against stream rows of the same item is read/latestMerge.ts's rule.
 */

/** The sequence number and shard id of every snapshot row. */
export const SNAPSHOT_SEQUENCE_NUMBER = '0';
export const SNAPSHOT_SHARD_ID = '';

export interface SnapshotRow {
  op: 'SNAPSHOT' | 'NET';
  /** The item's key attributes; taken from `newImage` when absent. */
  keys?: AttributeMap | undefined;
  /** The item (SNAPSHOT), or its state at the end of the period (NET; absent: deleted). */
  newImage?: AttributeMap | undefined;
  /** NET only: the item before the period, when the export has it (NEW_AND_OLD_IMAGES). */
  oldImage?: AttributeMap | undefined;
  eventTimeMs: number;
}

/** The event_id of a snapshot row of the item with these keys (DynamoDB JSON text) in a replay. */
export function snapshotEventId(replayId: string, keysJson: string): string {
  return `${replayId}:${createHash('sha256').update(keysJson, 'utf8').digest('hex').slice(0, 32)}`;
}

/**
 * Appends snapshot rows to `buffer`, all-or-nothing (a malformed item rolls the whole batch back
 * and throws MalformedRecordError naming it). Returns the number of rows appended.
 */
export function appendSnapshotRows(
  rows: readonly SnapshotRow[],
  replayId: string,
  buffer: ChangeBuffer,
): number {
  const mark = buffer.mark();
  const shardIndex = buffer.shardIndex(SNAPSHOT_SHARD_ID);
  let at = 0;
  try {
    for (; at < rows.length; at++) appendOne(rows[at]!, replayId, shardIndex, buffer, at);
  } catch (error) {
    buffer.rollback(mark);
    throw error;
  }
  return rows.length;
}

function appendOne(
  row: SnapshotRow,
  replayId: string,
  shardIndex: number,
  out: ChangeBuffer,
  at: number,
): void {
  function fail(message: string, cause?: unknown): never {
    throw new MalformedRecordError(`replay ${replayId} ${row.op} row ${at}: ${message}`, { cause });
  }
  if (row.op === 'SNAPSHOT' && row.newImage === undefined) fail('a SNAPSHOT row needs the item (newImage)');
  if (!Number.isFinite(row.eventTimeMs)) fail(`event time ${row.eventTimeMs} is not a time`);
  const keys = row.keys ?? keysOf(row.newImage, out, fail);
  let keysJson: string;
  let size: number;
  try {
    keysJson = attributeMapToJson(keys);
    size = Buffer.byteLength(keysJson, 'utf8');
    if (row.newImage) size += Buffer.byteLength(attributeMapToJson(row.newImage), 'utf8');
    if (row.oldImage) size += Buffer.byteLength(attributeMapToJson(row.oldImage), 'utf8');
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error), error);
  }
  appendObjectRow(
    out,
    {
      eventId: snapshotEventId(replayId, keysJson),
      sequenceNumber: SNAPSHOT_SEQUENCE_NUMBER,
      op: row.op === 'SNAPSHOT' ? OP_SNAPSHOT : OP_NET,
      eventTimeMs: Math.trunc(row.eventTimeMs),
      sizeBytes: Math.min(size, 0x7fffffff),
      ttlDelete: false,
      shardIndex,
      keys,
      newImage: row.newImage,
      oldImage: row.oldImage,
    },
    fail,
  );
}

/** The key attributes of an item, in the key schema's order (what the stream's Keys hold). */
function keysOf(
  item: AttributeMap | undefined,
  out: ChangeBuffer,
  fail: (message: string) => never,
): AttributeMap {
  if (item === undefined) fail('no keys and no item to take them from');
  const keys: AttributeMap = {};
  for (const attr of out.keyAttributes) {
    const value = item[attr.name];
    if (value === undefined) fail(`the item lacks key attribute ${JSON.stringify(attr.name)}`);
    keys[attr.name] = value;
  }
  return keys;
}
