import { ChangeBuffer } from '../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../src/changelog/keySchema.js';
import {
  isoTime,
  manifestObjectKey,
  segmentId,
  segmentObjectKey,
  symlinkObjectKey,
} from '../../src/changelog/layout.js';
import {
  MANIFEST_FORMAT_VERSION,
  type Manifest,
  type ManifestGap,
  type ManifestSegment,
  parseManifest,
  serializeManifest,
} from '../../src/changelog/manifest.js';
import { encodeSegment } from '../../src/changelog/segmentEncoder.js';
import { symlinkManifestBody } from '../../src/changelog/symlinkManifest.js';
import { decodeGetRecordsResponse } from '../../src/changelog/wireRecordDecoder.js';
import { type ObjectStore, sha256Checksum } from '../../src/coordination/objectStore.js';
import { generateRecords, getRecordsResponse, type WireRecord } from './streamRecords.js';

/*
 * Builders for small, real changelogs: segments encoded by the real encoder from generated stream
 * records, manifests serialized by the real serializer, written through an ObjectStore. Tests
 * derive corrupt variants from the clean one with the overrides below.
 */

export const TABLE = 'orders';
export const STREAM_ARN =
  'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T00:00:00.000';
export const WINDOW_MS = 60_000;
/** 2026-11-22T10:00:00Z */
export const FIRST_WINDOW_MS = Date.UTC(2026, 10, 22, 10, 0, 0);
export const SHARD_A = 'shardId-00000001763800000000-aaaaaaaa';
export const SHARD_B = 'shardId-00000001763800000000-bbbbbbbb';
const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');

/** Where each shard's numbering starts: A from TRIM_HORIZON, B mid-stream (after an earlier range). */
const SHARD_START: Record<string, { sequence: bigint; after: string }> = {
  [SHARD_A]: { sequence: 100_000_000_000_000_000_000n, after: 'TRIM_HORIZON' },
  [SHARD_B]: { sequence: 200_000_000_000_000_000_000n, after: '199999999999999999000' },
};

export interface ShardPart {
  shardId: string;
  records: WireRecord[];
  afterSequenceNumber: string;
}

export interface BuiltSegment {
  key: string;
  bytes: Uint8Array;
  entry: ManifestSegment;
}

/** Encodes the parts into one real segment and its manifest entry. */
export function buildSegment(windowStartMs: number, parts: ShardPart[], table = TABLE): BuiltSegment {
  const buffer = new ChangeBuffer(KEY_SCHEMA);
  for (const part of parts) decodeGetRecordsResponse(getRecordsResponse(part.records), part.shardId, buffer);
  const encoded = encodeSegment(buffer, { metadata: { table } });
  const after = new Map(parts.map((p) => [p.shardId, p.afterSequenceNumber]));
  const key = segmentObjectKey(
    table,
    windowStartMs,
    segmentId({ windowStartMs, compression: 'zstd', shards: encoded.shards }),
  );
  const lateRecords = parts
    .flatMap((p) => p.records)
    .filter((r) => r.dynamodb.ApproximateCreationDateTime * 1000 < windowStartMs).length;
  return {
    key,
    bytes: encoded.bytes,
    entry: {
      key,
      bytes: encoded.bytes.length,
      records: encoded.records,
      checksum: sha256Checksum(encoded.bytes),
      minEventTime: isoTime(encoded.minEventTimeMs),
      maxEventTime: isoTime(encoded.maxEventTimeMs),
      lateRecords,
      shards: encoded.shards.map((s) => ({
        shardId: s.shardId,
        afterSequenceNumber: after.get(s.shardId)!,
        firstSequenceNumber: s.firstSequenceNumber,
        lastSequenceNumber: s.lastSequenceNumber,
        records: s.records,
      })),
    },
  };
}

export interface ManifestOptions {
  gaps?: ManifestGap[];
  /** Default: true exactly when every gap is filled (or there are none). */
  complete?: boolean;
  windowMs?: number;
  table?: string;
}

/** A manifest whose counts add up from its segments. */
export function buildManifest(
  windowStartMs: number,
  segments: ManifestSegment[],
  options: ManifestOptions = {},
): Manifest {
  const gaps = options.gaps ?? [];
  const windowMs = options.windowMs ?? WINDOW_MS;
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    table: options.table ?? TABLE,
    streamArn: STREAM_ARN,
    window: { start: isoTime(windowStartMs), end: isoTime(windowStartMs + windowMs) },
    sealedAt: isoTime(windowStartMs + windowMs + 30_000),
    version: 1,
    complete: options.complete ?? gaps.every((g) => g.filledBy !== undefined),
    recordCount: segments.reduce((n, s) => n + s.records, 0),
    lateRecordCount: segments.reduce((n, s) => n + s.lateRecords, 0),
    segments,
    gaps,
  };
}

export interface PreviousRange {
  first: string;
  last: string;
}

/** Changes to one shard's part of one window, relative to the clean changelog. */
export interface PartOverride {
  /** Sequence numbers start just above this (default: the previous part's last). */
  startSequence?: bigint;
  /** Default: the previous part's last, or the shard's start. */
  afterSequenceNumber?: string;
  mapRecords?: (records: WireRecord[]) => void;
}

export interface ChangelogSpecOptions {
  /**
   * Per window, its segments, each the shard ids it holds. Default: window 0 one segment of both
   * shards, window 1 one segment per shard, window 2 one segment of both.
   */
  layout?: string[][][];
  recordsPerPart?: number;
  override?: (
    window: number,
    shardId: string,
    previous: PreviousRange | undefined,
  ) => PartOverride | undefined;
  gaps?: Record<number, ManifestGap[]>;
}

export interface FixtureWindow {
  startMs: number;
  segments: BuiltSegment[];
  manifest: Manifest;
}

export interface ChangelogSpec {
  windows: FixtureWindow[];
}

export const DEFAULT_LAYOUT: string[][][] = [
  [[SHARD_A, SHARD_B]],
  [[SHARD_A], [SHARD_B]],
  [[SHARD_A, SHARD_B]],
];

/**
 * A changelog of consecutive windows whose shard ranges chain: every part starts right after the
 * shard's previous part, and its afterSequenceNumber is that part's last. Deterministic.
 */
export function buildChangelogSpec(options: ChangelogSpecOptions = {}): ChangelogSpec {
  const layout = options.layout ?? DEFAULT_LAYOUT;
  const recordsPerPart = options.recordsPerPart ?? 12;
  const previous = new Map<string, PreviousRange>();
  const windows = layout.map((segments, w) => {
    const startMs = FIRST_WINDOW_MS + w * WINDOW_MS;
    const built = segments.map((shardIds, s) => {
      const parts = shardIds.map((shardId, p): ShardPart => {
        const before = previous.get(shardId);
        const o = options.override?.(w, shardId, before) ?? {};
        const start = SHARD_START[shardId] ?? {
          sequence: 300_000_000_000_000_000_000n,
          after: 'TRIM_HORIZON',
        };
        const records = generateRecords({
          records: recordsPerPart,
          seed: 1 + w * 100 + s * 10 + p,
          startSequence: o.startSequence ?? (before ? BigInt(before.last) : start.sequence),
          startTimeSeconds: startMs / 1000 + 5,
        });
        // Ids from shard, window and sequence: unique across the changelog unless a test says otherwise.
        for (const r of records) r.eventID = `ev-${shardId.slice(-8)}-w${w}-${r.dynamodb.SequenceNumber}`;
        o.mapRecords?.(records);
        const sequences = records.map((r) => BigInt(r.dynamodb.SequenceNumber));
        const first = sequences.reduce((a, b) => (b < a ? b : a));
        const last = sequences.reduce((a, b) => (b > a ? b : a));
        previous.set(shardId, { first: String(first), last: String(last) });
        return {
          shardId,
          records,
          afterSequenceNumber: o.afterSequenceNumber ?? before?.last ?? start.after,
        };
      });
      return buildSegment(startMs, parts);
    });
    const manifest = buildManifest(
      startMs,
      built.map((b) => b.entry),
      { gaps: options.gaps?.[w] ?? [] },
    );
    return { startMs, segments: built, manifest };
  });
  return { windows };
}

/** Writes every segment, then every manifest (as the pipeline would: data before the index). */
export async function writeChangelog(store: ObjectStore, spec: ChangelogSpec): Promise<void> {
  for (const window of spec.windows) {
    for (const segment of window.segments) await store.putIfAbsent(segment.key, segment.bytes);
  }
  for (const window of spec.windows) await writeManifest(store, window.manifest);
}

/** Writes a manifest as the sealer does: a version 1 manifest's symlink manifest first. */
export async function writeManifest(store: ObjectStore, manifest: Manifest): Promise<string> {
  const windowStartMs = Date.parse(manifest.window.start);
  if (manifest.version === 1) await writeSymlink(store, manifest.table, windowStartMs, manifest);
  const key = manifestObjectKey(manifest.table, windowStartMs, manifest.version);
  await store.putIfAbsent(key, serializeManifest(manifest), { contentType: 'application/json' });
  return key;
}

/**
 * Writes the symlink manifest the sealer writes for `manifest` into the window `windowStartMs`: its
 * segments in the published (serialized, key-sorted) manifest's order.
 */
export async function writeSymlink(
  store: ObjectStore,
  table: string,
  windowStartMs: number,
  manifest: Manifest,
): Promise<string> {
  const key = symlinkObjectKey(table, windowStartMs);
  const published = parseManifest(serializeManifest(manifest), key);
  await store.putIfAbsent(key, symlinkManifestBody(published, store.url), { contentType: 'text/plain' });
  return key;
}
