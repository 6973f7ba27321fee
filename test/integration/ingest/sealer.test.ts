import { afterEach, describe, expect, it } from 'vitest';
import {
  DAY_MS,
  isoTime,
  manifestObjectKey,
  manifestPrefix,
  symlinkObjectKey,
  symlinkPrefix,
  windowDataPrefix,
  windowStartOf,
} from '../../../src/changelog/layout.js';
import { parseManifest } from '../../../src/changelog/manifest.js';
import type { LeaseStore } from '../../../src/coordination/leaseStore.js';
import type { ObjectStore } from '../../../src/coordination/objectStore.js';
import { combineObservers, type WindowSealed } from '../../../src/coordination/pipelineObserver.js';
import type { SegmentRecord } from '../../../src/coordination/registryStore.js';
import { Sealer, type SealerOptions } from '../../../src/ingest/sealer.js';
import { ChangelogError } from '../../../src/support/errors.js';
import {
  type CommitEnv,
  capturingLogger,
  createCommitEnv,
  dataKeys,
  FaultyStore,
  type FlatSettings,
  makeCommitter,
  objectsPage,
  recordRun,
  reopenSession,
  seq,
  setObjectTime,
  shardName,
  TEST_SETTINGS,
  takeSession,
  W,
  WINDOW_MS,
  waitUntil,
  withSettings,
} from '../../helpers/commitFixtures.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * The Sealer on DynamoDB Local with a local object store: segments are committed by the real
 * SegmentCommitter, the watermark comes from the real shard leases, and the sealer's state moves
 * are the real fenced transactions.
 */

const db = useDynamoDbLocal();
const A = shardName(1);
const B = shardName(2);
/** The sealer's wall clock (closedAt stamps, orphan ages). */
const WALL = W(10);
const HOUR = 3_600_000;

const envs: CommitEnv[] = [];
async function env(shards: string[]): Promise<CommitEnv> {
  const e = await createCommitEnv(db().client, shards);
  envs.push(e);
  return e;
}
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
});

interface SealerUnderTest {
  sealer: Sealer;
  seals: WindowSealed[];
  /** Takes the sealer lease (as run() does first) and fails if it could not. */
  lead(): Promise<void>;
  manageLease(): Promise<void>;
}

function makeSealer(
  e: CommitEnv,
  workerId: string,
  overrides: Partial<SealerOptions> & FlatSettings & { store?: ObjectStore } = {},
): SealerUnderTest {
  const seals: WindowSealed[] = [];
  const leases = e.leasesFor(workerId);
  const sealer = new Sealer(
    withSettings(
      {
        workerId,
        table: e.table,
        streamArn: e.streamArn,
        registry: e.registry,
        listLeases: (signal?: AbortSignal) => leases.listLeases(signal),
        store: e.store,
        wallNow: () => WALL,
        intervalMs: 20,
        ...overrides,
        observer: combineObservers({ windowSealed: (event) => seals.push(event) }, overrides.observer),
      },
      { ...TEST_SETTINGS, orphanGraceMs: HOUR },
    ),
  );
  const manageLease = () =>
    (sealer as unknown as { manageLease(signal: AbortSignal): Promise<void> }).manageLease(
      new AbortController().signal,
    );
  return {
    sealer,
    seals,
    manageLease,
    async lead() {
      await manageLease();
      expect(sealer.isLeader).toBe(true);
    },
  };
}

/** Reports a shard caught up at `atMs` (what a renew with the committer's progress writes). */
async function caughtUp(leases: LeaseStore, shardId: string, atMs: number): Promise<void> {
  const lease = await leases.getLease(shardId);
  await leases.renew(lease!, undefined, { caughtUpAtMs: atMs });
}

async function manifestKeys(store: ObjectStore, table: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(manifestPrefix(table))) keys.push(o.key);
  return keys;
}

async function symlinkKeys(store: ObjectStore, table: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(symlinkPrefix(table))) keys.push(o.key);
  return keys;
}

/** The lines of a window's symlink manifest (every line ends with a newline). */
async function symlinkLines(store: ObjectStore, table: string, startMs: number): Promise<string[]> {
  const bytes = await store.get(symlinkObjectKey(table, startMs));
  if (!bytes) throw new Error(`no symlink manifest for ${isoTime(startMs)}`);
  const text = new TextDecoder().decode(bytes);
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

async function readManifest(store: ObjectStore, table: string, startMs: number) {
  const key = manifestObjectKey(table, startMs);
  const bytes = await store.get(key);
  if (!bytes) throw new Error(`no manifest for ${isoTime(startMs)}`);
  return { bytes, manifest: parseManifest(bytes, key) };
}

/**
 * Commits, with one segment per shard (maxShardsPerSegment 1): window 0 gets A(1..3) and B(1..2),
 * window 2 gets A(4..5) and B(3); window 1 stays empty. Both shards then report being caught up
 * at `caughtUpAtMs`.
 */
async function commitTwoWindows(e: CommitEnv, caughtUpAtMs: number) {
  const { committer, commits, leases } = makeCommitter(e, 'worker-a', { maxShardsPerSegment: 1 });
  const sa = await takeSession(leases, A);
  const sb = await takeSession(leases, B);
  committer.open(sa);
  committer.open(sb);
  await committer.accept(
    sa,
    objectsPage(
      A,
      recordRun(1, 1, 3, (n) => W(0) + n * 1000),
    ),
  );
  await committer.accept(
    sb,
    objectsPage(
      B,
      recordRun(2, 1, 2, (n) => W(0) + n * 1000),
    ),
  );
  await committer.accept(
    sa,
    objectsPage(
      A,
      recordRun(1, 4, 5, (n) => W(2) + n * 1000),
    ),
  );
  await committer.accept(
    sb,
    objectsPage(
      B,
      recordRun(2, 3, 3, (n) => W(2) + n * 1000),
    ),
  );
  await committer.drain();
  expect(commits).toHaveLength(4);
  await caughtUp(leases, A, caughtUpAtMs);
  await caughtUp(leases, B, caughtUpAtMs);
  return { commits, leases };
}

describe('Sealer on DynamoDB Local', () => {
  it('seals closed windows: manifests list exactly the registered segments; empty windows before the first data get none', async () => {
    const e = await env([A, B]);
    const { commits } = await commitTwoWindows(e, W(3) + 30_000);
    const s = makeSealer(e, 'sealer-1');
    await s.lead();

    await s.sealer.cycle();

    // The watermark (min over shards of their progress) is published.
    expect(await e.registry.getWatermark()).toBe(W(3) + 30_000);
    const state = await e.registry.getState();
    expect(state).toMatchObject({
      windowMs: WINDOW_MS,
      closedThroughMs: W(3),
      sealedThroughMs: W(3),
      closedAtMs: WALL,
      firstManifestMs: W(0),
      gcThroughMs: W(3),
    });
    expect(await manifestKeys(e.store, e.table)).toEqual(
      [0, 1, 2].map((n) => manifestObjectKey(e.table, W(n))),
    );
    expect(s.seals.map((x) => [x.windowStartMs, x.records, x.segments])).toEqual([
      [W(0), 5, 2],
      [W(1), 0, 0],
      [W(2), 3, 2],
    ]);

    const { segments: registered } = await e.registry.queryRange(W(0), W(3));
    const w0 = (await readManifest(e.store, e.table, W(0))).manifest;
    expect(w0).toMatchObject({
      formatVersion: 1,
      table: e.table,
      streamArn: e.streamArn,
      window: { start: isoTime(W(0)), end: isoTime(W(1)) },
      sealedAt: isoTime(state!.closedAtMs),
      version: 1,
      complete: true,
      recordCount: 5,
      lateRecordCount: 0,
      gaps: [],
    });
    const inW0 = registered.filter((r) => r.windowStartMs === W(0));
    expect(w0.segments.map((x) => x.key).sort()).toEqual(inW0.map((r) => r.key).sort());
    for (const seg of w0.segments) {
      const r = inW0.find((x) => x.key === seg.key)!;
      expect(seg).toEqual({
        key: r.key,
        bytes: r.bytes,
        records: r.records,
        checksum: r.checksum,
        minEventTime: isoTime(r.minEventTimeMs),
        maxEventTime: isoTime(r.maxEventTimeMs),
        lateRecords: r.lateRecords,
        shards: r.shards,
      });
      expect((await e.store.head(seg.key))?.checksum).toBe(seg.checksum);
    }
    // The empty window after the first data gets a manifest saying so.
    const w1 = (await readManifest(e.store, e.table, W(1))).manifest;
    expect(w1).toMatchObject({ recordCount: 0, segments: [], gaps: [], complete: true });
    const w2 = (await readManifest(e.store, e.table, W(2))).manifest;
    expect(w2.recordCount).toBe(3);
    expect(
      w2.segments.flatMap((x) => x.shards.map((h) => [h.shardId, h.afterSequenceNumber])).sort(),
    ).toEqual(
      [
        [A, seq(1, 3)],
        [B, seq(2, 2)],
      ].sort(),
    );
    // Every committed record is in exactly one manifest.
    const listed = [w0, w1, w2].flatMap((m) => m.segments.map((x) => x.key));
    expect(listed.sort()).toEqual(commits.map((c) => c.key).sort());
    // Each sealed window's symlink manifest lists the file URLs of exactly its manifest's segments,
    // in the manifest's order; the empty window's is empty.
    expect(await symlinkKeys(e.store, e.table)).toEqual(
      [0, 1, 2].map((n) => symlinkObjectKey(e.table, W(n))),
    );
    for (const [n, m] of [w0, w1, w2].entries()) {
      expect(await symlinkLines(e.store, e.table, W(n))).toEqual(
        m.segments.map((x) => `${e.store.url}/${x.key}`),
      );
    }
    expect(await symlinkLines(e.store, e.table, W(1))).toEqual([]);
    expect(new URL((await symlinkLines(e.store, e.table, W(0)))[0]!).protocol).toBe('file:');

    // After the close, a shard's rows of a closed window go to the first open one, as late rows.
    const later = makeCommitter(e, 'worker-a');
    const sb = await reopenSession(later.leases, B);
    later.committer.open(sb);
    await later.committer.accept(sb, objectsPage(B, [{ seq: seq(2, 4), timeMs: W(2) + 50_000 }]));
    await later.committer.drain();
    expect(later.commits.map((c) => [c.windowStartMs, c.lateRecords])).toEqual([[W(3), 1]]);
  });

  it('is idempotent: a second cycle and a second sealer write nothing new and fail nothing', async () => {
    const e = await env([A, B]);
    await commitTwoWindows(e, W(3) + 30_000);
    const s1 = makeSealer(e, 'sealer-1');
    await s1.lead();
    await s1.sealer.cycle();
    const before = await Promise.all([0, 1, 2].map((n) => readManifest(e.store, e.table, W(n))));
    const state = await e.registry.getState();

    await s1.sealer.cycle();
    expect(s1.seals).toHaveLength(3);
    expect(await e.registry.getState()).toEqual(state);

    // A second sealer (after the first released its lease) with another wall clock.
    await s1.sealer.run(AbortSignal.abort()); // run's finally releases the lease
    expect(s1.sealer.isLeader).toBe(false);
    const s2 = makeSealer(e, 'sealer-2', { wallNow: () => WALL + 7 * HOUR });
    await s2.lead();
    await s2.sealer.cycle();
    expect(s2.seals).toEqual([]);
    expect(await manifestKeys(e.store, e.table)).toHaveLength(3);
    const after = await Promise.all([0, 1, 2].map((n) => readManifest(e.store, e.table, W(n))));
    for (let i = 0; i < 3; i++) expect(Buffer.from(after[i]!.bytes)).toEqual(Buffer.from(before[i]!.bytes));
    expect(await e.registry.getState()).toEqual(state);
  });

  it('re-seals after a crash between the manifest write and the state move: same bytes, same sealedAt', async () => {
    const e = await env([A, B]);
    await commitTwoWindows(e, W(3) + 30_000);
    const store = new FaultyStore(e.store);
    // The first manifest write lands, but the sealer dies before it moves the state.
    let lost = false;
    store.loseAnswerOf = (key) => {
      if (lost || !key.includes('/manifests/')) return false;
      lost = true;
      return true;
    };
    const s1 = makeSealer(e, 'sealer-1', { store });
    await s1.lead();
    await expect(s1.sealer.cycle()).rejects.toThrow(/connection reset after the write/);
    const crashed = await e.registry.getState();
    expect(crashed!.closedThroughMs).toBe(W(3));
    expect(crashed!.sealedThroughMs).toBeLessThan(W(1));
    expect(await manifestKeys(e.store, e.table)).toEqual([manifestObjectKey(e.table, W(0))]);
    const first = await readManifest(e.store, e.table, W(0));

    // Another sealer takes the lease once it stopped moving, with another wall clock.
    let clock2 = 0;
    const s2 = makeSealer(e, 'sealer-2', {
      store,
      now: () => clock2,
      wallNow: () => WALL + 5 * HOUR,
      failoverMs: 1000,
    });
    await s2.manageLease();
    expect(s2.sealer.isLeader).toBe(false); // observed alive
    clock2 += 1000;
    await s2.lead();
    await s2.sealer.cycle();

    expect(store.puts.filter((p) => p.key.includes('/manifests/')).map((p) => p.outcome)).toEqual([
      'lost',
      'exists',
      'created',
      'created',
    ]);
    // Each symlink manifest went just before its manifest; the re-seal found window 0's in place.
    expect(store.puts.filter((p) => !p.key.includes('/data/'))).toEqual([
      { key: symlinkObjectKey(e.table, W(0)), outcome: 'created' },
      { key: manifestObjectKey(e.table, W(0)), outcome: 'lost' },
      { key: symlinkObjectKey(e.table, W(0)), outcome: 'exists' },
      { key: manifestObjectKey(e.table, W(0)), outcome: 'exists' },
      { key: symlinkObjectKey(e.table, W(1)), outcome: 'created' },
      { key: manifestObjectKey(e.table, W(1)), outcome: 'created' },
      { key: symlinkObjectKey(e.table, W(2)), outcome: 'created' },
      { key: manifestObjectKey(e.table, W(2)), outcome: 'created' },
    ]);
    const again = await readManifest(e.store, e.table, W(0));
    expect(Buffer.from(again.bytes)).toEqual(Buffer.from(first.bytes));
    expect(again.manifest.sealedAt).toBe(isoTime(WALL)); // when it was closed, not re-sealed
    expect((await readManifest(e.store, e.table, W(2))).manifest.sealedAt).toBe(isoTime(WALL));
    expect(await e.registry.getState()).toMatchObject({ sealedThroughMs: W(3), closedThroughMs: W(3) });
  });

  it('refuses to seal a window whose segments of a shard are not contiguous, and logs why', async () => {
    const e = await env([A]);
    const { committer, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, (n) => W(0) + n * 1000),
      ),
    );
    await committer.drain();
    await caughtUp(leases, A, W(2) + 1000);
    // Window 1 holds two segments of a shard X whose ranges do not chain (a hole after 5).
    const bad = (first: number, last: number, after: string): SegmentRecord => ({
      windowStartMs: W(1),
      segmentId: `s1-bad-${first}`,
      commitId: `commit-bad-${first}`,
      key: `${windowDataPrefix(e.table, W(1))}s1-bad-${first}.parquet`,
      bytes: 100,
      records: last - first + 1,
      checksum: `sha256:${'0'.repeat(64)}`,
      minEventTimeMs: W(1),
      maxEventTimeMs: W(1) + 1000,
      lateRecords: 0,
      shards: [
        {
          shardId: 'shard-x',
          afterSequenceNumber: after,
          firstSequenceNumber: seq(9, first),
          lastSequenceNumber: seq(9, last),
          records: last - first + 1,
        },
      ],
      streamArn: e.streamArn,
      workerId: 'worker-z',
    });
    await e.registry.transact([e.registry.segmentPut(bad(1, 5, 'TRIM_HORIZON'))]);
    await e.registry.transact([e.registry.segmentPut(bad(8, 9, seq(9, 7)))]);

    const logger = capturingLogger();
    const s = makeSealer(e, 'sealer-1', { logger });
    await s.lead();
    const failure = await s.sealer.cycle().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ChangelogError);
    expect((failure as ChangelogError).retriable).toBe(false);
    expect(String(failure)).toMatch(
      /refusing to seal window 20260115T100100Z: shard shard-x is not contiguous/,
    );
    // Window 0 was sealed, window 1 was not (not even its symlink manifest); the state says so.
    expect(await manifestKeys(e.store, e.table)).toEqual([manifestObjectKey(e.table, W(0))]);
    expect(await symlinkKeys(e.store, e.table)).toEqual([symlinkObjectKey(e.table, W(0))]);
    expect(await e.registry.getState()).toMatchObject({ closedThroughMs: W(2), sealedThroughMs: W(1) });

    // The running sealer logs the refusal every cycle and writes nothing.
    const controller = new AbortController();
    const running = s.sealer.run(controller.signal);
    await waitUntil(
      () =>
        logger.lines.some((l) => l.level === 'error' && /not contiguous/.test(String(l.details['error']))),
      'the refusal to be logged',
    );
    controller.abort();
    await running;
    expect(await manifestKeys(e.store, e.table)).toEqual([manifestObjectKey(e.table, W(0))]);
    expect((await e.registry.getState())?.sealedThroughMs).toBe(W(1));
  });

  it('deletes orphans of sealed windows older than the grace period, keeps younger ones and unsealed windows', async () => {
    const e = await env([A, B]);
    const { commits } = await commitTwoWindows(e, W(3) + 30_000);
    const orphan = (n: number, name: string) => `${windowDataPrefix(e.table, W(n))}${name}.parquet`;
    const orphans = {
      early: orphan(-1, 'orphan-early'), // an empty window before the first manifest
      old: orphan(0, 'orphan-old'),
      young: orphan(0, 'orphan-young'),
      empty: orphan(1, 'orphan-in-empty-window'),
      unsealed: orphan(5, 'orphan-unsealed'),
    };
    for (const key of Object.values(orphans)) await e.store.putIfAbsent(key, new Uint8Array([1, 2, 3]));
    await setObjectTime(e.store, orphans.early, WALL - 2 * HOUR);
    await setObjectTime(e.store, orphans.old, WALL - 2 * HOUR);
    await setObjectTime(e.store, orphans.young, WALL - 10 * 60_000);
    await setObjectTime(e.store, orphans.empty, WALL - 3 * HOUR);
    await setObjectTime(e.store, orphans.unsealed, WALL - 5 * HOUR);
    let wall = WALL;
    const deleted: number[] = [];
    const s = makeSealer(e, 'sealer-1', {
      wallNow: () => wall,
      observer: { orphansDeleted: (n) => deleted.push(n) },
    });
    await s.lead();

    await s.sealer.cycle();

    const remaining = await dataKeys(e.store, e.table);
    expect(remaining.sort()).toEqual([...commits.map((c) => c.key), orphans.young, orphans.unsealed].sort());
    expect(deleted).toEqual([3]);
    // The sweep stops at the window holding a young orphan, to look at it again later.
    expect((await e.registry.getState())?.gcThroughMs).toBe(W(0));

    wall += HOUR;
    await s.sealer.cycle();
    expect((await dataKeys(e.store, e.table)).sort()).toEqual(
      [...commits.map((c) => c.key), orphans.unsealed].sort(),
    );
    expect(deleted).toEqual([3, 1]);
    expect((await e.registry.getState())?.gcThroughMs).toBe(W(3));
    // The manifests' segments are all still there.
    for (const n of [0, 2]) {
      for (const seg of (await readManifest(e.store, e.table, W(n))).manifest.segments) {
        expect(await e.store.head(seg.key)).toBeDefined();
      }
    }
  });

  it('fences a sealer that lost its lease: it cannot move the window state', async () => {
    const e = await env([A, B]);
    await commitTwoWindows(e, W(3) + 30_000);
    let clock1 = 0;
    const s1 = makeSealer(e, 'sealer-1', { now: () => clock1, failoverMs: 1000 });
    await s1.lead();
    // Initialise the state without closing anything yet (no progress reported: no watermark).
    const held = (await e.registry.getSealerLease())!;
    const state = await e.registry.initState({
      windowMs: WINDOW_MS,
      streamArn: e.streamArn,
      closedThroughMs: W(-2),
      sealedThroughMs: W(-2),
      closedAtMs: WALL,
      gcThroughMs: W(-2),
    });

    // sealer-2 takes over once sealer-1's lease stops moving (sealer-1 is paused, not dead).
    let clock = 0;
    const s2 = makeSealer(e, 'sealer-2', { now: () => clock, failoverMs: 1000 });
    await s2.manageLease();
    clock += 1000;
    await s2.lead();
    const now = (await e.registry.getSealerLease())!;
    expect(now).toMatchObject({ owner: 'sealer-2', leaseEpoch: held.leaseEpoch + 1 });

    // The paused sealer wakes up: its state moves are refused.
    expect(
      await e.registry.updateState(
        state,
        { ...state, closedThroughMs: W(3) },
        { owner: 'sealer-1', leaseEpoch: held.leaseEpoch },
      ),
    ).toBe(false);
    await s1.sealer.cycle();
    expect(s1.seals).toEqual([]);
    expect(await e.registry.getState()).toEqual(state);
    expect(await manifestKeys(e.store, e.table)).toEqual([]);
    expect(await symlinkKeys(e.store, e.table)).toEqual([]);
    // Its next renewal finds the lease gone.
    clock1 += 1000;
    await s1.manageLease();
    expect(s1.sealer.isLeader).toBe(false);

    // The new leader seals.
    await s2.sealer.cycle();
    expect(s2.seals.map((x) => x.windowStartMs)).toEqual([W(0), W(1), W(2)]);
  });

  it('closes only windows whose end plus the allowed lateness the watermark passed', async () => {
    const e = await env([A, B]);
    await commitTwoWindows(e, W(3) + 30_000);
    const s = makeSealer(e, 'sealer-1', { allowedLatenessMs: 60_000 });
    await s.lead();
    await s.sealer.cycle();
    // W(3)+30s - 60s = W(2)+30s: windows before W(2) are closed.
    expect(await e.registry.getState()).toMatchObject({ closedThroughMs: W(2), sealedThroughMs: W(2) });
    expect(s.seals.map((x) => x.windowStartMs)).toEqual([W(0), W(1)]);
  });

  it('closes through the watermark even with no data: no manifest before the first data', async () => {
    const e = await env([A]);
    const { leases } = makeCommitter(e, 'worker-a');
    await takeSession(leases, A);
    await caughtUp(leases, A, W(0) + 5000);
    const s = makeSealer(e, 'sealer-1');
    await s.lead();
    await s.sealer.cycle();
    expect(await e.registry.getState()).toMatchObject({
      closedThroughMs: W(0),
      sealedThroughMs: W(0),
      firstManifestMs: undefined,
      gcThroughMs: W(0),
    });
    expect(await manifestKeys(e.store, e.table)).toEqual([]);
    expect(s.seals).toEqual([]);
  });

  it('does nothing while a readable shard has no progress yet (no watermark)', async () => {
    const e = await env([A, B]);
    const { committer, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 2, (n) => W(0) + n * 1000),
      ),
    );
    await committer.drain();
    await caughtUp(leases, A, W(5));
    const s = makeSealer(e, 'sealer-1');
    await s.lead();
    await s.sealer.cycle();
    expect(await e.registry.getWatermark()).toBeUndefined();
    expect(await manifestKeys(e.store, e.table)).toEqual([]);
    expect(s.seals).toEqual([]);
    // The state is created one window before the stream's 24 h retention, nothing closed yet.
    const start = windowStartOf(WALL - DAY_MS, WINDOW_MS) - WINDOW_MS;
    expect(await e.registry.getState()).toMatchObject({
      windowMs: WINDOW_MS,
      streamArn: e.streamArn,
      closedThroughMs: start,
      sealedThroughMs: start,
      gcThroughMs: start,
      closedAtMs: WALL,
    });
  });

  it('seals several windows in one cycle: every state move gets its own request token', async () => {
    // Regression: tokens cut to 36 characters made successive moves share one, and DynamoDB
    // refused the second with IdempotentParameterMismatchException (fixed in 01d98f6).
    const e = await env([A, B]);
    await commitTwoWindows(e, W(3) + 30_000);
    const s = makeSealer(e, 'sealer-1');
    await s.lead();
    const failure = await s.sealer.cycle().then(
      () => undefined,
      (error: unknown) => {
        const cause = (error as { cause?: { name?: string } }).cause;
        return `${String(error)} (cause: ${cause?.name})`;
      },
    );
    expect(failure).toBeUndefined();
    expect(s.seals.map((x) => x.windowStartMs)).toEqual([W(0), W(1), W(2)]);
    expect(await e.registry.getState()).toMatchObject({ closedThroughMs: W(3), sealedThroughMs: W(3) });
  });
});
