/*
 * Just enough of the Thrift compact protocol to walk Parquet's footer and page headers (the
 * structures Parquet serialises with it), bounds-checked throughout: a corrupt file gives a clean
 * error, never a read past the end or an endless loop.
 */

// Thrift compact protocol type ids.
export const T_TRUE = 1;
export const T_FALSE = 2;
export const T_BYTE = 3;
export const T_I16 = 4;
export const T_I32 = 5;
export const T_I64 = 6;
export const T_DOUBLE = 7;
export const T_BINARY = 8;
export const T_LIST = 9;
export const T_SET = 10;
export const T_MAP = 11;
export const T_STRUCT = 12;
// Parquet footers nest a few levels; a corrupt one must not recurse without limit.
const MAX_DEPTH = 64;

export class CompactReader {
  /**
   * Reads `bytes` from `pos` up to `end`; `fail` turns a problem (with the byte position) into the
   * caller's error.
   */
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    private readonly end: number,
    private readonly failure: (why: string) => Error,
  ) {}

  fail(why: string): never {
    throw this.failure(`at byte ${this.pos}: ${why}`);
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
