/**
 * SQL for reading change segments with an engine (DuckDB, and the warehouse hand-off: Redshift):
 * quoting, and THE rule for an item's latest state.
 */

/** A SQL string literal. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Words DuckDB or Redshift reserve (DuckDB's duckdb_keywords() reserved, column_name and
 * type_function categories; Redshift's "Reserved words" page), lower case. A column named after
 * one (a key attribute `order`, `user`, `timestamp`) must be quoted in either engine.
 */
const RESERVED = new Set(
  (
    'aes128 aes256 all allowoverwrite analyse analyze and anti any array as asc asof asymmetric at ' +
    'authorization az64 backup between bigint binary bit blanksasnull boolean both by bytedict bzip2 case ' +
    'cast char character check coalesce collate collation column columns concurrently constraint create ' +
    'credentials cross current_date current_time current_timestamp current_user current_user_id dec ' +
    'decimal default deferrable deflate defrag delta delta32k desc describe disable distinct do else ' +
    'emptyasnull enable encode encrypt encryption end except exists explicit extract false fetch float ' +
    'for foreign freeze from full generated glob globaldict256 globaldict64k grant group grouping ' +
    'grouping_id gzip having identity ignore ilike in initially inner inout int integer intersect ' +
    'interval into is isnull join lambda lateral leading left like limit localtime localtimestamp lun ' +
    'luns lzo lzop map minus mostly16 mostly32 mostly8 national natural nchar new none not notnull null ' +
    'nullif nulls numeric off offline offset oid old on only open or order out outer overlaps overlay ' +
    'parallel partition percent permissions pivot pivot_longer pivot_wider placing position positional ' +
    'precision primary qualify raw readratio real recover references rejectlog resort respect restore ' +
    'returning right row select semi session_user setof show similar smallint snapshot some struct ' +
    'substring summarize symmetric sysdate system table tablesample tag tdes text255 text32k then time ' +
    'timestamp to top trailing treat trim true truncatecolumns try_cast union unique unnest unpack ' +
    'unpivot user using values varchar variadic verbose wallet when where window with without'
  ).split(' '),
);

/** A SQL identifier, quoted unless it is a plain lower-case name that no engine reserves. */
export function sqlIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) && !RESERVED.has(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/**
 * An item's rank among its changes, 1 for the latest: the highest sequence number per key.
 * Sequence numbers compare as integers, so they are zero-padded to DynamoDB's 40 digits first.
 * (Within one shard lineage sequence numbers grow; the read side's `changes --latest` orders
 * across a lineage explicitly.) Standard SQL: DuckDB and Redshift both run it.
 */
export function latestRankExpression(keyColumns: readonly string[]): string {
  const partition = keyColumns.map(sqlIdentifier).join(', ');
  return `row_number() OVER (PARTITION BY ${partition} ORDER BY lpad(sequence_number, 40, '0') DESC)`;
}

/** The clause that keeps one row per item, its latest change (DuckDB's QUALIFY). */
export function latestPerKeyClause(keyColumns: readonly string[]): string {
  return `QUALIFY ${latestRankExpression(keyColumns)} = 1`;
}
