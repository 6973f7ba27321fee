import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { FIXED_COLUMNS } from '../../../src/changelog/keySchema.js';
import {
  latestPerKeyClause,
  latestRankExpression,
  sqlIdentifier,
  sqlString,
} from '../../../src/read/latestStateSql.js';

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

  it('keeps one row per key: the highest sequence number, compared as a 40-digit integer', () => {
    expect(latestRankExpression(['pk', 'Sort Key'])).toBe(
      `row_number() OVER (PARTITION BY pk, "Sort Key" ORDER BY lpad(sequence_number, 40, '0') DESC)`,
    );
    expect(latestPerKeyClause(['pk', 'Sort Key'])).toBe(
      `QUALIFY row_number() OVER (PARTITION BY pk, "Sort Key" ORDER BY lpad(sequence_number, 40, '0') DESC) = 1`,
    );
  });
});
