import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareBytes } from '../../../src/changelog/byteColumn.js';
import { decimalSortKeyOf, InvalidNumberError } from '../../../src/changelog/decimalSortKey.js';
import { compareDynamoNumbers } from '../../helpers/dynamoOrder.js';

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
const cmpKeys = (a: string, b: string) => {
  const x = decimalSortKeyOf(a);
  const y = decimalSortKeyOf(b);
  return sign(compareBytes(x, 0, x.length, y, 0, y.length));
};

const dynamoNumber = fc
  .tuple(
    fc.constantFrom('', '-'),
    fc.stringMatching(/^[0-9]{1,38}$/),
    fc.option(fc.stringMatching(/^[0-9]{1,20}$/), { nil: undefined }),
    fc.option(fc.integer({ min: -130, max: 125 }), { nil: undefined }),
  )
  .map(
    ([s, int, frac, exp]) =>
      `${s}${int}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : `E${exp}`}`,
  );

describe('decimalSortKey', () => {
  it('orders DynamoDB numbers exactly as their values (property)', () => {
    fc.assert(
      fc.property(dynamoNumber, dynamoNumber, (a, b) => {
        expect(cmpKeys(a, b)).toBe(compareDynamoNumbers(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it('handles the extremes and equal values written differently', () => {
    const ordered = [
      '-9.9999999999999999999999999999999999999E+125',
      '-1',
      '-0.123',
      '-0.12',
      '-1E-130',
      '0',
      '1E-130',
      '0.12',
      '0.123',
      '1',
      '99999999999999999999999999999999999999',
      '9.9999999999999999999999999999999999999E+125',
    ];
    for (let i = 0; i + 1 < ordered.length; i++) expect(cmpKeys(ordered[i]!, ordered[i + 1]!)).toBe(-1);
    expect(cmpKeys('1.50', '1.5')).toBe(0);
    expect(cmpKeys('0.0', '-0')).toBe(0);
    expect(cmpKeys('100', '1E2')).toBe(0);
  });

  it('rejects text that is not a number', () => {
    for (const bad of ['', '-', 'abc', '1.2.3', '1E', '1e+', '0x10', '1 ']) {
      expect(() => decimalSortKeyOf(bad)).toThrow(InvalidNumberError);
    }
  });
});
