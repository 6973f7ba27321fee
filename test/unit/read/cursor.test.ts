import { describe, expect, it } from 'vitest';
import { isoTime, manifestObjectKey } from '../../../src/changelog/layout.js';
import { type Manifest, serializeManifest } from '../../../src/changelog/manifest.js';
import { publishManifestVersion } from '../../../src/coordination/manifestPublisher.js';
import { openChangelog } from '../../../src/read/changelog.js';
import {
  type BatchPlan,
  batchWindows,
  type ChangesCursor,
  parseCursor,
  planBatch,
  REVISION_LOOKBACK_MS,
  serializeCursor,
} from '../../../src/read/cursor.js';
import { buildManifest, TABLE } from '../../helpers/changelogFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import { buildTestSegment, SHARD_1, W, writeSampleChangelog } from '../../helpers/sampleChangelog.js';
import { generateRecords } from '../../helpers/streamRecords.js';

const DESTINATION = 'memory://';
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

async function setup() {
  const store = new MemoryObjectStore();
  const sample = await writeSampleChangelog(store);
  const changelog = openChangelog({ store, table: TABLE });
  /** Every event id each batch delivered, in order. */
  const delivered: string[] = [];
  const deliver = async (plan: BatchPlan) => {
    const ids: string[] = [];
    for await (const row of changelog.rows({ sinceMs: 0, windows: batchWindows(plan) }))
      ids.push(row.eventId);
    delivered.push(...ids);
    return ids;
  };
  const plan = (
    cursor: ChangesCursor | undefined,
    nowMs: number,
    extra: { sinceMs?: number; untilMs?: number } = {},
  ) => planBatch(changelog, cursor, { destination: DESTINATION, nowMs, ...extra });
  return { store, sample, changelog, delivered, deliver, plan };
}

/** Replay-style rows for window `startMs`: a new segment of records the window did not have. */
function replaySegment(startMs: number, seq: bigint) {
  const records = generateRecords({
    records: 5,
    seed: 99,
    startSequence: seq,
    startTimeSeconds: startMs / 1000 + 1,
  });
  for (const r of records) r.eventID = `replayed-${r.dynamodb.SequenceNumber}`;
  return buildTestSegment({ windowStartMs: startMs, parts: [{ shardId: SHARD_1, records }] });
}

describe('planBatch (the incremental cursor)', () => {
  it('delivers sealed windows in order, stops at a hole, and never repeats a window', async () => {
    const { sample, deliver, plan, store } = await setup();
    const first = await plan(undefined, T0, { sinceMs: W(0) + 30_000 });
    expect(first.parts.map((p) => [p.window.windowStartMs, p.reason])).toEqual(
      [0, 1, 2, 3, 4].map((i) => [W(i), 'new']),
    );
    expect(first.fromMs).toBe(W(0)); // since rounds down to its window
    expect(first.throughMs).toBe(W(5));
    expect(first.stoppedAtHole).toEqual(sample.hole);
    expect(first.incomplete.map((w) => w.windowStartMs)).toEqual([W(4)]);
    expect(first.next).toMatchObject({ deliveredThrough: isoTime(W(5)), batch: 1, windowMs: 60_000 });
    // w1 and w2 were delivered at versions above 1: remembered.
    expect(first.next!.versions).toEqual({ [isoTime(W(1))]: 2, [isoTime(W(2))]: 10 });
    const ids1 = await deliver(first);
    const expected = sample.windows.slice(0, 5).flatMap((w) => w.highest.rows.map((r) => r.eventId));
    expect(ids1).toEqual(expected);
    // The late records (dated in w1) come once, with w3 that holds them.
    for (const id of sample.lateEventIds) expect(ids1.filter((x) => x === id)).toHaveLength(1);

    // Nothing new until the hole is sealed.
    const idle = await plan(first.next, T0 + 1000);
    expect(idle.parts).toEqual([]);
    expect(idle.next!.deliveredThrough).toBe(isoTime(W(5)));

    // The hole is sealed (an empty window): the batch takes it and the window after it.
    await store.putIfAbsent(manifestObjectKey(TABLE, W(5)), serializeManifest(buildManifest(W(5), [])));
    const third = await plan(idle.next, T0 + 2000);
    expect(third.parts.map((p) => p.window.windowStartMs)).toEqual([W(5), W(6)]);
    expect(third.next!.deliveredThrough).toBe(isoTime(W(7)));
    expect(await deliver(third)).toEqual(sample.windows[5]!.highest.rows.map((r) => r.eventId));
  });

  it('delivers exactly the rows a replay adds to a delivered window, and nothing for a compaction', async () => {
    const { sample, deliver, plan, store, delivered } = await setup();
    const first = await plan(undefined, T0, { sinceMs: W(0) });
    await deliver(first);

    // A replay fills w0 (version 2): its segments stay, one segment is added. The revision is
    // stamped before the cursor's revisionsThrough (a slow publisher): the lookback still finds it.
    const w0 = sample.windows[0]!.highest.manifest;
    const added = replaySegment(W(0), 300_000_000_000_000_000_000n);
    const v2: Manifest = {
      ...w0,
      version: 2,
      recordCount: w0.recordCount + added.entry.records,
      segments: [...w0.segments, { ...added.entry, addedInVersion: 2 }],
    };
    await store.putIfAbsent(added.key, added.bytes);
    await publishManifestVersion(store, v2, { reason: 'replay', publishedAtMs: T0 - 60_000 });

    const second = await plan(first.next, T0 + 1000);
    expect(second.parts.map((p) => [p.window.windowStartMs, p.reason, p.segments.map((s) => s.key)])).toEqual(
      [[W(0), 'rewritten', [added.key]]],
    );
    expect(second.next!.versions[isoTime(W(0))]).toBe(2);
    expect(await deliver(second)).toEqual(added.rows.map((r) => r.eventId));

    // A compaction of w0 (version 3): the same rows in other files, addedInVersion kept.
    const original = sample.windows[0]!.highest.segments[0]!;
    const v3: Manifest = { ...v2, version: 3 };
    await publishManifestVersion(store, v3, { reason: 'compact', publishedAtMs: T0 + 1500 });
    const third = await plan(second.next, T0 + 2000);
    expect(third.parts).toEqual([]);
    expect(third.next!.versions[isoTime(W(0))]).toBe(3);
    expect(original.key).toBeDefined();

    // Listing the same revisions again (they are inside the lookback) delivers nothing twice.
    const fourth = await plan(third.next, T0 + 3000);
    expect(fourth.parts).toEqual([]);

    // Exactly once over all batches.
    expect(new Set(delivered).size).toBe(delivered.length);
  });

  it('reads a window rewritten before it was delivered whole, at its highest version', async () => {
    const { sample, plan, store, deliver } = await setup();
    const first = await plan(undefined, T0, { sinceMs: W(0), untilMs: W(3) });
    expect(first.parts.map((p) => p.window.windowStartMs)).toEqual([W(0), W(1), W(2)]);
    await deliver(first);
    const w3 = sample.windows[3]!.highest.manifest;
    const added = replaySegment(W(3), 300_000_000_000_000_500_000n);
    await store.putIfAbsent(added.key, added.bytes);
    await publishManifestVersion(
      store,
      {
        ...w3,
        version: 2,
        recordCount: w3.recordCount + added.entry.records,
        segments: [...w3.segments, { ...added.entry, addedInVersion: 2 }],
      },
      { reason: 'replay', publishedAtMs: T0 + 500 },
    );
    const second = await plan(first.next, T0 + 1000);
    expect(second.parts.map((p) => [p.window.windowStartMs, p.reason, p.segments.length])).toEqual([
      [W(3), 'new', 2],
      [W(4), 'new', 1],
    ]);
    expect(second.next!.versions[isoTime(W(3))]).toBe(2);
    const ids = await deliver(second);
    expect(ids).toEqual(expect.arrayContaining(added.rows.map((r) => r.eventId)));
    // And the revision is not applied a second time.
    expect((await plan(second.next, T0 + 2000)).parts).toEqual([]);
  });

  it('starts at the first sealed window without --since, and writes no cursor while nothing is sealed', async () => {
    const { plan } = await setup();
    const first = await plan(undefined, T0);
    expect(first.fromMs).toBe(W(0));
    const empty = openChangelog({ store: new MemoryObjectStore(), table: TABLE });
    const none = await planBatch(empty, undefined, { destination: DESTINATION, nowMs: T0 });
    expect(none.parts).toEqual([]);
    expect(none.next).toBeUndefined();
  });

  it('refuses a cursor of another table or destination, naming both', async () => {
    const { plan, changelog } = await setup();
    const first = await plan(undefined, T0, { sinceMs: W(0) });
    await expect(
      planBatch(changelog, { ...first.next!, table: 'other' }, { destination: DESTINATION }),
    ).rejects.toThrow('cursor belongs to table other at memory://, not to table orders at memory://');
    await expect(planBatch(changelog, first.next!, { destination: 's3://bucket/elsewhere' })).rejects.toThrow(
      /not to table orders at s3:\/\/bucket\/elsewhere/,
    );
    await expect(
      planBatch(changelog, { ...first.next!, windowMs: 300_000 }, { destination: DESTINATION }),
    ).rejects.toThrow(/made for 300000 ms windows/);
  });

  it('round-trips through its JSON form and names the file and field of a bad one', async () => {
    const { plan } = await setup();
    const { next } = await plan(undefined, T0, { sinceMs: W(0) });
    expect(parseCursor(serializeCursor(next!), 'c.json')).toEqual(next);
    const bad = new TextEncoder().encode(JSON.stringify({ ...next, deliveredThrough: 'yesterday' }));
    expect(() => parseCursor(bad, 'c.json')).toThrow(
      /cursor c\.json does not match the schema: deliveredThrough/,
    );
    expect(REVISION_LOOKBACK_MS).toBeGreaterThanOrEqual(60_000);
  });
});
