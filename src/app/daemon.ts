import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { keySchemaFromTable } from '../changelog/keySchema.js';
import { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { createLeaseTable } from '../coordination/leaseTable.js';
import { openDestination } from '../coordination/openObjectStore.js';
import { combineObservers, type PipelineObserver } from '../coordination/pipelineObserver.js';
import { describeTableStream, enabledStreamArn } from '../coordination/shardDiscovery.js';
import { ChangelogWorker } from '../ingest/changelogWorker.js';
import { type FollowedStream, type StreamRunner, TableWorker } from '../ingest/tableWorker.js';
import { formatDuration } from '../support/duration.js';
import { ChangelogError } from '../support/errors.js';
import type { Logger } from '../support/logger.js';
import { type ObservabilityServer, startObservabilityServer } from './httpServer.js';
import { ChangelogMetrics } from './metrics.js';
import type { RunConfig } from './runConfig.js';
import { StallDetector } from './stallDetector.js';

export interface DaemonOptions {
  /** Stops the daemon like SIGTERM does. */
  signal?: AbortSignal;
  /** Stop on SIGTERM / SIGINT (default true). A second signal exits at once. */
  handleSignals?: boolean;
  /** Bind address of the metrics server (default all interfaces). */
  metricsHost?: string;
  /** Defaults to a new one; pass one to read its snapshot (the local stack's status line). */
  metrics?: ChangelogMetrics;
  /** Also told of everything the pipeline does (commits, seals, ...), beside metrics and stall detection. */
  observer?: PipelineObserver;
  /**
   * Called once the worker is about to start (metrics server up). `streamArn` is the stream given
   * with --stream-arn; undefined when the daemon follows the table's streams.
   */
  onStarted?: (info: { metricsUrl: string; streamArn: string | undefined }) => void;
  /** Following a table: how often the active stream is checked for being drained (default 5 s). */
  streamPollIntervalMs?: number;
}

export interface DaemonResult {
  /**
   * 0: stopped cleanly within the deadline. 1: data was left uncommitted (the deadline passed, or
   * the last commit failed); nothing is lost, the next lease holders read it again.
   */
  exitCode: 0 | 1;
  /** Milliseconds from the stop request to the end of the shutdown. */
  shutdownMs: number | undefined;
}

/**
 * The tailing daemon: metrics server, worker, graceful shutdown.
 *
 * With --stream-arn it reads that one stream. With only --table it follows the table across stream
 * disable / re-enable (TableWorker): a ChangelogWorker on the oldest stream of the table not yet
 * drained; once that one is drained and a newer stream exists, it is stopped (commits, releases
 * its leases and the sealer lease) and a ChangelogWorker on the next stream starts, with a window
 * floor so that no item's new records land in an earlier window than its old ones.
 *
 * On SIGTERM/SIGINT (or `signal`): readiness turns false, the worker stops taking leases and
 * reading, commits what is buffered, releases its leases (so another worker takes them on its next
 * cycle, not after failover), then the metrics server closes. If that takes longer than the
 * shutdown timeout the daemon gives up waiting and returns exit code 1: whatever was not
 * committed is read again by the shards' next holders from their checkpoints, so nothing is lost,
 * only repeated work.
 */
export async function runDaemon(
  config: RunConfig,
  logger: Logger,
  options: DaemonOptions = {},
): Promise<DaemonResult> {
  const { source, destination, pipeline, operations } = config;
  const metrics = options.metrics ?? new ChangelogMetrics();
  const stall = new StallDetector({
    stallTimeoutMs: operations.stallTimeoutMs,
    // Cycles run every failover / 3; missing them for two failovers means our leases are gone.
    maxLeaseCycleAgeMs: 2 * pipeline.lease.failoverMs,
    logger,
  });
  const controller = new AbortController();
  let stopRequestedAt: number | undefined;
  const stop = (reason: string) => {
    if (controller.signal.aborted) return;
    stopRequestedAt = performance.now();
    logger.info(
      { reason, deadline: formatDuration(operations.shutdownTimeoutMs) },
      'stopping: committing buffered data and releasing leases',
    );
    controller.abort(new Error(reason));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      logger.warn({ signal }, 'second signal: exiting now without waiting for the shutdown');
      process.exit(130);
    }
    stop(`received ${signal}`);
  };
  const onAbort = () => stop(String(options.signal?.reason ?? 'stop requested'));
  if (options.handleSignals !== false) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const dynamodb = new DynamoDBClient({ maxAttempts: 1 });
  const streams = new DynamoDBStreamsClient({ maxAttempts: 1 });
  const raw = new RawGetRecordsClient(streams);
  const store = openDestination(destination);
  let server: ObservabilityServer | undefined;
  /** What runs until the stop: one ChangelogWorker, or a TableWorker running one per stream. */
  let worker: StreamRunner | undefined;
  /** The ChangelogWorker reading now (following a table: the active stream's). */
  let current: ChangelogWorker | undefined;
  try {
    server = await startObservabilityServer({
      port: operations.metricsPort,
      host: options.metricsHost,
      metrics: () => metrics.exposition(),
      readiness: () =>
        controller.signal.aborted ? { ready: false, reason: 'shutting down' } : stall.readiness(),
    }).catch((error: unknown) => {
      throw new ChangelogError(
        `cannot serve metrics on port ${operations.metricsPort} (--metrics-port, CHANGELOG_METRICS_PORT): ${
          (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'the port is in use' : String(error)
        }`,
        { retriable: false, cause: error },
      );
    });
    const signal = controller.signal;
    // Startup calls retry transient failures inside (DynamoDB briefly unreachable when a pod
    // starts; coordination/awsCall.ts, one retry layer); a missing table or a disabled stream
    // fails at once with its own message.
    if (source.createLeaseTable) {
      await createLeaseTable(dynamodb, source.leaseTable, { signal });
    }
    // One DescribeTable gives the key schema and, without --stream-arn, whether the table has a
    // stream to follow.
    const described = await describeTableStream(dynamodb, source.table, { signal });
    const keySchema = keySchemaFromTable(described.description ?? {});
    const observer = combineObservers(metrics, stall, options.observer);
    // One observer for every stream's worker: metrics and stall detection carry on across a switch.
    const changelogWorker = (streamArn: string, follow?: FollowedStream) =>
      new ChangelogWorker({
        workerId: source.workerId,
        table: source.table,
        streamArn,
        keySchema,
        dynamodb,
        streams,
        raw,
        leaseTableName: source.leaseTable,
        store,
        config: pipeline,
        logger,
        observer,
        continuesFrom: follow?.continuesFrom,
        windowFloorMs: follow?.windowFloorMs,
      });
    if (source.streamArn !== undefined) {
      current = changelogWorker(source.streamArn);
      worker = current;
    } else {
      // A table that never had a stream fails at once; one whose stream is disabled is followed:
      // what is left of its stream is read, then the daemon waits for a new one.
      if (described.latestStreamArn === undefined) enabledStreamArn(described);
      if (!described.streamEnabled) {
        logger.warn(
          { table: source.table, streamArn: described.latestStreamArn },
          'the table’s stream is disabled: reading what is left of it, then waiting for a new stream',
        );
      }
      worker = new TableWorker({
        workerId: source.workerId,
        tableName: source.table,
        dynamodb,
        streams,
        leaseTableName: source.leaseTable,
        lease: pipeline.lease,
        logger,
        pollIntervalMs: options.streamPollIntervalMs,
        worker: (stream) => {
          current = changelogWorker(stream.streamArn, stream);
          return current;
        },
      });
    }
    metrics.bind({
      bufferedBytes: () => current?.committer.bufferedBytes ?? 0,
      bufferedWindows: () => current?.committer.bufferedWindows ?? 0,
      stalledShards: () => stall.stalled(),
    });
    logger.info(
      {
        streamArn: source.streamArn ?? null,
        follows: source.streamArn === undefined ? 'table' : 'stream',
        leaseTable: source.leaseTable,
        destination: destination.url,
        window: formatDuration(pipeline.window.windowMs),
        maxBufferBytes: pipeline.buffer.maxBufferBytes,
        metrics: server.url,
      },
      'worker starting',
    );
    options.onStarted?.({ metricsUrl: server.url, streamArn: source.streamArn });
    const running = worker.run(signal);
    const outcome = await untilDeadline(running, signal, operations.shutdownTimeoutMs);
    const shutdownMs =
      stopRequestedAt === undefined ? undefined : Math.round(performance.now() - stopRequestedAt);
    // Rows still buffered after the stop (the deadline passed, or the last commit failed and the
    // leases were released anyway) are not lost: their checkpoints were not advanced, so the next
    // lease holders read them again. The exit code still says the stop was not clean.
    const buffered = current?.committer.bufferedBytes ?? 0;
    if (outcome === 'deadline' || buffered > 0) {
      logger.error(
        {
          reason: outcome === 'deadline' ? 'shutdown deadline passed' : 'the last commit failed',
          deadline: formatDuration(operations.shutdownTimeoutMs),
          buffered,
          shutdownMs,
        },
        'exiting with uncommitted data, which the next lease holders read again',
      );
      return { exitCode: 1, shutdownMs };
    }
    logger.info({ shutdownMs }, 'stopped cleanly');
    return { exitCode: 0, shutdownMs };
  } catch (error) {
    if (controller.signal.aborted && worker === undefined) {
      // Stopped during startup: nothing was read, nothing to commit.
      logger.info({}, 'stopped during startup');
      return { exitCode: 0, shutdownMs: 0 };
    }
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (options.handleSignals !== false) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    await server?.close();
    store.close?.();
    raw.destroy();
    dynamodb.destroy();
    streams.destroy();
  }
}

/** Waits for `running`; once `signal` aborts, waits at most `deadlineMs` more. */
async function untilDeadline(
  running: Promise<void>,
  signal: AbortSignal,
  deadlineMs: number,
): Promise<'done' | 'deadline'> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    onAbort = () => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([running.then(() => 'done' as const), deadline]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
