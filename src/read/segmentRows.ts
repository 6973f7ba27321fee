import { type Data, DataType, type Field, type Table, type Timestamp, TimeUnit } from 'apache-arrow';
import { type KeyAttributeType, type KeySchema, parseKeySchema } from '../changelog/keySchema.js';
import { readSegmentTables, type SegmentMetadata } from '../changelog/parquetDecoder.js';
import { FOOTER_METADATA_KEY } from '../changelog/parquetEncoder.js';
import { ChangelogError } from '../support/errors.js';
import { CHANGE_OPS, type ChangeOp, type ChangeRow } from './changeRow.js';

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
 * decoded at a time, so memory holds one row group's Arrow data, never the whole file's rows.
 *
 * The typed key columns are found in the segment itself: the Arrow schema stored in the file
 * marks them with field metadata `dynamodb.type` (changelog/arrowBatch.ts segmentSchema). S and N
 * keys come out as their text, B keys as base64.
 *
 * This is the hot path of `changes`: values are read straight from the Arrow buffers (offsets and
 * bytes, no per-cell `Vector.get`), op names are matched on their bytes and shared, and the
 * timestamp is read as two 32-bit halves instead of a BigInt per row.
 *
 * Throws a ChangelogError naming the segment when the file is not a readable change segment, a
 * column is missing or of another type, or a row's op is not one of CHANGE_OPS.
 */
export function* decodeSegmentRows(
  bytes: Uint8Array,
  source: SegmentRowsSource,
  options: SegmentRowsOptions = {},
): Generator<ChangeRow, void, undefined> {
  const { segmentKey, windowStartMs } = source;
  const { signal, keep } = options;
  const tables = readSegmentTables(bytes, segmentKey, { rowGroups: options.rowGroups });
  let layout: ColumnLayout | undefined;
  for (;;) {
    signal?.throwIfAborted();
    const next = tables.next();
    if (next.done) return;
    const { table, rowGroup } = next.value;
    layout ??= columnLayout(table, segmentKey);
    for (const batch of table.batches) {
      const child = (index: number): Data => batch.getChildAt(index)!.data[0]!;
      const where = `segment ${segmentKey} row group ${rowGroup}`;
      const text = (index: number, name: string, nullable = false) =>
        textColumn(child(index), { where, segmentKey, name, nullable });
      const eventId = text(layout.eventId, 'event_id');
      const op = text(layout.op, 'op');
      const eventTime = timeColumn(child(layout.eventTime), where, segmentKey);
      const sequenceNumber = text(layout.sequenceNumber, 'sequence_number');
      const shardId = text(layout.shardId, 'shard_id');
      const keys = text(layout.keys, 'keys');
      const newImage = text(layout.newImage, 'new_image', true);
      const oldImage = text(layout.oldImage, 'old_image', true);
      const sizeBytes = child(layout.sizeBytes).values as Int32Array;
      const ttl = child(layout.ttlDelete);
      const ttlBits = ttl.values as Uint8Array;
      const ttlOffset = ttl.offset;
      const keyColumns = layout.keyColumns.map((k) => ({
        name: k.name,
        column: text(k.index, k.name),
        base64: k.type === 'B',
      }));

      const n = batch.numRows;
      for (let i = 0; i < n; i++) {
        const rowKeys: Record<string, string> = {};
        for (const k of keyColumns) {
          const c = k.column;
          rowKeys[k.name] = c.buf.toString(k.base64 ? 'base64' : 'utf8', c.offsets[i]!, c.offsets[i + 1]!);
        }
        if (keep !== undefined && !keep(rowKeys)) continue;
        const opStart = op.offsets[i]!;
        const opEnd = op.offsets[i + 1]!;
        const opName = opOf(op.buf, opStart, opEnd);
        if (opName === undefined) {
          throw new ChangelogError(
            `${where}: row ${i} has op ${JSON.stringify(op.buf.toString('utf8', opStart, opEnd))}; allowed are ${CHANGE_OPS.join(', ')}`,
            { key: segmentKey, retriable: false },
          );
        }
        const ttlBit = ttlOffset + i;
        yield {
          eventId: eventId.buf.toString('utf8', eventId.offsets[i]!, eventId.offsets[i + 1]!),
          op: opName,
          eventTimeMs: eventTime[2 * i + 1]! * 4294967296 + (eventTime[2 * i]! >>> 0),
          sequenceNumber: sequenceNumber.buf.toString(
            'latin1',
            sequenceNumber.offsets[i]!,
            sequenceNumber.offsets[i + 1]!,
          ),
          shardId: shardId.buf.toString('utf8', shardId.offsets[i]!, shardId.offsets[i + 1]!),
          keys: keys.buf.toString('utf8', keys.offsets[i]!, keys.offsets[i + 1]!),
          newImage: nullableText(newImage, i),
          oldImage: nullableText(oldImage, i),
          sizeBytes: sizeBytes[i]!,
          ttlDelete: (ttlBits[ttlBit >> 3]! & (1 << (ttlBit & 7))) !== 0,
          keyColumns: rowKeys,
          windowStartMs,
          segmentKey,
        };
      }
    }
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

interface ColumnLayout {
  eventId: number;
  op: number;
  eventTime: number;
  sequenceNumber: number;
  shardId: number;
  keys: number;
  newImage: number;
  oldImage: number;
  sizeBytes: number;
  ttlDelete: number;
  keyColumns: { name: string; index: number; type: KeyAttributeType }[];
}

const KEY_TYPE_METADATA = 'dynamodb.type';

/** Where each column is, checked against the segment column contract once per segment. */
function columnLayout(table: Table, segmentKey: string): ColumnLayout {
  const fields = table.schema.fields;
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
  return {
    eventId: find('event_id', utf8, 'Utf8'),
    op: find('op', utf8, 'Utf8'),
    eventTime: find(
      'event_time',
      (f) => DataType.isTimestamp(f.type) && (f.type as Timestamp).unit === TimeUnit.MILLISECOND,
      'Timestamp<MILLISECOND>',
    ),
    sequenceNumber: find('sequence_number', utf8, 'Utf8'),
    shardId: find('shard_id', utf8, 'Utf8'),
    keys: find('keys', utf8, 'Utf8'),
    newImage: find('new_image', utf8, 'Utf8'),
    oldImage: find('old_image', utf8, 'Utf8'),
    sizeBytes: find('size_bytes', (f) => DataType.isInt(f.type) && f.type.bitWidth === 32, 'Int32'),
    ttlDelete: find('ttl_delete', (f) => DataType.isBool(f.type), 'Bool'),
    keyColumns,
  };
}

/** A Utf8/Binary column's raw layout: row i is `buf[offsets[i], offsets[i + 1])`. */
interface TextColumn {
  offsets: Int32Array;
  buf: Buffer;
  /** The validity bitmap when the column has nulls. */
  valid: Uint8Array | undefined;
  bitOffset: number;
}

interface ColumnContext {
  where: string;
  segmentKey: string;
  name: string;
  nullable: boolean;
}

function textColumn(data: Data, context: ColumnContext): TextColumn {
  const values = data.values as Uint8Array;
  const hasNulls = data.nullCount > 0;
  if (hasNulls && !context.nullable) {
    throw new ChangelogError(
      `${context.where}: column ${context.name} has ${data.nullCount} null(s); it may have none`,
      { key: context.segmentKey, retriable: false },
    );
  }
  return {
    // A sliced Data's offsets are already sliced; its value bytes and bitmap are not.
    offsets: data.valueOffsets as Int32Array,
    buf: Buffer.from(values.buffer, values.byteOffset, values.byteLength),
    valid: hasNulls ? (data.nullBitmap as Uint8Array) : undefined,
    bitOffset: data.offset,
  };
}

function nullableText(column: TextColumn, i: number): string | null {
  const valid = column.valid;
  if (valid !== undefined) {
    const bit = column.bitOffset + i;
    if ((valid[bit >> 3]! & (1 << (bit & 7))) === 0) return null;
  }
  return column.buf.toString('utf8', column.offsets[i]!, column.offsets[i + 1]!);
}

/** Epoch-ms timestamps as little-endian 32-bit halves (low, high): no BigInt per row. */
function timeColumn(data: Data, where: string, segmentKey: string): Int32Array {
  const values = data.values as BigInt64Array;
  if (data.nullCount > 0) {
    throw new ChangelogError(`${where}: column event_time has ${data.nullCount} null(s); it may have none`, {
      key: segmentKey,
      retriable: false,
    });
  }
  return new Int32Array(values.buffer, values.byteOffset, values.length * 2);
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
