import { tableFromIPC, type Vector } from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { ChangelogError } from '../support/errors.js';

/*
 * Reads change segments back (for `verify`). With parquetEncoder.ts, the only importer of the
 * Parquet library.
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
  const n = bytes.length;
  const hasMagic = (at: number) => MAGIC.every((b, i) => bytes[at + i] === b);
  if (n < 12 || !hasMagic(0) || !hasMagic(n - 4)) throw malformed(key, 'no PAR1 magic at both ends');
  const footerLength =
    (bytes[n - 8]! | (bytes[n - 7]! << 8) | (bytes[n - 6]! << 16) | (bytes[n - 5]! << 24)) >>> 0;
  if (footerLength > n - 12)
    throw malformed(key, `footer length ${footerLength} exceeds the file (${n} bytes)`);
  const reader = new CompactReader(bytes, n - 8 - footerLength, n - 8, key);
  let rows: number | undefined;
  let rowGroups: number | undefined;
  // FileMetaData: 3 = num_rows (i64), 4 = row_groups (list<RowGroup>); everything else is skipped.
  let fieldId = 0;
  for (;;) {
    const header = reader.fieldHeader(fieldId);
    if (header === undefined) break;
    fieldId = header.id;
    if (header.id === 3 && header.type === T_I64) {
      rows = reader.zigzag();
    } else if (header.id === 4 && header.type === T_LIST) {
      const list = reader.listHeader();
      rowGroups = list.size;
      for (let i = 0; i < list.size; i++) reader.skip(list.elementType, 1, true);
    } else {
      reader.skip(header.type, 0, false);
    }
  }
  if (rows === undefined || rows < 0 || rowGroups === undefined) {
    throw malformed(key, 'the footer has no row count or no row groups');
  }
  return { rows, rowGroups };
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
  const footer = readSegmentFooter(bytes, key);
  let rows = 0;
  for (let group = 0; group < footer.rowGroups; group++) {
    let table: ReturnType<typeof tableFromIPC>;
    try {
      table = tableFromIPC(readParquet(bytes, { rowGroups: [group] }).intoIPCStream());
    } catch (error) {
      throw malformed(key, `row group ${group}: ${(error as Error).message ?? String(error)}`, error);
    }
    const batch: SegmentBatch = { rows: table.numRows, columns: {} };
    for (const name of columns) {
      const vector = table.getChild(name);
      if (vector === null) throw malformed(key, `it has no column ${JSON.stringify(name)}`);
      batch.columns[name] = cells(vector);
    }
    rows += table.numRows;
    yield batch;
  }
  if (rows !== footer.rows) {
    throw malformed(key, `its footer says ${footer.rows} rows but its row groups hold ${rows}`);
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

  private fail(why: string): never {
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
