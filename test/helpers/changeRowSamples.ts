import { type KeySchema, keyAttributes, keyColumnName } from '../../src/changelog/keySchema.js';
import type { ChangeRow } from '../../src/read/changeRow.js';
import { generateRecords, type WireRecord } from './streamRecords.js';

/*
 * ChangeRows for output-format tests: realistic generated changes (nested images, 38-digit
 * numbers, sets, binary), and hand-made rows with the text an output format must escape.
 */

export const SAMPLE_SHARD = 'shardId-00000001763800000000-aaaaaaaa';
export const SAMPLE_SEGMENT = 'orders/data/dt=2026-11-22/window=20261122T100000Z/s1-sample.parquet';

/** Rows of generated stream records of a `pk:S,sk:N` table, as the reader hands them out. */
export function generatedRows(count: number, seed = 1): ChangeRow[] {
  return generateRecords({ records: count, seed, ttlShare: 0.5 }).map(rowOfRecord);
}

export function rowOfRecord(record: WireRecord): ChangeRow {
  const d = record.dynamodb;
  const keys = d.Keys as { pk: { S: string }; sk: { N: string } };
  return {
    eventId: record.eventID,
    op: record.eventName,
    eventTimeMs: d.ApproximateCreationDateTime * 1000,
    sequenceNumber: d.SequenceNumber,
    shardId: SAMPLE_SHARD,
    keys: JSON.stringify(d.Keys),
    newImage: d.NewImage ? JSON.stringify(d.NewImage) : null,
    oldImage: d.OldImage ? JSON.stringify(d.OldImage) : null,
    sizeBytes: d.SizeBytes,
    ttlDelete: record.userIdentity !== undefined,
    keyColumns: { pk: keys.pk.S, sk: keys.sk.N },
    windowStartMs: Date.UTC(2026, 10, 22, 10),
    segmentKey: SAMPLE_SEGMENT,
  };
}

/**
 * Rows whose text needs care: quotes, commas, line breaks and non-ASCII in ids and keys, images
 * stored with escapes JSON.stringify would not write (`\u00e9`, `\/`), no images, a 300 KB image.
 * `schema` picks the key columns: B keys are given base64, as the reader gives them.
 */
export function awkwardRows(schema: KeySchema): ChangeRow[] {
  const attributes = keyAttributes(schema);
  const keyOf = (values: readonly string[]) => {
    const keyColumns: Record<string, string> = {};
    const keys: string[] = [];
    attributes.forEach((a, i) => {
      keyColumns[keyColumnName(a.name)] = values[i]!;
      keys.push(`${JSON.stringify(a.name)}:{"${a.type}":${JSON.stringify(values[i]!)}}`);
    });
    return { keyColumns, keys: `{${keys.join(',')}}` };
  };
  const value = (type: string, text: string, n: number) =>
    type === 'N' ? String(n) : type === 'B' ? Buffer.from(text, 'utf8').toString('base64') : text;
  const keyValues = (texts: readonly string[], n: number) =>
    attributes.map((a, i) => value(a.type, texts[i] ?? texts[0]!, n));
  const base = {
    eventTimeMs: Date.UTC(2026, 10, 22, 10, 0, 1, 0),
    shardId: SAMPLE_SHARD,
    sizeBytes: 120,
    ttlDelete: false,
    windowStartMs: Date.UTC(2026, 10, 22, 10),
    segmentKey: SAMPLE_SEGMENT,
  };
  const big = `{"blob":{"S":"${'x'.repeat(300_000)}"},"n":{"N":"1"}}`;
  return [
    {
      ...base,
      ...keyOf(keyValues(['quote " comma , semicolon ;', 'a'], 7)),
      eventId: 'id "with" quotes, commas\nand a line break',
      op: 'INSERT',
      sequenceNumber: '100000000000000000001',
      newImage:
        '{"name":{"S":"caf\\u00e9 \\"q\\" a\\/b"},"n":{"N":"12345678901234567890123456789012345678"},"tags":{"SS":["b","a"]},"bin":{"B":"AQID"},"m":{"M":{"l":{"L":[{"NULL":true},{"BOOL":false}]}}}}',
      oldImage: null,
    },
    {
      ...base,
      ...keyOf(keyValues(['line\r\nbreak', 'ü-\u00e9-😀'], -12)),
      eventId: 'plain-id',
      op: 'MODIFY',
      eventTimeMs: Date.UTC(2026, 10, 22, 10, 0, 1, 500),
      sequenceNumber: '100000000000000000002',
      shardId: 'shardId-with,comma',
      newImage: big,
      oldImage: '{"n":{"N":"0.10"}}',
      sizeBytes: 300_020,
    },
    {
      ...base,
      ...keyOf(keyValues(['ü-\u00e9-😀', 'z'], 3)),
      eventId: 'removed-by-ttl',
      op: 'REMOVE',
      sequenceNumber: '9999999999999999999999999999999999999999',
      newImage: null,
      oldImage: '{"n":{"NS":["10","9"]}}',
      ttlDelete: true,
    },
  ];
}
