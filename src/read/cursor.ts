import { z } from 'zod';
import { parseJsonDocument } from '../changelog/jsonDocument.js';
import { isoTime, windowStartOf } from '../changelog/layout.js';
import type { ManifestSegment } from '../changelog/manifest.js';
import { ChangelogError } from '../support/errors.js';
import type { Changelog, SealedWindow } from './changelog.js';
import { listRevisions } from './revisionLog.js';

/*
 * The incremental reader's cursor: what a loader holds between runs so that the union of its
 * batches is every change exactly once (docs/ARCHITECTURE.md "Incremental reads").
 *
 * - Windows, not event times: a late record is committed in a later window than its event time,
 *   so batches are cut at window boundaries and a record is delivered with the window that holds it.
 * - Sealed windows only, in order: `deliveredThrough` only moves over a contiguous run of sealed
 *   windows (Changelog.status), never past a window that is not sealed yet or a hole.
 * - Rewrites: a replay publishes version n+1 of an old window with its new segments marked
 *   `addedInVersion: n+1`; a compaction merges segments of one addedInVersion and keeps it. The
 *   cursor remembers the version it delivered each rewritten window at, learns of rewrites from the
 *   revision log, and delivers exactly the segments with addedInVersion above that version.
 */

export const CURSOR_FORMAT_VERSION = 1;

/**
 * Revisions are listed again from this long before the last run: a publisher stamps its entry just
 * before writing it, so one can become visible after a later-stamped one. Entries already applied
 * are recognised by version, so listing them twice delivers nothing twice.
 */
export const REVISION_LOOKBACK_MS = 3_600_000;

const isoDateTime = z.iso.datetime({ offset: false });

export const cursorSchema = z.strictObject({
  cursorVersion: z.literal(CURSOR_FORMAT_VERSION),
  table: z.string().min(1),
  /** The changelog's destination URL, so a cursor is never used on another changelog. */
  destination: z.string().min(1),
  windowMs: z.number().int().positive(),
  /** Every window starting before this was delivered (a window boundary, ISO-8601 UTC). */
  deliveredThrough: isoDateTime,
  /** Windows before deliveredThrough delivered at a manifest version above 1: start -> version. */
  versions: z.record(z.string(), z.number().int().min(2)),
  /** Revision-log entries published before this were looked at (less REVISION_LOOKBACK_MS). */
  revisionsThrough: isoDateTime,
  /** Batches delivered with this cursor, this one included. */
  batch: z.number().int().nonnegative(),
  updatedAt: isoDateTime,
});

export type ChangesCursor = z.infer<typeof cursorSchema>;

export function parseCursor(bytes: Uint8Array, where: string): ChangesCursor {
  const cursor = parseJsonDocument(bytes, cursorSchema, 'cursor', where);
  for (const window of Object.keys(cursor.versions)) {
    if (!isoDateTime.safeParse(window).success) {
      throw new ChangelogError(`cursor ${where}: versions has a key that is not a window start: ${window}`, {
        key: where,
        retriable: false,
      });
    }
  }
  return cursor;
}

export function serializeCursor(cursor: ChangesCursor): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(cursorSchema.parse(cursor), null, 2)}\n`);
}

/** Rows of one window to deliver: every segment of a new window, the added segments of a rewritten one. */
export interface BatchPart {
  window: SealedWindow;
  segments: readonly ManifestSegment[];
  reason: 'new' | 'rewritten';
}

export interface BatchPlan {
  /** Rewritten windows first (older), then new windows in order. */
  parts: BatchPart[];
  /**
   * The cursor to store once the batch's output is fully written; undefined when nothing is sealed
   * yet on a first run (the next run starts from the same place).
   */
  next: ChangesCursor | undefined;
  /** The new windows delivered: [fromMs, throughMs). Equal when there is no new window. */
  fromMs: number;
  throughMs: number;
  /** Every window before this is sealed (undefined when nothing is sealed). */
  completeThroughMs: number | undefined;
  /** New windows in the batch whose manifest lists a gap (complete: false). */
  incomplete: SealedWindow[];
  /** A hole (a window with no manifest between sealed ones) where the batch had to stop. */
  stoppedAtHole: { startMs: number; endMs: number } | undefined;
}

export interface PlanBatchOptions {
  destination: string;
  /** Where a first batch starts (no cursor yet); default: the changelog's first sealed window. */
  sinceMs?: number | undefined;
  /** The batch takes no window starting at or after this. */
  untilMs?: number | undefined;
  /** The clock (default Date.now): the revision-log position stored in the next cursor. */
  nowMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Plans the next batch after `cursor` (or the first one), reading only manifests and the revision
 * log. Delivering `parts` and then storing `next` gives every change exactly once across batches.
 */
export async function planBatch(
  changelog: Changelog,
  cursor: ChangesCursor | undefined,
  options: PlanBatchOptions,
): Promise<BatchPlan> {
  const { signal } = options;
  // Taken before anything is listed: a revision published later is listed by the next batch.
  const nowMs = options.nowMs ?? Date.now();
  if (cursor !== undefined) assertCursorFits(cursor, changelog.table, options.destination);

  const status = await changelog.status({
    sinceMs: cursor === undefined ? (options.sinceMs ?? 0) : Date.parse(cursor.deliveredThrough),
    untilMs: options.untilMs,
    signal,
  });
  const windowMs = cursor?.windowMs ?? status.windowMs;
  if (cursor !== undefined && status.windowMs !== undefined && status.windowMs !== cursor.windowMs) {
    throw new ChangelogError(
      `cursor was made for ${cursor.windowMs} ms windows, but the changelog of ${changelog.table} has ${status.windowMs} ms windows`,
      { retriable: false },
    );
  }
  const fromMs =
    cursor !== undefined
      ? Date.parse(cursor.deliveredThrough)
      : options.sinceMs !== undefined && windowMs !== undefined
        ? windowStartOf(options.sinceMs, windowMs)
        : (status.firstWindowStartMs ?? 0);
  const versions = { ...(cursor?.versions ?? {}) };

  // Rewritten windows already delivered: their segments added after the delivered version.
  const parts: BatchPart[] = [];
  if (cursor !== undefined) {
    const rewritten = new Map<number, number>();
    const since = Date.parse(cursor.revisionsThrough) - REVISION_LOOKBACK_MS;
    for await (const r of listRevisions(changelog.store, changelog.table, { sinceMs: since, signal })) {
      if (r.windowStartMs >= fromMs) continue; // not delivered yet: read whole at its highest version
      const delivered = versions[isoTime(r.windowStartMs)] ?? 1;
      if (r.version > delivered)
        rewritten.set(r.windowStartMs, Math.max(rewritten.get(r.windowStartMs) ?? 0, r.version));
    }
    for (const startMs of [...rewritten.keys()].sort((a, b) => a - b)) {
      const window = await changelog.window(startMs, signal);
      if (window === undefined) {
        throw new ChangelogError(
          `the revision log names a rewrite of window ${isoTime(startMs)}, but no manifest of it exists`,
          { retriable: true },
        );
      }
      const delivered = versions[isoTime(startMs)] ?? 1;
      if (window.version <= delivered) continue;
      // A compaction adds no segment of a new addedInVersion: nothing to deliver, only the version.
      const added = window.manifest.segments.filter((s) => (s.addedInVersion ?? 1) > delivered);
      if (added.length > 0) parts.push({ window, segments: added, reason: 'rewritten' });
      versions[isoTime(startMs)] = window.version;
    }
  }

  // New windows: a contiguous run of sealed windows from the cursor on.
  let throughMs = fromMs;
  const incomplete: SealedWindow[] = [];
  const endMs = Math.min(options.untilMs ?? Number.POSITIVE_INFINITY, status.completeThroughMs ?? fromMs);
  if (endMs > fromMs) {
    for await (const window of changelog.windows({ sinceMs: fromMs, untilMs: endMs, signal })) {
      if (window.windowStartMs !== throughMs) break; // a hole: status stops before it already
      parts.push({ window, segments: window.manifest.segments, reason: 'new' });
      if (!window.manifest.complete) incomplete.push(window);
      if (window.version > 1) versions[isoTime(window.windowStartMs)] = window.version;
      throughMs = window.windowEndMs;
    }
  }
  const hole = status.holes.find((h) => h.startMs >= throughMs);
  const next: ChangesCursor | undefined =
    windowMs === undefined
      ? undefined
      : {
          cursorVersion: CURSOR_FORMAT_VERSION,
          table: changelog.table,
          destination: options.destination,
          windowMs,
          deliveredThrough: isoTime(throughMs),
          versions,
          revisionsThrough: isoTime(nowMs),
          batch: (cursor?.batch ?? 0) + 1,
          updatedAt: isoTime(nowMs),
        };
  return {
    parts,
    next,
    fromMs,
    throughMs,
    completeThroughMs: status.completeThroughMs,
    incomplete,
    stoppedAtHole: hole === undefined || hole.startMs !== throughMs ? undefined : hole,
  };
}

function assertCursorFits(cursor: ChangesCursor, table: string, destination: string): void {
  const normalise = (url: string) => url.replace(/\/+$/, '');
  if (cursor.table !== table || normalise(cursor.destination) !== normalise(destination)) {
    throw new ChangelogError(
      `cursor belongs to table ${cursor.table} at ${cursor.destination}, not to table ${table} at ${destination}`,
      { retriable: false },
    );
  }
}

/**
 * The batch's windows as the reader reads them (Changelog.rows / segmentsOf with `windows`): each
 * part's window with its manifest narrowed to the part's segments.
 */
export function batchWindows(plan: Pick<BatchPlan, 'parts'>): SealedWindow[] {
  return plan.parts.map((part) => ({
    ...part.window,
    manifest: { ...part.window.manifest, segments: [...part.segments] },
  }));
}
