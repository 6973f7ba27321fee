import type { KeySchema } from '../changelog/keySchema.js';
import { isSequenceNumber, normalizeSequenceNumber } from '../changelog/sequenceNumber.js';
import { ChangelogIntegrityError } from '../support/errors.js';
import { type ChangeRow, isSnapshotOp, isTombstone, type KeyedRow } from './changeRow.js';
import { type KeyOrder, keyOrder, type SortableKey } from './keyOrder.js';

/** Rows in segment order, one at a time: a sync or an async iterator. */
export type SegmentRowIterator<R extends KeyedRow = ChangeRow> = Iterator<R> | AsyncIterator<R>;

/**
 * One segment's rows in segment order (by key, then sequence number), opened only when the merge
 * starts reading. The fastest form is a promise of a sync iterator (fetch the segment, then decode
 * it row by row without a promise per row); an async iterator works too. The merge closes what it
 * opened (`return()`), also on error or early exit.
 */
export type SegmentRowSource<R extends KeyedRow = ChangeRow> = () =>
  | SegmentRowIterator<R>
  | Promise<SegmentRowIterator<R>>;

export interface LatestPerKeyOptions {
  keySchema: KeySchema;
  /**
   * Emit an item whose latest change is a tombstone (a REMOVE, or a NET row without a new image) as
   * that row; default: drop it.
   */
  includeDeletes?: boolean;
  /** Checked before every row; pass it to the sources as well so their reads stop too. */
  signal?: AbortSignal;
}

/**
 * The latest change of every item in the sources, one row per item key, in key order (the
 * encoder's order, see keyOrder.ts): a k-way merge over a binary heap of each source's current row.
 *
 * The latest change is the row with the highest sequence number, wherever it sits (any window, a
 * late row), weighed against the item's latest SNAPSHOT or NET row by streamRowFollowsSnapshot. This assumes an item's sequence numbers grow along
 * its shard lineage: a child shard's numbers follow its parent's, which DynamoDB Streams gives and
 * the changelog keeps (a child is read only after its parents' ends are committed).
 *
 * Memory is one current row per source plus what each source buffers, never per item: no map of
 * keys. The code checks what it relies on and throws ChangelogIntegrityError:
 * - 'unsorted-segment': a source's row sorts before (or equals, in key and sequence number, a
 *   different record) the row before it;
 * - 'duplicate-sequence-number': two rows of one item with one sequence number (the changelog
 *   holds a record twice: its exactly-once invariant is broken), naming both segments;
 * - 'row-read-twice': the same row (segment, event id, op) came twice: a reader bug;
 * - 'invalid-row': a sequence number that is not digits, a missing or malformed key column.
 */
export async function* latestPerKey<R extends KeyedRow = ChangeRow>(
  sources: readonly SegmentRowSource<R>[],
  options: LatestPerKeyOptions,
): AsyncGenerator<R, void, undefined> {
  const { includeDeletes = false, signal } = options;
  const order = keyOrder(options.keySchema);
  const cursors: Cursor<R>[] = [];
  let failed = false;
  try {
    signal?.throwIfAborted();
    // Open and take the first rows in parallel: each is typically a fetch of the segment.
    const opened = await Promise.allSettled(sources.map(async (open) => open()));
    opened.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') cursors.push(new Cursor<R>(i, outcome.value as RowIterator<R>));
    });
    for (const outcome of opened) if (outcome.status === 'rejected') throw outcome.reason;
    const first = await Promise.allSettled(cursors.map(async (c) => c.iterator.next()));
    for (const outcome of first) if (outcome.status === 'rejected') throw outcome.reason;
    signal?.throwIfAborted();

    const heap: Cursor<R>[] = [];
    for (let i = 0; i < cursors.length; i++) {
      const result = (first[i] as PromiseFulfilledResult<IteratorResult<R>>).value;
      const cursor = cursors[i]!;
      if (result.done) cursor.done = true;
      else {
        cursor.load(result.value, order);
        heap.push(cursor);
      }
    }
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, i);

    while (heap.length > 0) {
      signal?.throwIfAborted();
      // The heap orders by key, then sequence number: an item's rows come out oldest first and
      // consecutively, so the last one of a run of equal keys is the item's latest change.
      // Replay's SNAPSHOT and NET rows (sequence number "0") come first in a run; of them the
      // latest snapshot counts, and it is weighed against the last stream row by latestOf.
      const top = heap[0]!;
      const partition = top.partition;
      const sort = top.sort;
      let stream: R | undefined;
      let streamSequence = '';
      let snapshot: R | undefined;
      let cursor: Cursor<R> = top;
      for (;;) {
        const row = cursor.row;
        if (isSnapshotOp(row.op)) snapshot = laterSnapshot(snapshot, row);
        else {
          if (stream !== undefined && cursor.sequence === streamSequence) throw duplicate(stream, row);
          stream = row;
          streamSequence = cursor.sequence;
        }
        const step = cursor.iterator.next();
        advanceTop(heap, isPromise(step) ? await step : step, order);
        if (heap.length === 0) break;
        cursor = heap[0]!;
        if (cursor.partition !== partition || cursor.sort !== sort) break;
      }
      const latest = latestOf(stream, snapshot);
      if (includeDeletes || !isTombstone(latest)) yield latest;
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await closeSources(cursors, failed);
  }
}

/**
 * THE ordering rule between an item's stream rows and replay's rows (SNAPSHOT: its state at a scan's
 * start or a full export's time; NET: its state at an incremental export's period end). A stream
 * row follows a snapshot row when its event time is at or after the snapshot's time truncated to
 * the second; ties go to the stream. Stream event times have one-second precision, so a write in
 * the snapshot's second may be before or after it: if before, the snapshot already holds it and the
 * stream row says the same state; if after, the stream row is newer. Either way the stream row is
 * right, provided the stream is read from before the snapshot's time (bootstrap requires it).
 * Of an item's stream rows the highest sequence number is the latest, and event times grow with
 * sequence numbers along an item's lineage, so weighing the last stream row settles it.
 */
export function streamRowFollowsSnapshot(streamEventTimeMs: number, snapshotEventTimeMs: number): boolean {
  return streamEventTimeMs >= Math.floor(snapshotEventTimeMs / 1000) * 1000;
}

/** The item's latest row of its last stream row and its latest snapshot row (at least one given). */
function latestOf<R extends KeyedRow>(stream: R | undefined, snapshot: R | undefined): R {
  if (snapshot === undefined) return stream!;
  if (stream === undefined) return snapshot;
  return streamRowFollowsSnapshot(stream.eventTimeMs, snapshot.eventTimeMs) ? stream : snapshot;
}

/**
 * Of two snapshot rows of an item, the later one (by event time; equal times, which only two
 * replays of the same instant give, by event id so the answer does not depend on segment order).
 * The same row twice is a reader bug; two rows of one replay (one event id) a broken changelog.
 */
function laterSnapshot<R extends KeyedRow>(current: R | undefined, row: R): R {
  if (current === undefined) return row;
  if (row.eventId === current.eventId) throw duplicate(current, row);
  const a = current.eventTimeMs;
  const b = row.eventTimeMs;
  return b > a || (b === a && row.eventId > current.eventId) ? row : current;
}

/**
 * Closes every source not run to its end, all of them even if one fails to close. Throws the first
 * close failure, unless the merge already failed: that error must not be hidden by this one.
 */
async function closeSources(cursors: readonly Cursor<KeyedRow>[], failed: boolean): Promise<void> {
  const open = cursors.filter((c) => !c.done);
  const closing = await Promise.allSettled(open.map(async (c) => c.iterator.return?.()));
  const closeError = closing.find((outcome) => outcome.status === 'rejected');
  if (closeError && !failed) throw closeError.reason;
}

/** What the merge needs of a SegmentRowIterator, sync or async, as one type. */
interface RowIterator<R extends KeyedRow> {
  next(): IteratorResult<R> | PromiseLike<IteratorResult<R>>;
  return?(): unknown;
}

/** Awaiting only what is a promise keeps a sync source free of a microtask per row. */
function isPromise<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === 'function';
}

/** A source's iterator and its current row, with the row's sort fields computed once. */
class Cursor<R extends KeyedRow> implements SortableKey {
  partition = '';
  sort = '';
  /** The current row's sequence number without leading zeros (see compareCursors). */
  sequence = '';
  row!: R;
  done = false;

  constructor(
    readonly index: number,
    readonly iterator: RowIterator<R>,
  ) {}

  load(row: R, order: KeyOrder): void {
    const text = row.sequenceNumber;
    if (typeof text !== 'string' || !isSequenceNumber(text)) {
      throw new ChangelogIntegrityError(
        'invalid-row',
        `segment ${row.segmentKey}: row ${row.eventId} (item ${row.keys}) has sequence number ${JSON.stringify(text)}; expected decimal digits`,
        { segmentKeys: [row.segmentKey], itemKeys: row.keys, shardId: row.shardId },
      );
    }
    this.sequence = text.charCodeAt(0) === 0x30 ? normalizeSequenceNumber(text) : text;
    order.sortableKey(row, this);
    this.row = row;
  }
}

/**
 * Moves the heap's top cursor to `result`, its source's next row (or drops it at the end), and
 * re-sifts. Synchronous, the caller awaits the row: one promise per row, not two.
 */
function advanceTop<R extends KeyedRow>(heap: Cursor<R>[], result: IteratorResult<R>, order: KeyOrder): void {
  const cursor = heap[0]!;
  if (result.done) {
    cursor.done = true;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      siftDown(heap, 0);
    }
    return;
  }
  const previous = cursor.row;
  const { partition, sort, sequence } = cursor;
  cursor.load(result.value, order);
  // The merge is only right if every source is sorted: check each row against the one before it.
  const byKey = cursor.partition !== partition ? cursor.partition < partition : cursor.sort < sort;
  const sameKey = cursor.partition === partition && cursor.sort === sort;
  if (byKey || (sameKey && compareSequences(cursor.sequence, sequence) < 0)) {
    throw unsorted(previous, cursor.row);
  }
  // Snapshot rows all have sequence number "0": two of one item (two replays, compacted into one
  // segment) are told apart by laterSnapshot.
  if (sameKey && cursor.sequence === sequence && !isSnapshotOp(cursor.row.op))
    throw duplicate(previous, cursor.row);
  siftDown(heap, 0);
}

function siftDown(heap: Cursor<KeyedRow>[], index: number): void {
  const n = heap.length;
  const item = heap[index]!;
  let i = index;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= n) break;
    const right = left + 1;
    const child = right < n && compareCursors(heap[right]!, heap[left]!) < 0 ? right : left;
    if (compareCursors(heap[child]!, item) >= 0) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = item;
}

/** Key, then sequence number, then source: a total order, so equal records come out adjacent. */
function compareCursors(a: Cursor<KeyedRow>, b: Cursor<KeyedRow>): number {
  if (a.partition !== b.partition) return a.partition < b.partition ? -1 : 1;
  if (a.sort !== b.sort) return a.sort < b.sort ? -1 : 1;
  const bySequence = compareSequences(a.sequence, b.sequence);
  return bySequence !== 0 ? bySequence : a.index - b.index;
}

/**
 * Sequence numbers without leading zeros compare as integers by length, then digits: the same
 * order as compareSequenceNumbers, without its per-call normalisation.
 */
function compareSequences(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function unsorted(previous: KeyedRow, row: KeyedRow): ChangelogIntegrityError {
  const segments =
    previous.segmentKey === row.segmentKey ? [row.segmentKey] : [previous.segmentKey, row.segmentKey];
  return new ChangelogIntegrityError(
    'unsorted-segment',
    `segment ${segments.join(' then ')}: row ${row.eventId} (item ${row.keys}, sequence number ${row.sequenceNumber}) ` +
      `sorts before the row read before it, ${previous.eventId} (item ${previous.keys}, sequence number ${previous.sequenceNumber}); ` +
      'a segment must be sorted by key (encoder order), then sequence number',
    { segmentKeys: segments, itemKeys: row.keys, sequenceNumber: row.sequenceNumber, shardId: row.shardId },
  );
}

function duplicate(a: KeyedRow, b: KeyedRow): ChangelogIntegrityError {
  const details = {
    segmentKeys: a.segmentKey === b.segmentKey ? [a.segmentKey] : [a.segmentKey, b.segmentKey],
    itemKeys: a.keys,
    sequenceNumber: b.sequenceNumber,
    shardId: b.shardId,
  };
  if (a.segmentKey === b.segmentKey && a.eventId === b.eventId && a.op === b.op) {
    return new ChangelogIntegrityError(
      'row-read-twice',
      `row ${a.eventId} (${a.op}, item ${a.keys}, sequence number ${a.sequenceNumber}) of segment ${a.segmentKey} ` +
        'reached the latest-per-key merge twice: a reader bug (each segment row must be read once)',
      details,
    );
  }
  return new ChangelogIntegrityError(
    'duplicate-sequence-number',
    `item ${a.keys} has two rows with sequence number ${b.sequenceNumber}: ${a.eventId} (${a.op}) in segment ${a.segmentKey} ` +
      `and ${b.eventId} (${b.op}) in segment ${b.segmentKey}; a stream record must be in the changelog exactly once ` +
      '(run verify on the windows holding these segments)',
    details,
  );
}
