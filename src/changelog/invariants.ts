import { isoTime, windowId, windowSizeProblem, windowStartOf } from './layout.js';
import { isComplete, isSnapshotSegment, type Manifest, type ManifestSegment } from './manifest.js';
import {
  compareSequenceNumbers,
  normalizeSequenceNumber,
  samePosition,
  TRIM_HORIZON,
} from './sequenceNumber.js';
import { symlinkManifestBody, symlinkManifestUrls } from './symlinkManifest.js';

/**
 * The changelog's invariants, in ONE place. Each check returns the violations it finds (it does not
 * stop at the first): the sealer refuses to publish a manifest with any (`sealViolations`), `verify`
 * reports them, and the commands that rewrite windows run the same checks before they publish.
 */

/** Every kind of finding `verify` reports; stable names for scripts and alerts. */
export const VIOLATION_KINDS = [
  /** A manifest object that is not valid JSON, does not match the schema, or vanished while read. */
  'manifest-invalid',
  /** A manifest of another table under this table's prefix. */
  'table-mismatch',
  /** window.start differs from the window in the manifest's key. */
  'window-key-mismatch',
  /** A window whose size is invalid, unaligned, or differs from the other windows'. */
  'window-size',
  /** No manifest for a window between two sealed ones. */
  'missing-window',
  /** complete=true with gaps listed, or complete=false without any. */
  'complete-flag',
  /** Record counts that disagree: manifest vs segments, segment vs shards, manifest vs Parquet rows. */
  'record-count',
  /** Late-record counts that disagree: manifest vs segments, segment vs the rows' event times. */
  'late-record-count',
  /** minEventTime/maxEventTime differ from the segment's rows. */
  'event-time-range',
  /** A listed segment object does not exist. */
  'object-missing',
  /** A listed segment object has another size than listed. */
  'object-size',
  /** A listed segment object has another sha256 than listed (its content is then not checked). */
  'object-checksum',
  /** A listed segment is not a readable change segment. */
  'segment-unreadable',
  /** A segment key that is invalid or outside its window's data prefix. */
  'segment-key',
  /** The same segment key listed twice in the range. */
  'duplicate-segment',
  /** A segment's addedInVersion above the manifest's own version. */
  'segment-version',
  /** A shard entry that disagrees with the shard's rows in the file (or lists a shard twice). */
  'shard-range',
  /** An event_id present more than once in the range. */
  'duplicate-event-id',
  /** A shard entry whose first is not after its after, or whose last is before its first. */
  'sequence-order',
  /** Two segments of a shard whose sequence ranges overlap. */
  'sequence-overlap',
  /** A segment of a shard that does not start right after the previous one, with no gap listed. */
  'sequence-discontinuity',
  /** A version-1 manifest whose window has no symlink manifest (`<table>/symlinks/`). */
  'symlink-missing',
  /** A symlink manifest whose lines are not exactly the manifest's segment URLs, in its order, each once. */
  'symlink-mismatch',
  /**
   * `--stream`: a record the stream still retains, which the manifests of the range must hold (see
   * read/streamAudit.ts for the rule), is in none of them and no listed gap covers it.
   */
  'stream-record-missing',
  /** `--stream`: a stream record in more than one sealed segment row of the range. */
  'stream-record-duplicated',
  /** `--stream`: a segment row whose event_id, op or keys differ from the stream record at its sequence number. */
  'stream-record-mismatch',
  /** `--stream`: a segment row at a sequence number the stream does not hold, in a part of the shard the audit read. */
  'stream-record-unknown',
] as const;

export type ViolationKind = (typeof VIOLATION_KINDS)[number];

export interface Violation {
  kind: ViolationKind;
  message: string;
  /** The manifest or segment object concerned. */
  key?: string;
  shardId?: string;
  /** Start of the window concerned (ISO-8601 UTC). */
  window?: string;
  /** `--stream` findings: the stream records (or rows) concerned, a run in sequence order. */
  firstSequenceNumber?: string;
  lastSequenceNumber?: string;
  records?: number;
}

/**
 * The window of a manifest: a valid size (1 min to 24 h, dividing a day) and aligned to it. `verify`
 * checks it; the sealer does not, because its window size comes from the validated config and the
 * window state (tests seal 1-second windows).
 */
export function windowShapeViolations(manifest: Manifest, key: string): Violation[] {
  const out: Violation[] = [];
  const startMs = Date.parse(manifest.window.start);
  const where = { key, window: isoTime(startMs) };
  const sizeMs = Date.parse(manifest.window.end) - startMs;
  const sizeProblem = windowSizeProblem(sizeMs);
  if (sizeProblem !== undefined) {
    out.push({
      kind: 'window-size',
      message: `manifest ${key} has a window of ${sizeMs} ms, which ${sizeProblem}`,
      ...where,
    });
  } else if (windowStartOf(startMs, sizeMs) !== startMs) {
    out.push({
      kind: 'window-size',
      message: `manifest ${key} has a window starting ${isoTime(startMs)}, not aligned to its ${sizeMs} ms size`,
      ...where,
    });
  }
  return out;
}

/**
 * What one manifest says about itself: the complete flag agrees with the gaps; record and
 * late-record counts add up (manifest = sum of segments, segment = sum of its shard entries); each
 * shard entry lists a shard once, starts after its afterSequenceNumber and does not end before it
 * starts. Needs no object reads.
 */
export function manifestViolations(manifest: Manifest, key: string): Violation[] {
  const out: Violation[] = [];
  const window = isoTime(Date.parse(manifest.window.start));
  const where = { key, window };
  const unfilled = manifest.gaps.filter((g) => g.filledBy === undefined).length;
  if (manifest.complete !== isComplete(manifest.gaps)) {
    out.push({
      kind: 'complete-flag',
      message: manifest.complete
        ? `manifest ${key} says complete=true but lists ${unfilled} gap(s) no replay filled`
        : `manifest ${key} says complete=false but lists no unfilled gap`,
      ...where,
    });
  }
  const records = manifest.segments.reduce((sum, s) => sum + s.records, 0);
  if (manifest.recordCount !== records) {
    out.push({
      kind: 'record-count',
      message: `manifest ${key} has recordCount ${manifest.recordCount}, but its segments list ${records} records`,
      ...where,
    });
  }
  const late = manifest.segments.reduce((sum, s) => sum + s.lateRecords, 0);
  if (manifest.lateRecordCount !== late) {
    out.push({
      kind: 'late-record-count',
      message: `manifest ${key} has lateRecordCount ${manifest.lateRecordCount}, but its segments list ${late} late records`,
      ...where,
    });
  }
  for (const segment of manifest.segments) {
    out.push(...segmentEntryViolations(segment, window));
    // Incremental readers deliver a rewritten window's segments by addedInVersion: one from a
    // version not published yet would be skipped by every reader that reads this version.
    if ((segment.addedInVersion ?? 1) > manifest.version) {
      out.push({
        kind: 'segment-version',
        message: `segment ${segment.key} says addedInVersion ${segment.addedInVersion}, but manifest ${key} is version ${manifest.version}`,
        ...where,
      });
    }
  }
  return out;
}

/** A segment's own shard entries: they add up to the segment, list each shard once, are ordered. */
export function segmentEntryViolations(segment: ManifestSegment, window: string): Violation[] {
  const out: Violation[] = [];
  const where = { key: segment.key, window };
  if (isSnapshotSegment(segment)) {
    // A scan's or export's rows belong to no shard.
    if (segment.shards.length > 0) {
      out.push({
        kind: 'shard-range',
        message: `segment ${segment.key} holds replay ${segment.source!.replayId}'s ${segment.source!.kind} rows but lists ${segment.shards.length} stream shard(s)`,
        ...where,
      });
    }
    return out;
  }
  if (segment.shards.length === 0) {
    out.push({
      kind: 'shard-range',
      message: `segment ${segment.key} lists no stream shard; only a scan's or an export's segment (source) may`,
      ...where,
    });
    return out;
  }
  const sum = segment.shards.reduce((total, s) => total + s.records, 0);
  if (sum !== segment.records) {
    out.push({
      kind: 'record-count',
      message: `segment ${segment.key} lists ${segment.records} records, but its shard entries add up to ${sum}`,
      ...where,
    });
  }
  const seen = new Set<string>();
  for (const shard of segment.shards) {
    const at = { ...where, shardId: shard.shardId };
    if (seen.has(shard.shardId)) {
      out.push({
        kind: 'shard-range',
        message: `segment ${segment.key} lists shard ${shard.shardId} twice`,
        ...at,
      });
    }
    seen.add(shard.shardId);
    if (compareSequenceNumbers(shard.firstSequenceNumber, shard.lastSequenceNumber) > 0) {
      out.push({
        kind: 'sequence-order',
        message: `shard ${shard.shardId} is not contiguous: ${segment.key} ends at ${shard.lastSequenceNumber} before it starts at ${shard.firstSequenceNumber}`,
        ...at,
      });
    }
    if (
      shard.afterSequenceNumber !== TRIM_HORIZON &&
      compareSequenceNumbers(shard.firstSequenceNumber, shard.afterSequenceNumber) <= 0
    ) {
      out.push({
        kind: 'sequence-order',
        message: `shard ${shard.shardId} is not contiguous: ${segment.key} starts at ${shard.firstSequenceNumber}, not after ${shard.afterSequenceNumber}`,
        ...at,
      });
    }
  }
  return out;
}

interface ChainEntry {
  shardId: string;
  after: string;
  first: string;
  last: string;
  key: string;
  window: string;
}

/**
 * The per-shard chain across the manifests added: sorted by first sequence number, every segment
 * of a shard starts after the previous one ends (no overlap), and its afterSequenceNumber is the
 * previous one's last (compared as integers), unless a gap listed in the manifests says the records
 * after that last were trimmed. The first segment of a shard has nothing to chain to.
 *
 * Shards are told apart by stream and shard id: a window may hold segments of two streams of a
 * table (where `run` moved across a stream re-enable), and sequence numbers of two streams are not
 * comparable. Memory: one entry per segment and shard.
 */
export class ShardChains {
  private readonly chains = new Map<string, ChainEntry[]>();
  /** Per shard id: the (normalised) afterSequenceNumber of every gap listed. */
  private readonly gapsAfter = new Map<string, Set<string>>();

  add(manifest: Manifest): void {
    const window = isoTime(Date.parse(manifest.window.start));
    for (const gap of manifest.gaps) {
      const set = this.gapsAfter.get(gap.shardId) ?? new Set<string>();
      this.gapsAfter.set(gap.shardId, set.add(normalizeSequenceNumber(gap.afterSequenceNumber)));
    }
    for (const segment of manifest.segments) {
      const stream = segment.streamArn ?? manifest.streamArn;
      for (const shard of segment.shards) {
        const id = `${stream}\n${shard.shardId}`;
        const entries = this.chains.get(id) ?? [];
        this.chains.set(id, entries);
        entries.push({
          shardId: shard.shardId,
          after: shard.afterSequenceNumber,
          first: shard.firstSequenceNumber,
          last: shard.lastSequenceNumber,
          key: segment.key,
          window,
        });
      }
    }
  }

  violations(): Violation[] {
    const out: Violation[] = [];
    for (const entries of this.chains.values()) {
      entries.sort((a, b) => compareSequenceNumbers(a.first, b.first));
      for (let i = 1; i < entries.length; i++) {
        const previous = entries[i - 1]!;
        const current = entries[i]!;
        const { shardId } = current;
        const where = { key: current.key, shardId, window: current.window };
        if (compareSequenceNumbers(current.first, previous.last) <= 0) {
          out.push({
            kind: 'sequence-overlap',
            message: `shard ${shardId} is not contiguous: segment ${current.key} (${current.first}..${current.last}, window ${current.window}) overlaps segment ${previous.key} (${previous.first}..${previous.last}, window ${previous.window})`,
            ...where,
          });
          continue;
        }
        const contiguous = current.after !== TRIM_HORIZON && samePosition(current.after, previous.last);
        if (contiguous || this.gapsAfter.get(shardId)?.has(normalizeSequenceNumber(previous.last))) continue;
        out.push({
          kind: 'sequence-discontinuity',
          message: `shard ${shardId} is not contiguous: segment ${current.key} follows checkpoint ${current.after}, but the previous segment ${previous.key} ends at ${previous.last} (windows ${previous.window} and ${current.window}), and no gap is listed`,
          ...where,
        });
      }
    }
    return out;
  }
}

export interface SymlinkCheck {
  manifest: Manifest;
  manifestKey: string;
  /** The window of the manifest's key (where the symlink manifest is looked for). */
  windowStartMs: number;
  symlinkKey: string;
  /** The symlink manifest's bytes, or undefined when there is no object. */
  body: Uint8Array | undefined;
  /** The destination the segment URLs are relative to (`s3://bucket/prefix`, `file:///dir`). */
  destinationUrl: string;
}

/** Examples a symlink finding names: enough to act on, short enough for one log line. */
const SYMLINK_EXAMPLES = 3;

/**
 * A sealed window's symlink manifest (changelog/symlinkManifest.ts) exists and holds exactly the
 * bytes the sealer writes for its manifest: its segment URLs, in its order, each once. What
 * differs is named (URLs missing, URLs not in the manifest, repeats, order, a last line without
 * `\n`), since Athena reads whatever the file lists.
 */
export function symlinkViolations(check: SymlinkCheck): Violation[] {
  const { manifest, manifestKey, symlinkKey, body } = check;
  const where = { key: symlinkKey, window: isoTime(check.windowStartMs) };
  const expected = symlinkManifestUrls(manifest, check.destinationUrl);
  if (body === undefined) {
    return [
      {
        kind: 'symlink-missing',
        message: `window ${where.window} has no symlink manifest at ${symlinkKey} (manifest ${manifestKey} lists ${expected.length} segment(s))`,
        ...where,
      },
    ];
  }
  if (Buffer.from(body).equals(symlinkManifestBody(manifest, check.destinationUrl))) return [];

  const text = new TextDecoder().decode(body);
  const lines = text === '' ? [] : text.split('\n');
  const unterminated = lines.length > 0 && lines.at(-1) !== '';
  if (!unterminated) lines.pop();
  const want = new Set(expected);
  const seen = new Set<string>();
  const repeated: string[] = [];
  for (const line of lines) {
    if (seen.has(line)) repeated.push(line);
    seen.add(line);
  }
  const missing = expected.filter((url) => !seen.has(url));
  const extra = [...seen].filter((line) => !want.has(line));
  const differences: string[] = [];
  const named = (what: string, items: string[]) => {
    if (items.length === 0) return;
    const shown = items.slice(0, SYMLINK_EXAMPLES).map((i) => JSON.stringify(i));
    const more = items.length > SYMLINK_EXAMPLES ? ` and ${items.length - SYMLINK_EXAMPLES} more` : '';
    differences.push(`${items.length} ${what}: ${shown.join(', ')}${more}`);
  };
  named('segment URL(s) of the manifest missing', missing);
  named('line(s) that are no segment URL of the manifest', extra);
  named('line(s) listed more than once', [...new Set(repeated)]);
  if (differences.length === 0 && lines.join('\n') !== expected.join('\n')) {
    differences.push("the segment URLs are in another order than the manifest's segments");
  }
  if (unterminated) differences.push('the last line has no newline');
  if (differences.length === 0) differences.push(`its ${body.length} bytes differ from the expected text`);
  return [
    {
      kind: 'symlink-mismatch',
      message: `symlink manifest ${symlinkKey} does not list exactly the ${expected.length} segment(s) of manifest ${manifestKey}: ${differences.join('; ')}`,
      ...where,
    },
  ];
}

/**
 * Everything a sealer must check before it publishes one window's manifest: the manifest's own
 * consistency and the shards' chains inside the window.
 */
export function sealViolations(manifest: Manifest, key: string): Violation[] {
  const chains = new ShardChains();
  chains.add(manifest);
  return [...manifestViolations(manifest, key), ...chains.violations()];
}

/** The message a sealer refuses a window with. */
export function sealRefusal(windowStartMs: number, violations: readonly Violation[]): string {
  return `refusing to seal window ${windowId(windowStartMs)}: ${violations.map((v) => v.message).join('; ')}`;
}
