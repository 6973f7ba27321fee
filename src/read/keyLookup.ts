import { decimalSortKey, decimalSortKeyOf, InvalidNumberError } from '../changelog/decimalSortKey.js';
import {
  formatKeySchema,
  type KeyAttribute,
  type KeySchema,
  keyAttributes,
  keyColumnName,
} from '../changelog/keySchema.js';
import {
  type ColumnStatistics,
  readSegmentMetadata,
  type SegmentMetadata,
} from '../changelog/parquetDecoder.js';
import { ChangelogError } from '../support/errors.js';
import type { Changelog, RowsOptions } from './changelog.js';
import type { ChangeRow } from './changeRow.js';
import { decodeSegmentRows, segmentKeySchema } from './segmentRows.js';

/** Which row groups of a segment a key lookup decoded (for `--verbose` and tests). */
export interface RowGroupsRead {
  segmentKey: string;
  /** Row groups in the segment. */
  rowGroups: number;
  /** The ones decoded: those whose statistics could not rule the key out. */
  decoded: readonly number[];
}

export interface KeyLookupOptions {
  onSegment?: (read: RowGroupsRead) => void;
  /**
   * Called once with the table's key schema, read from the first segment's footer, before any
   * row is handed out (`changes` opens its writer with it instead of fetching a segment for it).
   */
  onKeySchema?: (schema: KeySchema) => void;
}

/**
 * The history of one item in a range: its rows, in range order (windows in order, segments in
 * manifest order, rows by sequence number), exactly the rows a full scan filtered by key returns.
 *
 * `keyValues` holds every key attribute of the table by attribute name: S as the string, N as the
 * number's text (compared as numbers, as DynamoDB does: "1.0" is "1"), B as base64. The key
 * schema comes from the segments' footers, so a range without segments returns nothing without
 * checking the names; otherwise an unknown or missing attribute, or a value its type does not
 * allow, is an error naming it and listing the table's key attributes.
 *
 * Segments are sorted by key, and the encoder writes min/max statistics of the typed key columns
 * per row group, so only the row groups whose partition-key range can hold the key are decoded:
 * - S and B partition keys compare as bytes (UTF-8 for S), the order of both the rows and the
 *   statistics.
 * - N partition keys are stored as decimal text, whose byte min/max is not numeric order. Only
 *   what is provable is used: a row group whose min and max are the same exact text holds that
 *   one number; the rows are in numeric order, so such groups also bound the groups between them.
 *   Other groups are decoded (a table with an N partition key and no hot item decodes them all).
 * Every decoded row is still compared with the key, so pruning only ever saves work.
 */
export async function* rowsForKey(
  changelog: Changelog,
  range: RowsOptions,
  keyValues: Readonly<Record<string, string>>,
  options: KeyLookupOptions = {},
): AsyncGenerator<ChangeRow, void, undefined> {
  let item: ItemKey | undefined;
  for await (const { segment, bytes } of changelog.loadedSegments(range)) {
    const metadata = readSegmentMetadata(bytes, segment.key);
    const schema = segmentKeySchema(metadata, segment.key);
    if (item === undefined) {
      options.onKeySchema?.(schema);
      item = itemKey(schema, keyValues);
    } else if (formatKeySchema(schema) !== item.schemaText) {
      throw new ChangelogError(
        `segment ${segment.key} has the key schema ${formatKeySchema(schema)}, but earlier segments have ${item.schemaText}`,
        { key: segment.key, retriable: false },
      );
    }
    const decoded = candidateRowGroups(metadata, item);
    options.onSegment?.({ segmentKey: segment.key, rowGroups: metadata.rowGroups.length, decoded });
    if (decoded.length === 0) continue;
    try {
      yield* decodeSegmentRows(
        bytes,
        { segmentKey: segment.key, windowStartMs: segment.windowStartMs },
        { rowGroups: decoded, signal: range.signal, keep: item.matches },
      );
    } catch (error) {
      if (!(error instanceof InvalidNumberError)) throw error;
      throw new ChangelogError(`segment ${segment.key} has an N key value that is ${error.message}`, {
        key: segment.key,
        retriable: false,
        cause: error,
      });
    }
  }
}

/** One key attribute of the item looked up. */
interface KeyPart {
  column: string;
  /** As the statistics hold it: UTF-8 (S), the bytes (B), the decimal sort key (N). */
  bytes: Uint8Array;
  /** Whether a row's key column text is this value. */
  same: (value: string) => boolean;
}

/** The item looked up, in the forms the statistics and the rows are compared with. */
interface ItemKey {
  schemaText: string;
  partition: KeyAttribute;
  /** The partition key as the statistics hold it: UTF-8 (S), the bytes (B), the sort key (N). */
  partitionBytes: Uint8Array;
  matches: (keyColumns: Readonly<Record<string, string>>) => boolean;
}

function itemKey(schema: KeySchema, keyValues: Readonly<Record<string, string>>): ItemKey {
  const attributes = keyAttributes(schema);
  const described = attributes.map((a) => `${a.name} (${a.type})`).join(', ');
  const wrong = (what: string): never => {
    throw new ChangelogError(`${what}; the table's key attributes are ${described}`, { retriable: false });
  };
  for (const name of Object.keys(keyValues)) {
    if (!attributes.some((a) => a.name === name)) wrong(`unknown key attribute ${JSON.stringify(name)}`);
  }
  const parts = attributes.map((attribute): KeyPart => {
    const text = keyValues[attribute.name];
    if (text === undefined) return wrong(`missing key attribute ${JSON.stringify(attribute.name)}`);
    const column = keyColumnName(attribute.name);
    if (attribute.type === 'S') {
      return { column, bytes: Buffer.from(text, 'utf8'), same: (v: string) => v === text };
    }
    if (attribute.type === 'B') {
      // The reader hands out B keys as canonical base64 of their bytes; compare in that form.
      const bytes = Buffer.from(text, 'base64');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || bytes.toString('base64') !== text) {
        return wrong(
          `key attribute ${attribute.name} is B, but ${JSON.stringify(text)} is not padded base64`,
        );
      }
      return { column, bytes, same: (v: string) => v === text };
    }
    let sortKey: Uint8Array;
    try {
      sortKey = decimalSortKeyOf(text);
    } catch (error) {
      if (!(error instanceof InvalidNumberError)) throw error;
      return wrong(
        `key attribute ${attribute.name} is N, but ${JSON.stringify(text)} is not a DynamoDB number`,
      );
    }
    const target = Buffer.from(sortKey);
    // Text equality first: the common case costs no number parsing.
    return { column, bytes: target, same: (v: string) => v === text || target.equals(decimalSortKeyOf(v)) };
  });
  const [first, second] = parts;
  const matches = second
    ? (k: Readonly<Record<string, string>>) =>
        first!.same(k[first!.column]!) && second.same(k[second.column]!)
    : (k: Readonly<Record<string, string>>) => first!.same(k[first!.column]!);
  return {
    schemaText: formatKeySchema(schema),
    partition: schema.partitionKey,
    partitionBytes: first!.bytes,
    matches,
  };
}

/** The row groups whose partition-key statistics do not rule the item out, in file order. */
function candidateRowGroups(metadata: SegmentMetadata, item: ItemKey): number[] {
  const column = keyColumnName(item.partition.name);
  const stats = metadata.rowGroups.map((g) => g.statistics.get(column));
  const target = item.partitionBytes;
  const all = stats.map((_, i) => i);
  if (item.partition.type !== 'N') {
    return all.filter((i) => {
      const s = stats[i];
      if (s?.min === undefined || s.max === undefined) return true;
      return Buffer.compare(s.min, target) <= 0 && Buffer.compare(target, s.max) <= 0;
    });
  }
  // N: the numbers of single-valued groups, in sort-key form; the rest know nothing alone.
  const single = stats.map(singleNumber);
  return all.filter((i) => {
    const own = single[i];
    if (own !== undefined) return Buffer.compare(own, target) === 0;
    // Rows are in numeric order: a group holds numbers between the single values around it.
    for (let j = i - 1; j >= 0; j--) {
      const below = single[j];
      if (below !== undefined) {
        if (Buffer.compare(target, below) < 0) return false;
        break;
      }
    }
    for (let j = i + 1; j < single.length; j++) {
      const above = single[j];
      if (above !== undefined) {
        if (Buffer.compare(target, above) > 0) return false;
        break;
      }
    }
    return true;
  });
}

/** The one number a column chunk holds when its exact min and max are the same text, as a sort key. */
function singleNumber(s: ColumnStatistics | undefined): Uint8Array | undefined {
  if (s?.min === undefined || s.max === undefined || s.minExact === false || s.maxExact === false)
    return undefined;
  if (!Buffer.from(s.min).equals(s.max)) return undefined;
  try {
    return decimalSortKey(s.min, 0, s.min.length);
  } catch {
    return undefined; // not a number: no claim about this group
  }
}
