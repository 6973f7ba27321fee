import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { plainJsonFromDynamoJson } from '../../../src/changelog/plainJson.js';
import { changeColumns } from '../../../src/read/changeColumns.js';
import type { ChangeRow } from '../../../src/read/changeRow.js';
import { openRowWriter, type RowFormat, type RowWriterOptions } from '../../../src/read/rowWriters.js';
import { type ChangelogError, ConfigError, MalformedRecordError } from '../../../src/support/errors.js';
import { awkwardRows, generatedRows } from '../../helpers/changeRowSamples.js';

const KEY_COLUMNS = ['pk', 'sk'];
const SCHEMA = parseKeySchema('pk:S,sk:N');

/** A sink that keeps every chunk it is handed. */
function collector(): { stream: Writable; chunks: Buffer[]; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { stream, chunks, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function writeAll(
  format: RowFormat,
  rows: readonly ChangeRow[],
  options: Partial<RowWriterOptions> = {},
): Promise<{ text: string; chunks: Buffer[] }> {
  const sink = collector();
  const writer = openRowWriter(format, sink.stream, { keyColumns: KEY_COLUMNS, ...options });
  for (const row of rows) await writer.write(row);
  await writer.end();
  return { text: sink.text(), chunks: sink.chunks };
}

const rows = [...generatedRows(300, 5), ...awkwardRows(SCHEMA)];
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function expectCommonFields(out: Record<string, unknown>, row: ChangeRow): void {
  expect(out['event_id']).toBe(row.eventId);
  expect(out['op']).toBe(row.op);
  expect(out['event_time']).toMatch(ISO_MS);
  expect(Date.parse(out['event_time'] as string)).toBe(row.eventTimeMs);
  expect(out['sequence_number']).toBe(row.sequenceNumber);
  expect(out['shard_id']).toBe(row.shardId);
  expect(out['pk']).toBe(row.keyColumns['pk']);
  expect(out['sk']).toBe(row.keyColumns['sk']);
  expect(out['size_bytes']).toBe(row.sizeBytes);
  expect(out['ttl_delete']).toBe(row.ttlDelete);
}

describe('ndjson', () => {
  it('writes one object per line with the segment columns, images embedded byte for byte', async () => {
    const { text } = await writeAll('ndjson', rows);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(rows.length);
    lines.forEach((line, i) => {
      const row = rows[i]!;
      const out = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(out)).toEqual(changeColumns(KEY_COLUMNS));
      expectCommonFields(out, row);
      expect(out['keys']).toEqual(JSON.parse(row.keys));
      expect(out['new_image']).toEqual(row.newImage === null ? null : JSON.parse(row.newImage));
      expect(out['old_image']).toEqual(row.oldImage === null ? null : JSON.parse(row.oldImage));
      // Byte-exact: the stored text itself is in the line (escapes like \u00e9 and \/ included).
      expect(line).toContain(
        `"keys":${row.keys},"new_image":${row.newImage ?? 'null'},"old_image":${row.oldImage ?? 'null'},`,
      );
    });
  });

  it('hands the stream ~64 KB chunks, not a write per row', async () => {
    const many = generatedRows(2000, 9);
    const { text, chunks } = await writeAll('ndjson', many);
    const bytes = Buffer.byteLength(text);
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(bytes / (64 * 1024)) + 1);
    expect(chunks.length).toBeGreaterThan(1);
    expect(text.split('\n')).toHaveLength(many.length + 1);
  });

  it('writes the requested columns only, in the requested order', async () => {
    const { text } = await writeAll('ndjson', rows.slice(0, 3), { columns: ['sk', 'op', 'new_image'] });
    for (const [i, line] of text.trimEnd().split('\n').entries()) {
      const out = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(out)).toEqual(['sk', 'op', 'new_image']);
      expect(out['sk']).toBe(rows[i]!.keyColumns['sk']);
    }
  });

  it('writes nothing for no rows', async () => {
    expect((await writeAll('ndjson', [])).text).toBe('');
  });
});

describe('json', () => {
  it('has the ndjson shape with keys and images as plain JSON', async () => {
    const { text } = await writeAll('json', rows);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(rows.length);
    lines.forEach((line, i) => {
      const row = rows[i]!;
      const out = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(out)).toEqual(changeColumns(KEY_COLUMNS));
      expectCommonFields(out, row);
      expect(out['keys']).toEqual(JSON.parse(plainJsonFromDynamoJson(row.keys)));
      const plain = (image: string | null) =>
        image === null ? null : JSON.parse(plainJsonFromDynamoJson(image));
      expect(out['new_image']).toEqual(plain(row.newImage));
      expect(out['old_image']).toEqual(plain(row.oldImage));
    });
    // Checked by hand: numbers as exact strings, sets sorted, binary as base64, null and false kept.
    const awkward = JSON.parse(lines[300]!) as Record<string, unknown>;
    expect(awkward['new_image']).toEqual({
      name: 'café "q" a/b',
      n: '12345678901234567890123456789012345678',
      tags: ['a', 'b'],
      bin: 'AQID',
      m: { l: [null, false] },
    });
  });

  it('names the row, the segment and the attribute path of an image it cannot convert', async () => {
    const bad = { ...rows[0]!, newImage: '{"a":{"M":{"b":{"N":"x1"}}}}' };
    const writer = openRowWriter('json', collector().stream, { keyColumns: KEY_COLUMNS });
    const failure = await writer.write(bad).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(MalformedRecordError);
    expect((failure as Error).message).toBe(
      `row ${bad.eventId} of segment ${bad.segmentKey}: new_image.a.b: N value "x1" is not a decimal number`,
    );
    expect((failure as ChangelogError).context).toMatchObject({
      key: bad.segmentKey,
      sequenceNumber: bad.sequenceNumber,
    });
  });
});

/** An RFC 4180 reader written for this test: fields with whether they were quoted. */
function parseCsv(text: string): { value: string; quoted: boolean }[][] {
  const records: { value: string; quoted: boolean }[][] = [];
  let record: { value: string; quoted: boolean }[] = [];
  let i = 0;
  while (i < text.length) {
    let value = '';
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error(`unterminated quoted field at ${i}`);
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\n') {
        if (text[i] === '"' || text[i] === '\r')
          throw new Error(`unquoted field holds ${JSON.stringify(text[i])} at ${i}`);
        value += text[i++];
      }
    }
    record.push({ value, quoted });
    if (text[i] === ',') {
      i++;
    } else if (text[i] === '\n') {
      i++;
      records.push(record);
      record = [];
    } else {
      throw new Error(`expected ',' or LF after a field at ${i}`);
    }
  }
  return records;
}

describe('csv', () => {
  it('reads back field by field: header, quoting, images as their text, null as an empty field', async () => {
    const { text } = await writeAll('csv', rows);
    const [header, ...records] = parseCsv(text);
    expect(header!.map((f) => f.value)).toEqual(changeColumns(KEY_COLUMNS));
    expect(records).toHaveLength(rows.length);
    const nullable = (value: string | null) =>
      value === null ? { value: '', quoted: false } : { value, quoted: true };
    records.forEach((record, i) => {
      const row = rows[i]!;
      const out = Object.fromEntries(header!.map((h, k) => [h.value, record[k]!]));
      expect(out['event_id']!.value).toBe(row.eventId);
      expect(out['op']!.value).toBe(row.op);
      expect(Date.parse(out['event_time']!.value)).toBe(row.eventTimeMs);
      expect(out['event_time']!.value).toMatch(ISO_MS);
      expect(out['sequence_number']!.value).toBe(row.sequenceNumber);
      expect(out['shard_id']!.value).toBe(row.shardId);
      expect(out['keys']).toEqual({ value: row.keys, quoted: true });
      expect(out['new_image']).toEqual(nullable(row.newImage));
      expect(out['old_image']).toEqual(nullable(row.oldImage));
      expect(out['pk']!.value).toBe(row.keyColumns['pk']);
      expect(out['sk']!.value).toBe(row.keyColumns['sk']);
      expect(out['size_bytes']!.value).toBe(String(row.sizeBytes));
      expect(out['ttl_delete']!.value).toBe(String(row.ttlDelete));
    });
  });

  it('uses LF line ends and tells an empty string from null', async () => {
    const row = { ...rows[0]!, keyColumns: { pk: '', sk: '1' }, newImage: null };
    const { text } = await writeAll('csv', [row], { columns: ['pk', 'new_image', 'sk'] });
    expect(text).toBe('pk,new_image,sk\n"",,1\n');
  });

  it('writes the header even with no rows', async () => {
    expect(
      (await writeAll('csv', [], { columns: ['op', 'Odd, "name"'], keyColumns: ['Odd, "name"'] })).text,
    ).toBe('op,"Odd, ""name"""\n');
  });
});

describe('options and errors', () => {
  it('refuses unknown, repeated or no columns, listing the allowed ones', () => {
    const open = (columns: string[]) => () =>
      openRowWriter('ndjson', collector().stream, { keyColumns: KEY_COLUMNS, columns });
    expect(open(['op', 'nope', 'op'])).toThrow(ConfigError);
    try {
      open(['op', 'nope', 'op'])();
    } catch (error) {
      expect((error as ConfigError).issues).toEqual([
        `columns: unknown column "nope"; allowed: ${changeColumns(KEY_COLUMNS).join(', ')}`,
        'columns: column "op" is listed twice',
      ]);
    }
    expect(open([])).toThrow(/no column given; allowed: event_id, op/);
  });

  it('refuses an unknown format', () => {
    expect(() => openRowWriter('xml' as RowFormat, collector().stream, { keyColumns: KEY_COLUMNS })).toThrow(
      /format "xml" is not one of ndjson, json, csv, parquet/,
    );
  });

  it('names the row and segment when a row lacks a key column', async () => {
    const row = { ...rows[0]!, keyColumns: { pk: 'x' } };
    const writer = openRowWriter('ndjson', collector().stream, { keyColumns: KEY_COLUMNS });
    await expect(writer.write(row)).rejects.toThrow(
      `row ${row.eventId} of segment ${row.segmentKey} has no key column "sk" (it has pk)`,
    );
  });

  it('rejects writes and end() once the stream failed', async () => {
    const failing = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const writer = openRowWriter('ndjson', failing, { keyColumns: KEY_COLUMNS });
    const many = generatedRows(400, 2);
    let failure: unknown;
    try {
      for (const row of many) await writer.write(row);
      await writer.end();
    } catch (error) {
      failure = error;
    }
    expect((failure as Error | undefined)?.message).toBe('write EPIPE');
  });
});
