import { type Table, tableFromIPC, type Vector } from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { ChangelogError } from '../support/errors.js';

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

export interface RowGroupMetadata {
  rows: number;
  /** Statistics by column path (`path_in_schema` joined with `.`); absent when not written. */
  statistics: Map<string, ColumnStatistics>;
}

export interface SegmentMetadata {
  rows: number;
  rowGroups: RowGroupMetadata[];
  /** The footer's key/value metadata (the encoder writes one `dynamodb_changelog` entry). */
  keyValueMetadata: Map<string, string>;
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
  const reader = new CompactReader(bytes, n - 8 - footerLength, n - 8, key);
  let rows: number | undefined;
  let rowGroups: RowGroupMetadata[] | undefined;
  const keyValueMetadata = new Map<string, string>();
  // FileMetaData: 3 = num_rows (i64), 4 = row_groups (list<RowGroup>), 5 = key_value_metadata
  // (list<KeyValue>); everything else is skipped.
  reader.struct(0, (id, type) => {
    if (id === 3 && type === T_I64) {
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
  return { rows, rowGroups, keyValueMetadata };
}

/** RowGroup: 1 = columns (list<ColumnChunk>), 3 = num_rows. */
function readRowGroup(reader: CompactReader): RowGroupMetadata {
  const group: RowGroupMetadata = { rows: -1, statistics: new Map() };
  reader.struct(1, (id, type) => {
    if (id === 1 && type === T_LIST) {
      reader.list(T_STRUCT, () => {
        // ColumnChunk: 3 = meta_data (ColumnMetaData).
        reader.struct(2, (cid, ctype) => {
          if (cid !== 3 || ctype !== T_STRUCT) return false;
          let path: string[] | undefined;
          let statistics: ColumnStatistics | undefined;
          // ColumnMetaData: 3 = path_in_schema (list<string>), 12 = statistics (Statistics).
          reader.struct(3, (mid, mtype) => {
            if (mid === 3 && mtype === T_LIST) path = reader.list(T_BINARY, () => reader.text());
            else if (mid === 12 && mtype === T_STRUCT) statistics = readStatistics(reader);
            else return false;
            return true;
          });
          if (path !== undefined && statistics !== undefined)
            group.statistics.set(path.join('.'), statistics);
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
  const groups = options.rowGroups ?? Array.from({ length: footer.rowGroups }, (_, i) => i);
  for (const group of groups) {
    if (!Number.isInteger(group) || group < 0 || group >= footer.rowGroups) {
      throw malformed(
        key,
        `it has no row group ${group} (it has ${footer.rowGroups}: 0 to ${footer.rowGroups - 1})`,
      );
    }
  }
  let rows = 0;
  for (const group of groups) {
    let table: Table;
    try {
      table = tableFromIPC(readParquet(bytes, { rowGroups: [group] }).intoIPCStream());
    } catch (error) {
      throw malformed(key, `row group ${group}: ${(error as Error).message ?? String(error)}`, error);
    }
    rows += table.numRows;
    yield { rowGroup: group, table };
  }
  if (options.rowGroups === undefined && rows !== footer.rows) {
    throw malformed(key, `its footer says ${footer.rows} rows but its row groups hold ${rows}`);
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

// Thrift compact protocol type ids.
const T_TRUE = 1;
const T_FALSE = 2;
const T_BYTE = 3;
const T_I16 = 4;
const T_I32 = 5;
const T_I64 = 6;
const T_DOUBLE = 7;
const T_BINARY = 8;
const T_LIST = 9;
const T_SET = 10;
const T_MAP = 11;
const T_STRUCT = 12;
// Parquet footers nest a few levels; a corrupt one must not recurse without limit.
const MAX_DEPTH = 64;

/** Just enough of the Thrift compact protocol to walk a footer, bounds-checked throughout. */
class CompactReader {
  constructor(
    private readonly bytes: Uint8Array,
    private pos: number,
    private readonly end: number,
    private readonly key: string,
  ) {}

  fail(why: string): never {
    throw malformed(this.key, `corrupt footer at byte ${this.pos}: ${why}`);
  }

  byte(): number {
    if (this.pos >= this.end) this.fail('unexpected end');
    return this.bytes[this.pos++]!;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    return this.fail('varint longer than 10 bytes');
  }

  zigzag(): number {
    const n = this.varint();
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }

  /** The next field's id and type, or undefined at the struct's end. */
  fieldHeader(previousId: number): { id: number; type: number } | undefined {
    const b = this.byte();
    if (b === 0) return undefined;
    const delta = b >> 4;
    return { id: delta === 0 ? this.zigzag() : previousId + delta, type: b & 0x0f };
  }

  /** A binary field's bytes (a copy: the caller may keep it after the file is gone). */
  binary(): Uint8Array {
    const length = this.varint();
    if (length > this.end - this.pos) this.fail(`binary of ${length} bytes past the end`);
    const out = this.bytes.slice(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  text(): string {
    return new TextDecoder().decode(this.binary());
  }

  /**
   * Walks a struct's fields: `field` reads the value of the ones it knows and returns true;
   * every other field is skipped. Booleans are in the field header (T_TRUE/T_FALSE), no value.
   */
  struct(depth: number, field: (id: number, type: number) => boolean): void {
    if (depth > MAX_DEPTH) this.fail('nested too deeply');
    let id = 0;
    for (;;) {
      const header = this.fieldHeader(id);
      if (header === undefined) return;
      id = header.id;
      if (!field(header.id, header.type)) this.skip(header.type, depth + 1, false);
    }
  }

  /** A list whose elements are `elementType`, each read by `element`; another type is corrupt. */
  list<T>(elementType: number, element: () => T): T[] {
    const header = this.listHeader();
    if (header.size > 0 && header.elementType !== elementType) {
      this.fail(`a list of type ${header.elementType} where ${elementType} was expected`);
    }
    const out: T[] = [];
    for (let i = 0; i < header.size; i++) out.push(element());
    return out;
  }

  listHeader(): { size: number; elementType: number } {
    const b = this.byte();
    const size = b >> 4 === 15 ? this.varint() : b >> 4;
    // Every element takes at least one byte, so a larger count is corrupt (and would loop long).
    if (size > this.end - this.pos) this.fail(`list of ${size} elements in ${this.end - this.pos} bytes`);
    return { size, elementType: b & 0x0f };
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) this.fail(`${n} bytes past the end`);
    this.pos += n;
  }

  /** Skips one value; booleans are a byte each inside collections, free inside a field header. */
  skip(type: number, depth: number, inCollection: boolean): void {
    if (depth > MAX_DEPTH) this.fail('nested too deeply');
    switch (type) {
      case T_TRUE:
      case T_FALSE:
        if (inCollection) this.advance(1);
        return;
      case T_BYTE:
        this.advance(1);
        return;
      case T_I16:
      case T_I32:
      case T_I64:
        this.varint();
        return;
      case T_DOUBLE:
        this.advance(8);
        return;
      case T_BINARY:
        this.advance(this.varint());
        return;
      case T_LIST:
      case T_SET: {
        const list = this.listHeader();
        for (let i = 0; i < list.size; i++) this.skip(list.elementType, depth + 1, true);
        return;
      }
      case T_MAP: {
        const size = this.varint();
        if (size === 0) return;
        if (size > this.end - this.pos) this.fail(`map of ${size} entries in ${this.end - this.pos} bytes`);
        const types = this.byte();
        for (let i = 0; i < size; i++) {
          this.skip(types >> 4, depth + 1, true);
          this.skip(types & 0x0f, depth + 1, true);
        }
        return;
      }
      case T_STRUCT: {
        let id = 0;
        for (;;) {
          const header = this.fieldHeader(id);
          if (header === undefined) return;
          id = header.id;
          this.skip(header.type, depth + 1, false);
        }
      }
      default:
        this.fail(`unknown type ${type}`);
    }
  }
}
