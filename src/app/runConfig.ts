import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { tableOfStreamArn, windowSizeProblem } from '../changelog/layout.js';
import { SEGMENT_COMPRESSIONS, type SegmentCompression } from '../changelog/parquetEncoder.js';
import {
  DEFAULTS,
  type DestinationConfig,
  type OperationsConfig,
  type PipelineConfig,
} from '../coordination/config.js';
import { parseDestination } from '../coordination/objectStore.js';
import { formatByteSize, formatDuration, parseByteSize, parseDuration } from '../support/duration.js';
import { ConfigError } from '../support/errors.js';
import { LOG_LEVELS, type LogLevel } from '../support/logger.js';
import { COMMON_OPTIONS, STREAM_ARN, TABLE_NAME } from './commonOptions.js';

/** Raw option values as given (flags, else environment, else defaults): all strings. */
export interface RunOptionsInput {
  table?: string | undefined;
  streamArn?: string | undefined;
  destination?: string | undefined;
  leaseTable?: string | undefined;
  createLeaseTable?: boolean | undefined;
  window?: string | undefined;
  allowedLateness?: string | undefined;
  flushInterval?: string | undefined;
  maxSegmentBytes?: string | undefined;
  maxBufferBytes?: string | undefined;
  maxShardsPerSegment?: string | undefined;
  compression?: string | undefined;
  workerId?: string | undefined;
  failover?: string | undefined;
  orphanGrace?: string | undefined;
  streamRetention?: string | undefined;
  metricsPort?: string | undefined;
  shutdownTimeout?: string | undefined;
  stallTimeout?: string | undefined;
  s3ForcePathStyle?: boolean | undefined;
  expectedBucketOwner?: string | undefined;
  sseKmsKeyId?: string | undefined;
  logLevel?: string | undefined;
}

/** Which table and stream are read, and where the fleet's leases live. */
export interface SourceConfig {
  table: string;
  /** Read only this stream; undefined follows the table's streams. */
  streamArn: string | undefined;
  /** The DynamoDB table for leases and the segment registry. */
  leaseTable: string;
  createLeaseTable: boolean;
  /** This worker's lease owner id. */
  workerId: string;
}

/** `run`'s configuration: whole groups, each handed to the code that uses it. */
export interface RunConfig {
  source: SourceConfig;
  destination: DestinationConfig;
  pipeline: PipelineConfig;
  operations: OperationsConfig;
}

/** Each option: its flag, argument, environment variable, default and --help text. */
export const RUN_OPTIONS = {
  table: {
    ...COMMON_OPTIONS.table,
    help: 'source DynamoDB table (its streams are followed across disable / re-enable)',
  },
  streamArn: {
    flag: '--stream-arn',
    env: 'CHANGELOG_STREAM_ARN',
    arg: '<arn>',
    help: "read only this stream instead of following the table's streams",
  },
  destination: COMMON_OPTIONS.destination,
  leaseTable: COMMON_OPTIONS.leaseTable,
  createLeaseTable: {
    flag: '--create-lease-table',
    env: 'CHANGELOG_CREATE_LEASE_TABLE',
    help: 'create the lease table if it does not exist',
  },
  window: {
    flag: '--window',
    env: 'CHANGELOG_WINDOW',
    default: formatDuration(DEFAULTS.window.windowMs),
    arg: '<duration>',
    help: 'window size, 1m to 24h, dividing a day',
  },
  allowedLateness: {
    flag: '--allowed-lateness',
    env: 'CHANGELOG_ALLOWED_LATENESS',
    default: formatDuration(DEFAULTS.window.allowedLatenessMs),
    arg: '<duration>',
    help: 'wait past a window end before sealing',
  },
  flushInterval: {
    flag: '--flush-interval',
    env: 'CHANGELOG_FLUSH_INTERVAL',
    default: formatDuration(DEFAULTS.buffer.flushIntervalMs),
    arg: '<duration>',
    help: 'flush a buffer once its oldest row waited this long',
  },
  maxSegmentBytes: {
    flag: '--max-segment-bytes',
    env: 'CHANGELOG_MAX_SEGMENT_BYTES',
    default: formatByteSize(DEFAULTS.buffer.maxSegmentBytes),
    arg: '<size>',
    help: 'flush a buffer at this many uncompressed bytes',
  },
  maxBufferBytes: {
    flag: '--max-buffer-bytes',
    env: 'CHANGELOG_MAX_BUFFER_BYTES',
    default: formatByteSize(DEFAULTS.buffer.maxBufferBytes),
    arg: '<size>',
    help: 'pause reading while this much is buffered',
  },
  maxShardsPerSegment: {
    flag: '--max-shards-per-segment',
    env: 'CHANGELOG_MAX_SHARDS_PER_SEGMENT',
    default: String(DEFAULTS.buffer.maxShardsPerSegment),
    arg: '<n>',
    help: 'most shards in one segment (its commit is one transaction of a lease item per shard + 2)',
  },
  compression: {
    flag: '--compression',
    env: 'CHANGELOG_COMPRESSION',
    default: DEFAULTS.buffer.compression,
    arg: '<codec>',
    help: 'zstd, snappy or none',
  },
  workerId: {
    flag: '--worker-id',
    env: 'CHANGELOG_WORKER_ID',
    arg: '<id>',
    help: "this worker's lease owner id (default host-pid-random)",
  },
  failover: {
    flag: '--failover',
    env: 'CHANGELOG_FAILOVER',
    default: formatDuration(DEFAULTS.lease.failoverMs),
    arg: '<duration>',
    help: 'a lease not renewed for this long is taken over',
  },
  orphanGrace: {
    flag: '--orphan-grace',
    env: 'CHANGELOG_ORPHAN_GRACE',
    default: formatDuration(DEFAULTS.orphans.orphanGraceMs),
    arg: '<duration>',
    help: 'unreferenced segment objects older than this are deleted',
  },
  streamRetention: {
    flag: '--stream-retention',
    env: 'CHANGELOG_STREAM_RETENTION',
    default: formatDuration(DEFAULTS.stream.streamRetentionMs),
    arg: '<duration>',
    help: 'how long the stream keeps records (24h on DynamoDB: change it only for a test emulator)',
  },
  metricsPort: {
    flag: '--metrics-port',
    env: 'CHANGELOG_METRICS_PORT',
    default: String(DEFAULTS.operations.metricsPort),
    arg: '<port>',
    help: 'serve /metrics, /healthz and /readyz on this port',
  },
  shutdownTimeout: {
    flag: '--shutdown-timeout',
    env: 'CHANGELOG_SHUTDOWN_TIMEOUT',
    default: formatDuration(DEFAULTS.operations.shutdownTimeoutMs),
    arg: '<duration>',
    help: 'on SIGTERM, exit within this long (keep it under the orchestrator grace)',
  },
  stallTimeout: {
    flag: '--stall-timeout',
    env: 'CHANGELOG_STALL_TIMEOUT',
    default: formatDuration(DEFAULTS.operations.stallTimeoutMs),
    arg: '<duration>',
    help: 'a shard without progress this long is stalled (metric, error log, /readyz)',
  },
  s3ForcePathStyle: COMMON_OPTIONS.s3ForcePathStyle,
  expectedBucketOwner: COMMON_OPTIONS.expectedBucketOwner,
  sseKmsKeyId: COMMON_OPTIONS.sseKmsKeyId,
  logLevel: {
    flag: '--log-level',
    env: 'CHANGELOG_LOG_LEVEL',
    default: DEFAULTS.operations.logLevel,
    arg: '<level>',
    help: 'debug, info, warn, error or silent',
  },
} as const;

type Name = keyof typeof RUN_OPTIONS;

/** Fills in environment variables and defaults for options not given as flags. */
export function withEnvironment(
  input: RunOptionsInput,
  env: NodeJS.ProcessEnv = process.env,
): RunOptionsInput {
  const out: Record<string, unknown> = { ...input };
  for (const [name, spec] of Object.entries(RUN_OPTIONS) as [Name, (typeof RUN_OPTIONS)[Name]][]) {
    if (out[name] !== undefined) continue;
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      out[name] = fromEnv;
    } else if ('default' in spec) out[name] = spec.default;
  }
  return out as RunOptionsInput;
}

const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
  .transform((v) => v === true || v === 'true' || v === '1');

/**
 * Validates the run options in one place. Every problem names the option (flag and environment
 * variable), the value given and what is allowed; all of them are reported together.
 */
export function parseRunConfig(input: RunOptionsInput, env: NodeJS.ProcessEnv = process.env): RunConfig {
  const raw = withEnvironment(input, env);
  const problems: string[] = [];
  const name = (n: Name) => `${RUN_OPTIONS[n].flag} (${RUN_OPTIONS[n].env})`;
  const bad = (n: Name, value: unknown, allowed: string) =>
    problems.push(`${name(n)} is ${JSON.stringify(value)}: ${allowed}`);

  const duration = (n: Name, min: number, max: number): number => {
    const value = raw[n] as string;
    const ms = parseDuration(String(value));
    if (ms === undefined) bad(n, value, 'expected a duration such as 500ms, 30s, 5m, 1h');
    else if (ms < min || ms > max)
      bad(n, value, `must be between ${formatDuration(min)} and ${formatDuration(max)}`);
    return ms ?? 0;
  };
  const size = (n: Name, min: number): number => {
    const value = raw[n] as string;
    const bytes = parseByteSize(String(value));
    if (bytes === undefined) bad(n, value, 'expected a byte size such as 67108864, 64MiB or 100MB');
    else if (bytes < min) bad(n, value, `must be at least ${min} bytes`);
    return bytes ?? 0;
  };

  let table = raw.table;
  const streamArn = raw.streamArn;
  if (streamArn !== undefined && !STREAM_ARN.test(streamArn)) {
    bad(
      'streamArn',
      streamArn,
      'expected a DynamoDB Stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)',
    );
  }
  if (table === undefined && streamArn !== undefined) table = tableOfStreamArn(streamArn);
  if (table === undefined) problems.push(`${name('table')} or ${name('streamArn')} is required`);
  else if (!TABLE_NAME.test(table))
    bad('table', table, 'a DynamoDB table name is 3-255 of A-Z a-z 0-9 _ . -');
  else if (
    streamArn !== undefined &&
    tableOfStreamArn(streamArn) !== undefined &&
    tableOfStreamArn(streamArn) !== table
  ) {
    problems.push(
      `${name('table')} is ${JSON.stringify(table)} but ${name('streamArn')} belongs to table ${tableOfStreamArn(streamArn)}`,
    );
  }

  const destination = raw.destination;
  if (destination === undefined)
    problems.push(`${name('destination')} is required: s3://bucket/prefix or file:///dir`);
  else {
    try {
      parseDestination(destination);
    } catch (error) {
      bad('destination', destination, error instanceof ConfigError ? error.issues.join('; ') : String(error));
    }
  }
  const leaseTable = raw.leaseTable;
  if (leaseTable === undefined)
    problems.push(
      `${name('leaseTable')} is required (the DynamoDB table for leases and the segment registry)`,
    );
  else if (!TABLE_NAME.test(leaseTable))
    bad('leaseTable', leaseTable, 'a DynamoDB table name is 3-255 of A-Z a-z 0-9 _ . -');

  const windowMs = duration('window', 60_000, 86_400_000);
  if (windowMs >= 60_000 && windowMs <= 86_400_000) {
    const problem = windowSizeProblem(windowMs);
    if (problem !== undefined) bad('window', raw.window, problem);
  }
  const allowedLatenessMs = duration('allowedLateness', 0, 86_400_000);
  const flushIntervalMs = duration('flushInterval', 100, 3_600_000);
  const failoverMs = duration('failover', 1000, 600_000);
  const orphanGraceMs = duration('orphanGrace', 0, 30 * 86_400_000);
  const streamRetentionMs = duration('streamRetention', 1000, 7 * 86_400_000);
  const shutdownTimeoutMs = duration('shutdownTimeout', 1000, 3_600_000);
  const stallTimeoutMs = duration('stallTimeout', 10_000, 86_400_000);
  const metricsPortRaw = String(raw.metricsPort);
  const metricsPort = /^\d{1,5}$/.test(metricsPortRaw) ? Number(metricsPortRaw) : Number.NaN;
  if (!(metricsPort >= 0 && metricsPort <= 65535)) {
    bad('metricsPort', raw.metricsPort, 'a TCP port, 1-65535 (0 picks a free one)');
  }
  const maxSegmentBytes = size('maxSegmentBytes', 1024 * 1024);
  const maxBufferBytes = size('maxBufferBytes', 1024 * 1024);
  if (maxSegmentBytes > 0 && maxBufferBytes > 0 && maxBufferBytes < maxSegmentBytes) {
    problems.push(
      `${name('maxBufferBytes')} (${raw.maxBufferBytes}) must be at least ${name('maxSegmentBytes')} (${raw.maxSegmentBytes})`,
    );
  }
  const maxShardsPerSegment = Number(raw.maxShardsPerSegment);
  if (!/^\d+$/.test(String(raw.maxShardsPerSegment)) || maxShardsPerSegment < 1 || maxShardsPerSegment > 98) {
    // DynamoDB transactions hold at most 100 items: the segment item, the window check, one per shard.
    bad('maxShardsPerSegment', raw.maxShardsPerSegment, 'a whole number from 1 to 98');
  }
  const compression = raw.compression as SegmentCompression;
  if (!SEGMENT_COMPRESSIONS.includes(compression))
    bad('compression', compression, `one of ${SEGMENT_COMPRESSIONS.join(', ')}`);
  const logLevel = raw.logLevel as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) bad('logLevel', logLevel, `one of ${LOG_LEVELS.join(', ')}`);
  const flags: Record<'createLeaseTable' | 's3ForcePathStyle', boolean> = {
    createLeaseTable: false,
    s3ForcePathStyle: false,
  };
  for (const n of ['createLeaseTable', 's3ForcePathStyle'] as const) {
    if (raw[n] === undefined) continue;
    const parsed = bool.safeParse(raw[n]);
    if (parsed.success) flags[n] = parsed.data;
    else bad(n, raw[n], 'true or false');
  }
  const workerId = raw.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  if (!/^[\x21-\x7e]{1,128}$/.test(workerId))
    bad('workerId', workerId, '1-128 printable ASCII characters, no spaces');

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    source: {
      table: table!,
      streamArn,
      leaseTable: leaseTable!,
      createLeaseTable: flags.createLeaseTable,
      workerId,
    },
    destination: {
      url: destination!,
      s3ForcePathStyle: flags.s3ForcePathStyle,
      expectedBucketOwner: raw.expectedBucketOwner,
      sseKmsKeyId: raw.sseKmsKeyId,
    },
    pipeline: {
      window: { windowMs, allowedLatenessMs },
      buffer: {
        flushIntervalMs,
        maxSegmentBytes,
        maxBufferBytes,
        maxShardsPerSegment,
        compression,
      },
      lease: { failoverMs },
      stream: { streamRetentionMs },
      orphans: { orphanGraceMs, orphanBatch: DEFAULTS.orphans.orphanBatch },
    },
    operations: { metricsPort, shutdownTimeoutMs, stallTimeoutMs, logLevel },
  };
}
