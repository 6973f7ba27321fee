import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { keyAttributes, keyColumnName, parseKeySchema } from '../../../src/changelog/keySchema.js';
import { changeColumns } from '../../../src/read/changeColumns.js';
import type { ChangeRow } from '../../../src/read/changeRow.js';
import { ndjsonRowBytes } from '../../../src/read/ndjsonRowBytes.js';
import { openRowWriter } from '../../../src/read/rowWriters.js';
import { type DecodedRowGroup, decodeSegmentRowGroups } from '../../../src/read/segmentRows.js';
import { lineFormat } from '../../../src/read/textRowFormats.js';
import { ByteBuilder } from '../../../src/support/byteBuilder.js';
import { FIRST_WINDOW_MS } from '../../helpers/changelogFixtures.js';
import { awkwardRows, generatedRows } from '../../helpers/changeRowSamples.js';
import { buildTestSegment, changeRecord, SHARD_1 } from '../../helpers/sampleChangelog.js';

const SOURCE = { segmentKey: 'orders/data/x.parquet', windowStartMs: FIRST_WINDOW_MS };

function sink(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

/** `rows` written to a Parquet file with the segment columns (key metadata included), decoded again. */
async function decodedGroups(schemaText: string, rows: readonly ChangeRow[]): Promise<DecodedRowGroup[]> {
  const keySchema = parseKeySchema(schemaText);
  const keyColumns = keyAttributes(keySchema).map((a) => keyColumnName(a.name));
  const out = sink();
  const writer = openRowWriter('parquet', out.stream, { keyColumns, keySchema });
  for (const row of rows) await writer.write(row);
  await writer.end();
  return [...decodeSegmentRowGroups(out.bytes(), SOURCE)];
}

/** What the string path writes for each row, and what the byte path writes. */
function bothWays(groups: readonly DecodedRowGroup[], columns: readonly string[]) {
  const format = lineFormat('ndjson', columns);
  const rowBytes = ndjsonRowBytes(columns);
  const expected: Buffer[] = [];
  const actual: Buffer[] = [];
  for (const group of groups) {
    for (let i = 0; i < group.length; i++) {
      expected.push(Buffer.from(format.line(group.rowAt(i)), 'utf8'));
      const builder = new ByteBuilder(16);
      rowBytes(group, i, builder);
      actual.push(builder.take());
    }
  }
  return { expected, actual };
}

describe('ndjsonRowBytes', () => {
  it.each(['pk:S,sk:N', 'pk:S', 'pk:N', 'id:B,at:N', 'op:S,keys:S'])(
    'writes the string path lines byte for byte (%s): escapes, non-ASCII, nulls, a 300 KB image',
    async (schema) => {
      const rows = [
        ...(schema === 'pk:S,sk:N' ? generatedRows(200, 3) : []),
        ...awkwardRows(parseKeySchema(schema)),
      ];
      const groups = await decodedGroups(schema, rows);
      const keyColumns = groups[0]!.keyColumns.map((k) => k.name);
      for (const columns of [changeColumns(keyColumns), ['new_image', keyColumns[0]!, 'event_id', 'op']]) {
        const { expected, actual } = bothWays(groups, columns);
        expect(actual.length).toBe(rows.length);
        for (let k = 0; k < expected.length; k++)
          expect(actual[k]!.equals(expected[k]!), `line ${k}`).toBe(true);
      }
    },
  );

  it('a row writer gives the same bytes through writeDecoded as through write, also for text that is not UTF-8', async () => {
    const records = Array.from({ length: 30 }, (_, i) =>
      changeRecord({
        keys: { pk: { S: `item-${i % 4}` }, sk: { N: String(i % 3) } },
        sequenceNumber: 1000n + BigInt(i),
        timeMs: FIRST_WINDOW_MS + i * 1000,
        op: i % 5 === 0 ? 'INSERT' : 'MODIFY',
      }),
    );
    const segment = buildTestSegment({
      windowStartMs: FIRST_WINDOW_MS,
      compression: 'none',
      parts: [{ shardId: SHARD_1, records }],
    });
    // Uncompressed pages hold the images' text as it is: break one character of one image.
    const bytes = new Uint8Array(segment.bytes);
    const at = Buffer.from(bytes).indexOf('change 1007 ✓');
    expect(at).toBeGreaterThan(0);
    bytes[at + 'change 1007 '.length] = 0xff;
    const groups = [...decodeSegmentRowGroups(bytes, SOURCE)];
    expect(
      groups.some((g) =>
        Array.from({ length: g.length }, (_, i) => g.rowAt(i).newImage).some((t) => t?.includes('\ufffd')),
      ),
    ).toBe(true);

    const write = async (decoded: boolean) => {
      const out = sink();
      const writer = openRowWriter('ndjson', out.stream, { keyColumns: ['pk', 'sk'] });
      for (const group of groups) {
        for (let i = 0; i < group.length; i++) {
          if (decoded) await writer.writeDecoded(group, i);
          else await writer.write(group.rowAt(i));
        }
      }
      await writer.end();
      return out.bytes();
    };
    const viaRows = await write(false);
    const viaBytes = await write(true);
    expect(viaBytes.toString('utf8')).toContain('\ufffd');
    expect(viaBytes.equals(viaRows)).toBe(true);
  });

  it('keeps rows in order when rows and decoded rows are mixed on one writer', async () => {
    const groups = await decodedGroups('pk:S,sk:N', generatedRows(20, 9));
    const group = groups[0]!;
    const out = sink();
    const writer = openRowWriter('ndjson', out.stream, { keyColumns: ['pk', 'sk'] });
    for (let i = 0; i < group.length; i++) {
      if (i % 3 === 0) await writer.write(group.rowAt(i));
      else await writer.writeDecoded(group, i);
    }
    await writer.end();
    const format = lineFormat('ndjson', changeColumns(['pk', 'sk']));
    const expected = Array.from({ length: group.length }, (_, i) => format.line(group.rowAt(i))).join('');
    expect(out.bytes().toString('utf8')).toBe(expected);
  });
});
