import { ChangeBuffer } from '../changelog/changeBuffer.js';
import {
  type AppendedExportLines,
  appendExportLines,
  type ExportLineKind,
  type ExportLinesWhere,
} from '../changelog/exportLineDecoder.js';
import type { KeySchema } from '../changelog/keySchema.js';
import { isoTime, replaySegmentId, segmentObjectKey } from '../changelog/layout.js';
import {
  type GapFill,
  isComplete,
  type Manifest,
  type ManifestGap,
  type ManifestSegment,
  manifestSegmentOf,
  type SegmentFacts,
  type SegmentSource,
} from '../changelog/manifest.js';
import { encodeSegment } from '../changelog/segmentEncoder.js';
import { appendSnapshotRows, type SnapshotRow } from '../changelog/snapshotRows.js';
import { type ObjectStore, sha256Checksum } from '../coordination/objectStore.js';
import { ChangelogError } from '../support/errors.js';

/** A segment a replay wrote: what its manifest entry will say (JSON-safe, kept in its progress). */
export type ReplaySegment = Pick<
  SegmentFacts,
  'key' | 'bytes' | 'records' | 'checksum' | 'minEventTimeMs' | 'maxEventTimeMs' | 'lateRecords'
> & { windowStartMs: number };

export interface ReplaySegmentWriterOptions {
  store: ObjectStore;
  table: string;
  keySchema: KeySchema;
  replayId: string;
  /** The window the rows go into (a sealed one; the replay checked it). */
  windowStartMs: number;
  /** Buffered bytes (ChangeBuffer.byteSize) at which `full` says flush. */
  flushBytes: number;
  /** The next part number (0 for a new replay; a resumed one continues its count). */
  nextPart: number;
}

/**
 * Turns a replay's SNAPSHOT/NET rows into segments of one window. Segment keys are
 * `replay-<replayId>-<part>` with parts numbered in the order the segments are flushed, and the
 * encoder is deterministic, so a replay resumed from its last saved progress writes the same
 * objects again (create-only puts answer `exists` for identical bytes). Memory: one buffer,
 * flushed when `full`: the caller awaits `flush` before appending more (backpressure).
 */
export class ReplaySegmentWriter {
  private buffer: ChangeBuffer;
  private part: number;

  constructor(private readonly o: ReplaySegmentWriterOptions) {
    this.buffer = new ChangeBuffer(o.keySchema);
    this.part = o.nextPart;
  }

  /** The part number the next flushed segment gets. */
  get nextPart(): number {
    return this.part;
  }

  get bufferedRows(): number {
    return this.buffer.rowCount;
  }

  get full(): boolean {
    return this.buffer.byteSize >= this.o.flushBytes;
  }

  append(rows: readonly SnapshotRow[]): void {
    appendSnapshotRows(rows, this.o.replayId, this.buffer);
  }

  /**
   * Appends export lines from `bytes[start, end)` (exportLineDecoder.ts), stopping after the line
   * that makes the writer `full`, as appending a line at a time and checking `full` would: the
   * caller flushes, then continues at the returned `end`. All-or-nothing per call.
   */
  appendExportLines(
    bytes: Uint8Array,
    start: number,
    end: number,
    kind: ExportLineKind,
    eventTimeMs: number,
    where: ExportLinesWhere,
  ): AppendedExportLines {
    return appendExportLines(
      bytes,
      start,
      end,
      kind,
      { replayId: this.o.replayId, eventTimeMs },
      this.buffer,
      where,
      { stopAtBytes: this.o.flushBytes },
    );
  }

  /** Writes the buffered rows as the next segment; undefined when nothing is buffered. */
  async flush(signal?: AbortSignal): Promise<ReplaySegment | undefined> {
    if (this.buffer.rowCount === 0) return undefined;
    const segment = encodeSegment(this.buffer, {
      metadata: { table: this.o.table, replay_id: this.o.replayId },
    });
    const key = segmentObjectKey(
      this.o.table,
      this.o.windowStartMs,
      replaySegmentId(this.o.replayId, this.part),
    );
    await this.o.store.putIfAbsent(key, segment.bytes, { signal });
    let late = 0;
    for (let r = 0; r < this.buffer.rowCount; r++)
      if (this.buffer.eventTimeMs(r) < this.o.windowStartMs) late++;
    this.part++;
    this.buffer = new ChangeBuffer(this.o.keySchema);
    return {
      windowStartMs: this.o.windowStartMs,
      key,
      bytes: segment.bytes.length,
      records: segment.records,
      checksum: sha256Checksum(segment.bytes),
      minEventTimeMs: segment.minEventTimeMs,
      maxEventTimeMs: segment.maxEventTimeMs,
      lateRecords: late,
    };
  }
}

/** A gap of a window, as the replay fills it. */
export interface GapFillOf {
  gap: Pick<ManifestGap, 'shardId' | 'afterSequenceNumber'>;
  fill: GapFill;
}

/**
 * Version n+1 of a window: its manifest `previous` (version n) with the replay's segments added
 * (addedInVersion n+1, `source`) and the given gaps marked filled. Everything else is kept as is:
 * the window, its sealedAt, the other segments with their own addedInVersion. The publisher
 * checks the invariants before it writes.
 */
export function replayedManifest(
  previous: Manifest,
  added: readonly ReplaySegment[],
  source: SegmentSource,
  fills: readonly GapFillOf[] = [],
): Manifest {
  const version = previous.version + 1;
  const start = Date.parse(previous.window.start);
  const listed = new Set(previous.segments.map((s) => s.key));
  const segments: ManifestSegment[] = [...previous.segments];
  for (const s of added) {
    if (s.windowStartMs !== start) {
      throw new ChangelogError(
        `replay ${source.replayId}: segment ${s.key} belongs to window ${isoTime(s.windowStartMs)}, not ${previous.window.start}`,
        { key: s.key, retriable: false },
      );
    }
    if (listed.has(s.key)) {
      throw new ChangelogError(
        `replay ${source.replayId}: segment ${s.key} is already listed in version ${previous.version} of window ${previous.window.start}`,
        { key: s.key, retriable: false },
      );
    }
    segments.push({
      ...manifestSegmentOf({ ...s, addedInVersion: version, source }, previous.streamArn),
      shards: [],
    });
  }
  const gaps = previous.gaps.map((g) => {
    const fill = fills.find(
      (f) => f.gap.shardId === g.shardId && f.gap.afterSequenceNumber === g.afterSequenceNumber,
    );
    return fill === undefined ? g : { ...g, filledBy: fill.fill };
  });
  return {
    ...previous,
    version,
    complete: isComplete(gaps),
    recordCount: segments.reduce((n, s) => n + s.records, 0),
    lateRecordCount: segments.reduce((n, s) => n + s.lateRecords, 0),
    segments,
    gaps,
  };
}

/**
 * Version n+1 of a window whose segments `replacements` (old key -> new segment) were rebuilt from
 * the stream into other bytes than the lost ones (another codec, say): each new entry keeps the old
 * one's shard ranges and addedInVersion (the same records, which readers already delivered), and
 * says where it came from. The caller checked the record set (each shard range read back whole).
 */
export function rebuiltManifest(
  previous: Manifest,
  replacements: ReadonlyMap<string, ReplaySegment>,
  source: SegmentSource,
): Manifest {
  const segments = previous.segments.map((old) => {
    const rebuilt = replacements.get(old.key);
    if (rebuilt === undefined) return old;
    if (rebuilt.records !== old.records) {
      throw new ChangelogError(
        `replay ${source.replayId}: rebuilt ${rebuilt.key} holds ${rebuilt.records} records, ${old.key} listed ${old.records}`,
        { key: old.key, retriable: false },
      );
    }
    return {
      ...manifestSegmentOf({ ...rebuilt, addedInVersion: old.addedInVersion, source }, previous.streamArn),
      ...(old.streamArn !== undefined && { streamArn: old.streamArn }),
      shards: old.shards,
    };
  });
  return { ...previous, version: previous.version + 1, segments };
}
