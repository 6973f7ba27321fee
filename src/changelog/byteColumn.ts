/**
 * A growable column of byte strings (UTF-8 text or binary), stored as one contiguous arena plus end
 * offsets: the same layout as an Arrow Utf8/Binary vector, so building Arrow data is a permuted
 * memcpy instead of per-value string handling.
 */
export class ByteColumn {
  private bytes: Uint8Array;
  private endOffsets: Int32Array;
  private validity: Uint8Array | undefined;
  private count = 0;
  private used = 0;
  private nulls = 0;
  // Scratch for `permuted`, kept across segments for the same reason the arena is.
  private sortedBytes = new Uint8Array(0);
  private sortedOffsets = new Int32Array(0);

  constructor(
    readonly nullable = false,
    initialBytes = 1024,
    initialRows = 64,
  ) {
    this.bytes = new Uint8Array(initialBytes);
    this.endOffsets = new Int32Array(initialRows);
    this.validity = nullable ? new Uint8Array(initialRows) : undefined;
  }

  get length(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.used;
  }

  get nullCount(): number {
    return this.nulls;
  }

  /** The arena; valid up to `byteLength`. Reallocated on growth, so do not keep it across appends. */
  get data(): Uint8Array {
    return this.bytes;
  }

  start(row: number): number {
    return row === 0 ? 0 : this.endOffsets[row - 1]!;
  }

  end(row: number): number {
    return this.endOffsets[row]!;
  }

  isNull(row: number): boolean {
    return this.validity !== undefined && this.validity[row] === 0;
  }

  value(row: number): Uint8Array {
    return this.bytes.subarray(this.start(row), this.end(row));
  }

  append(source: Uint8Array, start: number, end: number): void {
    const size = end - start;
    this.reserve(size);
    if (size < 64) {
      // Short values (ids, sequence numbers): a loop beats creating a subarray view.
      const out = this.bytes;
      let o = this.used;
      for (let i = start; i < end; i++) out[o++] = source[i]!;
    } else {
      this.bytes.set(source.subarray(start, end), this.used);
    }
    this.used += size;
    this.push(1);
  }

  appendBytes(value: Uint8Array): void {
    this.append(value, 0, value.length);
  }

  /** Appends row `row` of `source` (value or null). */
  appendFrom(source: ByteColumn, row: number): void {
    if (source.isNull(row)) this.appendNull();
    else this.append(source.bytes, source.start(row), source.end(row));
  }

  appendNull(): void {
    if (!this.nullable) throw new TypeError('appendNull on a non-nullable column');
    this.reserve(0);
    this.nulls++;
    this.push(0);
  }

  /**
   * The values in `perm` order as Arrow's variable-width layout (offsets, data, validity bitmap).
   * The arrays are views of scratch owned by the column: valid until the next call.
   */
  permuted(perm: Int32Array): { offsets: Int32Array; data: Uint8Array; validity: Uint8Array | undefined } {
    const n = perm.length;
    let total = 0;
    for (let r = 0; r < n; r++) {
      const row = perm[r]!;
      total += this.end(row) - this.start(row);
    }
    if (this.sortedBytes.length < total) this.sortedBytes = new Uint8Array(Math.ceil(total * 1.25));
    if (this.sortedOffsets.length < n + 1) this.sortedOffsets = new Int32Array(Math.ceil((n + 1) * 1.25));
    const out = this.sortedBytes;
    const offsets = this.sortedOffsets;
    const src = this.bytes;
    const validity = this.nulls > 0 ? new Uint8Array((n + 7) >> 3) : undefined;
    let pos = 0;
    offsets[0] = 0;
    for (let r = 0; r < n; r++) {
      const row = perm[r]!;
      const s = this.start(row);
      const e = this.end(row);
      if (e - s < 64) {
        for (let i = s; i < e; i++) out[pos++] = src[i]!;
      } else {
        out.set(src.subarray(s, e), pos);
        pos += e - s;
      }
      offsets[r + 1] = pos;
      if (validity && !this.isNull(row)) validity[r >> 3]! |= 1 << (r & 7);
    }
    return { offsets: offsets.subarray(0, n + 1), data: out.subarray(0, total), validity };
  }

  /** Empties the column but keeps its capacity, so a recycled buffer does not fault in new pages. */
  clear(): void {
    this.count = 0;
    this.used = 0;
    this.nulls = 0;
  }

  /** Drops rows from `rows` on (used to undo a half-decoded page). */
  truncate(rows: number): void {
    if (rows >= this.count) return;
    if (this.validity) {
      for (let r = rows; r < this.count; r++) if (this.validity[r] === 0) this.nulls--;
    }
    this.count = rows;
    this.used = rows === 0 ? 0 : this.endOffsets[rows - 1]!;
  }

  private push(valid: 0 | 1): void {
    this.endOffsets[this.count] = this.used;
    if (this.validity) this.validity[this.count] = valid;
    this.count++;
  }

  private reserve(extraBytes: number): void {
    if (this.used + extraBytes > this.bytes.length) {
      let capacity = this.bytes.length * 2;
      while (capacity < this.used + extraBytes) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.bytes.subarray(0, this.used));
      this.bytes = grown;
    }
    if (this.count === this.endOffsets.length) {
      const grown = new Int32Array(this.endOffsets.length * 2);
      grown.set(this.endOffsets);
      this.endOffsets = grown;
      if (this.validity) {
        const grownValidity = new Uint8Array(grown.length);
        grownValidity.set(this.validity);
        this.validity = grownValidity;
      }
    }
  }
}

/** Compares two byte ranges as unsigned bytes (DynamoDB's order for S and B keys). */
export function compareBytes(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): number {
  const aLen = aEnd - aStart;
  const bLen = bEnd - bStart;
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i]! - b[bStart + i]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/**
 * Compares two decimal digit strings (stream sequence numbers) as integers without BigInt:
 * leading zeros are skipped, then the longer number is larger, then bytes decide.
 */
export function compareDigits(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): number {
  while (aStart < aEnd - 1 && a[aStart] === 0x30) aStart++;
  while (bStart < bEnd - 1 && b[bStart] === 0x30) bStart++;
  const lenDiff = aEnd - aStart - (bEnd - bStart);
  if (lenDiff !== 0) return lenDiff;
  return compareBytes(a, aStart, aEnd, b, bStart, bEnd);
}
