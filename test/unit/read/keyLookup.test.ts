import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatKeySchema,
  type KeyAttributeType,
  keyAttributes,
  keyColumnName,
  parseKeySchema,
} from '../../../src/changelog/keySchema.js';
import { openChangelog } from '../../../src/read/changelog.js';
import type { ChangeRow } from '../../../src/read/changeRow.js';
import { type RowGroupsRead, rowsForKey } from '../../../src/read/keyLookup.js';
import { ChangelogError } from '../../../src/support/errors.js';
import { TABLE } from '../../helpers/changelogFixtures.js';
import { compareKeyValues } from '../../helpers/dynamoOrder.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import {
  buildTestSegment,
  changeRecord,
  collect,
  putSealedWindow,
  SHARD_1,
  SHARD_2,
  W,
} from '../../helpers/sampleChangelog.js';
import type { WireAttributeValue, WireRecord } from '../../helpers/streamRecords.js';

type KeyValue = string;
/** One change: the item's key values (partition key first) and which segment it goes to. */
interface Change {
  key: KeyValue[];
  segment: number;
}

/**
 * Writes changes into a changelog of 2 windows x 2 segments (small row groups, so a segment has
 * several), in the given key schema. Sequence numbers follow the change order.
 */
async function changelogOf(keySchema: string, changes: Change[], rowGroupRows: number) {
  const schema = parseKeySchema(keySchema);
  const attributes = keyAttributes(schema);
  const store = new MemoryObjectStore();
  const bySegment: WireRecord[][] = [[], [], [], []];
  changes.forEach((change, i) => {
    const keys: Record<string, WireAttributeValue> = {};
    attributes.forEach((a, k) => {
      keys[a.name] = { [a.type]: change.key[k]! } as WireAttributeValue;
    });
    bySegment[change.segment]!.push(
      changeRecord({ keys, sequenceNumber: 100_000_000_000_000_000_000n + BigInt(i), timeMs: W(0) + i * 10 }),
    );
  });
  for (const window of [0, 1]) {
    const segments = [0, 1]
      .map((s) => bySegment[window * 2 + s]!)
      .filter((records) => records.length > 0)
      .map((records, s) =>
        buildTestSegment({
          windowStartMs: W(window),
          keySchema,
          rowGroupRows,
          parts: [{ shardId: s === 0 ? SHARD_1 : SHARD_2, records }],
        }),
      );
    await putSealedWindow(store, W(window), segments);
  }
  return { store, changelog: openChangelog({ store, table: TABLE }), attributes };
}

/** The oracle: a full scan, filtered by DynamoDB's key equality (numbers by value). */
function scanFilter(
  rows: ChangeRow[],
  attributes: { name: string; type: KeyAttributeType }[],
  key: Record<string, string>,
): ChangeRow[] {
  return rows.filter((r) =>
    attributes.every(
      (a) => compareKeyValues(a.type, r.keyColumns[keyColumnName(a.name)]!, key[a.name]!) === 0,
    ),
  );
}

const RANGE = { sinceMs: W(0) };

// Key values of each type, drawn from small pools so that items repeat and collide.
const stringValue = fc.oneof(
  fc.constantFrom('a', 'b', 'ab', 'é', 'z', '😀', '\u{E000}'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }),
);
const numberValue = fc
  .integer({ min: -20, max: 20 })
  .chain((n) => fc.constantFrom(String(n), `${n}.5`, n === 0 ? '0' : `${n}E0`, `${n}.0`));
const binaryValue = fc
  .uint8Array({ minLength: 1, maxLength: 3 })
  .map((b) => Buffer.from(b).toString('base64'));
const valuesOfType: Record<KeyAttributeType, fc.Arbitrary<string>> = {
  S: stringValue,
  N: numberValue,
  B: binaryValue,
};

/** Another spelling of the same number, as a user may type it ("1" for "1.0"). */
function respell(type: KeyAttributeType, value: string): string {
  if (type !== 'N') return value;
  if (value.endsWith('E0')) return value.slice(0, -2);
  if (value.endsWith('.0')) return value.slice(0, -2);
  return value.includes('.') ? `${value}00` : `${value}.000`;
}

describe('rowsForKey', () => {
  it.each(['pk:S', 'pk:N', 'pk:S,sk:N', 'pk:N,sk:S', 'pk:B,sk:S'])(
    'returns exactly what a full scan filtered by the key returns (%s)',
    async (keySchema) => {
      const schema = parseKeySchema(keySchema);
      const types = keyAttributes(schema).map((a) => a.type);
      const item = fc.tuple(...types.map((t) => valuesOfType[t])) as fc.Arbitrary<string[]>;
      await fc.assert(
        fc.asyncProperty(
          fc.array(item, { minLength: 1, maxLength: 12 }),
          fc.array(fc.record({ item: fc.nat(), segment: fc.integer({ min: 0, max: 3 }) }), {
            minLength: 1,
            maxLength: 60,
          }),
          fc.integer({ min: 2, max: 6 }),
          fc.oneof(
            fc.nat().map((i) => ({ existing: i })),
            item.map((key) => ({ random: key })),
          ),
          fc.boolean(),
          async (items, picks, rowGroupRows, target, respelled) => {
            const changes = picks.map((p) => ({ key: items[p.item % items.length]!, segment: p.segment }));
            const { changelog, attributes } = await changelogOf(keySchema, changes, rowGroupRows);
            const values = 'existing' in target ? items[target.existing % items.length]! : target.random;
            const key = Object.fromEntries(
              attributes.map((a, k) => [a.name, respelled ? respell(a.type, values[k]!) : values[k]!]),
            );
            const all = await collect(changelog.rows(RANGE));
            const found = await collect(rowsForKey(changelog, RANGE, key));
            expect(found).toEqual(scanFilter(all, attributes, key));
          },
        ),
        { numRuns: 20 },
      );
    },
  );

  it('tells the key schema once, from the first segment, before any row', async () => {
    const changes = [0, 1, 2, 3].map((segment) => ({ key: ['a', '1'], segment }));
    const { changelog } = await changelogOf('pk:S,sk:N', changes, 8);
    const seen: string[] = [];
    const lookup = rowsForKey(
      changelog,
      RANGE,
      { pk: 'a', sk: '1' },
      {
        onKeySchema: (schema) => seen.push(formatKeySchema(schema)),
      },
    );
    for await (const row of lookup) seen.push(row.eventId);
    expect(seen).toHaveLength(5);
    expect(seen[0]).toBe('pk:S,sk:N');
  });

  it('decodes only the row groups whose partition-key range can hold an S key', async () => {
    const items = Array.from({ length: 40 }, (_, i) => [`item-${String(i).padStart(2, '0')}`, String(i % 3)]);
    const changes = Array.from({ length: 200 }, (_, i) => ({ key: items[(i * 7) % 40]!, segment: i % 2 }));
    const { changelog, attributes } = await changelogOf('pk:S,sk:N', changes, 8);
    const reads: RowGroupsRead[] = [];
    const key = { pk: 'item-17', sk: '2' };
    const found = await collect(rowsForKey(changelog, RANGE, key, { onSegment: (r) => reads.push(r) }));
    expect(found).toEqual(scanFilter(await collect(changelog.rows(RANGE)), attributes, key));
    expect(found.length).toBe(5);
    expect(reads).toHaveLength(2);
    // Each segment has 13 row groups of 8 rows; an item's 5 rows are in one or two of them.
    expect(reads.map((r) => r.rowGroups)).toEqual([13, 13]);
    for (const read of reads) expect(read.decoded.length).toBeLessThanOrEqual(2);
    expect(reads.flatMap((r) => r.decoded).length).toBeGreaterThanOrEqual(1);
    // A key no segment can hold decodes nothing.
    reads.length = 0;
    expect(
      await collect(
        rowsForKey(changelog, RANGE, { pk: 'zzz', sk: '1' }, { onSegment: (r) => reads.push(r) }),
      ),
    ).toEqual([]);
    expect(reads.map((r) => r.decoded)).toEqual([[], []]);
  });

  it('prunes N partition keys only on what the statistics prove: single-valued row groups', async () => {
    // Item 7 is hot: whole row groups hold only pk 7. Texts sort unlike numbers (10 < 7 < 9 as text).
    const hot = Array.from({ length: 40 }, () => ['7']);
    const cold = ['1', '3', '9', '10', '12', '70'].flatMap((pk) => Array.from({ length: 3 }, () => [pk]));
    const changes = [...hot, ...cold].map((key) => ({ key, segment: 0 }));
    const { changelog, attributes } = await changelogOf('pk:N', changes, 8);
    const all = await collect(changelog.rows(RANGE));
    const lookup = async (pk: string) => {
      const reads: RowGroupsRead[] = [];
      const rows = await collect(rowsForKey(changelog, RANGE, { pk }, { onSegment: (r) => reads.push(r) }));
      expect(rows).toEqual(scanFilter(all, attributes, { pk }));
      return { rows, decoded: reads[0]!.decoded, rowGroups: reads[0]!.rowGroups };
    };
    // 58 rows in groups of 8: 1,1,1,3,3,3 | 7 ... 7 | 9,9,9,10,10,10,12,12,12,70,70,70.
    const seven = await lookup('7.0');
    expect(seven.rows).toHaveLength(40);
    expect(seven.rowGroups).toBe(8);
    const three = await lookup('3');
    expect(three.rows).toHaveLength(3);
    // Groups 1-4 hold only 7, and the groups after them are at least 7: only group 0 can hold 3.
    expect(three.decoded).toEqual([0]);
    const twelve = await lookup('1.2E1');
    expect(twelve.rows).toHaveLength(3);
    // Group 7 holds only 70: ruled out too.
    expect(twelve.decoded).toEqual([5, 6]);
  });

  it('compares N keys as numbers, as DynamoDB does', async () => {
    const changes = [
      ['1', 'a'],
      ['1.0', 'a'],
      ['10', 'a'],
      ['1', 'b'],
    ].map((key, i) => ({ key, segment: i % 4 }));
    const { changelog, attributes } = await changelogOf('pk:N,sk:S', changes, 2);
    const found = await collect(rowsForKey(changelog, RANGE, { pk: '1.00', sk: 'a' }));
    expect(found.map((r) => r.keyColumns['pk']).sort()).toEqual(['1', '1.0']);
    expect(found).toEqual(scanFilter(await collect(changelog.rows(RANGE)), attributes, { pk: '1', sk: 'a' }));
  });

  it('names a missing or unknown key attribute and lists the key attributes', async () => {
    const { changelog } = await changelogOf('pk:S,sk:N', [{ key: ['a', '1'], segment: 0 }], 4);
    const fails = async (key: Record<string, string>) => {
      const error = await collect(rowsForKey(changelog, RANGE, key)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ChangelogError);
      return (error as Error).message;
    };
    expect(await fails({ pk: 'a' })).toBe(
      `missing key attribute "sk"; the table's key attributes are pk (S), sk (N)`,
    );
    expect(await fails({ pk: 'a', sk: '1', id: 'x' })).toBe(
      `unknown key attribute "id"; the table's key attributes are pk (S), sk (N)`,
    );
    expect(await fails({ pk: 'a', sk: 'one' })).toBe(
      `key attribute sk is N, but "one" is not a DynamoDB number; the table's key attributes are pk (S), sk (N)`,
    );
    const binary = await changelogOf('id:B', [{ key: ['AAE='], segment: 0 }], 4);
    const error = await collect(rowsForKey(binary.changelog, RANGE, { id: 'AAE' })).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      `key attribute id is B, but "AAE" is not padded base64; the table's key attributes are id (B)`,
    );
    expect(await collect(rowsForKey(binary.changelog, RANGE, { id: 'AAE=' }))).toHaveLength(1);
  });

  it('returns nothing for a range without segments', async () => {
    const { changelog } = await changelogOf('pk:S', [{ key: ['a'], segment: 0 }], 4);
    expect(await collect(rowsForKey(changelog, { sinceMs: W(5) }, { anything: 'x' }))).toEqual([]);
  });
});
