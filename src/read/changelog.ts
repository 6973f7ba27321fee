import { windowShapeViolations } from '../changelog/invariants.js';
import { DAY_MS, isoTime, manifestPrefix } from '../changelog/layout.js';
import type { Manifest, ManifestGap, ManifestSegment } from '../changelog/manifest.js';
import { type ObjectStore, sha256Checksum } from '../coordination/objectStore.js';
import { ChangelogError } from '../support/errors.js';
import { readAhead } from '../support/readAhead.js';
import type { ChangeRow } from './changeRow.js';
import { listWindows, type ManifestListing, readManifest } from './manifestReader.js';
import { decodeSegmentRows } from './segmentRows.js';

/**
 * A range of sealed windows. A window is in the range when its start is in
 * [windowStartOf(sinceMs), untilMs):
 *
 * - `sinceMs` rounds DOWN to the start of its window, so no change whose event time is at or after
 *   `sinceMs` is left out (the window holding `sinceMs` is read whole).
 * - Rows are NOT filtered by event time. A late row is committed in a later window than its event
 *   time; an incremental reader that reads [a, b) and then [b, c) must get it exactly once, from
 *   the window that holds it. So a range hands out rows with event times before `sinceMs` (the
 *   start of the window holding it, and late rows of its windows), and a late row whose event
 *   time is in the range but which landed in a later window comes with that later window.
 * - `untilMs` is exclusive: windows starting before it are in (the last one whole). Open-ended
 *   when absent.
 */
export interface WindowRange {
  sinceMs: number;
  untilMs?: number;
  signal?: AbortSignal;
}

/** A sealed window, read: its highest manifest version. */
export interface SealedWindow {
  windowStartMs: number;
  windowEndMs: number;
  version: number;
  manifestKey: string;
  manifest: Manifest;
}

/** A segment of a sealed window: the manifest's entry and the window that lists it. */
export interface ChangelogSegment extends ManifestSegment {
  windowStartMs: number;
  windowEndMs: number;
  /** The manifest (version) listing the segment. */
  manifestKey: string;
  manifestVersion: number;
}

export interface RowsOptions extends WindowRange {
  /**
   * Read these sealed windows, in this order (from `windows()`, or a cursor's choice), instead of
   * listing [sinceMs, untilMs) again; the range's times are then not consulted.
   */
  windows?: AsyncIterable<SealedWindow> | Iterable<SealedWindow>;
}

/** A window whose manifest says `complete: false`: records the stream trimmed before they were read. */
export interface IncompleteWindow {
  windowStartMs: number;
  windowEndMs: number;
  manifestKey: string;
  gaps: ManifestGap[];
}

/** Windows not sealed although a later window is: [startMs, endMs). */
export interface WindowHole {
  startMs: number;
  endMs: number;
}

export interface ChangelogStatus {
  /** The window size (from the manifests); undefined when nothing is sealed in the range. */
  windowMs: number | undefined;
  /** The first sealed window at or after windowStartOf(sinceMs). */
  firstWindowStartMs: number | undefined;
  /**
   * The end of the contiguous run of sealed windows from firstWindowStartMs: everything before it
   * is sealed, so a reader that stops here misses nothing that a later read of the range could
   * add. The sealer seals in order, so a missing window before a later sealed one is a hole, and
   * this stops before it.
   */
  completeThroughMs: number | undefined;
  /** Windows in [since, untilMs) (or [since, completeThroughMs) with no untilMs) that are not complete. */
  incomplete: IncompleteWindow[];
  /** Missing windows between sealed ones, each run of them once. */
  holes: WindowHole[];
}

/** A segment's bytes, fetched and checked against its manifest entry (length and sha256). */
export interface LoadedSegment {
  segment: ChangelogSegment;
  bytes: Uint8Array;
}

/** A table's changelog in a store: its sealed windows, their segments, and their rows. */
export interface Changelog {
  readonly store: ObjectStore;
  readonly table: string;
  /** The sealed windows of the range, oldest first (see WindowRange for the range's meaning). */
  windows(range: WindowRange): AsyncIterable<SealedWindow>;
  /** The sealed window starting at `windowStartMs` (its highest version), or undefined when none is. */
  window(windowStartMs: number, signal?: AbortSignal): Promise<SealedWindow | undefined>;
  /** How far the range is sealed: its window size, the contiguous sealed run, holes, gaps. */
  status(range: WindowRange): Promise<ChangelogStatus>;
  /** The segments of the range: windows in order, each window's segments in manifest order, each object once. */
  segmentsOf(options: RowsOptions): AsyncIterable<ChangelogSegment>;
  /** One segment's bytes, checked against the manifest (see LoadedSegment). */
  loadSegment(segment: ChangelogSegment, signal?: AbortSignal): Promise<Uint8Array>;
  /** segmentsOf's segments loaded, the next SEGMENT_READ_AHEAD fetched while one is used. */
  loadedSegments(options: RowsOptions): AsyncIterable<LoadedSegment>;
  /** Every row of the range: windows in order, segments in manifest order, rows in segment order. */
  rows(options: RowsOptions): AsyncIterable<ChangeRow>;
}

export interface OpenChangelogOptions {
  /** Where the changelog is (coordination/openObjectStore.ts opens one from a destination URL). */
  store: ObjectStore;
  table: string;
}

/** Segments fetched ahead of the one being decoded: bounded, so memory is ~3 segments at most. */
export const SEGMENT_READ_AHEAD = 2;
/** Manifests read ahead while windows are handed out: they are small, and S3 GETs are slow one by one. */
export const MANIFEST_READ_AHEAD = 8;

/** The changelog of `table` in `store`. Reads nothing until asked. */
export function openChangelog(options: OpenChangelogOptions): Changelog {
  manifestPrefix(options.table); // refuses a table name the layout cannot hold, before any read
  return new StoreChangelog(options.store, options.table);
}

class StoreChangelog implements Changelog {
  constructor(
    readonly store: ObjectStore,
    readonly table: string,
  ) {}

  async *windows(range: WindowRange): AsyncGenerator<SealedWindow, void, undefined> {
    const { sinceMs, untilMs, signal } = checkRange(range);
    // The window holding sinceMs starts at or after its day's midnight (windows tile the day) and
    // before sinceMs; of the windows listed before sinceMs, only the last one can hold it.
    const dayStartMs = Math.floor(sinceMs / DAY_MS) * DAY_MS;
    const listings = this.candidates(
      listWindows(this.store, this.table, { sinceMs: dayStartMs, untilMs, signal }),
      sinceMs,
    );
    let first: SealedWindow | undefined;
    for await (const window of readAhead(listings, MANIFEST_READ_AHEAD, (l, stop) =>
      this.readWindow(l, anySignal(signal, stop)),
    )) {
      if (first === undefined) first = window;
      else if (window.windowEndMs - window.windowStartMs !== first.windowEndMs - first.windowStartMs) {
        throw new ChangelogError(
          `manifest ${window.manifestKey} has a window of ${window.windowEndMs - window.windowStartMs} ms, but ${first.manifestKey} has ${first.windowEndMs - first.windowStartMs} ms: one changelog has one window size`,
          { key: window.manifestKey, retriable: false },
        );
      }
      if (window.windowEndMs <= sinceMs) continue; // the last window before sinceMs, which ends before it
      yield window;
    }
  }

  async window(windowStartMs: number, signal?: AbortSignal): Promise<SealedWindow | undefined> {
    const range = { sinceMs: windowStartMs, untilMs: windowStartMs + 1, signal };
    for await (const listing of listWindows(this.store, this.table, range)) {
      return this.readWindow(listing, signal);
    }
    return undefined;
  }

  /** The listings from the window before sinceMs on: the last one before it, then the rest. */
  private async *candidates(
    listings: AsyncIterable<ManifestListing>,
    sinceMs: number,
  ): AsyncGenerator<ManifestListing, void, undefined> {
    let before: ManifestListing | undefined;
    let reached = false;
    for await (const listing of listings) {
      if (!reached) {
        if (listing.windowStartMs < sinceMs) {
          before = listing;
          continue;
        }
        reached = true;
        if (before !== undefined) yield before;
      }
      yield listing;
    }
    if (!reached && before !== undefined) yield before;
  }

  private async readWindow(listing: ManifestListing, signal: AbortSignal | undefined): Promise<SealedWindow> {
    const { key, windowStartMs, version } = listing;
    const manifest = await readManifest(this.store, key, {
      expect: { table: this.table, windowStartMs, version },
      signal,
    });
    const shape = windowShapeViolations(manifest, key);
    if (shape.length > 0) {
      throw new ChangelogError(shape.map((v) => v.message).join('; '), { key, retriable: false });
    }
    return {
      windowStartMs,
      windowEndMs: Date.parse(manifest.window.end),
      version,
      manifestKey: key,
      manifest,
    };
  }

  async status(range: WindowRange): Promise<ChangelogStatus> {
    const status: ChangelogStatus = {
      windowMs: undefined,
      firstWindowStartMs: undefined,
      completeThroughMs: undefined,
      incomplete: [],
      holes: [],
    };
    let contiguous = true;
    let previousEndMs: number | undefined;
    for await (const window of this.windows(range)) {
      if (previousEndMs === undefined) {
        status.windowMs = window.windowEndMs - window.windowStartMs;
        status.firstWindowStartMs = window.windowStartMs;
      } else if (window.windowStartMs > previousEndMs) {
        status.holes.push({ startMs: previousEndMs, endMs: window.windowStartMs });
        contiguous = false;
      }
      if (contiguous) status.completeThroughMs = window.windowEndMs;
      // Without untilMs, the range a reader can use ends at completeThroughMs.
      if (!window.manifest.complete && (contiguous || range.untilMs !== undefined)) {
        status.incomplete.push({
          windowStartMs: window.windowStartMs,
          windowEndMs: window.windowEndMs,
          manifestKey: window.manifestKey,
          gaps: window.manifest.gaps.filter((g) => g.filledBy === undefined),
        });
      }
      previousEndMs = window.windowEndMs;
    }
    return status;
  }

  async *segmentsOf(options: RowsOptions): AsyncGenerator<ChangelogSegment, void, undefined> {
    const windows = options.windows ?? this.windows(options);
    // Exactly once: a segment listed twice (in one manifest or two) would hand out its rows twice.
    const listedBy = new Map<string, string>();
    for await (const window of windows) {
      options.signal?.throwIfAborted();
      for (const entry of window.manifest.segments) {
        const earlier = listedBy.get(entry.key);
        if (earlier !== undefined) {
          throw new ChangelogError(
            `segment ${entry.key} is listed by manifest ${window.manifestKey} and already by ${earlier}: a segment belongs to one window, once`,
            { key: entry.key, retriable: false },
          );
        }
        listedBy.set(entry.key, window.manifestKey);
        yield {
          ...entry,
          windowStartMs: window.windowStartMs,
          windowEndMs: window.windowEndMs,
          manifestKey: window.manifestKey,
          manifestVersion: window.version,
        };
      }
    }
  }

  async loadSegment(segment: ChangelogSegment, signal?: AbortSignal): Promise<Uint8Array> {
    const { key, manifestKey } = segment;
    const bytes = await this.store.get(key, signal);
    if (bytes === undefined) {
      throw new ChangelogError(
        `segment ${key} listed by manifest ${manifestKey} does not exist in ${this.store.url}`,
        { key, retriable: false },
      );
    }
    if (bytes.byteLength !== segment.bytes) {
      throw new ChangelogError(
        `segment ${key} has ${bytes.byteLength} bytes, but manifest ${manifestKey} lists ${segment.bytes}`,
        { key, retriable: false },
      );
    }
    const checksum = sha256Checksum(bytes);
    if (checksum !== segment.checksum) {
      throw new ChangelogError(
        `segment ${key} has checksum ${checksum}, but manifest ${manifestKey} lists ${segment.checksum}`,
        { key, retriable: false },
      );
    }
    return bytes;
  }

  loadedSegments(options: RowsOptions): AsyncIterable<LoadedSegment> {
    return readAhead(this.segmentsOf(options), SEGMENT_READ_AHEAD, async (segment, stop) => ({
      segment,
      bytes: await this.loadSegment(segment, anySignal(options.signal, stop)),
    }));
  }

  rows(options: RowsOptions): AsyncIterable<ChangeRow> {
    return {
      [Symbol.asyncIterator]: () =>
        new FlatRows(this.loadedSegments(options)[Symbol.asyncIterator](), ({ segment, bytes }) =>
          decodeSegmentRows(
            bytes,
            { segmentKey: segment.key, windowStartMs: segment.windowStartMs },
            { signal: options.signal },
          ),
        ),
    };
  }
}

/**
 * Rows of each segment in turn. A row is handed out as an already resolved promise straight from
 * the segment's synchronous decoder, so the per-row cost is one promise, not an async generator's
 * machinery: rows are the hot path of `changes`.
 */
class FlatRows<S> implements AsyncIterator<ChangeRow> {
  private current: Iterator<ChangeRow> | undefined;

  constructor(
    private readonly segments: AsyncIterator<S>,
    private readonly decode: (segment: S) => Iterator<ChangeRow>,
  ) {}

  next(): Promise<IteratorResult<ChangeRow>> {
    if (this.current !== undefined) {
      let row: IteratorResult<ChangeRow>;
      try {
        row = this.current.next();
      } catch (error) {
        return this.fail(error);
      }
      if (!row.done) return Promise.resolve(row);
      this.current = undefined;
    }
    return this.nextSegment();
  }

  private async nextSegment(): Promise<IteratorResult<ChangeRow>> {
    for (;;) {
      const segment = await this.segments.next();
      if (segment.done) return { done: true, value: undefined };
      let row: IteratorResult<ChangeRow>;
      try {
        this.current = this.decode(segment.value);
        row = this.current.next();
      } catch (error) {
        return this.fail(error);
      }
      if (!row.done) return row;
      this.current = undefined;
    }
  }

  /** Ends the iteration on a decode error: the segments read ahead are dropped, then it throws. */
  private async fail(error: unknown): Promise<never> {
    this.current = undefined;
    try {
      await this.segments.return?.();
    } catch {
      // The decode error is the one to report.
    }
    throw error;
  }

  async return(): Promise<IteratorResult<ChangeRow>> {
    this.current?.return?.();
    this.current = undefined;
    await this.segments.return?.();
    return { done: true, value: undefined };
  }
}

function checkRange<R extends WindowRange>(range: R): R {
  const { sinceMs, untilMs } = range;
  if (!Number.isSafeInteger(sinceMs) || sinceMs < 0) {
    throw new ChangelogError(`since ${sinceMs} is not a time: it must be epoch milliseconds >= 0`, {
      retriable: false,
    });
  }
  if (untilMs !== undefined && (!Number.isSafeInteger(untilMs) || untilMs <= sinceMs)) {
    throw new ChangelogError(
      `until ${Number.isSafeInteger(untilMs) ? isoTime(untilMs) : untilMs} must be a time after since ${isoTime(sinceMs)}`,
      { retriable: false },
    );
  }
  return range;
}

function anySignal(outer: AbortSignal | undefined, inner: AbortSignal): AbortSignal {
  return outer === undefined ? inner : AbortSignal.any([outer, inner]);
}
