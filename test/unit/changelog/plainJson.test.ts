import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { plainJsonFromDynamoJson } from '../../../src/changelog/plainJson.js';
import { MalformedRecordError } from '../../../src/support/errors.js';
import { compareDynamoNumbers } from '../../helpers/dynamoOrder.js';

describe('plain JSON from DynamoDB JSON: golden cases', () => {
  const cases: [string, string, string][] = [
    ['the example', '{"a":{"N":"1.50"},"b":{"SS":["y","x"]}}', '{"a":"1.50","b":["x","y"]}'],
    [
      'numbers keep their stored text, 38 digits and exponents included',
      '{"n":{"N":"12345678901234567890123456789012345678"},"e":{"N":"-1E-130"},"z":{"N":"0.10"}}',
      '{"n":"12345678901234567890123456789012345678","e":"-1E-130","z":"0.10"}',
    ],
    [
      'NS sorts by value, not by text',
      '{"s":{"NS":["10","9","-1","1.5","1E+2","0.001","-20"]}}',
      '{"s":["-20","-1","0.001","1.5","9","10","1E+2"]}',
    ],
    [
      // UTF-8 bytes: Z 5A < a 61 < U+FF61 EF BD A1 < U+1F600 F0 9F 98 80 (UTF-16 puts the emoji first).
      'SS sorts by UTF-8 bytes',
      '{"s":{"SS":["😀","｡","a","Z"]}}',
      '{"s":["Z","a","｡","😀"]}',
    ],
    [
      // Decoded: 00 < 00 00 < FF; as text "/w==" would sort first.
      'BS sorts by the decoded bytes and keeps the stored base64',
      '{"s":{"BS":["/w==","AAA=","AA=="]}}',
      '{"s":["AA==","AAA=","/w=="]}',
    ],
    [
      'B, BOOL, NULL, empty strings, empty map and list',
      '{"b":{"B":"AQID"},"t":{"BOOL":true},"f":{"BOOL":false},"n":{"NULL":true},"e":{"S":""},"m":{"M":{}},"l":{"L":[]}}',
      '{"b":"AQID","t":true,"f":false,"n":null,"e":"","m":{},"l":[]}',
    ],
    [
      'nested maps and lists',
      '{"m":{"M":{"x":{"L":[{"N":"1"},{"M":{"y":{"SS":["b","a"]}}},{"L":[{"NULL":true}]}]}}}}',
      '{"m":{"x":["1",{"y":["a","b"]},[null]]}}',
    ],
    [
      'attribute order as stored, integer-like names included',
      '{"b":{"S":"1"},"10":{"S":"2"},"2":{"S":"3"},"a":{"S":"4"}}',
      '{"b":"1","10":"2","2":"3","a":"4"}',
    ],
    [
      'string escapes copied verbatim',
      '{"s\\"q":{"S":"a\\"b\\\\c\\u00e9\\n"}}',
      '{"s\\"q":"a\\"b\\\\c\\u00e9\\n"}',
    ],
    ['an attribute named __proto__', '{"__proto__":{"S":"x"}}', '{"__proto__":"x"}'],
    ['whitespace between tokens', ' { "a" : { "N" : "1" } , "b" : { "L" : [ ] } } ', '{"a":"1","b":[]}'],
  ];

  it.each(cases)('%s', (_, input, expected) => {
    expect(plainJsonFromDynamoJson(input)).toBe(expected);
  });

  it('gives a value JSON.parse reads with __proto__ as an own attribute', () => {
    const parsed = JSON.parse(plainJsonFromDynamoJson('{"__proto__":{"M":{"a":{"S":"x"}}}}')) as object;
    expect(Object.keys(parsed)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
  });
});

describe('plain JSON from DynamoDB JSON: errors name the attribute path and what was found', () => {
  const cases: [string, string, RegExp][] = [
    [
      'an unknown type',
      '{"a":{"X":"1"}}',
      /^\$\.a: expected one of the DynamoDB types S, N, B, .*found "X"$/,
    ],
    ['N text that is no number', '{"a":{"N":"abc"}}', /^\$\.a: N value "abc" is not a decimal number$/],
    [
      'N as a JSON number',
      '{"a":{"N":1.5}}',
      /^\$\.a: expected an N value \(a JSON string.*found "1\.5}}" at offset 10$/,
    ],
    [
      'a bad set element deep inside, with an odd name',
      '{"m":{"M":{"odd name":{"L":[{"S":"x"},{"NS":["1","x"]}]}}}}',
      /^\$\.m\["odd name"\]\[1\]\[1\]: NS element "x" is not a decimal number$/,
    ],
    [
      'two members in one value',
      '{"a":{"S":"x","N":"1"}}',
      /^\$\.a: an AttributeValue has one member; found a second after S$/,
    ],
    [
      'truncated text',
      '{"a":{"S":"x"',
      /^\$\.a: expected '}' closing the S value, found the end of the text$/,
    ],
    ['an unterminated string', '{"a":{"S":"x}}', /^\$\.a: unterminated string starting at offset 10$/],
    [
      'text after the item',
      '{"a":{"S":"x"}} x',
      /^\$: expected the end of the text, found "x" at offset 16$/,
    ],
    ['not an object', '[1]', /^\$: expected an attribute map, found "\[1\]" at offset 0$/],
    ['a bad BOOL', '{"a":{"BOOL":"yes"}}', /^\$\.a: expected true or false as the BOOL value/],
    ['a value that is not an object', '{"a":"x"}', /^\$\.a: expected an AttributeValue object/],
  ];

  it.each(cases)('%s', (_, input, message) => {
    let caught: unknown;
    try {
      plainJsonFromDynamoJson(input);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(MalformedRecordError);
    expect((caught as Error).message).toMatch(message);
  });

  it('uses the root name it is given', () => {
    expect(() => plainJsonFromDynamoJson('{"a":{"N":"x"}}', 'new_image')).toThrow(/^new_image\.a: /);
  });

  it('refuses nesting deeper than 64 levels instead of overflowing the stack', () => {
    const depth = 70;
    const input = `{"a":${'{"L":['.repeat(depth)}{"S":"x"}${']}'.repeat(depth)}}`;
    expect(() => plainJsonFromDynamoJson(input)).toThrow(/nested deeper than 64 levels/);
    const fine = `{"a":${'{"L":['.repeat(30)}{"S":"x"}${']}'.repeat(30)}}`;
    expect(JSON.parse(plainJsonFromDynamoJson(fine))).toBeTruthy();
  });
});

// ---------------------------------------------------------------------------------------------
// Round trip against a reference written here: JSON.parse the DynamoDB JSON, convert the objects,
// sort sets with independent comparisons (Buffer.compare on UTF-8 and on decoded base64, the BigInt
// oracle of dynamoOrder.ts for numbers).

type Av =
  | { S: string }
  | { N: string }
  | { B: string }
  | { BOOL: boolean }
  | { NULL: true }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: string[] }
  | { M: [string, Av][] }
  | { L: Av[] };

/** DynamoDB JSON text for a generated value (maps are entry lists, so any name, __proto__ too). */
function serialize(value: Av): string {
  if ('M' in value) return `{"M":${serializeItem(value.M)}}`;
  if ('L' in value) return `{"L":[${value.L.map(serialize).join(',')}]}`;
  return JSON.stringify(value);
}

function serializeItem(entries: [string, Av][]): string {
  return `{${entries.map(([name, v]) => `${JSON.stringify(name)}:${serialize(v)}`).join(',')}}`;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function reference(value: Record<string, unknown>): unknown {
  const [type] = Object.keys(value);
  const v = value[type!];
  switch (type) {
    case 'S':
    case 'N':
    case 'B':
    case 'BOOL':
      return v;
    case 'NULL':
      return null;
    case 'M':
      return referenceItem(v as Record<string, Record<string, unknown>>);
    case 'L':
      return (v as Record<string, unknown>[]).map(reference);
    case 'SS':
      return [...(v as string[])].sort(
        (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) || byText(a, b),
      );
    case 'NS':
      return [...(v as string[])].sort((a, b) => compareDynamoNumbers(a, b) || byText(a, b));
    case 'BS':
      return [...(v as string[])].sort(
        (a, b) => Buffer.compare(Buffer.from(a, 'base64'), Buffer.from(b, 'base64')) || byText(a, b),
      );
    default:
      throw new Error(`reference: unknown type ${type}`);
  }
}

function referenceItem(item: Record<string, Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item).map(([name, v]) => [name, reference(v)]));
}

const text = fc.string({ unit: 'binary', maxLength: 12 });
const numberText = fc
  .record({
    sign: fc.constantFrom('', '-'),
    digits: fc.stringMatching(/^[1-9][0-9]{0,37}$/),
    point: fc.nat({ max: 40 }),
    exponent: fc.option(fc.integer({ min: -130, max: 125 }), { nil: undefined }),
  })
  .map(({ sign, digits, point, exponent }) => {
    const p = Math.min(point, digits.length);
    const body = p === 0 || p === digits.length ? digits : `${digits.slice(0, p)}.${digits.slice(p)}`;
    return `${sign}${body}${exponent === undefined ? '' : `E${exponent}`}`;
  });
const base64 = fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b).toString('base64'));

const { value: attributeValue } = fc.letrec<{ value: Av; item: [string, Av][] }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ S: text }),
    fc.record({ N: numberText }),
    fc.record({ B: base64 }),
    fc.record({ BOOL: fc.boolean() }),
    fc.constant({ NULL: true as const }),
    fc.record({ SS: fc.uniqueArray(text, { minLength: 1, maxLength: 6 }) }),
    fc.record({ NS: fc.uniqueArray(numberText, { minLength: 1, maxLength: 6 }) }),
    fc.record({ BS: fc.uniqueArray(base64, { minLength: 1, maxLength: 6 }) }),
    fc.record({ M: tie('item') }),
    fc.record({ L: fc.array(tie('value'), { maxLength: 4 }) }),
  ),
  item: fc.uniqueArray(fc.tuple(fc.oneof(text, fc.constant('__proto__'), fc.constant('10')), tie('value')), {
    maxLength: 5,
    selector: ([name]) => name,
  }),
}));
const item = fc.uniqueArray(fc.tuple(text, attributeValue), { maxLength: 6, selector: ([name]) => name });

describe('plain JSON from DynamoDB JSON: round trip against the reference', () => {
  it('matches the reference for any item, compact or pretty-printed', () => {
    fc.assert(
      fc.property(item, (entries) => {
        const dynamoJson = serializeItem(entries);
        const expected = referenceItem(JSON.parse(dynamoJson) as Record<string, Record<string, unknown>>);
        expect(JSON.parse(plainJsonFromDynamoJson(dynamoJson))).toEqual(expected);
        const pretty = JSON.stringify(JSON.parse(dynamoJson), null, 2);
        expect(JSON.parse(plainJsonFromDynamoJson(pretty))).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps every number as the exact stored text', () => {
    fc.assert(
      fc.property(numberText, (n) => {
        expect(plainJsonFromDynamoJson(`{"n":{"N":${JSON.stringify(n)}}}`)).toBe(
          `{"n":${JSON.stringify(n)}}`,
        );
      }),
    );
  });
});
