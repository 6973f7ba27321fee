import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { appendSnapshotRows, snapshotEventId } from '../../../src/changelog/snapshotRows.js';
import { decodeSegmentRows } from '../../../src/read/segmentRows.js';
import { MalformedRecordError } from '../../../src/support/errors.js';

const SCHEMA = parseKeySchema('pk:S,sk:N');
const T = Date.UTC(2026, 11, 4, 3, 0, 0, 123);
const SOURCE = { segmentKey: 'orders/data/x.parquet', windowStartMs: Date.UTC(2026, 11, 4, 3) };

describe('appendSnapshotRows', () => {
  it('writes SNAPSHOT and NET rows as segment rows: sequence number "0", no shard, one event id per item and replay', () => {
    const buffer = new ChangeBuffer(SCHEMA);
    const item = {
      pk: { S: 'order-1' },
      sk: { N: '12345678901234567890123456789012345678' },
      tags: { SS: ['a', 'b'] },
      blob: { B: 'AAEC' },
      empty: { S: '' },
    };
    appendSnapshotRows(
      [
        { op: 'SNAPSHOT', newImage: item, eventTimeMs: T },
        // An incremental export's deleted item: keys, no new image (a tombstone).
        { op: 'NET', keys: { pk: { S: 'order-2' }, sk: { N: '7' } }, eventTimeMs: T + 1 },
      ],
      'replay-1',
      buffer,
    );
    const rows = [...decodeSegmentRows(encodeSegment(buffer).bytes, SOURCE)];
    expect(rows.map((r) => [r.op, r.sequenceNumber, r.shardId, r.eventTimeMs, r.ttlDelete])).toEqual([
      ['SNAPSHOT', '0', '', T, false],
      ['NET', '0', '', T + 1, false],
    ]);
    const [snapshot, net] = rows;
    expect(JSON.parse(snapshot!.newImage!)).toEqual(item);
    expect(JSON.parse(snapshot!.keys)).toEqual({ pk: item.pk, sk: item.sk });
    expect(snapshot!.keyColumns).toEqual({ pk: 'order-1', sk: '12345678901234567890123456789012345678' });
    expect(snapshot!.eventId).toBe(snapshotEventId('replay-1', snapshot!.keys));
    expect(snapshot!.eventId).toMatch(/^replay-1:[0-9a-f]{32}$/);
    expect(snapshot!.sizeBytes).toBe(
      Buffer.byteLength(snapshot!.keys) + Buffer.byteLength(snapshot!.newImage!),
    );
    expect(net!.newImage).toBeNull();
    expect(net!.eventId).not.toBe(snapshot!.eventId);
  });

  it('gives the same bytes for the same rows (a resumed replay rewrites identical segments)', () => {
    const encode = () => {
      const buffer = new ChangeBuffer(SCHEMA);
      const rows = [2, 1, 3].map((n) => ({
        op: 'SNAPSHOT' as const,
        newImage: { pk: { S: `p${n}` }, sk: { N: String(n) } },
        eventTimeMs: T,
      }));
      appendSnapshotRows(rows, 'replay-1', buffer);
      return encodeSegment(buffer).bytes;
    };
    expect(Buffer.from(encode()).equals(Buffer.from(encode()))).toBe(true);
  });

  it('refuses a malformed item, naming the replay and row, and appends none of the batch', () => {
    const buffer = new ChangeBuffer(SCHEMA);
    const good = { op: 'SNAPSHOT' as const, newImage: { pk: { S: 'a' }, sk: { N: '1' } }, eventTimeMs: T };
    const cases: [Parameters<typeof appendSnapshotRows>[0][number], RegExp][] = [
      [
        { op: 'SNAPSHOT', newImage: { pk: { S: 'a' } }, eventTimeMs: T },
        /replay r SNAPSHOT row 1: the item lacks key attribute "sk"/,
      ],
      [
        { op: 'SNAPSHOT', newImage: { pk: { N: '1' }, sk: { N: '1' } }, eventTimeMs: T },
        /key "pk" is not of the key schema's type S/,
      ],
      [
        { op: 'SNAPSHOT', keys: { pk: { S: 'a' }, sk: { N: '1' } }, eventTimeMs: T },
        /a SNAPSHOT row needs the item/,
      ],
      [{ op: 'NET', eventTimeMs: T }, /no keys and no item/],
      [{ op: 'SNAPSHOT', newImage: good.newImage, eventTimeMs: Number.NaN }, /event time NaN is not a time/],
    ];
    for (const [bad, message] of cases) {
      expect(() => appendSnapshotRows([good, bad], 'r', buffer)).toThrow(MalformedRecordError);
      expect(() => appendSnapshotRows([good, bad], 'r', buffer)).toThrow(message);
      expect(buffer.rowCount).toBe(0);
    }
  });
});
