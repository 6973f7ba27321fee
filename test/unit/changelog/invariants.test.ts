import { describe, expect, it } from 'vitest';
import {
  manifestViolations,
  ShardChains,
  sealRefusal,
  sealViolations,
  symlinkViolations,
} from '../../../src/changelog/invariants.js';
import { buildManifest, type Manifest, type SegmentFacts } from '../../../src/changelog/manifest.js';
import { symlinkManifestBody } from '../../../src/changelog/symlinkManifest.js';
import { W, WINDOW_MS } from '../../helpers/commitFixtures.js';

const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';

function segment(
  key: string,
  shardId: string,
  after: string,
  first: string,
  last: string,
  records = 2,
): SegmentFacts {
  return {
    key,
    streamArn: ARN,
    bytes: 10,
    records,
    checksum: 'x',
    minEventTimeMs: W(0),
    maxEventTimeMs: W(0) + 1,
    lateRecords: 0,
    shards: [
      { shardId, afterSequenceNumber: after, firstSequenceNumber: first, lastSequenceNumber: last, records },
    ],
  };
}

function manifest(windowStartMs: number, segments: SegmentFacts[], gaps: Manifest['gaps'] = []): Manifest {
  return buildManifest({
    table: 'orders',
    windowStartMs,
    windowMs: WINDOW_MS,
    sealedAtMs: windowStartMs + WINDOW_MS,
    version: 1,
    streamArn: ARN,
    segments,
    gaps: gaps.map((g) => ({
      shardId: g.shardId,
      afterSequenceNumber: g.afterSequenceNumber,
      reason: g.reason,
    })),
  });
}

describe('invariants', () => {
  it('finds nothing in a consistent window whose shards chain', () => {
    const m = manifest(W(0), [
      segment('a', 's1', 'TRIM_HORIZON', '10', '20'),
      segment('b', 's1', '20', '21', '30'),
    ]);
    expect(sealViolations(m, 'k')).toEqual([]);
  });

  it('reports counts that do not add up and a complete flag that disagrees, all at once', () => {
    const m = manifest(W(0), [segment('a', 's1', 'TRIM_HORIZON', '10', '20')]);
    m.recordCount = 5;
    m.complete = false;
    m.segments[0]!.shards[0]!.records = 1;
    expect(manifestViolations(m, 'k').map((v) => v.kind)).toEqual([
      'complete-flag',
      'record-count',
      'record-count',
    ]);
  });

  it('accepts segments added up to the manifest version and reports one from a later version', () => {
    const m = manifest(W(0), [
      segment('a', 's1', 'TRIM_HORIZON', '10', '20'),
      segment('b', 's2', 'TRIM_HORIZON', '5', '6'),
    ]);
    m.version = 2;
    m.segments[1]!.addedInVersion = 2;
    expect(manifestViolations(m, 'k')).toEqual([]);
    m.segments[1]!.addedInVersion = 3;
    expect(manifestViolations(m, 'k')).toEqual([
      {
        kind: 'segment-version',
        message: 'segment b says addedInVersion 3, but manifest k is version 2',
        key: 'k',
        window: new Date(W(0)).toISOString(),
      },
    ]);
  });

  it('chains a shard across windows, numerically, and accepts a hole only where a gap is listed', () => {
    const chains = new ShardChains();
    chains.add(manifest(W(0), [segment('a', 's1', 'TRIM_HORIZON', '10', '0020')]));
    // "20" and "0020" are the same position.
    chains.add(manifest(W(1), [segment('b', 's1', '20', '21', '30')]));
    expect(chains.violations()).toEqual([]);
    chains.add(manifest(W(2), [segment('c', 's1', '35', '40', '50')]));
    const [hole] = chains.violations();
    expect(hole).toMatchObject({ kind: 'sequence-discontinuity', shardId: 's1', key: 'c' });
    expect(hole!.message).toContain('ends at 30');

    const covered = new ShardChains();
    covered.add(manifest(W(1), [segment('b', 's1', '20', '21', '30')]));
    covered.add(
      manifest(
        W(2),
        [segment('c', 's1', '35', '40', '50')],
        [{ shardId: 's1', afterSequenceNumber: '30', reason: 'TrimmedDataAccessException' }],
      ),
    );
    expect(covered.violations()).toEqual([]);
  });

  it('names the window and every violation when the sealer refuses', () => {
    const m = manifest(W(1), [segment('a', 's1', '10', '10', '9')]);
    const violations = sealViolations(m, 'k');
    expect(violations.map((v) => v.kind)).toEqual(['sequence-order', 'sequence-order']);
    expect(sealRefusal(W(1), violations)).toMatch(
      /^refusing to seal window 20260115T100100Z: shard s1 is not contiguous: a ends at 9 before it starts at 10; shard s1 is not contiguous: a starts at 10, not after 10$/,
    );
  });
});

describe('symlinkViolations', () => {
  const DEST = 's3://bucket/changelog';
  const m = manifest(W(0), [
    segment('orders/data/a.parquet', 's1', 'TRIM_HORIZON', '10', '20'),
    segment('orders/data/b.parquet', 's2', 'TRIM_HORIZON', '10', '20'),
  ]);
  const url = (name: string) => `${DEST}/orders/data/${name}.parquet`;
  const check = (body: Uint8Array | string | undefined) =>
    symlinkViolations({
      manifest: m,
      manifestKey: 'mk',
      windowStartMs: W(0),
      symlinkKey: 'sk',
      body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
      destinationUrl: DEST,
    });
  const message = (body: string) => {
    const found = check(body);
    expect(found.map((v) => [v.kind, v.key, v.window])).toEqual([
      ['symlink-mismatch', 'sk', '2026-01-15T10:00:00.000Z'],
    ]);
    return found[0]!.message;
  };

  it('finds nothing when the object is what the sealer writes', () => {
    expect(check(symlinkManifestBody(m, DEST))).toEqual([]);
    expect(check(`${url('a')}\n${url('b')}\n`)).toEqual([]);
  });

  it('reports a missing symlink manifest, naming the window and the manifest', () => {
    expect(check(undefined)).toEqual([
      {
        kind: 'symlink-missing',
        message:
          'window 2026-01-15T10:00:00.000Z has no symlink manifest at sk (manifest mk lists 2 segment(s))',
        key: 'sk',
        window: '2026-01-15T10:00:00.000Z',
      },
    ]);
  });

  it('names what differs: missing and extra URLs, repeats, order, the last newline', () => {
    expect(message(`${url('a')}\n${url('c')}\n`)).toBe(
      `symlink manifest sk does not list exactly the 2 segment(s) of manifest mk: 1 segment URL(s) of the manifest missing: "${url('b')}"; 1 line(s) that are no segment URL of the manifest: "${url('c')}"`,
    );
    expect(message(`${url('a')}\n${url('b')}\n${url('a')}\n`)).toMatch(
      /: 1 line\(s\) listed more than once: ".*a\.parquet"$/,
    );
    expect(message(`${url('b')}\n${url('a')}\n`)).toMatch(
      /: the segment URLs are in another order than the manifest's segments$/,
    );
    expect(message(`${url('a')}\n${url('b')}`)).toMatch(/: the last line has no newline$/);
    // Another destination (a copied changelog) lists other URLs: every line differs.
    expect(message(`s3://other/orders/data/a.parquet\n${url('b')}\n`)).toMatch(
      /1 segment URL\(s\) of the manifest missing: .*; 1 line\(s\) that are no segment URL/,
    );
    expect(message('')).toMatch(
      /: 2 segment URL\(s\) of the manifest missing: "[^"]+a\.parquet", "[^"]+b\.parquet"$/,
    );
  });

  it('expects an empty file for an empty window', () => {
    const empty = manifest(W(0), []);
    const run = (body: string) =>
      symlinkViolations({
        manifest: empty,
        manifestKey: 'mk',
        windowStartMs: W(0),
        symlinkKey: 'sk',
        body: new TextEncoder().encode(body),
        destinationUrl: DEST,
      }).map((v) => v.message);
    expect(run('')).toEqual([]);
    expect(run('\n')).toEqual([
      'symlink manifest sk does not list exactly the 0 segment(s) of manifest mk: 1 line(s) that are no segment URL of the manifest: ""',
    ]);
  });
});
