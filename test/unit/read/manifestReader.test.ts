import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { manifestObjectKey } from '../../../src/changelog/layout.js';
import { serializeManifest } from '../../../src/changelog/manifest.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import type { ListOptions, ObjectInfo, ObjectStore } from '../../../src/coordination/objectStore.js';
import { listManifests, listWindows, readManifest } from '../../../src/read/manifestReader.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { buildManifest, TABLE } from '../../helpers/changelogFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';

const HOUR = 3_600_000;
// Four hourly windows across midnight: 22:00, 23:00, 00:00, 01:00.
const STARTS = [0, 1, 2, 3].map((i) => Date.UTC(2026, 10, 22, 22) + i * HOUR);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('manifestReader', () => {
  let dir: string;
  let store: LocalObjectStore;
  const encode = (text: string) => new TextEncoder().encode(text);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'manifest-reader-'));
    store = new LocalObjectStore({ dir });
    for (const start of STARTS) {
      await store.putIfAbsent(
        manifestObjectKey(TABLE, start),
        serializeManifest(buildManifest(start, [], { windowMs: HOUR })),
      );
    }
    // Things under the prefix that are not manifests, and another table's manifest.
    await store.putIfAbsent(`${TABLE}/manifests/dt=2026-11-22/README.txt`, encode('x'));
    await store.putIfAbsent(`${manifestObjectKey(TABLE, STARTS[1]!)}.bak`, encode('x'));
    await store.putIfAbsent(manifestObjectKey('orders2', STARTS[1]!), encode('x'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const starts = async (sinceMs: number, untilMs?: number, target: ObjectStore = store) =>
    (await collect(listManifests(target, TABLE, { sinceMs, untilMs }))).map((m) => m.windowStartMs);

  it('lists the manifests of windows starting in [since, until), oldest first, across days', async () => {
    expect(await starts(0)).toEqual(STARTS);
    expect(await starts(STARTS[1]!)).toEqual(STARTS.slice(1));
    expect(await starts(STARTS[1]!, STARTS[3]!)).toEqual([STARTS[1], STARTS[2]]);
    expect(await starts(STARTS[1]! + 1)).toEqual(STARTS.slice(2));
    expect(await starts(STARTS[1]! - 1, STARTS[1]! + 1)).toEqual([STARTS[1]]);
    expect(await starts(STARTS[3]! + 1)).toEqual([]);
    const listed = await collect(listManifests(store, TABLE, { sinceMs: STARTS[2]!, untilMs: STARTS[3]! }));
    expect(listed).toEqual([
      { key: 'orders/manifests/dt=2026-11-23/20261123T000000Z.json', windowStartMs: STARTS[2], version: 1 },
    ]);
  });

  it('stops listing at the first window past until', async () => {
    const seen: string[] = [];
    const counting: ObjectStore = {
      url: store.url,
      putIfAbsent: store.putIfAbsent.bind(store),
      get: store.get.bind(store),
      head: store.head.bind(store),
      delete: store.delete.bind(store),
      async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
        for await (const info of store.list(prefix, options)) {
          seen.push(info.key);
          yield info;
        }
      },
    };
    expect(await starts(STARTS[0]!, STARTS[1]!, counting)).toEqual([STARTS[0]]);
    // The 22:00 manifest, then the 23:00 one, which ends the listing: nothing after it was read.
    expect(seen).toEqual([manifestObjectKey(TABLE, STARTS[0]!), manifestObjectKey(TABLE, STARTS[1]!)]);
  });

  it('reads and validates a manifest, naming the key when it is missing', async () => {
    const manifest = await readManifest(store, manifestObjectKey(TABLE, STARTS[0]!));
    expect(manifest.window.start).toBe(new Date(STARTS[0]!).toISOString());
    const missing = manifestObjectKey(TABLE, STARTS[3]! + HOUR);
    await expect(readManifest(store, missing)).rejects.toThrow(ChangelogError);
    await expect(readManifest(store, missing)).rejects.toThrow(`manifest ${missing} does not exist`);
    await expect(readManifest(store, `${TABLE}/manifests/dt=2026-11-22/README.txt`)).rejects.toThrow(
      /is not valid JSON/,
    );
  });
});

describe('manifest versions', () => {
  const versionOf = (start: number, version: number) =>
    serializeManifest({ ...buildManifest(start, [], { windowMs: HOUR }), version });

  async function storeWith(versions: Record<number, number[]>): Promise<MemoryObjectStore> {
    const memory = new MemoryObjectStore();
    for (const [i, list] of Object.entries(versions)) {
      const start = STARTS[Number(i)]!;
      for (const v of list) await memory.putIfAbsent(manifestObjectKey(TABLE, start, v), versionOf(start, v));
    }
    return memory;
  }

  it('listWindows yields each window once, with its highest version, oldest first', async () => {
    const memory = await storeWith({ 0: [1], 1: [1, 2, 3], 2: [1, 2], 3: [1] });
    expect(await collect(listWindows(memory, TABLE, { sinceMs: 0 }))).toEqual([
      { key: manifestObjectKey(TABLE, STARTS[0]!), windowStartMs: STARTS[0], version: 1 },
      { key: manifestObjectKey(TABLE, STARTS[1]!, 3), windowStartMs: STARTS[1], version: 3 },
      { key: manifestObjectKey(TABLE, STARTS[2]!, 2), windowStartMs: STARTS[2], version: 2 },
      { key: manifestObjectKey(TABLE, STARTS[3]!), windowStartMs: STARTS[3], version: 1 },
    ]);
    // listManifests is the raw listing: every version, in key order.
    expect((await collect(listManifests(memory, TABLE, { sinceMs: 0 }))).map((l) => l.version)).toEqual([
      1, 1, 2, 3, 1, 2, 1,
    ]);
    // The range applies to windows: a window's versions are all in it or all out of it.
    expect(await collect(listWindows(memory, TABLE, { sinceMs: STARTS[1]!, untilMs: STARTS[2]! }))).toEqual([
      { key: manifestObjectKey(TABLE, STARTS[1]!, 3), windowStartMs: STARTS[1], version: 3 },
    ]);
  });

  it('compares versions as numbers: v10 after v9, whatever the key order', async () => {
    const memory = await storeWith({ 0: [1, 9, 10], 1: [2, 1, 11, 3] });
    const windows = await collect(listWindows(memory, TABLE, { sinceMs: 0 }));
    expect(windows.map((w) => [w.windowStartMs, w.version])).toEqual([
      [STARTS[0], 10],
      [STARTS[1], 11],
    ]);
    expect(windows[0]!.key).toBe('orders/manifests/dt=2026-11-22/20261122T220000Z.v10.json');
  });

  it('reads a version and checks that it is the manifest its key names', async () => {
    const memory = await storeWith({ 0: [1, 2] });
    const v2 = manifestObjectKey(TABLE, STARTS[0]!, 2);
    expect((await readManifest(memory, v2)).version).toBe(2);
    // Another window's manifest, a v1 under a v3 key, and another table's, each named with both values.
    const moved = manifestObjectKey(TABLE, STARTS[1]!);
    await memory.putIfAbsent(moved, versionOf(STARTS[0]!, 1));
    await expect(readManifest(memory, moved)).rejects.toThrow(
      `manifest ${moved} is not the manifest its key names: it has window.start 2026-11-22T22:00:00.000Z (the key's is 2026-11-22T23:00:00.000Z)`,
    );
    const v3 = manifestObjectKey(TABLE, STARTS[0]!, 3);
    await memory.putIfAbsent(v3, versionOf(STARTS[0]!, 1));
    await expect(readManifest(memory, v3)).rejects.toThrow(/it has version 1 \(the key's is 3\)/);
    const other = manifestObjectKey('orders2', STARTS[0]!);
    await memory.putIfAbsent(other, versionOf(STARTS[0]!, 1));
    await expect(readManifest(memory, other)).rejects.toThrow(
      /it has table "orders" \(the key's is "orders2"\)/,
    );
    // An explicit expectation wins over the key.
    await expect(
      readManifest(memory, v2, { expect: { table: TABLE, windowStartMs: STARTS[0]!, version: 3 } }),
    ).rejects.toThrow(/version 2 \(the key's is 3\)/);
    const error = await readManifest(memory, v3).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChangelogError);
    expect((error as ChangelogError).context.key).toBe(v3);
  });
});
