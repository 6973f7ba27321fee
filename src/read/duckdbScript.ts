import { fileURLToPath } from 'node:url';
import { ChangelogError } from '../support/errors.js';
import { latestRowsSql, sqlString, tombstoneSql } from './latestStateSql.js';

export interface DuckDbScriptOptions {
  /** The segments: s3:// URLs, file:// URLs or local paths. */
  urls: readonly string[];
  /** The table's typed key columns (keyColumnName), partition key first. */
  keyColumns: readonly string[];
}

/**
 * A DuckDB script over exactly the given segments: view `changes` (every row, the segment columns)
 * and view `latest` (each item's latest change, items whose latest change is a tombstone left out).
 * Hive partitioning is off, so the dt=/window= folders add no columns. For s3:// URLs it loads
 * httpfs and shows how to give DuckDB the AWS credentials.
 */
export function duckdbScript(options: DuckDbScriptOptions): string {
  if (options.urls.length === 0) {
    throw new ChangelogError('DuckDB script: no segments to read; read_parquet needs at least one file');
  }
  if (options.keyColumns.length === 0) {
    throw new ChangelogError('DuckDB script: no key columns; the latest view needs the table key');
  }
  const files = options.urls.map((url) => (url.startsWith('file://') ? fileURLToPath(url) : url));
  const s3 = files.some((f) => f.startsWith('s3://'));
  return [
    '-- dynamodb-changelog: the changes of a range and the latest state of each item.',
    ...(s3
      ? [
          'INSTALL httpfs;',
          'LOAD httpfs;',
          '-- Credentials from the AWS SDK chain (environment, profile, instance role; aws extension):',
          '-- CREATE SECRET (TYPE s3, PROVIDER credential_chain);',
          "-- For an S3-compatible store add ENDPOINT 'host:port', URL_STYLE 'path' (and USE_SSL false).",
        ]
      : []),
    'CREATE OR REPLACE VIEW changes AS',
    'SELECT * FROM read_parquet([',
    files.map((f) => `  ${sqlString(f)}`).join(',\n'),
    '], hive_partitioning = false);',
    '',
    "-- Each item's latest change (the highest sequence number as an integer, weighed against",
    "-- replay's SNAPSHOT/NET rows by event time: see the README); deleted items left out.",
    'CREATE OR REPLACE VIEW latest AS',
    `SELECT * FROM (${latestRowsSql('changes', options.keyColumns)})`,
    `WHERE NOT ${tombstoneSql()};`,
    '',
  ].join('\n');
}
