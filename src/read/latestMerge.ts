import type { KeySchema } from '../changelog/keySchema.js';
import { isSequenceNumber, normalizeSequenceNumber } from '../changelog/sequenceNumber.js';
import { ChangelogIntegrityError } from '../support/errors.js';
import type { ChangeRow, KeyedRow } from './changeRow.js';
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
  /** Emit an item whose latest change is a REMOVE as that REMOVE row (a tombstone); default: drop it. */
  includeDeletes?: boolean;
  /** Checked before every row; pass it to the sources as well so their reads stop too. */
  signal?: AbortSignal;
}

/**
 * The latest change of every item in the sources, one row per item key, in key order (the
 * encoder's order, see keyOrder.ts): a k-way merge over a binary heap of each source's current row.
 *
 * The latest change is the row with the highest sequence number, wherever it sits (any window, a
 * late row, a SNAPSHOT or NET row of a replay). This assumes an item's sequence numbers grow along
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
      const top = heap[0]!;
      let latest = top.row;
      let latestSequence = top.sequence;
      const partition = top.partition;
      const sort = top.sort;
      let step = top.iterator.next();
      advanceTop(heap, isPromise(step) ? await step : step, order);
      while (heap.length > 0) {
        const next = heap[0]!;
        if (next.partition !== partition || next.sort !== sort) break;
        if (next.sequence === latestSequence) throw duplicate(latest, next.row);
        latest = next.row;
        latestSequence = next.sequence;
        step = next.iterator.next();
        advanceTop(heap, isPromise(step) ? await step : step, order);
      }
      if (includeDeletes || latest.op !== 'REMOVE') yield latest;
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await closeSources(cursors, failed);
  }
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
  if (sameKey && cursor.sequence === sequence) throw duplicate(previous, cursor.row);
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
