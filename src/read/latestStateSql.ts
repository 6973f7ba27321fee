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

/** SQL: the row is one of replay's (SNAPSHOT, NET), `alias` its table's name or alias. */
function snapshotOpSql(alias: string): string {
  return `${alias}op IN ('SNAPSHOT', 'NET')`;
}

function prefix(alias: string | undefined): string {
  return alias === undefined ? '' : `${alias}.`;
}

/**
 * SQL: the row says the item does not exist (read/changeRow.ts isTombstone): a REMOVE, or a NET
 * row without a new image.
 */
export function tombstoneSql(alias?: string): string {
  const a = prefix(alias);
  return `(${a}op = 'REMOVE' OR (${a}op = 'NET' AND ${a}new_image IS NULL))`;
}

/**
 * The latest row of each item of `source` (a table or view name), by THE ordering rule
 * (read/latestMerge.ts streamRowFollowsSnapshot): of the stream rows the highest sequence number
 * (compared as integers: zero-padded to DynamoDB's 40 digits), unless the item's latest SNAPSHOT or
 * NET row is later, i.e. the stream row's event time is before the snapshot's truncated to the
 * second. Per item, `snapshot_time` is its latest snapshot's time; rows rank stream rows at or
 * after it first, then snapshot rows (latest first), then older stream rows. `columns` are the
 * columns to keep (undefined: DuckDB's `* EXCLUDE` of the helper columns). Standard SQL otherwise:
 * DuckDB and Redshift both run it. Tombstones are kept (filter with tombstoneSql).
 */
export function latestRowsSql(
  source: string,
  keyColumns: readonly string[],
  columns?: readonly string[],
): string {
  const partition = keyColumns.map(sqlIdentifier).join(', ');
  const kept = columns === undefined ? '* EXCLUDE (snapshot_time, latest_rank)' : columns.join(', ');
  const rank = [
    `CASE WHEN ${snapshotOpSql('')} THEN 1`,
    "WHEN snapshot_time IS NULL OR event_time >= date_trunc('second', snapshot_time) THEN 2 ELSE 0 END DESC",
  ].join(' ');
  return [
    `SELECT ${kept} FROM (`,
    `  SELECT *, row_number() OVER (PARTITION BY ${partition} ORDER BY ${rank}, lpad(sequence_number, 40, '0') DESC, event_time DESC, event_id DESC) AS latest_rank`,
    `  FROM (SELECT *, max(CASE WHEN ${snapshotOpSql('')} THEN event_time END) OVER (PARTITION BY ${partition}) AS snapshot_time FROM ${source}) AS with_snapshot`,
    ') AS ranked WHERE latest_rank = 1',
  ].join('\n');
}

/**
 * SQL: row `a` of an item is later than row `b` of the same item, by THE ordering rule: stream
 * rows by sequence number, snapshot rows by event time (then event id), a stream row against a snapshot row by
 * streamRowFollowsSnapshot. (The Redshift load compares a staged row with the target's.)
 */
export function laterRowSql(a: string, b: string): string {
  const snapA = snapshotOpSql(`${a}.`);
  const snapB = snapshotOpSql(`${b}.`);
  return [
    `(CASE WHEN ${snapA} AND ${snapB} THEN ${a}.event_time > ${b}.event_time OR (${a}.event_time = ${b}.event_time AND ${a}.event_id > ${b}.event_id)`,
    `WHEN ${snapA} THEN ${b}.event_time < date_trunc('second', ${a}.event_time)`,
    `WHEN ${snapB} THEN ${a}.event_time >= date_trunc('second', ${b}.event_time)`,
    `ELSE lpad(${a}.sequence_number, 40, '0') > lpad(${b}.sequence_number, 40, '0') END)`,
  ].join(' ');
}
