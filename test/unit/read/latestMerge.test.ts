import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type KeySchema, parseKeySchema } from '../../../src/changelog/keySchema.js';
import { compareSequenceNumbers } from '../../../src/changelog/sequenceNumber.js';
import type { ChangeOp, ChangeRow } from '../../../src/read/changeRow.js';
import { latestPerKey, type SegmentRowSource } from '../../../src/read/latestMerge.js';
import { ChangelogIntegrityError, type IntegrityProblem } from '../../../src/support/errors.js';
import {
  type ChangeRowFields,
  changeRow,
  collectRows,
  compareRowKeys,
  rowSource,
  SOURCE_FORMS,
  sortedLikeSegment,
  trackedSource,
} from '../../helpers/changeRows.js';

const PK_S = parseKeySchema('pk:S');
const PK_S_SK_N = parseKeySchema('pk:S,sk:N');
const SEG = (n: number) =>
  `orders/data/dt=2026-11-22/window=20261122T10${String(n).padStart(2, '0')}00Z/s1-${n}.parquet`;

/** A source of rows in segment `segment`, sorted like the encoder sorts them. */
function segment(
  schema: KeySchema,
  segmentNumber: number,
  rows: [string[], ChangeRowFields][],
): SegmentRowSource {
  return rowSource(
    sortedLikeSegment(
      schema,
      rows.map(([key, fields]) => changeRow(schema, key, { segmentKey: SEG(segmentNumber), ...fields })),
    ),
  );
}

async function latest(schema: KeySchema, sources: SegmentRowSource[], includeDeletes = false) {
  return collectRows(latestPerKey(sources, { keySchema: schema, includeDeletes }));
}

const summary = (rows: ChangeRow[]) =>
  rows.map((r) => `${Object.values(r.keyColumns).join('/')}:${r.op}@${r.sequenceNumber}`);

async function failure(run: Promise<unknown>): Promise<ChangelogIntegrityError> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ChangelogIntegrityError);
  return error as ChangelogIntegrityError;
}

describe('latestPerKey', () => {
  it('keeps the highest sequence number per key across sources, in key order; a REMOVE drops the key', async () => {
    const sources = [
      segment(PK_S, 1, [
        [['a'], { op: 'INSERT', sequenceNumber: '100000000000000000010' }],
        [['b'], { op: 'INSERT', sequenceNumber: '100000000000000000011' }],
        [['c'], { op: 'INSERT', sequenceNumber: '100000000000000000012' }],
      ]),
      segment(PK_S, 2, [
        [['a'], { op: 'MODIFY', sequenceNumber: '100000000000000000020' }],
        [['b'], { op: 'REMOVE', sequenceNumber: '100000000000000000021' }],
        [['d'], { op: 'INSERT', sequenceNumber: '100000000000000000022' }],
      ]),
      segment(PK_S, 3, [
        [['a'], { op: 'MODIFY', sequenceNumber: '100000000000000000030' }],
        [['c'], { op: 'REMOVE', sequenceNumber: '100000000000000000031' }],
        [['c'], { op: 'INSERT', sequenceNumber: '100000000000000000032' }],
      ]),
    ];
    expect(summary(await latest(PK_S, sources))).toEqual([
      'a:MODIFY@100000000000000000030',
      'c:INSERT@100000000000000000032',
      'd:INSERT@100000000000000000022',
    ]);
  });

  it('with includeDeletes emits the REMOVE row as the tombstone, TTL deletes too', async () => {
    const sources = () => [
      segment(PK_S, 1, [
        [['a'], { op: 'INSERT', sequenceNumber: '10' }],
        [['b'], { op: 'INSERT', sequenceNumber: '11' }],
        [['c'], { op: 'INSERT', sequenceNumber: '12' }],
      ]),
      segment(PK_S, 2, [
        [['a'], { op: 'REMOVE', sequenceNumber: '20', eventId: 'remove-a' }],
        [['b'], { op: 'REMOVE', sequenceNumber: '21', eventId: 'ttl-b', ttlDelete: true }],
      ]),
    ];
    expect(summary(await latest(PK_S, sources()))).toEqual(['c:INSERT@12']);
    const withDeletes = await latest(PK_S, sources(), true);
    expect(summary(withDeletes)).toEqual(['a:REMOVE@20', 'b:REMOVE@21', 'c:INSERT@12']);
    expect(withDeletes.map((r) => [r.eventId, r.ttlDelete, r.newImage, r.segmentKey])).toEqual([
      ['remove-a', false, null, SEG(2)],
      ['ttl-b', true, null, SEG(2)],
      ['event-12', false, expect.any(String), SEG(1)],
    ]);
  });

  it('picks by sequence number, not by window or source order: a late row in a later window can be older', async () => {
    // Source 0 is the later window; its late row for "a" is older than the one in the earlier window.
    const sources = [
      segment(PK_S, 2, [[['a'], { op: 'MODIFY', sequenceNumber: '500', eventId: 'late', windowStartMs: 2 }]]),
      segment(PK_S, 1, [
        [['a'], { op: 'MODIFY', sequenceNumber: '600', eventId: 'newest', windowStartMs: 1 }],
      ]),
    ];
    const rows = await latest(PK_S, sources);
    expect(rows.map((r) => r.eventId)).toEqual(['newest']);
  });

  it('compares sequence numbers as integers: 22 digits beat 21, leading zeros do not count', async () => {
    const sources = [
      segment(PK_S, 1, [
        [['a'], { sequenceNumber: '1000000000000000000000', eventId: 'long' }],
        [['b'], { sequenceNumber: '0000000000000000000009', eventId: 'padded' }],
      ]),
      segment(PK_S, 2, [
        [['a'], { sequenceNumber: '999999999999999999999', eventId: 'short' }],
        [['b'], { sequenceNumber: '10', eventId: 'ten' }],
      ]),
    ];
    expect((await latest(PK_S, sources)).map((r) => r.eventId)).toEqual(['long', 'ten']);
  });

  it('weighs SNAPSHOT and NET rows against stream rows by event time, ties (same second) to the stream', async () => {
    const t = (s: number, ms = 0) => Date.UTC(2026, 10, 22, 10, 0, s, ms);
    const snap = (op: ChangeOp, time: number, id: string) => ({
      op,
      sequenceNumber: '0',
      shardId: '',
      eventTimeMs: time,
      eventId: `r1:${id}`,
    });
    const sources = [
      segment(PK_S, 1, [
        // a: a stream row in the snapshot's second, before it in truth: the stream wins (tie).
        [['a'], snap('SNAPSHOT', t(10, 500), 'a')],
        // b: a stream row a second before the snapshot: the snapshot wins.
        [['b'], snap('SNAPSHOT', t(10, 500), 'b')],
        // c: a stream row after the snapshot wins; d: the older stream REMOVE loses to the snapshot.
        [['c'], snap('SNAPSHOT', t(10), 'c')],
        [['d'], snap('SNAPSHOT', t(10), 'd')],
        // e: a NET tombstone (no new image) later than the stream row: the item is deleted.
        [['e'], { ...snap('NET', t(20), 'e'), newImage: null }],
        // f: two snapshots, the later one wins.
        [['f'], snap('SNAPSHOT', t(10), 'f1')],
      ]),
      segment(PK_S, 2, [
        [['a'], { op: 'MODIFY', sequenceNumber: '100', eventTimeMs: t(10) }],
        [['b'], { op: 'MODIFY', sequenceNumber: '101', eventTimeMs: t(9) }],
        [['c'], { op: 'MODIFY', sequenceNumber: '102', eventTimeMs: t(9) }],
        [['c'], { op: 'MODIFY', sequenceNumber: '202', eventTimeMs: t(11) }],
        [['d'], { op: 'REMOVE', sequenceNumber: '103', eventTimeMs: t(5) }],
        [['e'], { op: 'INSERT', sequenceNumber: '104', eventTimeMs: t(15) }],
        [['f'], snap('SNAPSHOT', t(30), 'f2')],
      ]),
    ];
    expect(summary(await latest(PK_S, sources))).toEqual([
      'a:MODIFY@100',
      'b:SNAPSHOT@0',
      'c:MODIFY@202',
      'd:SNAPSHOT@0',
      'f:SNAPSHOT@0',
    ]);
    const withDeletes = await latest(PK_S, sources, true);
    expect(withDeletes.map((r) => r.eventId)).toEqual([
      'event-100',
      'r1:b',
      'event-202',
      'r1:d',
      'r1:e',
      'r1:f2',
    ]);
  });

  it('gives the final state of every item when a snapshot is taken while it is written (1-second stream times; property)', async () => {
    // Truth: each item's writes at ms times; the stream records them with times truncated to the
    // second, from S0 on; the snapshot starts at T >= S0 (S0 no later than T's second, as
    // bootstrap requires) and reads each item at some moment in [T, T + 2 s].
    const scenario = fc.record({
      items: fc.array(
        fc.record({
          existedBefore: fc.boolean(),
          writes: fc.array(fc.record({ at: fc.integer({ min: 0, max: 6_000 }), remove: fc.boolean() }), {
            maxLength: 6,
          }),
          readDelay: fc.integer({ min: 0, max: 2_000 }),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      snapshotAt: fc.integer({ min: 1_000, max: 4_000 }),
      streamFromBefore: fc.integer({ min: 0, max: 1_000 }),
    });
    const base = Date.UTC(2026, 10, 22, 10, 0, 0);
    await fc.assert(
      fc.asyncProperty(scenario, async ({ items, snapshotAt, streamFromBefore }) => {
        const T = base + snapshotAt;
        const streamFrom = Math.floor(T / 1000) * 1000 - streamFromBefore;
        let sequence = 1000n;
        const stream: [string[], ChangeRowFields][] = [];
        const snapshot: [string[], ChangeRowFields][] = [];
        const finalState = new Map<string, string | null>();
        items.forEach((item, i) => {
          const pk = `item-${String(i).padStart(2, '0')}`;
          const writes = [...item.writes]
            .sort((a, b) => a.at - b.at)
            .map((w, n) => ({ ...w, version: n + 1 }));
          const stateAt = (time: number) => {
            let state: string | null = item.existedBefore ? 'v0' : null;
            for (const w of writes) if (base + w.at <= time) state = w.remove ? null : `v${w.version}`;
            return state;
          };
          for (const w of writes) {
            const at = base + w.at;
            if (at < streamFrom) continue;
            sequence += 1n;
            stream.push([
              [pk],
              {
                op: w.remove ? 'REMOVE' : 'MODIFY',
                sequenceNumber: sequence.toString(),
                eventTimeMs: Math.floor(at / 1000) * 1000,
                newImage: w.remove ? null : `v${w.version}`,
              },
            ]);
          }
          const seen = stateAt(T + item.readDelay);
          if (seen !== null) {
            snapshot.push([
              [pk],
              {
                op: 'SNAPSHOT',
                sequenceNumber: '0',
                shardId: '',
                eventTimeMs: T,
                eventId: `r:${pk}`,
                newImage: seen,
              },
            ]);
          }
          finalState.set(pk, stateAt(Number.POSITIVE_INFINITY));
        });
        const rows = await latest(PK_S, [segment(PK_S, 1, stream), segment(PK_S, 2, snapshot)]);
        const got = new Map(rows.map((r) => [r.keyColumns['pk']!, r.newImage]));
        const want = new Map([...finalState].filter(([, state]) => state !== null));
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });

  it('with a sort key, each (partition, sort) pair is one item, sort keys in numeric order', async () => {
    const sources = [
      segment(PK_S_SK_N, 1, [
        [['p', '10'], { sequenceNumber: '1' }],
        [['p', '9'], { sequenceNumber: '2' }],
        [['p', '-1.5'], { sequenceNumber: '3' }],
        [['q', '1'], { sequenceNumber: '4' }],
      ]),
      segment(PK_S_SK_N, 2, [
        [['p', '1e2'], { sequenceNumber: '5' }],
        [['p', '10'], { op: 'REMOVE', sequenceNumber: '6' }],
        [['p', '9'], { sequenceNumber: '7' }],
        [['o', '99'], { sequenceNumber: '8' }],
      ]),
    ];
    expect(summary(await latest(PK_S_SK_N, sources))).toEqual([
      'o/99:MODIFY@8',
      'p/-1.5:MODIFY@3',
      'p/9:MODIFY@7',
      'p/1e2:MODIFY@5',
      'q/1:MODIFY@4',
    ]);
    expect(summary(await latest(PK_S_SK_N, [...sourcesAgain()], true))).toContain('p/10:REMOVE@6');
    function sourcesAgain() {
      return [
        segment(PK_S_SK_N, 1, [[['p', '10'], { sequenceNumber: '1' }]]),
        segment(PK_S_SK_N, 2, [[['p', '10'], { op: 'REMOVE', sequenceNumber: '6' }]]),
      ];
    }
  });

  it('takes numbers equal in value as one item ("100" and "1e2")', async () => {
    const schema = parseKeySchema('pk:N');
    const sources = [
      segment(schema, 1, [[['100'], { sequenceNumber: '1', eventId: 'as-100' }]]),
      segment(schema, 2, [[['1e2'], { sequenceNumber: '2', eventId: 'as-1e2' }]]),
    ];
    expect((await latest(schema, sources)).map((r) => r.eventId)).toEqual(['as-1e2']);
  });

  it('orders B keys by their bytes, not their base64 text', async () => {
    const schema = parseKeySchema('pk:B');
    const sources = [
      segment(schema, 1, [
        [['/w=='], { sequenceNumber: '1' }],
        [['AA=='], { sequenceNumber: '2' }],
      ]),
      segment(schema, 2, [
        [['gA=='], { sequenceNumber: '3' }],
        [['AAA='], { sequenceNumber: '4' }],
        [['/w=='], { sequenceNumber: '5' }],
      ]),
    ];
    expect(summary(await latest(schema, sources))).toEqual([
      'AA==:MODIFY@2',
      'AAA=:MODIFY@4',
      'gA==:MODIFY@3',
      '/w==:MODIFY@5',
    ]);
  });

  it('handles no sources, empty sources and a single source', async () => {
    expect(await latest(PK_S, [])).toEqual([]);
    expect(await latest(PK_S, [rowSource([]), rowSource([])])).toEqual([]);
    const one = segment(PK_S, 1, [
      [['a'], { sequenceNumber: '1' }],
      [['a'], { sequenceNumber: '2' }],
    ]);
    expect(summary(await latest(PK_S, [rowSource([]), one]))).toEqual(['a:MODIFY@2']);
  });

  it('equals a naive Map-based latest per key for random histories split across sorted sources (property)', async () => {
    const schemas = {
      S: parseKeySchema('pk:S'),
      SN: parseKeySchema('pk:S,sk:N'),
      B: parseKeySchema('pk:B'),
      NB: parseKeySchema('pk:N,sk:B'),
    };
    const valuesOf = {
      S: fc.string({ unit: fc.constantFrom('a', 'b', '\u00e9', '\uffff', '\u{1f600}'), maxLength: 3 }),
      N: fc
        .tuple(fc.constantFrom('', '-'), fc.integer({ min: 0, max: 999 }), fc.integer({ min: -3, max: 3 }))
        .map(([sign, digits, exp]) => `${sign}${digits}E${exp}`),
      B: fc.uint8Array({ minLength: 1, maxLength: 3 }).map((b) => Buffer.from(b).toString('base64')),
    };
    const ops: ChangeOp[] = ['INSERT', 'MODIFY', 'REMOVE'];
    const history = fc.constantFrom(...(Object.keys(schemas) as (keyof typeof schemas)[])).chain((name) => {
      const schema = schemas[name];
      const key: fc.Arbitrary<string[]> = schema.sortKey
        ? fc.tuple(valuesOf[schema.partitionKey.type], valuesOf[schema.sortKey.type])
        : fc.tuple(valuesOf[schema.partitionKey.type]);
      return fc.record({
        schema: fc.constant(schema),
        // A small pool of items, so most have several changes.
        pool: fc.array(key, { minLength: 1, maxLength: 8 }),
        changes: fc.array(
          fc.record({
            item: fc.nat(),
            op: fc.constantFrom(...ops),
            ttl: fc.boolean(),
            source: fc.nat(),
            // 21 or 22 digits: the integer order differs from the text order.
            sequence: fc.bigInt({ min: 10n ** 20n, max: 10n ** 22n - 1n }),
          }),
          { maxLength: 60 },
        ),
        sources: fc.integer({ min: 1, max: 6 }),
        forms: fc.array(fc.constantFrom(...SOURCE_FORMS), { minLength: 6, maxLength: 6 }),
        includeDeletes: fc.boolean(),
      });
    });

    await fc.assert(
      fc.asyncProperty(history, async ({ schema, pool, changes, sources, forms, includeDeletes }) => {
        const seen = new Set<bigint>();
        const rows: ChangeRow[] = [];
        const bySource: ChangeRow[][] = Array.from({ length: sources }, () => []);
        for (const change of changes) {
          if (seen.has(change.sequence)) continue; // each record has its own sequence number
          seen.add(change.sequence);
          const source = change.source % sources;
          const row = changeRow(schema, pool[change.item % pool.length]!, {
            op: change.op,
            ttlDelete: change.op === 'REMOVE' && change.ttl,
            sequenceNumber: change.sequence.toString(),
            eventId: `e${change.sequence}`,
            segmentKey: SEG(source),
          });
          rows.push(row);
          bySource[source]!.push(row);
        }

        // The naive answer: a Map from the item's identity to its highest-sequence row.
        const expected = new Map<string, ChangeRow>();
        for (const row of rows) {
          let identity: string | undefined;
          for (const [id, other] of expected) {
            if (compareRowKeys(schema, row, other) === 0) identity = id;
          }
          identity ??= row.keys;
          const held = expected.get(identity);
          if (!held || compareSequenceNumbers(row.sequenceNumber, held.sequenceNumber) > 0) {
            expected.set(identity, row);
          }
        }
        const want = [...expected.values()]
          .filter((r) => includeDeletes || r.op !== 'REMOVE')
          .sort((a, b) => compareRowKeys(schema, a, b));

        const got = await collectRows(
          latestPerKey(
            bySource.map((s, i) => rowSource(sortedLikeSegment(schema, s), forms[i])),
            { keySchema: schema, includeDeletes },
          ),
        );
        expect(got.map((r) => r.eventId)).toEqual(want.map((r) => r.eventId));
      }),
      { numRuns: 400 },
    );
  });

  describe('checks its input', () => {
    it('refuses a source whose keys are out of order, naming the segment', async () => {
      const rows = [
        changeRow(PK_S, ['b'], { sequenceNumber: '1', segmentKey: SEG(1) }),
        changeRow(PK_S, ['a'], { sequenceNumber: '2', segmentKey: SEG(1) }),
      ];
      const error = await failure(latest(PK_S, [rowSource(rows)]));
      expect(error.problem).toBe<IntegrityProblem>('unsorted-segment');
      expect(error.segmentKeys).toEqual([SEG(1)]);
      expect(error.message).toContain(
        `segment ${SEG(1)}: row event-2 (item {"pk":{"S":"a"}}, sequence number 2)`,
      );
      expect(error.message).toMatch(/must be sorted by key \(encoder order\), then sequence number/);
    });

    it('refuses numbers sorted as text ("10" before "9") and B keys sorted as base64 text', async () => {
      const numbers = parseKeySchema('pk:N');
      const asText = ['10', '9'].map((v, i) => changeRow(numbers, [v], { sequenceNumber: String(i + 1) }));
      expect((await failure(latest(numbers, [rowSource(asText)]))).problem).toBe('unsorted-segment');
      const bytes = parseKeySchema('pk:B');
      const asBase64 = ['/w==', 'AA=='].map((v, i) =>
        changeRow(bytes, [v], { sequenceNumber: String(i + 1) }),
      );
      expect((await failure(latest(bytes, [rowSource(asBase64)]))).problem).toBe('unsorted-segment');
    });

    it('refuses an item whose sequence numbers go down within a source', async () => {
      const rows = [
        changeRow(PK_S, ['a'], { sequenceNumber: '100', segmentKey: SEG(1) }),
        changeRow(PK_S, ['a'], { sequenceNumber: '99', segmentKey: SEG(1) }),
      ];
      expect((await failure(latest(PK_S, [rowSource(rows)]))).problem).toBe('unsorted-segment');
    });

    it('refuses one sequence number for one item in two segments, naming the key and both segments', async () => {
      const sources = [
        segment(PK_S, 1, [[['a'], { sequenceNumber: '7', eventId: 'first' }]]),
        segment(PK_S, 2, [[['a'], { sequenceNumber: '7', eventId: 'second' }]]),
      ];
      const error = await failure(latest(PK_S, sources));
      expect(error.problem).toBe<IntegrityProblem>('duplicate-sequence-number');
      expect(error.segmentKeys).toEqual([SEG(1), SEG(2)]);
      expect(error.itemKeys).toBe('{"pk":{"S":"a"}}');
      expect(error.message).toBe(
        `item {"pk":{"S":"a"}} has two rows with sequence number 7: first (MODIFY) in segment ${SEG(1)} and ` +
          `second (MODIFY) in segment ${SEG(2)}; a stream record must be in the changelog exactly once ` +
          '(run verify on the windows holding these segments)',
      );
    });

    it('refuses the same record (equal event id and op) in two segments as a duplicate too', async () => {
      const sources = [
        segment(PK_S, 1, [[['a'], { sequenceNumber: '7' }]]),
        segment(PK_S, 2, [[['a'], { sequenceNumber: '7' }]]),
      ];
      expect((await failure(latest(PK_S, sources))).problem).toBe('duplicate-sequence-number');
    });

    it('refuses equal sequence numbers written differently ("07" and "7")', async () => {
      const sources = [
        segment(PK_S, 1, [[['a'], { sequenceNumber: '07', eventId: 'x' }]]),
        segment(PK_S, 2, [[['a'], { sequenceNumber: '7', eventId: 'y' }]]),
      ];
      expect((await failure(latest(PK_S, sources))).problem).toBe('duplicate-sequence-number');
    });

    it('refuses a row read twice (same segment, event id and op) as a reader bug, in one source or two', async () => {
      const row = changeRow(PK_S, ['a'], { sequenceNumber: '7', segmentKey: SEG(1) });
      const twoSources = await failure(latest(PK_S, [rowSource([row]), rowSource([row])]));
      expect(twoSources.problem).toBe<IntegrityProblem>('row-read-twice');
      expect(twoSources.segmentKeys).toEqual([SEG(1)]);
      expect(twoSources.message).toMatch(/reached the latest-per-key merge twice: a reader bug/);
      const oneSource = await failure(latest(PK_S, [rowSource([row, { ...row }])]));
      expect(oneSource.problem).toBe('row-read-twice');
    });

    it('refuses one segment holding two records of an item at one sequence number', async () => {
      const rows = [
        changeRow(PK_S, ['a'], { sequenceNumber: '7', eventId: 'x', segmentKey: SEG(1) }),
        changeRow(PK_S, ['a'], { sequenceNumber: '7', eventId: 'y', segmentKey: SEG(1) }),
      ];
      const error = await failure(latest(PK_S, [rowSource(rows)]));
      expect(error.problem).toBe('duplicate-sequence-number');
      expect(error.segmentKeys).toEqual([SEG(1)]);
    });

    it('refuses a sequence number that is not digits and a missing key column', async () => {
      const bad = changeRow(PK_S, ['a'], { sequenceNumber: '12a', segmentKey: SEG(3) });
      const error = await failure(latest(PK_S, [rowSource([bad])]));
      expect(error.problem).toBe('invalid-row');
      expect(error.message).toBe(
        `segment ${SEG(3)}: row event-12a (item {"pk":{"S":"a"}}) has sequence number "12a"; expected decimal digits`,
      );
      const noKey = changeRow(PK_S, ['a'], { sequenceNumber: '1' });
      const missing = await failure(latest(PK_S_SK_N, [rowSource([noKey])]));
      expect(missing.problem).toBe('invalid-row');
      expect(missing.message).toMatch(/has no key column "sk"/);
    });
  });

  describe.each([{ sync: false }, { sync: true }])(
    'streams and closes its sources (sync: $sync)',
    ({ sync }) => {
      const endless = (pk: string) =>
        trackedSource(
          (i) => changeRow(PK_S, [`${pk}${String(i).padStart(9, '0')}`], { sequenceNumber: String(i + 1) }),
          { sync },
        );

      it('opens sources only when read, and streams: endless sources give their first rows', async () => {
        const sources = [endless('a'), endless('b')];
        const merge = latestPerKey(
          sources.map((s) => s.source),
          { keySchema: PK_S },
        );
        expect(sources.some((s) => s.opened)).toBe(false);
        const first: string[] = [];
        for await (const row of merge) {
          first.push(row.keyColumns['pk']!);
          if (first.length === 3) break;
        }
        expect(first).toEqual(['a000000000', 'a000000001', 'a000000002']);
        // One current row per source: nothing was read ahead beyond what the merge needed.
        expect(sources.map((s) => s.pulled)).toEqual([4, 1]);
        expect(sources.every((s) => s.returned)).toBe(true);
      });

      it('closes every open source when a source fails, and passes its error on', async () => {
        const rows = (pk: string) =>
          [0, 1, 2].map((i) => changeRow(PK_S, [`${pk}${i}`], { sequenceNumber: String(i + 1) }));
        const failing = trackedSource(rows('a'), { failAfter: 1, sync });
        const others = [trackedSource(rows('b'), { sync }), trackedSource(rows('c'), { sync })];
        const merge = latestPerKey(
          [failing, ...others].map((s) => s.source),
          { keySchema: PK_S },
        );
        await expect(collectRows(merge)).rejects.toThrow('source failed after 1 rows');
        expect([failing, ...others].map((s) => s.returned)).toEqual([true, true, true]);
      });

      it('closes every source when a source fails on its first row', async () => {
        const failing = trackedSource([], { failAfter: 0, sync });
        const other = endless('b');
        const merge = latestPerKey([other.source, failing.source], { keySchema: PK_S });
        await expect(collectRows(merge)).rejects.toThrow('source failed after 0 rows');
        expect([other.returned, failing.returned]).toEqual([true, true]);
      });

      it('closes every source on an integrity error', async () => {
        const bad = trackedSource(
          [changeRow(PK_S, ['b'], { sequenceNumber: '1' }), changeRow(PK_S, ['a'], { sequenceNumber: '2' })],
          { sync },
        );
        const other = endless('c');
        const merge = latestPerKey([bad.source, other.source], { keySchema: PK_S });
        await expect(collectRows(merge)).rejects.toBeInstanceOf(ChangelogIntegrityError);
        expect(other.returned).toBe(true);
        expect(bad.closed).toBe(true);
      });

      it('stops on abort with the signal reason and closes every source', async () => {
        const sources = [endless('a'), endless('b')];
        const controller = new AbortController();
        const merge = latestPerKey(
          sources.map((s) => s.source),
          { keySchema: PK_S, signal: controller.signal },
        );
        let count = 0;
        const run = (async () => {
          for await (const _ of merge) {
            if (++count === 5) controller.abort(new Error('stop now'));
          }
        })();
        await expect(run).rejects.toThrow('stop now');
        expect(count).toBe(5);
        expect(sources.every((s) => s.returned)).toBe(true);
      });

      it('reports a source that fails to close, unless the merge already failed', async () => {
        const rows = [0, 1].map((i) => changeRow(PK_S, [`a${i}`], { sequenceNumber: String(i + 1) }));
        // A sync iterator whose return() throws: the merge still closes the others, then reports it.
        const closeFails: SegmentRowSource = () => {
          let i = 0;
          return {
            next: (): IteratorResult<ChangeRow, undefined> =>
              i < rows.length ? { done: false, value: rows[i++]! } : { done: true, value: undefined },
            return: () => {
              throw new Error('close failed');
            },
          };
        };
        const other = endless('b');
        const early = (async () => {
          for await (const _ of latestPerKey([closeFails, other.source], { keySchema: PK_S })) break;
        })();
        await expect(early).rejects.toThrow('close failed');
        expect(other.returned).toBe(true);
        const failing = trackedSource([], { failAfter: 0, sync });
        const merge = latestPerKey([closeFails, failing.source], { keySchema: PK_S });
        await expect(collectRows(merge)).rejects.toThrow('source failed after 0 rows');
      });

      it('closes the opened sources when opening another fails', async () => {
        const other = endless('b');
        const cannotOpen: SegmentRowSource = () => Promise.reject(new Error('segment missing'));
        const merge = latestPerKey([other.source, cannotOpen], { keySchema: PK_S });
        await expect(collectRows(merge)).rejects.toThrow('segment missing');
        expect(other.returned).toBe(true);
      });

      it('does not open any source when already aborted', async () => {
        const source = endless('a');
        const merge = latestPerKey([source.source], {
          keySchema: PK_S,
          signal: AbortSignal.abort(new Error('gone')),
        });
        await expect(collectRows(merge)).rejects.toThrow('gone');
        expect(source.opened).toBe(false);
      });
    },
  );
});
