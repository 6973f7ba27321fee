import { FIXED_COLUMNS } from '../changelog/keySchema.js';
import { ChangelogError, ConfigError } from '../support/errors.js';
import type { ChangeRow } from './changeRow.js';

/**
 * The columns `changes` writes: a change segment's columns, by their segment names and in segment
 * order (the fixed columns, with the table's typed key columns before `size_bytes`), so a row
 * printed as NDJSON, CSV or Parquet reads like a row of the segment.
 */
export function changeColumns(keyColumns: readonly string[]): string[] {
  const split = FIXED_COLUMNS.indexOf('size_bytes');
  return [...FIXED_COLUMNS.slice(0, split), ...keyColumns, ...FIXED_COLUMNS.slice(split)];
}

/**
 * Splits a `--columns a,b,c` value. Names are trimmed; an attribute name holding a comma cannot be
 * given this way (the full column list always has it).
 */
export function parseColumnList(text: string): string[] {
  return text.split(',').map((name) => name.trim());
}

/**
 * What is wrong with a requested column list, one message per problem (empty when it is fine), so
 * a CLI reports them with its other flag errors.
 */
export function columnProblems(requested: readonly string[], keyColumns: readonly string[]): string[] {
  const available = changeColumns(keyColumns);
  const allowed = `allowed: ${available.join(', ')}`;
  if (requested.length === 0) return [`no column given; ${allowed}`];
  const known = new Set(available);
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const name of requested) {
    if (!known.has(name)) problems.push(`unknown column ${JSON.stringify(name)}; ${allowed}`);
    else if (seen.has(name)) problems.push(`column ${JSON.stringify(name)} is listed twice`);
    seen.add(name);
  }
  return problems;
}

/** The columns to write: all of them, or the requested ones in their order. Throws a ConfigError. */
export function selectColumns(
  requested: readonly string[] | undefined,
  keyColumns: readonly string[],
): string[] {
  if (requested === undefined) return changeColumns(keyColumns);
  const problems = columnProblems(requested, keyColumns);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `columns: ${p}`));
  return [...requested];
}

/** A row's typed key column value (S, N text; B base64); throws naming the row when it has none. */
export function keyColumnValue(row: ChangeRow, column: string): string {
  const value = row.keyColumns[column];
  if (value === undefined) {
    throw new ChangelogError(
      `row ${row.eventId} of segment ${row.segmentKey} has no key column ${JSON.stringify(column)} (it has ${Object.keys(row.keyColumns).join(', ') || 'none'})`,
      { key: row.segmentKey, shardId: row.shardId, sequenceNumber: row.sequenceNumber },
    );
  }
  return value;
}
