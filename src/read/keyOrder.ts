import { decimalSortKey, InvalidNumberError } from '../changelog/decimalSortKey.js';
import { type KeyAttribute, type KeySchema, keyAttributes, keyColumnName } from '../changelog/keySchema.js';
import { ChangelogIntegrityError } from '../support/errors.js';
import type { ChangeRow, KeyedRow } from './changeRow.js';

/**
 * The order of items by key, exactly as the segment encoder sorts rows (changelog/arrowBatch.ts
 * sortPermutation): partition key, then sort key; S by UTF-8 bytes, N by numeric value
 * (changelog/decimalSortKey.ts), B by bytes.
 *
 * Each key attribute is turned once per row into a string whose UTF-16 code-unit order is that
 * byte order, so comparing two rows is a native string comparison: no allocation, no float.
 */

/** A row's key in sortable form (see keyOrder). */
export interface SortableKey {
  partition: string;
  /** '' for a table without a sort key. */
  sort: string;
}

export interface KeyOrder {
  readonly schema: KeySchema;
  /** The typed key column names (ChangeRow.keyColumns), partition key first. */
  readonly columns: readonly string[];
  /**
   * Computes `row`'s sortable key into `into` (a caller that keeps one per stream reuses it) and
   * returns it. Throws ChangelogIntegrityError ('invalid-row', naming the segment) for a missing key
   * column, an N value that is not a DynamoDB number, or a B value that is not base64.
   */
  sortableKey(row: KeyedRow, into?: SortableKey): SortableKey;
}

/** Compares two sortable keys of one key schema: negative, 0 (the same item) or positive. */
export function compareSortableKeys(a: SortableKey, b: SortableKey): number {
  if (a.partition !== b.partition) return a.partition < b.partition ? -1 : 1;
  if (a.sort !== b.sort) return a.sort < b.sort ? -1 : 1;
  return 0;
}

/** The key order of a key schema; build it once per schema and reuse it for every row. */
export function keyOrder(schema: KeySchema): KeyOrder {
  const attributes = keyAttributes(schema);
  const columns = attributes.map((a) => keyColumnName(a.name));
  const partition = attributePart(attributes[0]!, columns[0]!);
  const sortAttribute = attributes[1];
  const sort = sortAttribute ? attributePart(sortAttribute, columns[1]!) : undefined;
  return {
    schema,
    columns,
    sortableKey(row, into = { partition: '', sort: '' }) {
      into.partition = partition(row);
      into.sort = sort ? sort(row) : '';
      return into;
    },
  };
}

/**
 * A comparator of two rows' typed key columns in the encoder's order. Each row's sortable key is
 * computed on first use and cached per row object, so sorting n rows decodes n keys, not n log n.
 */
export function compareKeyColumns(schema: KeySchema): (a: ChangeRow, b: ChangeRow) => number {
  const order = keyOrder(schema);
  const cache = new WeakMap<ChangeRow, SortableKey>();
  const keyOf = (row: ChangeRow): SortableKey => {
    let key = cache.get(row);
    if (key === undefined) {
      key = order.sortableKey(row);
      cache.set(row, key);
    }
    return key;
  };
  return (a, b) => compareSortableKeys(keyOf(a), keyOf(b));
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function attributePart(attribute: KeyAttribute, column: string): (row: KeyedRow) => string {
  const value = (row: KeyedRow): string => {
    const text = row.keyColumns[column];
    if (typeof text !== 'string') {
      throw invalidRow(
        row,
        `has no key column ${JSON.stringify(column)} (key schema ${attribute.name}:${attribute.type})`,
      );
    }
    return text;
  };
  switch (attribute.type) {
    case 'S':
      return (row) => {
        const text = value(row);
        for (let i = 0; i < text.length; i++) {
          // Only from the first surrogate on does UTF-16 order differ from UTF-8's.
          if (text.charCodeAt(i) >= 0xd800) return codePointOrdered(text);
        }
        return text;
      };
    case 'N':
      return (row) => {
        const text = value(row);
        try {
          return numberSortKey(text);
        } catch (error) {
          if (!(error instanceof InvalidNumberError)) throw error;
          throw invalidRow(
            row,
            `has N key column ${JSON.stringify(column)} = ${JSON.stringify(text)}, not a DynamoDB number`,
            error,
          );
        }
      };
    case 'B':
      return (row) => {
        const text = value(row);
        // Buffer's decoder skips characters it does not know; a reader bug must not pass as a key.
        if (!BASE64.test(text)) {
          throw invalidRow(
            row,
            `has B key column ${JSON.stringify(column)} = ${JSON.stringify(text)}, not padded base64`,
          );
        }
        return Buffer.from(text, 'base64').toString('latin1');
      };
  }
}

// Scratch for number text: numbers are at most a few dozen ASCII characters, and the merge runs
// one row at a time, so one buffer serves every call.
let numberText = new Uint8Array(64);

/** decimalSortKey of `text` as a string of code units 0-255, so it compares natively. */
function numberSortKey(text: string): string {
  if (text.length > numberText.length) numberText = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // Not ASCII: no number; 0x7f makes decimalSortKey refuse it rather than misread a truncated byte.
    numberText[i] = c < 0x80 ? c : 0x7f;
  }
  const bytes = decimalSortKey(numberText, 0, text.length);
  // For a few dozen bytes, fromCharCode beats a Buffer view plus a latin1 decode.
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/**
 * Remaps code units so that their order is code-point order (= UTF-8 byte order): U+E000-U+FFFF
 * move down below the surrogates, which move to the top, as the code points they encode are above
 * U+FFFF. Order within each range is kept, so pairs still compare high surrogate first.
 */
function codePointOrdered(text: string): string {
  const units = new Array<number>(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    units[i] = c >= 0xe000 ? c - 0x800 : c >= 0xd800 ? c + 0x2000 : c;
  }
  return String.fromCharCode(...units);
}

function invalidRow(row: KeyedRow, what: string, cause?: unknown): ChangelogIntegrityError {
  return new ChangelogIntegrityError(
    'invalid-row',
    `segment ${row.segmentKey}: row ${row.eventId} (item ${row.keys}) ${what}`,
    {
      segmentKeys: [row.segmentKey],
      itemKeys: row.keys,
      sequenceNumber: row.sequenceNumber,
      shardId: row.shardId,
      cause,
    },
  );
}
