import { beforeAll, describe, expect, it } from 'vitest';
import { manifestObjectKey } from '../../../src/changelog/layout.js';
import { serializeManifest } from '../../../src/changelog/manifest.js';
import { sha256Checksum } from '../../../src/coordination/objectStore.js';
import { type ChangelogSegment, openChangelog, type SealedWindow } from '../../../src/read/changelog.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { buildManifest, TABLE, WINDOW_MS } from '../../helpers/changelogFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import {
  collect,
  SAMPLE_GAP,
  type SampleChangelog,
  W,
  writeSampleChangelog,
} from '../../helpers/sampleChangelog.js';

/** A copy of the sample's store, for tests that damage it. */
function copyOf(store: MemoryObjectStore): MemoryObjectStore {
  const copy = new MemoryObjectStore();
  for (const [key, object] of store.objects) copy.objects.set(key, { ...object });
  return copy;
}

async function failure(promise: Promise<unknown>): Promise<ChangelogError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ChangelogError);
  return error as ChangelogError;
}

describe('openChangelog', () => {
  let store: MemoryObjectStore;
  let sample: SampleChangelog;
  const changelog = () => openChangelog({ store, table: TABLE });
  const starts = async (sinceMs: number, untilMs?: number) =>
    (await collect(changelog().windows({ sinceMs, untilMs }))).map((w) => w.windowStartMs);

  beforeAll(async () => {
    store = new MemoryObjectStore();
    sample = await writeSampleChangelog(store);
  });

  it('lists each sealed window once, at its highest version: v2 over v1, v10 over v9', async () => {
    const windows = await collect(changelog().windows({ sinceMs: W(0) }));
    expect(windows.map((w) => [w.windowStartMs, w.version])).toEqual([
      [W(0), 1],
      [W(1), 2],
      [W(2), 10],
      [W(3), 1],
      [W(4), 1],
      [W(6), 1],
    ]);
    for (const [i, window] of windows.entries()) {
      const expected = sample.windows[i]!.highest;
      expect(window).toEqual({
        windowStartMs: sample.windows[i]!.startMs,
        windowEndMs: sample.windows[i]!.startMs + WINDOW_MS,
        version: expected.version,
        manifestKey: expected.manifestKey,
        manifest: expected.manifest,
      } satisfies SealedWindow);
    }
  });

  it('rounds since down to its window and keeps until exclusive', async () => {
    // Inside w1: w1 is read whole, so no change at or after since is left out.
    expect(await starts(W(1) + 1)).toEqual([W(1), W(2), W(3), W(4), W(6)]);
    expect(await starts(W(2) - 1, W(3))).toEqual([W(1), W(2)]);
    // At a window boundary nothing before it is read.
    expect(await starts(W(2), W(4))).toEqual([W(2), W(3)]);
    expect(await starts(W(2), W(4) + 1)).toEqual([W(2), W(3), W(4)]);
    // Inside the hole: the window holding since is not sealed; reading starts after it.
    expect(await starts(W(5) + 30_000)).toEqual([W(6)]);
    // Before the first sealed window, and after the last.
    expect(await starts(W(0) - 5 * WINDOW_MS)).toEqual([W(0), W(1), W(2), W(3), W(4), W(6)]);
    expect(await starts(W(6) + WINDOW_MS)).toEqual([]);
    expect(await starts(W(6) + WINDOW_MS - 1)).toEqual([W(6)]);
  });

  it('refuses a range that is not one', async () => {
    await expect(collect(changelog().windows({ sinceMs: W(2), untilMs: W(2) }))).rejects.toThrow(
      'until 2026-11-22T10:02:00.000Z must be a time after since 2026-11-22T10:02:00.000Z',
    );
    await expect(collect(changelog().windows({ sinceMs: Number.NaN }))).rejects.toThrow(
      /since NaN is not a time/,
    );
    expect(() => openChangelog({ store, table: 'a/b' })).toThrow(/invalid table name/);
  });

  it('hands out the rows of the highest versions: windows in order, segments in manifest order', async () => {
    const rows = await collect(changelog().rows({ sinceMs: W(0) }));
    expect(rows).toEqual(sample.windows.flatMap((w) => w.highest.rows));
    // v10 of w2 is the uncompressed segment; v1 and v9 hold the same records in other files.
    const w2 = rows.filter((r) => r.windowStartMs === W(2));
    expect(new Set(w2.map((r) => r.segmentKey))).toEqual(
      new Set([sample.windows[2]!.highest.segments[0]!.key]),
    );
    expect(sample.windows[2]!.versions[0]!.segments[0]!.key).not.toBe(
      sample.windows[2]!.highest.segments[0]!.key,
    );
  });

  it('gives late rows from the window that holds them, not by their event time', async () => {
    const late = new Set(sample.lateEventIds);
    // Dated in w1, committed in w3: reading w1 does not give them, reading w3 does.
    const w1 = await collect(changelog().rows({ sinceMs: W(1), untilMs: W(2) }));
    expect(w1.filter((r) => late.has(r.eventId))).toEqual([]);
    const w3 = await collect(changelog().rows({ sinceMs: W(3), untilMs: W(4) }));
    const lateRows = w3.filter((r) => late.has(r.eventId));
    expect(lateRows).toHaveLength(sample.lateEventIds.length);
    for (const row of lateRows) {
      expect(row.windowStartMs).toBe(W(3));
      expect(row.eventTimeMs).toBeGreaterThanOrEqual(W(1));
      expect(row.eventTimeMs).toBeLessThan(W(2));
    }
    // Consecutive ranges give every row exactly once.
    const pieces = [
      ...(await collect(changelog().rows({ sinceMs: W(0), untilMs: W(2) }))),
      ...(await collect(changelog().rows({ sinceMs: W(2), untilMs: W(4) }))),
      ...(await collect(changelog().rows({ sinceMs: W(4) }))),
    ];
    expect(pieces).toEqual(await collect(changelog().rows({ sinceMs: W(0) })));
  });

  it('reads the windows it is given instead of listing the range', async () => {
    const windows = (await collect(changelog().windows({ sinceMs: W(0) }))).filter(
      (w) => w.windowStartMs !== W(1),
    );
    const rows = await collect(changelog().rows({ sinceMs: 0, windows }));
    expect(rows).toEqual(sample.windows.filter((w) => w.startMs !== W(1)).flatMap((w) => w.highest.rows));
  });

  it('lists the segments of the range, each once, with their window', async () => {
    const segments = await collect(changelog().segmentsOf({ sinceMs: W(1), untilMs: W(3) }));
    const expected = sample.windows.slice(1, 3).flatMap((w) =>
      w.highest.segments.map(
        (s): ChangelogSegment => ({
          ...s.entry,
          windowStartMs: w.startMs,
          windowEndMs: w.startMs + WINDOW_MS,
          manifestKey: w.highest.manifestKey,
          manifestVersion: w.highest.version,
        }),
      ),
    );
    expect(segments).toEqual(expected);
  });

  it('refuses a segment listed by two windows', async () => {
    const damaged = copyOf(store);
    // w6's manifest also lists w0's segment.
    const w6 = sample.windows[5]!.highest;
    const w0Segment = sample.windows[0]!.highest.segments[0]!;
    const key = w6.manifestKey;
    damaged.objects.delete(key);
    await damaged.putIfAbsent(
      key,
      serializeManifest(buildManifest(W(6), [...w6.manifest.segments, w0Segment.entry])),
    );
    const error = await failure(
      collect(openChangelog({ store: damaged, table: TABLE }).segmentsOf({ sinceMs: W(0) })),
    );
    expect(error.message).toBe(
      `segment ${w0Segment.key} is listed by manifest ${key} and already by ${sample.windows[0]!.highest.manifestKey}: a segment belongs to one window, once`,
    );
  });

  it('names the segment and its manifest when a segment is missing, cut short or changed', async () => {
    const window = sample.windows[1]!.highest;
    const segment = window.segments[0]!;
    const read = (target: MemoryObjectStore) =>
      collect(openChangelog({ store: target, table: TABLE }).rows({ sinceMs: W(1) }));

    const missing = copyOf(store);
    missing.objects.delete(segment.key);
    const gone = await failure(read(missing));
    expect(gone.message).toBe(
      `segment ${segment.key} listed by manifest ${window.manifestKey} does not exist in memory://`,
    );
    expect(gone.context.key).toBe(segment.key);

    const short = copyOf(store);
    short.objects.set(segment.key, { body: segment.bytes.subarray(1), lastModified: new Date() });
    expect((await failure(read(short))).message).toBe(
      `segment ${segment.key} has ${segment.bytes.length - 1} bytes, but manifest ${window.manifestKey} lists ${segment.bytes.length}`,
    );

    const changed = copyOf(store);
    const body = Uint8Array.from(segment.bytes);
    body[body.length >> 1]! ^= 0xff;
    changed.objects.set(segment.key, { body, lastModified: new Date() });
    expect((await failure(read(changed))).message).toBe(
      `segment ${segment.key} has checksum ${sha256Checksum(body)}, but manifest ${window.manifestKey} lists ${segment.entry.checksum}`,
    );
  });

  it("refuses another window's manifest under a window's key, naming the key", async () => {
    const damaged = copyOf(store);
    const key = manifestObjectKey(TABLE, W(5));
    await damaged.putIfAbsent(key, serializeManifest(sample.windows[0]!.highest.manifest));
    const error = await failure(
      collect(openChangelog({ store: damaged, table: TABLE }).windows({ sinceMs: W(4) })),
    );
    expect(error.message).toBe(
      `manifest ${key} is not the manifest its key names: it has window.start 2026-11-22T10:00:00.000Z (the key's is 2026-11-22T10:05:00.000Z)`,
    );
    expect(error.context.key).toBe(key);
  });

  it('refuses windows of different sizes in one range', async () => {
    const damaged = copyOf(store);
    const key = manifestObjectKey(TABLE, W(10));
    await damaged.putIfAbsent(key, serializeManifest(buildManifest(W(10), [], { windowMs: 2 * WINDOW_MS })));
    const error = await failure(
      collect(openChangelog({ store: damaged, table: TABLE }).windows({ sinceMs: W(6) })),
    );
    expect(error.message).toBe(
      // w4 is read too: it is the last window before since, which could have held it.
      `manifest ${key} has a window of 120000 ms, but ${sample.windows[4]!.highest.manifestKey} has 60000 ms: one changelog has one window size`,
    );
  });

  it('reports how far the range is sealed: the contiguous run, holes, incomplete windows', async () => {
    const incompleteW4 = {
      windowStartMs: W(4),
      windowEndMs: W(5),
      manifestKey: sample.windows[4]!.highest.manifestKey,
      gaps: [SAMPLE_GAP],
    };
    expect(await changelog().status({ sinceMs: W(0) + 10 })).toEqual({
      windowMs: WINDOW_MS,
      firstWindowStartMs: W(0),
      completeThroughMs: W(5),
      incomplete: [incompleteW4],
      holes: [{ startMs: W(5), endMs: W(6) }],
    });
    // A range that ends before the hole has none; one that starts after it is complete to its end.
    expect(await changelog().status({ sinceMs: W(1), untilMs: W(4) })).toEqual({
      windowMs: WINDOW_MS,
      firstWindowStartMs: W(1),
      completeThroughMs: W(4),
      incomplete: [],
      holes: [],
    });
    expect(await changelog().status({ sinceMs: W(5) })).toMatchObject({
      firstWindowStartMs: W(6),
      completeThroughMs: W(7),
      holes: [],
    });
    // Nothing sealed in the range.
    expect(await changelog().status({ sinceMs: W(7) })).toEqual({
      windowMs: undefined,
      firstWindowStartMs: undefined,
      completeThroughMs: undefined,
      incomplete: [],
      holes: [],
    });
  });

  it('lists incomplete windows after a hole only up to until, when it is given', async () => {
    const damaged = copyOf(store);
    // w8: sealed after a second hole (w7), and incomplete.
    await damaged.putIfAbsent(
      manifestObjectKey(TABLE, W(8)),
      serializeManifest(buildManifest(W(8), [], { gaps: [SAMPLE_GAP] })),
    );
    const damagedLog = openChangelog({ store: damaged, table: TABLE });
    const open = await damagedLog.status({ sinceMs: W(3) });
    expect(open.completeThroughMs).toBe(W(5));
    expect(open.holes).toEqual([
      { startMs: W(5), endMs: W(6) },
      { startMs: W(7), endMs: W(8) },
    ]);
    expect(open.incomplete.map((w) => w.windowStartMs)).toEqual([W(4)]);
    const bounded = await damagedLog.status({ sinceMs: W(3), untilMs: W(9) });
    expect(bounded.incomplete.map((w) => w.windowStartMs)).toEqual([W(4), W(8)]);
  });

  it('reads one window by its start', async () => {
    expect((await changelog().window(W(2)))?.version).toBe(10);
    expect(await changelog().window(W(5))).toBeUndefined();
  });

  it('fetches at most the next 2 segments while one is decoded', async () => {
    const fetched: string[] = [];
    const watched = copyOf(store);
    const get = watched.get.bind(watched);
    watched.get = async (key: string) => {
      if (key.includes('/data/')) fetched.push(key);
      return get(key);
    };
    const segments = sample.windows.flatMap((w) => w.highest.segments.map((s) => s.key));
    expect(segments.length).toBeGreaterThan(4);
    const rows = openChangelog({ store: watched, table: TABLE })
      .rows({ sinceMs: W(0) })
      [Symbol.asyncIterator]();
    // While the first segment's rows come, the next two are fetched, no more.
    for (let i = 0; i < 3; i++) await rows.next();
    expect(fetched).toEqual(segments.slice(0, 3));
    // Stopping early is clean: nothing more is fetched.
    await rows.return?.();
    expect(fetched).toEqual(segments.slice(0, 3));
  });

  it('stops on the signal', async () => {
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    await expect(collect(changelog().rows({ sinceMs: W(0), signal: controller.signal }))).rejects.toThrow(
      'cancelled',
    );
    const later = new AbortController();
    const rows = changelog()
      .rows({ sinceMs: W(0), signal: later.signal })
      [Symbol.asyncIterator]();
    await rows.next();
    later.abort(new Error('stopped mid-way'));
    await expect(collect({ [Symbol.asyncIterator]: () => rows })).rejects.toThrow('stopped mid-way');
  });
});
