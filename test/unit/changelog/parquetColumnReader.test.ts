import { readFileSync } from 'node:fs';
import { Table, tableFromArrays, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import {
  Compression,
  Table as WasmTable,
  WriterPropertiesBuilder,
  WriterVersion,
  writeParquet,
} from 'parquet-wasm/node';
import { describe, expect, it } from 'vitest';
import { pageDecompressor } from '../../../src/changelog/pageDecompressor.js';
import {
  type RawColumn,
  readRowGroupColumns,
  rowGroupColumnReaders,
  textAt,
} from '../../../src/changelog/parquetColumnReader.js';
import { readSegmentMetadata, readSegmentTables } from '../../../src/changelog/parquetDecoder.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { FIRST_WINDOW_MS } from '../../helpers/changelogFixtures.js';
import { GOLDEN_CASES } from '../../helpers/goldenSegments.js';
import { buildTestSegment, SHARD_1, SHARD_2 } from '../../helpers/sampleChangelog.js';
import { generateRecords } from '../../helpers/streamRecords.js';

const COLUMNS = [
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
];

/** A column's values as parquet-wasm and apache-arrow read them (the reference). */
function arrowValues(table: Table, name: string): unknown[] {
  const vector = table.getChild(name)!;
  return Array.from({ length: vector.length }, (_, i) => {
    const v: unknown = vector.get(i);
    return typeof v === 'bigint' ? Number(v) : (v ?? null);
  });
}

/** A column's values as the page reader reads them, in the same forms. */
function rawValues(column: RawColumn, rows: number): unknown[] {
  return Array.from({ length: rows }, (_, i) => {
    if (column.nulls?.[i] === 1) return null;
    switch (column.kind) {
      case 'bytes':
        return textAt(column, i);
      case 'int32':
        return column.values[i];
      case 'int64':
        return column.values[2 * i + 1]! * 2 ** 32 + (column.values[2 * i]! >>> 0);
      case 'boolean':
        return column.values[i] === 1;
      default:
        throw new Error('unknown column kind');
    }
  });
}

/** Every row group of `bytes` read both ways must agree, column by column. */
function expectSameAsArrow(bytes: Uint8Array, columns = COLUMNS): void {
  const metadata = readSegmentMetadata(bytes);
  const tables = [...readSegmentTables(bytes)];
  expect(tables.length).toBe(metadata.rowGroups.length);
  for (const { rowGroup, table } of tables) {
    const read = readRowGroupColumns(bytes, metadata, rowGroup, columns, pageDecompressor, 'k');
    expect(read, `row group ${rowGroup}`).toBeDefined();
    for (const name of columns) {
      expect(rawValues(read!.get(name)!, table.numRows), `${name} of row group ${rowGroup}`).toEqual(
        arrowValues(table, name),
      );
    }
  }
}

function segment(options: { records: number; rowGroupRows?: number; keyCount?: number; seed?: number }) {
  const records = (seed: number, start: bigint) =>
    generateRecords({
      records: options.records,
      seed,
      startSequence: start,
      startTimeSeconds: FIRST_WINDOW_MS / 1000,
      keyCount: options.keyCount ?? 9,
      ttlShare: 0.5,
    });
  return buildTestSegment({
    windowStartMs: FIRST_WINDOW_MS,
    rowGroupRows: options.rowGroupRows,
    parts: [
      { shardId: SHARD_1, records: records(options.seed ?? 1, 100_000_000_000_000_000_000n) },
      { shardId: SHARD_2, records: records((options.seed ?? 1) + 1, 200_000_000_000_000_000_000n) },
    ],
  }).bytes;
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

describe('readRowGroupColumns', () => {
  it('reads what parquet-wasm reads: several row groups, dictionaries, null images, TTL flags', () => {
    const bytes = segment({ records: 60, rowGroupRows: 25 });
    expect(readSegmentMetadata(bytes).rowGroups.length).toBe(5);
    expectSameAsArrow(bytes);
  });

  it('reads column chunks of several pages (values in more than one decompressed page)', () => {
    // ~1,500 rows of ~1.5 KB images: over the writer's 1 MiB page size, so several data pages.
    const bytes = segment({ records: 750, keyCount: 400 });
    const metadata = readSegmentMetadata(bytes);
    const read = readRowGroupColumns(bytes, metadata, 0, ['new_image'], pageDecompressor)!;
    const images = read.get('new_image')!;
    expect(images.kind === 'bytes' && images.pieces !== undefined && images.pieces.length > 1).toBe(true);
    expectSameAsArrow(bytes);
  });

  it('reads a dictionary that falls back to plain pages within a chunk', () => {
    // 3,000 distinct values overflow a 4 KB dictionary page: the writer goes on in PLAIN pages.
    const pk = Array.from(
      { length: 3000 },
      (_, i) => `key-${String(i % 1500).padStart(5, '0')}-${'x'.repeat(i % 40)}`,
    );
    const table = new Table({
      pk: vectorFromArray(pk, new Utf8()),
      n: vectorFromArray(Int32Array.from(pk, (_, i) => i % 7)),
    });
    const bytes = writeParquet(
      WasmTable.fromIPCStream(tableToIPC(table, 'stream')),
      new WriterPropertiesBuilder()
        .setCompression(Compression.ZSTD)
        .setWriterVersion(WriterVersion.V1)
        .setDictionaryPageSizeLimit(4096)
        .setDataPageSizeLimit(8192)
        .build(),
    );
    expectSameAsArrow(bytes, ['pk', 'n']);
  });

  it.each(GOLDEN_CASES.map((c) => c.name))(
    'reads golden segment %s, or leaves it to parquet-wasm',
    (name) => {
      const bytes = new Uint8Array(
        readFileSync(new URL(`../../fixtures/segments/${name}.parquet`, import.meta.url)),
      );
      const metadata = readSegmentMetadata(bytes);
      const read = readRowGroupColumns(bytes, metadata, 0, COLUMNS, pageDecompressor);
      const snappy = GOLDEN_CASES.find((c) => c.name === name)!.compression === 'snappy';
      // Snappy is left to parquet-wasm (pageDecompressor knows ZSTD only); the others are read here.
      expect(read === undefined).toBe(snappy);
      if (!snappy) expectSameAsArrow(bytes);
    },
  );

  it('reads data pages V2 or returns undefined, never something else', () => {
    const table = tableFromArrays({
      s: ['a', 'bb', 'a', 'ccc', 'dd', 'a'],
      n: new Int32Array([1, 2, 3, 1, 2, 3]),
      t: BigInt64Array.from([1n, 2n, 3n, 1n, 2n, 2n ** 40n]),
      b: [true, false, true, true, false, false],
    });
    const bytes = writeParquet(
      WasmTable.fromIPCStream(tableToIPC(table, 'stream')),
      new WriterPropertiesBuilder()
        .setCompression(Compression.ZSTD)
        .setWriterVersion(WriterVersion.V2)
        .build(),
    );
    const metadata = readSegmentMetadata(bytes);
    const reference = [...readSegmentTables(bytes)][0]!.table;
    for (const name of ['s', 'n', 't', 'b']) {
      const read = readRowGroupColumns(bytes, metadata, 0, [name], pageDecompressor);
      if (read !== undefined)
        expect(rawValues(read.get(name)!, 6), name).toEqual(arrowValues(reference!, name));
    }
  });

  it('decompresses a column only when it is first read, and once', () => {
    const bytes = segment({ records: 30 });
    const metadata = readSegmentMetadata(bytes);
    const expanded: number[] = [];
    const counting = {
      supports: pageDecompressor.supports,
      decompress: (codec: number, input: Uint8Array, size: number) => {
        expanded.push(size);
        return pageDecompressor.decompress(codec, input, size);
      },
    };
    const readers = rowGroupColumnReaders(bytes, metadata, 0, COLUMNS, counting)!;
    expect(expanded).toEqual([]); // page headers checked, nothing expanded
    const pk = readers.get('pk')!.read();
    const pkPages = expanded.length;
    expect(pkPages).toBeGreaterThan(0);
    expect(readers.get('pk')!.read()).toBe(pk);
    expect(expanded.length).toBe(pkPages);
    readers.get('new_image')!.read();
    expect(expanded.length).toBeGreaterThan(pkPages);
    expect(readers.get('new_image')!.kind).toBe('bytes');
  });

  it('returns undefined for a column it cannot find (the caller reads the file another way)', () => {
    const bytes = segment({ records: 5 });
    const metadata = readSegmentMetadata(bytes);
    expect(readRowGroupColumns(bytes, metadata, 0, ['no_such_column'], pageDecompressor)).toBeUndefined();
    expect(readRowGroupColumns(bytes, metadata, 7, ['op'], pageDecompressor)).toBeUndefined();
  });

  it('refuses corrupt pages with an error naming the segment, row group and column', () => {
    const bytes = segment({ records: 20 });
    const metadata = readSegmentMetadata(bytes);
    const chunk = metadata.rowGroups[0]!.columns.find((c) => c.path === 'new_image')!;
    // Damage the compressed body of the first page: past its header, inside the chunk.
    const damaged = new Uint8Array(bytes);
    for (let k = 40; k < 80; k++) damaged[chunk.firstPageOffset + k] = 0xff;
    const error = thrown(() =>
      readRowGroupColumns(damaged, metadata, 0, ['new_image'], pageDecompressor, 'a/b.parquet'),
    );
    expect(error.message).toMatch(/^segment a\/b\.parquet row group 0 column new_image is not readable: /);
    expect(error.context.key).toBe('a/b.parquet');

    // A chunk that claims more bytes than the file has.
    const lying = {
      ...metadata,
      rowGroups: [
        {
          ...metadata.rowGroups[0]!,
          columns: metadata.rowGroups[0]!.columns.map((c) =>
            c.path === 'op' ? { ...c, compressedBytes: bytes.length } : c,
          ),
        },
      ],
    };
    expect(thrown(() => readRowGroupColumns(bytes, lying, 0, ['op'], pageDecompressor)).message).toMatch(
      /column op is not readable: its pages end at \d+, past the data/,
    );
  });
});
