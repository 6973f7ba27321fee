/**
 * Order-preserving byte encoding of DynamoDB numbers (up to 38 significant digits, exponents from
 * -130 to +125). Comparing two encodings bytewise gives the numeric order, so number keys sort by
 * value with the same byte comparison used for string and binary keys, and never pass through
 * float64.
 *
 * Layout: a sign class byte (0x40 negative, 0x80 zero, 0xC0 positive), then for non-zero values
 * a 2-byte exponent and the significant digits, both inverted for negatives (a bigger magnitude is a
 * smaller negative number); negatives end with 0xFF so that a shorter digit string sorts after a
 * longer one with the same prefix (-0.12 > -0.123).
 */
const EXPONENT_BIAS = 0x4000;

export class InvalidNumberError extends Error {
  constructor(readonly text: string) {
    super(`not a DynamoDB number: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)}`);
    this.name = 'InvalidNumberError';
  }
}

/** Reads ASCII number text from `bytes[start, end)` and returns its sort key. */
export function decimalSortKey(bytes: Uint8Array, start: number, end: number): Uint8Array {
  let i = start;
  let negative = false;
  if (bytes[i] === 0x2d /* - */) {
    negative = true;
    i++;
  } else if (bytes[i] === 0x2b /* + */) {
    i++;
  }
  const digits: number[] = [];
  let pointExponent = 0; // digits seen before the decimal point
  let sawPoint = false;
  let sawDigit = false;
  for (; i < end; i++) {
    const c = bytes[i]!;
    if (c >= 0x30 && c <= 0x39) {
      sawDigit = true;
      if (digits.length === 0 && c === 0x30) {
        // Leading zero: shifts the exponent only after the point.
        if (sawPoint) pointExponent--;
        continue;
      }
      digits.push(c - 0x30);
      if (!sawPoint) pointExponent++;
    } else if (c === 0x2e /* . */ && !sawPoint) {
      sawPoint = true;
    } else {
      break;
    }
  }
  let exponent = 0;
  if (i < end && (bytes[i] === 0x45 || bytes[i] === 0x65) /* E e */) {
    i++;
    let expNegative = false;
    if (bytes[i] === 0x2d || bytes[i] === 0x2b) expNegative = bytes[i++] === 0x2d;
    const expStart = i;
    for (; i < end && bytes[i]! >= 0x30 && bytes[i]! <= 0x39; i++)
      exponent = exponent * 10 + (bytes[i]! - 0x30);
    if (i === expStart || exponent > 10_000) throw new InvalidNumberError(ascii(bytes, start, end));
    if (expNegative) exponent = -exponent;
  }
  if (!sawDigit || i !== end) throw new InvalidNumberError(ascii(bytes, start, end));
  while (digits.length > 0 && digits[digits.length - 1] === 0) digits.pop();
  if (digits.length === 0) return Uint8Array.of(0x80);

  const e = pointExponent + exponent + EXPONENT_BIAS;
  const out = new Uint8Array(3 + digits.length + (negative ? 1 : 0));
  if (negative) {
    const inv = 0xffff - e;
    out[0] = 0x40;
    out[1] = inv >> 8;
    out[2] = inv & 0xff;
    for (let d = 0; d < digits.length; d++) out[3 + d] = 0x39 - digits[d]!;
    out[out.length - 1] = 0xff;
  } else {
    out[0] = 0xc0;
    out[1] = e >> 8;
    out[2] = e & 0xff;
    for (let d = 0; d < digits.length; d++) out[3 + d] = 0x30 + digits[d]!;
  }
  return out;
}

export function decimalSortKeyOf(text: string): Uint8Array {
  return decimalSortKey(Buffer.from(text, 'latin1'), 0, text.length);
}

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}
