import { describe, expect, it } from 'vitest';
import {
  isoTime,
  manifestObjectKey,
  manifestPrefix,
  symlinkObjectKey,
  symlinkPrefix,
  windowDataPrefix,
} from '../../../src/changelog/layout.js';
import { buildManifest, parseManifest, serializeManifest } from '../../../src/changelog/manifest.js';
import { TRIM_HORIZON } from '../../../src/changelog/sequenceNumber.js';
import type { Lease } from '../../../src/coordination/lease.js';
import { type PutResult, sha256Checksum } from '../../../src/coordination/objectStore.js';
import { combineObservers, type WindowSealed } from '../../../src/coordination/pipelineObserver.js';
import type {
  GapRecord,
  RegistryStore,
  SealerLeaseItem,
  SegmentRecord,
  WindowState,
} from '../../../src/coordination/registryStore.js';
import { checkSealable, Sealer, type SealerOptions } from '../../../src/ingest/sealer.js';
import { ChangelogError } from '../../../src/support/errors.js';
import {
  capturingLogger,
  type FlatSettings,
  seq,
  TEST_SETTINGS,
  W,
  WINDOW_MS,
  withSettings,
} from '../../helpers/commitFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';

const TABLE = 'orders';
const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const WALL = W(30);

function entry(shardId: string, after: string, first: string, last: string) {
  return {
    shardId,
    afterSequenceNumber: after,
    firstSequenceNumber: first,
    lastSequenceNumber: last,
    records: 1,
  };
}

function segment(
  windowStartMs: number,
  id: string,
  shards: SegmentRecord['shards'],
  over: Partial<SegmentRecord> = {},
): SegmentRecord {
  return {
    windowStartMs,
    segmentId: id,
    commitId: `commit-${id}`,
    key: `${windowDataPrefix(TABLE, windowStartMs)}${id}.parquet`,
    bytes: 100,
    records: shards.reduce((n, s) => n + s.records, 0),
    checksum: sha256Checksum(new TextEncoder().encode(id)),
    minEventTimeMs: windowStartMs + 1000,
    maxEventTimeMs: windowStartMs + 2000,
    lateRecords: 0,
    shards,
    streamArn: ARN,
    workerId: 'worker-a',
    ...over,
  };
}

/** The sealer's check (changelog/invariants.ts) on the manifest it would write for these segments. */
function checkContiguity(windowStartMs: number, segments: SegmentRecord[]): void {
  const manifest = buildManifest({
    table: TABLE,
    windowStartMs,
    windowMs: WINDOW_MS,
    sealedAtMs: windowStartMs + WINDOW_MS,
    version: 1,
    streamArn: ARN,
    segments,
    gaps: [],
  });
  checkSealable(manifest, manifestObjectKey(TABLE, windowStartMs), windowStartMs);
}

describe('checkSealable: the shards of a window chain', () => {
  const A = 'shard-a';
  const B = 'shard-b';

  it('accepts segments of each shard that chain, in any order, shards independent', () => {
    expect(() =>
      checkContiguity(W(0), [
        segment(W(0), 's3', [entry(A, seq(1, 5), seq(1, 6), seq(1, 9))]),
        segment(W(0), 's1', [
          entry(A, TRIM_HORIZON, seq(1, 1), seq(1, 5)),
          entry(B, seq(2, 40), seq(2, 41), seq(2, 41)),
        ]),
        segment(W(0), 's2', [entry(B, seq(2, 41), seq(2, 50), seq(2, 60))]),
      ]),
    ).not.toThrow();
    expect(() => checkContiguity(W(0), [])).not.toThrow();
  });

  it('compares sequence numbers as integers, not strings', () => {
    // 21 digits then 22 digits: "9..." sorts after "1..." as a string, but is smaller.
    const small = '900000000000000000000';
    const big = '1000000000000000000000';
    expect(() =>
      checkContiguity(W(0), [
        segment(W(0), 'b', [entry(A, small, big, big)]),
        segment(W(0), 'a', [entry(A, TRIM_HORIZON, small, small)]),
      ]),
    ).not.toThrow();
  });

  it('refuses a hole: a segment whose checkpoint is not the previous segment last', () => {
    const run = () =>
      checkContiguity(W(1), [
        segment(W(1), 's1', [entry(A, TRIM_HORIZON, seq(1, 1), seq(1, 5))]),
        segment(W(1), 's2', [entry(A, seq(1, 7), seq(1, 8), seq(1, 9))]),
      ]);
    expect(run).toThrow(ChangelogError);
    expect(run).toThrow(
      /refusing to seal window 20260115T100100Z: shard shard-a is not contiguous: .*s2\.parquet follows checkpoint 100000000000000000007, but the previous segment .*s1\.parquet ends at 100000000000000000005/,
    );
  });

  it('refuses overlapping and inverted ranges', () => {
    expect(() =>
      checkContiguity(W(0), [
        segment(W(0), 's1', [entry(A, TRIM_HORIZON, seq(1, 1), seq(1, 5))]),
        segment(W(0), 's2', [entry(A, seq(1, 5), seq(1, 5), seq(1, 9))]),
      ]),
    ).toThrow(/s2\.parquet starts at 100000000000000000005, not after 100000000000000000005/);
    expect(() =>
      checkContiguity(W(0), [segment(W(0), 's1', [entry(A, seq(1, 1), seq(1, 9), seq(1, 3))])]),
    ).toThrow(/ends at 100000000000000000003 before it starts at 100000000000000000009/);
    // The same range twice (a double registration) is a hole-or-overlap too.
    const twice = segment(W(0), 's1', [entry(A, TRIM_HORIZON, seq(1, 1), seq(1, 5))]);
    expect(() =>
      checkContiguity(W(0), [twice, { ...twice, segmentId: 's1b', key: 'x/s1b.parquet' }]),
    ).toThrow(/not contiguous/);
  });

  it('keys shards by stream too: a window holding segments of a table’s old and new stream', () => {
    // `run` moved from one stream to the next inside this window. Sequence numbers of two streams
    // are not comparable; even a (hypothetical) repeated shard id is two shards.
    const NEXT = `${ARN.slice(0, -'2026-01-01T00:00:00.000'.length)}2026-01-02T00:00:00.000`;
    const segments = [
      segment(W(0), 'old', [entry(A, seq(1, 4), seq(1, 5), seq(1, 9))]),
      segment(W(0), 'new', [entry(A, TRIM_HORIZON, seq(1, 1), seq(1, 3))], { streamArn: NEXT }),
    ];
    expect(() => checkContiguity(W(0), segments)).not.toThrow();
    // Within one stream the same ranges are a hole.
    expect(() =>
      checkContiguity(
        W(0),
        segments.map((s) => ({ ...s, streamArn: ARN })),
      ),
    ).toThrow(/not contiguous/);
  });
});

/** The subset of RegistryStore the Sealer uses, in memory, with the same conditions. */
class FakeRegistry {
  state: WindowState | undefined;
  segments: SegmentRecord[] = [];
  gaps: GapRecord[] = [];
  watermark: number | undefined;
  sealer: SealerLeaseItem | undefined;
  readonly calls: string[] = [];

  async getState() {
    this.calls.push('getState');
    return this.state && { ...this.state };
  }
  async initState(initial: WindowState) {
    this.calls.push('initState');
    this.state ??= { ...initial };
    return { ...this.state };
  }
  async updateState(expected: WindowState, next: WindowState, sealer: { owner: string; leaseEpoch: number }) {
    this.calls.push('updateState');
    if (this.sealer?.owner !== sealer.owner || this.sealer.leaseEpoch !== sealer.leaseEpoch) return false;
    const s = this.state!;
    if (s.closedThroughMs !== expected.closedThroughMs || s.sealedThroughMs !== expected.sealedThroughMs)
      return false;
    this.state = { ...next };
    return true;
  }
  async queryRange(fromMs: number, toMs: number) {
    this.calls.push('queryRange');
    const inRange = <T extends { windowStartMs: number }>(x: T) =>
      x.windowStartMs >= fromMs && x.windowStartMs < toMs;
    return { segments: this.segments.filter(inRange), gaps: this.gaps.filter(inRange) };
  }
  async putWatermark(ms: number) {
    this.calls.push('putWatermark');
    this.watermark = ms;
  }
  async getSealerLease() {
    return this.sealer && { ...this.sealer };
  }
  async takeSealerLease(observed: SealerLeaseItem | undefined, workerId: string) {
    if (this.sealer?.leaseCounter !== observed?.leaseCounter) return undefined;
    this.sealer = {
      owner: workerId,
      leaseCounter: (this.sealer?.leaseCounter ?? 0) + 1,
      leaseEpoch: (this.sealer?.leaseEpoch ?? 0) + 1,
    };
    return { ...this.sealer };
  }
  async renewSealerLease(held: SealerLeaseItem & { owner: string }) {
    if (this.sealer?.owner !== held.owner || this.sealer.leaseEpoch !== held.leaseEpoch) return undefined;
    this.sealer.leaseCounter += 1;
    return { ...this.sealer };
  }
  async releaseSealerLease(held: SealerLeaseItem & { owner: string }) {
    if (this.sealer?.owner === held.owner && this.sealer.leaseEpoch === held.leaseEpoch) {
      this.sealer = { ...this.sealer, owner: undefined, leaseCounter: this.sealer.leaseCounter + 1 };
    }
  }
}

function lease(shardId: string, progress: number | undefined): Lease {
  return {
    shardId,
    owner: 'w',
    leaseCounter: 1,
    leaseEpoch: 1,
    checkpoint: seq(1, 1),
    parentShardIds: [],
    caughtUpAtMs: progress,
  };
}

function setup(
  over: Partial<SealerOptions> & FlatSettings = {},
  leases: Lease[] = [lease('shard-a', W(3) + 1000)],
) {
  const registry = new FakeRegistry();
  // Objects are created at WALL; tests age them by setting lastModified.
  const store = new MemoryObjectStore({ now: () => WALL });
  const seals: WindowSealed[] = [];
  const logger = capturingLogger();
  let listCalls = 0;
  const sealer = new Sealer(
    withSettings(
      {
        workerId: 'sealer-1',
        table: TABLE,
        streamArn: ARN,
        registry: registry as unknown as RegistryStore,
        listLeases: async () => {
          listCalls++;
          return leases;
        },
        store,
        wallNow: () => WALL,
        logger,
        ...over,
        observer: combineObservers({ windowSealed: (e) => seals.push(e) }, over.observer),
      },
      { ...TEST_SETTINGS, orphanGraceMs: 3_600_000 },
    ),
  );
  const lead = () =>
    (sealer as unknown as { manageLease(signal: AbortSignal): Promise<void> }).manageLease(
      new AbortController().signal,
    );
  return { registry, store, sealer, seals, logger, lead, listCalls: () => listCalls };
}

const state = (closed: number, extra: Partial<WindowState> = {}): WindowState => ({
  windowMs: WINDOW_MS,
  streamArn: ARN,
  closedThroughMs: closed,
  sealedThroughMs: closed,
  closedAtMs: W(-100),
  gcThroughMs: closed,
  ...extra,
});

describe('Sealer (in-memory registry and store)', () => {
  it('does nothing without the sealer lease', async () => {
    const t = setup();
    await t.sealer.cycle();
    expect(t.listCalls()).toBe(0);
    expect(t.registry.calls).toEqual([]);
  });

  it('refuses to run with another window size than the changelog state', async () => {
    const t = setup();
    t.registry.state = state(W(0), { windowMs: 5 * WINDOW_MS });
    await t.lead();
    await expect(t.sealer.cycle()).rejects.toThrow(/uses 300000 ms windows, this worker 60000 ms/);
    expect(t.store.objects.size).toBe(0);
  });

  it('lists gaps in the manifest and marks it incomplete, loudly', async () => {
    const t = setup();
    t.registry.state = state(W(0));
    t.registry.segments = [segment(W(0), 's1', [entry('shard-a', seq(1, 10), seq(1, 11), seq(1, 12))])];
    t.registry.gaps = [
      {
        windowStartMs: W(0),
        shardId: 'shard-a',
        afterSequenceNumber: TRIM_HORIZON,
        resumedAtSequenceNumber: seq(1, 11),
        toTimeMs: W(0) + 1000,
        reason: 'TrimmedDataAccessException',
      },
      // A gap alone makes a window hold data: it gets a manifest.
      {
        windowStartMs: W(1),
        shardId: 'shard-b',
        afterSequenceNumber: seq(2, 4),
        reason: 'TrimmedDataAccessException',
      },
    ];
    await t.lead();
    await t.sealer.cycle();

    const key0 = manifestObjectKey(TABLE, W(0));
    const m0 = parseManifest((await t.store.get(key0))!, key0);
    expect(m0.complete).toBe(false);
    expect(m0.gaps).toEqual([
      {
        shardId: 'shard-a',
        afterSequenceNumber: TRIM_HORIZON,
        resumedAtSequenceNumber: seq(1, 11),
        toTime: isoTime(W(0) + 1000),
        reason: 'TrimmedDataAccessException',
      },
    ]);
    const key1 = manifestObjectKey(TABLE, W(1));
    const m1 = parseManifest((await t.store.get(key1))!, key1);
    expect(m1).toMatchObject({ complete: false, recordCount: 0, segments: [] });
    expect(t.seals.map((s) => [s.windowStartMs, s.gaps])).toEqual([
      [W(0), 1],
      [W(1), 1],
      [W(2), 0],
    ]);
    expect(t.logger.lines.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      'window sealed INCOMPLETE: it lists trimmed-data gaps',
      'window sealed INCOMPLETE: it lists trimmed-data gaps',
    ]);
  });

  it('writes the same manifest bytes whatever stream ARN or clock the sealing worker has', async () => {
    const seal = async (streamArn: string, wall: number) => {
      const t = setup({ streamArn, wallNow: () => wall });
      // Closed (by whichever sealer) but not yet sealed: sealing reads everything from the state.
      t.registry.state = { ...state(W(0)), closedThroughMs: W(1) };
      t.registry.segments = [segment(W(0), 's1', [entry('shard-a', TRIM_HORIZON, seq(1, 1), seq(1, 2))])];
      await t.lead();
      await t.sealer.cycle();
      return Buffer.from((await t.store.get(manifestObjectKey(TABLE, W(0))))!);
    };
    const a = await seal(ARN, WALL);
    const b = await seal(`${ARN.slice(0, -3)}999`, WALL + 3_600_000);
    expect(b).toEqual(a);
    expect(JSON.parse(a.toString())).toMatchObject({ streamArn: ARN, sealedAt: isoTime(W(-100)) });
  });

  it('seals a window holding two streams’ segments and names the oldest stream in the manifest', async () => {
    const NEXT = `${ARN.slice(0, -'2026-01-01T00:00:00.000'.length)}2026-01-02T00:00:00.000`;
    const t = setup({ streamArn: NEXT });
    t.registry.state = { ...state(W(0)), closedThroughMs: W(1) };
    t.registry.segments = [
      segment(W(0), 's2', [entry('shard-new', TRIM_HORIZON, seq(2, 1), seq(2, 2))], { streamArn: NEXT }),
      segment(W(0), 's1', [entry('shard-old', seq(1, 3), seq(1, 4), seq(1, 5))]),
    ];
    await t.lead();
    await t.sealer.cycle();
    const manifest = parseManifest(
      (await t.store.get(manifestObjectKey(TABLE, W(0))))!,
      manifestObjectKey(TABLE, W(0)),
    );
    expect(manifest.streamArn).toBe(ARN);
    expect(manifest.segments.map((s) => s.shards[0]!.shardId).sort()).toEqual(['shard-new', 'shard-old']);
    expect(manifest.recordCount).toBe(2);
  });

  it('closes nothing and publishes no watermark while a shard has no progress', async () => {
    const t = setup({}, [lease('shard-a', W(3)), lease('shard-b', undefined)]);
    t.registry.state = state(W(0));
    await t.lead();
    await t.sealer.cycle();
    expect(t.registry.watermark).toBeUndefined();
    expect(t.registry.state).toEqual(state(W(0)));
  });

  it('deletes at most orphanBatch orphans a cycle and resumes the sweep where it stopped', async () => {
    const t = setup({ orphanBatch: 2, orphanGraceMs: 0 });
    t.registry.state = state(W(-1));
    const orphans = [0, 0, 1, 1, 2].map((n, i) => `${windowDataPrefix(TABLE, W(n))}orphan-${i}.parquet`);
    for (const k of orphans) await t.store.putIfAbsent(k, new Uint8Array([1]));
    for (const o of t.store.objects.values()) o.lastModified = new Date(WALL - 1);
    await t.lead();

    await t.sealer.cycle();
    // Windows 0..2 sealed (no data: no manifests); two orphans of window 0 deleted.
    expect(t.registry.state).toMatchObject({ sealedThroughMs: W(3), gcThroughMs: W(1) });
    expect([...t.store.objects.keys()].filter((k) => k.includes('orphan')).sort()).toEqual(orphans.slice(2));
    await t.sealer.cycle();
    expect(t.registry.state?.gcThroughMs).toBe(W(2));
    await t.sealer.cycle();
    expect(t.registry.state?.gcThroughMs).toBe(W(3));
    expect([...t.store.objects.keys()].filter((k) => k.includes('orphan'))).toEqual([]);
    expect([...t.store.objects.keys()].filter((k) => k.startsWith(manifestPrefix(TABLE)))).toEqual([]);
  });

  it('keeps the segments of every manifest version and replay segments not published yet; collects the rest', async () => {
    const t = setup({ orphanGraceMs: 0 });
    t.registry.state = state(W(1), { firstManifestMs: W(0), gcThroughMs: W(0) });
    const version = (v: number, ids: string[]) =>
      buildManifest({
        table: TABLE,
        windowStartMs: W(0),
        windowMs: WINDOW_MS,
        sealedAtMs: W(1),
        version: v,
        streamArn: ARN,
        segments: ids.map((id, i) =>
          segment(W(0), id, [entry(`shard-${i}`, TRIM_HORIZON, seq(1, 1), seq(1, 1))]),
        ),
        gaps: [],
      });
    await t.store.putIfAbsent(manifestObjectKey(TABLE, W(0)), serializeManifest(version(1, ['s1-a'])));
    await t.store.putIfAbsent(
      manifestObjectKey(TABLE, W(0), 2),
      serializeManifest(version(2, ['s1-a', 'replay-r1-000000'])),
    );
    const data = (id: string) => `${windowDataPrefix(TABLE, W(0))}${id}.parquet`;
    for (const id of ['s1-a', 'replay-r1-000000', 'replay-r2-000000', 's1-orphan']) {
      await t.store.putIfAbsent(data(id), new Uint8Array([1]));
    }
    for (const o of t.store.objects.values()) o.lastModified = new Date(WALL - 1);
    await t.lead();
    await t.sealer.cycle();
    const left = [...t.store.objects.keys()].filter((k) => k.startsWith(windowDataPrefix(TABLE, W(0))));
    expect(left.sort()).toEqual([data('replay-r1-000000'), data('replay-r2-000000'), data('s1-a')]);
  });

  it('refuses a sealed window after the first manifest that has no manifest object', async () => {
    const t = setup();
    t.registry.state = state(W(2), { firstManifestMs: W(0), gcThroughMs: W(0) });
    await t.store.putIfAbsent(`${windowDataPrefix(TABLE, W(1))}orphan.parquet`, new Uint8Array([1]));
    await t.lead();
    await expect(t.sealer.cycle()).rejects.toThrow(/sealed window 20260115T100100Z has no manifest/);
  });
});

/** Records every put of the store in order, with its outcome; `crash` makes a put throw. */
function recordPuts(store: MemoryObjectStore) {
  const puts: { key: string; outcome: PutResult['outcome'] | 'crashed' }[] = [];
  const state: { crash?: (key: string) => 'before' | 'after' | undefined } = {};
  const inner = store.putIfAbsent.bind(store);
  store.putIfAbsent = async (key, body) => {
    const crash = state.crash?.(key);
    if (crash === 'before') {
      puts.push({ key, outcome: 'crashed' });
      throw new ChangelogError(`PUT ${key}: worker died (injected)`, { retriable: false });
    }
    const result = await inner(key, body);
    puts.push({ key, outcome: crash === 'after' ? 'crashed' : result.outcome });
    if (crash === 'after')
      throw new ChangelogError(`PUT ${key}: answer lost (injected)`, { retriable: false });
    return result;
  };
  return { puts, state };
}

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

describe('Sealer: symlink manifests for Athena/Glue', () => {
  const sym = (n: number) => symlinkObjectKey(TABLE, W(n));
  const man = (n: number) => manifestObjectKey(TABLE, W(n));

  it('writes each window’s symlink manifest before its manifest, listing exactly its segments', async () => {
    const t = setup();
    const { puts } = recordPuts(t.store);
    t.registry.state = { ...state(W(0)), closedThroughMs: W(2) };
    t.registry.segments = [
      segment(W(0), 's1-b', [entry('shard-b', TRIM_HORIZON, seq(2, 1), seq(2, 2))]),
      segment(W(0), 's1-a', [entry('shard-a', TRIM_HORIZON, seq(1, 1), seq(1, 2))]),
    ];
    await t.lead();
    await t.sealer.cycle();

    // Window 1 holds nothing but comes after the first manifest: an empty manifest, an empty symlink.
    expect(puts.filter((p) => !p.key.includes('/data/'))).toEqual([
      { key: sym(0), outcome: 'created' },
      { key: man(0), outcome: 'created' },
      { key: sym(1), outcome: 'created' },
      { key: man(1), outcome: 'created' },
    ]);
    const manifest = parseManifest((await t.store.get(man(0)))!, man(0));
    expect(manifest.segments).toHaveLength(2);
    // The store's URL is `memory://`: the segment URLs are `memory:///<key>`, in the manifest's order.
    expect(text(await t.store.get(sym(0)))).toBe(
      manifest.segments.map((s) => `memory:///${s.key}\n`).join(''),
    );
    expect(
      text(await t.store.get(sym(0)))
        .split('\n')
        .slice(0, -1)
        .sort(),
    ).toEqual(t.registry.segments.map((s) => `memory:///${s.key}`).sort());
    expect((await t.store.get(sym(1)))?.byteLength).toBe(0);
    expect(
      t.logger.lines.filter((l) => l.message === 'window sealed').map((l) => l.details['symlink']),
    ).toEqual([sym(0), sym(1)]);
    // The observer's event is unchanged.
    expect(t.seals[0]).toEqual({
      windowStartMs: W(0),
      key: man(0),
      records: 2,
      segments: 2,
      gaps: 0,
      lateRecords: 0,
      complete: true,
    });
  });

  it('a seal retried after a crash between the symlink and the manifest writes the same symlink (exists)', async () => {
    const t = setup();
    const { puts, state: faults } = recordPuts(t.store);
    t.registry.state = { ...state(W(0)), closedThroughMs: W(1) };
    t.registry.segments = [segment(W(0), 's1-a', [entry('shard-a', TRIM_HORIZON, seq(1, 1), seq(1, 2))])];
    await t.lead();
    faults.crash = (key) => (key === man(0) ? 'before' : undefined);
    await expect(t.sealer.cycle()).rejects.toThrow(/worker died/);
    const symlink = Buffer.from((await t.store.get(sym(0)))!);
    expect(await t.store.get(man(0))).toBeUndefined();
    expect(t.registry.state?.sealedThroughMs).toBe(W(0));

    // The manifest's write lands but its answer is lost: the next try sees both objects already there.
    faults.crash = (key) => (key === man(0) ? 'after' : undefined);
    await expect(t.sealer.cycle()).rejects.toThrow(/answer lost/);
    faults.crash = undefined;
    await t.sealer.cycle();
    expect(puts).toEqual([
      { key: sym(0), outcome: 'created' },
      { key: man(0), outcome: 'crashed' },
      { key: sym(0), outcome: 'exists' },
      { key: man(0), outcome: 'crashed' },
      { key: sym(0), outcome: 'exists' },
      { key: man(0), outcome: 'exists' },
    ]);
    expect(Buffer.from((await t.store.get(sym(0)))!)).toEqual(symlink);
    expect(t.registry.state?.sealedThroughMs).toBe(W(1));
    expect(t.seals.map((s) => s.windowStartMs)).toEqual([W(0)]);
  });

  it('writes no symlink for the empty windows before the first manifest, nor for unsealed windows', async () => {
    const t = setup();
    t.registry.state = { ...state(W(-2)), closedThroughMs: W(1) };
    t.registry.segments = [
      segment(W(0), 's1-a', [entry('shard-a', TRIM_HORIZON, seq(1, 1), seq(1, 2))]),
      segment(W(5), 's1-late', [entry('shard-a', seq(1, 2), seq(1, 3), seq(1, 4))]),
    ];
    await t.lead();
    await t.sealer.cycle();
    const symlinks = [...t.store.objects.keys()].filter((k) => k.startsWith(symlinkPrefix(TABLE)));
    expect(symlinks).toEqual([sym(0)]);
  });
});

describe('Sealer lease (manageLease on the fenced lease and the expiry tracker)', () => {
  it('takes a free lease at once, another worker’s only once its counter stood still for the failover time', async () => {
    const clock = { t: 0 };
    const t = setup({ now: () => clock.t, failoverMs: 900 });
    t.registry.sealer = { owner: 'sealer-2', leaseCounter: 4, leaseEpoch: 2 };
    await t.lead();
    clock.t = 899;
    await t.lead();
    expect(t.sealer.isLeader).toBe(false);
    // It moved: the wait starts again.
    t.registry.sealer = { ...t.registry.sealer, leaseCounter: 5 };
    clock.t = 1000;
    await t.lead();
    clock.t = 1899;
    await t.lead();
    expect(t.sealer.isLeader).toBe(false);
    clock.t = 1900;
    await t.lead();
    expect(t.sealer.isLeader).toBe(true);
    expect(t.registry.sealer).toEqual({ owner: 'sealer-1', leaseCounter: 6, leaseEpoch: 3 });
    expect(t.logger.lines.find((l) => l.message === 'sealer lease taken')).toBeDefined();

    const free = setup();
    free.registry.sealer = { owner: undefined, leaseCounter: 7, leaseEpoch: 3 };
    await free.lead();
    expect(free.registry.sealer).toEqual({ owner: 'sealer-1', leaseCounter: 8, leaseEpoch: 4 });
  });

  it('renews every third of the failover time, and lets go once the lease was taken from it', async () => {
    const clock = { t: 0 };
    const t = setup({ now: () => clock.t, failoverMs: 900 });
    await t.lead();
    expect(t.registry.sealer).toEqual({ owner: 'sealer-1', leaseCounter: 1, leaseEpoch: 1 });
    clock.t = 299;
    await t.lead();
    expect(t.registry.sealer?.leaseCounter).toBe(1);
    clock.t = 300;
    await t.lead();
    expect(t.registry.sealer?.leaseCounter).toBe(2);
    t.registry.sealer = { owner: 'sealer-2', leaseCounter: 3, leaseEpoch: 2 };
    clock.t = 600;
    await t.lead();
    expect(t.sealer.isLeader).toBe(false);
    expect(t.logger.lines.find((l) => l.message === 'sealer lease lost')).toBeDefined();
  });
});
