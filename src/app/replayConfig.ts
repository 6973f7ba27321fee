import { createHash } from 'node:crypto';
import { REPLAY_MODES, type ReplayMode } from '../changelog/manifest.js';
import { DEFAULTS } from '../coordination/config.js';
import { parseDestination } from '../coordination/objectStore.js';
import { MAX_SCAN_SEGMENTS } from '../coordination/tableScan.js';
import { formatDuration, parseByteSize, parseDuration } from '../support/duration.js';
import { ConfigError } from '../support/errors.js';
import { destinationOption, parseTimeOption, TIME_ALLOWED, tableNameOption } from './commonOptions.js';

/** Where `replay` reads what it writes into the changelog. */
export type ReplaySource = 'scan' | 'export' | 'stream';

export const REPLAY_SOURCES: readonly ReplaySource[] = ['scan', 'export', 'stream'];

/** `replay` flags as commander gives them (strings; environment already applied for shared ones). */
export interface ReplayOptionsInput {
  destination?: string | undefined;
  table?: string | undefined;
  leaseTable?: string | undefined;
  mode?: string | undefined;
  source?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** --export s3://bucket/prefix/AWSDynamoDB/<ExportId>/ (or file:///...): an export to read. */
  export?: string | undefined;
  /** --start-export: have DynamoDB export the table first (then read that export). */
  startExport?: boolean | undefined;
  /** --export-to s3://bucket/prefix: where --start-export writes (default: <destination>/<table>/exports/). */
  exportTo?: string | undefined;
  exportFrom?: string | undefined;
  exportUntil?: string | undefined;
  segments?: string | undefined;
  maxRcuPerSecond?: string | undefined;
  replayId?: string | undefined;
  dryRun?: boolean | undefined;
  /** --wait-for-seal <duration>: how long to wait for the windows to be sealed (default 0: refuse at once). */
  waitForSeal?: string | undefined;
  /** --max-segment-bytes <size>: flush a replay segment at this many uncompressed bytes. */
  maxSegmentBytes?: string | undefined;
  /** --progress tty|json|none (default: tty on a terminal, json otherwise). */
  progress?: string | undefined;
  s3ForcePathStyle?: boolean | undefined;
  /** Whether stderr is a terminal: the --progress default (the caller asks; parsing stays pure). */
  isTty?: boolean | undefined;
}

export interface ReplayConfig {
  destination: { url: string; s3ForcePathStyle: boolean };
  table: string;
  leaseTable: string;
  mode: ReplayMode;
  source: ReplaySource;
  /** fill-gaps, rebuild: the windows looked at, [sinceMs, untilMs). */
  sinceMs: number | undefined;
  untilMs: number | undefined;
  /** --export: the export's folder (an object store URL ending in `/`). */
  exportUrl: string | undefined;
  /**
   * --start-export: the export to start. FULL_EXPORT (bootstrap: at `exportTimeMs`, default now)
   * or INCREMENTAL_EXPORT (fill-gaps: [fromMs, toMs)). `toUrl` is where DynamoDB writes it.
   */
  startExport:
    | {
        exportType: 'FULL_EXPORT' | 'INCREMENTAL_EXPORT';
        fromMs: number | undefined;
        toMs: number | undefined;
        toUrl: string;
      }
    | undefined;
  /** --source scan: TotalSegments of the parallel scan. */
  segments: number;
  /** --source scan: read capacity per second at the most (undefined: no limit). */
  maxRcuPerSecond: number | undefined;
  /**
   * The replay's id: letters, digits, `-`, `_` (1-64). It names its segments, its progress in the
   * lease table and its rows' event ids; the same command again resumes it. Default: derived
   * from what the command replays (mode, source, table, range or export), so repeating the
   * command finds its own progress.
   */
  replayId: string;
  dryRun: boolean;
  waitForSealMs: number;
  /** Uncompressed bytes a replay segment is flushed at (the daemon's --max-segment-bytes default). */
  maxSegmentBytes: number;
  progress: 'tty' | 'json' | 'none';
}

export const REPLAY_PROGRESS: readonly ReplayConfig['progress'][] = ['tty', 'json', 'none'];

/** Which source each mode reads from. */
export const REPLAY_PAIRS: Readonly<Record<ReplayMode, readonly ReplaySource[]>> = {
  bootstrap: ['scan', 'export'],
  // A gap is what the stream trimmed before it was read: only an export can fill it.
  'fill-gaps': ['export'],
  rebuild: ['stream'],
};

/** The smallest replay segment (as `run --max-segment-bytes`): smaller ones only make more objects. */
const MIN_SEGMENT_BYTES = 1024 * 1024;

/** DynamoDB's limits on an incremental export's period (ExportFromTime to ExportToTime). */
export const INCREMENTAL_EXPORT_MIN_MS = 15 * 60_000;
export const INCREMENTAL_EXPORT_MAX_MS = 24 * 3_600_000;

const REPLAY_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Validates the `replay` flags in one place; every problem names the flag, the value and what is
 * allowed, all reported together (ConfigError, exit 2).
 */
export function parseReplayConfig(input: ReplayOptionsInput, nowMs: number): ReplayConfig {
  const problems: string[] = [];
  const destination = destinationOption(input.destination, problems);
  const table = tableNameOption('table', input.table, 'the DynamoDB table name', problems);
  const leaseTable = tableNameOption(
    'leaseTable',
    input.leaseTable,
    'the lease table of the daemon (`run --lease-table`) that writes this changelog',
    problems,
  );
  const oneOf = <T extends string>(flag: string, value: string | undefined, allowed: readonly T[]) => {
    if (value === undefined) problems.push(`${flag}: missing; give one of ${allowed.join(', ')}`);
    else if (!allowed.includes(value as T))
      problems.push(`${flag}: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
    else return value as T;
    return undefined;
  };
  const mode = oneOf('--mode', input.mode, REPLAY_MODES);
  const source = oneOf('--source', input.source, REPLAY_SOURCES);
  if (mode !== undefined && source !== undefined && !REPLAY_PAIRS[mode].includes(source)) {
    const pairs = Object.entries(REPLAY_PAIRS)
      .map(([m, sources]) => `${m} with ${sources.join(' or ')}`)
      .join('; ');
    problems.push(`--mode ${mode} with --source ${source}: not a replay; the pairs are ${pairs}`);
  }
  const onlyWith = (what: string, flags: [string, unknown][]) => {
    for (const [flag, given] of flags) {
      if (given !== undefined && given !== false) problems.push(`${flag}: only with ${what}`);
    }
  };
  const time = (flag: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const ms = parseTimeOption(value, nowMs);
    if (ms === undefined) problems.push(`${flag}: ${JSON.stringify(value)} is not ${TIME_ALLOWED}`);
    return ms;
  };
  const ordered = (from: [string, string | undefined, number | undefined], to: typeof from) => {
    const [fromFlag, fromText, fromMs] = from;
    const [toFlag, toText, toMs] = to;
    if (fromMs === undefined || toMs === undefined || toMs > fromMs) return true;
    problems.push(
      `${toFlag}: ${JSON.stringify(toText)} (${new Date(toMs).toISOString()}) must be after ${fromFlag} ${JSON.stringify(fromText)} (${new Date(fromMs).toISOString()})`,
    );
    return false;
  };

  // The windows looked at: a bootstrap takes the whole table as it is, the others a time range.
  const sinceMs = time('--since', input.since);
  const untilMs = time('--until', input.until);
  ordered(['--since', input.since, sinceMs], ['--until', input.until, untilMs]);
  if (mode === 'bootstrap') {
    onlyWith('--mode fill-gaps or rebuild (a bootstrap replays the whole table)', [
      ['--since', input.since],
      ['--until', input.until],
    ]);
  } else if (mode !== undefined && input.since === undefined) {
    problems.push(`--since: missing; --mode ${mode} looks at the windows from --since on: ${TIME_ALLOWED}`);
  }

  // The export: an existing one (--export), or one DynamoDB is asked for (--start-export).
  let exportUrl: string | undefined;
  let startExport: ReplayConfig['startExport'];
  const exportFlags: [string, unknown][] = [
    ['--export', input.export],
    ['--start-export', input.startExport],
    ['--export-to', input.exportTo],
    ['--export-from', input.exportFrom],
    ['--export-until', input.exportUntil],
  ];
  if (source !== undefined && source !== 'export') {
    onlyWith('--source export', exportFlags);
  } else {
    const start = input.startExport === true;
    if (input.export !== undefined && start) {
      problems.push('--export and --start-export cannot be used together: read an export, or start one');
    } else if (source === 'export' && input.export === undefined && !start) {
      problems.push(
        "--source export: give --export <url> (an export's folder) or --start-export (have DynamoDB export the table first)",
      );
    }
    if (input.export !== undefined) {
      exportUrl = folderUrl(
        '--export',
        input.export,
        problems,
        "export's folder, e.g. s3://bucket/exports/AWSDynamoDB/01234567890123-a1b2c3d4/",
      );
    }
    if (!start) {
      onlyWith('--start-export', exportFlags.slice(2));
    } else {
      const fromMs = time('--export-from', input.exportFrom);
      const toMs = time('--export-until', input.exportUntil);
      if (toMs !== undefined && toMs > nowMs) {
        problems.push(
          `--export-until: ${JSON.stringify(input.exportUntil)} (${new Date(toMs).toISOString()}) is in the future; DynamoDB exports only the past`,
        );
      }
      if (mode === 'bootstrap') {
        onlyWith('--mode fill-gaps (a full export is of one point in time: --export-until, default now)', [
          ['--export-from', input.exportFrom],
        ]);
      } else if (mode === 'fill-gaps') {
        for (const [flag, given] of [
          ['--export-from', input.exportFrom],
          ['--export-until', input.exportUntil],
        ] as const) {
          if (given === undefined) {
            problems.push(
              `${flag}: missing; --start-export with --mode fill-gaps starts an incremental export of [--export-from, --export-until): ${TIME_ALLOWED}`,
            );
          }
        }
        if (
          ordered(['--export-from', input.exportFrom, fromMs], ['--export-until', input.exportUntil, toMs]) &&
          fromMs !== undefined &&
          toMs !== undefined &&
          (toMs - fromMs < INCREMENTAL_EXPORT_MIN_MS || toMs - fromMs > INCREMENTAL_EXPORT_MAX_MS)
        ) {
          problems.push(
            `--export-from ${JSON.stringify(input.exportFrom)} to --export-until ${JSON.stringify(input.exportUntil)} is ${formatDuration(toMs - fromMs)}: DynamoDB takes an incremental export period of at least 15 minutes and at most 24 hours`,
          );
        }
      }
      const toUrl = exportToUrl(input.exportTo, destination, table, problems);
      if (mode === 'bootstrap' || mode === 'fill-gaps') {
        startExport = {
          exportType: mode === 'bootstrap' ? 'FULL_EXPORT' : 'INCREMENTAL_EXPORT',
          fromMs: mode === 'bootstrap' ? undefined : fromMs,
          toMs,
          toUrl: toUrl ?? '',
        };
      }
    }
  }

  // The scan.
  let segments: number = DEFAULTS.replay.scanSegments;
  let maxRcuPerSecond: number | undefined;
  if (source !== undefined && source !== 'scan') {
    onlyWith('--source scan', [
      ['--segments', input.segments],
      ['--max-rcu-per-second', input.maxRcuPerSecond],
    ]);
  } else {
    if (input.segments !== undefined) {
      segments = Number(input.segments.trim());
      if (!/^\d+$/.test(input.segments.trim()) || segments < 1 || segments > MAX_SCAN_SEGMENTS) {
        problems.push(
          `--segments: ${JSON.stringify(input.segments)} is not a whole number from 1 to ${MAX_SCAN_SEGMENTS} (the parallel scan's TotalSegments)`,
        );
      }
    }
    if (input.maxRcuPerSecond !== undefined) {
      maxRcuPerSecond = Number(input.maxRcuPerSecond.trim());
      if (!/^\d+(?:\.\d+)?$/.test(input.maxRcuPerSecond.trim()) || !(maxRcuPerSecond > 0)) {
        problems.push(
          `--max-rcu-per-second: ${JSON.stringify(input.maxRcuPerSecond)} is not a number above 0 (read capacity units a second)`,
        );
      }
    }
  }

  if (input.replayId !== undefined && !REPLAY_ID.test(input.replayId)) {
    problems.push(`--replay-id: ${JSON.stringify(input.replayId)} is not 1-64 of letters, digits, - and _`);
  }
  let waitForSealMs: number = DEFAULTS.replay.waitForSealMs;
  if (input.waitForSeal !== undefined) {
    const ms = parseDuration(input.waitForSeal);
    if (ms === undefined) {
      problems.push(
        `--wait-for-seal: ${JSON.stringify(input.waitForSeal)} is not a duration such as 0, 30s, 10m or 1h`,
      );
    } else waitForSealMs = ms;
  }
  let maxSegmentBytes: number = DEFAULTS.buffer.maxSegmentBytes;
  if (input.maxSegmentBytes !== undefined) {
    const bytes = parseByteSize(input.maxSegmentBytes);
    if (bytes === undefined || bytes < MIN_SEGMENT_BYTES) {
      problems.push(
        `--max-segment-bytes: ${JSON.stringify(input.maxSegmentBytes)} is not a byte size of at least 1MiB, such as 64MiB or 100MB`,
      );
    } else maxSegmentBytes = bytes;
  }
  const progress =
    input.progress === undefined
      ? input.isTty === true
        ? 'tty'
        : 'json'
      : oneOf('--progress', input.progress, REPLAY_PROGRESS);

  if (problems.length > 0) throw new ConfigError(problems);
  const what = {
    table: table!,
    mode: mode!,
    source: source!,
    sinceMs,
    untilMs,
    exportUrl,
    startExport,
    segments,
  };
  return {
    ...what,
    destination: { url: destination!, s3ForcePathStyle: input.s3ForcePathStyle === true },
    leaseTable: leaseTable!,
    maxRcuPerSecond,
    replayId: input.replayId ?? defaultReplayId(what),
    dryRun: input.dryRun === true,
    waitForSealMs,
    maxSegmentBytes,
    progress: progress!,
  };
}

/**
 * The replay id when --replay-id is not given: `<mode>-<source>-` and 12 hex digits of the sha256
 * of what is replayed (table, range, export, scan segments; not the throttle nor --dry-run). The same
 * command again gets the same id, so it resumes that replay's progress (and finds the export it
 * started: the export's client token comes from the id) instead of starting over. A relative
 * --since (`-2h`) is a new range, so a new id, on every run: give absolute times to resume.
 */
function defaultReplayId(what: {
  table: string;
  mode: ReplayMode;
  source: ReplaySource;
  sinceMs: number | undefined;
  untilMs: number | undefined;
  exportUrl: string | undefined;
  startExport: ReplayConfig['startExport'];
  segments: number;
}): string {
  const { startExport: start } = what;
  // An array keeps the order fixed: the canonical form of the same flags is the same text.
  const canonical = JSON.stringify([
    what.table,
    what.mode,
    what.source,
    what.sinceMs ?? null,
    what.untilMs ?? null,
    what.exportUrl ?? null,
    start === undefined ? null : [start.exportType, start.fromMs ?? null, start.toMs ?? null, start.toUrl],
    what.source === 'scan' ? what.segments : null,
  ]);
  const hash = createHash('sha256').update(canonical).digest('hex').slice(0, 12);
  return `${what.mode}-${what.source}-${hash}`;
}

/** An object-store folder URL (s3://, or file:/// when `s3Only` is false), ending in `/`. */
function folderUrl(
  flag: string,
  value: string,
  problems: string[],
  what: string,
  s3Only = false,
): string | undefined {
  const url = value.trim();
  try {
    if (parseDestination(url).kind !== 's3' && s3Only) {
      problems.push(`${flag}: ${JSON.stringify(value)} is not an s3:// URL; DynamoDB exports only to S3`);
      return undefined;
    }
  } catch (error) {
    const issues = error instanceof ConfigError ? error.issues : [(error as Error).message];
    problems.push(`${flag}: ${JSON.stringify(value)} is not the URL of an ${what} (${issues.join('; ')})`);
    return undefined;
  }
  return `${url.replace(/\/+$/, '')}/`;
}

/** Where --start-export has DynamoDB write: --export-to, else `<destination>/<table>/exports/` on S3. */
function exportToUrl(
  exportTo: string | undefined,
  destination: string | undefined,
  table: string | undefined,
  problems: string[],
): string | undefined {
  if (exportTo !== undefined) return folderUrl('--export-to', exportTo, problems, 'S3 folder', true);
  if (destination === undefined || table === undefined) return undefined;
  const parsed = parseDestination(destination);
  if (parsed.kind !== 's3') {
    problems.push(
      `--export-to: missing; a ${parsed.kind}:// destination cannot receive a DynamoDB export: give the s3://bucket/prefix to export to`,
    );
    return undefined;
  }
  return `s3://${parsed.bucket}/${parsed.prefix === '' ? '' : `${parsed.prefix}/`}${table}/exports/`;
}

/** What a replay did (runReplay's answer). */
export interface ReplayResult {
  replayId: string;
  /** Rows the replay wrote (all runs of it together). */
  rows: number;
  segments: number;
  /** The manifest versions it published, by window start. */
  published: { windowStartMs: number; version: number }[];
  /** True when an earlier run of the same replay had finished it: nothing was done. */
  alreadyDone: boolean;
  dryRun: boolean;
}
