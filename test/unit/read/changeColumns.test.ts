import { describe, expect, it } from 'vitest';
import { FIXED_COLUMNS } from '../../../src/changelog/keySchema.js';
import {
  changeColumns,
  columnProblems,
  keyColumnValue,
  parseColumnList,
  selectColumns,
} from '../../../src/read/changeColumns.js';
import { ConfigError } from '../../../src/support/errors.js';
import { generatedRows } from '../../helpers/changeRowSamples.js';

describe('change columns', () => {
  it('are the segment columns in segment order, key columns before size_bytes', () => {
    expect(changeColumns(['pk', 'sk'])).toEqual([
      'event_id',
      'op',
      'event_time',
      'sequence_number',
      'shard_id',
      'keys',
      'new_image',
      'old_image',
      'pk',
      'sk',
      'size_bytes',
      'ttl_delete',
    ]);
    expect(changeColumns([])).toEqual([...FIXED_COLUMNS]);
  });

  it('parses a --columns value', () => {
    expect(parseColumnList('op, pk ,new_image')).toEqual(['op', 'pk', 'new_image']);
  });

  it('reports every problem of a column list, with the allowed names', () => {
    const allowed = `allowed: ${changeColumns(['key_op']).join(', ')}`;
    expect(columnProblems(['op', 'pk', 'op', ''], ['key_op'])).toEqual([
      `unknown column "pk"; ${allowed}`,
      'column "op" is listed twice',
      `unknown column ""; ${allowed}`,
    ]);
    expect(columnProblems([], ['pk'])).toEqual([
      `no column given; allowed: ${changeColumns(['pk']).join(', ')}`,
    ]);
    expect(columnProblems(['key_op', 'ttl_delete'], ['key_op'])).toEqual([]);
  });

  it('selects all columns by default, or the valid requested ones in their order', () => {
    expect(selectColumns(undefined, ['pk'])).toEqual(changeColumns(['pk']));
    expect(selectColumns(['pk', 'op'], ['pk'])).toEqual(['pk', 'op']);
    expect(() => selectColumns(['nope'], ['pk'])).toThrow(ConfigError);
  });

  it("reads a row's key column, naming the row when it has none", () => {
    const row = generatedRows(1)[0]!;
    expect(keyColumnValue(row, 'pk')).toBe(row.keyColumns['pk']);
    expect(() => keyColumnValue(row, 'sort')).toThrow(
      `row ${row.eventId} of segment ${row.segmentKey} has no key column "sort" (it has pk, sk)`,
    );
  });
});
