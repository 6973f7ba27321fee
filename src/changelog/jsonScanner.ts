/**
 * Allocation-free helpers to walk JSON text in a byte buffer. They check structure (balanced
 * brackets, terminated strings, no raw control characters in strings) but do not build values:
 * callers copy the byte ranges they need. Each returns the index just past what it consumed and
 * throws JsonSyntaxError with the byte offset on anything malformed or truncated.
 */

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = 'JsonSyntaxError';
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Set by `scanString`: whether the last string scanned contained an escape sequence. */
export let lastStringEscaped = false;

export function skipWhitespace(buf: Uint8Array, i: number): number {
  let c = buf[i];
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = buf[++i];
  return i;
}

export function expectByte(buf: Uint8Array, i: number, byte: number, what: string): number {
  if (buf[i] !== byte) {
    throw new JsonSyntaxError(`expected ${what}, found ${describe(buf, i)}`, i);
  }
  return i + 1;
}

/** `i` at an opening quote; returns the index after the closing quote. */
export function scanString(buf: Uint8Array, i: number): number {
  if (buf[i] !== QUOTE) throw new JsonSyntaxError(`expected a string, found ${describe(buf, i)}`, i);
  let escaped = false;
  let j = i + 1;
  const n = buf.length;
  while (j < n) {
    const c = buf[j]!;
    if (c === QUOTE) {
      lastStringEscaped = escaped;
      return j + 1;
    }
    if (c === BACKSLASH) {
      escaped = true;
      j += 2;
      continue;
    }
    if (c < 0x20) throw new JsonSyntaxError('raw control character in a string', j);
    j++;
  }
  throw new JsonSyntaxError('unterminated string', i);
}

/** Skips any JSON value starting at `i` (no leading whitespace); returns the index after it. */
export function skipValue(buf: Uint8Array, i: number): number {
  const c = buf[i];
  if (c === QUOTE) return scanString(buf, i);
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) return skipContainer(buf, i);
  return scanScalar(buf, i);
}

/** Numbers, true, false, null: up to the next delimiter. */
export function scanScalar(buf: Uint8Array, i: number): number {
  let j = i;
  const n = buf.length;
  while (j < n) {
    const c = buf[j]!;
    if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
    if (c === QUOTE || c === 0x7b || c === 0x5b || c === 0x3a) {
      throw new JsonSyntaxError(`unexpected ${describe(buf, j)} in a scalar`, j);
    }
    j++;
  }
  if (j === i) throw new JsonSyntaxError(`expected a value, found ${describe(buf, i)}`, i);
  return j;
}

/**
 * Skips an object or array, keeping a stack of the open brackets so `{]` is caught. The hot loop
 * is over image bytes, which are mostly strings: those are skipped inline.
 */
export function skipContainer(buf: Uint8Array, i: number): number {
  const n = buf.length;
  // Bit stack of open brackets (1 = object); DynamoDB nests at most 32 levels inside a record.
  let stack = 0n;
  let small = 0; // first 30 levels kept in a number for speed
  let depth = 0;
  let j = i;
  while (j < n) {
    const c = buf[j]!;
    if (c === QUOTE) {
      j++;
      for (;;) {
        if (j >= n) throw new JsonSyntaxError('unterminated string', j);
        const s = buf[j]!;
        if (s === QUOTE) break;
        if (s === BACKSLASH) j += 2;
        else if (s < 0x20) throw new JsonSyntaxError('raw control character in a string', j);
        else j++;
      }
      j++;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      const isObject = c === 0x7b ? 1 : 0;
      if (depth < 30) small = small * 2 + isObject;
      else stack = (stack << 1n) | BigInt(isObject);
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      if (depth === 0) throw new JsonSyntaxError(`unbalanced ${describe(buf, j)}`, j);
      depth--;
      let wasObject: number;
      if (depth < 30) {
        wasObject = small & 1;
        small = (small - wasObject) / 2;
      } else {
        wasObject = Number(stack & 1n);
        stack >>= 1n;
      }
      if ((c === 0x7d) !== (wasObject === 1)) throw new JsonSyntaxError(`mismatched ${describe(buf, j)}`, j);
      if (depth === 0) return j + 1;
    }
    j++;
  }
  throw new JsonSyntaxError('unterminated object or array', i);
}

/** True when the string contents `buf[start, end)` equal `expected` (ASCII/UTF-8 bytes). */
export function bytesEqual(buf: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let k = 0; k < expected.length; k++) if (buf[start + k] !== expected[k]) return false;
  return true;
}

/** Decodes the JSON string token `buf[start, end)` (quotes included) to a JS string. */
export function decodeStringToken(buf: Uint8Array, start: number, end: number): string {
  return JSON.parse(utf8(buf, start, end)) as string;
}

export function utf8(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('utf8');
}

export function latin1(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
}

function describe(buf: Uint8Array, i: number): string {
  if (i >= buf.length) return 'end of input';
  const c = buf[i]!;
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16)}`;
}
