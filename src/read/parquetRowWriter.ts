import {
  Binary,
  Bool,
  type Data,
  type Field,
  Int32,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  Utf8,
} from 'apache-arrow';
import { segmentSchema } from '../changelog/arrowBatch.js';
import { type KeySchema, keyAttributes, keyColumnName } from '../changelog/keySchema.js';
import { DEFAULT_ROW_GROUP_ROWS, encodeParquet } from '../changelog/parquetEncoder.js';
import { SEGMENT_COLUMN_ENCODING } from '../changelog/segmentEncoder.js';
import { ChunkedOutput } from '../support/chunkedOutput.js';
import { ConfigError } from '../support/errors.js';
import { keyColumnValue } from './changeColumns.js';
import type { ChangeRow } from './changeRow.js';
import type { DecodedRowGroup } from './segmentRows.js';

/**
 * `changes` as one Parquet file with the segment columns and types (changelog/arrowBatch.ts
 * segmentSchema: B keys binary, event_time timestamp(ms, UTC), ...), ZSTD, row groups of 16,384 rows,
 * written by the segment encoder's Parquet code.
 *
 * The file is built in memory and written at end(): parquet-wasm writes a whole file at once. Its
 * streaming writer (transformParquetStream) was tried and refused: it is asynchronous, a failing
 * source still yields a complete-looking file with the rows so far, and a batch of another schema
 * hangs the process. Rows are packed into Arrow record batches as they come (one batch per row
 * group), so memory is about the rows' uncompressed size, and up to three times that while the
 * file is encoded (Arrow batches, their IPC copy, the wasm copy). For a range larger than memory,
 * write NDJSON, or let DuckDB read the segments (duckdbScript.ts).
 */
export class ParquetRowWriter {
  private readonly schema: Schema;
  private readonly output: ChunkedOutput;
  private readonly batches: RecordBatch[] = [];
  private rows: ChangeRow[] = [];
  private ended = false;

  constructor(
    output: NodeJS.WritableStream,
    private readonly columns: readonly string[],
    keySchema: KeySchema | undefined,
    keyColumns: readonly string[],
  ) {
    if (keySchema === undefined) {
      throw new ConfigError(['parquet output needs the key schema (the key columns types: S, N or B)']);
    }
    const schemaColumns = keyAttributes(keySchema).map((a) => keyColumnName(a.name));
    if (schemaColumns.join('\0') !== keyColumns.join('\0')) {
      throw new ConfigError([
        `key columns ${JSON.stringify(keyColumns)} do not match the key schema's ${JSON.stringify(schemaColumns)}`,
      ]);
    }
    const full = segmentSchema(keySchema);
    const fields = columns.map((name) => full.fields.find((f) => f.name === name)!);
    this.schema = new Schema(fields);
    this.output = new ChunkedOutput(output);
  }

  async write(row: ChangeRow): Promise<void> {
    if (this.ended) throw new Error('write after end');
    this.rows.push(row);
    if (this.rows.length >= DEFAULT_ROW_GROUP_ROWS) this.packBatch();
  }

  writeDecoded(group: DecodedRowGroup, i: number): Promise<void> {
    return this.write(group.rowAt(i));
  }

  async end(): Promise<void> {
    if (this.ended) throw new Error('parquet output already ended');
    this.ended = true;
    this.packBatch();
    const selected = new Set(this.columns);
    const bytes = encodeParquet(new Table(this.schema, this.batches), {
      compression: 'zstd',
      noStatisticsColumns: SEGMENT_COLUMN_ENCODING.noStatisticsColumns.filter((c) => selected.has(c)),
      noDictionaryColumns: SEGMENT_COLUMN_ENCODING.noDictionaryColumns.filter((c) => selected.has(c)),
    });
    this.batches.length = 0;
    await this.output.writeBytes(bytes);
    await this.output.end();
  }

  /** Turns the rows held into one Arrow record batch (the Arrow buffers replace the row objects). */
  private packBatch(): void {
    const rows = this.rows;
    if (rows.length === 0) return;
    this.rows = [];
    const children = this.schema.fields.map((field) => columnData(field, rows));
    const data = makeData({
      type: new Struct(this.schema.fields),
      length: rows.length,
      nullCount: 0,
      children,
    });
    this.batches.push(new RecordBatch(this.schema, data));
  }
}

function columnData(field: Field, rows: readonly ChangeRow[]): Data {
  const n = rows.length;
  switch (field.name) {
    case 'event_id':
      return textData(rows, (r) => r.eventId);
    case 'op':
      return textData(rows, (r) => r.op);
    case 'event_time': {
      const times = new BigInt64Array(n);
      for (let r = 0; r < n; r++) times[r] = BigInt(rows[r]!.eventTimeMs);
      return makeData({ type: new TimestampMillisecond('UTC'), length: n, data: times });
    }
    case 'sequence_number':
      return textData(rows, (r) => r.sequenceNumber);
    case 'shard_id':
      return textData(rows, (r) => r.shardId);
    case 'keys':
      return textData(rows, (r) => r.keys);
    case 'new_image':
      return textData(rows, (r) => r.newImage);
    case 'old_image':
      return textData(rows, (r) => r.oldImage);
    case 'size_bytes':
      return makeData({ type: new Int32(), length: n, data: Int32Array.from(rows, (r) => r.sizeBytes) });
    case 'ttl_delete': {
      const bits = new Uint8Array((n + 7) >> 3);
      for (let r = 0; r < n; r++) if (rows[r]!.ttlDelete) bits[r >> 3]! |= 1 << (r & 7);
      return makeData({ type: new Bool(), length: n, data: bits });
    }
    default: {
      const value = (r: ChangeRow) => keyColumnValue(r, field.name);
      return field.type instanceof Binary ? binaryData(rows, value) : textData(rows, value);
    }
  }
}

/** A Utf8 vector (null bitmap only when a value is null). */
function textData(rows: readonly ChangeRow[], value: (row: ChangeRow) => string | null): Data {
  const n = rows.length;
  const values = rows.map(value);
  let bytes = 0;
  let nulls = 0;
  for (const v of values) {
    if (v === null) nulls++;
    else bytes += Buffer.byteLength(v, 'utf8');
  }
  const data = Buffer.allocUnsafe(bytes);
  const offsets = new Int32Array(n + 1);
  const validity = nulls > 0 ? new Uint8Array((n + 7) >> 3) : undefined;
  let at = 0;
  for (let r = 0; r < n; r++) {
    const v = values[r]!;
    if (v !== null) {
      at += data.write(v, at, 'utf8');
      if (validity) validity[r >> 3]! |= 1 << (r & 7);
    }
    offsets[r + 1] = at;
  }
  return makeData({
    type: new Utf8(),
    length: n,
    nullCount: nulls,
    nullBitmap: validity,
    valueOffsets: offsets,
    data,
  });
}

/** A Binary vector of base64 values (how ChangeRow carries B keys), decoded. */
function binaryData(rows: readonly ChangeRow[], base64: (row: ChangeRow) => string): Data {
  const values = rows.map((r) => Buffer.from(base64(r), 'base64'));
  const offsets = new Int32Array(values.length + 1);
  for (let r = 0; r < values.length; r++) offsets[r + 1] = offsets[r]! + values[r]!.length;
  return makeData({
    type: new Binary(),
    length: values.length,
    valueOffsets: offsets,
    data: Buffer.concat(values),
  });
}
