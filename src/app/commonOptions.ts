import { parseDestination } from '../coordination/objectStore.js';
import { parseDuration } from '../support/duration.js';
import { ConfigError } from '../support/errors.js';

/**
 * The options several commands share (`run`, `verify`, and next `changes` and `replay`), declared
 * once: flag, argument, environment variable and help, and the one parser of their values.
 */
export const COMMON_OPTIONS = {
  table: {
    flag: '--table',
    env: 'CHANGELOG_TABLE',
    arg: '<name>',
    help: 'source DynamoDB table',
  },
  destination: {
    flag: '--destination',
    env: 'CHANGELOG_DESTINATION',
    arg: '<url>',
    help: 's3://bucket/prefix or file:///dir',
  },
  leaseTable: {
    flag: '--lease-table',
    env: 'CHANGELOG_LEASE_TABLE',
    arg: '<name>',
    help: 'DynamoDB table for leases and the segment registry',
  },
  s3ForcePathStyle: {
    flag: '--s3-force-path-style',
    env: 'CHANGELOG_S3_FORCE_PATH_STYLE',
    help: 'path-style S3 URLs (MinIO, s3rver, LocalStack)',
  },
  expectedBucketOwner: {
    flag: '--expected-bucket-owner',
    env: 'CHANGELOG_EXPECTED_BUCKET_OWNER',
    arg: '<account>',
    help: 'refuse a bucket owned by another account',
  },
  sseKmsKeyId: {
    flag: '--sse-kms-key-id',
    env: 'CHANGELOG_SSE_KMS_KEY_ID',
    arg: '<key>',
    help: 'encrypt objects with this KMS key',
  },
  since: {
    flag: '--since',
    arg: '<time>',
    help: 'start of the time range',
  },
  until: {
    flag: '--until',
    arg: '<time>',
    help: 'end of the time range (exclusive)',
  },
} as const;

/** The DynamoDB table-name rule, for `--table` and `--lease-table`. */
export const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;
/** A DynamoDB Stream ARN, for `--stream-arn`. */
export const STREAM_ARN =
  /^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table\/[A-Za-z0-9_.-]{3,255}\/stream\/.+$/;

/**
 * A required `--destination`: the trimmed URL, or undefined after pushing what is wrong (missing,
 * or not a destination URL) to `problems`, so a command reports it with all its other problems.
 */
export function destinationOption(value: string | undefined, problems: string[]): string | undefined {
  const { flag, env } = COMMON_OPTIONS.destination;
  const destination = value?.trim();
  if (destination === undefined || destination === '') {
    problems.push(`${flag}: missing; give s3://bucket/prefix or file:///dir (or set ${env})`);
    return undefined;
  }
  try {
    parseDestination(destination);
  } catch (error) {
    const issues = error instanceof ConfigError ? error.issues : [(error as Error).message];
    for (const issue of issues) problems.push(`${flag}: ${issue}`);
    return undefined;
  }
  return destination;
}

/**
 * A required table name (`--table`, `--lease-table`): the trimmed name, or undefined after pushing
 * what is wrong to `problems`. `what` completes "missing; give ...".
 */
export function tableNameOption(
  name: 'table' | 'leaseTable',
  value: string | undefined,
  what: string,
  problems: string[],
): string | undefined {
  const { flag, env } = COMMON_OPTIONS[name];
  const table = value?.trim();
  if (table === undefined || table === '') {
    problems.push(`${flag}: missing; give ${what} (or set ${env})`);
    return undefined;
  }
  if (!TABLE_NAME.test(table)) {
    problems.push(
      `${flag}: ${JSON.stringify(table)} is not a DynamoDB table name (3-255 of letters, digits, _ . -)`,
    );
    return undefined;
  }
  return table;
}

/** What `--since` / `--until` accept, for error messages and --help. */
export const TIME_ALLOWED =
  'an ISO-8601 time with a zone (e.g. 2026-11-22T10:00:00Z), a date (2026-11-22, UTC midnight), epoch milliseconds (13 digits, e.g. 1795341600000), or a duration ago (e.g. -2h, 30m, 1d)';

// Date-only, or date and time with Z or an offset: a time without a zone would be read as local time.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/i;

/** Epoch ms for a `--since`/`--until` value, or undefined when it is neither form. */
export function parseTimeOption(text: string, nowMs: number): number | undefined {
  const trimmed = text.trim();
  if (ISO_TIME.test(trimmed)) {
    // Date.parse rolls 2026-02-30 over to March; a calendar date must exist as written.
    const [y, m, d] = trimmed.slice(0, 10).split('-').map(Number) as [number, number, number];
    if (new Date(Date.UTC(y, m - 1, d)).getUTCDate() !== d) return undefined;
    const ms = Date.parse(trimmed.toUpperCase());
    return Number.isFinite(ms) ? ms : undefined;
  }
  // Epoch milliseconds only with 13 digits (2001-2286): a 10-digit number is likely epoch seconds,
  // a short one a duration without a unit; both are refused rather than guessed.
  if (/^\d{13}$/.test(trimmed)) return Number(trimmed);
  if (!/[a-z]/i.test(trimmed)) return undefined;
  // "-2h" and "2h" both mean two hours ago.
  const ago = parseDuration(trimmed.startsWith('-') ? trimmed.slice(1) : trimmed);
  return ago === undefined ? undefined : nowMs - ago;
}
