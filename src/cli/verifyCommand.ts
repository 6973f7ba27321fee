import { type Command, CommanderError, Option } from 'commander';
import { parseDuration } from '../config/duration.js';
import { ConfigError } from '../errors.js';
import { manifestPrefix } from '../manifest/layout.js';
import { type VerifyReport, verifyChangelog } from '../manifest/verifier.js';
import { parseDestination } from '../sink/objectStore.js';
import { openObjectStore } from '../sink/openObjectStore.js';

interface VerifyFlags {
  destination?: string;
  table?: string;
  since?: string;
  until?: string;
  s3ForcePathStyle?: boolean;
  json?: boolean;
}

/**
 * Thrown when the changelog has violations: exit code 1 without an error message (the report was
 * printed). A CommanderError so main() maps it to its exit code like any other early exit.
 */
export class VerifyFailedError extends CommanderError {
  constructor(violations: number) {
    super(1, 'dynamodb-changelog.verifyFailed', `${violations} violation(s) found`);
    this.name = 'VerifyFailedError';
  }
}

const TIME_ALLOWED =
  'an ISO-8601 time with a zone (e.g. 2026-11-22T10:00:00Z), a date (2026-11-22, UTC midnight), or a duration ago (e.g. 30m, 2h, 1d)';

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
  // A bare number is refused: it could be meant as epoch seconds, milliseconds, or a duration.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const ago = parseDuration(trimmed);
  return ago === undefined ? undefined : nowMs - ago;
}

export interface VerifyCommandOptions {
  /** The clock for relative times; tests pass a fixed one. */
  now?: () => number;
}

/** `verify`: checks a range of sealed windows against the changelog's invariants. */
export function registerVerifyCommand(program: Command, options: VerifyCommandOptions = {}): void {
  const now = options.now ?? Date.now;
  program
    .command('verify')
    .description('check the sealed windows of a time range against the changelog invariants')
    .addOption(
      new Option('--destination <url>', 'changelog location: s3://bucket/prefix or file:///dir').env(
        'CHANGELOG_DESTINATION',
      ),
    )
    .addOption(new Option('--table <name>', 'DynamoDB table name').env('CHANGELOG_TABLE'))
    .option('--since <time>', `first window start to check (required): ${TIME_ALLOWED}`)
    .option('--until <time>', 'check windows starting before this time (default: all from --since on)')
    .option('--s3-force-path-style', 'use path-style S3 URLs (for S3-compatible stores)')
    .option('--json', 'print the report as JSON')
    .action(async (flags: VerifyFlags) => {
      const { destination, table, sinceMs, untilMs } = validate(flags, now());
      const store = openObjectStore(destination, { s3: { forcePathStyle: flags.s3ForcePathStyle === true } });
      let report: VerifyReport;
      try {
        report = await verifyChangelog({ store, table, sinceMs, untilMs });
      } finally {
        store.close?.();
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (report.violations.length > 0) throw new VerifyFailedError(report.violations.length);
    });
}

/** Checks every flag and reports all problems at once. */
function validate(
  flags: VerifyFlags,
  nowMs: number,
): { destination: string; table: string; sinceMs: number; untilMs: number | undefined } {
  const problems: string[] = [];
  if (flags.destination === undefined || flags.destination.trim() === '') {
    problems.push(
      '--destination: missing; give s3://bucket/prefix or file:///dir (or set CHANGELOG_DESTINATION)',
    );
  } else {
    try {
      parseDestination(flags.destination);
    } catch (error) {
      const issues = error instanceof ConfigError ? error.issues : [(error as Error).message];
      for (const issue of issues) problems.push(`--destination: ${issue}`);
    }
  }
  if (flags.table === undefined || flags.table.trim() === '') {
    problems.push('--table: missing; give the DynamoDB table name (or set CHANGELOG_TABLE)');
  } else {
    try {
      manifestPrefix(flags.table);
    } catch {
      problems.push(
        `--table: ${JSON.stringify(flags.table)} is not a DynamoDB table name (3-255 of letters, digits, _ . -)`,
      );
    }
  }
  const time = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const ms = parseTimeOption(value, nowMs);
    if (ms === undefined) problems.push(`${name}: ${JSON.stringify(value)} is not ${TIME_ALLOWED}`);
    return ms;
  };
  const sinceMs = time('--since', flags.since);
  const untilMs = time('--until', flags.until);
  if (flags.since === undefined) problems.push(`--since: missing; give ${TIME_ALLOWED}`);
  if (sinceMs !== undefined && untilMs !== undefined && untilMs <= sinceMs) {
    problems.push(
      `--until: ${JSON.stringify(flags.until)} (${new Date(untilMs).toISOString()}) must be after --since (${new Date(sinceMs).toISOString()})`,
    );
  }
  if (problems.length > 0 || sinceMs === undefined) throw new ConfigError(problems);
  return { destination: flags.destination!, table: flags.table!, sinceMs, untilMs };
}

/** The human summary: counts, then the gaps and violations one per line. */
export function formatReport(report: VerifyReport): string {
  const lines = [
    `verify ${report.table} at ${report.destination}, windows from ${report.since}${report.until ? ` until ${report.until}` : ''}`,
  ];
  if (report.windows === 0) {
    lines.push(`no sealed windows found under ${manifestPrefix(report.table)} in this range`);
  } else {
    lines.push(`windows:      ${report.windows} (${report.firstWindow} .. ${report.lastWindow})`);
  }
  lines.push(
    `segments:     ${report.segments}`,
    `records:      ${report.records}`,
    `gaps:         ${report.gaps.length}`,
    `late records: ${report.lateRecords}`,
    `violations:   ${report.violations.length}`,
  );
  for (const gap of report.gaps) {
    const resumed = gap.resumedAtSequenceNumber ? `, resumed at ${gap.resumedAtSequenceNumber}` : '';
    lines.push(
      `  gap in window ${gap.window}: shard ${gap.shardId} after ${gap.afterSequenceNumber}${resumed} (${gap.reason})`,
    );
  }
  for (const v of report.violations) lines.push(`  ${v.kind}: ${v.message}`);
  lines.push(report.violations.length === 0 ? 'OK' : 'FAILED');
  return `${lines.join('\n')}\n`;
}
