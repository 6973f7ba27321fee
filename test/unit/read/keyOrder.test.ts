import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { compareKeyColumns, keyOrder } from '../../../src/read/keyOrder.js';
import { ChangelogIntegrityError } from '../../../src/support/errors.js';
import { changeRow, compareRowKeys } from '../../helpers/changeRows.js';

const sign = (n: number) => Math.sign(n);

const dynamoNumber = fc
  .tuple(
    fc.constantFrom('', '-'),
    fc.stringMatching(/^[0-9]{1,38}$/),
    fc.option(fc.stringMatching(/^[0-9]{1,10}$/), { nil: undefined }),
    fc.option(fc.integer({ min: -130, max: 125 }), { nil: undefined }),
  )
  .map(
    ([s, int, frac, exp]) =>
      `${s}${int}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : `E${exp}`}`,
  );
// Full code points, so surrogate pairs and U+E000-U+FFFF both occur.
const text = fc.string({
  unit: fc.constantFrom('a', 'b', 'Z', '\u00e9', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1f600}'),
  maxLength: 4,
});
const binary = fc.uint8Array({ maxLength: 4 }).map((bytes) => Buffer.from(bytes).toString('base64'));

describe('compareKeyColumns', () => {
  it('orders S by UTF-8 bytes, N by value, B by bytes, partition key first (property, against an oracle)', () => {
    const schemas = [parseKeySchema('pk:S,sk:N'), parseKeySchema('pk:N,sk:B'), parseKeySchema('pk:B,sk:S')];
    const valuesOf = { S: text, N: dynamoNumber, B: binary };
    for (const schema of schemas) {
      const compare = compareKeyColumns(schema);
      const key = fc.tuple(valuesOf[schema.partitionKey.type], valuesOf[schema.sortKey!.type]);
      fc.assert(
        fc.property(key, key, (a, b) => {
          const x = changeRow(schema, a, { sequenceNumber: '1' });
          const y = changeRow(schema, b, { sequenceNumber: '2' });
          expect(sign(compare(x, y))).toBe(sign(compareRowKeys(schema, x, y)));
          expect(sign(compare(y, x))).toBe(sign(compareRowKeys(schema, y, x)));
        }),
        { numRuns: 500 },
      );
    }
  });

  it('sorts hand-picked keys in the encoder order, not JS string order', () => {
    const sortBy = (spec: string, values: string[]) => {
      const schema = parseKeySchema(spec);
      return values
        .map((v) => changeRow(schema, [v], { sequenceNumber: '1' }))
        .sort(compareKeyColumns(schema))
        .map((r) => Object.values(r.keyColumns)[0]);
    };
    expect(sortBy('pk:N', ['10', '9', '-1.5', '1e2', '0', '-10'])).toEqual([
      '-10',
      '-1.5',
      '0',
      '9',
      '10',
      '1e2',
    ]);
    // U+FFFD is EF BF BD in UTF-8, U+1F600 is F0 9F 98 80: in UTF-16 the pair (D83D) sorts first.
    expect(sortBy('pk:S', ['\u{1f600}', '\ufffd', 'b', 'a', 'Z'])).toEqual([
      'Z',
      'a',
      'b',
      '\ufffd',
      '\u{1f600}',
    ]);
    // 0x00 < 0x00 0x00 < 0x80 < 0xFF; as base64 text '/w==' would come first.
    expect(sortBy('pk:B', ['/w==', 'gA==', 'AAA=', 'AA=='])).toEqual(['AA==', 'AAA=', 'gA==', '/w==']);
  });

  it('reads number text longer than its scratch buffer', () => {
    const schema = parseKeySchema('pk:N');
    const compare = compareKeyColumns(schema);
    const long = changeRow(schema, [`${'0'.repeat(100)}5`], { sequenceNumber: '1' });
    const six = changeRow(schema, ['6'], { sequenceNumber: '2' });
    const five = changeRow(schema, ['5.000'], { sequenceNumber: '3' });
    expect(compare(long, six)).toBeLessThan(0);
    expect(compare(long, five)).toBe(0);
  });

  it('treats equal numbers written differently as one key', () => {
    const schema = parseKeySchema('pk:N');
    const compare = compareKeyColumns(schema);
    const a = changeRow(schema, ['100'], { sequenceNumber: '1' });
    const b = changeRow(schema, ['1e2'], { sequenceNumber: '2' });
    expect(compare(a, b)).toBe(0);
  });

  it('uses the key_ column of an attribute named like a fixed column', () => {
    const schema = parseKeySchema('op:S');
    expect(keyOrder(schema).columns).toEqual(['key_op']);
    const compare = compareKeyColumns(schema);
    const a = changeRow(schema, ['a'], { sequenceNumber: '1' });
    const b = changeRow(schema, ['b'], { sequenceNumber: '2' });
    expect(a.keyColumns).toEqual({ key_op: 'a' });
    expect(compare(a, b)).toBeLessThan(0);
  });

  it('refuses a missing column, a bad number and bad base64, naming the segment and the value', () => {
    const order = keyOrder(parseKeySchema('pk:N,sk:B'));
    const row = changeRow(parseKeySchema('pk:N,sk:B'), ['1', 'AA=='], {
      sequenceNumber: '1',
      segmentKey: 'seg-1',
    });
    const cases: [Record<string, string>, RegExp][] = [
      [{ pk: '1' }, /segment seg-1: .*has no key column "sk"/],
      [{ pk: 'abc', sk: 'AA==' }, /segment seg-1: .*N key column "pk" = "abc", not a DynamoDB number/],
      [{ pk: '1', sk: 'A!==' }, /segment seg-1: .*B key column "sk" = "A!==", not padded base64/],
      // Non-ASCII digits are no DynamoDB number, even where their low byte would be one.
      [{ pk: '\uff11', sk: 'AA==' }, /N key column "pk" = "\uff11", not a DynamoDB number/],
      [{ pk: '\u0131', sk: 'AA==' }, /N key column "pk" = "\u0131", not a DynamoDB number/],
    ];
    for (const [keyColumns, message] of cases) {
      const error = (() => {
        try {
          order.sortableKey({ ...row, keyColumns });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ChangelogIntegrityError);
      expect((error as ChangelogIntegrityError).problem).toBe('invalid-row');
      expect((error as Error).message).toMatch(message);
    }
  });
});
