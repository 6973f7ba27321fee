import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { manifestObjectKey } from '../../../src/changelog/layout.js';
import { serializeManifest } from '../../../src/changelog/manifest.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import type { ListOptions, ObjectInfo, ObjectStore } from '../../../src/coordination/objectStore.js';
import { listManifests, readManifest } from '../../../src/read/manifestReader.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { buildManifest, TABLE } from '../../helpers/changelogFixtures.js';

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
      { key: 'orders/manifests/dt=2026-11-23/20261123T000000Z.json', windowStartMs: STARTS[2] },
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
