import type { SegmentCompression } from '../changelog/parquetEncoder.js';
import type { LogLevel } from '../support/logger.js';

/**
 * The settings, grouped by concern, and THE one source of their defaults. Each component receives
 * whole groups (the committer `window` and `buffer`, the sealer `window` and `orphans`, ...), never
 * fields copied one by one; `run`'s flags (app/runConfig.ts) fill these groups, and their --help
 * defaults are printed from DEFAULTS. Adding a setting: a field in its group, its default here,
 * its flag in RUN_OPTIONS, and the code that uses it.
 */

/** How time is cut into windows, and how long a window waits for late records before it is sealed. */
export interface WindowConfig {
  /** Window size, 1 min to 24 h, dividing a day. */
  windowMs: number;
  /** A window is closed once the watermark passes its end plus this. */
  allowedLatenessMs: number;
}

/** When buffered rows become a segment, and how much the committer holds in memory. */
export interface BufferConfig {
  /** Flush a buffer once its oldest row waited this long. */
  flushIntervalMs: number;
  /** Flush a buffer at this many uncompressed bytes. */
  maxSegmentBytes: number;
  /** Readers pause while this much is buffered. */
  maxBufferBytes: number;
  /** Most shards in one segment (one commit transaction holds a lease item per shard). */
  maxShardsPerSegment: number;
  compression: SegmentCompression;
}

/** Leases (shard leases and the sealer lease). */
export interface LeaseConfig {
  /** A lease not renewed for this long is taken over; holders renew every third of it. */
  failoverMs: number;
}

/** The source stream. */
export interface StreamConfig {
  /**
   * How long the stream keeps records (24 h on DynamoDB; shorter only against a test emulator).
   * A shard that starts reading after a record this old may have lost records to a trim; the
   * first window state starts one window before it.
   */
  streamRetentionMs: number;
}

/** Deleting segment objects no manifest lists (failed or refused commits). */
export interface OrphanConfig {
  /** Unreferenced objects younger than this are left alone. */
  orphanGraceMs: number;
  /** Most objects deleted per sealer cycle. */
  orphanBatch: number;
}

/** Where the changelog is written, and the S3 settings for an s3:// destination. */
export interface DestinationConfig {
  /** s3://bucket/prefix or file:///dir */
  url: string;
  s3ForcePathStyle: boolean;
  expectedBucketOwner: string | undefined;
  sseKmsKeyId: string | undefined;
}

/** The daemon's own operation: metrics server, shutdown, stall detection, logs. */
export interface OperationsConfig {
  /** 0 picks a free port. */
  metricsPort: number;
  shutdownTimeoutMs: number;
  stallTimeoutMs: number;
  logLevel: LogLevel;
}

/** What a reader of the changelog (`changes`) may hold in memory. */
export interface ReadConfig {
  /**
   * `changes --latest`: the most segment bytes (compressed, as fetched) kept from the merge (pass
   * 1) until their winners are written (pass 2). Segments beyond it are fetched again for pass 2,
   * and checked against their manifest entry again.
   */
  latestKeepBytes: number;
}

/** `replay`'s settings that have a default (app/replayConfig.ts fills the rest from its flags). */
export interface ReplayDefaults {
  /** `--source scan`: TotalSegments of the parallel Scan (`--segments`). */
  scanSegments: number;
  /** How long `replay` waits for the windows it writes into to be sealed (`--wait-for-seal`). */
  waitForSealMs: number;
  /**
   * A scan's rows say a time this much before the scan started: an eventually consistent Scan may
   * read an item as it was just before a write, and the replay's clock may run ahead of
   * DynamoDB's; a write in that margin then follows the snapshot (the stream row wins) instead of
   * losing to a stale or too-late snapshot row.
   */
  scanSnapshotMarginMs: number;
}

/** What a worker of the pipeline is configured with (ingest/changelogWorker.ts). */
export interface PipelineConfig {
  window: WindowConfig;
  buffer: BufferConfig;
  lease: LeaseConfig;
  stream: StreamConfig;
  orphans: OrphanConfig;
}

const MIB = 1024 * 1024;

/** Every default, once. */
export const DEFAULTS = {
  window: { windowMs: 5 * 60_000, allowedLatenessMs: 60_000 },
  buffer: {
    flushIntervalMs: 30_000,
    maxSegmentBytes: 64 * MIB,
    maxBufferBytes: 256 * MIB,
    maxShardsPerSegment: 48,
    compression: 'zstd',
  },
  lease: { failoverMs: 10_000 },
  stream: { streamRetentionMs: 24 * 3_600_000 },
  orphans: { orphanGraceMs: 3_600_000, orphanBatch: 100 },
  operations: { metricsPort: 9464, shutdownTimeoutMs: 25_000, stallTimeoutMs: 5 * 60_000, logLevel: 'info' },
  // Four default-sized (64 MiB) segments: a small range is fetched once; a larger one costs a
  // second GET of the segments beyond it rather than memory that grows with the range.
  read: { latestKeepBytes: 256 * MIB },
  // As many scan segments as the scan reads at once (SCAN_DEFAULTS.concurrency in tableScan.ts):
  // a small table is read in parallel, a large one is given more with --segments. Not waiting for
  // the seal by default: a replay into windows still open is refused at once, with the reason.
  // Five seconds: well above DynamoDB's replication lag (typically under a second) and the clock
  // skew of a host synchronised by NTP.
  replay: { scanSegments: 4, waitForSealMs: 0, scanSnapshotMarginMs: 5_000 },
} as const satisfies PipelineConfig & {
  operations: OperationsConfig;
  read: ReadConfig;
  replay: ReplayDefaults;
};

/** Overrides for some fields of some groups; the rest from DEFAULTS. */
export type PipelineOverrides = { [G in keyof PipelineConfig]?: Partial<PipelineConfig[G]> };

/** A full pipeline configuration: DEFAULTS with the given fields replaced. */
export function pipelineConfig(overrides: PipelineOverrides = {}): PipelineConfig {
  return {
    window: { ...DEFAULTS.window, ...overrides.window },
    buffer: { ...DEFAULTS.buffer, ...overrides.buffer },
    lease: { ...DEFAULTS.lease, ...overrides.lease },
    stream: { ...DEFAULTS.stream, ...overrides.stream },
    orphans: { ...DEFAULTS.orphans, ...overrides.orphans },
  };
}
