import { type KeySchema, keyAttributes, keyColumnName } from '../../src/changelog/keySchema.js';
import { compareSequenceNumbers } from '../../src/changelog/sequenceNumber.js';
import type { ChangeRow } from '../../src/read/changeRow.js';
import type { SegmentRowSource } from '../../src/read/latestMerge.js';
import { compareKeyValues } from './dynamoOrder.js';

/**
 * ChangeRow factories for read-side unit tests, built directly (no Parquet): typed key columns as
 * the reader hands them out (S and N as text, B as base64), keys JSON to match.
 */

export type ChangeRowFields = Partial<Omit<ChangeRow, 'keys' | 'keyColumns'>> & { sequenceNumber: string };

/** A row of item `key` (one value per key attribute, partition key first) with `fields` over defaults. */
export function changeRow(schema: KeySchema, key: readonly string[], fields: ChangeRowFields): ChangeRow {
  const attributes = keyAttributes(schema);
  if (key.length !== attributes.length) throw new Error(`key ${JSON.stringify(key)} does not fit the schema`);
  const keyColumns: Record<string, string> = {};
  const keys: Record<string, Record<string, string>> = {};
  attributes.forEach((a, i) => {
    keyColumns[keyColumnName(a.name)] = key[i]!;
    keys[a.name] = { [a.type]: key[i]! };
  });
  const op = fields.op ?? 'MODIFY';
  return {
    eventId: `event-${fields.sequenceNumber}`,
    op,
    eventTimeMs: Date.UTC(2026, 10, 22, 10),
    shardId: 'shardId-00000001',
    newImage: op === 'REMOVE' ? null : JSON.stringify(keys),
    oldImage: null,
    sizeBytes: 100,
    ttlDelete: false,
    windowStartMs: Date.UTC(2026, 10, 22, 10),
    segmentKey: 'orders/data/dt=2026-11-22/window=20261122T100000Z/s1-a.parquet',
    ...fields,
    keys: JSON.stringify(keys),
    keyColumns,
  };
}

/**
 * Rows in segment order, sorted with the independent oracle (dynamoOrder.ts), not the code under
 * test: by key in DynamoDB's order, then sequence number as an integer.
 */
export function sortedLikeSegment(schema: KeySchema, rows: readonly ChangeRow[]): ChangeRow[] {
  return [...rows].sort(
    (a, b) => compareRowKeys(schema, a, b) || compareSequenceNumbers(a.sequenceNumber, b.sequenceNumber),
  );
}

/** Compares two rows' keys with the independent oracle. */
export function compareRowKeys(schema: KeySchema, a: ChangeRow, b: ChangeRow): number {
  for (const attribute of keyAttributes(schema)) {
    const column = keyColumnName(attribute.name);
    const c = compareKeyValues(attribute.type, a.keyColumns[column]!, b.keyColumns[column]!);
    if (c !== 0) return c;
  }
  return 0;
}

/** A source that records whether it was opened, ran out, or was closed early (`return()`). */
export interface TrackedSource {
  source: SegmentRowSource;
  readonly opened: boolean;
  /** It ran out of rows or its return() was called: nothing is left open. */
  readonly closed: boolean;
  /** Its return() was called. */
  readonly returned: boolean;
  /** Rows handed out so far. */
  readonly pulled: number;
}

/**
 * A tracked source over `rows` (in the order to hand out), or over `rows(i)` until it returns
 * undefined (never, for an endless source). After `failAfter` rows, next() throws. `sync` makes
 * it a sync iterator.
 */
export function trackedSource(
  rows: readonly ChangeRow[] | ((index: number) => ChangeRow | undefined),
  options: { failAfter?: number; sync?: boolean } = {},
): TrackedSource {
  const state = { opened: false, ended: false, returned: false, pulled: 0 };
  const rowAt = typeof rows === 'function' ? rows : (i: number) => rows[i];
  const tracked: TrackedSource = {
    source: () => {
      state.opened = true;
      const iterator = {
        next(): IteratorResult<ChangeRow, undefined> {
          if (state.ended || state.returned) return { done: true, value: undefined };
          if (options.failAfter !== undefined && state.pulled === options.failAfter) {
            throw new Error(`source failed after ${options.failAfter} rows`);
          }
          const row = rowAt(state.pulled);
          if (row === undefined) {
            state.ended = true;
            return { done: true, value: undefined };
          }
          state.pulled++;
          return { done: false, value: row };
        },
        return(): IteratorResult<ChangeRow, undefined> {
          state.returned = true;
          return { done: true, value: undefined };
        },
      };
      if (options.sync) return iterator;
      return {
        next: async () => iterator.next(),
        return: async () => iterator.return(),
      };
    },
    get opened() {
      return state.opened;
    },
    get closed() {
      return state.ended || state.returned;
    },
    get returned() {
      return state.returned;
    },
    get pulled() {
      return state.pulled;
    },
  };
  return tracked;
}

/** The forms a SegmentRowSource takes: an async iterator, a sync one, or a promise of a sync one. */
export const SOURCE_FORMS = ['async', 'sync', 'opened'] as const;
export type SourceForm = (typeof SOURCE_FORMS)[number];

/** A plain source over rows in the given order. */
export function rowSource(rows: readonly ChangeRow[], form: SourceForm = 'async'): SegmentRowSource {
  switch (form) {
    case 'async':
      return async function* () {
        yield* rows;
      };
    case 'sync':
      return function* () {
        yield* rows;
      };
    case 'opened':
      return async () =>
        (function* () {
          yield* rows;
        })();
  }
}

export async function collectRows(rows: AsyncIterable<ChangeRow>): Promise<ChangeRow[]> {
  const out: ChangeRow[] = [];
  for await (const row of rows) out.push(row);
  return out;
}
