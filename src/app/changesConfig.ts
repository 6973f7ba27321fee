import { DEFAULTS, type ReadConfig } from '../coordination/config.js';
import { DEFAULT_ROW_FORMAT, ROW_FORMATS, type RowFormat } from '../read/rowWriters.js';
import { ConfigError } from '../support/errors.js';
import { destinationOption, parseTimeOption, TIME_ALLOWED, tableNameOption } from './commonOptions.js';

/** What `changes` hands out: rows (in --format), or a warehouse/engine hand-off of the range's files. */
export type ChangesEmit = 'rows' | 'files' | 'redshift-manifest' | 'redshift-sql' | 'duckdb-sql';

export const CHANGES_EMITS: readonly ChangesEmit[] = [
  'rows',
  'files',
  'redshift-manifest',
  'redshift-sql',
  'duckdb-sql',
];

/** `changes` flags as commander gives them (strings; environment already applied for shared ones). */
export interface ChangesOptionsInput {
  destination?: string | undefined;
  table?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  format?: string | undefined;
  output?: string | undefined;
  columns?: string | undefined;
  key?: string | undefined;
  latest?: boolean | undefined;
  includeDeletes?: boolean | undefined;
  cursor?: string | undefined;
  emit?: string | undefined;
  targetTable?: string | undefined;
  iamRole?: string | undefined;
  manifestUrl?: string | undefined;
  region?: string | undefined;
  s3ForcePathStyle?: boolean | undefined;
}

export interface ChangesConfig {
  destination: { url: string; s3ForcePathStyle: boolean };
  table: string;
  /** Start of the range; with a cursor, only where a first batch starts. */
  sinceMs: number | undefined;
  /** End of the range (exclusive); default: what is complete (every window before it sealed). */
  untilMs: number | undefined;
  format: RowFormat;
  /** A file to write (atomically: a temporary file renamed at the end); default stdout. */
  output: string | undefined;
  /** Column names as given (checked against the segments' columns once the key schema is known). */
  columns: string[] | undefined;
  /** --key: one item's key attribute values by attribute name. */
  key: Record<string, string> | undefined;
  latest: boolean;
  includeDeletes: boolean;
  cursorFile: string | undefined;
  emit: ChangesEmit;
  redshift: { targetTable?: string; iamRole?: string; manifestUrl?: string; region?: string };
  /** What the read may hold in memory (no flag yet: DEFAULTS.read). */
  read: ReadConfig;
}

const ATTRIBUTE_NAME = /^[^=,]+$/;

/**
 * `--key pk=a,sk=1` (attribute=value pairs; a comma inside a value is kept when what follows has no
 * `=`) or a JSON object `{"pk":"a,b","sk":"1"}`. Undefined (and a problem) when malformed.
 */
export function parseKeyOption(text: string, problems: string[]): Record<string, string> | undefined {
  const trimmed = text.trim();
  const bad = (why: string) => {
    problems.push(`--key: ${JSON.stringify(text)} ${why}; expected pk=value[,sk=value] or {"pk":"value"}`);
    return undefined;
  };
  const out: Record<string, string> = {};
  if (trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch {
      return bad('is not valid JSON');
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return bad('is not a JSON object');
    for (const [name, value] of Object.entries(json)) {
      if (typeof value !== 'string' && typeof value !== 'number')
        return bad(`gives ${name} a non-string value`);
      out[name] = String(value);
    }
  } else {
    let last: string | undefined;
    for (const piece of trimmed.split(',')) {
      const eq = piece.indexOf('=');
      const name = eq === -1 ? '' : piece.slice(0, eq).trim();
      if (eq === -1 || !ATTRIBUTE_NAME.test(name)) {
        if (last === undefined) return bad('does not start with attribute=value');
        out[last] += `,${piece}`;
        continue;
      }
      if (name in out) return bad(`names ${name} twice`);
      out[name] = piece.slice(eq + 1);
      last = name;
    }
  }
  if (Object.keys(out).length === 0) return bad('names no attribute');
  return out;
}

/**
 * Validates the `changes` flags in one place; every problem names the flag, the value and what is
 * allowed, all reported together (ConfigError, exit 2).
 */
export function parseChangesConfig(input: ChangesOptionsInput, nowMs: number): ChangesConfig {
  const problems: string[] = [];
  const destination = destinationOption(input.destination, problems);
  const table = tableNameOption('table', input.table, 'the DynamoDB table name', problems);
  const time = (flag: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const ms = parseTimeOption(value, nowMs);
    if (ms === undefined) problems.push(`${flag}: ${JSON.stringify(value)} is not ${TIME_ALLOWED}`);
    return ms;
  };
  const sinceMs = time('--since', input.since);
  const untilMs = time('--until', input.until);
  if (input.since === undefined && input.cursor === undefined) {
    problems.push(
      `--since: missing; give ${TIME_ALLOWED} (with --cursor it is optional: where the first batch starts)`,
    );
  }
  if (sinceMs !== undefined && untilMs !== undefined && untilMs <= sinceMs) {
    problems.push(
      `--until: ${JSON.stringify(input.until)} (${new Date(untilMs).toISOString()}) must be after --since (${new Date(sinceMs).toISOString()}): the range is empty`,
    );
  }
  const emit = (input.emit ?? 'rows') as ChangesEmit;
  if (!CHANGES_EMITS.includes(emit)) {
    problems.push(`--emit: ${JSON.stringify(input.emit)} is not one of ${CHANGES_EMITS.join(', ')}`);
  }
  const format = (input.format ?? DEFAULT_ROW_FORMAT) as RowFormat;
  if (!ROW_FORMATS.includes(format)) {
    problems.push(`--format: ${JSON.stringify(input.format)} is not one of ${ROW_FORMATS.join(', ')}`);
  }
  const columns =
    input.columns === undefined
      ? undefined
      : input.columns
          .split(',')
          .map((c) => c.trim())
          .filter((c) => c !== '');
  if (columns !== undefined && columns.length === 0) problems.push('--columns: names no column');
  const key = input.key === undefined ? undefined : parseKeyOption(input.key, problems);
  const latest = input.latest === true;
  const includeDeletes = input.includeDeletes === true;
  const conflict = (a: string, b: string) => problems.push(`${a} and ${b} cannot be used together`);
  if (key !== undefined && latest) conflict('--key', '--latest');
  if (key !== undefined && input.cursor !== undefined) {
    conflict('--key', '--cursor (a cursor follows the whole table)');
  }
  if (includeDeletes && !latest)
    problems.push('--include-deletes: only with --latest (rows always include deletes)');
  if (emit !== 'rows' && CHANGES_EMITS.includes(emit)) {
    for (const [flag, given] of [
      ['--format', input.format],
      ['--columns', input.columns],
      ['--key', input.key],
    ] as const) {
      if (given !== undefined) problems.push(`${flag}: only with row output, not with --emit ${emit}`);
    }
    if (latest) problems.push(`--latest: only with row output, not with --emit ${emit}`);
  }
  const redshift = {
    ...(input.targetTable !== undefined && { targetTable: input.targetTable }),
    ...(input.iamRole !== undefined && { iamRole: input.iamRole }),
    ...(input.manifestUrl !== undefined && { manifestUrl: input.manifestUrl }),
    ...(input.region !== undefined && { region: input.region }),
  };
  if (emit === 'redshift-sql') {
    if (redshift.targetTable === undefined)
      problems.push('--target-table: missing; --emit redshift-sql loads into it');
    if (redshift.iamRole === undefined)
      problems.push('--iam-role: missing; COPY reads S3 with this role ARN');
    if (redshift.manifestUrl === undefined) {
      problems.push(
        '--manifest-url: missing; give the s3:// URL where the --emit redshift-manifest output is uploaded',
      );
    } else if (!/^s3:\/\/[^/]+\/.+/.test(redshift.manifestUrl)) {
      problems.push(`--manifest-url: ${JSON.stringify(redshift.manifestUrl)} is not an s3://bucket/key URL`);
    }
    const roles = redshift.iamRole?.split(',') ?? [];
    if (
      redshift.iamRole !== undefined &&
      redshift.iamRole !== 'default' &&
      !roles.every((r) => /^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/.test(r))
    ) {
      problems.push(
        `--iam-role: ${JSON.stringify(redshift.iamRole)} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>, comma-separated to chain) or default`,
      );
    }
  } else {
    for (const [flag, given] of [
      ['--target-table', input.targetTable],
      ['--iam-role', input.iamRole],
      ['--manifest-url', input.manifestUrl],
      ['--region', input.region],
    ] as const) {
      if (given !== undefined) problems.push(`${flag}: only with --emit redshift-sql`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    destination: { url: destination!, s3ForcePathStyle: input.s3ForcePathStyle === true },
    table: table!,
    sinceMs,
    untilMs,
    format,
    output: input.output,
    columns,
    key,
    latest,
    includeDeletes,
    cursorFile: input.cursor,
    emit,
    redshift,
    read: { ...DEFAULTS.read },
  };
}
