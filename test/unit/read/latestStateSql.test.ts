import { describe, expect, it } from 'vitest';
import { latestPerKeyClause, sqlIdentifier, sqlString } from '../../../src/read/latestStateSql.js';

describe('SQL text', () => {
  it('quotes strings and identifiers', () => {
    expect(sqlString("/tmp/it's/x")).toBe("'/tmp/it''s/x'");
    expect(sqlIdentifier('order_id')).toBe('order_id');
    expect(sqlIdentifier('Order Id')).toBe('"Order Id"');
    expect(sqlIdentifier('a"b')).toBe('"a""b"');
  });

  it('keeps one row per key: the highest sequence number, compared as a 40-digit integer', () => {
    expect(latestPerKeyClause(['pk', 'Sort Key'])).toBe(
      `QUALIFY row_number() OVER (PARTITION BY pk, "Sort Key" ORDER BY lpad(sequence_number, 40, '0') DESC) = 1`,
    );
  });
});
