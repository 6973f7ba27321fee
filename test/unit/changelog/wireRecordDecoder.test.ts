import { describe, expect, it } from 'vitest';
import { ChangeBuffer, OP_INSERT, OP_MODIFY, OP_REMOVE } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { appendStreamRecords, type StreamRecordObject } from '../../../src/changelog/sdkRecordDecoder.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { MalformedRecordError } from '../../../src/support/errors.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import {
  generateRecords,
  getRecordsResponse,
  type StreamViewType,
  type WireRecord,
} from '../../helpers/streamRecords.js';

const schema = parseKeySchema('pk:S,sk:N');
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

function record(
  overrides: Partial<WireRecord> = {},
  dynamodb: Partial<WireRecord['dynamodb']> = {},
): WireRecord {
  return {
    awsRegion: 'us-east-1',
    eventID: 'e1',
    eventName: 'INSERT',
    eventSource: 'aws:dynamodb',
    eventVersion: '1.1',
    ...overrides,
    dynamodb: {
      ApproximateCreationDateTime: 1_760_000_000,
      Keys: { pk: { S: 'a' }, sk: { N: '1' } },
      NewImage: { pk: { S: 'a' }, sk: { N: '1' }, v: { N: '12345678901234567890123456789012345678' } },
      SequenceNumber: '111111111111111111111',
      SizeBytes: 42,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
      ...dynamodb,
    },
  };
}

describe('decodeGetRecordsResponse', () => {
  it('decodes every field of a record', () => {
    const r = record(
      { eventName: 'MODIFY' },
      {
        OldImage: { pk: { S: 'a' }, sk: { N: '1' }, s: { SS: ['x', 'y'] } },
        ApproximateCreationDateTime: 1.7600000001234e9,
      },
    );
    const buffer = new ChangeBuffer(schema);
    const page = decodeGetRecordsResponse(getRecordsResponse([r], 'next-it'), 'shardId-1', buffer);
    expect(page).toEqual({
      nextShardIterator: 'next-it',
      records: 1,
      firstSequenceNumber: '111111111111111111111',
      lastSequenceNumber: '111111111111111111111',
      lastEventTimeMs: 1_760_000_000_123,
    });
    expect(buffer.rowCount).toBe(1);
    expect(text(buffer.eventId.value(0))).toBe('e1');
    expect(buffer.op(0)).toBe(OP_MODIFY);
    expect(buffer.eventTimeMs(0)).toBe(1_760_000_000_123);
    expect(text(buffer.sequenceNumber.value(0))).toBe('111111111111111111111');
    expect(JSON.parse(text(buffer.keys.value(0)))).toEqual(r.dynamodb.Keys);
    expect(text(buffer.newImage.value(0))).toBe(JSON.stringify(r.dynamodb.NewImage));
    expect(text(buffer.oldImage.value(0))).toBe(JSON.stringify(r.dynamodb.OldImage));
    expect(text(buffer.keyValues[0]!.value(0))).toBe('a');
    expect(text(buffer.keyValues[1]!.value(0))).toBe('1');
    expect(buffer.sizeBytes(0)).toBe(42);
    expect(buffer.ttlDelete(0)).toBe(false);
    expect(buffer.shards[buffer.shardOf(0)]).toBe('shardId-1');
  });

  it.each<StreamViewType>(['KEYS_ONLY', 'NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES'])(
    'handles StreamViewType %s',
    (viewType) => {
      const records = generateRecords({ records: 300, seed: 7, viewType });
      const buffer = new ChangeBuffer(schema);
      decodeGetRecordsResponse(getRecordsResponse(records), 'shardId-1', buffer);
      expect(buffer.rowCount).toBe(300);
      records.forEach((r, i) => {
        const n = r.dynamodb.NewImage;
        const o = r.dynamodb.OldImage;
        expect(buffer.newImage.isNull(i)).toBe(n === undefined);
        expect(buffer.oldImage.isNull(i)).toBe(o === undefined);
        if (n) expect(text(buffer.newImage.value(i))).toBe(JSON.stringify(n));
        if (o) expect(text(buffer.oldImage.value(i))).toBe(JSON.stringify(o));
      });
      if (viewType === 'KEYS_ONLY') expect(buffer.newImage.nullCount + buffer.oldImage.nullCount).toBe(600);
    },
  );

  it('marks REMOVEs by the DynamoDB service principal as TTL deletes, in both identity spellings', () => {
    const ttl = { PrincipalId: 'dynamodb.amazonaws.com', Type: 'Service' };
    const lambdaStyle = { principalId: 'dynamodb.amazonaws.com', type: 'Service' };
    const records = [
      record({ eventName: 'REMOVE', userIdentity: ttl }, { SequenceNumber: '1' }),
      record({ eventName: 'REMOVE', userIdentity: lambdaStyle as never }, { SequenceNumber: '2' }),
      record({ eventName: 'REMOVE' }, { SequenceNumber: '3' }),
      record({ eventName: 'INSERT', userIdentity: ttl }, { SequenceNumber: '4' }),
      record(
        { eventName: 'REMOVE', userIdentity: { PrincipalId: 'someone', Type: 'Service' } },
        { SequenceNumber: '5' },
      ),
    ];
    const buffer = new ChangeBuffer(schema);
    decodeGetRecordsResponse(getRecordsResponse(records), 's', buffer);
    expect([0, 1, 2, 3, 4].map((i) => buffer.ttlDelete(i))).toEqual([true, true, false, false, false]);
    expect(buffer.op(0)).toBe(OP_REMOVE);
    expect(buffer.op(3)).toBe(OP_INSERT);
  });

  it('reads an empty page and a closed shard (no NextShardIterator)', () => {
    const buffer = new ChangeBuffer(schema);
    const page = decodeGetRecordsResponse(Buffer.from('{"Records":[]}'), 's', buffer);
    expect(page).toMatchObject({ nextShardIterator: undefined, records: 0, lastSequenceNumber: undefined });
    const spaced = Buffer.from(
      ` {\n "NextShardIterator" : null , "Records" : [ ${JSON.stringify(record())} ] }\n`,
    );
    expect(decodeGetRecordsResponse(spaced, 's', buffer)).toMatchObject({
      nextShardIterator: undefined,
      records: 1,
    });
  });

  it('unescapes escaped event ids, key values and key names', () => {
    const schemaWithOddName = parseKeySchema('p k.é:S');
    const body = Buffer.from(
      `{"Records":[{"eventID":"e\\u0031","eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1,` +
        `"Keys":{"p k.\\u00e9":{"S":"a\\"b\\u00e9🙂"}},"SequenceNumber":"5","SizeBytes":1}}]}`,
    );
    const buffer = new ChangeBuffer(schemaWithOddName);
    decodeGetRecordsResponse(body, 's', buffer);
    expect(text(buffer.eventId.value(0))).toBe('e1');
    expect(text(buffer.keyValues[0]!.value(0))).toBe('a"bé🙂');
  });

  it('decodes binary key values from base64', () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    const r = record({}, { Keys: { id: { B: bytes.toString('base64') } } });
    const buffer = new ChangeBuffer(parseKeySchema('id:B'));
    decodeGetRecordsResponse(getRecordsResponse([r]), 's', buffer);
    expect(Buffer.from(buffer.keyValues[0]!.value(0))).toEqual(bytes);
  });

  describe('malformed input', () => {
    const cases: [string, string | Uint8Array, RegExp][] = [
      ['truncated response', getRecordsResponse([record()]).subarray(0, 200), /not valid JSON/],
      ['not an object', '[]', /not valid JSON/],
      ['trailing garbage', '{"Records":[]} x', /not valid JSON/],
      ['unknown eventName', getRecordsResponse([record({ eventName: 'UPSERT' as never })]), /eventName/],
      [
        'no sequence number',
        getRecordsResponse([record({}, { SequenceNumber: undefined as never })]),
        /SequenceNumber/,
      ],
      [
        'non-numeric sequence number',
        getRecordsResponse([record({}, { SequenceNumber: '12a' })]),
        /SequenceNumber/,
      ],
      [
        'key type differs from schema',
        getRecordsResponse([record({}, { Keys: { pk: { S: 'a' }, sk: { S: '1' } } })]),
        /type S/,
      ],
      [
        'missing key attribute',
        getRecordsResponse([record({}, { Keys: { pk: { S: 'a' } } })]),
        /lacks key attribute "sk"/,
      ],
      [
        'extra key attribute',
        getRecordsResponse([record({}, { Keys: { pk: { S: 'a' }, sk: { N: '1' }, x: { S: 'b' } } })]),
        /not in the key schema/,
      ],
      [
        'bad number key',
        getRecordsResponse([record({}, { Keys: { pk: { S: 'a' }, sk: { N: '1x' } } })]),
        /not a DynamoDB number/,
      ],
      [
        'mismatched brackets in an image',
        '{"Records":[{"eventID":"e","eventName":"INSERT","dynamodb":{"NewImage":{"a":[}}}]}',
        /mismatched/,
      ],
    ];
    it.each(cases)('%s: clear error, nothing of the page kept', (_name, body, message) => {
      const buffer = new ChangeBuffer(schema);
      decodeGetRecordsResponse(
        getRecordsResponse([record({}, { SequenceNumber: '1' })]),
        'shardId-9',
        buffer,
      );
      const before = buffer.byteSize;
      // The bad record comes after a good one in the same page: the good one must be rolled back too.
      const page = typeof body === 'string' ? Buffer.from(body) : Buffer.concat([Buffer.from(body)]);
      let error: unknown;
      try {
        decodeGetRecordsResponse(page, 'shardId-9', buffer);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MalformedRecordError);
      expect((error as MalformedRecordError).message).toMatch(message);
      expect((error as MalformedRecordError).context.shardId).toBe('shardId-9');
      expect((error as MalformedRecordError).retriable).toBe(false);
      expect(buffer.rowCount).toBe(1);
      expect(buffer.byteSize).toBe(before);
      buffer.assertConsistent();
    });

    it('rolls back the good records that came before a bad one in the same page', () => {
      const buffer = new ChangeBuffer(schema);
      const page = getRecordsResponse([
        record({}, { SequenceNumber: '1' }),
        record({ eventName: 'NOPE' as never }, { SequenceNumber: '2' }),
      ]);
      expect(() => decodeGetRecordsResponse(page, 's', buffer)).toThrow(/record 2: eventName/);
      expect(buffer.rowCount).toBe(0);
      buffer.assertConsistent();
    });
  });
});

describe('wire and SDK decode paths', () => {
  it.each<StreamViewType>(['KEYS_ONLY', 'NEW_AND_OLD_IMAGES'])(
    'give the same segment bytes for the same GetRecords response (%s)',
    async (viewType) => {
      const body = getRecordsResponse(generateRecords({ records: 500, seed: 11, viewType }), 'it');
      const wire = new ChangeBuffer(schema);
      decodeGetRecordsResponse(body, 'shardId-1', wire);
      // The SDK's own deserialiser: Dates, Uint8Array binaries, as a consumer using the SDK sees them.
      const sdk = await sdkDeserializeGetRecords(body);
      const objects = new ChangeBuffer(schema);
      appendStreamRecords(sdk.Records as StreamRecordObject[], 'shardId-1', objects);
      expect(Buffer.from(encodeSegment(objects).bytes).equals(Buffer.from(encodeSegment(wire).bytes))).toBe(
        true,
      );
    },
  );

  it('keeps attributes named __proto__ on the wire path; the SDK path refuses what the SDK lost', async () => {
    const body = Buffer.from(
      '{"Records":[{"eventID":"e","eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1,' +
        '"Keys":{"pk":{"S":"a"},"sk":{"N":"1"}},"NewImage":{"__proto__":{"S":"x"},"m":{"M":{"__proto__":{"N":"1"}}}},' +
        '"SequenceNumber":"1"}}]}',
    );
    const wire = new ChangeBuffer(schema);
    decodeGetRecordsResponse(body, 's', wire);
    expect(text(wire.newImage.value(0))).toBe('{"__proto__":{"S":"x"},"m":{"M":{"__proto__":{"N":"1"}}}}');
    const sdk = await sdkDeserializeGetRecords(body);
    expect(() =>
      appendStreamRecords(sdk.Records as StreamRecordObject[], 's', new ChangeBuffer(schema)),
    ).toThrow(/attribute "__proto__" has no value/);
  });

  it('rejects SDK-shaped records with a number that is not a string', () => {
    const buffer = new ChangeBuffer(schema);
    const bad: StreamRecordObject = {
      eventID: 'e',
      eventName: 'INSERT',
      dynamodb: {
        ApproximateCreationDateTime: new Date(0),
        Keys: { pk: { S: 'a' }, sk: { N: '1' } },
        NewImage: { n: { N: 1.5 as never } },
        SequenceNumber: '9',
      },
    };
    expect(() => appendStreamRecords([bad], 's', buffer)).toThrow(MalformedRecordError);
    expect(buffer.rowCount).toBe(0);
  });
});
