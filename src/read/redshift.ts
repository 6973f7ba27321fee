import {
  type KeyAttributeType,
  type KeySchema,
  keyAttributes,
  keyColumnName,
} from '../changelog/keySchema.js';
import { ChangelogError, ConfigError } from '../support/errors.js';
import { changeColumns } from './changeColumns.js';
import { laterRowSql, latestRowsSql, sqlIdentifier, sqlString, tombstoneSql } from './latestStateSql.js';

/*
 * The Redshift hand-off: a COPY manifest listing exactly the segments of a range, and the SQL that
 * loads them into a table holding each item's latest state.
 */

export interface RedshiftManifestEntry {
  /** s3://bucket/key of a segment. */
  url: string;
  /** The object's size: Redshift needs it (meta.content_length) to COPY Parquet from a manifest. */
  bytes: number;
}

const S3_OBJECT_URL = /^s3:\/\/[^/]+\/.+$/;

/**
 * A Redshift COPY manifest (`{"entries":[{"url":...,"mandatory":true,"meta":{"content_length":N}}]}`),
 * one entry a line. `mandatory`: a listed segment that is missing fails the COPY instead of loading
 * less. Throws on a URL listed twice (COPY would load its rows twice), on no entries (COPY fails
 * when a manifest finds no file: skip the load instead), and on a URL or size Redshift cannot use.
 */
export function redshiftManifest(entries: readonly RedshiftManifestEntry[]): string {
  if (entries.length === 0) {
    throw new ChangelogError(
      'Redshift manifest: no segments to list; COPY fails on a manifest that finds no file, so skip the load',
    );
  }
  const seen = new Set<string>();
  const lines = entries.map(({ url, bytes }) => {
    if (!S3_OBJECT_URL.test(url)) {
      throw new ChangelogError(`Redshift manifest: ${JSON.stringify(url)} is not an s3://bucket/key URL`, {
        key: url,
      });
    }
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new ChangelogError(
        `Redshift manifest: ${url} has size ${bytes}; content_length must be the object's size in bytes, a positive integer`,
        { key: url },
      );
    }
    if (seen.has(url)) {
      throw new ChangelogError(`Redshift manifest: ${url} is listed twice; COPY would load its rows twice`, {
        key: url,
      });
    }
    seen.add(url);
    return `  {"url":${JSON.stringify(url)},"mandatory":true,"meta":{"content_length":${bytes}}}`;
  });
  return `{"entries":[\n${lines.join(',\n')}\n]}\n`;
}

export interface RedshiftLoadOptions {
  /** s3:// URL of the COPY manifest (redshiftManifest) listing the segments to load. */
  manifestUrl: string;
  /** The table holding each item's latest state (its columns: see the script's header). */
  targetTable: string;
  /** The target's schema; default: the session's search_path. */
  targetSchema?: string;
  /** Name of the session temp tables (with `_latest` and `_apply` suffixes); default dynamodb_changelog_staging. */
  stagingTable?: string;
  /** IAM role ARN(s) Redshift assumes to read the bucket (comma-separated for chaining), or `default`. */
  iamRole: string;
  /** The bucket's region, when it is not the cluster's. */
  region?: string;
  /** The DynamoDB table's key schema: the typed key columns and their types. */
  keySchema: KeySchema;
}

export const DEFAULT_STAGING_TABLE = 'dynamodb_changelog_staging';

/** Redshift's longest identifier, in bytes. */
const MAX_IDENTIFIER_BYTES = 127;
/** PostgreSQL system columns Redshift refuses as column names. */
const SYSTEM_COLUMNS = new Set(['oid', 'tableoid', 'xmin', 'cmin', 'xmax', 'cmax', 'ctid']);
const IAM_ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;

/**
 * Redshift types of the segment columns. Sizes are DynamoDB's limits: S partition/sort keys up to
 * 2,048 bytes, B keys up to 2,048 bytes, N text up to 38 digits with sign, point and exponent (or
 * written out in full). VARCHAR(65535) is Redshift's longest: an image larger than that makes the
 * COPY fail (nothing is truncated silently).
 */
const FIXED_TYPES: Record<string, string> = {
  event_id: 'VARCHAR(128) NOT NULL',
  op: 'VARCHAR(16) NOT NULL',
  event_time: 'TIMESTAMP NOT NULL',
  sequence_number: 'VARCHAR(40) NOT NULL',
  shard_id: 'VARCHAR(128) NOT NULL',
  keys: 'VARCHAR(65535) NOT NULL',
  new_image: 'VARCHAR(65535)',
  old_image: 'VARCHAR(65535)',
  size_bytes: 'INTEGER NOT NULL',
  ttl_delete: 'BOOLEAN NOT NULL',
};

const KEY_TYPES: Record<KeyAttributeType, string> = {
  S: 'VARCHAR(2048) NOT NULL',
  N: 'VARCHAR(256) NOT NULL',
  B: 'VARBYTE(2048) NOT NULL',
};

interface Column {
  name: string;
  sql: string;
  type: string;
}

/** The segment columns in segment order (COPY of Parquet maps columns by position) with Redshift types. */
function redshiftColumns(keySchema: KeySchema): { columns: Column[]; keys: Column[] } {
  const keyTypes = new Map(keyAttributes(keySchema).map((a) => [keyColumnName(a.name), KEY_TYPES[a.type]]));
  const columns = changeColumns([...keyTypes.keys()]).map((name) => ({
    name,
    sql: sqlIdentifier(name),
    type: keyTypes.get(name) ?? FIXED_TYPES[name]!,
  }));
  return { columns, keys: columns.filter((c) => keyTypes.has(c.name)) };
}

/** The target table's definition: what redshiftLoadSql expects to load into. */
export function redshiftTargetTableSql(
  options: Pick<RedshiftLoadOptions, 'targetTable' | 'targetSchema' | 'keySchema'>,
): string {
  const { columns } = redshiftColumns(options.keySchema);
  const table = qualifiedName(options.targetSchema, options.targetTable);
  return `CREATE TABLE ${table} (\n${columns.map((c) => `  ${c.sql} ${c.type}`).join(',\n')}\n);`;
}

/**
 * A script that loads the segments a COPY manifest lists into `targetTable`, which then holds each
 * item's latest change (one row per key; latestStateSql.ts's rule), items whose latest change is a
 * tombstone (a REMOVE, or a NET row without a new image) deleted.
 *
 * Two transactions, run in one session. 1: COPY into a session temp table (STATUPDATE and COMPUPDATE
 * off: a throwaway table needs neither), then keep each item's latest change. 2: delete the removed
 * items, then MERGE the others. They are split so that a failed transaction 2 (typically a
 * serializable isolation conflict with another writer of the target) is retried without copying
 * from S3 again; one transaction is not needed for correctness, since transaction 1 changes only
 * the session's temp tables. A change is applied only when it is later than the target row
 * (laterRowSql: sequence numbers, weighed against replay's SNAPSHOT/NET rows by event time), so
 * running the same batch twice is a no-op and an older batch never overwrites a newer row.
 */
export function redshiftLoadSql(options: RedshiftLoadOptions): string {
  const problems = loadOptionProblems(options);
  if (problems.length > 0) throw new ConfigError(problems);
  const { columns, keys } = redshiftColumns(options.keySchema);
  const target = qualifiedName(options.targetSchema, options.targetTable);
  // MERGE and DELETE ... USING name the target's columns by its table name, without the schema.
  const targetRef = sqlIdentifier(options.targetTable);
  const stagingName = options.stagingTable ?? DEFAULT_STAGING_TABLE;
  const staging = sqlIdentifier(stagingName);
  const latest = sqlIdentifier(`${stagingName}_latest`);
  const apply = sqlIdentifier(`${stagingName}_apply`);
  const names = columns.map((c) => c.sql).join(', ');
  const sameKey = (a: string, b: string) => keys.map((k) => `${a}.${k.sql} = ${b}.${k.sql}`).join(' AND ');
  const keyNames = new Set(keys.map((k) => k.name));
  const updates = columns.filter((c) => !keyNames.has(c.name)).map((c) => `${c.sql} = src.${c.sql}`);
  const iamRole = options.iamRole === 'default' ? 'default' : sqlString(options.iamRole);
  const header = [
    `-- dynamodb-changelog: load change segments into ${target}, which holds each item's latest change.`,
    '--',
    '-- The target table has the change segment columns (types as below), one row per item:',
    ...redshiftTargetTableSql(options)
      .split('\n')
      .map((line) => `--   ${line}`),
    '--',
    '-- Run the whole script in one session: the staging tables are session temp tables.',
    "-- Transaction 1 copies the listed segments and keeps each item's latest change; transaction 2",
    '-- applies them. If transaction 2 fails (e.g. a serializable isolation conflict), run it again in',
    '-- the same session: no second COPY. Running the script twice with the same manifest changes',
    '-- nothing: a change is applied only when it is later than the target row (sequence numbers',
    '-- compare as integers, zero-padded to 40 digits; a SNAPSHOT/NET row of a replay is weighed by',
    '-- event time, ties to the stream: see the README). Load batches in order: a',
    '-- deleted item leaves no row, so an older batch loaded after the delete would bring it back.',
  ];
  return [
    ...header,
    '',
    'BEGIN;',
    `DROP TABLE IF EXISTS ${staging};`,
    `CREATE TEMP TABLE ${staging} (\n${columns.map((c) => `  ${c.sql} ${c.type}`).join(',\n')}\n);`,
    `COPY ${staging}`,
    `FROM ${sqlString(options.manifestUrl)}`,
    `IAM_ROLE ${iamRole}`,
    ...(options.region === undefined ? [] : [`REGION ${sqlString(options.region)}`]),
    'FORMAT AS PARQUET',
    'MANIFEST',
    'COMPUPDATE OFF',
    'STATUPDATE OFF;',
    `DROP TABLE IF EXISTS ${latest};`,
    `CREATE TEMP TABLE ${latest} AS`,
    `${latestRowsSql(
      staging,
      keys.map((k) => k.name),
      columns.map((c) => c.sql),
    )};`,
    'COMMIT;',
    '',
    'BEGIN;',
    '-- Items whose latest change is a tombstone, unless the target holds a later change.',
    `DELETE FROM ${target}`,
    `USING ${latest}`,
    `WHERE ${sameKey(targetRef, latest)}`,
    `  AND ${tombstoneSql(latest)}`,
    `  AND ${laterRowSql(latest, targetRef)};`,
    '-- The other items: not in the target yet, or newer than its row.',
    `DROP TABLE IF EXISTS ${apply};`,
    `CREATE TEMP TABLE ${apply} AS`,
    `SELECT ${columns.map((c) => `latest.${c.sql}`).join(', ')}`,
    `FROM ${latest} AS latest`,
    `LEFT JOIN ${target} ON ${sameKey(targetRef, 'latest')}`,
    `WHERE NOT ${tombstoneSql('latest')}`,
    `  AND (${targetRef}.sequence_number IS NULL OR ${laterRowSql('latest', targetRef)});`,
    `MERGE INTO ${target}`,
    `USING ${apply} AS src`,
    `ON ${sameKey(targetRef, 'src')}`,
    `WHEN MATCHED THEN UPDATE SET ${updates.join(', ')}`,
    `WHEN NOT MATCHED THEN INSERT (${names}) VALUES (${columns.map((c) => `src.${c.sql}`).join(', ')});`,
    'COMMIT;',
    '',
  ].join('\n');
}

function qualifiedName(schema: string | undefined, table: string): string {
  return schema === undefined ? sqlIdentifier(table) : `${sqlIdentifier(schema)}.${sqlIdentifier(table)}`;
}

/** Everything Redshift would refuse, found before a script is written. */
function loadOptionProblems(options: RedshiftLoadOptions): string[] {
  const problems: string[] = [];
  if (!S3_OBJECT_URL.test(options.manifestUrl)) {
    problems.push(`manifestUrl: ${JSON.stringify(options.manifestUrl)} is not an s3://bucket/key URL`);
  }
  if (options.iamRole !== 'default' && !options.iamRole.split(',').every((role) => IAM_ROLE_ARN.test(role))) {
    problems.push(
      `iamRole: ${JSON.stringify(options.iamRole)} is not "default" or IAM role ARNs (arn:aws:iam::<account>:role/<name>, comma-separated to chain)`,
    );
  }
  if (options.region !== undefined && !REGION.test(options.region)) {
    problems.push(`region: ${JSON.stringify(options.region)} is not an AWS region name (e.g. eu-west-1)`);
  }
  const identifier = (what: string, name: string) => {
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes === 0 || bytes > MAX_IDENTIFIER_BYTES) {
      problems.push(
        `${what} ${JSON.stringify(name)} is ${bytes} bytes; Redshift names are 1 to ${MAX_IDENTIFIER_BYTES} bytes`,
      );
    }
    if (/[\u0000-\u001f\u007f]/.test(name)) {
      problems.push(
        `${what} ${JSON.stringify(name)} holds a control character; Redshift names are printable`,
      );
    }
  };
  identifier('targetTable', options.targetTable);
  if (options.targetSchema !== undefined) identifier('targetSchema', options.targetSchema);
  const stagingName = options.stagingTable ?? DEFAULT_STAGING_TABLE;
  identifier('stagingTable', `${stagingName}_latest`);
  // Redshift folds ASCII letters to lower case, quoted or not: `PK` and `pk` would be one column.
  const folded = new Map<string, string>();
  for (const name of changeColumns(keyAttributes(options.keySchema).map((a) => keyColumnName(a.name)))) {
    identifier('column', name);
    const lower = name.replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (SYSTEM_COLUMNS.has(lower)) {
      problems.push(
        `key column ${JSON.stringify(name)} is a Redshift system column name (${[...SYSTEM_COLUMNS].join(', ')})`,
      );
    }
    const other = folded.get(lower);
    if (other !== undefined) {
      problems.push(
        `columns ${JSON.stringify(other)} and ${JSON.stringify(name)} are one name in Redshift, which folds names to lower case`,
      );
    }
    folded.set(lower, name);
  }
  return problems;
}
