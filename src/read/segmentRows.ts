import {
  type Data,
  DataType,
  type Field,
  type Schema,
  type Timestamp,
  TimeUnit,
  tableFromIPC,
} from 'apache-arrow';
import { type KeyAttributeType, type KeySchema, parseKeySchema } from '../changelog/keySchema.js';
import { pageDecompressor } from '../changelog/pageDecompressor.js';
import {
  type BooleanColumn,
  type BytesColumn,
  bufferAt,
  type ColumnReader,
  type Int32Column,
  type Int64Column,
  type RawColumn,
  rowGroupColumnReaders,
  textAt,
} from '../changelog/parquetColumnReader.js';
import {
  checkRowCount,
  readRowGroupTable,
  readSegmentMetadata,
  requestedRowGroups,
  type SegmentMetadata,
} from '../changelog/parquetDecoder.js';
import { FOOTER_METADATA_KEY } from '../changelog/parquetEncoder.js';
import { ChangelogError } from '../support/errors.js';
import { CHANGE_OPS, type ChangeOp, type ChangeRow, type KeyedRow } from './changeRow.js';

/** Where a segment's rows come from: they carry both. */
export interface SegmentRowsSource {
  /** The segment object, relative to the destination. */
  segmentKey: string;
  /** The window whose manifest lists the segment. */
  windowStartMs: number;
}

export interface SegmentRowsOptions {
  /** Only these row groups, in this order (key lookup passes the ones that can hold its key). */
  rowGroups?: readonly number[];
  /** Checked before each row group. */
  signal?: AbortSignal;
  /**
   * Called with a row's typed key columns before the rest of the row is decoded; false skips the
   * row (a key lookup decodes the images of its item's rows only).
   */
  keep?: (keyColumns: Readonly<Record<string, string>>) => boolean;
}

/**
 * The rows of one change segment, in segment order (by key, then sequence number), one row group
 * decoded at a time, so memory holds one row group's columns, never the whole file's rows.
 *
 * The typed key columns are found in the segment itself: the Arrow schema stored in the file
 * marks them with field metadata `dynamodb.type` (changelog/arrowBatch.ts segmentSchema). S and N
 * keys come out as their text, B keys as base64.
 *
 * This is the hot path of `changes`. Row groups are read straight from their pages
 * (changelog/parquetColumnReader.ts: zstddec for ZSTD, values left in the decompressed pages,
 * each column decompressed when first used, so rows `keep` refuses never expand their images);
 * a file that reader does not handle (another codec, encoding or layout) goes through
 * parquet-wasm and Arrow instead, with the same result. Values are read from byte ranges, op
 * names are matched on their bytes and shared, and the timestamp is read as two 32-bit halves
 * instead of a BigInt per row.
 *
 * Throws a ChangelogError naming the segment when the file is not a readable change segment, a
 * column is missing or of another type, or a row's op is not one of CHANGE_OPS.
 */
export function* decodeSegmentRows(
  bytes: Uint8Array,
  source: SegmentRowsSource,
  options: SegmentRowsOptions = {},
): Generator<ChangeRow, void, undefined> {
  const { keep } = options;
  for (const group of decodeSegmentRowGroups(bytes, source, options)) {
    const n = group.length;
    for (let i = 0; i < n; i++) {
      const keyColumns = group.keyColumnsAt(i);
      if (keep !== undefined && !keep(keyColumns)) continue;
      yield group.rowAt(i, keyColumns);
    }
  }
}

/**
 * decodeSegmentRows one row group at a time, as DecodedRowGroups: what writers that copy bytes
 * (NDJSON) and the latest-per-key merge read, so values nobody asks for are never turned into
 * strings. `keep` is not applied here. Same order, checks and errors as decodeSegmentRows.
 */
export function* decodeSegmentRowGroups(
  bytes: Uint8Array,
  source: SegmentRowsSource,
  options: Omit<SegmentRowsOptions, 'keep'> = {},
): Generator<DecodedRowGroup, void, undefined> {
  const { segmentKey } = source;
  const { signal } = options;
  const metadata = readSegmentMetadata(bytes, segmentKey);
  const groups = requestedRowGroups(metadata.rowGroups.length, options.rowGroups, segmentKey);
  const stored = storedSchema(metadata);
  let layout: ColumnLayout | undefined;
  let rowsRead = 0;
  for (const rowGroup of groups) {
    signal?.throwIfAborted();
    const where = `segment ${segmentKey} row group ${rowGroup}`;
    layout ??= stored === undefined ? undefined : columnLayout(stored.fields, segmentKey);
    const readers =
      layout === undefined
        ? undefined
        : rowGroupColumnReaders(bytes, metadata, rowGroup, layout.names, pageDecompressor, segmentKey);
    if (layout !== undefined && readers !== undefined && fastColumnsFit(layout, readers)) {
      const n = metadata.rowGroups[rowGroup]!.rows;
      rowsRead += n;
      yield new DecodedRowGroup(
        layout.names.map((name) => readers.get(name)!.read),
        n,
        layout,
        where,
        source,
      );
      continue;
    }
    // The file uses something the page reader does not read: parquet-wasm decodes the row group.
    const table = readRowGroupTable(bytes, rowGroup, segmentKey);
    layout ??= columnLayout(table.schema.fields, segmentKey);
    rowsRead += table.numRows;
    for (const batch of table.batches) {
      const n = batch.numRows;
      const columns = layout.indexes.map((index, k) => {
        const column = arrowColumn(batch.getChildAt(index)!.data[0]!, layout!.kinds[k]!, n);
        return () => column;
      });
      yield new DecodedRowGroup(columns, n, layout, where, source);
    }
  }
  if (options.rowGroups === undefined) checkRowCount(metadata.rows, rowsRead, segmentKey);
}

/** A row of a DecodedRowGroup with what ordering it needs read (KeyedRow); the rest on demand. */
export class DecodedRow implements KeyedRow {
  readonly keyColumns: Record<string, string>;
  readonly sequenceNumber: string;
  readonly op: ChangeOp;

  constructor(
    readonly group: DecodedRowGroup,
    readonly index: number,
  ) {
    this.keyColumns = group.keyColumnsAt(index);
    this.sequenceNumber = group.sequenceNumberAt(index);
    this.op = group.opAt(index);
  }

  get eventId(): string {
    return textAt(this.group.eventId, this.index);
  }

  get shardId(): string {
    return textAt(this.group.shardId, this.index);
  }

  get keys(): string {
    return textAt(this.group.keys, this.index);
  }

  get segmentKey(): string {
    return this.group.source.segmentKey;
  }

  get eventTimeMs(): number {
    return this.group.eventTimeAt(this.index);
  }

  /** Reading it decompresses the row group's new_image column. */
  get newImage(): string | null {
    return nullableText(this.group.newImage, this.index);
  }

  /** The whole row. */
  changeRow(): ChangeRow {
    return this.group.rowAt(this.index, this.keyColumns);
  }
}

/** A typed key column of a DecodedRowGroup: its name (ChangeRow.keyColumns) and text encoding. */
export interface DecodedKeyColumn {
  name: string;
  /** Read on first use. */
  readonly column: BytesColumn;
  /** S and N keys are their UTF-8 text, B keys are handed out as base64. */
  encoding: 'utf8' | 'base64';
}

/**
 * One decoded row group of a segment (or one Arrow batch of it): the segment's columns as byte
 * ranges and numbers, read row by row on demand. Holds the row group's decompressed pages.
 */
export class DecodedRowGroup {
  readonly keyColumns: readonly DecodedKeyColumn[];
  /** Columns read so far, by their place in the layout. */
  private readonly loaded: (RawColumn | undefined)[];

  constructor(
    /** Reads each column of the layout (decompressing it) when it is first used. */
    private readonly readers: readonly (() => RawColumn)[],
    readonly length: number,
    private readonly layout: ColumnLayout,
    /** `segment <key> row group <n>`, for errors. */
    readonly where: string,
    readonly source: SegmentRowsSource,
  ) {
    this.loaded = new Array(readers.length);
    const text = (k: number) => this.text(k);
    this.keyColumns = layout.keyColumns.map((key, k) => ({
      name: key.name,
      encoding: key.type === 'B' ? 'base64' : 'utf8',
      get column() {
        return text(FIXED_COLUMNS + k);
      },
    }));
  }

  /** Column k, read on first use and checked for nulls where the segment contract allows none. */
  private column(k: number): RawColumn {
    let column = this.loaded[k];
    if (column === undefined) {
      column = this.readers[k]!();
      const nullable = k === NEW_IMAGE || k === OLD_IMAGE;
      if (!nullable && column.nulls !== undefined)
        notNullable(column.nulls, this.layout.names[k]!, this.where, this.source);
      this.loaded[k] = column;
    }
    return column;
  }

  private text(k: number): BytesColumn {
    return this.column(k) as BytesColumn;
  }

  get eventId(): BytesColumn {
    return this.text(EVENT_ID);
  }

  get op(): BytesColumn {
    return this.text(OP);
  }

  /** Epoch-ms timestamps as little-endian 32-bit halves (low, high): no BigInt per row. */
  get eventTime(): Int32Array {
    return (this.column(EVENT_TIME) as Int64Column).values;
  }

  get sequenceNumber(): BytesColumn {
    return this.text(SEQUENCE_NUMBER);
  }

  get shardId(): BytesColumn {
    return this.text(SHARD_ID);
  }

  get keys(): BytesColumn {
    return this.text(KEYS);
  }

  get newImage(): BytesColumn {
    return this.text(NEW_IMAGE);
  }

  get oldImage(): BytesColumn {
    return this.text(OLD_IMAGE);
  }

  get sizeBytes(): Int32Array {
    return (this.column(SIZE_BYTES) as Int32Column).values;
  }

  /** One byte per row, 1 for a TTL delete. */
  get ttlDelete(): Uint8Array {
    return (this.column(TTL_DELETE) as BooleanColumn).values;
  }

  /** Row i's typed key columns (ChangeRow.keyColumns). */
  keyColumnsAt(i: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const k of this.keyColumns) {
      out[k.name] = textAt(k.column, i, k.encoding);
    }
    return out;
  }

  /** Row i's op. Throws a ChangelogError naming the segment and row when it is not one of CHANGE_OPS. */
  opAt(i: number): ChangeOp {
    const op = this.op;
    const opName = opOf(bufferAt(op, i), op.starts[i]!, op.ends[i]!);
    if (opName === undefined) {
      throw new ChangelogError(
        `${this.where}: row ${i} has op ${JSON.stringify(textAt(op, i))}; allowed are ${CHANGE_OPS.join(', ')}`,
        { key: this.source.segmentKey, retriable: false },
      );
    }
    return opName;
  }

  eventTimeAt(i: number): number {
    return this.eventTime[2 * i + 1]! * 4294967296 + (this.eventTime[2 * i]! >>> 0);
  }

  sequenceNumberAt(i: number): string {
    return textAt(this.sequenceNumber, i, 'latin1');
  }

  /** Row i as a ChangeRow (`keyColumns`: keyColumnsAt(i), when the caller has it already). */
  rowAt(i: number, keyColumns: Record<string, string> = this.keyColumnsAt(i)): ChangeRow {
    const { eventId, shardId, keys } = this;
    const op = this.opAt(i);
    return {
      eventId: textAt(eventId, i),
      op,
      eventTimeMs: this.eventTimeAt(i),
      sequenceNumber: this.sequenceNumberAt(i),
      shardId: textAt(shardId, i),
      keys: textAt(keys, i),
      newImage: nullableText(this.newImage, i),
      oldImage: nullableText(this.oldImage, i),
      sizeBytes: this.sizeBytes[i]!,
      ttlDelete: this.ttlDelete[i] === 1,
      keyColumns,
      windowStartMs: this.source.windowStartMs,
      segmentKey: this.source.segmentKey,
    };
  }
}

/**
 * The table key schema a segment was written with: its footer's `dynamodb_changelog.key_schema`
 * (changelog/parquetDecoder.ts readSegmentMetadata reads the footer alone). Throws a
 * ChangelogError naming the segment when it has none.
 */
export function segmentKeySchema(metadata: SegmentMetadata, segmentKey: string): KeySchema {
  const entry = metadata.keyValueMetadata.get(FOOTER_METADATA_KEY);
  let spec: unknown;
  try {
    spec = entry === undefined ? undefined : (JSON.parse(entry) as Record<string, unknown>)['key_schema'];
  } catch {
    spec = undefined;
  }
  if (typeof spec !== 'string') {
    throw new ChangelogError(
      `segment ${segmentKey} has no key schema in its footer (${FOOTER_METADATA_KEY}.key_schema): not a change segment`,
      { key: segmentKey, retriable: false },
    );
  }
  try {
    return parseKeySchema(spec);
  } catch (error) {
    throw new ChangelogError(`segment ${segmentKey}: ${(error as Error).message}`, {
      key: segmentKey,
      retriable: false,
      cause: error,
    });
  }
}

// Where each column is in ColumnLayout.names (and so in the columns handed to rowsOf).
const EVENT_ID = 0;
const OP = 1;
const EVENT_TIME = 2;
const SEQUENCE_NUMBER = 3;
const SHARD_ID = 4;
const KEYS = 5;
const NEW_IMAGE = 6;
const OLD_IMAGE = 7;
const SIZE_BYTES = 8;
const TTL_DELETE = 9;
/** The typed key columns follow the fixed ones, partition key first. */
const FIXED_COLUMNS = 10;

interface ColumnLayout {
  /** The columns read, in the order above. */
  names: string[];
  /** Each one's index among the file's top-level fields. */
  indexes: number[];
  /** The form each one is read in. */
  kinds: RawColumn['kind'][];
  keyColumns: { name: string; type: KeyAttributeType }[];
}

const KEY_TYPE_METADATA = 'dynamodb.type';
const ARROW_SCHEMA_METADATA = 'ARROW:schema';

/**
 * The Arrow schema the writer stored in the footer (base64 of an IPC schema message): the field
 * metadata that marks the key columns lives there. Undefined when the file has none.
 */
function storedSchema(metadata: SegmentMetadata): Schema | undefined {
  const encoded = metadata.keyValueMetadata.get(ARROW_SCHEMA_METADATA);
  if (encoded === undefined) return undefined;
  try {
    return tableFromIPC(Buffer.from(encoded, 'base64')).schema;
  } catch {
    return undefined; // parquet-wasm reads the file and reports what is wrong with it
  }
}

/** Where each column is, checked against the segment column contract once per segment. */
function columnLayout(fields: readonly Field[], segmentKey: string): ColumnLayout {
  const wrong = (what: string): never => {
    throw new ChangelogError(`segment ${segmentKey} is not a readable change segment: ${what}`, {
      key: segmentKey,
      retriable: false,
    });
  };
  const find = (name: string, is: (f: Field) => boolean, expected: string): number => {
    const index = fields.findIndex((f) => f.name === name);
    if (index < 0) wrong(`it has no column ${JSON.stringify(name)}`);
    if (!is(fields[index]!))
      wrong(`column ${JSON.stringify(name)} is ${fields[index]!.type}, not ${expected}`);
    return index;
  };
  const utf8 = (f: Field) => DataType.isUtf8(f.type);
  const keyColumns = fields.flatMap((f, index) => {
    const type = f.metadata.get(KEY_TYPE_METADATA);
    if (type === undefined) return [];
    if (type !== 'S' && type !== 'N' && type !== 'B') {
      return wrong(
        `key column ${JSON.stringify(f.name)} has ${KEY_TYPE_METADATA} ${JSON.stringify(type)}, not S, N or B`,
      );
    }
    const ok = type === 'B' ? DataType.isBinary(f.type) : DataType.isUtf8(f.type);
    if (!ok) wrong(`key column ${JSON.stringify(f.name)} (${type}) is ${f.type}`);
    return [{ name: f.name, index, type: type as KeyAttributeType }];
  });
  if (keyColumns.length === 0) wrong(`no column has ${KEY_TYPE_METADATA} metadata (no typed key column)`);
  const indexes = [
    find('event_id', utf8, 'Utf8'),
    find('op', utf8, 'Utf8'),
    find(
      'event_time',
      (f) => DataType.isTimestamp(f.type) && (f.type as Timestamp).unit === TimeUnit.MILLISECOND,
      'Timestamp<MILLISECOND>',
    ),
    find('sequence_number', utf8, 'Utf8'),
    find('shard_id', utf8, 'Utf8'),
    find('keys', utf8, 'Utf8'),
    find('new_image', utf8, 'Utf8'),
    find('old_image', utf8, 'Utf8'),
    find('size_bytes', (f) => DataType.isInt(f.type) && f.type.bitWidth === 32, 'Int32'),
    find('ttl_delete', (f) => DataType.isBool(f.type), 'Bool'),
    ...keyColumns.map((k) => k.index),
  ];
  const kinds: RawColumn['kind'][] = indexes.map((_, k) =>
    k === EVENT_TIME ? 'int64' : k === SIZE_BYTES ? 'int32' : k === TTL_DELETE ? 'boolean' : 'bytes',
  );
  return {
    names: indexes.map((i) => fields[i]!.name),
    indexes,
    kinds,
    keyColumns: keyColumns.map(({ name, type }) => ({ name, type })),
  };
}

/** Whether the page reader's columns are of the physical types the layout reads. */
function fastColumnsFit(layout: ColumnLayout, columns: Map<string, ColumnReader>): boolean {
  return layout.names.every((name, k) => columns.get(name)?.kind === layout.kinds[k]);
}

/** An Arrow column (one batch's Data) in the page reader's form, sharing its buffers. */
function arrowColumn(data: Data, kind: RawColumn['kind'], n: number): RawColumn {
  const nulls = data.nullCount > 0 ? nullFlags(data, n) : undefined;
  switch (kind) {
    case 'bytes': {
      const values = data.values as Uint8Array;
      // A sliced Data's offsets are already sliced; its value bytes and bitmap are not.
      const offsets = data.valueOffsets as Int32Array;
      return {
        kind,
        buf: Buffer.from(values.buffer, values.byteOffset, values.byteLength),
        pieces: undefined,
        piece: undefined,
        starts: offsets.subarray(0, n),
        ends: offsets.subarray(1, n + 1),
        nulls,
      };
    }
    case 'int64': {
      const values = data.values as BigInt64Array;
      return { kind, values: new Int32Array(values.buffer, values.byteOffset, n * 2), nulls };
    }
    case 'int32':
      return { kind, values: data.values as Int32Array, nulls };
    case 'boolean': {
      const bits = data.values as Uint8Array;
      const values = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const bit = data.offset + i;
        values[i] = (bits[bit >> 3]! >> (bit & 7)) & 1;
      }
      return { kind, values, nulls };
    }
  }
}

/** One byte per row, 1 where the validity bitmap says null. */
function nullFlags(data: Data, n: number): Uint8Array {
  const bitmap = data.nullBitmap as Uint8Array;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const bit = data.offset + i;
    if (((bitmap[bit >> 3]! >> (bit & 7)) & 1) === 0) out[i] = 1;
  }
  return out;
}

function notNullable(nulls: Uint8Array, name: string, where: string, source: SegmentRowsSource): void {
  let count = 0;
  for (let i = 0; i < nulls.length; i++) count += nulls[i]!;
  if (count > 0) {
    throw new ChangelogError(`${where}: column ${name} has ${count} null(s); it may have none`, {
      key: source.segmentKey,
      retriable: false,
    });
  }
}

function nullableText(column: BytesColumn, i: number): string | null {
  if (column.nulls !== undefined && column.nulls[i] === 1) return null;
  return textAt(column, i);
}

const OP_BYTES = CHANGE_OPS.map((name) => ({ name, bytes: Buffer.from(name, 'latin1') }));

/** A row's op by its bytes: it is one of five constants, so it is matched, not decoded. */
function opOf(buf: Uint8Array, start: number, end: number): ChangeOp | undefined {
  const length = end - start;
  for (const { name, bytes } of OP_BYTES) {
    if (bytes.length !== length) continue;
    let same = true;
    for (let k = 0; k < length; k++) {
      if (buf[start + k] !== bytes[k]) {
        same = false;
        break;
      }
    }
    if (same) return name;
  }
  return undefined;
}
