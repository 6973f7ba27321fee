import { z } from 'zod';
import { parseJsonDocument } from './jsonDocument.js';
import { isoTime } from './layout.js';

/*
 * The window manifest: the contract consumers rely on (DESIGN.md). docs/manifest.schema.json is
 * the JSON Schema of the same shape; a test keeps the two in step.
 */

export const MANIFEST_FORMAT_VERSION = 1;

const sequenceNumber = z.string().regex(/^\d{1,40}$/, 'a stream sequence number (digits)');
const isoDateTime = z.iso.datetime({ offset: false });

export const manifestShardSchema = z.strictObject({
  shardId: z.string().min(1),
  /**
   * The shard's checkpoint before this segment: the last sequence number of the shard's previous
   * segment, or TRIM_HORIZON for the shard's first. Contiguity means every segment of a shard
   * starts right after the one before it.
   */
  afterSequenceNumber: z.union([sequenceNumber, z.literal('TRIM_HORIZON')]),
  firstSequenceNumber: sequenceNumber,
  lastSequenceNumber: sequenceNumber,
  records: z.number().int().positive(),
});

/** The replay modes (`dynamodb-changelog replay --mode`). */
export const REPLAY_MODES = ['bootstrap', 'fill-gaps', 'rebuild'] as const;
export type ReplayMode = (typeof REPLAY_MODES)[number];

/**
 * What produced a segment that `replay` added (absent: the live daemon, from the stream). A scan
 * or export segment holds SNAPSHOT or NET rows (changelog/snapshotRows.ts) and lists no shards.
 */
export const segmentSourceSchema = z.strictObject({
  kind: z.enum(['scan', 'export', 'stream']),
  /** The replay that wrote it; its rows' event ids start with it (scan, export). */
  replayId: z.string().min(1),
  mode: z.enum(REPLAY_MODES),
  exportArn: z.string().min(1).optional(),
  exportType: z.enum(['FULL_EXPORT', 'INCREMENTAL_EXPORT']).optional(),
  /** A full export's point in time, or an incremental export's period end. */
  exportTime: isoDateTime.optional(),
  /** An incremental export's period start. */
  exportFromTime: isoDateTime.optional(),
  /** When the scan started (its rows' event time is DEFAULTS.replay.scanSnapshotMarginMs before). */
  scanStartedAt: isoDateTime.optional(),
});

export const manifestSegmentSchema = z.strictObject({
  /** Relative to the destination prefix: `<table>/data/dt=.../window=.../<id>.parquet`. */
  key: z.string().min(1),
  /**
   * The stream the segment's records were read from, when it is not the manifest's `streamArn`
   * (a window where `run` moved from a table's stream to the re-enabled one holds both).
   */
  streamArn: z.string().min(1).optional(),
  bytes: z.number().int().positive(),
  records: z.number().int().positive(),
  /** `sha256:<hex>` of the object's bytes. */
  checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  minEventTime: isoDateTime,
  maxEventTime: isoDateTime,
  /** Rows whose event_time is before the window's start (they arrived after it was sealed). */
  lateRecords: z.number().int().nonnegative(),
  /**
   * The manifest version that first published the segment's rows, when not 1: a replay adds
   * segments in version n+1 and keeps the others' value; a compaction merges only segments of the
   * same value and keeps it. Incremental readers deliver, of a window they already delivered at
   * version v, exactly the segments with addedInVersion > v.
   */
  addedInVersion: z.number().int().min(2).optional(),
  /** Present on segments `replay` added; see segmentSourceSchema. */
  source: segmentSourceSchema.optional(),
  /** The stream shards whose records the segment holds; none for a scan or export segment. */
  shards: z.array(manifestShardSchema),
});

/** What filled a gap (`replay --mode fill-gaps`); the window's `complete` then counts it as filled. */
export const gapFillSchema = z.strictObject({
  replayId: z.string().min(1),
  kind: z.enum(['export', 'scan', 'stream']),
  exportArn: z.string().min(1).optional(),
  scanStartedAt: isoDateTime.optional(),
  /** Rows the fill added to the window (NET rows of every item changed in the export's period). */
  records: z.number().int().nonnegative(),
  filledAt: isoDateTime,
});

export const manifestGapSchema = z.strictObject({
  shardId: z.string().min(1),
  /** Last sequence number read before the gap (TRIM_HORIZON: nothing of the shard was read). */
  afterSequenceNumber: z.union([sequenceNumber, z.literal('TRIM_HORIZON')]),
  /** First sequence number read after the gap; absent when the shard ended with nothing more. */
  resumedAtSequenceNumber: sequenceNumber.optional(),
  /** Event time of the last record before the gap, when known. */
  fromTime: isoDateTime.optional(),
  /** Event time of the first record after the gap, when known. */
  toTime: isoDateTime.optional(),
  /** DynamoDB's clock when the gap was found, when known. */
  detectedAt: isoDateTime.optional(),
  reason: z.literal('TrimmedDataAccessException'),
  /** Set by a replay that filled the gap; the gap stays listed, for the record. */
  filledBy: gapFillSchema.optional(),
});

export const manifestSchema = z.strictObject({
  formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
  table: z.string().min(1),
  streamArn: z.string().min(1),
  window: z.strictObject({ start: isoDateTime, end: isoDateTime }),
  /** When the window was closed to commits (the same on every retry of its sealing). */
  sealedAt: isoDateTime,
  /** 1, then +1 for every rewrite by compaction or replay. */
  version: z.number().int().positive(),
  /**
   * False when the window lists a gap no replay filled: records the stream trimmed before they were
   * read. A gap filled from an incremental export makes the item states complete (each item's
   * final state over the export's period), not every intermediate change.
   */
  complete: z.boolean(),
  recordCount: z.number().int().nonnegative(),
  lateRecordCount: z.number().int().nonnegative(),
  segments: z.array(manifestSegmentSchema),
  gaps: z.array(manifestGapSchema),
});

export type ManifestShard = z.infer<typeof manifestShardSchema>;
export type ManifestSegment = z.infer<typeof manifestSegmentSchema>;
export type ManifestGap = z.infer<typeof manifestGapSchema>;
export type SegmentSource = z.infer<typeof segmentSourceSchema>;
export type GapFill = z.infer<typeof gapFillSchema>;
export type Manifest = z.infer<typeof manifestSchema>;

/** A committed segment as the registry records it: what a manifest lists of it, in milliseconds. */
export interface SegmentFacts {
  key: string;
  /** The stream the segment's records came from. */
  streamArn: string;
  bytes: number;
  records: number;
  checksum: string;
  minEventTimeMs: number;
  maxEventTimeMs: number;
  lateRecords: number;
  /** The version that first published the rows, when not 1 (see manifestSegmentSchema). */
  addedInVersion?: number | undefined;
  /** What produced the segment, when a replay added it (see segmentSourceSchema). */
  source?: SegmentSource | undefined;
  shards: readonly ManifestShard[];
}

/** A recorded gap (records trimmed before they were read), times in milliseconds. */
export interface GapFacts {
  shardId: string;
  afterSequenceNumber: string;
  resumedAtSequenceNumber?: string | undefined;
  fromTimeMs?: number | undefined;
  toTimeMs?: number | undefined;
  detectedAtMs?: number | undefined;
  reason: ManifestGap['reason'];
  /** What filled it, when a replay did. */
  filledBy?: GapFill | undefined;
}

export interface ManifestFacts {
  table: string;
  windowStartMs: number;
  windowMs: number;
  /** When the window was closed: the manifest's sealedAt. */
  sealedAtMs: number;
  /** 1 for a window's first manifest; each rewrite of a window publishes the next version. */
  version: number;
  /** The stream an empty window names. */
  streamArn: string;
  segments: readonly SegmentFacts[];
  gaps: readonly GapFacts[];
}

/**
 * The manifest of one window, from the registry's facts. Deterministic: the same facts give the
 * same manifest (and `serializeManifest` the same bytes), so a retried or repeated seal writes an
 * identical object.
 *
 * A window holds segments of two streams only where `run` moved from a table's stream to the next
 * (re-enabled) one. The manifest names the oldest of them: a table's stream ARNs differ only in
 * their label, its creation time, so they sort by age. A segment of the other stream names its own
 * (`streamArn`); shard ids are unique across a table's streams.
 */
export function buildManifest(facts: ManifestFacts): Manifest {
  const streamArns = [...new Set(facts.segments.map((s) => s.streamArn))].sort();
  const manifestStream = streamArns[0] ?? facts.streamArn;
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    table: facts.table,
    streamArn: manifestStream,
    window: { start: isoTime(facts.windowStartMs), end: isoTime(facts.windowStartMs + facts.windowMs) },
    sealedAt: isoTime(facts.sealedAtMs),
    version: facts.version,
    complete: isComplete(facts.gaps),
    recordCount: facts.segments.reduce((n, s) => n + s.records, 0),
    lateRecordCount: facts.segments.reduce((n, s) => n + s.lateRecords, 0),
    segments: facts.segments.map((s) => ({
      ...manifestSegmentOf(s, manifestStream),
      shards: s.shards.map((h) => ({
        shardId: h.shardId,
        afterSequenceNumber: h.afterSequenceNumber,
        firstSequenceNumber: h.firstSequenceNumber,
        lastSequenceNumber: h.lastSequenceNumber,
        records: h.records,
      })),
    })),
    gaps: facts.gaps.map((g) => ({
      shardId: g.shardId,
      afterSequenceNumber: g.afterSequenceNumber,
      ...(g.resumedAtSequenceNumber !== undefined && { resumedAtSequenceNumber: g.resumedAtSequenceNumber }),
      ...(g.fromTimeMs !== undefined && { fromTime: isoTime(g.fromTimeMs) }),
      ...(g.toTimeMs !== undefined && { toTime: isoTime(g.toTimeMs) }),
      ...(g.detectedAtMs !== undefined && { detectedAt: isoTime(g.detectedAtMs) }),
      reason: g.reason,
      ...(g.filledBy !== undefined && { filledBy: g.filledBy }),
    })),
  };
}

/**
 * A segment's manifest entry, from its facts (times in ms), without its shards: `streamArn` only
 * when it is not the manifest's, `addedInVersion` only above 1.
 */
export function manifestSegmentOf(
  s: Omit<SegmentFacts, 'streamArn' | 'shards'> & { streamArn?: string | undefined },
  manifestStreamArn: string,
): Omit<ManifestSegment, 'shards'> {
  return {
    key: s.key,
    ...(s.streamArn !== undefined && s.streamArn !== manifestStreamArn && { streamArn: s.streamArn }),
    bytes: s.bytes,
    records: s.records,
    checksum: s.checksum,
    minEventTime: isoTime(s.minEventTimeMs),
    maxEventTime: isoTime(s.maxEventTimeMs),
    lateRecords: s.lateRecords,
    ...(s.addedInVersion !== undefined && s.addedInVersion > 1 && { addedInVersion: s.addedInVersion }),
    ...(s.source !== undefined && { source: s.source }),
  };
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The manifest's bytes: fields in schema order, segments sorted by key, shards by id, gaps by
 * shard then position, two-space indented, trailing newline. The same content always gives the
 * same bytes, so re-sealing a window writes an identical object (create-only accepts it).
 */
export function serializeManifest(manifest: Manifest): Uint8Array {
  const m = manifestSchema.parse(manifest);
  const canonical: Manifest = {
    formatVersion: m.formatVersion,
    table: m.table,
    streamArn: m.streamArn,
    window: { start: m.window.start, end: m.window.end },
    sealedAt: m.sealedAt,
    version: m.version,
    complete: m.complete,
    recordCount: m.recordCount,
    lateRecordCount: m.lateRecordCount,
    segments: [...m.segments]
      .sort((a, b) => byString(a.key, b.key))
      .map((s) => ({
        key: s.key,
        ...(s.streamArn === undefined || s.streamArn === m.streamArn ? {} : { streamArn: s.streamArn }),
        bytes: s.bytes,
        records: s.records,
        checksum: s.checksum,
        minEventTime: s.minEventTime,
        maxEventTime: s.maxEventTime,
        lateRecords: s.lateRecords,
        ...(s.addedInVersion === undefined ? {} : { addedInVersion: s.addedInVersion }),
        ...(s.source === undefined ? {} : { source: canonicalSource(s.source) }),
        shards: [...s.shards]
          .sort((a, b) => byString(a.shardId, b.shardId))
          .map((h) => ({
            shardId: h.shardId,
            afterSequenceNumber: h.afterSequenceNumber,
            firstSequenceNumber: h.firstSequenceNumber,
            lastSequenceNumber: h.lastSequenceNumber,
            records: h.records,
          })),
      })),
    gaps: [...m.gaps]
      .sort(
        (a, b) => byString(a.shardId, b.shardId) || byString(a.afterSequenceNumber, b.afterSequenceNumber),
      )
      .map((g) => ({
        shardId: g.shardId,
        afterSequenceNumber: g.afterSequenceNumber,
        ...(g.resumedAtSequenceNumber === undefined
          ? {}
          : { resumedAtSequenceNumber: g.resumedAtSequenceNumber }),
        ...(g.fromTime === undefined ? {} : { fromTime: g.fromTime }),
        ...(g.toTime === undefined ? {} : { toTime: g.toTime }),
        ...(g.detectedAt === undefined ? {} : { detectedAt: g.detectedAt }),
        reason: g.reason,
        ...(g.filledBy === undefined ? {} : { filledBy: canonicalFill(g.filledBy) }),
      })),
  };
  return new TextEncoder().encode(`${JSON.stringify(canonical, null, 2)}\n`);
}

function canonicalSource(s: SegmentSource): SegmentSource {
  return {
    kind: s.kind,
    replayId: s.replayId,
    mode: s.mode,
    ...(s.exportArn === undefined ? {} : { exportArn: s.exportArn }),
    ...(s.exportType === undefined ? {} : { exportType: s.exportType }),
    ...(s.exportTime === undefined ? {} : { exportTime: s.exportTime }),
    ...(s.exportFromTime === undefined ? {} : { exportFromTime: s.exportFromTime }),
    ...(s.scanStartedAt === undefined ? {} : { scanStartedAt: s.scanStartedAt }),
  };
}

function canonicalFill(f: GapFill): GapFill {
  return {
    replayId: f.replayId,
    kind: f.kind,
    ...(f.exportArn === undefined ? {} : { exportArn: f.exportArn }),
    ...(f.scanStartedAt === undefined ? {} : { scanStartedAt: f.scanStartedAt }),
    records: f.records,
    filledAt: f.filledAt,
  };
}

/** Whether a segment holds replay's SNAPSHOT or NET rows (a scan's or an export's), not stream records. */
export function isSnapshotSegment(segment: Pick<ManifestSegment, 'source'>): boolean {
  return segment.source !== undefined && segment.source.kind !== 'stream';
}

/** A window is complete when every gap it lists was filled by a replay. */
export function isComplete(gaps: readonly Pick<ManifestGap, 'filledBy'>[]): boolean {
  return gaps.every((g) => g.filledBy !== undefined);
}

/** Parses and validates manifest bytes; a bad manifest names the key and every problem. */
export function parseManifest(bytes: Uint8Array, key: string): Manifest {
  return parseJsonDocument(bytes, manifestSchema, 'manifest', key);
}
