import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { type Command, CommanderError } from 'commander';
import { parseTimeOption, STREAM_ARN, TIME_ALLOWED } from '../app/commonOptions.js';
import { manifestPrefix, tableOfStreamArn } from '../changelog/layout.js';
import { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { parseDestination } from '../coordination/objectStore.js';
import { openObjectStore } from '../coordination/openObjectStore.js';
import { DEFAULT_LATE_GRACE_MS, type StreamAuditOptions } from '../read/streamAudit.js';
import { AUDIT_DEFAULTS } from '../read/streamAuditReader.js';
import { type VerifyGap, type VerifyReport, verifyChangelog } from '../read/verifier.js';
import { formatDuration, parseDuration } from '../support/duration.js';
import { ConfigError } from '../support/errors.js';
import { commonOption } from './commonOption.js';

interface VerifyFlags {
  destination?: string;
  table?: string;
  since?: string;
  until?: string;
  s3ForcePathStyle?: boolean;
  json?: boolean;
  stream?: boolean;
  streamArn?: string;
  lateGrace?: string;
  streamRate?: string;
  streamTotalRate?: string;
  streamConcurrency?: string;
}

/** What `--stream` options amount to, once checked. */
interface StreamFlags {
  streamArn: string | undefined;
  lateGraceMs: number;
  shardRate: number;
  totalRate: number;
  concurrency: number;
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

export interface VerifyCommandOptions {
  /** The clock for relative times; tests pass a fixed one. */
  now?: () => number;
  /**
   * The DynamoDB Streams clients for `--stream` (tests pass mocked ones). Default: built from the
   * AWS SDK's environment (AWS_ENDPOINT_URL_DYNAMODB_STREAMS, AWS_REGION, credentials), with the
   * raw GetRecords path, as the daemon does.
   */
  streamClients?: () => { streams: DynamoDBStreamsClient; raw?: RawGetRecordsClient };
}

function defaultStreamClients(): { streams: DynamoDBStreamsClient; raw: RawGetRecordsClient } {
  // No SDK retries: the audit's reader retries itself (support/retry.ts), so the two never multiply.
  const streams = new DynamoDBStreamsClient({ maxAttempts: 1 });
  return { streams, raw: new RawGetRecordsClient(streams) };
}

/** `verify`: checks a range of sealed windows against the changelog's invariants. */
export function registerVerifyCommand(program: Command, options: VerifyCommandOptions = {}): void {
  const now = options.now ?? Date.now;
  program
    .command('verify')
    .description('check the sealed windows of a time range against the changelog invariants')
    .addOption(commonOption('destination', 'changelog location'))
    .addOption(commonOption('table'))
    .addOption(commonOption('since', `first window start to check (required): ${TIME_ALLOWED}`))
    .addOption(
      commonOption('until', 'check windows starting before this time (default: all from --since on)'),
    )
    .addOption(commonOption('s3ForcePathStyle'))
    .option('--json', 'print the report as JSON')
    .option(
      '--stream',
      'also re-read what the stream still retains and prove the sealed manifests hold it exactly once',
    )
    .option('--stream-arn <arn>', "with --stream: read this stream instead of the manifests' streamArn")
    .option(
      '--late-grace <duration>',
      `with --stream: records older than the last sealed window's end minus this must be sealed (default ${formatDuration(DEFAULT_LATE_GRACE_MS)})`,
    )
    .option(
      '--stream-rate <calls>',
      `with --stream: GetRecords calls per second on one shard (default ${AUDIT_DEFAULTS.shardRate})`,
    )
    .option(
      '--stream-total-rate <calls>',
      `with --stream: GetRecords calls per second over all shards (default ${AUDIT_DEFAULTS.totalRate})`,
    )
    .option(
      '--stream-concurrency <shards>',
      `with --stream: shards read at the same time (default ${AUDIT_DEFAULTS.concurrency})`,
    )
    .action(async (flags: VerifyFlags) => {
      const { destination, table, sinceMs, untilMs, stream } = validate(flags, now());
      const store = openObjectStore(destination, { s3: { forcePathStyle: flags.s3ForcePathStyle === true } });
      const clients = stream === undefined ? undefined : (options.streamClients ?? defaultStreamClients)();
      const audit: StreamAuditOptions | undefined = stream &&
        clients && {
          streams: clients.streams,
          ...(clients.raw !== undefined && { raw: clients.raw }),
          ...(stream.streamArn !== undefined && { streamArn: stream.streamArn }),
          lateGraceMs: stream.lateGraceMs,
          shardRate: stream.shardRate,
          totalRate: stream.totalRate,
          concurrency: stream.concurrency,
        };
      let report: VerifyReport;
      try {
        report = await verifyChangelog({ store, table, sinceMs, untilMs, ...(audit && { stream: audit }) });
      } finally {
        store.close?.();
        if (clients !== undefined && options.streamClients === undefined) {
          clients.raw?.destroy();
          clients.streams.destroy();
        }
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (report.violations.length > 0) throw new VerifyFailedError(report.violations.length);
    });
}

/** Checks every flag and reports all problems at once. */
function validate(
  flags: VerifyFlags,
  nowMs: number,
): {
  destination: string;
  table: string;
  sinceMs: number;
  untilMs: number | undefined;
  stream: StreamFlags | undefined;
} {
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
  const stream = validateStream(flags, problems);
  if (problems.length > 0 || sinceMs === undefined) throw new ConfigError(problems);
  return { destination: flags.destination!, table: flags.table!, sinceMs, untilMs, stream };
}

/** The `--stream` options; problems are added to `problems`. Undefined without --stream. */
function validateStream(flags: VerifyFlags, problems: string[]): StreamFlags | undefined {
  const given = (
    [
      ['--stream-arn', flags.streamArn],
      ['--late-grace', flags.lateGrace],
      ['--stream-rate', flags.streamRate],
      ['--stream-total-rate', flags.streamTotalRate],
      ['--stream-concurrency', flags.streamConcurrency],
    ] as const
  ).filter(([, value]) => value !== undefined);
  if (flags.stream !== true) {
    for (const [name] of given) problems.push(`${name}: only with --stream`);
    return undefined;
  }
  const streamArn = flags.streamArn?.trim();
  if (streamArn !== undefined) {
    if (!STREAM_ARN.test(streamArn)) {
      problems.push(
        `--stream-arn: ${JSON.stringify(streamArn)} is not a DynamoDB Stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)`,
      );
    } else if (flags.table !== undefined && tableOfStreamArn(streamArn) !== flags.table) {
      problems.push(
        `--stream-arn: the stream belongs to table ${tableOfStreamArn(streamArn)}, not ${JSON.stringify(flags.table)}`,
      );
    }
  }
  let lateGraceMs = DEFAULT_LATE_GRACE_MS;
  if (flags.lateGrace !== undefined) {
    const ms = parseDuration(flags.lateGrace);
    if (ms === undefined) {
      problems.push(`--late-grace: ${JSON.stringify(flags.lateGrace)} is not a duration (e.g. 15m, 1h, 0s)`);
    } else lateGraceMs = ms;
  }
  const positive = (name: string, value: string | undefined, fallback: number, integer: boolean): number => {
    if (value === undefined) return fallback;
    const n = Number(value.trim());
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      problems.push(`${name}: ${JSON.stringify(value)} is not a positive ${integer ? 'whole ' : ''}number`);
      return fallback;
    }
    return n;
  };
  return {
    streamArn,
    lateGraceMs,
    shardRate: positive('--stream-rate', flags.streamRate, AUDIT_DEFAULTS.shardRate, false),
    totalRate: positive('--stream-total-rate', flags.streamTotalRate, AUDIT_DEFAULTS.totalRate, false),
    concurrency: positive('--stream-concurrency', flags.streamConcurrency, AUDIT_DEFAULTS.concurrency, true),
  };
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
  );
  const s = report.stream;
  if (s !== undefined) {
    const notFound =
      s.streamsNotFound.length > 0 ? ` (no longer exists: ${s.streamsNotFound.join(', ')})` : '';
    lines.push(
      `stream audit: ${s.streamArns.length === 0 ? '(no stream: no sealed window in range)' : s.streamArns.join(', ')}${notFound}`,
      `  shards read:    ${s.shardsRead} (${s.getRecordsCalls} GetRecords calls)`,
      `  records read:   ${s.recordsRead}`,
      `  checked:        ${s.recordsChecked}`,
      `  matched:        ${s.recordsMatched}`,
      `  missing:        ${s.recordsMissing}`,
      `  duplicated:     ${s.recordsDuplicated}`,
      `  mismatched:     ${s.recordsMismatched}`,
      `  in gaps:        ${s.recordsInGaps}`,
      `  not checked:    ${s.recordsNotChecked} (no rule asks for them: outside the chains${s.timeRuleThrough ? ` and newer than ${s.timeRuleThrough}` : ''})`,
      `  not auditable:  ${s.rowsNotAuditable} (manifest rows the stream no longer retains)`,
      `  unknown rows:   ${s.rowsUnknown}`,
    );
  }
  lines.push(`violations:   ${report.violations.length}`);
  for (const gap of report.gaps) {
    const resumed = gap.resumedAtSequenceNumber ? `, resumed at ${gap.resumedAtSequenceNumber}` : '';
    lines.push(
      `  gap in window ${gap.window}: shard ${gap.shardId} after ${gap.afterSequenceNumber}${resumed} (${gap.reason})${filledText(gap.filledBy)}`,
    );
  }
  for (const v of report.violations) lines.push(`  ${v.kind}: ${v.message}`);
  lines.push(report.violations.length === 0 ? 'OK' : 'FAILED');
  return `${lines.join('\n')}\n`;
}

function filledText(fill: VerifyGap['filledBy']): string {
  if (fill === undefined) return '';
  const from =
    fill.exportArn ?? (fill.scanStartedAt === undefined ? fill.kind : `scan of ${fill.scanStartedAt}`);
  return `, filled by replay ${fill.replayId} from ${from} (${fill.records} rows)`;
}
