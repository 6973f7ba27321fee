import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type {
  CommitFailureKind,
  CommittedSegment,
  LeaseChange,
  PipelineObserver,
  WindowSealed,
} from '../coordination/pipelineObserver.js';

const P = 'dynamodb_changelog_';

/** Live values read at scrape time (no event marks their change). */
export interface MetricsSources {
  bufferedBytes?: () => number;
  bufferedWindows?: () => number;
  stalledShards?: () => { shardId: string; reason: string }[];
}

/** A point-in-time summary of the counters, for the local stack's status line and tests. */
export interface MetricsSnapshot {
  recordsRead: number;
  bytesRead: number;
  recordsWritten: number;
  bytesWritten: number;
  segmentsCommitted: number;
  windowsSealed: number;
  leasesHeld: number;
  bufferedBytes: number;
  bufferedWindows: number;
  /** Largest time behind the tip over this worker's shards, seconds. */
  maxBehindSeconds: number;
  watermarkMs: number | undefined;
  gaps: number;
  stalledShards: number;
}

/**
 * The daemon's Prometheus metrics (prom-client, own registry). It listens to pipeline events;
 * per-shard series are removed when the shard leaves this worker, so shard roll-over (every ~4 h)
 * does not grow the series count without bound.
 */
export class ChangelogMetrics implements PipelineObserver {
  readonly registry = new Registry();
  private readonly sources: MetricsSources = {};
  /** Seconds behind the tip per shard with a series: the shards to drop when they leave. */
  private readonly behind = new Map<string, number>();
  private watermarkMs: number | undefined;

  private readonly recordsRead = this.counter('records_read_total', 'Stream records read (GetRecords).');
  private readonly bytesRead = this.counter('read_bytes_total', 'GetRecords response bytes read.');
  private readonly getRecordsCalls = new Counter({
    name: `${P}getrecords_calls_total`,
    help: 'GetRecords calls by outcome (ok or the error code).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  private readonly getRecordsSeconds = new Histogram({
    name: `${P}getrecords_duration_seconds`,
    help: 'GetRecords call latency.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: `${P}errors_total`,
    help: 'Errors by kind (GetRecords error codes, reader failures, commit failures).',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  private readonly iteratorAge = new Gauge({
    name: `${P}shard_iterator_age_seconds`,
    help: 'Per shard: age of the newest record read (0 once the reader is at the tip).',
    labelNames: ['shard_id'],
    registers: [this.registry],
  });
  private readonly leasesHeld = this.gauge('leases_held', 'Shard leases this worker holds.');
  private readonly leaseChanges = new Counter({
    name: `${P}lease_changes_total`,
    help: 'Lease changes on this worker: taken, stolen, lost, released, ended (shard fully read).',
    labelNames: ['change'],
    registers: [this.registry],
  });
  private readonly readableUnowned = this.gauge(
    'leases_available',
    'Readable shard leases with no live owner (waiting to be taken).',
  );
  private readonly recordsWritten = this.counter('records_written_total', 'Records in committed segments.');
  private readonly bytesWritten = this.counter('written_bytes_total', 'Bytes of committed segment objects.');
  private readonly segments = this.counter('segments_committed_total', 'Segments committed.');
  private readonly lateRecords = this.counter(
    'late_records_total',
    'Records committed to a later window than their event time (their window was already closed).',
  );
  private readonly commitSeconds = new Histogram({
    name: `${P}commit_duration_seconds`,
    help: 'Encode + write + commit of one segment.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly commitFailures = new Counter({
    name: `${P}commit_failures_total`,
    help: 'Commits that lost a transaction race (conflict), were refused, failed to write, or failed the commit self-check (self-check: rows that do not account; never committed).',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  private readonly gaps = this.counter('gaps_total', 'Trimmed-data gaps recorded (data lost before read).');
  private readonly sealed = this.counter('windows_sealed_total', 'Windows sealed (manifest written).');
  private readonly sealedIncomplete = this.counter(
    'windows_sealed_incomplete_total',
    'Windows sealed with gaps (complete: false).',
  );
  private readonly watermarkGauge = this.gauge(
    'watermark_seconds',
    'Event-time watermark (Unix seconds) the sealer last published.',
  );
  private readonly sealerLeader = this.gauge('sealer_leader', '1 while this worker holds the sealer lease.');
  private readonly oldestUnsealed = this.gauge(
    'oldest_unsealed_window_age_seconds',
    'Seconds since the end of the oldest window not yet sealed (sealer leader only; 0 elsewhere).',
  );
  private readonly orphans = this.counter('orphans_deleted_total', 'Unreferenced segment objects deleted.');
  private sealerWindowMs = 0;
  private sealedThroughMs: number | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: P });
    const sources = this.sources;
    new Gauge({
      name: `${P}buffered_bytes`,
      help: 'Uncompressed bytes buffered and not yet committed (bounded by --max-buffer-bytes).',
      registers: [this.registry],
      collect() {
        this.set(sources.bufferedBytes?.() ?? 0);
      },
    });
    new Gauge({
      name: `${P}buffered_windows`,
      help: 'Windows with rows buffered on this worker.',
      registers: [this.registry],
      collect() {
        this.set(sources.bufferedWindows?.() ?? 0);
      },
    });
    new Gauge({
      name: `${P}stalled_shards`,
      help: 'Shards stalled now (see shard_stalled); /readyz is false while this is above 0.',
      registers: [this.registry],
      collect() {
        this.set(sources.stalledShards?.().length ?? 0);
      },
    });
    new Gauge({
      name: `${P}shard_stalled`,
      help: 'Per shard: 1 while it is stalled (reason: no-progress, or not-read: readable, nobody reads it).',
      labelNames: ['shard_id', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of sources.stalledShards?.() ?? [])
          this.set({ shard_id: s.shardId, reason: s.reason }, 1);
      },
    });
  }

  /** Connects the live values read at scrape time. */
  bind(sources: MetricsSources): void {
    Object.assign(this.sources, sources);
  }

  /** Prometheus text exposition of every metric. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    this.refreshOldestUnsealed();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  getRecords(_shardId: string, outcome: string, seconds: number): void {
    this.getRecordsCalls.inc({ outcome });
    this.getRecordsSeconds.observe(seconds);
    if (outcome !== 'ok') this.errors.inc({ kind: outcome });
  }

  pageConsumed(page: {
    shardId: string;
    records: number;
    bytes: number;
    lastEventTimeMs: number | undefined;
    caughtUp: boolean;
  }): void {
    this.recordsRead.inc(page.records);
    this.bytesRead.inc(page.bytes);
    let behindSeconds: number | undefined;
    if (page.records > 0 && page.lastEventTimeMs !== undefined) {
      behindSeconds = Math.max(0, (Date.now() - page.lastEventTimeMs) / 1000);
    } else if (page.caughtUp) behindSeconds = 0;
    if (behindSeconds === undefined) return;
    this.behind.set(page.shardId, behindSeconds);
    this.iteratorAge.set({ shard_id: page.shardId }, behindSeconds);
  }

  readerFailed(_shardId: string, error: unknown): void {
    const name = error instanceof Error ? error.name : 'Error';
    this.errors.inc({ kind: `reader:${name}` });
  }

  leaseChanged(shardId: string, change: LeaseChange): void {
    this.leaseChanges.inc({ change });
    if (change === 'lost' || change === 'released' || change === 'ended' || change === 'handed-off') {
      this.forgetShard(shardId);
    }
    if (change === 'lost') this.errors.inc({ kind: 'lease_lost' });
  }

  leaseCycle(cycle: { held: readonly string[]; readableUnowned: readonly string[] }): void {
    this.leasesHeld.set(cycle.held.length);
    this.readableUnowned.set(cycle.readableUnowned.length);
    const held = new Set(cycle.held);
    for (const shardId of this.behind.keys()) if (!held.has(shardId)) this.forgetShard(shardId);
  }

  segmentCommitted(segment: CommittedSegment): void {
    this.recordsWritten.inc(segment.records);
    this.bytesWritten.inc(segment.bytes);
    this.segments.inc();
    this.lateRecords.inc(segment.lateRecords);
    this.commitSeconds.observe(segment.seconds);
  }

  commitFailed(kind: CommitFailureKind): void {
    this.commitFailures.inc({ kind });
    this.errors.inc({ kind: `commit:${kind}` });
  }

  gapRecorded(): void {
    this.gaps.inc();
  }

  windowSealed(window: WindowSealed): void {
    this.sealed.inc();
    if (!window.complete) this.sealedIncomplete.inc();
  }

  watermark(watermarkMs: number): void {
    this.watermarkMs = watermarkMs;
    this.watermarkGauge.set(watermarkMs / 1000);
  }

  sealerState(state: { leader: boolean; sealedThroughMs: number | undefined; windowMs: number }): void {
    this.sealerLeader.set(state.leader ? 1 : 0);
    this.sealedThroughMs = state.leader ? state.sealedThroughMs : undefined;
    this.sealerWindowMs = state.windowMs;
    this.refreshOldestUnsealed();
  }

  orphansDeleted(count: number): void {
    this.orphans.inc(count);
  }

  cycleFailed(kind: string): void {
    this.errors.inc({ kind });
  }

  /** Counters and gauges as plain numbers. */
  async snapshot(): Promise<MetricsSnapshot> {
    const value = async (metric: Counter | Gauge) => (await metric.get()).values[0]?.value ?? 0;
    return {
      recordsRead: await value(this.recordsRead),
      bytesRead: await value(this.bytesRead),
      recordsWritten: await value(this.recordsWritten),
      bytesWritten: await value(this.bytesWritten),
      segmentsCommitted: await value(this.segments),
      windowsSealed: await value(this.sealed),
      leasesHeld: await value(this.leasesHeld),
      bufferedBytes: this.sources.bufferedBytes?.() ?? 0,
      bufferedWindows: this.sources.bufferedWindows?.() ?? 0,
      maxBehindSeconds: Math.max(0, ...this.behind.values()),
      watermarkMs: this.watermarkMs,
      gaps: await value(this.gaps),
      stalledShards: this.sources.stalledShards?.().length ?? 0,
    };
  }

  private refreshOldestUnsealed(): void {
    if (this.sealedThroughMs === undefined) {
      this.oldestUnsealed.set(0);
      return;
    }
    const end = this.sealedThroughMs + this.sealerWindowMs;
    this.oldestUnsealed.set(Math.max(0, (Date.now() - end) / 1000));
  }

  private forgetShard(shardId: string): void {
    if (!this.behind.delete(shardId)) return;
    this.iteratorAge.remove({ shard_id: shardId });
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name: `${P}${name}`, help, registers: [this.registry] });
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name: `${P}${name}`, help, registers: [this.registry] });
  }
}
