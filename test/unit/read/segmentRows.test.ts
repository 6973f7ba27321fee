import { readFileSync } from 'node:fs';
import {
  type Data,
  Field,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { readSegmentMetadata, readSegmentTables } from '../../../src/changelog/parquetDecoder.js';
import { encodeParquet } from '../../../src/changelog/parquetEncoder.js';
import { decodeSegmentRows, segmentKeySchema } from '../../../src/read/segmentRows.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { FIRST_WINDOW_MS } from '../../helpers/changelogFixtures.js';
import { GOLDEN_CASES } from '../../helpers/goldenSegments.js';
import { readWithHyparquet } from '../../helpers/parquetReaders.js';
import { buildTestSegment, changeRecord, SHARD_1, SHARD_2 } from '../../helpers/sampleChangelog.js';
import { generateRecords } from '../../helpers/streamRecords.js';

const SOURCE = {
  segmentKey: 'orders/data/dt=2026-11-22/window=20261122T100000Z/s1-x.parquet',
  windowStartMs: FIRST_WINDOW_MS,
};
const decode = (bytes: Uint8Array, options?: Parameters<typeof decodeSegmentRows>[2]) => [
  ...decodeSegmentRows(bytes, SOURCE, options),
];

/** A realistic segment of two shards over several row groups: REMOVEs, TTL deletes, null images. */
function realisticSegment(rowGroupRows = 16) {
  const records = (seed: number, start: bigint) =>
    generateRecords({
      records: 40,
      seed,
      startSequence: start,
      startTimeSeconds: FIRST_WINDOW_MS / 1000,
      keyCount: 9,
      ttlShare: 0.5,
    });
  return buildTestSegment({
    windowStartMs: FIRST_WINDOW_MS,
    rowGroupRows,
    parts: [
      { shardId: SHARD_1, records: records(1, 100_000_000_000_000_000_000n) },
      { shardId: SHARD_2, records: records(2, 200_000_000_000_000_000_000n) },
    ],
  });
}

const withSource = <T extends object>(rows: T[]) =>
  rows.map((r) => ({ ...r, segmentKey: SOURCE.segmentKey, windowStartMs: SOURCE.windowStartMs }));

/** Re-encodes a segment after changing its Arrow data (for files our encoder would never write). */
function rewritten(
  bytes: Uint8Array,
  change: (schema: Schema, columns: Data[]) => { schema: Schema; columns: Data[] },
) {
  const batches = [...readSegmentTables(bytes)].flatMap(({ table }) =>
    table.batches.map((batch) => {
      const changed = change(
        table.schema,
        table.schema.fields.map((_, i) => batch.getChildAt(i)!.data[0]!),
      );
      const struct = makeData({
        type: new Struct(changed.schema.fields),
        length: batch.numRows,
        nullCount: 0,
        children: changed.columns,
      });
      return new RecordBatch(changed.schema, struct);
    }),
  );
  return encodeParquet(new Table(batches));
}

function withOps(bytes: Uint8Array, op: (i: number) => string): Uint8Array {
  return rewritten(bytes, (schema, columns) => {
    const index = schema.fields.findIndex((f) => f.name === 'op');
    const ops = Array.from({ length: columns[index]!.length }, (_, i) => op(i));
    columns[index] = vectorFromArray(ops, new Utf8()).data[0]!;
    return { schema, columns };
  });
}

describe('decodeSegmentRows', () => {
  it('hands out every row of a segment of several row groups, in segment order, as the records say', () => {
    const segment = realisticSegment();
    expect(readSegmentMetadata(segment.bytes).rowGroups.length).toBe(5);
    const rows = decode(segment.bytes);
    expect(rows).toEqual(withSource(segment.rows));
    // The interesting cases are in there: both shards, all ops, TTL deletes and null images.
    expect(new Set(rows.map((r) => r.shardId))).toEqual(new Set([SHARD_1, SHARD_2]));
    expect(new Set(rows.map((r) => r.op))).toEqual(new Set(['INSERT', 'MODIFY', 'REMOVE']));
    expect(rows.some((r) => r.ttlDelete)).toBe(true);
    expect(rows.some((r) => r.newImage === null)).toBe(true);
    expect(rows.some((r) => r.oldImage === null)).toBe(true);
  });

  it('finds the typed key columns in the segment: S, N and B keys, with or without a sort key', () => {
    const bin = (bytes: number[]) => Buffer.from(bytes).toString('base64');
    const cases: {
      keySchema: string;
      keys: Record<string, { S: string } | { N: string } | { B: string }>[];
    }[] = [
      {
        keySchema: 'pk:S',
        keys: [{ pk: { S: 'b' } }, { pk: { S: 'é' } }, { pk: { S: '' } }, { pk: { S: '😀' } }],
      },
      {
        keySchema: 'pk:N',
        keys: [{ pk: { N: '10' } }, { pk: { N: '-2.5' } }, { pk: { N: '1E+3' } }, { pk: { N: '9' } }],
      },
      {
        keySchema: 'id:B,at:N',
        keys: [
          { id: { B: bin([0xff, 0]) }, at: { N: '2' } },
          { id: { B: bin([0]) }, at: { N: '-1' } },
          { id: { B: bin([0xff, 0]) }, at: { N: '10' } },
        ],
      },
      // Attribute names that collide with fixed columns get a key_ prefix.
      { keySchema: 'op:S,keys:S', keys: [{ op: { S: 'x' }, keys: { S: 'y' } }] },
    ];
    for (const c of cases) {
      const records = c.keys.map((keys, i) =>
        changeRecord({ keys, sequenceNumber: 1000n + BigInt(i), timeMs: FIRST_WINDOW_MS }),
      );
      const segment = buildTestSegment({
        windowStartMs: FIRST_WINDOW_MS,
        keySchema: c.keySchema,
        parts: [{ shardId: SHARD_1, records }],
      });
      expect(decode(segment.bytes), c.keySchema).toEqual(withSource(segment.rows));
      expect(segmentKeySchema(readSegmentMetadata(segment.bytes), 'x')).toEqual(parseKeySchema(c.keySchema));
    }
  });

  it.each(GOLDEN_CASES.map((c) => c.name))(
    'reads golden segment %s as an independent reader does',
    async (name) => {
      const bytes = new Uint8Array(
        readFileSync(new URL(`../../fixtures/segments/${name}.parquet`, import.meta.url)),
      );
      const expected = await readWithHyparquet(bytes);
      const rows = decode(bytes);
      expect(
        rows.map((r) => ({
          event_id: r.eventId,
          op: r.op,
          event_time: r.eventTimeMs,
          sequence_number: r.sequenceNumber,
          shard_id: r.shardId,
          keys: r.keys,
          new_image: r.newImage,
          old_image: r.oldImage,
          pk: r.keyColumns['pk'],
          sk: r.keyColumns['sk'],
          size_bytes: r.sizeBytes,
          ttl_delete: r.ttlDelete,
        })),
      ).toEqual(expected);
    },
  );

  it('decodes only the row groups asked for, in the order asked', () => {
    const segment = realisticSegment();
    const sizes = readSegmentMetadata(segment.bytes).rowGroups.map((g) => g.rows);
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const group = (g: number) => withSource(segment.rows.slice(starts[g], starts[g]! + sizes[g]!));
    expect(decode(segment.bytes, { rowGroups: [3] })).toEqual(group(3));
    expect(decode(segment.bytes, { rowGroups: [4, 1] })).toEqual([...group(4), ...group(1)]);
    expect(decode(segment.bytes, { rowGroups: [] })).toEqual([]);
    expect(() => decode(segment.bytes, { rowGroups: [5] })).toThrow(
      /has no row group 5 \(it has 5: 0 to 4\)/,
    );
  });

  it('skips the rows `keep` refuses before decoding the rest of them', () => {
    const segment = realisticSegment();
    const seen: Record<string, string>[] = [];
    const rows = decode(segment.bytes, {
      keep: (k) => {
        seen.push({ ...k });
        return k['sk'] === '3';
      },
    });
    expect(seen).toEqual(segment.rows.map((r) => r.keyColumns));
    expect(rows).toEqual(withSource(segment.rows.filter((r) => r.keyColumns['sk'] === '3')));
    expect(rows.length).toBeGreaterThan(0);
  });

  it('accepts replay ops (SNAPSHOT, NET) and refuses any other op, naming the segment', () => {
    const segment = realisticSegment(1000);
    const replay = decode(withOps(segment.bytes, (i) => (i % 2 === 0 ? 'SNAPSHOT' : 'NET')));
    expect(replay.map((r) => r.op)).toEqual(segment.rows.map((_, i) => (i % 2 === 0 ? 'SNAPSHOT' : 'NET')));

    const bad = withOps(segment.bytes, (i) => (i === 7 ? 'UPSERT' : 'INSERT'));
    const error = (() => {
      try {
        decode(bad);
      } catch (e) {
        return e as ChangelogError;
      }
      throw new Error('expected an error');
    })();
    expect(error).toBeInstanceOf(ChangelogError);
    expect(error.message).toBe(
      `segment ${SOURCE.segmentKey} row group 0: row 7 has op "UPSERT"; allowed are INSERT, MODIFY, REMOVE, SNAPSHOT, NET`,
    );
    expect(error.context.key).toBe(SOURCE.segmentKey);
  });

  it('refuses a file without typed key columns or with a column of another type', () => {
    const segment = realisticSegment(1000);
    const noKeyMetadata = rewritten(segment.bytes, (schema, columns) => ({
      schema: new Schema(schema.fields.map((f) => new Field(f.name, f.type, f.nullable))),
      columns,
    }));
    expect(() => decode(noKeyMetadata)).toThrow(
      `segment ${SOURCE.segmentKey} is not a readable change segment: no column has dynamodb.type metadata (no typed key column)`,
    );
    const opAsNumbers = rewritten(segment.bytes, (schema, columns) => {
      const index = schema.fields.findIndex((f) => f.name === 'op');
      const fields = [...schema.fields];
      fields[index] = new Field('op', vectorFromArray([1]).type, false);
      columns[index] = vectorFromArray(
        columns[index]!.length ? new Array(columns[index]!.length).fill(1) : [],
      ).data[0]!;
      return { schema: new Schema(fields, schema.metadata), columns };
    });
    expect(() => decode(opAsNumbers)).toThrow(
      /is not a readable change segment: column "op" is Float64, not Utf8/,
    );
    expect(() => decode(new TextEncoder().encode('not parquet'))).toThrow(/no PAR1 magic/);
  });

  it('checks the signal between row groups', () => {
    const segment = realisticSegment();
    const controller = new AbortController();
    const rows = decodeSegmentRows(segment.bytes, SOURCE, { signal: controller.signal });
    const first = rows.next();
    expect(first.done).toBe(false);
    controller.abort(new Error('stop reading'));
    // The rest of the current row group still comes; the next one is not decoded.
    const groupSize = readSegmentMetadata(segment.bytes).rowGroups[0]!.rows;
    for (let i = 1; i < groupSize; i++) expect(rows.next().done).toBe(false);
    expect(() => rows.next()).toThrow('stop reading');
  });

  it('reads the key schema from the footer, and names a segment without one', () => {
    const segment = realisticSegment();
    expect(segmentKeySchema(readSegmentMetadata(segment.bytes), segment.key)).toEqual(
      parseKeySchema('pk:S,sk:N'),
    );
    const noMetadata = rewritten(segment.bytes, (schema, columns) => ({
      schema: new Schema(schema.fields),
      columns,
    }));
    expect(() => segmentKeySchema(readSegmentMetadata(noMetadata), 'k/x.parquet')).toThrow(
      'segment k/x.parquet has no key schema in its footer (dynamodb_changelog.key_schema): not a change segment',
    );
  });
});
