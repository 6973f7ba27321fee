import {
  Binary,
  Bool,
  type Data,
  type DataType,
  Field,
  Int32,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  Utf8,
} from 'apache-arrow';
import { type ByteColumn, compareBytes, compareDigits } from './byteColumn.js';
import { type ChangeBuffer, OP_NAMES } from './changeBuffer.js';
import { type KeyAttribute, type KeySchema, keyAttributes, keyColumnName } from './keySchema.js';

/** The Arrow schema of a change segment for a table's key schema (DESIGN.md column contract). */
export function segmentSchema(keySchema: KeySchema): Schema {
  const keyFields = keyAttributes(keySchema).map(
    (a) => new Field(keyColumnName(a.name), keyArrowType(a), false, new Map([['dynamodb.type', a.type]])),
  );
  return new Schema([
    new Field('event_id', new Utf8(), false),
    new Field('op', new Utf8(), false),
    new Field('event_time', new TimestampMillisecond('UTC'), false),
    new Field('sequence_number', new Utf8(), false),
    new Field('shard_id', new Utf8(), false),
    new Field('keys', new Utf8(), false),
    new Field('new_image', new Utf8(), true),
    new Field('old_image', new Utf8(), true),
    ...keyFields,
    new Field('size_bytes', new Int32(), false),
    new Field('ttl_delete', new Bool(), false),
  ]);
}

function keyArrowType(a: KeyAttribute): DataType {
  // N keys keep the exact decimal text: 38 significant digits over 10^-130..10^126 fit no fixed
  // Arrow/Parquet decimal, and float64 would lose digits. Readers cast when they know their range.
  return a.type === 'B' ? new Binary() : new Utf8();
}

/**
 * The order rows are written in: by key (partition then sort key, in DynamoDB's order: bytes for
 * S and B, numeric for N), then sequence number as an integer, then shard id. The order is total,
 * so it does not depend on arrival order, which keeps segments deterministic.
 */
export function sortPermutation(buffer: ChangeBuffer): Int32Array {
  const n = buffer.rowCount;
  const rows = new Array<number>(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  const sortColumns = buffer.keyValues.map((values, k) => buffer.keySortKeys[k] ?? values);
  const seq = buffer.sequenceNumber;
  const shards = buffer.shards;
  rows.sort((a, b) => {
    for (const column of sortColumns) {
      const data = column.data;
      const c = compareBytes(data, column.start(a), column.end(a), data, column.start(b), column.end(b));
      if (c !== 0) return c;
    }
    const sd = seq.data;
    const c = compareDigits(sd, seq.start(a), seq.end(a), sd, seq.start(b), seq.end(b));
    if (c !== 0) return c;
    const sa = shards[buffer.shardOf(a)]!;
    const sb = shards[buffer.shardOf(b)]!;
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  });
  return Int32Array.from(rows);
}

/**
 * Builds the segment's Arrow table from the buffer, rows sorted, vectors built from raw buffers.
 * The variable-width vectors are views of scratch the buffer's columns reuse for every segment
 * (fresh 30+ MiB arrays per segment cost more in page faults than the copy itself), so the table
 * must be consumed (encoded) before the buffer builds its next table.
 */
export function buildArrowTable(buffer: ChangeBuffer): Table {
  const schema = segmentSchema(buffer.keySchema);
  const perm = sortPermutation(buffer);
  const n = perm.length;
  const fields = schema.fields;

  const eventTime = new BigInt64Array(n);
  const sizes = new Int32Array(n);
  const ttl = new Uint8Array((n + 7) >> 3);
  for (let r = 0; r < n; r++) {
    const row = perm[r]!;
    eventTime[r] = BigInt(buffer.eventTimeMs(row));
    sizes[r] = buffer.sizeBytes(row);
    if (buffer.ttlDelete(row)) ttl[r >> 3]! |= 1 << (r & 7);
  }
  const opBytes = OP_NAMES.map((name) => Buffer.from(name, 'latin1'));
  const shardBytes = buffer.shards.map((s) => Buffer.from(s, 'utf8'));

  const children: Data[] = [
    bytesData(new Utf8(), buffer.eventId, perm),
    constantsData(opBytes, perm, (row) => buffer.op(row)),
    makeData({ type: new TimestampMillisecond('UTC'), length: n, data: eventTime }),
    bytesData(new Utf8(), buffer.sequenceNumber, perm),
    constantsData(shardBytes, perm, (row) => buffer.shardOf(row)),
    bytesData(new Utf8(), buffer.keys, perm),
    bytesData(new Utf8(), buffer.newImage, perm),
    bytesData(new Utf8(), buffer.oldImage, perm),
    ...buffer.keyAttributes.map((a, k) => bytesData(keyArrowType(a), buffer.keyValues[k]!, perm)),
    makeData({ type: new Int32(), length: n, data: sizes }),
    makeData({ type: new Bool(), length: n, data: ttl }),
  ];
  const struct = makeData({ type: new Struct(fields), length: n, nullCount: 0, children });
  return new Table([new RecordBatch(schema, struct)]);
}

/** A Utf8/Binary vector with rows taken from `column` in `perm` order (views of its scratch). */
function bytesData(type: DataType, column: ByteColumn, perm: Int32Array): Data {
  const { offsets, data, validity } = column.permuted(perm);
  return makeData({
    type: type as Utf8,
    length: perm.length,
    nullCount: validity ? column.nullCount : 0,
    nullBitmap: validity,
    valueOffsets: offsets,
    data,
  });
}

/** A Utf8 vector whose values come from a small set of constants (op names, shard ids). */
function constantsData(
  values: readonly Uint8Array[],
  perm: Int32Array,
  indexOf: (row: number) => number,
): Data {
  const n = perm.length;
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let r = 0; r < n; r++) total += values[indexOf(perm[r]!)]!.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (let r = 0; r < n; r++) {
    const v = values[indexOf(perm[r]!)]!;
    out.set(v, pos);
    pos += v.length;
    offsets[r + 1] = pos;
  }
  return makeData({ type: new Utf8(), length: n, valueOffsets: offsets, data: out });
}
