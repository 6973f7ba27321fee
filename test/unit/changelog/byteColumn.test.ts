import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteColumn, compareDigits } from '../../../src/changelog/byteColumn.js';
import { compareSequenceNumbers } from '../../../src/changelog/sequenceNumber.js';

describe('ByteColumn', () => {
  it('grows, keeps values and nulls, and truncates back', () => {
    const column = new ByteColumn(true, 4, 2);
    const values = ['a', '', 'x'.repeat(100), 'é🙂'];
    for (const v of values) column.appendBytes(Buffer.from(v));
    column.appendNull();
    expect(column.length).toBe(5);
    expect(column.nullCount).toBe(1);
    for (const [i, v] of values.entries()) expect(Buffer.from(column.value(i)).toString()).toBe(v);
    expect(column.isNull(4)).toBe(true);
    column.truncate(2);
    expect(column.length).toBe(2);
    expect(column.nullCount).toBe(0);
    expect(column.byteLength).toBe(1);
    column.appendBytes(Buffer.from('zz'));
    expect(Buffer.from(column.value(2)).toString()).toBe('zz');
  });

  it('refuses nulls in a non-nullable column', () => {
    expect(() => new ByteColumn(false).appendNull()).toThrow(TypeError);
  });
});

describe('sequence number comparison', () => {
  it('compares digit strings as integers (property)', () => {
    const seq = fc.bigInt({ min: 0n, max: 10n ** 40n }).map((n) => n.toString());
    fc.assert(
      fc.property(seq, seq, fc.nat(3), (a, b, zeros) => {
        const expected = Math.sign(Number(BigInt(a) - BigInt(b)));
        const pa = '0'.repeat(zeros) + a;
        expect(Math.sign(compareSequenceNumbers(pa, b))).toBe(expected);
        const ba = Buffer.from(pa);
        const bb = Buffer.from(b);
        expect(Math.sign(compareDigits(ba, 0, ba.length, bb, 0, bb.length))).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });
});
