import { ByteColumn } from './byteColumn.js';
import { type KeyAttribute, type KeySchema, keyAttributes } from './keySchema.js';

export const OP_INSERT = 0;
export const OP_MODIFY = 1;
export const OP_REMOVE = 2;
/** An item's state at a snapshot time (full export, scan): written by `replay`, never by `run`. */
export const OP_SNAPSHOT = 3;
/** An incremental export's final state of an item over its period (a tombstone if it was deleted). */
export const OP_NET = 4;
export type OpCode =
  | typeof OP_INSERT
  | typeof OP_MODIFY
  | typeof OP_REMOVE
  | typeof OP_SNAPSHOT
  | typeof OP_NET;
export const OP_NAMES = ['INSERT', 'MODIFY', 'REMOVE', 'SNAPSHOT', 'NET'] as const;

/** Bytes charged per row on top of its variable-length values (fixed-width columns, offsets). */
const FIXED_BYTES_PER_ROW = 8 + 4 + 4 + 1 + 1 + 4 * 8;

/**
 * Change rows in arrival order, held column by column. Decoders flatten each GetRecords page into
 * it as the page arrives (no per-record objects are kept); the Arrow builder sorts and copies the
 * columns out when a segment is flushed.
 *
 * Decoders append one value to every byte column of a row, then call `commitRow` with the
 * fixed-width values. A page is added all-or-nothing: `mark()` before, `rollback()` on failure.
 */
export class ChangeBuffer {
  readonly keySchema: KeySchema;
  readonly keyAttributes: readonly KeyAttribute[];
  readonly eventId = new ByteColumn(false, 64 * 1024, 1024);
  readonly sequenceNumber = new ByteColumn(false, 64 * 1024, 1024);
  readonly keys = new ByteColumn(false, 64 * 1024, 1024);
  readonly newImage = new ByteColumn(true, 1024 * 1024, 1024);
  readonly oldImage = new ByteColumn(true, 1024 * 1024, 1024);
  /** Typed key values: UTF-8 for S, the exact number text for N, raw bytes for B. */
  readonly keyValues: readonly ByteColumn[];
  /** Order-preserving sort keys for N key attributes (undefined where the value itself sorts). */
  readonly keySortKeys: readonly (ByteColumn | undefined)[];

  private ops = new Uint8Array(1024);
  private eventTimes = new Float64Array(1024);
  private sizes = new Int32Array(1024);
  private ttlDeletes = new Uint8Array(1024);
  private shardIndexes = new Int32Array(1024);
  private readonly shardIds: string[] = [];
  private readonly shardIndexById = new Map<string, number>();
  private rows = 0;

  constructor(keySchema: KeySchema) {
    this.keySchema = keySchema;
    this.keyAttributes = keyAttributes(keySchema);
    this.keyValues = this.keyAttributes.map(() => new ByteColumn(false, 64 * 1024, 1024));
    this.keySortKeys = this.keyAttributes.map((a) =>
      a.type === 'N' ? new ByteColumn(false, 64 * 1024, 1024) : undefined,
    );
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Uncompressed bytes held: what flush-size and backpressure limits are measured against. */
  get byteSize(): number {
    let total = this.rows * FIXED_BYTES_PER_ROW;
    total += this.eventId.byteLength + this.sequenceNumber.byteLength + this.keys.byteLength;
    total += this.newImage.byteLength + this.oldImage.byteLength;
    for (const c of this.keyValues) total += c.byteLength;
    for (const c of this.keySortKeys) if (c) total += c.byteLength;
    return total;
  }

  /** Index of a shard id in this buffer's shard dictionary, added on first use. */
  shardIndex(shardId: string): number {
    let index = this.shardIndexById.get(shardId);
    if (index === undefined) {
      index = this.shardIds.length;
      this.shardIds.push(shardId);
      this.shardIndexById.set(shardId, index);
    }
    return index;
  }

  get shards(): readonly string[] {
    return this.shardIds;
  }

  op(row: number): OpCode {
    return this.ops[row] as OpCode;
  }
  eventTimeMs(row: number): number {
    return this.eventTimes[row]!;
  }
  sizeBytes(row: number): number {
    return this.sizes[row]!;
  }
  ttlDelete(row: number): boolean {
    return this.ttlDeletes[row] === 1;
  }
  shardOf(row: number): number {
    return this.shardIndexes[row]!;
  }

  /** Finishes a row whose byte columns the decoder has already appended. */
  commitRow(
    op: OpCode,
    eventTimeMs: number,
    sizeBytes: number,
    ttlDelete: boolean,
    shardIndex: number,
  ): void {
    const r = this.rows;
    if (r === this.ops.length) this.grow();
    this.ops[r] = op;
    this.eventTimes[r] = eventTimeMs;
    this.sizes[r] = sizeBytes;
    this.ttlDeletes[r] = ttlDelete ? 1 : 0;
    this.shardIndexes[r] = shardIndex;
    this.rows = r + 1;
  }

  /** Appends a copy of row `row` of `source` (same key schema): for routing rows between buffers. */
  appendRowFrom(source: ChangeBuffer, row: number): void {
    this.eventId.appendFrom(source.eventId, row);
    this.sequenceNumber.appendFrom(source.sequenceNumber, row);
    this.keys.appendFrom(source.keys, row);
    this.newImage.appendFrom(source.newImage, row);
    this.oldImage.appendFrom(source.oldImage, row);
    for (let k = 0; k < this.keyValues.length; k++) this.keyValues[k]!.appendFrom(source.keyValues[k]!, row);
    for (let k = 0; k < this.keySortKeys.length; k++) {
      const column = this.keySortKeys[k];
      if (column) column.appendFrom(source.keySortKeys[k]!, row);
    }
    this.commitRow(
      source.op(row),
      source.eventTimeMs(row),
      source.sizeBytes(row),
      source.ttlDelete(row),
      this.shardIndex(source.shards[source.shardOf(row)]!),
    );
  }

  /**
   * Empties the buffer for reuse after its segment was encoded (encoding copies the values out).
   * Keeping the grown arenas avoids re-allocating and page-faulting tens of MiB per segment.
   */
  clear(): void {
    this.rows = 0;
    for (const column of this.byteColumns()) column.clear();
    this.shardIds.length = 0;
    this.shardIndexById.clear();
  }

  mark(): number {
    return this.rows;
  }

  /** Drops every row from `mark` on, including byte values appended for an uncommitted row. */
  rollback(mark: number): void {
    this.rows = mark;
    for (const column of this.byteColumns()) column.truncate(mark);
  }

  /** Throws if a decoder left the columns out of step (a bug, not bad input). */
  assertConsistent(): void {
    for (const column of this.byteColumns()) {
      if (column.length !== this.rows) {
        throw new Error(
          `change buffer out of step: a column has ${column.length} values for ${this.rows} rows`,
        );
      }
    }
  }

  private *byteColumns(): Iterable<ByteColumn> {
    yield this.eventId;
    yield this.sequenceNumber;
    yield this.keys;
    yield this.newImage;
    yield this.oldImage;
    yield* this.keyValues;
    for (const c of this.keySortKeys) if (c) yield c;
  }

  private grow(): void {
    const n = this.ops.length * 2;
    const grow = <T extends Uint8Array | Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a as never);
      return b;
    };
    this.ops = grow(this.ops, (k) => new Uint8Array(k));
    this.eventTimes = grow(this.eventTimes, (k) => new Float64Array(k));
    this.sizes = grow(this.sizes, (k) => new Int32Array(k));
    this.ttlDeletes = grow(this.ttlDeletes, (k) => new Uint8Array(k));
    this.shardIndexes = grow(this.shardIndexes, (k) => new Int32Array(k));
  }
}
