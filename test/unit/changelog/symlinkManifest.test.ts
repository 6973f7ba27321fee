import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { segmentObjectKey } from '../../../src/changelog/layout.js';
import { buildManifest, type Manifest, type SegmentFacts } from '../../../src/changelog/manifest.js';
import {
  objectUrl,
  symlinkManifestBody,
  symlinkManifestUrls,
} from '../../../src/changelog/symlinkManifest.js';
import { REPO_ROOT } from '../../helpers/awsCallRecorder.js';

const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-01T00:00:00.000';
/** 2026-11-22T10:05:00Z */
const WINDOW = Date.UTC(2026, 10, 22, 10, 5, 0);
const GOLDEN = path.join(REPO_ROOT, 'test', 'fixtures', 'symlinks', 'orders-20261122T100500Z.txt');

function segment(id: string, shard: string): SegmentFacts {
  return {
    key: segmentObjectKey('orders', WINDOW, id),
    streamArn: ARN,
    bytes: 10,
    records: 1,
    checksum: `sha256:${'0'.repeat(64)}`,
    minEventTimeMs: WINDOW,
    maxEventTimeMs: WINDOW,
    lateRecords: 0,
    shards: [
      {
        shardId: shard,
        afterSequenceNumber: 'TRIM_HORIZON',
        firstSequenceNumber: '100000000000000000001',
        lastSequenceNumber: '100000000000000000001',
        records: 1,
      },
    ],
  };
}

function manifest(segments: SegmentFacts[]): Manifest {
  return buildManifest({
    table: 'orders',
    windowStartMs: WINDOW,
    windowMs: 300_000,
    sealedAtMs: WINDOW + 360_000,
    version: 1,
    streamArn: ARN,
    segments,
    gaps: [],
  });
}

// Not in key order: the symlink keeps the manifest's order, whatever it is.
const THREE = manifest([
  segment('s1-9f00000000000000000000000000000b', 'shard-b'),
  segment('s1-1a00000000000000000000000000000a', 'shard-a'),
  segment('s1-5c00000000000000000000000000000c', 'shard-c'),
]);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe('symlink manifest body', () => {
  it('is the golden file: one s3:// URL a line, in the manifest order, a newline after every line', () => {
    const body = symlinkManifestBody(THREE, 's3://my-changelog-bucket/changelog');
    expect(Buffer.from(body)).toEqual(readFileSync(GOLDEN));
    expect(text(body).split('\n')).toHaveLength(4); // three lines and the empty rest after the last \n
  });

  it('is the same bytes for the same manifest and destination, and differs with the destination', () => {
    const a = symlinkManifestBody(THREE, 's3://my-changelog-bucket/changelog');
    const b = symlinkManifestBody(structuredClone(THREE), 's3://my-changelog-bucket/changelog/');
    expect(Buffer.from(b)).toEqual(Buffer.from(a));
    const other = symlinkManifestBody(THREE, 's3://my-changelog-bucket/elsewhere');
    expect(Buffer.from(other)).not.toEqual(Buffer.from(a));
  });

  it('lists file:// URLs for a local destination, so local runs work too', () => {
    const lines = text(symlinkManifestBody(THREE, 'file:///var/changelog')).split('\n');
    expect(lines[0]).toBe(
      'file:///var/changelog/orders/data/dt=2026-11-22/window=20261122T100500Z/s1-9f00000000000000000000000000000b.parquet',
    );
  });

  it('is empty for an empty window: Athena reads nothing from it', () => {
    expect(symlinkManifestBody(manifest([]), 's3://b/p').byteLength).toBe(0);
  });

  it('lists a segment the manifest repeats once', () => {
    const twice = manifest([segment('s1-a', 'shard-a'), segment('s1-b', 'shard-b')]);
    twice.segments.push(twice.segments[0]!);
    expect(symlinkManifestUrls(twice, 's3://b')).toEqual([
      's3://b/orders/data/dt=2026-11-22/window=20261122T100500Z/s1-a.parquet',
      's3://b/orders/data/dt=2026-11-22/window=20261122T100500Z/s1-b.parquet',
    ]);
  });
});

describe('objectUrl', () => {
  it('joins a destination and a relative key with one slash, keeping the scheme', () => {
    expect(objectUrl('s3://bucket', 'a/b.parquet')).toBe('s3://bucket/a/b.parquet');
    expect(objectUrl('s3://bucket/prefix', 'a/b.parquet')).toBe('s3://bucket/prefix/a/b.parquet');
    expect(objectUrl('s3://bucket/prefix//', 'a')).toBe('s3://bucket/prefix/a');
    expect(objectUrl('file:///dir', 'a')).toBe('file:///dir/a');
    expect(objectUrl('file:///', 'a')).toBe('file:///a');
  });
});
