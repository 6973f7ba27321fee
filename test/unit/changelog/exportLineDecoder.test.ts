import { describe, expect, it } from 'vitest';
import type { AttributeMap } from '../../../src/changelog/attributeValueJson.js';
import type { ByteColumn } from '../../../src/changelog/byteColumn.js';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { appendExportLines, type ExportLineKind } from '../../../src/changelog/exportLineDecoder.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import {
  appendSnapshotRows,
  type SnapshotRow,
  snapshotEventId,
} from '../../../src/changelog/snapshotRows.js';
import { MalformedRecordError } from '../../../src/support/errors.js';

const T = Date.UTC(2026, 11, 4, 3, 0, 0, 123);
const REPLAY = 'replay-7';
const FILE = 'AWSDynamoDB/0123-abcd/data/x.json.gz';
const enc = (s: string) => new TextEncoder().encode(s);

/** Every column of every row, images as text (null when absent), typed key values as hex. */
function dump(b: ChangeBuffer) {
  const text = (c: ByteColumn, r: number) => (c.isNull(r) ? null : Buffer.from(c.value(r)).toString('utf8'));
  const hex = (c: ByteColumn | undefined, r: number) =>
    c ? Buffer.from(c.value(r)).toString('hex') : undefined;
  return Array.from({ length: b.rowCount }, (_, r) => ({
    op: b.op(r),
    eventTimeMs: b.eventTimeMs(r),
    sizeBytes: b.sizeBytes(r),
    ttlDelete: b.ttlDelete(r),
    shard: b.shardOf(r),
    eventId: text(b.eventId, r),
    sequenceNumber: text(b.sequenceNumber, r),
    keys: text(b.keys, r),
    newImage: text(b.newImage, r),
    oldImage: text(b.oldImage, r),
    keyValues: b.keyValues.map((c) => hex(c, r)),
    sortKeys: b.keySortKeys.map((c) => hex(c, r)),
  }));
}

/**
 * A line given as parts, so the test knows each image's exact text. `images` are the texts the
 * row must carry verbatim (new, old).
 */
interface Line {
  text: string;
  row: SnapshotRow;
  images: [string | undefined, string | undefined];
}

const full = (itemText: string, spacing = ''): Line => ({
  text: `${spacing}{"Item":${spacing}${itemText}${spacing}}${spacing}`,
  row: { op: 'SNAPSHOT', newImage: JSON.parse(itemText) as AttributeMap, eventTimeMs: T },
  images: [itemText, undefined],
});

const change = (keysText: string, newText?: string, oldText?: string, micros = '1763834400000001'): Line => ({
  text: `{"Metadata":{"WriteTimestampMicros":{"N":"${micros}"}},"Keys":${keysText}${newText === undefined ? '' : `,"NewImage":${newText}`}${oldText === undefined ? '' : `,"OldImage":${oldText}`}}`,
  row: {
    op: 'NET',
    keys: JSON.parse(keysText) as AttributeMap,
    newImage: newText === undefined ? undefined : (JSON.parse(newText) as AttributeMap),
    oldImage: oldText === undefined ? undefined : (JSON.parse(oldText) as AttributeMap),
    eventTimeMs: T,
  },
  images: [newText, oldText],
});

/**
 * Decodes `lines` through appendExportLines and through appendSnapshotRows, and checks the rows are
 * the same but for the images, which must be the lines' own bytes (and size_bytes, counted on them).
 */
function expectSameRows(schema: string, kind: ExportLineKind, lines: Line[], newline = '\n'): ChangeBuffer {
  const keySchema = parseKeySchema(schema);
  const actual = new ChangeBuffer(keySchema);
  const bytes = enc(lines.map((l) => l.text).join(newline) + newline);
  const appended = appendExportLines(
    bytes,
    0,
    bytes.length,
    kind,
    { replayId: REPLAY, eventTimeMs: T },
    actual,
    {
      file: FILE,
      firstLine: 1,
    },
  );
  expect(appended).toEqual({ lines: lines.length, end: bytes.length });
  const expected = new ChangeBuffer(keySchema);
  appendSnapshotRows(
    lines.map((l) => l.row),
    REPLAY,
    expected,
  );
  const want = dump(expected).map((row, i) => {
    const [newText, oldText] = lines[i]!.images;
    const size =
      Buffer.byteLength(row.keys ?? '') + Buffer.byteLength(newText ?? '') + Buffer.byteLength(oldText ?? '');
    return { ...row, newImage: newText ?? null, oldImage: oldText ?? null, sizeBytes: size };
  });
  expect(dump(actual)).toEqual(want);
  actual.assertConsistent();
  return actual;
}

const BIG = '12345678901234567890123456789012345678';

describe('appendExportLines: full export lines', () => {
  it('gives appendSnapshotRows rows with the Item bytes verbatim (38-digit N keys, sets, nested maps, empty strings, binary)', () => {
    expectSameRows('pk:S,sk:N', 'full', [
      full(
        `{"pk":{"S":"order#1"},"sk":{"N":"${BIG}"},"tags":{"SS":["a","b",""]},"scores":{"NS":["1","-0.5E-130"]},"blob":{"B":"AAECAwQ="},"blobs":{"BS":["AA==","//8="]},"empty":{"S":""},"nested":{"M":{"level":{"M":{"deeper":{"L":[{"N":"1"},{"NULL":true},{"BOOL":false},{"M":{}}]}}},"odd name.with \\"quotes\\"":{"S":"ünïcödé ✓"}}}}`,
      ),
      // Key attributes last and in the other order: keys are still built in key-schema order.
      full(`{"flag":{"BOOL":true},"sk":{"N":"-0.000001"},"pk":{"S":""}}`),
      full(`{"sk":{"N":"0"},"pk":{"S":"order#2"},"list":{"L":[]},"nothing":{"NULL":true}}`),
    ]);
  });

  it('re-encodes escaped S keys as attributeMapToJson would (the event id is of that text)', () => {
    const rows = dump(
      expectSameRows('pk:S,sk:N', 'full', [
        full(`{"pk":{"S":"caf\\u00e9 \\"q\\" \\\\ \\n \\/ \\ud83d\\ude00"},"sk":{"N":"1"}}`),
        full(`{"pk":{"S":"a\\tb"},"sk":{"N":"2e3"}}`),
      ]),
    );
    expect(rows[0]!.keys).toBe(`{"pk":{"S":${JSON.stringify('café "q" \\ \n / 😀')}},"sk":{"N":"1"}}`);
    expect(Buffer.from(rows[0]!.keyValues[0]!, 'hex').toString('utf8')).toBe('café "q" \\ \n / 😀');
  });

  it('reads B keys as bytes and keeps whitespace, CRLF and pretty-printing of the line in the image verbatim', () => {
    expectSameRows('id:B', 'full', [full(`{"id":{"B":"AAEC/w=="},"v":{"S":"x"}}`)]);
    expectSameRows(
      'pk:S,sk:N',
      'full',
      [full(`{ "pk" : { "S" : "a" } , "sk" : {"N": "${BIG}"}, "m": {"M": { } } }`, ' ')],
      '\r\n',
    );
  });

  it('stops after the line that fills the buffer to stopAtBytes, and continues where it stopped', () => {
    const schema = parseKeySchema('pk:S');
    const text = `${Array.from({ length: 10 }, (_, i) => `{"Item":{"pk":{"S":"item-${i}"},"v":{"S":"${'x'.repeat(50)}"}}}`).join('\n')}\n`;
    const bytes = enc(text);
    const once = new ChangeBuffer(schema);
    appendExportLines(bytes, 0, bytes.length, 'full', { replayId: REPLAY, eventTimeMs: T }, once, {
      file: FILE,
      firstLine: 1,
    });
    const parts = new ChangeBuffer(schema);
    let at = 0;
    let line = 1;
    const calls: number[] = [];
    while (at < bytes.length) {
      const stopAtBytes = parts.byteSize + 200;
      const r = appendExportLines(
        bytes,
        at,
        bytes.length,
        'full',
        { replayId: REPLAY, eventTimeMs: T },
        parts,
        { file: FILE, firstLine: line },
        { stopAtBytes },
      );
      expect(parts.byteSize).toBeGreaterThanOrEqual(r.end === bytes.length ? 0 : stopAtBytes);
      calls.push(r.lines);
      at = r.end;
      line += r.lines;
    }
    expect(calls.length).toBeGreaterThan(2);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(10);
    expect(dump(parts)).toEqual(dump(once));
  });
});

describe('appendExportLines: incremental export lines', () => {
  it('gives NET rows with Keys and images verbatim; a delete line is a tombstone', () => {
    expectSameRows('pk:S,sk:N', 'incremental', [
      // Inserted: new image only.
      change(
        `{"pk":{"S":"a"},"sk":{"N":"${BIG}"}}`,
        `{"pk":{"S":"a"},"sk":{"N":"${BIG}"},"v":{"NS":["1","2"]}}`,
      ),
      // Modified: both images; Keys in DynamoDB's own order is kept as is.
      change(
        `{"sk":{"N":"-1"},"pk":{"S":"b"}}`,
        `{"pk":{"S":"b"},"sk":{"N":"-1"},"v":{"M":{"x":{"S":""}}}}`,
        `{"pk":{"S":"b"},"sk":{"N":"-1"},"v":{"M":{}}}`,
      ),
      // Deleted: no NewImage (with and without the old image).
      change(`{"pk":{"S":"c"},"sk":{"N":"0"}}`),
      change(`{"pk":{"S":"d"},"sk":{"N":"5"}}`, undefined, `{"pk":{"S":"d"},"sk":{"N":"5"}}`),
    ]);
    expectSameRows('id:B', 'incremental', [
      change(`{"id":{"B":"/w=="}}`, `{"id":{"B":"/w=="},"a":{"BS":["AA=="]}}`),
    ]);
  });
  it('stores Keys byte-for-byte, escapes and all, and takes the event id of those bytes', () => {
    const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
    const keys = '{"sk":{"N":"5"}, "pk":{"S":"d\\u00e9"}}';
    const bytes = enc(`{"Metadata":{"WriteTimestampMicros":{"N":"7"}},"Keys":${keys}}`);
    appendExportLines(bytes, 0, bytes.length, 'incremental', { replayId: REPLAY, eventTimeMs: T }, buffer, {
      file: FILE,
      firstLine: 1,
    });
    const [row] = dump(buffer);
    expect(row!.keys).toBe(keys);
    expect(row!.eventId).toBe(snapshotEventId(REPLAY, keys));
    expect(row!.newImage).toBeNull();
    expect(row!.sizeBytes).toBe(Buffer.byteLength(keys));
    expect(Buffer.from(row!.keyValues[0]!, 'hex').toString('utf8')).toBe('dé');
  });
});

describe('appendExportLines refuses', () => {
  const good = `{"Item":{"pk":{"S":"ok"},"sk":{"N":"1"}}}`;
  const goodChange = `{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"ok"},"sk":{"N":"1"}}}`;
  it.each<[string, ExportLineKind, string, RegExp]>([
    ['not JSON', 'full', '{"Item":', /line 3 is not valid JSON/],
    ['not an object', 'full', '["Item"]', /line 3 is not a JSON object/],
    ['an empty line', 'full', '  ', /line 3 is empty/],
    ['bytes after the object', 'full', `${good} x`, /line 3 has bytes after its JSON object/],
    ['two objects on a line', 'full', `${good}${good}`, /line 3 has bytes after/],
    ['no Item', 'full', '{"Other":{}}', /line 3 has no "Item"/],
    ['an incremental line', 'full', goodChange, /line 3 has "Keys": an incremental-export line/],
    ['an Item that is not a map', 'full', '{"Item":[]}', /line 3 has Item that is not a map/],
    ['an Item without a key attribute', 'full', '{"Item":{"pk":{"S":"a"}}}', /lacks key attribute "sk"/],
    [
      'a key of another type',
      'full',
      '{"Item":{"pk":{"S":"a"},"sk":{"S":"1"}}}',
      /Item\.sk that is not of the key schema's type N/,
    ],
    [
      'a key with two types',
      'full',
      '{"Item":{"pk":{"S":"a","N":"1"},"sk":{"N":"1"}}}',
      /Item\.pk that is not/,
    ],
    ['an N key that is no number', 'full', '{"Item":{"pk":{"S":"a"},"sk":{"N":"12abc"}}}', /line 3 has key/],
    ['an N key as a JSON number', 'full', '{"Item":{"pk":{"S":"a"},"sk":{"N":12}}}', /Item\.sk that is not/],
    ['unbalanced brackets', 'full', '{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}]}', /line 3 is not valid JSON/],
    ['a full-export line', 'incremental', good, /line 3 has "Item": a full-export line/],
    ['no Metadata', 'incremental', '{"Keys":{"pk":{"S":"a"},"sk":{"N":"1"}}}', /line 3 has no "Metadata"/],
    [
      'a bad WriteTimestampMicros',
      'incremental',
      '{"Metadata":{"WriteTimestampMicros":{"N":"-1"}},"Keys":{"pk":{"S":"a"},"sk":{"N":"1"}}}',
      /line 3 has a bad Metadata.WriteTimestampMicros/,
    ],
    ['no Keys', 'incremental', '{"Metadata":{"WriteTimestampMicros":{"N":"1"}}}', /line 3 has no "Keys"/],
    [
      'Keys with an attribute not in the schema',
      'incremental',
      '{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"S":"y"}}}',
      /line 3 .*"x" that is not in the key schema/,
    ],
    [
      'a NewImage that is not a map',
      'incremental',
      '{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"},"sk":{"N":"1"}},"NewImage":"x"}',
      /line 3 has NewImage that is not a map/,
    ],
  ])(
    'a line with %s, naming the file and line, appending nothing of the call',
    (_what, kind, bad, message) => {
      const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
      const ok = kind === 'full' ? good : goodChange;
      // A row already in the buffer stays; the call's two good lines before the bad one do not.
      appendExportLines(enc(ok), 0, ok.length, kind, { replayId: REPLAY, eventTimeMs: T }, buffer, {
        file: FILE,
        firstLine: 1,
      });
      const before = dump(buffer);
      const bytes = enc(`${ok}\n${ok}\n${bad}\n${ok}\n`);
      let error: unknown;
      try {
        appendExportLines(bytes, 0, bytes.length, kind, { replayId: REPLAY, eventTimeMs: T }, buffer, {
          file: FILE,
          firstLine: 1,
        });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MalformedRecordError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(`export data file ${FILE} line 3 `);
      expect(dump(buffer)).toEqual(before);
      buffer.assertConsistent();
    },
  );

  it('never reads a record across a newline (a truncated line and the next are not one record)', () => {
    const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
    const bytes = enc('{"Item":\n{"pk":{"S":"a"},"sk":{"N":"1"}}}\n');
    expect(() =>
      appendExportLines(bytes, 0, bytes.length, 'full', { replayId: REPLAY, eventTimeMs: T }, buffer, {
        file: FILE,
        firstLine: 1,
      }),
    ).toThrow(/line 1 is not valid JSON/);
    expect(buffer.rowCount).toBe(0);
  });

  it('counts line numbers from where.firstLine', () => {
    const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
    const bytes = enc(`${good}\n{}\n`);
    expect(() =>
      appendExportLines(bytes, 0, bytes.length, 'full', { replayId: REPLAY, eventTimeMs: T }, buffer, {
        file: FILE,
        firstLine: 41,
      }),
    ).toThrow(`export data file ${FILE} line 42 has no "Item"`);
  });
});
