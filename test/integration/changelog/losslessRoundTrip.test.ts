import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { type KeySchema, keyAttributes, parseKeySchema } from '../../../src/changelog/keySchema.js';
import type { SegmentCompression } from '../../../src/changelog/parquetEncoder.js';
import { appendStreamRecords, type StreamRecordObject } from '../../../src/changelog/sdkRecordDecoder.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { expectedRows } from '../../helpers/expectedRows.js';
import { readWithDuckDB, readWithHyparquet } from '../../helpers/parquetReaders.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import {
  getRecordsResponse,
  type WireAttributeValue,
  type WireItem,
  type WireRecord,
} from '../../helpers/streamRecords.js';

/*
 * The lossless-values property (DESIGN.md invariant 7): arbitrary AttributeValues go through the
 * wire decoder and the encoder into a Parquet segment, and two readers that share no code with our
 * writer (DuckDB, hyparquet) must give back exactly what the stream sent. The SDK decode path must
 * produce the identical file from the same response.
 */

// (String.prototype.isWellFormed is not in the ES2023 lib typings.)
const wellFormed = (s: string) => !/\p{Surrogate}/u.test(s);
// DynamoDB strings are UTF-8, so lone surrogates cannot occur in a stream record.
const text = (maxLength: number) => fc.string({ unit: 'binary', maxLength }).filter(wellFormed);
const attributeName = fc.oneof(
  fc.constantFrom(
    'a.b',
    'with space',
    'ünïcødé',
    '🙂 emoji 👩‍👩‍👧',
    'quote"d',
    'back\\slash',
    'new\nline',
    '123',
    '$x',
    '',
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }).filter(wellFormed),
);

const numberText = fc.oneof(
  fc.constantFrom(
    '1E-130',
    '-1E-130',
    '-9.9999999999999999999999999999999999999E+125',
    '9.9999999999999999999999999999999999999E+125',
    '99999999999999999999999999999999999999',
    '-12345678901234567890123456789012345678',
    '0',
    '0.1',
    '3.14159265358979323846264338327950288',
  ),
  fc
    .tuple(
      fc.constantFrom('', '-'),
      fc.stringMatching(/^[1-9][0-9]{0,37}$/),
      fc.option(fc.integer({ min: -100, max: 90 }), { nil: undefined }),
    )
    .map(([sign, digits, exp]) => `${sign}${digits}${exp === undefined ? '' : `E${exp}`}`),
);

const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('base64');
const binary = fc.oneof(
  fc.constant(EVERY_BYTE),
  fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString('base64')),
);

function nested(depth: number, leaf: WireAttributeValue): WireAttributeValue {
  let value = leaf;
  for (let d = 0; d < depth; d++)
    value = d % 2 === 0 ? { M: { [`level${d}`]: value } } : { L: [value, { N: String(d) }] };
  return value;
}

const { value: attributeValue } = fc.letrec<{ value: WireAttributeValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    text(40).map((S) => ({ S })),
    numberText.map((N) => ({ N })),
    binary.map((B) => ({ B })),
    fc.uniqueArray(text(12), { minLength: 1, maxLength: 4 }).map((SS) => ({ SS })),
    fc.uniqueArray(numberText, { minLength: 1, maxLength: 4 }).map((NS) => ({ NS })),
    fc.uniqueArray(binary, { minLength: 1, maxLength: 3 }).map((BS) => ({ BS })),
    fc.boolean().map((BOOL) => ({ BOOL })),
    fc.constant({ NULL: true as const }),
    fc.dictionary(attributeName, tie('value'), { maxKeys: 4 }).map((M) => ({ M })),
    fc.array(tie('value'), { maxLength: 4 }).map((L) => ({ L })),
    // DynamoDB allows 32 levels of nesting.
    fc.integer({ min: 1, max: 32 }).map((depth) => nested(depth, { S: `depth ${depth}` })),
  ),
}));

const KEY_SCHEMAS = ['pk:S,sk:N', 'id:B', 'n:N,s:S', 'op:S'].map(parseKeySchema);

const keyValue = (type: 'S' | 'N' | 'B'): fc.Arbitrary<WireAttributeValue> =>
  type === 'S'
    ? text(24).map((S) => ({ S }))
    : type === 'N'
      ? numberText.map((N) => ({ N }))
      : fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => ({ B: Buffer.from(b).toString('base64') }));

function recordsFor(schema: KeySchema): fc.Arbitrary<WireRecord[]> {
  const keys = fc.tuple(...keyAttributes(schema).map((a) => keyValue(a.type)));
  const record = fc.record({
    keyIndex: fc.nat(5),
    op: fc.constantFrom('INSERT', 'MODIFY', 'REMOVE' as const),
    newImage: fc.option(fc.dictionary(attributeName, attributeValue, { maxKeys: 6 }), { nil: undefined }),
    oldImage: fc.option(fc.dictionary(attributeName, attributeValue, { maxKeys: 6 }), { nil: undefined }),
    time: fc.integer({ min: 1_500_000_000, max: 2_000_000_000 }),
    fraction: fc.constantFrom(0, 0.5, 0.123, 0.999),
    size: fc.integer({ min: 1, max: 400_000 }),
    ttl: fc.boolean(),
    seqStep: fc.bigInt({ min: 1n, max: 10n ** 22n }),
  });
  return fc
    .tuple(fc.array(keys, { minLength: 1, maxLength: 6 }), fc.array(record, { minLength: 1, maxLength: 25 }))
    .map(([keyPool, specs]) => {
      let seq = 10n ** 20n;
      return specs.map((spec) => {
        seq += spec.seqStep;
        const keyValues = keyPool[spec.keyIndex % keyPool.length]!;
        const Keys: WireItem = {};
        keyAttributes(schema).forEach((a, i) => {
          Keys[a.name] = keyValues[i]!;
        });
        const withKeys = (image: WireItem | undefined) => (image ? { ...image, ...Keys } : undefined);
        const r: WireRecord = {
          awsRegion: 'us-east-1',
          eventID: `ev-${seq}`,
          eventName: spec.op,
          eventSource: 'aws:dynamodb',
          eventVersion: '1.1',
          dynamodb: {
            ApproximateCreationDateTime: spec.time + spec.fraction,
            Keys,
            SequenceNumber: String(seq),
            SizeBytes: spec.size,
            StreamViewType: 'NEW_AND_OLD_IMAGES',
          },
        };
        const n = withKeys(spec.newImage);
        const o = withKeys(spec.oldImage);
        if (n) r.dynamodb.NewImage = n;
        if (o) r.dynamodb.OldImage = o;
        if (spec.ttl && spec.op === 'REMOVE')
          r.userIdentity = { PrincipalId: 'dynamodb.amazonaws.com', Type: 'Service' };
        return r;
      });
    });
}

async function roundTrip(
  schema: KeySchema,
  records: WireRecord[],
  compression: SegmentCompression,
): Promise<void> {
  const shardId = 'shardId-00000001700000000000-abcdef01';
  const body = getRecordsResponse(records, 'next');
  const buffer = new ChangeBuffer(schema);
  decodeGetRecordsResponse(body, shardId, buffer);
  const segment = encodeSegment(buffer, { compression });
  const expected = expectedRows(schema, records, shardId);
  expect(await readWithDuckDB(segment.bytes)).toEqual(expected);
  expect(await readWithHyparquet(segment.bytes)).toEqual(expected);
  // Images round-trip to the very same values, not just the same text.
  for (const row of expected) {
    if (row.new_image !== null) expect(JSON.parse(row.new_image as string)).toBeTypeOf('object');
  }

  const sdk = await sdkDeserializeGetRecords(body);
  const viaSdk = new ChangeBuffer(schema);
  // An attribute name is followed by ':'; a string value "__proto__" is not and survives the SDK.
  if (Buffer.from(body).includes('"__proto__":')) {
    // The AWS SDK loses the values of attributes named "__proto__"; the SDK path must refuse such
    // records loudly rather than write them without the attribute.
    expect(() => appendStreamRecords(sdk.Records as StreamRecordObject[], shardId, viaSdk)).toThrow(
      /__proto__/,
    );
    return;
  }
  appendStreamRecords(sdk.Records as StreamRecordObject[], shardId, viaSdk);
  expect(Buffer.from(encodeSegment(viaSdk, { compression }).bytes).equals(Buffer.from(segment.bytes))).toBe(
    true,
  );
}

describe('lossless round trip through a segment, read back by DuckDB and hyparquet', () => {
  it('keeps arbitrary AttributeValues exactly (property)', { timeout: 3_600_000 }, async () => {
    const schemaAndRecords = fc
      .constantFrom(...KEY_SCHEMAS)
      .chain((schema) =>
        fc.tuple(
          fc.constant(schema),
          recordsFor(schema),
          fc.constantFrom<SegmentCompression>('zstd', 'snappy', 'none'),
        ),
      );
    await fc.assert(
      fc.asyncProperty(schemaAndRecords, async ([schema, records, compression]) => {
        await roundTrip(schema, records, compression);
      }),
      // PROPERTY_RUNS=1000 npm test -- losslessRoundTrip for a deeper search than the default suite affords.
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 60) },
    );
  });

  it('keeps items near the 400 KB limit, 32-level nesting and every byte value', async () => {
    const schema = parseKeySchema('pk:S,sk:N');
    const big: WireItem = {
      pk: { S: 'big' },
      sk: { N: '1' },
      payload: { S: 'x'.repeat(380_000) + '🙂é"\\\n' },
      deep: nested(32, { B: EVERY_BYTE }),
      bytes: { B: EVERY_BYTE },
      empty: { S: '' },
      emptyBinary: { B: '' },
      numbers: {
        NS: [
          '1E-130',
          '-9.9999999999999999999999999999999999999E+125',
          '99999999999999999999999999999999999999',
        ],
      },
    };
    const records: WireRecord[] = [1, 2].map((i) => ({
      awsRegion: 'us-east-1',
      eventID: `big-${i}`,
      eventName: i === 1 ? 'INSERT' : 'MODIFY',
      eventSource: 'aws:dynamodb',
      eventVersion: '1.1',
      dynamodb: {
        ApproximateCreationDateTime: 1_760_000_000 + i,
        Keys: { pk: { S: 'big' }, sk: { N: '1' } },
        NewImage: big,
        ...(i === 2 ? { OldImage: big } : {}),
        SequenceNumber: `${i}00000000000000000000`,
        SizeBytes: 399_000,
        StreamViewType: 'NEW_AND_OLD_IMAGES',
      },
    }));
    await roundTrip(schema, records, 'zstd');
  });
});
