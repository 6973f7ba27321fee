import { describe, expect, it } from 'vitest';
import { manifestViolations } from '../../../src/changelog/invariants.js';
import { type Manifest, parseManifest, serializeManifest } from '../../../src/changelog/manifest.js';
import { ChangelogError } from '../../../src/support/errors.js';

const checksum = (c: string) => `sha256:${c.repeat(64)}`;

function sample(): Manifest {
  return {
    formatVersion: 1,
    table: 'orders',
    streamArn: 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T00:00:00.000',
    window: { start: '2026-11-22T10:00:00.000Z', end: '2026-11-22T10:05:00.000Z' },
    sealedAt: '2026-11-22T10:06:00.000Z',
    version: 1,
    complete: false,
    recordCount: 5,
    lateRecordCount: 1,
    segments: [
      {
        key: 'orders/data/dt=2026-11-22/window=20261122T100000Z/s1-bbb.parquet',
        bytes: 2000,
        records: 3,
        checksum: checksum('b'),
        minEventTime: '2026-11-22T09:59:59.000Z',
        maxEventTime: '2026-11-22T10:01:00.000Z',
        lateRecords: 1,
        shards: [
          {
            shardId: 'shardId-B',
            afterSequenceNumber: '900',
            firstSequenceNumber: '1000',
            lastSequenceNumber: '1001',
            records: 2,
          },
          {
            shardId: 'shardId-A',
            afterSequenceNumber: 'TRIM_HORIZON',
            firstSequenceNumber: '5',
            lastSequenceNumber: '5',
            records: 1,
          },
        ],
      },
      {
        key: 'orders/data/dt=2026-11-22/window=20261122T100000Z/s1-aaa.parquet',
        bytes: 1000,
        records: 2,
        checksum: checksum('a'),
        minEventTime: '2026-11-22T10:02:00.000Z',
        maxEventTime: '2026-11-22T10:03:00.000Z',
        lateRecords: 0,
        shards: [
          {
            shardId: 'shardId-C',
            afterSequenceNumber: '10',
            firstSequenceNumber: '11',
            lastSequenceNumber: '12',
            records: 2,
          },
        ],
      },
    ],
    gaps: [
      {
        shardId: 'shardId-D',
        afterSequenceNumber: '70',
        resumedAtSequenceNumber: '90',
        reason: 'TrimmedDataAccessException',
      },
      {
        shardId: 'shardId-C',
        afterSequenceNumber: 'TRIM_HORIZON',
        detectedAt: '2026-11-22T10:04:00.000Z',
        reason: 'TrimmedDataAccessException',
      },
    ],
  };
}

/** The same manifest with every object's keys inserted in reverse order. */
function reverseKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reverseKeys) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reverseKeys(v)]),
    ) as T;
  }
  return value;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('serializeManifest', () => {
  it('writes canonical bytes: fields in schema order, arrays sorted, two-space JSON, trailing newline', () => {
    const out = text(serializeManifest(sample()));
    expect(out.endsWith('}\n')).toBe(true);
    expect(out.startsWith('{\n  "formatVersion": 1,\n  "table": "orders",\n')).toBe(true);
    const parsed = JSON.parse(out) as Manifest;
    expect(Object.keys(parsed)).toEqual([
      'formatVersion',
      'table',
      'streamArn',
      'window',
      'sealedAt',
      'version',
      'complete',
      'recordCount',
      'lateRecordCount',
      'segments',
      'gaps',
    ]);
    expect(parsed.segments.map((s) => s.key.split('/').pop())).toEqual(['s1-aaa.parquet', 's1-bbb.parquet']);
    expect(parsed.segments[1]!.shards.map((s) => s.shardId)).toEqual(['shardId-A', 'shardId-B']);
    expect(parsed.gaps.map((g) => g.shardId)).toEqual(['shardId-C', 'shardId-D']);
    expect(Object.keys(parsed.gaps[1]!)).toEqual([
      'shardId',
      'afterSequenceNumber',
      'resumedAtSequenceNumber',
      'reason',
    ]);
  });

  it('gives identical bytes whatever the input order of fields, segments, shards and gaps', () => {
    const expected = Buffer.from(serializeManifest(sample()));
    const shuffled = sample();
    shuffled.segments.reverse();
    for (const s of shuffled.segments) s.shards.reverse();
    shuffled.gaps.reverse();
    expect(Buffer.from(serializeManifest(shuffled)).equals(expected)).toBe(true);
    expect(Buffer.from(serializeManifest(reverseKeys(sample()))).equals(expected)).toBe(true);
  });

  it('round-trips through parseManifest', () => {
    const bytes = serializeManifest(sample());
    const parsed = parseManifest(bytes, 'k');
    expect(parsed.recordCount).toBe(5);
    expect(Buffer.from(serializeManifest(parsed)).equals(Buffer.from(bytes))).toBe(true);
  });

  it("round-trips a replay's provenance (segment source, gap filledBy) in canonical order; complete counts filled gaps", () => {
    const m = sample();
    m.version = 2;
    m.segments[0]!.addedInVersion = 2;
    m.segments[0]!.shards = [];
    // Fields given out of schema order: the bytes come out in schema order all the same.
    m.segments[0]!.source = {
      scanStartedAt: '2026-11-22T10:01:00.000Z',
      mode: 'bootstrap',
      replayId: 'r1',
      kind: 'scan',
    } as Manifest['segments'][number]['source'];
    m.gaps[0]!.filledBy = {
      records: 3,
      filledAt: '2026-11-23T00:00:00.000Z',
      kind: 'export',
      replayId: 'r2',
      exportArn: 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/export/01',
    } as NonNullable<Manifest['gaps'][number]['filledBy']>;
    const text = Buffer.from(serializeManifest(m)).toString('utf8');
    expect(text).toContain(
      '"source": {\n        "kind": "scan",\n        "replayId": "r1",\n        "mode": "bootstrap",\n        "scanStartedAt": "2026-11-22T10:01:00.000Z"\n      },\n      "shards": []',
    );
    expect(text).toContain(
      '"reason": "TrimmedDataAccessException",\n      "filledBy": {\n        "replayId": "r2",\n        "kind": "export",',
    );
    const parsed = parseManifest(new TextEncoder().encode(text), 'k');
    expect(parsed.segments.find((x) => x.key === m.segments[0]!.key)!.source).toEqual(m.segments[0]!.source);
    expect(parsed.gaps.map((g) => g.filledBy)).toContainEqual(m.gaps[0]!.filledBy);
    // Every gap filled: complete must say true (the invariants check the flag).
    const flag = (manifest: Manifest, complete: boolean) =>
      manifestViolations({ ...manifest, complete }, 'k').filter((v) => v.kind === 'complete-flag').length;
    const allFilled = { ...parsed, gaps: parsed.gaps.map((g) => ({ ...g, filledBy: m.gaps[0]!.filledBy })) };
    expect(flag(allFilled, true)).toBe(0);
    expect(flag(allFilled, false)).toBe(1);
    expect(flag(parsed, true)).toBe(parsed.gaps.length > 1 ? 1 : 0);
  });

  it('refuses to serialize an invalid manifest', () => {
    expect(() => serializeManifest({ ...sample(), recordCount: -1 })).toThrow();
  });
});

describe('parseManifest', () => {
  const key = 'orders/manifests/dt=2026-11-22/20261122T100000Z.json';

  function problem(value: unknown): ChangelogError {
    try {
      parseManifest(encode(value), key);
    } catch (error) {
      expect(error).toBeInstanceOf(ChangelogError);
      expect((error as ChangelogError).retriable).toBe(false);
      expect((error as ChangelogError).context.key).toBe(key);
      return error as ChangelogError;
    }
    throw new Error('parseManifest accepted an invalid manifest');
  }

  it('names the key when the bytes are not JSON or not UTF-8', () => {
    expect(() => parseManifest(new TextEncoder().encode('{"formatVersion":'), key)).toThrow(
      new RegExp(`^manifest ${key} is not valid JSON`),
    );
    expect(() => parseManifest(new Uint8Array([0x7b, 0xff, 0x7d]), key)).toThrow(/is not valid JSON/);
  });

  it('names the path of every problem at once', () => {
    const m = sample() as unknown as Record<string, unknown>;
    const error = problem({ ...m, formatVersion: 2, recordCount: 1.5, complete: 'yes' });
    expect(error.message).toMatch(/does not match the schema/);
    expect(error.message).toMatch(/formatVersion: /);
    expect(error.message).toMatch(/recordCount: /);
    expect(error.message).toMatch(/complete: /);
  });

  it('rejects bad sequence numbers, checksums, times and unknown fields', () => {
    const bad = sample();
    bad.segments[0]!.shards[0]!.firstSequenceNumber = '12a';
    expect(problem(bad).message).toMatch(
      /segments\.0\.shards\.0\.firstSequenceNumber: a stream sequence number/,
    );

    const badChecksum = sample();
    badChecksum.segments[1]!.checksum = `sha256:${'A'.repeat(64)}`;
    expect(problem(badChecksum).message).toMatch(/segments\.1\.checksum: /);

    const badTime = sample();
    badTime.window.start = '2026-11-22T10:00:00+01:00';
    expect(problem(badTime).message).toMatch(/window\.start: /);

    expect(problem({ ...sample(), extra: 1 }).message).toMatch(/extra/);
    const gap = sample();
    (gap.gaps[0] as unknown as Record<string, unknown>).reason = 'Timeout';
    expect(problem(gap).message).toMatch(/gaps\.0\.reason: /);
  });

  it('requires positive counts; shards are required by the invariants, except for a scan or export segment', () => {
    const noShards = sample();
    noShards.segments[0]!.shards = [];
    const key = 'orders/manifests/x.json';
    const shardProblems = (m: Manifest) =>
      manifestViolations(m, key)
        .filter((v) => v.kind === 'shard-range')
        .map((v) => v.message);
    expect(shardProblems(noShards)).toEqual([
      `segment ${noShards.segments[0]!.key} lists no stream shard; only a scan's or an export's segment (source) may`,
    ]);
    const scanned = structuredClone(noShards);
    scanned.segments[0]!.source = {
      kind: 'scan',
      replayId: 'r1',
      mode: 'bootstrap',
      scanStartedAt: '2026-11-22T10:00:00.000Z',
    };
    expect(shardProblems(scanned)).toEqual([]);
    const mixed = sample();
    mixed.segments[0]!.source = { kind: 'export', replayId: 'r1', mode: 'fill-gaps' };
    expect(shardProblems(mixed)).toEqual([
      `segment ${mixed.segments[0]!.key} holds replay r1's export rows but lists ${mixed.segments[0]!.shards.length} stream shard(s)`,
    ]);
    const zero = sample();
    zero.segments[0]!.records = 0;
    expect(problem(zero).message).toMatch(/segments\.0\.records: /);
  });

  it('rejects a root that is not an object', () => {
    expect(problem([]).message).toMatch(/\(root\): /);
  });
});
