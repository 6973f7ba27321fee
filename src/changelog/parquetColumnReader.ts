import { ChangelogError } from '../support/errors.js';
import type { ColumnChunkMetadata, SegmentMetadata } from './parquetDecoder.js';
import { CompactReader, T_I32, T_STRUCT } from './thriftCompactReader.js';

/*
 * Reads the columns of one row group of a flat Parquet file straight from its pages: the read
 * side's fast path (read/segmentRows.ts). parquet-wasm decodes a row group into Arrow, serialises
 * it as an IPC stream and apache-arrow parses that again; its wasm ZSTD alone runs at ~90 MB/s of
 * output. Here pages are decompressed by `decompress` and values are not copied: a text value is
 * a [start, end) range in the decompressed page (or dictionary page) bytes.
 *
 * It reads what the segment encoder writes and what common writers write for flat schemas: data
 * pages V1 and V2, PLAIN and dictionary (PLAIN_DICTIONARY, RLE_DICTIONARY) encodings, RLE
 * booleans, REQUIRED and OPTIONAL columns. Anything else (nesting, repeated fields, DELTA
 * encodings, a codec `decompress` does not know) makes it return undefined, and the caller reads
 * the file through parquet-wasm instead. Malformed bytes throw a ChangelogError naming the segment.
 */

/** Parquet physical types. */
export const PARQUET_BOOLEAN = 0;
export const PARQUET_INT32 = 1;
export const PARQUET_INT64 = 2;
export const PARQUET_BYTE_ARRAY = 6;

/** Parquet codecs. */
export const CODEC_UNCOMPRESSED = 0;
export const CODEC_SNAPPY = 1;
export const CODEC_ZSTD = 6;

/** Decompresses pages of the codecs it supports (UNCOMPRESSED pages need none). */
export interface PageDecompressor {
  supports(codec: number): boolean;
  /** The page's bytes expanded; `uncompressedSize` is what the page header says they expand to. */
  decompress(codec: number, input: Uint8Array, uncompressedSize: number): Uint8Array;
}

/**
 * A BYTE_ARRAY column: row i is `bufferAt(column, i)[starts[i], ends[i])`, or null when
 * `nulls?.[i]` is 1. The values stay in the decompressed pages: `buf` when they are all in one,
 * else `pieces[piece[i]]` (a column chunk of several pages, or a dictionary and its data page).
 */
export interface BytesColumn {
  kind: 'bytes';
  buf: Buffer;
  pieces: Buffer[] | undefined;
  piece: Uint16Array | undefined;
  starts: Int32Array;
  ends: Int32Array;
  nulls: Uint8Array | undefined;
}

/** The buffer holding row i's value. */
export function bufferAt(column: BytesColumn, i: number): Buffer {
  return column.piece === undefined ? column.buf : column.pieces![column.piece[i]!]!;
}

/** Row i's value as text (null rows give ''). */
export function textAt(column: BytesColumn, i: number, encoding: BufferEncoding = 'utf8'): string {
  return bufferAt(column, i).toString(encoding, column.starts[i]!, column.ends[i]!);
}

/** An INT32 column (a null row holds 0). */
export interface Int32Column {
  kind: 'int32';
  values: Int32Array;
  nulls: Uint8Array | undefined;
}

/** An INT64 column as little-endian 32-bit halves: row i is (values[2i] low, values[2i+1] high). */
export interface Int64Column {
  kind: 'int64';
  values: Int32Array;
  nulls: Uint8Array | undefined;
}

/** A BOOLEAN column, one byte (0 or 1) per row. */
export interface BooleanColumn {
  kind: 'boolean';
  values: Uint8Array;
  nulls: Uint8Array | undefined;
}

export type RawColumn = BytesColumn | Int32Column | Int64Column | BooleanColumn;

// Page types, encodings.
const DATA_PAGE = 0;
const DICTIONARY_PAGE = 2;
const DATA_PAGE_V2 = 3;
const PLAIN = 0;
const PLAIN_DICTIONARY = 2;
const RLE = 3;
const RLE_DICTIONARY = 8;

/** Thrown inside the reader for what it does not read; turned into `undefined` at its edge. */
class Unsupported extends Error {}

/**
 * The named columns of row group `rowGroup`, read from `bytes` (the whole file) with `metadata`
 * (readSegmentMetadata). Returns undefined when the file uses something this reader does not read
 * (see above), or a named column is not a flat leaf of the schema.
 */
export function readRowGroupColumns(
  bytes: Uint8Array,
  metadata: SegmentMetadata,
  rowGroup: number,
  columns: readonly string[],
  decompressor: PageDecompressor,
  key = '(segment)',
): Map<string, RawColumn> | undefined {
  const readers = rowGroupColumnReaders(bytes, metadata, rowGroup, columns, decompressor, key);
  if (readers === undefined) return undefined;
  return new Map([...readers].map(([name, reader]) => [name, reader.read()]));
}

/** A column of a row group, not read yet: its form, and the call that reads it. */
export interface ColumnReader {
  kind: RawColumn['kind'];
  read: () => RawColumn;
}

/**
 * Like readRowGroupColumns, but each column is decompressed and decoded only when its reader is
 * first called (then remembered): a reader that filters rows on a few columns never expands the
 * others of a row group it keeps nothing of. The page headers are checked up front, so undefined
 * (not readable here) is known before any column is read; a reader still throws a ChangelogError
 * on corrupt page data.
 */
export function rowGroupColumnReaders(
  bytes: Uint8Array,
  metadata: SegmentMetadata,
  rowGroup: number,
  columns: readonly string[],
  decompressor: PageDecompressor,
  key = '(segment)',
): Map<string, ColumnReader> | undefined {
  const group = metadata.rowGroups[rowGroup];
  if (group === undefined) return undefined;
  const leaves = flatLeaves(metadata);
  if (leaves === undefined) return undefined;
  const out = new Map<string, ColumnReader>();
  try {
    for (const name of columns) {
      const leaf = leaves.get(name);
      const chunk = group.columns.find((c) => c.path === name);
      if (leaf === undefined || chunk === undefined || chunk.type !== leaf.type) return undefined;
      const where = `segment ${key} row group ${rowGroup} column ${name}`;
      const read = (probe: boolean) =>
        readChunk(bytes, chunk, leaf.optional, group.rows, decompressor, where, key, probe);
      const kind = read(true).kind;
      let column: RawColumn | undefined;
      out.set(name, {
        kind,
        read: () => {
          if (column === undefined) {
            try {
              column = read(false);
            } catch (error) {
              // The probe accepted the pages, so this is data the headers did not announce.
              if (error instanceof Unsupported)
                throw new ChangelogError(`${where} is not readable: unexpected page content`, {
                  key,
                  retriable: false,
                });
              throw error;
            }
          }
          return column;
        },
      });
    }
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
  return out;
}

interface Leaf {
  type: number;
  optional: boolean;
}

/** The top-level columns by name, when the schema is flat (no groups, nothing repeated). */
function flatLeaves(metadata: SegmentMetadata): Map<string, Leaf> | undefined {
  const [root, ...columns] = metadata.schema;
  if (root === undefined || root.children !== columns.length) return undefined;
  const leaves = new Map<string, Leaf>();
  for (const c of columns) {
    if (c.children > 0 || c.type === undefined || c.repetition === 2) return undefined;
    leaves.set(c.name, { type: c.type, optional: c.repetition === 1 });
  }
  return leaves;
}

interface Page {
  type: number;
  uncompressed: number;
  compressed: number;
  values: number;
  encoding: number;
  /** V2: levels are stored uncompressed before the (maybe compressed) values. */
  levelBytes: number;
  v2Compressed: boolean;
}

function readChunk(
  bytes: Uint8Array,
  chunk: ColumnChunkMetadata,
  optional: boolean,
  rows: number,
  decompressor: PageDecompressor,
  where: string,
  key: string,
  /** Only walk the page headers and check that every page can be read (nothing is decoded). */
  probe = false,
): RawColumn {
  const fail = (why: string): never => {
    throw new ChangelogError(`${where} is not readable: ${why}`, { key, retriable: false });
  };
  if (chunk.values !== rows) fail(`it has ${chunk.values} values for ${rows} rows`);
  if (chunk.firstPageOffset < 4 || chunk.compressedBytes < 0)
    fail(`its pages are at ${chunk.firstPageOffset}`);
  const end = chunk.firstPageOffset + chunk.compressedBytes;
  if (end > bytes.length - 8) fail(`its pages end at ${end}, past the data (${bytes.length} bytes)`);
  if (chunk.codec !== CODEC_UNCOMPRESSED && !decompressor.supports(chunk.codec)) throw new Unsupported();
  const column = newColumn(chunk.type, probe ? 0 : rows, optional);
  let dictionary: Dictionary | undefined;
  let dictionaryPages = 0;
  let row = 0;
  let pos = chunk.firstPageOffset;
  // The decompressed pages a byte column's values are in (never copied into one buffer).
  const pieces: Buffer[] = [];
  const addPiece = (piece: Uint8Array): number => {
    if (pieces.length === 0xffff) throw new Unsupported();
    pieces.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
    return pieces.length - 1;
  };
  while (row < rows) {
    if (pos >= end) fail(`its pages hold ${row} of ${rows} values`);
    const reader = new CompactReader(
      bytes,
      pos,
      end,
      (why) =>
        new ChangelogError(`${where} is not readable: corrupt page header ${why}`, { key, retriable: false }),
    );
    const page = readPageHeader(reader);
    const bodyStart = reader.pos;
    const bodyEnd = bodyStart + page.compressed;
    if (page.compressed < 0 || bodyEnd > end) fail(`a page of ${page.compressed} bytes past the chunk's end`);
    pos = bodyEnd;
    if (page.type === DICTIONARY_PAGE) {
      if (page.encoding !== PLAIN && page.encoding !== PLAIN_DICTIONARY) throw new Unsupported();
      if (column.kind === 'boolean') throw new Unsupported();
      dictionaryPages++;
      if (probe) continue;
      const body = expand(
        decompressor,
        chunk.codec,
        bytes.subarray(bodyStart, bodyEnd),
        page.uncompressed,
        fail,
      );
      dictionary = readDictionary(column, body, page.values, fail);
      if (dictionary.kind === 'bytes') dictionary.piece = addPiece(body);
      continue;
    }
    if (page.type !== DATA_PAGE && page.type !== DATA_PAGE_V2) continue; // index pages: nothing to read
    if (page.values > rows - row) fail(`its pages hold more than ${rows} values`);
    if (probe) {
      const dictionaryEncoded = page.encoding === PLAIN_DICTIONARY || page.encoding === RLE_DICTIONARY;
      const readable =
        page.encoding === PLAIN ||
        (dictionaryEncoded && dictionaryPages > 0) ||
        (page.encoding === RLE && column.kind === 'boolean');
      if (!readable) throw new Unsupported();
      row += page.values;
      continue;
    }
    let body: Uint8Array;
    let at = 0;
    let defined: Uint8Array | undefined;
    if (page.type === DATA_PAGE) {
      body = expand(decompressor, chunk.codec, bytes.subarray(bodyStart, bodyEnd), page.uncompressed, fail);
      if (optional) {
        if (body.length < 4) fail('a page too short for its definition levels');
        const length = (body[0]! | (body[1]! << 8) | (body[2]! << 16) | (body[3]! << 24)) >>> 0;
        if (length > body.length - 4) fail(`definition levels of ${length} bytes past the page`);
        defined = hybrid(body, 4, 4 + length, 1, page.values, fail);
        at = 4 + length;
      }
    } else {
      const levels = page.levelBytes;
      if (levels > page.compressed) fail(`levels of ${levels} bytes in a page of ${page.compressed}`);
      if (optional) defined = hybrid(bytes, bodyStart, bodyStart + levels, 1, page.values, fail);
      else if (levels !== 0) throw new Unsupported();
      const values = bytes.subarray(bodyStart + levels, bodyEnd);
      body = page.v2Compressed
        ? expand(decompressor, chunk.codec, values, page.uncompressed - levels, fail)
        : values;
    }
    let present = page.values;
    if (defined !== undefined) {
      present = 0;
      const nulls = column.nulls!;
      for (let i = 0; i < page.values; i++) {
        if (defined[i] === 1) present++;
        else nulls[row + i] = 1;
      }
    }
    if (page.encoding === PLAIN) {
      if (column.kind === 'bytes') column.piece!.fill(addPiece(body), row, row + page.values);
      readPlain(column, body, at, row, page.values, defined, fail);
    } else if (page.encoding === PLAIN_DICTIONARY || page.encoding === RLE_DICTIONARY) {
      if (dictionary === undefined) fail('a dictionary-encoded page without a dictionary page');
      if (at >= body.length && present > 0) fail('a dictionary-encoded page without its bit width');
      const width = body[at] ?? 0;
      if (width > 32) fail(`dictionary indexes of ${width} bits`);
      const indexes = hybridInts(body, at + 1, body.length, width, present, fail);
      readIndexed(column, dictionary!, indexes, row, page.values, defined, fail);
    } else if (page.encoding === RLE && column.kind === 'boolean') {
      // RLE booleans (V2 writers): a 4-byte length, then the hybrid encoding at bit width 1.
      const values = hybrid(body, at + 4, body.length, 1, present, fail);
      let v = 0;
      for (let i = 0; i < page.values; i++)
        if (defined === undefined || defined[i] === 1) column.values[row + i] = values[v++]!;
    } else {
      throw new Unsupported();
    }
    row += page.values;
  }
  if (column.kind === 'bytes') {
    column.buf = pieces[0] ?? EMPTY;
    if (pieces.length > 1) column.pieces = pieces;
    else column.piece = undefined;
  }
  return column;
}

function newColumn(type: number, rows: number, optional: boolean): RawColumn {
  const nulls = optional ? new Uint8Array(rows) : undefined;
  switch (type) {
    case PARQUET_BYTE_ARRAY:
      return {
        kind: 'bytes',
        buf: EMPTY,
        pieces: undefined,
        piece: new Uint16Array(rows),
        starts: new Int32Array(rows),
        ends: new Int32Array(rows),
        nulls,
      };
    case PARQUET_INT32:
      return { kind: 'int32', values: new Int32Array(rows), nulls };
    case PARQUET_INT64:
      return { kind: 'int64', values: new Int32Array(rows * 2), nulls };
    case PARQUET_BOOLEAN:
      return { kind: 'boolean', values: new Uint8Array(rows), nulls };
    default:
      throw new Unsupported();
  }
}

const EMPTY = Buffer.alloc(0);

function expand(
  decompressor: PageDecompressor,
  codec: number,
  input: Uint8Array,
  size: number,
  fail: (why: string) => never,
): Uint8Array {
  if (codec === CODEC_UNCOMPRESSED) {
    if (input.length !== size) fail(`an uncompressed page of ${input.length} bytes says ${size}`);
    return input;
  }
  let out: Uint8Array;
  try {
    out = decompressor.decompress(codec, input, size);
  } catch (error) {
    if (error instanceof Unsupported) throw error;
    return fail(`a page does not decompress: ${(error as Error).message ?? String(error)}`);
  }
  if (out.length !== size) fail(`a page decompressed to ${out.length} bytes, its header says ${size}`);
  return out;
}

/** PageHeader: 1 type, 2 uncompressed size, 3 compressed size, 5 / 7 / 8 the type's header. */
function readPageHeader(reader: CompactReader): Page {
  const page: Page = {
    type: -1,
    uncompressed: -1,
    compressed: -1,
    values: 0,
    encoding: -1,
    levelBytes: 0,
    v2Compressed: true,
  };
  reader.struct(0, (id, type) => {
    if (id === 1 && type === T_I32) page.type = reader.zigzag();
    else if (id === 2 && type === T_I32) page.uncompressed = reader.zigzag();
    else if (id === 3 && type === T_I32) page.compressed = reader.zigzag();
    else if (id === 5 && type === T_STRUCT) {
      // DataPageHeader: 1 num_values, 2 encoding, 3 definition level encoding (RLE), 4 repetition.
      reader.struct(1, (fid, ftype) => {
        if (fid === 1 && ftype === T_I32) page.values = reader.zigzag();
        else if (fid === 2 && ftype === T_I32) page.encoding = reader.zigzag();
        else if (fid === 3 && ftype === T_I32) {
          if (reader.zigzag() !== RLE) throw new Unsupported(); // BIT_PACKED levels: deprecated
        } else return false;
        return true;
      });
    } else if (id === 7 && type === T_STRUCT) {
      // DictionaryPageHeader: 1 num_values, 2 encoding.
      reader.struct(1, (fid, ftype) => {
        if (fid === 1 && ftype === T_I32) page.values = reader.zigzag();
        else if (fid === 2 && ftype === T_I32) page.encoding = reader.zigzag();
        else return false;
        return true;
      });
    } else if (id === 8 && type === T_STRUCT) {
      // DataPageHeaderV2: 1 num_values, 4 encoding, 5 / 6 level byte lengths, 7 is_compressed.
      let repetitionBytes = 0;
      reader.struct(1, (fid, ftype) => {
        if (fid === 1 && ftype === T_I32) page.values = reader.zigzag();
        else if (fid === 4 && ftype === T_I32) page.encoding = reader.zigzag();
        else if (fid === 5 && ftype === T_I32) page.levelBytes = reader.zigzag();
        else if (fid === 6 && ftype === T_I32) repetitionBytes = reader.zigzag();
        else if (fid === 7 && (ftype === 1 || ftype === 2)) page.v2Compressed = ftype === 1;
        else return false;
        return true;
      });
      if (repetitionBytes !== 0) throw new Unsupported();
    } else return false;
    return true;
  });
  if (page.compressed < 0 || page.uncompressed < 0) reader.fail('a page header without its sizes');
  if (page.values < 0) reader.fail(`a page of ${page.values} values`);
  return page;
}

/** Dictionary values: byte ranges into the dictionary page, or the decoded numbers. */
type Dictionary =
  | { kind: 'bytes'; starts: Int32Array; ends: Int32Array; piece: number }
  | { kind: 'numbers'; values: Int32Array; width: 1 | 2 };

function readDictionary(
  column: RawColumn,
  body: Uint8Array,
  count: number,
  fail: (why: string) => never,
): Dictionary {
  if (column.kind === 'bytes') {
    const starts = new Int32Array(count);
    const ends = new Int32Array(count);
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 4 > body.length) fail(`its dictionary holds fewer than ${count} values`);
      const length = (body[at]! | (body[at + 1]! << 8) | (body[at + 2]! << 16) | (body[at + 3]! << 24)) >>> 0;
      at += 4;
      if (length > body.length - at) fail(`a dictionary value of ${length} bytes past the page`);
      starts[i] = at;
      ends[i] = at + length;
      at += length;
    }
    return { kind: 'bytes', starts, ends, piece: 0 };
  }
  if (column.kind === 'boolean') throw new Unsupported();
  const width = column.kind === 'int64' ? 2 : 1;
  if (body.length < count * 4 * width) fail(`its dictionary holds fewer than ${count} values`);
  const values = new Int32Array(count * width);
  new Uint8Array(values.buffer).set(body.subarray(0, count * 4 * width));
  return { kind: 'numbers', values, width };
}

function readPlain(
  column: RawColumn,
  body: Uint8Array,
  start: number,
  row: number,
  count: number,
  defined: Uint8Array | undefined,
  fail: (why: string) => never,
): void {
  let at = start;
  switch (column.kind) {
    case 'bytes': {
      const { starts, ends } = column;
      const n = body.length;
      for (let i = 0; i < count; i++) {
        if (defined !== undefined && defined[i] !== 1) continue;
        if (at + 4 > n) fail(`its page holds fewer than ${count} values`);
        const length =
          (body[at]! | (body[at + 1]! << 8) | (body[at + 2]! << 16) | (body[at + 3]! << 24)) >>> 0;
        at += 4;
        if (length > n - at) fail(`a value of ${length} bytes past the page`);
        starts[row + i] = at;
        ends[row + i] = at + length;
        at += length;
      }
      return;
    }
    case 'int32':
    case 'int64': {
      const width = column.kind === 'int64' ? 2 : 1;
      const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
      const values = column.values;
      for (let i = 0; i < count; i++) {
        if (defined !== undefined && defined[i] !== 1) continue;
        if (at + 4 * width > body.length) fail(`its page holds fewer than ${count} values`);
        for (let w = 0; w < width; w++) {
          values[(row + i) * width + w] = view.getInt32(at, true);
          at += 4;
        }
      }
      return;
    }
    case 'boolean': {
      // Bit-packed, least significant bit first.
      let bit = 0;
      for (let i = 0; i < count; i++) {
        if (defined !== undefined && defined[i] !== 1) continue;
        const byte = at + (bit >> 3);
        if (byte >= body.length) fail(`its page holds fewer than ${count} values`);
        column.values[row + i] = (body[byte]! >> (bit & 7)) & 1;
        bit++;
      }
      return;
    }
  }
}

function readIndexed(
  column: RawColumn,
  dictionary: Dictionary,
  indexes: Uint32Array,
  row: number,
  count: number,
  defined: Uint8Array | undefined,
  fail: (why: string) => never,
): void {
  let v = 0;
  if (column.kind === 'bytes') {
    if (dictionary.kind !== 'bytes') fail('a byte column with a numeric dictionary');
    const size = dictionary.starts.length;
    column.piece!.fill(dictionary.piece, row, row + count);
    for (let i = 0; i < count; i++) {
      if (defined !== undefined && defined[i] !== 1) continue;
      const index = indexes[v++]!;
      if (index >= size) fail(`dictionary index ${index} of a dictionary of ${size}`);
      column.starts[row + i] = dictionary.starts[index]!;
      column.ends[row + i] = dictionary.ends[index]!;
    }
    return;
  }
  if (column.kind === 'boolean' || dictionary.kind !== 'numbers') fail('a dictionary of another type');
  const width = dictionary.width;
  const size = dictionary.values.length / width;
  for (let i = 0; i < count; i++) {
    if (defined !== undefined && defined[i] !== 1) continue;
    const index = indexes[v++]!;
    if (index >= size) fail(`dictionary index ${index} of a dictionary of ${size}`);
    for (let w = 0; w < width; w++)
      column.values[(row + i) * width + w] = dictionary.values[index * width + w]!;
  }
}

/** `count` values of the RLE / bit-packed hybrid encoding at `width` <= 8 bits, one byte each. */
function hybrid(
  bytes: Uint8Array,
  start: number,
  end: number,
  width: number,
  count: number,
  fail: (why: string) => never,
): Uint8Array {
  const ints = hybridInts(bytes, start, end, width, count, fail);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = ints[i]!;
  return out;
}

/** `count` values of the RLE / bit-packed hybrid encoding at `width` bits (0-32). */
function hybridInts(
  bytes: Uint8Array,
  start: number,
  end: number,
  width: number,
  count: number,
  fail: (why: string) => never,
): Uint32Array {
  const out = new Uint32Array(count);
  let at = start;
  let n = 0;
  const valueBytes = (width + 7) >> 3;
  while (n < count) {
    // Run header: a ULEB128 varint; low bit 1 = bit-packed groups of 8, 0 = a repeated value.
    let header = 0;
    let shift = 0;
    for (;;) {
      if (at >= end) fail(`its levels or indexes end after ${n} of ${count} values`);
      const b = bytes[at++]!;
      header += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
      if (shift > 35) fail('a run header longer than 5 bytes');
    }
    const runLength = Math.floor(header / 2);
    if (header % 2 === 1) {
      const values = runLength * 8;
      const byteCount = runLength * width;
      if (at + byteCount > end) fail('a bit-packed run past its end');
      let bitPos = at * 8;
      for (let i = 0; i < values && n < count; i++) {
        let value = 0;
        for (let b = 0; b < width; b++) {
          const p = bitPos + b;
          value |= ((bytes[p >> 3]! >> (p & 7)) & 1) << b;
        }
        out[n++] = value >>> 0;
        bitPos += width;
      }
      at += byteCount;
    } else {
      const length = runLength;
      if (at + valueBytes > end) fail('a repeated run past its end');
      let value = 0;
      for (let b = 0; b < valueBytes; b++) value |= bytes[at + b]! << (8 * b);
      at += valueBytes;
      const stop = Math.min(count, n + length);
      out.fill(value >>> 0, n, stop);
      n = stop;
    }
  }
  return out;
}
