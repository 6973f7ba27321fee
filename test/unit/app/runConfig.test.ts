import { describe, expect, it } from 'vitest';
import {
  parseRunConfig,
  RUN_OPTIONS,
  type RunOptionsInput,
  withEnvironment,
} from '../../../src/app/runConfig.js';
import { ConfigError } from '../../../src/support/errors.js';

const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const REQUIRED: RunOptionsInput = {
  table: 'orders',
  destination: 's3://changelog-bucket/prefix',
  leaseTable: 'changelog-leases',
};

function problems(input: RunOptionsInput, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseRunConfig(input, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('parseRunConfig', () => {
  it('fills in the defaults', () => {
    const config = parseRunConfig({ ...REQUIRED, workerId: 'worker-1' }, {});
    expect(config).toEqual({
      source: {
        table: 'orders',
        streamArn: undefined,
        leaseTable: 'changelog-leases',
        createLeaseTable: false,
        workerId: 'worker-1',
      },
      destination: {
        url: 's3://changelog-bucket/prefix',
        s3ForcePathStyle: false,
        expectedBucketOwner: undefined,
        sseKmsKeyId: undefined,
      },
      pipeline: {
        window: { windowMs: 5 * 60_000, allowedLatenessMs: 60_000 },
        buffer: {
          flushIntervalMs: 30_000,
          maxSegmentBytes: 64 * 1024 * 1024,
          maxBufferBytes: 256 * 1024 * 1024,
          maxShardsPerSegment: 48,
          compression: 'zstd',
        },
        lease: { failoverMs: 10_000 },
        stream: { streamRetentionMs: 86_400_000 },
        orphans: { orphanGraceMs: 3_600_000, orphanBatch: 100 },
      },
      operations: { metricsPort: 9464, shutdownTimeoutMs: 25_000, stallTimeoutMs: 300_000, logLevel: 'info' },
    });
  });

  it('makes up a unique worker id (host, pid, random) when none is given', () => {
    const a = parseRunConfig(REQUIRED, {}).source.workerId;
    const b = parseRunConfig(REQUIRED, {}).source.workerId;
    expect(a).toMatch(new RegExp(`-${process.pid}-[0-9a-f]{6}$`));
    expect(a).not.toBe(b);
  });

  it('reads every option from its environment variable when the flag is absent', () => {
    const env = {
      CHANGELOG_STREAM_ARN: ARN,
      CHANGELOG_DESTINATION: 'file:///var/changelog',
      CHANGELOG_LEASE_TABLE: 'leases-from-env',
      CHANGELOG_CREATE_LEASE_TABLE: 'true',
      CHANGELOG_WINDOW: '15m',
      CHANGELOG_ALLOWED_LATENESS: '2m',
      CHANGELOG_FLUSH_INTERVAL: '10s',
      CHANGELOG_MAX_SEGMENT_BYTES: '8MiB',
      CHANGELOG_MAX_BUFFER_BYTES: '100MB',
      CHANGELOG_MAX_SHARDS_PER_SEGMENT: '20',
      CHANGELOG_COMPRESSION: 'snappy',
      CHANGELOG_WORKER_ID: 'env-worker',
      CHANGELOG_FAILOVER: '20s',
      CHANGELOG_ORPHAN_GRACE: '2h',
      CHANGELOG_METRICS_PORT: '9100',
      CHANGELOG_SHUTDOWN_TIMEOUT: '50s',
      CHANGELOG_STALL_TIMEOUT: '15m',
      CHANGELOG_S3_FORCE_PATH_STYLE: '1',
      CHANGELOG_EXPECTED_BUCKET_OWNER: '123456789012',
      CHANGELOG_SSE_KMS_KEY_ID: 'alias/changelog',
      CHANGELOG_LOG_LEVEL: 'debug',
    };
    expect(parseRunConfig({}, env)).toEqual({
      source: {
        table: 'orders', // from the stream ARN
        streamArn: ARN,
        leaseTable: 'leases-from-env',
        createLeaseTable: true,
        workerId: 'env-worker',
      },
      destination: {
        url: 'file:///var/changelog',
        s3ForcePathStyle: true,
        expectedBucketOwner: '123456789012',
        sseKmsKeyId: 'alias/changelog',
      },
      pipeline: {
        window: { windowMs: 15 * 60_000, allowedLatenessMs: 120_000 },
        buffer: {
          flushIntervalMs: 10_000,
          maxSegmentBytes: 8 * 1024 * 1024,
          maxBufferBytes: 100_000_000,
          maxShardsPerSegment: 20,
          compression: 'snappy',
        },
        lease: { failoverMs: 20_000 },
        stream: { streamRetentionMs: 86_400_000 },
        orphans: { orphanGraceMs: 7_200_000, orphanBatch: 100 },
      },
      operations: {
        metricsPort: 9100,
        shutdownTimeoutMs: 50_000,
        stallTimeoutMs: 900_000,
        logLevel: 'debug',
      },
    });
    // Every option has an environment variable, and the test above set all of them but one.
    expect(Object.values(RUN_OPTIONS).map((o) => o.env)).toEqual(
      expect.arrayContaining(['CHANGELOG_TABLE', ...Object.keys(env)]),
    );
  });

  it('lets flags win over the environment; empty variables count as unset', () => {
    const env = {
      CHANGELOG_TABLE: 'env-table',
      CHANGELOG_WINDOW: '10m',
      CHANGELOG_COMPRESSION: 'none',
      CHANGELOG_LOG_LEVEL: '',
      CHANGELOG_CREATE_LEASE_TABLE: 'true',
    };
    const config = parseRunConfig(
      { ...REQUIRED, table: 'flag-table', window: '1m', compression: 'zstd', createLeaseTable: false },
      env,
    );
    expect(config).toMatchObject({
      source: { table: 'flag-table', createLeaseTable: false },
      pipeline: { window: { windowMs: 60_000 }, buffer: { compression: 'zstd' } },
      operations: { logLevel: 'info' },
    });
    expect(
      withEnvironment({ window: '1h' }, { CHANGELOG_WINDOW: '5m', CHANGELOG_FAILOVER: '3s' }),
    ).toMatchObject({ window: '1h', failover: '3s', flushInterval: '30s' });
  });

  it('derives the table from --stream-arn, and refuses a --table that contradicts it', () => {
    expect(parseRunConfig({ ...REQUIRED, table: undefined, streamArn: ARN }, {}).source.table).toBe('orders');
    expect(parseRunConfig({ ...REQUIRED, table: 'orders', streamArn: ARN }, {}).source.streamArn).toBe(ARN);
    expect(problems({ ...REQUIRED, table: 'other', streamArn: ARN })).toEqual([
      `--table (CHANGELOG_TABLE) is "other" but --stream-arn (CHANGELOG_STREAM_ARN) belongs to table orders`,
    ]);
    expect(problems({ ...REQUIRED, table: undefined })).toEqual([
      '--table (CHANGELOG_TABLE) or --stream-arn (CHANGELOG_STREAM_ARN) is required',
    ]);
  });

  it.each([
    ['1m', 60_000],
    ['5m', 300_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['6h', 21_600_000],
    ['24h', 86_400_000],
    ['1d', 86_400_000],
    ['90m', 5_400_000],
    ['1m30s', 90_000],
  ])('accepts the window %s (it divides a day)', (window, ms) => {
    expect(parseRunConfig({ ...REQUIRED, window }, {}).pipeline.window.windowMs).toBe(ms);
  });

  it.each([
    ['7m', /must divide a day evenly/],
    ['25m', /must divide a day evenly/],
    ['7h', /must divide a day evenly/],
    ['2h30m', /must divide a day evenly/],
    ['30s', /must be between 1m and 1d/],
    ['25h', /must be between 1m and 1d/],
    ['five minutes', /expected a duration such as/],
  ])('refuses the window %s, naming the option, its variable and what is allowed', (window, why) => {
    const issues = problems({ ...REQUIRED, window });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(`--window (CHANGELOG_WINDOW) is ${JSON.stringify(window)}`);
    expect(issues[0]).toMatch(why);
  });

  it('names a bad value that came from the environment the same way', () => {
    const issues = problems(REQUIRED, { CHANGELOG_WINDOW: '7m', CHANGELOG_COMPRESSION: 'lz4' });
    expect(issues).toEqual([
      expect.stringMatching(/^--window \(CHANGELOG_WINDOW\) is "7m": must divide a day evenly/),
      '--compression (CHANGELOG_COMPRESSION) is "lz4": one of zstd, snappy, none',
    ]);
  });

  it('reports every problem at once in one ConfigError', () => {
    let error: unknown;
    try {
      parseRunConfig(
        {
          streamArn: 'arn:aws:dynamodb:us-east-1:123:table/x',
          destination: 'ftp://somewhere',
          leaseTable: 'x',
          window: '7m',
          allowedLateness: 'soon',
          flushInterval: '50ms',
          maxSegmentBytes: '10KB',
          maxBufferBytes: 'lots',
          maxShardsPerSegment: '99',
          compression: 'lz4',
          workerId: 'has space',
          failover: '500ms',
          orphanGrace: '31d',
          metricsPort: '70000',
          shutdownTimeout: '0s',
          stallTimeout: 'never',
          createLeaseTable: 'yes' as unknown as boolean,
          s3ForcePathStyle: 'maybe' as unknown as boolean,
          logLevel: 'loud',
        },
        {},
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    const expected: [string, RegExp][] = [
      ['--stream-arn (CHANGELOG_STREAM_ARN)', /expected a DynamoDB Stream ARN/],
      ['--table (CHANGELOG_TABLE)', /is required/],
      ['--destination (CHANGELOG_DESTINATION)', /unsupported scheme.*expected s3:\/\/<bucket>/],
      ['--lease-table (CHANGELOG_LEASE_TABLE)', /3-255 of A-Z a-z 0-9 _ \. -/],
      ['--window (CHANGELOG_WINDOW)', /must divide a day evenly/],
      ['--allowed-lateness (CHANGELOG_ALLOWED_LATENESS)', /expected a duration/],
      ['--flush-interval (CHANGELOG_FLUSH_INTERVAL)', /must be between 100ms and 1h/],
      ['--failover (CHANGELOG_FAILOVER)', /must be between 1s and 10m/],
      ['--orphan-grace (CHANGELOG_ORPHAN_GRACE)', /must be between 0s and 30d/],
      ['--metrics-port (CHANGELOG_METRICS_PORT)', /is "70000": a TCP port, 1-65535 \(0 picks a free one\)/],
      ['--shutdown-timeout (CHANGELOG_SHUTDOWN_TIMEOUT)', /must be between 1s and 1h/],
      ['--stall-timeout (CHANGELOG_STALL_TIMEOUT)', /expected a duration/],
      ['--max-segment-bytes (CHANGELOG_MAX_SEGMENT_BYTES)', /must be at least 1048576 bytes/],
      ['--max-buffer-bytes (CHANGELOG_MAX_BUFFER_BYTES)', /expected a byte size/],
      ['--max-shards-per-segment (CHANGELOG_MAX_SHARDS_PER_SEGMENT)', /is "99": a whole number from 1 to 98/],
      ['--compression (CHANGELOG_COMPRESSION)', /one of zstd, snappy, none/],
      ['--log-level (CHANGELOG_LOG_LEVEL)', /one of debug, info, warn, error, silent/],
      ['--create-lease-table (CHANGELOG_CREATE_LEASE_TABLE)', /true or false/],
      ['--s3-force-path-style (CHANGELOG_S3_FORCE_PATH_STYLE)', /true or false/],
      ['--worker-id (CHANGELOG_WORKER_ID)', /printable ASCII/],
    ];
    for (const [option, why] of expected) {
      const found = issues.filter((i) => i.startsWith(option));
      expect(found, option).toHaveLength(1);
      expect(found[0]).toMatch(why);
    }
    expect(issues).toHaveLength(expected.length);
    // The message lists them all too.
    for (const issue of issues) expect((error as ConfigError).message).toContain(issue);
  });

  it('requires the destination and the lease table, and a buffer at least one segment large', () => {
    expect(problems({ table: 'orders' })).toEqual([
      '--destination (CHANGELOG_DESTINATION) is required: s3://bucket/prefix or file:///dir',
      '--lease-table (CHANGELOG_LEASE_TABLE) is required (the DynamoDB table for leases and the segment registry)',
    ]);
    expect(problems({ ...REQUIRED, maxSegmentBytes: '128MiB', maxBufferBytes: '64MiB' })).toEqual([
      '--max-buffer-bytes (CHANGELOG_MAX_BUFFER_BYTES) (64MiB) must be at least --max-segment-bytes (CHANGELOG_MAX_SEGMENT_BYTES) (128MiB)',
    ]);
    expect(problems({ ...REQUIRED, destination: 'file:relative/dir' })[0]).toMatch(
      /^--destination \(CHANGELOG_DESTINATION\) is "file:relative\/dir": .*absolute file URL/,
    );
  });
});
