import { parquetMetadata } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { keyColumnName, parseKeySchema } from '../../../src/changelog/keySchema.js';
import { FOOTER_METADATA_KEY } from '../../../src/changelog/parquetEncoder.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { readWithHyparquet } from '../../helpers/parquetReaders.js';
import { generateRecords, getRecordsResponse, rng, type WireRecord } from '../../helpers/streamRecords.js';

const schema = parseKeySchema('pk:S,sk:N');

function bufferOf(pages: { shardId: string; records: WireRecord[] }[], keySchema = schema): ChangeBuffer {
  const buffer = new ChangeBuffer(keySchema);
  for (const page of pages) decodeGetRecordsResponse(getRecordsResponse(page.records), page.shardId, buffer);
  return buffer;
}

const meta = (bytes: Uint8Array) =>
  parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);

describe('encodeSegment', () => {
  const shardA = generateRecords({ records: 400, seed: 1, startSequence: 5_000_000_000_000_000_000n });
  const shardB = generateRecords({ records: 300, seed: 2, startSequence: 900_000_000_000_000_000n });

  it('is deterministic: repeated encodes and any arrival order give identical bytes', () => {
    const buffer = bufferOf([
      { shardId: 'shardId-A', records: shardA },
      { shardId: 'shardId-B', records: shardB },
    ]);
    const metadata = { table: 'orders', stream_arn: 'arn:aws:dynamodb:us-east-1:1:table/orders/stream/x' };
    const first = Buffer.from(encodeSegment(buffer, { metadata }).bytes);
    for (let i = 0; i < 10; i++)
      expect(Buffer.from(encodeSegment(buffer, { metadata }).bytes).equals(first)).toBe(true);

    // Same records, other arrival orders: shard B first, pages split differently, records shuffled.
    const random = rng(99);
    const shuffled = [...shardA].sort(() => random() - 0.5);
    const other = bufferOf([
      { shardId: 'shardId-B', records: shardB.slice(0, 100) },
      { shardId: 'shardId-A', records: shuffled.slice(0, 250) },
      { shardId: 'shardId-B', records: shardB.slice(100) },
      { shardId: 'shardId-A', records: shuffled.slice(250) },
    ]);
    expect(Buffer.from(encodeSegment(other, { metadata }).bytes).equals(first)).toBe(true);
  });

  it('gives the same bytes from a recycled buffer after clear()', () => {
    const fresh = bufferOf([{ shardId: 'shardId-A', records: shardA }]);
    const expected = Buffer.from(encodeSegment(fresh).bytes);
    const recycled = bufferOf([{ shardId: 'shardId-B', records: shardB }]);
    encodeSegment(recycled);
    recycled.clear();
    expect(recycled.rowCount).toBe(0);
    expect(recycled.byteSize).toBe(0);
    decodeGetRecordsResponse(getRecordsResponse(shardA), 'shardId-A', recycled);
    expect(recycled.shards).toEqual(['shardId-A']);
    expect(Buffer.from(encodeSegment(recycled).bytes).equals(expected)).toBe(true);
  });

  it('sorts rows by key (numeric sort key) then sequence number as an integer', async () => {
    const records = generateRecords({ records: 500, seed: 5, keyCount: 40 });
    // Sequence numbers of different lengths: a string sort would put "99..." after "100...".
    records.forEach((r, i) => {
      r.dynamodb.SequenceNumber = String(10n ** BigInt(20 + (i % 3)) + BigInt(i));
    });
    const rows = await readWithHyparquet(encodeSegment(bufferOf([{ shardId: 's', records }])).bytes);
    expect(rows).toHaveLength(500);
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!;
      const b = rows[i]!;
      const byPk = Buffer.compare(Buffer.from(a.pk as string), Buffer.from(b.pk as string));
      expect(byPk).toBeLessThanOrEqual(0);
      if (byPk === 0) {
        const bySk = Number(a.sk) - Number(b.sk);
        expect(bySk).toBeLessThanOrEqual(0);
        if (bySk === 0)
          expect(BigInt(a.sequence_number as string) < BigInt(b.sequence_number as string)).toBe(true);
      }
    }
  });

  it('writes the DESIGN.md columns with typed key columns, and reports ranges and times', () => {
    const buffer = bufferOf([
      { shardId: 'shardId-A', records: shardA },
      { shardId: 'shardId-B', records: shardB },
    ]);
    const segment = encodeSegment(buffer);
    expect(segment.records).toBe(700);
    const columns = meta(segment.bytes)
      .schema.slice(1)
      .map((s) => s.name);
    expect(columns).toEqual([
      'event_id',
      'op',
      'event_time',
      'sequence_number',
      'shard_id',
      'keys',
      'new_image',
      'old_image',
      'pk',
      'sk',
      'size_bytes',
      'ttl_delete',
    ]);
    expect(segment.shards).toEqual([
      {
        shardId: 'shardId-A',
        firstSequenceNumber: shardA[0]!.dynamodb.SequenceNumber,
        lastSequenceNumber: shardA.at(-1)!.dynamodb.SequenceNumber,
        records: 400,
      },
      {
        shardId: 'shardId-B',
        firstSequenceNumber: shardB[0]!.dynamodb.SequenceNumber,
        lastSequenceNumber: shardB.at(-1)!.dynamodb.SequenceNumber,
        records: 300,
      },
    ]);
    const times = [...shardA, ...shardB].map((r) => r.dynamodb.ApproximateCreationDateTime * 1000);
    expect(segment.minEventTimeMs).toBe(Math.min(...times));
    expect(segment.maxEventTimeMs).toBe(Math.max(...times));
    const footer = meta(segment.bytes).key_value_metadata?.find((kv) => kv.key === FOOTER_METADATA_KEY);
    expect(JSON.parse(footer!.value!)).toEqual({ format_version: '1', key_schema: 'pk:S,sk:N' });
  });

  it('prefixes key columns whose names collide with fixed columns', () => {
    expect(keyColumnName('op')).toBe('key_op');
    expect(keyColumnName('pk')).toBe('pk');
    const records = generateRecords({ records: 3, seed: 1 }).map((r) => {
      r.dynamodb.Keys = {
        op: { S: r.dynamodb.Keys.pk && 'S' in r.dynamodb.Keys.pk ? r.dynamodb.Keys.pk.S : 'x' },
      };
      return r;
    });
    const segment = encodeSegment(bufferOf([{ shardId: 's', records }], parseKeySchema('op:S')));
    expect(meta(segment.bytes).schema.map((s) => s.name)).toContain('key_op');
  });

  it.each([
    ['zstd', 'ZSTD'],
    ['snappy', 'SNAPPY'],
    ['none', 'UNCOMPRESSED'],
  ] as const)('compresses with %s', async (compression, codec) => {
    const buffer = bufferOf([{ shardId: 's', records: shardA }]);
    const segment = encodeSegment(buffer, { compression });
    const codecs = meta(segment.bytes).row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec));
    expect(new Set(codecs)).toEqual(new Set([codec]));
    expect(await readWithHyparquet(segment.bytes)).toHaveLength(400);
  });

  it('splits large segments into row groups of the configured size', () => {
    const buffer = bufferOf([{ shardId: 's', records: shardA }]);
    const segment = encodeSegment(buffer, { rowGroupRows: 128 });
    expect(meta(segment.bytes).row_groups.map((g) => Number(g.num_rows))).toEqual([128, 128, 128, 16]);
  });

  it('refuses an empty segment', () => {
    expect(() => encodeSegment(new ChangeBuffer(schema))).toThrow(RangeError);
  });
});
