import { Writable } from 'node:stream';
import { parquetMetadata } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import {
  type KeySchema,
  keyAttributes,
  keyColumnName,
  parseKeySchema,
} from '../../../src/changelog/keySchema.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import type { ChangeRow } from '../../../src/read/changeRow.js';
import { openRowWriter } from '../../../src/read/rowWriters.js';
import { ConfigError } from '../../../src/support/errors.js';
import { awkwardRows, generatedRows, SAMPLE_SHARD } from '../../helpers/changeRowSamples.js';
import { type Row, readWithDuckDB, readWithHyparquet } from '../../helpers/parquetReaders.js';
import { generateRecords, getRecordsResponse } from '../../helpers/streamRecords.js';

async function parquetOf(
  rows: readonly ChangeRow[],
  schema: KeySchema,
  columns?: string[],
): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const keyColumns = keyAttributes(schema).map((a) => keyColumnName(a.name));
  const writer = openRowWriter('parquet', sink, {
    keyColumns,
    keySchema: schema,
    ...(columns && { columns }),
  });
  for (const row of rows) await writer.write(row);
  await writer.end();
  return new Uint8Array(Buffer.concat(chunks));
}

/** What a reader must see for `row`: B keys as bytes, event_time as epoch ms. */
function expected(row: ChangeRow, schema: KeySchema): Row {
  const out: Row = {
    event_id: row.eventId,
    op: row.op,
    event_time: row.eventTimeMs,
    sequence_number: row.sequenceNumber,
    shard_id: row.shardId,
    keys: row.keys,
    new_image: row.newImage,
    old_image: row.oldImage,
  };
  for (const a of keyAttributes(schema)) {
    const column = keyColumnName(a.name);
    out[column] = a.type === 'B' ? Buffer.from(row.keyColumns[column]!, 'base64') : row.keyColumns[column]!;
  }
  out['size_bytes'] = row.sizeBytes;
  out['ttl_delete'] = row.ttlDelete;
  return out;
}

const S_N = parseKeySchema('pk:S,sk:N');

describe('parquet output', () => {
  it('reads back through DuckDB and hyparquet, row for row, over more than one row group', async () => {
    // 16,384 rows a row group: light rows (keys only) keep the test small, real rows check the images.
    const light = generatedRows(16_500, 3).map((r) => ({ ...r, newImage: null, oldImage: null }));
    const rows = [...light, ...generatedRows(200, 4), ...awkwardRows(S_N)];
    const bytes = await parquetOf(rows, S_N);
    const want = rows.map((r) => expected(r, S_N));
    expect(await readWithDuckDB(bytes)).toEqual(want);
    expect(await readWithHyparquet(bytes)).toEqual(want);
    expect(parquetMetadata(bytes.buffer as ArrayBuffer).row_groups.length).toBe(2);
  });

  it('writes binary keys as bytes', async () => {
    const schema = parseKeySchema('pk:S,blob:B');
    const rows = awkwardRows(schema);
    const bytes = await parquetOf(rows, schema);
    const want = rows.map((r) => expected(r, schema));
    expect(await readWithDuckDB(bytes)).toEqual(want);
    expect(await readWithHyparquet(bytes)).toEqual(want);
  });

  it('has the columns and types of a change segment', async () => {
    const records = generateRecords({ records: 20, seed: 8 });
    const buffer = new ChangeBuffer(S_N);
    decodeGetRecordsResponse(getRecordsResponse(records), SAMPLE_SHARD, buffer);
    const segment = encodeSegment(buffer).bytes;
    const output = await parquetOf(generatedRows(20, 8), S_N);
    const schemaOf = (bytes: Uint8Array) =>
      parquetMetadata(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
      ).schema.map((s) => ({ ...s }));
    expect(schemaOf(output)).toEqual(schemaOf(segment));
  });

  it('writes the requested columns in the requested order', async () => {
    const rows = generatedRows(10, 6);
    const columns = ['sk', 'event_time', 'op', 'new_image'];
    const bytes = await parquetOf(rows, S_N, columns);
    const want = rows.map((r) => ({
      sk: r.keyColumns['sk']!,
      event_time: r.eventTimeMs,
      op: r.op,
      new_image: r.newImage,
    }));
    for (const read of [await readWithDuckDB(bytes), await readWithHyparquet(bytes)]) {
      expect(read.map((r) => Object.keys(r))).toEqual(rows.map(() => columns));
      expect(read).toEqual(want);
    }
  });

  it('writes a valid file with no rows', async () => {
    const bytes = await parquetOf([], S_N);
    expect(await readWithDuckDB(bytes)).toEqual([]);
    expect(await readWithHyparquet(bytes)).toEqual([]);
  });

  it('needs the key schema, matching the key columns', () => {
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    expect(() => openRowWriter('parquet', sink, { keyColumns: ['pk', 'sk'] })).toThrow(ConfigError);
    expect(() => openRowWriter('parquet', sink, { keyColumns: ['pk'], keySchema: S_N })).toThrow(
      /key columns \["pk"\] do not match the key schema's \["pk","sk"\]/,
    );
  });
});
