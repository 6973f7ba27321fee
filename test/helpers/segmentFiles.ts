import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChangeBuffer } from '../../src/changelog/changeBuffer.js';
import { type KeySchema, keyAttributes, keyColumnName } from '../../src/changelog/keySchema.js';
import { encodeSegment } from '../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../src/changelog/wireRecordDecoder.js';
import type { Row } from './parquetReaders.js';
import { getRecordsResponse, type WireItem, type WireRecord } from './streamRecords.js';

/*
 * Small, hand-written histories of items, encoded into real change segment files by the real
 * encoder, and what an engine must answer for them (every change; each item's latest state).
 */

export const SEGMENT_SHARD = 'shardId-00000001763800000000-cccccccc';

export interface ItemChange {
  op: 'INSERT' | 'MODIFY' | 'REMOVE';
  /** One value per key attribute, partition key first, as DynamoDB JSON text values. */
  key: readonly string[];
  sequenceNumber: string;
  /** The new image's `status` (none for a REMOVE). */
  status?: string;
  timeSeconds?: number;
}

/** A stream record of `change` for a table with `schema` (keys typed as the schema says). */
export function wireChange(schema: KeySchema, change: ItemChange): WireRecord {
  const keys: WireItem = {};
  keyAttributes(schema).forEach((a, i) => {
    keys[a.name] = { [a.type]: change.key[i]! } as WireItem[string];
  });
  const record: WireRecord = {
    awsRegion: 'us-east-1',
    dynamodb: {
      ApproximateCreationDateTime: change.timeSeconds ?? 1_763_805_600,
      Keys: keys,
      SequenceNumber: change.sequenceNumber,
      SizeBytes: 100,
      StreamViewType: 'NEW_IMAGE',
    },
    eventID: `event-${change.sequenceNumber}`,
    eventName: change.op,
    eventSource: 'aws:dynamodb',
    eventVersion: '1.1',
  };
  if (change.op !== 'REMOVE') record.dynamodb.NewImage = { ...keys, status: { S: change.status ?? 'NEW' } };
  return record;
}

/** Encodes `records` into one segment file in `dir`; returns its path. */
export function writeSegmentFile(
  dir: string,
  name: string,
  schema: KeySchema,
  records: WireRecord[],
): string {
  const buffer = new ChangeBuffer(schema);
  decodeGetRecordsResponse(getRecordsResponse(records), SEGMENT_SHARD, buffer);
  const path = join(dir, name);
  writeFileSync(path, encodeSegment(buffer).bytes);
  return path;
}

/** Every change as an engine reads it back (parquetReaders.ts Row shape), in no particular order. */
export function changeRowsOf(schema: KeySchema, records: readonly WireRecord[]): Row[] {
  return records.map((r) => {
    const row: Row = {
      event_id: r.eventID,
      op: r.eventName,
      event_time: r.dynamodb.ApproximateCreationDateTime * 1000,
      sequence_number: r.dynamodb.SequenceNumber,
      shard_id: SEGMENT_SHARD,
      keys: JSON.stringify(r.dynamodb.Keys),
      new_image: r.dynamodb.NewImage ? JSON.stringify(r.dynamodb.NewImage) : null,
      old_image: null,
    };
    for (const a of keyAttributes(schema)) {
      const value = (r.dynamodb.Keys[a.name] as Record<string, string>)[a.type]!;
      row[keyColumnName(a.name)] = a.type === 'B' ? Buffer.from(value, 'base64') : value;
    }
    row.size_bytes = r.dynamodb.SizeBytes;
    row.ttl_delete = false;
    return row;
  });
}

/** Each item's latest change (highest sequence number as an integer), items last removed left out. */
export function latestRowsOf(schema: KeySchema, records: readonly WireRecord[]): Row[] {
  const latest = new Map<string, WireRecord>();
  for (const r of records) {
    const id = JSON.stringify(keyAttributes(schema).map((a) => r.dynamodb.Keys[a.name]));
    const held = latest.get(id);
    if (!held || BigInt(r.dynamodb.SequenceNumber) > BigInt(held.dynamodb.SequenceNumber)) latest.set(id, r);
  }
  return changeRowsOf(
    schema,
    [...latest.values()].filter((r) => r.eventName !== 'REMOVE'),
  );
}

/** Rows in a fixed order (by event id) so two sets of rows compare with toEqual. */
export function byEventId(rows: readonly Row[]): Row[] {
  const id = (row: Row) => String(row['event_id']);
  return [...rows].sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
}
