import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { KeySchema } from '../changelog/keySchema.js';
import type { PipelineConfig } from '../coordination/config.js';
import type { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { LeaseStore } from '../coordination/leaseStore.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import type { PipelineObserver } from '../coordination/pipelineObserver.js';
import { RegistryStore } from '../coordination/registryStore.js';
import { type Logger, silentLogger } from '../support/logger.js';
import type { RetryOptions } from '../support/retry.js';
import { Sealer } from './sealer.js';
import { SegmentCommitter } from './segmentCommitter.js';
import { StreamWorker } from './streamWorker.js';

export interface ChangelogWorkerOptions {
  workerId: string;
  /** Source table name. */
  table: string;
  streamArn: string;
  keySchema: KeySchema;
  /** Client for the lease table (leases, registry). */
  dynamodb: DynamoDBClient;
  streams: DynamoDBStreamsClient;
  raw?: RawGetRecordsClient;
  leaseTableName: string;
  store: ObjectStore;
  /** The settings, by group; each component gets the groups it needs, whole. */
  config: PipelineConfig;
  logger?: Logger;
  retry?: RetryOptions;
  idleMinMs?: number;
  idleMaxMs?: number;
  /** Told of what the pipeline does (metrics, stall detection): see PipelineObserver. */
  observer?: PipelineObserver;
  /**
   * The table's earlier stream this one continues (set by TableWorker on a re-enabled stream):
   * none of this stream's shards starts at TRIM_HORIZON.
   */
  continuesFrom?: string | undefined;
  /**
   * The earliest window this worker commits rows to (TableWorker: the latest window the earlier
   * streams' leases committed to), so per item, the new stream's records never land in an earlier
   * window than the old stream's. See SegmentCommitterOptions.windowFloorMs.
   */
  windowFloorMs?: number | undefined;
}

/**
 * One worker of the fleet for one stream: keeps shard leases and reads (StreamWorker), buffers
 * and commits segments exactly once (SegmentCommitter), and seals windows when it holds the
 * sealer lease (Sealer). On abort it stops reading, commits what is buffered, releases its
 * leases, then stops committing and sealing (releasing the sealer lease).
 *
 * `run` following a table runs one of these per stream, one stream at a time (TableWorker): the
 * registry and the window state are the table's, so they carry on across streams.
 */
export class ChangelogWorker {
  readonly leases: LeaseStore;
  readonly registry: RegistryStore;
  readonly committer: SegmentCommitter;
  readonly sealer: Sealer;
  readonly streamWorker: StreamWorker;
  readonly streamArn: string;
  private readonly log: Logger;

  constructor(o: ChangelogWorkerOptions) {
    this.log = o.logger ?? silentLogger;
    this.streamArn = o.streamArn;
    this.leases = new LeaseStore({
      client: o.dynamodb,
      tableName: o.leaseTableName,
      streamArn: o.streamArn,
      workerId: o.workerId,
      retry: o.retry,
      continuesFrom: o.continuesFrom,
    });
    this.registry = new RegistryStore({
      client: o.dynamodb,
      tableName: o.leaseTableName,
      table: o.table,
      retry: o.retry,
    });
    this.committer = new SegmentCommitter({
      workerId: o.workerId,
      streamArn: o.streamArn,
      table: o.table,
      keySchema: o.keySchema,
      leases: this.leases,
      registry: this.registry,
      store: o.store,
      window: o.config.window,
      buffer: o.config.buffer,
      stream: o.config.stream,
      logger: this.log,
      observer: o.observer,
      windowFloorMs: o.windowFloorMs,
    });
    this.sealer = new Sealer({
      workerId: o.workerId,
      table: o.table,
      streamArn: o.streamArn,
      registry: this.registry,
      listLeases: (signal) => this.leases.listLeases(signal),
      store: o.store,
      window: o.config.window,
      orphans: o.config.orphans,
      stream: o.config.stream,
      lease: o.config.lease,
      logger: this.log,
      observer: o.observer,
    });
    this.streamWorker = new StreamWorker({
      workerId: o.workerId,
      streamArn: o.streamArn,
      streams: o.streams,
      raw: o.raw,
      leases: this.leases,
      sink: this.committer,
      lease: o.config.lease,
      idleMinMs: o.idleMinMs,
      idleMaxMs: o.idleMaxMs,
      retry: o.retry,
      logger: this.log,
      observer: o.observer,
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const background = new AbortController();
    const committing = this.committer.run(background.signal);
    const sealing = this.sealer.run(background.signal);
    try {
      // Resolves after the stream worker stopped its readers, committed and released its leases.
      await this.streamWorker.run(signal);
    } finally {
      background.abort(signal.reason);
      await Promise.all([committing, sealing]);
      this.log.info({ streamArn: this.streamArn }, 'worker stopped');
    }
  }
}
