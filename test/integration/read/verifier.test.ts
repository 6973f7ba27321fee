import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  isoTime,
  manifestObjectKey,
  segmentObjectKey,
  symlinkObjectKey,
} from '../../../src/changelog/layout.js';
import type { ManifestGap } from '../../../src/changelog/manifest.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import { sha256Checksum } from '../../../src/coordination/objectStore.js';
import { type VerifyProgress, type VerifyReport, verifyChangelog } from '../../../src/read/verifier.js';
import {
  buildChangelogSpec,
  buildManifest,
  type ChangelogSpec,
  FIRST_WINDOW_MS,
  SHARD_A,
  SHARD_B,
  TABLE,
  WINDOW_MS,
  writeChangelog,
  writeManifest,
  writeSymlink,
} from '../../helpers/changelogFixtures.js';

const W = (i: number) => FIRST_WINDOW_MS + i * WINDOW_MS;
const kinds = (report: VerifyReport) => report.violations.map((v) => v.kind);

/** The manifest entry of `shardId` in the window's segments. */
function shardEntry(spec: ChangelogSpec, window: number, shardId: string) {
  for (const segment of spec.windows[window]!.manifest.segments) {
    const entry = segment.shards.find((s) => s.shardId === shardId);
    if (entry) return { segment, entry };
  }
  throw new Error(`no entry for ${shardId} in window ${window}`);
}

describe('verifyChangelog', () => {
  let dir: string;
  let store: LocalObjectStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-verify-'));
    store = new LocalObjectStore({ dir });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const verify = (
    options: { sinceMs?: number; untilMs?: number; onProgress?: (p: VerifyProgress) => void } = {},
  ) => verifyChangelog({ store, table: TABLE, sinceMs: FIRST_WINDOW_MS, ...options });

  it('reports a clean changelog of 3 windows and 2 shards', async () => {
    const spec = buildChangelogSpec();
    await writeChangelog(store, spec);
    const progress: VerifyProgress[] = [];
    const report = await verify({ onProgress: (p) => progress.push(p) });
    expect(report).toEqual({
      table: TABLE,
      destination: store.url,
      since: isoTime(W(0)),
      firstWindow: isoTime(W(0)),
      lastWindow: isoTime(W(2)),
      windowMs: WINDOW_MS,
      windows: 3,
      segments: 4,
      records: 72,
      lateRecords: 0,
      gaps: [],
      violations: [],
    });
    // One report per segment and per manifest, ending with the totals.
    expect(progress).toHaveLength(7);
    expect(progress.at(-1)).toMatchObject({ windows: 3, segments: 4, records: 72 });
  });

  it('checks only the windows in [since, until)', async () => {
    await writeChangelog(store, buildChangelogSpec());
    const middle = await verify({ sinceMs: W(1), untilMs: W(2) });
    expect(middle).toMatchObject({
      windows: 1,
      segments: 2,
      records: 24,
      firstWindow: isoTime(W(1)),
      violations: [],
    });
    const fromMiddle = await verify({ sinceMs: W(1) - 1 });
    expect(fromMiddle).toMatchObject({
      windows: 2,
      firstWindow: isoTime(W(1)),
      lastWindow: isoTime(W(2)),
      violations: [],
    });
    expect(await verify({ sinceMs: W(3) })).toMatchObject({ windows: 0, segments: 0, violations: [] });
  });

  it('reports a listed segment that does not exist', async () => {
    const spec = buildChangelogSpec();
    await writeChangelog(store, spec);
    const missing = spec.windows[1]!.segments[0]!.key;
    await store.delete([missing]);
    const report = await verify();
    expect(kinds(report)).toEqual(['object-missing']);
    expect(report.violations[0]).toMatchObject({ key: missing, window: isoTime(W(1)) });
  });

  it('reports a segment whose size differs from the manifest', async () => {
    const spec = buildChangelogSpec();
    spec.windows[0]!.manifest.segments[0]!.bytes += 1;
    await writeChangelog(store, spec);
    const report = await verify();
    expect(kinds(report)).toEqual(['object-size']);
    expect(report.violations[0]!.message).toContain(
      `the manifest says ${spec.windows[0]!.segments[0]!.bytes.length + 1}`,
    );
  });

  it('reports a segment whose bytes changed after it was listed', async () => {
    const spec = buildChangelogSpec();
    await writeChangelog(store, spec);
    const key = spec.windows[2]!.segments[0]!.key;
    const file = path.join(dir, key);
    const bytes = await readFile(file);
    bytes[100] = bytes[100]! ^ 0xff; // same size, other content
    await writeFile(file, bytes);
    const report = await verify();
    expect(kinds(report)).toEqual(['object-checksum']);
    expect(report.violations[0]).toMatchObject({ key, window: isoTime(W(2)) });
    expect(report.violations[0]!.message).toContain(sha256Checksum(bytes));
  });

  it('reports overlapping sequence ranges of a shard', async () => {
    const spec = buildChangelogSpec({
      // Window 2's part of shard A re-covers window 1's range (other records, so no duplicate ids).
      override: (w, shardId, previous) =>
        w === 2 && shardId === SHARD_A
          ? { startSequence: BigInt(previous!.first), afterSequenceNumber: previous!.first }
          : undefined,
    });
    await writeChangelog(store, spec);
    const report = await verify();
    expect(kinds(report)).toEqual(['sequence-overlap']);
    expect(report.violations[0]).toMatchObject({
      shardId: SHARD_A,
      key: spec.windows[2]!.segments[0]!.key,
      window: isoTime(W(2)),
    });
    expect(report.violations[0]!.message).toContain(shardEntry(spec, 1, SHARD_A).segment.key);
  });

  describe('a segment that does not start after the previous one', () => {
    const jump = 1_000_000n;
    const build = (gaps?: Record<number, ManifestGap[]>) =>
      buildChangelogSpec({
        override: (w, shardId, previous) =>
          w === 2 && shardId === SHARD_B
            ? {
                startSequence: BigInt(previous!.last) + jump,
                afterSequenceNumber: String(BigInt(previous!.last) + jump),
              }
            : undefined,
        ...(gaps ? { gaps } : {}),
      });
    const previousLast = () => shardEntry(buildChangelogSpec(), 1, SHARD_B).entry.lastSequenceNumber;

    it('is a violation when no gap explains it', async () => {
      const spec = build();
      await writeChangelog(store, spec);
      const report = await verify();
      expect(kinds(report)).toEqual(['sequence-discontinuity']);
      expect(report.violations[0]).toMatchObject({ shardId: SHARD_B, window: isoTime(W(2)) });
      expect(report.violations[0]!.message).toContain(`ends at ${previousLast()}`);
      expect(report.gaps).toEqual([]);
    });

    it('is a counted gap, not a violation, when a gap after the previous last is listed', async () => {
      const gap: ManifestGap = {
        shardId: SHARD_B,
        afterSequenceNumber: previousLast(),
        resumedAtSequenceNumber: shardEntry(build(), 2, SHARD_B).entry.firstSequenceNumber,
        reason: 'TrimmedDataAccessException',
      };
      const spec = build({ 2: [gap] });
      expect(spec.windows[2]!.manifest.complete).toBe(false);
      await writeChangelog(store, spec);
      const report = await verify();
      expect(report.violations).toEqual([]);
      expect(report.gaps).toEqual([{ window: isoTime(W(2)), ...gap }]);
    });

    it('is still a violation when the listed gap is elsewhere in the shard', async () => {
      const gap: ManifestGap = {
        shardId: SHARD_B,
        afterSequenceNumber: String(BigInt(previousLast()) - 1n),
        reason: 'TrimmedDataAccessException',
      };
      await writeChangelog(store, build({ 2: [gap] }));
      const report = await verify();
      expect(kinds(report)).toEqual(['sequence-discontinuity']);
      expect(report.gaps).toHaveLength(1);
    });
  });

  it('reports an event_id present in two segments', async () => {
    let copiedId = '';
    const spec = buildChangelogSpec({
      override: (w, shardId) =>
        w === 0 && shardId === SHARD_A
          ? {
              mapRecords: (records) => {
                copiedId = records[3]!.eventID;
              },
            }
          : w === 2 && shardId === SHARD_B
            ? {
                mapRecords: (records) => {
                  records[5]!.eventID = copiedId;
                },
              }
            : undefined,
    });
    await writeChangelog(store, spec);
    const report = await verify();
    expect(kinds(report)).toEqual(['duplicate-event-id']);
    expect(report.violations[0]!.key).toBe(spec.windows[2]!.segments[0]!.key);
    expect(report.violations[0]!.message).toContain(
      `already in segment ${spec.windows[0]!.segments[0]!.key}`,
    );
    expect(report.violations[0]!.message).toContain(copiedId);
  });

  describe('record counts', () => {
    it('reports a segment whose Parquet file holds another number of rows than listed', async () => {
      const spec = buildChangelogSpec();
      const segment = spec.windows[1]!.manifest.segments[0]!;
      segment.records += 1;
      segment.shards[0]!.records += 1;
      spec.windows[1]!.manifest.recordCount += 1;
      await writeChangelog(store, spec);
      const report = await verify();
      expect(kinds(report)).toEqual(['record-count', 'record-count']);
      expect(report.violations.map((v) => v.message)).toEqual([
        `segment ${segment.key} has 12 rows in the Parquet file, the manifest says 13`,
        `segment ${segment.key}, shard ${segment.shards[0]!.shardId}: 12 rows in the file, the manifest says 13`,
      ]);
      expect(report.records).toBe(73);
    });

    it('reports a manifest recordCount that is not the sum of its segments', async () => {
      const spec = buildChangelogSpec();
      spec.windows[0]!.manifest.recordCount = 20;
      await writeChangelog(store, spec);
      const report = await verify();
      expect(kinds(report)).toEqual(['record-count']);
      expect(report.violations[0]!.message).toMatch(/has recordCount 20, but its segments list 24 records/);
    });

    it('reports shard entries that do not add up to the segment', async () => {
      const spec = buildChangelogSpec();
      const segment = spec.windows[2]!.manifest.segments[0]!;
      segment.shards[1]!.records -= 1;
      await writeChangelog(store, spec);
      const report = await verify();
      expect(kinds(report)).toEqual(['record-count', 'record-count']);
      expect(report.violations[0]!.message).toMatch(/lists 24 records, but its shard entries add up to 23/);
    });
  });

  it('reports a shard range that differs from the rows in the file', async () => {
    const spec = buildChangelogSpec();
    const { entry } = shardEntry(spec, 2, SHARD_A);
    entry.lastSequenceNumber = String(BigInt(entry.lastSequenceNumber) + 1n);
    await writeChangelog(store, spec);
    const report = await verify();
    expect(kinds(report)).toEqual(['shard-range']);
    expect(report.violations[0]).toMatchObject({ shardId: SHARD_A });
  });

  it('reports a window with no manifest between two sealed ones', async () => {
    // Window 1 has no changes, so shard ranges chain from window 0 to 2: only the manifest is missing.
    const spec = buildChangelogSpec({ layout: [[[SHARD_A, SHARD_B]], [], [[SHARD_A, SHARD_B]]] });
    await writeChangelog(store, spec);
    expect((await verify()).violations).toEqual([]);

    await store.delete([manifestObjectKey(TABLE, W(1))]);
    const report = await verify();
    expect(kinds(report)).toEqual(['missing-window']);
    expect(report.violations[0]!.window).toBe(isoTime(W(1)));
    expect(report.windows).toBe(2);
  });

  it('reports a complete flag that disagrees with the gaps', async () => {
    const spec = buildChangelogSpec();
    spec.windows[0]!.manifest.complete = false;
    spec.windows[1]!.manifest.gaps = [
      { shardId: 'shardId-other', afterSequenceNumber: 'TRIM_HORIZON', reason: 'TrimmedDataAccessException' },
    ];
    await writeChangelog(store, spec);
    const report = await verify();
    expect(kinds(report)).toEqual(['complete-flag', 'complete-flag']);
    expect(report.violations.map((v) => v.window)).toEqual([isoTime(W(0)), isoTime(W(1))]);
    expect(report.violations[1]!.message).toMatch(/says complete=true but lists 1 gap/);
    expect(report.gaps).toHaveLength(1);
  });

  it('counts late records and checks them against the rows', async () => {
    const lateBy = (records: { dynamodb: { ApproximateCreationDateTime: number } }[]) => {
      records[0]!.dynamodb.ApproximateCreationDateTime = W(1) / 1000 - 30;
      records[1]!.dynamodb.ApproximateCreationDateTime = W(1) / 1000 - 90;
    };
    const spec = buildChangelogSpec({
      override: (w, shardId) => (w === 1 && shardId === SHARD_A ? { mapRecords: lateBy } : undefined),
    });
    const segment = shardEntry(spec, 1, SHARD_A).segment;
    expect(segment.lateRecords).toBe(2);
    segment.lateRecords = 1;
    spec.windows[1]!.manifest.lateRecordCount = 1;
    await writeChangelog(store, spec);
    const report = await verify();
    expect(report.lateRecords).toBe(1);
    expect(kinds(report)).toEqual(['late-record-count']);
    expect(report.violations[0]!.message).toMatch(
      /has 2 row\(s\) with event_time before the window, the manifest says 1/,
    );
  });

  it('reports event time ranges that differ from the rows', async () => {
    const spec = buildChangelogSpec();
    spec.windows[0]!.manifest.segments[0]!.maxEventTime = isoTime(W(1) - 1);
    await writeChangelog(store, spec);
    expect(kinds(await verify())).toEqual(['event-time-range']);
  });

  it('reports a manifest that is not valid and goes on with the others', async () => {
    const spec = buildChangelogSpec();
    await writeChangelog(store, { windows: [spec.windows[0]!, spec.windows[2]!] });
    await store.putIfAbsent(manifestObjectKey(TABLE, W(1)), new TextEncoder().encode('{"formatVersion": 1}'));
    const report = await verify();
    expect(report.windows).toBe(3);
    expect(report.segments).toBe(2);
    // Window 1's ranges are unknown, so window 2 does not chain to window 0.
    expect(kinds(report)).toEqual(['manifest-invalid', 'sequence-discontinuity', 'sequence-discontinuity']);
    expect(report.violations[0]!.message).toMatch(/does not match the schema/);
  });

  it('reports a manifest whose window is not the one in its key, or of another size', async () => {
    await writeManifest(store, buildManifest(W(0), []));
    await writeSymlink(store, TABLE, W(1), buildManifest(W(5), []));
    await store.putIfAbsent(
      manifestObjectKey(TABLE, W(1)),
      new TextEncoder().encode(JSON.stringify(buildManifest(W(5), []))),
    );
    await writeManifest(store, buildManifest(W(2), [], { windowMs: 2 * WINDOW_MS }));
    const report = await verify();
    expect(kinds(report)).toEqual(['window-key-mismatch', 'window-size']);
    expect(report.violations[0]!.window).toBe(isoTime(W(1)));
  });

  it('reports a manifest of another table', async () => {
    await writeSymlink(store, TABLE, W(0), buildManifest(W(0), []));
    await store.putIfAbsent(
      manifestObjectKey(TABLE, W(0)),
      new TextEncoder().encode(JSON.stringify(buildManifest(W(0), [], { table: 'invoices' }))),
    );
    expect(kinds(await verify())).toEqual(['table-mismatch']);
  });

  it('reports a listed object that is not a change segment', async () => {
    const garbage = new TextEncoder().encode('PAR1 this is not a parquet file PAR1');
    const key = segmentObjectKey(TABLE, W(0), 's1-garbage');
    await store.putIfAbsent(key, garbage);
    const segment = {
      key,
      bytes: garbage.length,
      records: 1,
      checksum: sha256Checksum(garbage),
      minEventTime: isoTime(W(0)),
      maxEventTime: isoTime(W(0)),
      lateRecords: 0,
      shards: [
        {
          shardId: SHARD_A,
          afterSequenceNumber: 'TRIM_HORIZON',
          firstSequenceNumber: '1',
          lastSequenceNumber: '1',
          records: 1,
        },
      ],
    };
    await writeManifest(store, buildManifest(W(0), [segment]));
    const report = await verify();
    expect(kinds(report)).toEqual(['segment-unreadable']);
    expect(report.violations[0]!.message).toMatch(
      /not a readable Parquet change segment: footer length \d+ exceeds the file/,
    );
  });

  it('reports a segment listed twice and outside its window prefix', async () => {
    const spec = buildChangelogSpec({ layout: [[[SHARD_A]], [[SHARD_B]]] });
    spec.windows[1]!.manifest = buildManifest(W(1), [
      ...spec.windows[1]!.manifest.segments,
      spec.windows[0]!.manifest.segments[0]!,
    ]);
    await writeChangelog(store, spec);
    const report = await verify();
    expect(kinds(report)).toEqual(['segment-key', 'duplicate-segment', 'sequence-overlap']);
    expect(report.violations[1]!.key).toBe(spec.windows[0]!.segments[0]!.key);
  });
  describe('symlink manifests (Athena/Glue)', () => {
    const symlink = (n: number) => symlinkObjectKey(TABLE, W(n));
    const url = (key: string) => `${store.url}/${key}`;

    it('accepts each window’s symlink listing exactly its segments, and an empty one for an empty window', async () => {
      const spec = buildChangelogSpec({ layout: [[[SHARD_A, SHARD_B]], [], [[SHARD_A], [SHARD_B]]] });
      await writeChangelog(store, spec);
      expect((await verify()).violations).toEqual([]);
      expect((await store.get(symlink(1)))?.byteLength).toBe(0);
      const lines = new TextDecoder().decode(await store.get(symlink(2))).split('\n');
      expect(lines).toEqual([...spec.windows[2]!.manifest.segments.map((s) => url(s.key)).sort(), '']);
    });

    it('reports a window whose symlink manifest is missing', async () => {
      await writeChangelog(store, buildChangelogSpec());
      await store.delete([symlink(1)]);
      const report = await verify();
      expect(report.violations).toEqual([
        {
          kind: 'symlink-missing',
          message: `window ${isoTime(W(1))} has no symlink manifest at ${symlink(1)} (manifest ${manifestObjectKey(TABLE, W(1))} lists 2 segment(s))`,
          key: symlink(1),
          window: isoTime(W(1)),
        },
      ]);
    });

    it('reports a symlink manifest that lists other segments than the manifest, naming them', async () => {
      const spec = buildChangelogSpec();
      await writeChangelog(store, spec);
      // Window 1's symlink lists one of its segments and an orphan (what a plain data/ listing would add).
      const [kept, dropped] = spec.windows[1]!.manifest.segments.map((s) => s.key).sort();
      const orphan = segmentObjectKey(TABLE, W(1), 's1-orphan');
      await store.delete([symlink(1)]);
      await store.putIfAbsent(symlink(1), new TextEncoder().encode(`${url(kept!)}\n${url(orphan)}\n`));
      // Window 2's lists its one segment twice.
      const once = url(spec.windows[2]!.manifest.segments[0]!.key);
      await store.delete([symlink(2)]);
      await store.putIfAbsent(symlink(2), new TextEncoder().encode(`${once}\n${once}\n`));
      const report = await verify();
      expect(report.violations.map((v) => [v.kind, v.key, v.window])).toEqual([
        ['symlink-mismatch', symlink(1), isoTime(W(1))],
        ['symlink-mismatch', symlink(2), isoTime(W(2))],
      ]);
      expect(report.violations[0]!.message).toBe(
        `symlink manifest ${symlink(1)} does not list exactly the 2 segment(s) of manifest ${manifestObjectKey(TABLE, W(1))}: 1 segment URL(s) of the manifest missing: "${url(dropped!)}"; 1 line(s) that are no segment URL of the manifest: "${url(orphan)}"`,
      );
      expect(report.violations[1]!.message).toMatch(/: 1 line\(s\) listed more than once: ".*"$/);
    });

    it('does not check the symlink of a window whose highest manifest is version 2 or later', async () => {
      const spec = buildChangelogSpec({ layout: [[[SHARD_A, SHARD_B]]] });
      await writeChangelog(store, spec);
      await store.delete([symlink(0)]);
      expect(kinds(await verify())).toEqual(['symlink-missing']);
      await writeManifest(store, { ...spec.windows[0]!.manifest, version: 2 });
      expect((await verify()).violations).toEqual([]);
    });
  });
});
