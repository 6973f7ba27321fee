import {
  manifestViolations,
  ShardChains,
  symlinkViolations,
  type Violation,
  type ViolationKind,
  windowShapeViolations,
} from '../changelog/invariants.js';
import { isoTime, symlinkObjectKey, windowDataPrefix, windowSizeProblem } from '../changelog/layout.js';
import {
  isSnapshotSegment,
  type Manifest,
  type ManifestGap,
  type ManifestSegment,
  parseManifest,
} from '../changelog/manifest.js';
import { readSegmentBatches } from '../changelog/parquetDecoder.js';
import { compareSequenceNumbers } from '../changelog/sequenceNumber.js';
import { SNAPSHOT_SEQUENCE_NUMBER, SNAPSHOT_SHARD_ID } from '../changelog/snapshotRows.js';
import { assertValidKey, type ObjectStore, sha256Checksum } from '../coordination/objectStore.js';
import { ChangelogError } from '../support/errors.js';
import { listWindows } from './manifestReader.js';
import {
  type SegmentRow,
  StreamAudit,
  type StreamAuditOptions,
  type StreamAuditReport,
} from './streamAudit.js';

/** A gap listed in a manifest in the range: data the stream trimmed before it was read. */
export interface VerifyGap extends ManifestGap {
  window: string;
}

export interface VerifyReport {
  table: string;
  destination: string;
  since: string;
  until?: string;
  /** Start of the first and last window found (ISO-8601 UTC). */
  firstWindow?: string;
  lastWindow?: string;
  windowMs?: number;
  windows: number;
  segments: number;
  /** Records the manifests list (their recordCount). */
  records: number;
  lateRecords: number;
  gaps: VerifyGap[];
  violations: Violation[];
  /** With `--stream`: what the audit against the stream read and matched. */
  stream?: StreamAuditReport;
}

export interface VerifyProgress {
  windows: number;
  segments: number;
  records: number;
  /** The object just checked. */
  key: string;
}

export interface VerifyOptions {
  store: ObjectStore;
  table: string;
  /** Windows starting at or after this time. */
  sinceMs: number;
  /** Windows starting before this time; every sealed window from sinceMs on when absent. */
  untilMs?: number;
  signal?: AbortSignal;
  onProgress?: (progress: VerifyProgress) => void;
  /**
   * Also re-read what the stream still retains and prove the manifests hold it exactly once
   * (`verify --stream`; see streamAudit.ts).
   */
  stream?: StreamAuditOptions;
}

const COLUMNS = ['event_id', 'shard_id', 'sequence_number', 'event_time'];
const AUDIT_COLUMNS = [...COLUMNS, 'op', 'keys'];

interface FileShard {
  records: number;
  first: string;
  last: string;
}

/**
 * Checks the sealed windows in a range (each window's highest manifest version, as readers see
 * it) against the changelog's invariants and reports every violation found (it does not stop at
 * the first). Reads each listed segment once, one at a time;
 * what it keeps across segments is the event ids seen and one entry per segment and shard.
 * Store errors (other than a missing object) are thrown: a verify that could not read is no verdict.
 * With `stream`, it also keeps every row's identity (event id, sequence number, op, keys) and then
 * audits the range against what the stream still retains (streamAudit.ts).
 */
export async function verifyChangelog(options: VerifyOptions): Promise<VerifyReport> {
  return new Verification(options).run();
}

class Verification {
  private readonly report: VerifyReport;
  private readonly windowStarts: number[] = [];
  /** Every segment's shard entries, for the per-shard chain across the range. */
  private readonly chains = new ShardChains();
  /** event_id -> index in segmentKeys of the first segment holding it. */
  private readonly eventIds = new Map<string, number>();
  private readonly segmentKeys: string[] = [];
  private readonly seenSegments = new Set<string>();
  private readonly audit: StreamAudit | undefined;

  constructor(private readonly options: VerifyOptions) {
    this.audit = options.stream === undefined ? undefined : new StreamAudit(options.stream);
    this.report = {
      table: options.table,
      destination: options.store.url,
      since: isoTime(options.sinceMs),
      ...(options.untilMs === undefined ? {} : { until: isoTime(options.untilMs) }),
      // Set as windows are read; declared here so JSON output has a stable field order.
      firstWindow: undefined,
      lastWindow: undefined,
      windowMs: undefined,
      windows: 0,
      segments: 0,
      records: 0,
      lateRecords: 0,
      gaps: [],
      violations: [],
    };
  }

  private violation(kind: ViolationKind, message: string, where: Omit<Violation, 'kind' | 'message'>): void {
    this.report.violations.push({ kind, message, ...where });
  }

  async run(): Promise<VerifyReport> {
    const { store, table, sinceMs, untilMs, signal } = this.options;
    for await (const listing of listWindows(store, table, { sinceMs, untilMs, signal })) {
      const window = isoTime(listing.windowStartMs);
      this.windowStarts.push(listing.windowStartMs);
      this.report.windows++;
      this.report.firstWindow ??= window;
      this.report.lastWindow = window;
      const bytes = await store.get(listing.key, signal);
      let manifest: Manifest;
      try {
        if (bytes === undefined)
          throw new ChangelogError(`manifest ${listing.key} vanished while being read`);
        manifest = parseManifest(bytes, listing.key);
      } catch (error) {
        if (!(error instanceof ChangelogError)) throw error;
        this.violation('manifest-invalid', error.message, { key: listing.key, window });
        this.audit?.addInvalidWindow(listing.windowStartMs);
        continue;
      }
      this.audit?.addManifest(manifest);
      await this.checkManifest(listing.key, listing.windowStartMs, manifest);
      this.progress(listing.key);
    }
    this.checkWindowsConsecutive();
    this.checkShardContiguity();
    if (this.audit !== undefined) {
      const { report, violations } = await this.audit.run(signal);
      this.report.stream = report;
      this.report.violations.push(...violations);
    }
    return this.report;
  }

  private progress(key: string): void {
    const { windows, segments, records } = this.report;
    this.options.onProgress?.({ windows, segments, records, key });
  }

  private async checkManifest(key: string, keyStartMs: number, manifest: Manifest): Promise<void> {
    const window = isoTime(keyStartMs);
    const where = { key, window };
    if (manifest.table !== this.options.table) {
      this.violation(
        'table-mismatch',
        `manifest ${key} is for table ${JSON.stringify(manifest.table)}, not ${JSON.stringify(this.options.table)}`,
        where,
      );
    }
    const startMs = Date.parse(manifest.window.start);
    const endMs = Date.parse(manifest.window.end);
    if (startMs !== keyStartMs) {
      this.violation(
        'window-key-mismatch',
        `manifest ${key} has window.start ${manifest.window.start}, but its key is for the window starting ${window}`,
        where,
      );
    }
    // The manifest's own consistency: one checker (changelog/invariants.ts), which the sealer ran too.
    this.report.violations.push(
      ...windowShapeViolations(manifest, key),
      ...manifestViolations(manifest, key),
    );
    this.checkWindowSizeConsistent(key, window, endMs - startMs);
    this.chains.add(manifest);
    this.report.records += manifest.recordCount;
    this.report.lateRecords += manifest.lateRecordCount;

    for (const gap of manifest.gaps) this.report.gaps.push({ window, ...gap });

    for (const segment of manifest.segments) {
      this.options.signal?.throwIfAborted();
      this.report.segments++;
      await this.checkSegmentObject(segment, window, startMs);
      this.progress(segment.key);
    }
    await this.checkSymlink(key, keyStartMs, manifest);
  }

  /** The window's symlink manifest (Athena/Glue) lists exactly the manifest's segments. */
  private async checkSymlink(manifestKey: string, windowStartMs: number, manifest: Manifest): Promise<void> {
    // The sealer writes a symlink for version 1 only. Later versions (replay, compaction) will
    // manage the window's symlink themselves, so comparing it with them would be a false finding.
    if (manifest.version > 1) return;
    const symlinkKey = symlinkObjectKey(this.options.table, windowStartMs);
    const body = await this.options.store.get(symlinkKey, this.options.signal);
    this.report.violations.push(
      ...symlinkViolations({
        manifest,
        manifestKey,
        windowStartMs,
        symlinkKey,
        body,
        destinationUrl: this.options.store.url,
      }),
    );
  }

  /** Every window of the range has the size of the first one (each window's own size: invariants). */
  private checkWindowSizeConsistent(key: string, window: string, sizeMs: number): void {
    if (windowSizeProblem(sizeMs) !== undefined) return;
    if (this.report.windowMs === undefined) {
      this.report.windowMs = sizeMs;
    } else if (sizeMs !== this.report.windowMs) {
      this.violation(
        'window-size',
        `manifest ${key} has a window of ${sizeMs} ms, the earlier windows ${this.report.windowMs} ms`,
        { key, window },
      );
    }
  }

  private async checkSegmentObject(segment: ManifestSegment, window: string, windowStartMs: number) {
    const { key } = segment;
    const where = { key, window };
    try {
      assertValidKey(key);
    } catch (error) {
      this.violation('segment-key', (error as Error).message, where);
      this.audit?.addUnreadableSegment(segment.shards);
      return;
    }
    const prefix = windowDataPrefix(this.options.table, windowStartMs);
    if (!key.startsWith(prefix) || !key.endsWith('.parquet')) {
      this.violation('segment-key', `segment ${key} is not a .parquet object under ${prefix}`, where);
    }
    if (this.seenSegments.has(key)) {
      this.violation('duplicate-segment', `segment ${key} is listed more than once in the range`, where);
      return;
    }
    this.seenSegments.add(key);

    // The content is read anyway (event ids), so size and checksum are taken from the bytes a
    // reader gets rather than from object metadata.
    const bytes = await this.options.store.get(key, this.options.signal);
    if (bytes === undefined) {
      this.violation('object-missing', `segment ${key} (window ${window}) does not exist`, where);
      this.audit?.addUnreadableSegment(segment.shards);
      return;
    }
    if (bytes.length !== segment.bytes) {
      this.violation(
        'object-size',
        `segment ${key} is ${bytes.length} bytes, the manifest says ${segment.bytes}`,
        where,
      );
    }
    const checksum = sha256Checksum(bytes);
    if (checksum !== segment.checksum) {
      this.violation(
        'object-checksum',
        `segment ${key} has checksum ${checksum}, the manifest says ${segment.checksum}; its rows were not checked`,
        where,
      );
      this.audit?.addUnreadableSegment(segment.shards);
      return;
    }
    this.checkSegmentRows(segment, bytes, window, windowStartMs);
  }

  private checkSegmentRows(
    segment: ManifestSegment,
    bytes: Uint8Array,
    window: string,
    windowStartMs: number,
  ) {
    const { key } = segment;
    const where = { key, window };
    const index = this.segmentKeys.push(key) - 1;
    const shards = new Map<string, FileShard>();
    // Duplicates are summarised per (earlier segment, this segment): a re-listed file would
    // otherwise give one finding per row.
    const duplicates = new Map<number, { count: number; example: string }>();
    let rows = 0;
    let late = 0;
    let minTime = Number.POSITIVE_INFINITY;
    let maxTime = Number.NEGATIVE_INFINITY;
    // With --stream, every row's identity is kept for the audit (added once the file read in full).
    const snapshot = isSnapshotSegment(segment);
    let strayRows = 0;
    // A scan's or export's rows are no stream records: the stream audit does not see them.
    const auditRows: SegmentRow[] | undefined = this.audit === undefined || snapshot ? undefined : [];
    try {
      for (const batch of readSegmentBatches(bytes, auditRows ? AUDIT_COLUMNS : COLUMNS, key)) {
        const {
          event_id: ids,
          shard_id: shardIds,
          sequence_number: sequences,
          event_time: times,
          op: ops,
          keys,
        } = batch.columns;
        for (let r = 0; r < batch.rows; r++) {
          const id = ids![r];
          const shardId = shardIds![r];
          const sequence = sequences![r];
          const time = times![r];
          if (typeof id !== 'string' || typeof shardId !== 'string' || typeof sequence !== 'string') {
            throw new ChangelogError(`segment ${key} row ${rows + r} has a null or non-text key column`);
          }
          if (typeof time !== 'number')
            throw new ChangelogError(`segment ${key} row ${rows + r} has no event_time`);
          const earlier = this.eventIds.get(id);
          if (earlier === undefined) {
            this.eventIds.set(id, index);
          } else {
            const d = duplicates.get(earlier);
            if (d === undefined) duplicates.set(earlier, { count: 1, example: id });
            else d.count++;
          }
          if (snapshot) {
            // A scan's or export's rows: no shard, sequence number "0" (changelog/snapshotRows.ts).
            if (shardId !== SNAPSHOT_SHARD_ID || sequence !== SNAPSHOT_SEQUENCE_NUMBER) strayRows++;
          } else {
            const s = shards.get(shardId);
            if (s === undefined) shards.set(shardId, { records: 1, first: sequence, last: sequence });
            else {
              s.records++;
              if (compareSequenceNumbers(sequence, s.first) < 0) s.first = sequence;
              if (compareSequenceNumbers(sequence, s.last) > 0) s.last = sequence;
            }
          }
          if (time < minTime) minTime = time;
          if (time > maxTime) maxTime = time;
          if (time < windowStartMs) late++;
          if (auditRows) {
            const op = ops![r];
            const rowKeys = keys![r];
            if (typeof op !== 'string' || typeof rowKeys !== 'string') {
              throw new ChangelogError(`segment ${key} row ${rows + r} has a null op or keys`);
            }
            auditRows.push({ shardId, sequenceNumber: sequence, eventId: id, op, keys: rowKeys });
          }
        }
        rows += batch.rows;
      }
    } catch (error) {
      if (!(error instanceof ChangelogError)) throw error;
      this.violation('segment-unreadable', error.message, where);
      this.audit?.addUnreadableSegment(segment.shards);
      return;
    }
    if (auditRows) this.audit!.addSegmentRows(key, window, auditRows);

    for (const [earlier, d] of duplicates) {
      const other = this.segmentKeys[earlier]!;
      this.violation(
        'duplicate-event-id',
        other === key
          ? `segment ${key} holds ${d.count} event_id(s) more than once (e.g. ${d.example})`
          : `segment ${key} holds ${d.count} event_id(s) already in segment ${other} (e.g. ${d.example})`,
        where,
      );
    }
    if (rows !== segment.records) {
      this.violation(
        'record-count',
        `segment ${key} has ${rows} rows in the Parquet file, the manifest says ${segment.records}`,
        where,
      );
    }
    if (strayRows > 0) {
      this.violation(
        'shard-range',
        `segment ${key} holds replay ${segment.source!.replayId}'s ${segment.source!.kind} rows but ${strayRows} row(s) with a stream shard or sequence number`,
        where,
      );
    }
    for (const entry of segment.shards) {
      const at = { ...where, shardId: entry.shardId };
      const file = shards.get(entry.shardId);
      if (file === undefined) {
        this.violation(
          'shard-range',
          `segment ${key} lists shard ${entry.shardId}, but holds no row of it`,
          at,
        );
        continue;
      }
      if (file.records !== entry.records) {
        this.violation(
          'record-count',
          `segment ${key}, shard ${entry.shardId}: ${file.records} rows in the file, the manifest says ${entry.records}`,
          at,
        );
      }
      if (
        compareSequenceNumbers(file.first, entry.firstSequenceNumber) !== 0 ||
        compareSequenceNumbers(file.last, entry.lastSequenceNumber) !== 0
      ) {
        this.violation(
          'shard-range',
          `segment ${key}, shard ${entry.shardId}: the file holds ${file.first}..${file.last}, the manifest says ${entry.firstSequenceNumber}..${entry.lastSequenceNumber}`,
          at,
        );
      }
    }
    const listed = new Set(segment.shards.map((s) => s.shardId));
    for (const [shardId, file] of shards) {
      if (!listed.has(shardId)) {
        this.violation(
          'shard-range',
          `segment ${key} holds ${file.records} row(s) of shard ${shardId}, which the manifest does not list`,
          { ...where, shardId },
        );
      }
    }
    if (rows > 0) {
      const minListed = Date.parse(segment.minEventTime);
      const maxListed = Date.parse(segment.maxEventTime);
      if (minTime !== minListed || maxTime !== maxListed) {
        this.violation(
          'event-time-range',
          `segment ${key}: rows' event times are ${isoTime(minTime)}..${isoTime(maxTime)}, the manifest says ${segment.minEventTime}..${segment.maxEventTime}`,
          where,
        );
      }
    }
    if (late !== segment.lateRecords) {
      this.violation(
        'late-record-count',
        `segment ${key} has ${late} row(s) with event_time before the window, the manifest says ${segment.lateRecords}`,
        where,
      );
    }
  }

  /** Every window between the first and the last one found has a manifest. */
  private checkWindowsConsecutive(): void {
    const size = this.report.windowMs;
    if (size === undefined) return;
    for (let i = 1; i < this.windowStarts.length; i++) {
      const before = this.windowStarts[i - 1]!;
      const after = this.windowStarts[i]!;
      const missing = Math.round((after - before) / size) - 1;
      if (missing < 1) continue;
      const firstMissing = isoTime(before + size);
      this.violation(
        'missing-window',
        missing === 1
          ? `no manifest for the window starting ${firstMissing} (between ${isoTime(before)} and ${isoTime(after)})`
          : `no manifest for the ${missing} windows from ${firstMissing} to ${isoTime(after - size)}`,
        { window: firstMissing },
      );
    }
  }

  /** The per-shard chain across every window of the range (changelog/invariants.ts). */
  private checkShardContiguity(): void {
    this.report.violations.push(...this.chains.violations());
  }
}
