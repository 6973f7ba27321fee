/**
 * SQL for reading change segments with an engine (DuckDB today; the warehouse hand-off next):
 * quoting, and THE rule for an item's latest state.
 */

/** A SQL string literal. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A SQL identifier, quoted only when needed. */
export function sqlIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/**
 * The clause that keeps one row per item, its latest change: the highest sequence number per key.
 * Sequence numbers compare as integers, so they are zero-padded to DynamoDB's 40 digits first.
 * (Within one shard lineage sequence numbers grow; the read side's `changes --latest` will order
 * across a lineage explicitly.)
 */
export function latestPerKeyClause(keyColumns: readonly string[]): string {
  const partition = keyColumns.map(sqlIdentifier).join(', ');
  return `QUALIFY row_number() OVER (PARTITION BY ${partition} ORDER BY lpad(sequence_number, 40, '0') DESC) = 1`;
}
