import { type Table, tableFromIPC, type Vector } from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { ChangelogError } from '../support/errors.js';
import {
  CompactReader,
  T_BINARY,
  T_FALSE,
  T_I32,
  T_I64,
  T_LIST,
  T_STRUCT,
  T_TRUE,
} from './thriftCompactReader.js';

/*
 * Reads change segments back (for `verify` and the read side). With parquetEncoder.ts, the only
 * importer of the Parquet library.
 *
 * parquet-wasm 0.8's synchronous readParquet ignores its `columns` option, and its async reader
 * (which honours it) never settles its promise when the decoder traps on corrupt data. So this
 * reads one row group at a time, synchronously: errors surface as exceptions, and memory stays
 * bounded by a row group (the encoder caps them at 16,384 rows) rather than by the file.
 */

/** A cell as read: text, timestamps as epoch ms, integers as numbers, booleans, or null. */
export type CellValue = string | number | boolean | null;

export interface SegmentBatch {
  rows: number;
  /** The requested columns, each `rows` long. */
  columns: Record<string, CellValue[]>;
}

export interface SegmentFooter {
  /** num_rows from the file footer. */
  rows: number;
  rowGroups: number;
}

/**
 * A column chunk's statistics as the writer stored them: min/max are the plain-encoded bytes (the
 * UTF-8 text of a string column, the bytes of a binary one). A writer may truncate long values; a
 * truncated min is still a lower bound and a truncated max an upper bound, but not a value of the
 * column, which the exact flags say.
 */
export interface ColumnStatistics {
  min?: Uint8Array;
  max?: Uint8Array;
  /** False when the writer said min is not a value of the column (truncated); undefined when unsaid. */
  minExact?: boolean;
  maxExact?: boolean;
  nullCount?: number;
}

/** Where a column chunk's pages are and how they are stored (ColumnMetaData). */
export interface ColumnChunkMetadata {
  /** `path_in_schema` joined with `.`. */
  path: string;
  /** Parquet physical type (0 BOOLEAN, 1 INT32, 2 INT64, ..., 6 BYTE_ARRAY). */
  type: number;
  /** Compression codec (0 UNCOMPRESSED, 1 SNAPPY, ..., 6 ZSTD). */
  codec: number;
  /** Values (rows, for a flat column) in the chunk. */
  values: number;
  /** The first page: the dictionary page when there is one, else the first data page. */
  firstPageOffset: number;
  compressedBytes: number;
}

/** A column of the file's schema (SchemaElement), in schema order. */
export interface SchemaColumn {
  name: string;
  /** Parquet physical type; undefined for a group. */
  type: number | undefined;
  /** 0 REQUIRED, 1 OPTIONAL, 2 REPEATED; undefined for the root. */
  repetition: number | undefined;
  /** Children of a group (the root's are the top-level columns). */
  children: number;
}

export interface RowGroupMetadata {
  rows: number;
  /** Statistics by column path (`path_in_schema` joined with `.`); absent when not written. */
  statistics: Map<string, ColumnStatistics>;
  /** The column chunks, in file order. */
  columns: ColumnChunkMetadata[];
}

export interface SegmentMetadata {
  rows: number;
  rowGroups: RowGroupMetadata[];
  /** The footer's key/value metadata (the encoder writes one `dynamodb_changelog` entry). */
  keyValueMetadata: Map<string, string>;
  /** The schema elements, root first (depth-first, as the footer lists them). */
  schema: SchemaColumn[];
}

const MAGIC = [0x50, 0x41, 0x52, 0x31]; // "PAR1"

function malformed(key: string, why: string, cause?: unknown): ChangelogError {
  return new ChangelogError(`segment ${key} is not a readable Parquet change segment: ${why}`, {
    key,
    retriable: false,
    cause,
  });
}

/**
 * The row and row-group counts from the footer. Parsed here (Thrift compact protocol) rather than
 * through the wasm module, whose metadata reader is async and has the same hang-on-trap problem.
 */
export function readSegmentFooter(bytes: Uint8Array, key = '(segment)'): SegmentFooter {
  const metadata = readSegmentMetadata(bytes, key);
  return { rows: metadata.rows, rowGroups: metadata.rowGroups.length };
}

/**
 * The footer with what readers prune on: per row group its row count and its column chunks'
 * min/max statistics (Statistics min_value/max_value, else the deprecated min/max), and the
 * key/value metadata. Reads no page.
 */
export function readSegmentMetadata(bytes: Uint8Array, key = '(segment)'): SegmentMetadata {
  const n = bytes.length;
  const hasMagic = (at: number) => MAGIC.every((b, i) => bytes[at + i] === b);
  if (n < 12 || !hasMagic(0) || !hasMagic(n - 4)) throw malformed(key, 'no PAR1 magic at both ends');
  const footerLength =
    (bytes[n - 8]! | (bytes[n - 7]! << 8) | (bytes[n - 6]! << 16) | (bytes[n - 5]! << 24)) >>> 0;
  if (footerLength > n - 12)
    throw malformed(key, `footer length ${footerLength} exceeds the file (${n} bytes)`);
  const reader = new CompactReader(bytes, n - 8 - footerLength, n - 8, (why) =>
    malformed(key, `corrupt footer ${why}`),
  );
  let rows: number | undefined;
  let rowGroups: RowGroupMetadata[] | undefined;
  let schema: SchemaColumn[] = [];
  const keyValueMetadata = new Map<string, string>();
  // FileMetaData: 2 = schema (list<SchemaElement>), 3 = num_rows (i64), 4 = row_groups
  // (list<RowGroup>), 5 = key_value_metadata (list<KeyValue>); everything else is skipped.
  reader.struct(0, (id, type) => {
    if (id === 2 && type === T_LIST) {
      schema = reader.list(T_STRUCT, () => readSchemaElement(reader));
    } else if (id === 3 && type === T_I64) {
      rows = reader.zigzag();
    } else if (id === 4 && type === T_LIST) {
      rowGroups = reader.list(T_STRUCT, () => readRowGroup(reader));
    } else if (id === 5 && type === T_LIST) {
      reader.list(T_STRUCT, () => {
        let k: string | undefined;
        let v: string | undefined;
        reader.struct(1, (fid, ftype) => {
          if (fid === 1 && ftype === T_BINARY) k = reader.text();
          else if (fid === 2 && ftype === T_BINARY) v = reader.text();
          else return false;
          return true;
        });
        if (k !== undefined && v !== undefined) keyValueMetadata.set(k, v);
      });
    } else {
      return false;
    }
    return true;
  });
  if (rows === undefined || rows < 0 || rowGroups === undefined) {
    throw malformed(key, 'the footer has no row count or no row groups');
  }
  return { rows, rowGroups, keyValueMetadata, schema };
}

/** SchemaElement: 1 = type, 3 = repetition_type, 4 = name, 5 = num_children. */
function readSchemaElement(reader: CompactReader): SchemaColumn {
  const column: SchemaColumn = { name: '', type: undefined, repetition: undefined, children: 0 };
  reader.struct(1, (id, type) => {
    if (id === 1 && type === T_I32) column.type = reader.zigzag();
    else if (id === 3 && type === T_I32) column.repetition = reader.zigzag();
    else if (id === 4 && type === T_BINARY) column.name = reader.text();
    else if (id === 5 && type === T_I32) column.children = reader.zigzag();
    else return false;
    return true;
  });
  return column;
}

/** RowGroup: 1 = columns (list<ColumnChunk>), 3 = num_rows. */
function readRowGroup(reader: CompactReader): RowGroupMetadata {
  const group: RowGroupMetadata = { rows: -1, statistics: new Map(), columns: [] };
  reader.struct(1, (id, type) => {
    if (id === 1 && type === T_LIST) {
      reader.list(T_STRUCT, () => {
        // ColumnChunk: 3 = meta_data (ColumnMetaData).
        reader.struct(2, (cid, ctype) => {
          if (cid !== 3 || ctype !== T_STRUCT) return false;
          let path: string[] | undefined;
          let statistics: ColumnStatistics | undefined;
          const chunk = { type: -1, codec: -1, values: -1, dataPage: -1, dictionaryPage: -1, compressed: -1 };
          // ColumnMetaData: 1 = type, 3 = path_in_schema (list<string>), 4 = codec, 5 = num_values,
          // 7 = total_compressed_size, 9 = data_page_offset, 11 = dictionary_page_offset,
          // 12 = statistics (Statistics).
          reader.struct(3, (mid, mtype) => {
            if (mid === 3 && mtype === T_LIST) path = reader.list(T_BINARY, () => reader.text());
            else if (mid === 12 && mtype === T_STRUCT) statistics = readStatistics(reader);
            else if (mid === 1 && mtype === T_I32) chunk.type = reader.zigzag();
            else if (mid === 4 && mtype === T_I32) chunk.codec = reader.zigzag();
            else if (mid === 5 && mtype === T_I64) chunk.values = reader.zigzag();
            else if (mid === 7 && mtype === T_I64) chunk.compressed = reader.zigzag();
            else if (mid === 9 && mtype === T_I64) chunk.dataPage = reader.zigzag();
            else if (mid === 11 && mtype === T_I64) chunk.dictionaryPage = reader.zigzag();
            else return false;
            return true;
          });
          if (path === undefined) return true; // nothing to find it by
          if (statistics !== undefined) group.statistics.set(path.join('.'), statistics);
          group.columns.push({
            path: path.join('.'),
            type: chunk.type,
            codec: chunk.codec,
            values: chunk.values,
            // Some writers put a dictionary page at offset 0 meaning none; a dictionary page is
            // always before the data pages.
            firstPageOffset:
              chunk.dictionaryPage > 0 && chunk.dictionaryPage < chunk.dataPage
                ? chunk.dictionaryPage
                : chunk.dataPage,
            compressedBytes: chunk.compressed,
          });
          return true;
        });
      });
    } else if (id === 3 && type === T_I64) {
      group.rows = reader.zigzag();
    } else {
      return false;
    }
    return true;
  });
  if (group.rows < 0) reader.fail('a row group without num_rows');
  return group;
}

/**
 * Statistics: 1 = max, 2 = min (deprecated), 3 = null_count, 5 = max_value, 6 = min_value,
 * 7 = is_max_value_exact, 8 = is_min_value_exact. min_value/max_value win over the deprecated pair.
 */
function readStatistics(reader: CompactReader): ColumnStatistics {
  let max: Uint8Array | undefined;
  let min: Uint8Array | undefined;
  let maxValue: Uint8Array | undefined;
  let minValue: Uint8Array | undefined;
  const out: ColumnStatistics = {};
  reader.struct(4, (id, type) => {
    if (type === T_BINARY && (id === 1 || id === 2 || id === 5 || id === 6)) {
      const value = reader.binary();
      if (id === 1) max = value;
      else if (id === 2) min = value;
      else if (id === 5) maxValue = value;
      else minValue = value;
    } else if (id === 3 && type === T_I64) {
      out.nullCount = reader.zigzag();
    } else if ((id === 7 || id === 8) && (type === T_TRUE || type === T_FALSE)) {
      if (id === 7) out.maxExact = type === T_TRUE;
      else out.minExact = type === T_TRUE;
    } else {
      return false;
    }
    return true;
  });
  const lower = minValue ?? min;
  const upper = maxValue ?? max;
  if (lower !== undefined) out.min = lower;
  if (upper !== undefined) out.max = upper;
  return out;
}

export interface SegmentTableOptions {
  /** Only these row groups, in this order (default: all, in file order). */
  rowGroups?: readonly number[];
}

/** One decoded row group as an Arrow table (the schema carries the stored field metadata). */
export interface SegmentRowGroup {
  rowGroup: number;
  table: Table;
}

/**
 * Decodes the segment one row group at a time into Arrow tables. Throws a ChangelogError naming
 * `key` when the bytes are not Parquet, a requested row group does not exist, or (reading them
 * all) the row groups do not add up to the footer.
 */
export function* readSegmentTables(
  bytes: Uint8Array,
  key = '(segment)',
  options: SegmentTableOptions = {},
): Generator<SegmentRowGroup> {
  const footer = readSegmentFooter(bytes, key);
  const groups = requestedRowGroups(footer.rowGroups, options.rowGroups, key);
  let rows = 0;
  for (const group of groups) {
    const table = readRowGroupTable(bytes, group, key);
    rows += table.numRows;
    yield { rowGroup: group, table };
  }
  if (options.rowGroups === undefined) checkRowCount(footer.rows, rows, key);
}

/** One row group decoded by parquet-wasm into an Arrow table. */
export function readRowGroupTable(bytes: Uint8Array, rowGroup: number, key = '(segment)'): Table {
  try {
    return tableFromIPC(readParquet(bytes, { rowGroups: [rowGroup] }).intoIPCStream());
  } catch (error) {
    throw malformed(key, `row group ${rowGroup}: ${(error as Error).message ?? String(error)}`, error);
  }
}

/**
 * The row groups to read: `requested` (checked: each must exist) or all of them in file order.
 * Throws a ChangelogError naming `key` and the groups the file has.
 */
export function requestedRowGroups(
  rowGroups: number,
  requested: readonly number[] | undefined,
  key = '(segment)',
): readonly number[] {
  const groups = requested ?? Array.from({ length: rowGroups }, (_, i) => i);
  for (const group of groups) {
    if (!Number.isInteger(group) || group < 0 || group >= rowGroups) {
      throw malformed(key, `it has no row group ${group} (it has ${rowGroups}: 0 to ${rowGroups - 1})`);
    }
  }
  return groups;
}

/** Throws a ChangelogError naming `key` when the row groups read do not add up to the footer's rows. */
export function checkRowCount(footerRows: number, rowsRead: number, key = '(segment)'): void {
  if (rowsRead !== footerRows) {
    throw malformed(key, `its footer says ${footerRows} rows but its row groups hold ${rowsRead}`);
  }
}

/**
 * Yields the requested columns one row group at a time. Throws a ChangelogError naming `key` when
 * the bytes are not Parquet, a column is missing, or the row groups do not add up to the footer.
 */
export function* readSegmentBatches(
  bytes: Uint8Array,
  columns: readonly string[],
  key = '(segment)',
): Generator<SegmentBatch> {
  for (const { table } of readSegmentTables(bytes, key)) {
    const batch: SegmentBatch = { rows: table.numRows, columns: {} };
    for (const name of columns) {
      const vector = table.getChild(name);
      if (vector === null) throw malformed(key, `it has no column ${JSON.stringify(name)}`);
      batch.columns[name] = cells(vector);
    }
    yield batch;
  }
}

/** All rows of the requested columns. Prefer readSegmentBatches for large segments. */
export function readSegmentColumns(
  bytes: Uint8Array,
  columns: readonly string[],
  key = '(segment)',
): SegmentBatch {
  const out: SegmentBatch = { rows: 0, columns: Object.fromEntries(columns.map((c) => [c, []])) };
  for (const batch of readSegmentBatches(bytes, columns, key)) {
    out.rows += batch.rows;
    for (const name of columns) {
      const target = out.columns[name]!;
      for (const value of batch.columns[name]!) target.push(value);
    }
  }
  return out;
}

function cells(vector: Vector): CellValue[] {
  const out: CellValue[] = new Array(vector.length);
  for (let i = 0; i < vector.length; i++) {
    const value: unknown = vector.get(i);
    if (value === null || value === undefined) out[i] = null;
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      out[i] = value;
    else if (typeof value === 'bigint')
      out[i] =
        value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(value)
          : String(value);
    else out[i] = String(value);
  }
  return out;
}
