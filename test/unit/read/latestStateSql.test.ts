import { DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FIXED_COLUMNS, parseKeySchema } from '../../../src/changelog/keySchema.js';
import { type ChangeOp, type ChangeRow, isTombstone } from '../../../src/read/changeRow.js';
import { latestPerKey } from '../../../src/read/latestMerge.js';
import {
  laterRowSql,
  latestRowsSql,
  sqlIdentifier,
  sqlString,
  tombstoneSql,
} from '../../../src/read/latestStateSql.js';
import { changeRow, collectRows, rowSource, sortedLikeSegment } from '../../helpers/changeRows.js';

const PK = parseKeySchema('pk:S');
const isSnapshotKind = (kind: string) => kind === 'SNAPSHOT' || kind.startsWith('NET');

describe('SQL text', () => {
  it('quotes strings and identifiers', () => {
    expect(sqlString("/tmp/it's/x")).toBe("'/tmp/it''s/x'");
    expect(sqlIdentifier('order_id')).toBe('order_id');
    expect(sqlIdentifier('Order Id')).toBe('"Order Id"');
    expect(sqlIdentifier('a"b')).toBe('"a""b"');
  });

  it('quotes names an engine reserves (DuckDB or Redshift), and leaves the segment columns plain', () => {
    for (const word of ['order', 'user', 'timestamp', 'select', 'qualify', 'tag', 'new', 'open']) {
      expect(sqlIdentifier(word)).toBe(`"${word}"`);
    }
    for (const column of FIXED_COLUMNS) expect(sqlIdentifier(column)).toBe(column);
  });

  it('every identifier it leaves plain is accepted by DuckDB as a column name', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll('SELECT keyword_name FROM duckdb_keywords()');
      const keywords = reader.getRowObjectsJS().map((r) => String(r['keyword_name']));
      const names = [...keywords, ...FIXED_COLUMNS, 'Order', 'a b', 'a"b'];
      const columns = names.map((n) => `1 AS ${sqlIdentifier(n)}`).join(', ');
      const row = (await connection.runAndReadAll(`SELECT ${columns}`)).columnNames();
      expect(row).toEqual(names);
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });

  it('the latest row per item in DuckDB equals the merge, with SNAPSHOT/NET rows, ties and tombstones (property)', async () => {
    const base = Date.UTC(2026, 10, 22, 10, 0, 0);
    const row = fc.record({
      item: fc.constantFrom('a', 'b', 'c', 'Sort Key'),
      kind: fc.constantFrom('INSERT', 'MODIFY', 'REMOVE', 'SNAPSHOT', 'NET', 'NET-delete'),
      // Times on a coarse grid around whole seconds, so ties in the second are common.
      at: fc.integer({ min: 0, max: 12 }).map((n) => base + n * 250),
      sequence: fc.bigInt({ min: 10n ** 20n, max: 10n ** 22n - 1n }),
    });
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(row, { maxLength: 25 }), async (specs) => {
          const rows: ChangeRow[] = [];
          const sequences = new Set<bigint>();
          // Along an item's lineage event times grow with sequence numbers (what the rule relies
          // on): stream rows get the generated times in sequence order.
          const stream = specs.filter(
            (spec) =>
              !isSnapshotKind(spec.kind) && !sequences.has(spec.sequence) && sequences.add(spec.sequence),
          );
          const times = stream.map((spec) => spec.at).sort((a, b) => a - b);
          const bySequence = [...stream].sort((a, b) => (a.sequence < b.sequence ? -1 : 1));
          const streamTime = new Map(bySequence.map((spec, n) => [spec, times[n]!]));
          specs.forEach((spec, i) => {
            const snapshot = isSnapshotKind(spec.kind);
            if (!snapshot && !streamTime.has(spec)) return;
            // Stream times have one-second precision; a snapshot's time is any millisecond.
            const op = (spec.kind === 'NET-delete' ? 'NET' : spec.kind) as ChangeOp;
            rows.push(
              changeRow(PK, [spec.item], {
                op,
                sequenceNumber: snapshot ? '0' : spec.sequence.toString(),
                eventTimeMs: snapshot ? spec.at : Math.floor(streamTime.get(spec)! / 1000) * 1000,
                eventId: `e${i}`,
                shardId: snapshot ? '' : 'shardId-1',
                newImage: op === 'REMOVE' || spec.kind === 'NET-delete' ? null : `image-${i}`,
              }),
            );
          });
          const merged = await collectRows(
            latestPerKey([rowSource(sortedLikeSegment(PK, rows))], { keySchema: PK, includeDeletes: true }),
          );
          await connection.run(
            'CREATE OR REPLACE TABLE changes (pk VARCHAR, op VARCHAR, event_time TIMESTAMP, sequence_number VARCHAR, event_id VARCHAR, new_image VARCHAR)',
          );
          const values = rows.map(
            (r) =>
              `(${sqlString(r.keyColumns['pk']!)}, '${r.op}', epoch_ms(${r.eventTimeMs}), '${r.sequenceNumber}', '${r.eventId}', ${r.newImage === null ? 'NULL' : sqlString(r.newImage)})`,
          );
          if (values.length > 0) await connection.run(`INSERT INTO changes VALUES ${values.join(', ')}`);
          const reader = await connection.runAndReadAll(
            `SELECT event_id, ${tombstoneSql()} AS tombstone FROM (${latestRowsSql('changes', ['pk'])}) ORDER BY pk`,
          );
          const sql = reader
            .getRowObjectsJS()
            .map((r) => `${r['event_id']}${r['tombstone'] ? ' (deleted)' : ''}`);
          // DuckDB orders VARCHAR by bytes, as the merge orders S keys: the same order.
          expect(sql).toEqual(merged.map((r) => `${r.eventId}${isTombstone(r) ? ' (deleted)' : ''}`));

          // laterRowSql agrees with the merge pairwise: the winner is later than every other row of its item.
          const pairs = await connection.runAndReadAll(
            `SELECT a.event_id AS a, b.event_id AS b, ${laterRowSql('a', 'b')} AS later FROM changes a JOIN changes b ON a.pk = b.pk AND a.event_id <> b.event_id`,
          );
          const winners = new Set(merged.map((r) => r.eventId));
          for (const pair of pairs.getRowObjectsJS()) {
            if (winners.has(String(pair['a'])))
              expect(pair['later'], `${pair['a']} vs ${pair['b']}`).toBe(true);
          }
        }),
        { numRuns: 60 },
      );
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });
});
