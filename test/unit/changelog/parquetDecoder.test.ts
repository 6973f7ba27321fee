import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import {
  readSegmentBatches,
  readSegmentColumns,
  readSegmentFooter,
  readSegmentMetadata,
  readSegmentTables,
} from '../../../src/changelog/parquetDecoder.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { GOLDEN_CASES } from '../../helpers/goldenSegments.js';
import { readWithHyparquet } from '../../helpers/parquetReaders.js';
import { generateRecords, getRecordsResponse } from '../../helpers/streamRecords.js';

const golden = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../fixtures/segments/${name}.parquet`, import.meta.url)));

function segmentOf(records: number, rowGroupRows?: number): Uint8Array {
  const buffer = new ChangeBuffer(parseKeySchema('pk:S,sk:N'));
  decodeGetRecordsResponse(getRecordsResponse(generateRecords({ records, seed: 7 })), 'shardId-X', buffer);
  return encodeSegment(buffer, { rowGroupRows }).bytes;
}

function thrown(fn: () => unknown): ChangelogError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ChangelogError);
    return error as ChangelogError;
  }
  throw new Error('expected an error');
}

describe('readSegmentColumns', () => {
  it.each(GOLDEN_CASES.map((c) => c.name))('reads %s as an independent reader does', async (name) => {
    const bytes = golden(name);
    const expected = await readWithHyparquet(bytes);
    const read = readSegmentColumns(bytes, [
      'event_id',
      'shard_id',
      'sequence_number',
      'event_time',
      'new_image',
      'ttl_delete',
      'size_bytes',
    ]);
    expect(read.rows).toBe(expected.length);
    expect(readSegmentFooter(bytes).rows).toBe(expected.length);
    for (const column of [
      'event_id',
      'shard_id',
      'sequence_number',
      'event_time',
      'new_image',
      'ttl_delete',
      'size_bytes',
    ]) {
      expect(read.columns[column], column).toEqual(expected.map((row) => row[column]));
    }
    // Only the requested columns come back.
    expect(Object.keys(readSegmentColumns(bytes, ['event_id']).columns)).toEqual(['event_id']);
  });

  it('reads a segment of several row groups one group at a time', () => {
    const bytes = segmentOf(250, 100);
    expect(readSegmentFooter(bytes)).toEqual({ rows: 250, rowGroups: 3 });
    const batches = [...readSegmentBatches(bytes, ['event_id'])];
    expect(batches.map((b) => b.rows)).toEqual([100, 100, 50]);
    const all = readSegmentColumns(bytes, ['event_id']);
    expect(all.rows).toBe(250);
    expect(all.columns.event_id).toEqual(batches.flatMap((b) => b.columns.event_id));
    expect(new Set(all.columns.event_id).size).toBe(250);
  });
});

describe('readSegmentMetadata', () => {
  it('reads the key-column statistics of each row group: the min and max of its rows, exact', () => {
    const bytes = segmentOf(250, 100);
    const metadata = readSegmentMetadata(bytes);
    expect(metadata.rows).toBe(250);
    expect(metadata.rowGroups.map((g) => g.rows)).toEqual([100, 100, 50]);
    const text = (b: Uint8Array | undefined) => Buffer.from(b!).toString('utf8');
    const groups = [...readSegmentBatches(bytes, ['pk', 'sk'])];
    for (const [i, group] of metadata.rowGroups.entries()) {
      for (const column of ['pk', 'sk']) {
        const values = (groups[i]!.columns[column] as string[]).map((v) => Buffer.from(v, 'utf8'));
        const sorted = values.sort(Buffer.compare);
        const stats = group.statistics.get(column)!;
        expect(text(stats.min), `${column} ${i}`).toBe(sorted[0]!.toString('utf8'));
        expect(text(stats.max), `${column} ${i}`).toBe(sorted.at(-1)!.toString('utf8'));
        expect(stats).toMatchObject({ minExact: true, maxExact: true, nullCount: 0 });
      }
      // The encoder writes no statistics for the large JSON columns.
      expect(group.statistics.has('new_image')).toBe(false);
    }
    expect(JSON.parse(metadata.keyValueMetadata.get('dynamodb_changelog')!)).toMatchObject({
      key_schema: 'pk:S,sk:N',
    });
  });

  it('decodes only the row groups asked for, and names one that does not exist', () => {
    const bytes = segmentOf(250, 100);
    expect(
      [...readSegmentTables(bytes, 'k', { rowGroups: [2, 0] })].map((g) => [g.rowGroup, g.table.numRows]),
    ).toEqual([
      [2, 50],
      [0, 100],
    ]);
    expect(thrown(() => [...readSegmentTables(bytes, 'k', { rowGroups: [3] })]).message).toBe(
      'segment k is not a readable Parquet change segment: it has no row group 3 (it has 3: 0 to 2)',
    );
  });
});

describe('malformed segments', () => {
  const key = 'orders/data/dt=2026-11-22/window=20261122T100000Z/s1-x.parquet';
  const bytes = golden('orders-s-n-zstd');

  it('names the key and is not retriable', () => {
    const error = thrown(() =>
      readSegmentColumns(new TextEncoder().encode('not parquet at all'), ['event_id'], key),
    );
    expect(error.message).toBe(
      `segment ${key} is not a readable Parquet change segment: no PAR1 magic at both ends`,
    );
    expect(error.context.key).toBe(key);
    expect(error.retriable).toBe(false);
  });

  it('refuses a truncated file', () => {
    expect(thrown(() => readSegmentFooter(bytes.subarray(0, bytes.length - 10), key)).message).toMatch(
      /no PAR1 magic/,
    );
    const shortened = new Uint8Array([...bytes.subarray(0, 4), ...bytes.subarray(bytes.length - 200)]);
    expect(thrown(() => readSegmentFooter(shortened, key)).message).toMatch(
      /footer length \d+ exceeds the file/,
    );
  });

  it('refuses a corrupt footer without hanging or crashing', () => {
    const corrupt = new Uint8Array(bytes);
    const footerLength = new DataView(corrupt.buffer).getUint32(corrupt.length - 8, true);
    corrupt.fill(0xff, corrupt.length - 8 - footerLength, corrupt.length - 8);
    expect(thrown(() => readSegmentColumns(corrupt, ['event_id'], key)).message).toMatch(
      new RegExp(`^segment ${key} is not a readable Parquet change segment: corrupt footer`),
    );
  });

  it('turns decoder failures on corrupt pages into the same error', () => {
    const corrupt = new Uint8Array(bytes);
    corrupt.fill(7, 4, 200);
    const error = thrown(() => readSegmentColumns(corrupt, ['event_id'], key));
    expect(error.message).toMatch(/row group 0: /);
    expect(error.context.key).toBe(key);
    // The wasm module still works afterwards.
    expect(readSegmentColumns(bytes, ['event_id']).rows).toBe(40);
  });

  it('names a missing column', () => {
    expect(thrown(() => readSegmentColumns(bytes, ['event_id', 'nope'], key)).message).toMatch(
      /it has no column "nope"/,
    );
  });
});
