/**
 * Bytes appended into one growable buffer: output lines assembled from byte ranges of other
 * buffers, without building strings. `take()` hands the bytes over and starts on another buffer,
 * so what was handed over is never written again (a stream may still hold it) until the taker
 * gives it back with `recycle()`. Reusing buffers matters: fresh ones cost page faults, and V8
 * runs a full GC for about every 32 MB of new buffer memory.
 */
export class ByteBuilder {
  private buf: Buffer;
  private readonly spare: Buffer[] = [];
  length = 0;

  constructor(private readonly initialSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** Room for `n` more bytes. */
  private ensure(n: number): void {
    const needed = this.length + n;
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  /** Appends `source[start, end)`. */
  bytes(source: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    if (n <= 16) {
      // Short pieces (names, quotes, ids): a loop is cheaper than a native copy call.
      const buf = this.buf;
      let at = this.length;
      for (let k = start; k < end; k++) buf[at++] = source[k]!;
    } else {
      source.copy(this.buf, this.length, start, end);
    }
    this.length += n;
  }

  /** Appends one byte. */
  byte(value: number): void {
    this.ensure(1);
    this.buf[this.length++] = value;
  }

  /** Appends text as UTF-8. */
  text(value: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    this.ensure(value.length * 3);
    this.length += this.buf.write(value, this.length, 'utf8');
  }

  /** Drops the bytes from `length` on (to rebuild them another way). */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  /** The bytes so far (a view of them), then an empty builder on a recycled or new buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.length);
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.initialSize);
    this.length = 0;
    return out;
  }

  /**
   * Gives back what take() returned, once nothing reads it any more (a file stream's write
   * finished): the builder may write into it again.
   */
  recycle(taken: Buffer): void {
    // Only a buffer of its own (not a slice of Node's shared pool) of a useful size.
    const whole = taken.buffer;
    if (taken.byteOffset !== 0 || whole.byteLength < this.initialSize || this.spare.length >= 4) return;
    this.spare.push(Buffer.from(whole, 0, whole.byteLength));
  }
}
