import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DAY_MS,
  dataPrefix,
  dtOf,
  isoTime,
  manifestObjectKey,
  manifestPrefix,
  manifestStartAfter,
  parseManifestKey,
  parseWindowId,
  SEGMENT_ID_PREFIX,
  segmentId,
  segmentObjectKey,
  symlinkObjectKey,
  symlinkPrefix,
  tableOfStreamArn,
  windowDataPrefix,
  windowId,
  windowSizeProblem,
  windowStartOf,
} from '../../../src/changelog/layout.js';
import { compareKeys } from '../../../src/coordination/objectStore.js';
import { ChangelogError } from '../../../src/support/errors.js';

const T = Date.UTC(2026, 10, 22, 10, 7, 42, 123); // 2026-11-22T10:07:42.123Z
// Between 1970 and 9999, where ISO strings keep four-digit years.
const times = fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 59, 59) });
const windowSizes = fc.constantFrom(60_000, 300_000, 900_000, 3_600_000, 21_600_000, DAY_MS);

describe('window math', () => {
  it('accepts sizes that tile a day and refuses the rest with a reason', () => {
    for (const ok of [60_000, 120_000, 300_000, 3_600_000, 7_200_000, DAY_MS])
      expect(windowSizeProblem(ok)).toBeUndefined();
    expect(windowSizeProblem(59_999)).toBe('must be between 1m and 24h');
    expect(windowSizeProblem(DAY_MS + 60_000)).toBe('must be between 1m and 24h');
    expect(windowSizeProblem(90_000.5)).toBe('must be between 1m and 24h');
    expect(windowSizeProblem(7 * 60_000)).toMatch(/divide a day evenly/);
  });

  it('aligns window starts to the epoch', () => {
    expect(windowStartOf(T, 300_000)).toBe(Date.UTC(2026, 10, 22, 10, 5, 0));
    expect(windowStartOf(T, 3_600_000)).toBe(Date.UTC(2026, 10, 22, 10, 0, 0));
    expect(windowStartOf(T, DAY_MS)).toBe(Date.UTC(2026, 10, 22));
    // A start maps to itself; the last millisecond of a window stays in it.
    expect(windowStartOf(Date.UTC(2026, 10, 22, 10, 5), 300_000)).toBe(Date.UTC(2026, 10, 22, 10, 5));
    expect(windowStartOf(Date.UTC(2026, 10, 22, 10, 10) - 1, 300_000)).toBe(Date.UTC(2026, 10, 22, 10, 5));
  });

  it('never lets a window span two days', () => {
    fc.assert(
      fc.property(times, windowSizes, (t, size) => {
        const start = windowStartOf(t, size);
        expect(start).toBeLessThanOrEqual(t);
        expect(t - start).toBeLessThan(size);
        expect(dtOf(start)).toBe(dtOf(start + size - 1));
      }),
    );
  });
});

describe('window ids', () => {
  it('formats and parses YYYYMMDDTHHMMSSZ', () => {
    expect(windowId(Date.UTC(2026, 10, 22, 10, 5, 0))).toBe('20261122T100500Z');
    expect(windowId(0)).toBe('19700101T000000Z');
    expect(parseWindowId('20261122T100500Z')).toBe(Date.UTC(2026, 10, 22, 10, 5, 0));
  });

  it('refuses ids that are not canonical', () => {
    for (const bad of [
      '20261322T100500Z',
      '20261131T000000Z',
      '20261122T240000Z',
      '20261122T100500',
      '2026-11-22T10:05:00Z',
      '',
    ])
      expect(parseWindowId(bad)).toBeUndefined();
  });

  it('round-trips and sorts as time', () => {
    fc.assert(
      fc.property(times, times, (a, b) => {
        const sa = Math.floor(a / 1000) * 1000;
        const sb = Math.floor(b / 1000) * 1000;
        expect(parseWindowId(windowId(sa))).toBe(sa);
        expect(Math.sign(compareKeys(windowId(sa), windowId(sb)))).toBe(Math.sign(sa - sb));
      }),
    );
  });

  it('formats dt= and ISO times in UTC', () => {
    expect(dtOf(Date.UTC(2026, 10, 22, 23, 59, 59, 999))).toBe('2026-11-22');
    expect(isoTime(Date.UTC(2026, 10, 22, 10))).toBe('2026-11-22T10:00:00.000Z');
  });
});

describe('object keys', () => {
  const start = Date.UTC(2026, 10, 22, 10, 5);

  it('lays out data and manifests as in DESIGN.md', () => {
    expect(dataPrefix('orders')).toBe('orders/data/');
    expect(windowDataPrefix('orders', start)).toBe('orders/data/dt=2026-11-22/window=20261122T100500Z/');
    expect(segmentObjectKey('orders', start, 's1-abc')).toBe(
      'orders/data/dt=2026-11-22/window=20261122T100500Z/s1-abc.parquet',
    );
    expect(manifestPrefix('orders')).toBe('orders/manifests/');
    expect(manifestObjectKey('orders', start)).toBe('orders/manifests/dt=2026-11-22/20261122T100500Z.json');
  });

  it('refuses table names that would make odd keys', () => {
    for (const bad of ['ab', 'a/b/c', 'orders table', '../etc', 'x'.repeat(256)]) {
      expect(() => manifestPrefix(bad)).toThrow(ChangelogError);
      expect(() => dataPrefix(bad)).toThrow(/invalid table name/);
    }
    expect(manifestPrefix('Orders.v2_test-1')).toBe('Orders.v2_test-1/manifests/');
  });

  it('parses manifest keys back to their window start', () => {
    fc.assert(
      fc.property(times, (t) => {
        const s = Math.floor(t / 1000) * 1000;
        expect(parseManifestKey('orders', manifestObjectKey('orders', s))).toEqual({
          windowStartMs: s,
          version: 1,
        });
      }),
    );
  });

  it('rejects keys that are not manifests of the table', () => {
    const key = manifestObjectKey('orders', start);
    expect(parseManifestKey('orders2', key)).toBeUndefined();
    expect(parseManifestKey('orders', `${key}.tmp`)).toBeUndefined();
    expect(
      parseManifestKey('orders', 'orders/manifests/dt=2026-11-23/20261122T100500Z.json'),
    ).toBeUndefined();
    expect(
      parseManifestKey('orders', 'orders/manifests/dt=2026-11-22/20261122T100500Z.JSON'),
    ).toBeUndefined();
    expect(parseManifestKey('orders', 'orders/manifests/20261122T100500Z.json')).toBeUndefined();
    expect(parseManifestKey('orders', 'orders/data/dt=2026-11-22/20261122T100500Z.json')).toBeUndefined();
  });

  it('startAfter selects exactly the manifests at or after a window', () => {
    const starts = [0, 1, 2, 3, 4].map((i) => start + i * 300_000);
    const all = starts.map((s) => manifestObjectKey('orders', s)).sort(compareKeys);
    for (const [i, s] of starts.entries()) {
      const after = manifestStartAfter('orders', s);
      expect(all.filter((k) => compareKeys(k, after) > 0)).toEqual(all.slice(i));
    }
    // Across a day boundary too.
    const lateKey = manifestObjectKey('orders', Date.UTC(2026, 10, 22, 23, 55));
    const nextDay = manifestObjectKey('orders', Date.UTC(2026, 10, 23, 0, 0));
    expect(compareKeys(lateKey, manifestStartAfter('orders', Date.UTC(2026, 10, 23)))).toBeLessThan(0);
    expect(compareKeys(nextDay, manifestStartAfter('orders', Date.UTC(2026, 10, 23)))).toBeGreaterThan(0);
  });
});

describe('manifest versions', () => {
  const start = Date.UTC(2026, 10, 22, 10, 5);
  const versions = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

  it('keeps version 1 at <windowId>.json and puts version N beside it as <windowId>.v<N>.json', () => {
    expect(manifestObjectKey('orders', start, 1)).toBe(
      'orders/manifests/dt=2026-11-22/20261122T100500Z.json',
    );
    expect(manifestObjectKey('orders', start, 2)).toBe(
      'orders/manifests/dt=2026-11-22/20261122T100500Z.v2.json',
    );
    expect(manifestObjectKey('orders', start, 10)).toBe(
      'orders/manifests/dt=2026-11-22/20261122T100500Z.v10.json',
    );
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => manifestObjectKey('orders', start, bad)).toThrow(
        new RegExp(`invalid manifest version ${bad} .*must be an integer >= 1`),
      );
    }
  });

  it('parses every version back, and only the spelling it writes', () => {
    fc.assert(
      fc.property(times, versions, (t, version) => {
        const s = Math.floor(t / 1000) * 1000;
        expect(parseManifestKey('orders', manifestObjectKey('orders', s, version))).toEqual({
          windowStartMs: s,
          version,
        });
      }),
    );
    const at = (name: string) => parseManifestKey('orders', `orders/manifests/dt=2026-11-22/${name}`);
    expect(at('20261122T100500Z.v2.json')).toEqual({ windowStartMs: start, version: 2 });
    // v1 is spelled without a suffix; v0, leading zeros and other spellings are no manifest keys.
    for (const bad of [
      '20261122T100500Z.v1.json',
      '20261122T100500Z.v0.json',
      '20261122T100500Z.v02.json',
      '20261122T100500Z.v.json',
      '20261122T100500Z.V2.json',
      '20261122T100500Z.v2.JSON',
      '20261122T100500Z.v-2.json',
      '20261122T100500Z.v2.5.json',
      '20261122T100500Z.v99999999999999999.json',
      '20261122T100500Z.v2.json.tmp',
    ]) {
      expect(at(bad), bad).toBeUndefined();
    }
  });

  it('sorts all versions of a window together, v1 first, before the next window', () => {
    const keys = [start, start + 300_000].flatMap((s) =>
      [1, 2, 9, 10, 11, 100].map((v) => manifestObjectKey('orders', s, v)),
    );
    const sorted = [...keys].sort(compareKeys);
    const parsed = sorted.map((k) => parseManifestKey('orders', k)!);
    // Windows in time order, each window's versions adjacent, v1 at the head of its run.
    expect(parsed.map((p) => p.windowStartMs)).toEqual([
      ...Array(6).fill(start),
      ...Array(6).fill(start + 300_000),
    ]);
    expect(parsed[0]!.version).toBe(1);
    expect(parsed[6]!.version).toBe(1);
    // As text, v10 sorts before v9: readers compare versions as numbers.
    expect(sorted.slice(0, 6).map((k) => parseManifestKey('orders', k)!.version)).toEqual([
      1, 10, 100, 11, 2, 9,
    ]);
  });

  it('startAfter lists every version of the first window and nothing of the one before', () => {
    const before = start - 300_000;
    const keys = [before, start].flatMap((s) => [1, 2, 10].map((v) => manifestObjectKey('orders', s, v)));
    const after = manifestStartAfter('orders', start);
    expect(keys.filter((k) => compareKeys(k, after) > 0)).toEqual(
      [1, 2, 10].map((v) => manifestObjectKey('orders', start, v)),
    );
  });
});

describe('symlink manifest keys', () => {
  it('sit under <table>/symlinks/dt=YYYY-MM-DD/<windowId>.txt, next to the manifests', () => {
    const start = Date.UTC(2026, 10, 22, 10, 5);
    expect(symlinkPrefix('orders')).toBe('orders/symlinks/');
    expect(symlinkObjectKey('orders', start)).toBe('orders/symlinks/dt=2026-11-22/20261122T100500Z.txt');
    // The last window of a day is in that day's partition (what Glue's dt projection reads).
    expect(symlinkObjectKey('orders', Date.UTC(2026, 10, 22, 23, 55))).toBe(
      'orders/symlinks/dt=2026-11-22/20261122T235500Z.txt',
    );
    expect(() => symlinkObjectKey('a/b', start)).toThrow(/invalid table name "a\/b"/);
  });

  it('sort by time, like the manifests', () => {
    const starts = [0, 1, 2, 3].map((i) => Date.UTC(2026, 10, 22, 23, 50) + i * 300_000);
    const keys = starts.map((s) => symlinkObjectKey('orders', s));
    expect([...keys].sort(compareKeys)).toEqual(keys);
  });
});

describe('segmentId', () => {
  const base = {
    windowStartMs: Date.UTC(2026, 10, 22, 10, 5),
    compression: 'zstd',
    shards: [
      { shardId: 'shardId-A', firstSequenceNumber: '100', lastSequenceNumber: '200' },
      { shardId: 'shardId-B', firstSequenceNumber: '300', lastSequenceNumber: '400' },
    ],
  };

  it('is deterministic and independent of shard order', () => {
    const id = segmentId(base);
    expect(id).toMatch(new RegExp(`^${SEGMENT_ID_PREFIX}[0-9a-f]{32}$`));
    expect(segmentId({ ...base, shards: [...base.shards] })).toBe(id);
    expect(segmentId({ ...base, shards: [base.shards[1]!, base.shards[0]!] })).toBe(id);
  });

  it('changes with the window, the codec and every shard range field', () => {
    const id = segmentId(base);
    const variants = [
      { ...base, windowStartMs: base.windowStartMs + 300_000 },
      { ...base, compression: 'snappy' },
      { ...base, shards: [{ ...base.shards[0]!, shardId: 'shardId-C' }, base.shards[1]!] },
      { ...base, shards: [{ ...base.shards[0]!, firstSequenceNumber: '101' }, base.shards[1]!] },
      { ...base, shards: [base.shards[0]!, { ...base.shards[1]!, lastSequenceNumber: '401' }] },
      { ...base, shards: [base.shards[0]!] },
    ];
    const ids = variants.map(segmentId);
    for (const other of ids) expect(other).not.toBe(id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('tableOfStreamArn', () => {
  it('extracts the table name', () => {
    expect(
      tableOfStreamArn('arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T00:00:00.000'),
    ).toBe('orders');
    expect(tableOfStreamArn('arn:aws:dynamodb:us-east-1:123456789012:table/orders')).toBeUndefined();
  });
});
