import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

/**
 * Two Parquet readers that share no code with our writer (parquet-rs in wasm): DuckDB's C++ reader
 * and hyparquet's pure-JS one. Rows come back normalised to one shape so tests compare them with
 * the expected rows: strings as strings, binary as Buffer, timestamps as epoch ms, null as null.
 */
export type Row = Record<string, string | number | boolean | Buffer | null>;

export async function readWithDuckDB(bytes: Uint8Array): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'changelog-duckdb-'));
  const file = join(dir, 'segment.parquet');
  writeFileSync(file, bytes);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    // epoch_ms keeps the timestamp exact; file order is kept (single-threaded scan of one file).
    const reader = await connection.runAndReadAll(
      `SELECT * REPLACE (epoch_ms(event_time)::DOUBLE AS event_time) FROM read_parquet('${file}')`,
    );
    return reader.getRowObjectsJS().map((row) => normalise(row as Record<string, unknown>));
  } finally {
    connection.closeSync();
    instance.closeSync();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function readWithHyparquet(bytes: Uint8Array): Promise<Row[]> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const metadata = parquetMetadata(file);
  const binaryColumns = new Set(
    metadata.schema
      .filter((s) => s.type === 'BYTE_ARRAY' && s.converted_type !== 'UTF8' && !s.logical_type)
      .map((s) => s.name),
  );
  // Read text columns as UTF-8 and binary key columns as bytes (utf8: false) in a second pass.
  const rows = (await parquetReadObjects({ file, compressors, rowFormat: 'object' })) as Record<
    string,
    unknown
  >[];
  if (binaryColumns.size > 0) {
    const raw = (await parquetReadObjects({
      file,
      compressors,
      rowFormat: 'object',
      utf8: false,
      columns: [...binaryColumns],
    })) as Record<string, unknown>[];
    for (const [i, r] of raw.entries()) Object.assign(rows[i]!, r);
  }
  return rows.map(normalise);
}

function normalise(row: Record<string, unknown>): Row {
  const out: Row = {};
  for (const [name, value] of Object.entries(row)) {
    if (value === null || value === undefined) out[name] = null;
    else if (value instanceof Date) out[name] = value.getTime();
    else if (typeof value === 'bigint') out[name] = Number(value);
    else if (value instanceof Uint8Array) out[name] = Buffer.from(value);
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      out[name] = value;
    else throw new TypeError(`unexpected ${typeof value} in column ${name}`);
  }
  return out;
}
