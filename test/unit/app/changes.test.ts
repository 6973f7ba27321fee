import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChangesIo, runChanges } from '../../../src/app/changes.js';
import { type ChangesOptionsInput, parseChangesConfig } from '../../../src/app/changesConfig.js';
import { manifestObjectKey } from '../../../src/changelog/layout.js';
import { serializeManifest } from '../../../src/changelog/manifest.js';
import { compareSequenceNumbers } from '../../../src/changelog/sequenceNumber.js';
import type { ReadConfig } from '../../../src/coordination/config.js';
import { sha256Checksum } from '../../../src/coordination/objectStore.js';
import { changeColumns } from '../../../src/read/changeColumns.js';
import type { ChangeRow } from '../../../src/read/changeRow.js';
import { lineFormat } from '../../../src/read/textRowFormats.js';
import { buildManifest, TABLE } from '../../helpers/changelogFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import {
  type SampleChangelog,
  W,
  writeSampleChangelog,
  writeSegmentGrid,
} from '../../helpers/sampleChangelog.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const DESTINATION = 's3://bucket/changelog';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** runChanges on `store` with these flags (and settings no flag reaches), its output collected. */
function runner(store: MemoryObjectStore) {
  return async (flags: ChangesOptionsInput, read?: Partial<ReadConfig>) => {
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    let err = '';
    const stderr = new PassThrough();
    stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const io: ChangesIo = { stdout, stderr, openStore: () => store, now: () => NOW };
    const config = parseChangesConfig({ destination: DESTINATION, table: TABLE, ...flags }, NOW);
    const result = await runChanges({ ...config, read: { ...config.read, ...read } }, io);
    return { result, out: Buffer.concat(chunks).toString('utf8'), err };
  };
}

async function setup() {
  const store = new MemoryObjectStore();
  const sample = await writeSampleChangelog(store);
  return { store, sample, run: runner(store) };
}

const since = new Date(W(0)).toISOString();
const lines = (text: string) => text.split('\n').filter((l) => l !== '');
const eventIds = (text: string) => lines(text).map((l) => JSON.parse(l).event_id as string);

/** Rows of the sealed windows before the hole (w0..w4), at their highest versions. */
function rowsBeforeHole(sample: SampleChangelog): ChangeRow[] {
  return sample.windows.slice(0, 5).flatMap((w) => w.highest.rows);
}

describe('runChanges', () => {
  it('prints the rows of the complete windows as NDJSON, and says how complete the answer is', async () => {
    const { sample, run } = await setup();
    const { out, err, result } = await run({ since });
    const expected = rowsBeforeHole(sample);
    expect(eventIds(out)).toEqual(expected.map((r) => r.eventId));
    const first = JSON.parse(lines(out)[0]!);
    // Images are embedded as stored: DynamoDB JSON, byte-exact.
    expect(JSON.stringify(first.new_image)).toBe(expected[0]!.newImage ?? 'null');
    expect(result).toMatchObject({
      windows: 5,
      fromMs: W(0),
      throughMs: W(5),
      completeThroughMs: W(5),
      incomplete: 1,
    });
    expect(err).toContain(`complete through ${new Date(W(5)).toISOString()}`);
    expect(err).toContain(`GAP: window ${new Date(W(4)).toISOString()} lists 1 unfilled gap(s)`);
  });

  it('--latest gives one row per item, its highest sequence number, deletes left out', async () => {
    const { sample, run } = await setup();
    const { out } = await run({ since, latest: true });
    const latest = new Map<string, ChangeRow>();
    for (const row of rowsBeforeHole(sample)) {
      const seen = latest.get(row.keys);
      if (seen === undefined || compareSequenceNumbers(row.sequenceNumber, seen.sequenceNumber) > 0)
        latest.set(row.keys, row);
    }
    const expected = [...latest.values()].filter((r) => r.op !== 'REMOVE').map((r) => r.eventId);
    expect(eventIds(out).sort()).toEqual(expected.sort());
    const withDeletes = await run({ since, latest: true, includeDeletes: true });
    expect(eventIds(withDeletes.out).length).toBe(latest.size);
  });

  it('writes every row, and each --latest row, exactly as the row writer writes that row', async () => {
    const { sample, run } = await setup();
    const byEventId = new Map(rowsBeforeHole(sample).map((r) => [r.eventId, r]));
    for (const format of ['ndjson', 'csv', 'json'] as const) {
      const lineOf = lineFormat(format, changeColumns(['pk', 'sk']));
      const all = await run({ since, format });
      const latest = await run({ since, format, latest: true });
      const header = format === 'csv' ? lineOf.header : '';
      expect(all.out).toBe(
        header +
          rowsBeforeHole(sample)
            .map((r) => lineOf.line(r))
            .join(''),
      );
      // --latest in key order: the rows it picked, each written as the writer writes it.
      const picked = latest.result.items;
      expect(picked).toBeGreaterThan(0);
      const ids =
        format === 'csv'
          ? lines(latest.out)
              .slice(1)
              .map((l) => l.split(',')[0]!)
          : eventIds(latest.out);
      expect(latest.out).toBe(header + ids.map((id) => lineOf.line(byEventId.get(id)!)).join(''));
    }
  });

  it('--key gives the history of one item in window order', async () => {
    const { sample, run } = await setup();
    const row = rowsBeforeHole(sample)[3]!;
    const { out } = await run({ since, key: JSON.stringify(row.keyColumns) });
    const expected = rowsBeforeHole(sample).filter((r) => r.keys === row.keys);
    expect(eventIds(out)).toEqual(expected.map((r) => r.eventId));
    expect(expected.length).toBeGreaterThan(0);
  });

  it('--emit files and redshift-manifest list each segment of the range once', async () => {
    const { sample, run } = await setup();
    const keys = sample.windows.slice(0, 5).flatMap((w) => w.highest.segments.map((s) => s.key));
    const files = await run({ since, emit: 'files' });
    expect(lines(files.out)).toEqual(keys.map((k) => `${DESTINATION}/${k}`));
    const manifest = await run({ since, emit: 'redshift-manifest' });
    const entries = JSON.parse(manifest.out).entries as {
      url: string;
      mandatory: boolean;
      meta: { content_length: number };
    }[];
    expect(entries.map((e) => e.url)).toEqual(keys.map((k) => `${DESTINATION}/${k}`));
    expect(entries.every((e) => e.mandatory && e.meta.content_length > 0)).toBe(true);
  });

  it('fetches no segment twice in any mode: the key schema comes from the first segment it loads anyway', async () => {
    const { sample, run, store } = await setup();
    const range = sample.windows.slice(0, 5).flatMap((w) => w.highest.segments.map((s) => s.key));
    const once = (keys: readonly string[]) => Object.fromEntries(keys.map((k) => [k, 1]));
    const segmentGets = async (flags: ChangesOptionsInput) => {
      store.gets.clear();
      await run({ since, ...flags });
      return Object.fromEntries([...store.gets].filter(([key]) => key.endsWith('.parquet')));
    };
    const item = JSON.stringify(rowsBeforeHole(sample)[3]!.keyColumns);
    for (const flags of [{}, { format: 'parquet' }, { latest: true }, { key: item }]) {
      expect(await segmentGets(flags), JSON.stringify(flags)).toEqual(once(range));
    }
    // The file lists need no segment; the SQL hand-offs need the key schema: one footer.
    expect(await segmentGets({ emit: 'files' })).toEqual({});
    expect(await segmentGets({ emit: 'redshift-manifest' })).toEqual({});
    expect(await segmentGets({ emit: 'duckdb-sql' })).toEqual(once(range.slice(0, 1)));
    const redshift = {
      emit: 'redshift-sql',
      targetTable: 'orders_latest',
      iamRole: 'arn:aws:iam::123456789012:role/loader',
      manifestUrl: 's3://bucket/loads/1.manifest',
    };
    expect(await segmentGets(redshift)).toEqual(once(range.slice(0, 1)));
  });

  it('a range without segments reads none: empty text output (a CSV header), no parquet, no SQL', async () => {
    const { run, store } = await setup();
    await store.putIfAbsent(manifestObjectKey(TABLE, W(5)), serializeManifest(buildManifest(W(5), [])));
    const empty = { since: new Date(W(5)).toISOString(), until: new Date(W(6)).toISOString() };
    store.gets.clear();
    expect((await run({ ...empty })).out).toBe('');
    expect((await run({ ...empty, latest: true })).out).toBe('');
    expect((await run({ ...empty, format: 'csv' })).out).toBe(lineFormat('csv', changeColumns([])).header);
    expect((await run({ ...empty, format: 'parquet' })).out).toBe('');
    expect((await run({ ...empty, emit: 'duckdb-sql' })).out).toBe('');
    expect([...store.gets.keys()].filter((key) => key.endsWith('.parquet'))).toEqual([]);
  });

  it('--latest keeps segment bytes between its passes only within its budget, and fetches the rest again', async () => {
    const store = new MemoryObjectStore();
    const segments = await writeSegmentGrid(store, 3, 2);
    const run = runner(store);
    const latest = { since, latest: true, format: 'csv' };
    const fetches = async (latestKeepBytes: number) => {
      store.gets.clear();
      const { out } = await run(latest, { latestKeepBytes });
      return { out, gets: segments.map((s) => store.gets.get(s.key)) };
    };
    const unbounded = await fetches(Number.MAX_SAFE_INTEGER);
    expect(unbounded.gets).toEqual(segments.map(() => 1));
    // Every segment holds a winner (its own items), so with no budget each is fetched twice.
    const none = await fetches(0);
    expect(none.gets).toEqual(segments.map(() => 2));
    expect(none.out).toBe(unbounded.out);
    expect(lines(none.out)).toHaveLength(1 + segments.length * 2 + 1);
    // A budget of two segments keeps the first two (range order) and fetches the others again.
    const two = await fetches(segments[0]!.bytes.length + segments[1]!.bytes.length);
    expect(two.gets).toEqual(segments.map((_, i) => (i < 2 ? 1 : 2)));
    expect(two.out).toBe(unbounded.out);
  });

  it('--latest refuses a segment that changed between its passes, naming it and its manifest', async () => {
    const store = new MemoryObjectStore();
    const segments = await writeSegmentGrid(store, 2, 2);
    const changed = segments[1]!;
    // Same length, one byte different: only the checksum can tell.
    const altered = Uint8Array.from(changed.bytes);
    altered[8] = altered[8]! ^ 0xff;
    store.onGet = (key) => {
      if (key === changed.key && store.gets.get(key) === 2) store.objects.get(key)!.body = altered;
    };
    await expect(runner(store)({ since, latest: true }, { latestKeepBytes: 0 })).rejects.toThrow(
      `segment ${changed.key} has checksum ${sha256Checksum(altered)}, but manifest ${manifestObjectKey(TABLE, W(0))} lists ${changed.entry.checksum}`,
    );
  });

  it('with --cursor delivers every row once across runs and writes the output file atomically', async () => {
    const { sample, run, store } = await setup();
    dir = await mkdtemp(path.join(tmpdir(), 'changes-'));
    const cursor = path.join(dir, 'cursor.json');
    const output = (n: number) => path.join(dir!, `batch-${n}.ndjson`);
    const first = await run({ cursor, since, output: output(1) });
    expect(first.result.batch).toBe(1);
    const second = await run({ cursor, output: output(2) });
    expect(second.result.items).toBe(0);
    await store.putIfAbsent(manifestObjectKey(TABLE, W(5)), serializeManifest(buildManifest(W(5), [])));
    const third = await run({ cursor, output: output(3) });
    expect(third.err).toContain('cursor');
    const all = [1, 2, 3].map(async (n) => eventIds(await readFile(output(n), 'utf8')));
    const delivered = (await Promise.all(all)).flat();
    expect(delivered).toEqual(sample.windows.flatMap((w) => w.highest.rows.map((r) => r.eventId)));
    expect(JSON.parse(await readFile(cursor, 'utf8')).batch).toBe(3);
    expect((await readdir(dir)).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('a missing segment fails with its key named; the output file is not created and the cursor does not move', async () => {
    const { sample, run, store } = await setup();
    dir = await mkdtemp(path.join(tmpdir(), 'changes-'));
    const cursor = path.join(dir, 'cursor.json');
    const missing = sample.windows[3]!.highest.segments[0]!.key;
    store.objects.delete(missing);
    await expect(run({ cursor, since, output: path.join(dir, 'out.ndjson') })).rejects.toThrow(
      `segment ${missing} listed by manifest`,
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('an unknown table is an error naming it and the destination', async () => {
    const { run } = await setup();
    await expect(run({ since, table: 'customers' })).rejects.toThrow(
      'no changelog of table customers at s3://bucket/changelog: nothing under customers/manifests/',
    );
  });

  it('a cursor loader started before the first seal gets an empty batch and writes no cursor; with a cursor the table must exist', async () => {
    const { run } = await setup();
    dir = await mkdtemp(path.join(tmpdir(), 'changes-'));
    const cursor = path.join(dir, 'cursor.json');
    const early = await run({ cursor, table: 'customers', output: path.join(dir, 'out.ndjson') });
    expect(early.result.items).toBe(0);
    expect(early.err).toContain('no window of table customers is sealed at s3://bucket/changelog yet');
    expect(await readdir(dir)).toEqual([]);
    await run({ cursor, since });
    await expect(run({ cursor, table: 'customers' })).rejects.toThrow(/no changelog of table customers/);
  });
});
