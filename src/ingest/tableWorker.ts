import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { SHARD_END } from '../changelog/sequenceNumber.js';
import { LeaseStore } from '../coordination/leaseStore.js';
import {
  describeAllShards,
  describeTableStream,
  listTableStreams,
  ShardDiscovery,
  type TableStream,
} from '../coordination/shardDiscovery.js';
import { StreamError } from '../support/errors.js';
import { sleep } from '../support/retry.js';
import { StreamWorker, type StreamWorkerOptions } from './streamWorker.js';

type Logger = NonNullable<StreamWorkerOptions['logger']>;

export interface TableWorkerOptions
  extends Pick<
    StreamWorkerOptions,
    | 'workerId'
    | 'streams'
    | 'raw'
    | 'consume'
    | 'onGap'
    | 'lease'
    | 'renewIntervalMs'
    | 'idleMinMs'
    | 'idleMaxMs'
    | 'logger'
    | 'onCheckpoint'
  > {
  tableName: string;
  /** For DescribeTable (the table's LatestStreamArn and whether its stream is on). */
  dynamodb: DynamoDBClient;
  /** Client for the lease table; defaults to `dynamodb`. */
  leaseClient?: DynamoDBClient;
  leaseTableName: string;
  /** How often the active stream is checked for being drained. Default 5 s. */
  pollIntervalMs?: number;
  /**
   * Builds the worker for one stream (the daemon: a ChangelogWorker, with committer and sealer).
   * Without it, a StreamWorker delivers pages to `consume` (at-least-once, per page).
   */
  worker?: StreamRunnerFactory;
}

/** The stream TableWorker makes active, as handed to the per-stream worker. */
export interface FollowedStream {
  streamArn: string;
  /**
   * The latest earlier stream of the table that this changelog read (it has a changelog start or
   * shard leases), if any: `streamArn` continues it, so none of its shards starts at TRIM_HORIZON
   * (LeaseStoreOptions.continuesFrom).
   */
  continuesFrom: string | undefined;
  /**
   * The latest window (`windowStartMs`) any shard lease of the table's earlier streams committed
   * to, if any: the per-stream worker must put no row of this stream in an earlier window
   * (SegmentCommitterOptions.windowFloorMs). The earlier streams are drained when this stream
   * becomes active, so their leases no longer move.
   */
  windowFloorMs: number | undefined;
}

/** One stream's worker: runs until the signal aborts, then stops cleanly (commits, releases leases). */
export interface StreamRunner {
  run(signal: AbortSignal): Promise<void>;
}

export type StreamRunnerFactory = (stream: FollowedStream) => StreamRunner;

export interface DrainCheck {
  streamArn: string;
  /** DescribeTable's view, taken for this check. */
  table: TableStream;
  streams: DynamoDBStreamsClient;
  leases: Pick<LeaseStore, 'listLeases'>;
  logger?: Logger | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * True when nothing is left to read in the stream: it has ended (DISABLED, or no longer the
 * table's LatestStreamArn), every shard DescribeStream lists is closed, and every shard lease
 * (one for each listed shard, and any other) is at SHARD_END. The table's current, enabled stream
 * is never drained: it may get records at any moment.
 */
export async function isStreamDrained(check: DrainCheck): Promise<boolean> {
  const { streamArn, table, signal } = check;
  if (table.streamEnabled && table.latestStreamArn === streamArn) return false;
  let described: Awaited<ReturnType<typeof describeAllShards>>;
  try {
    described = await describeAllShards(check.streams, streamArn, signal ? { signal } : {});
  } catch (error) {
    // A stream 24 h past its disable is deleted with its records: nothing is left to drain.
    if (error instanceof StreamError && error.code === 'ResourceNotFoundException') {
      check.logger?.warn({ streamArn }, 'stream is gone (past retention); treating it as drained');
      return true;
    }
    throw error;
  }
  const ended = described.streamStatus === 'DISABLED' || table.latestStreamArn !== streamArn;
  if (!ended || !described.shards.every((s) => s.SequenceNumberRange?.EndingSequenceNumber)) return false;
  const leases = await check.leases.listLeases(signal);
  const atEnd = new Set(leases.filter((l) => l.checkpoint === SHARD_END).map((l) => l.shardId));
  // A listed shard without a lease was never read: leases are created on discovery, not on drain.
  return atEnd.size === leases.length && described.shards.every((s) => atEnd.has(s.ShardId ?? ''));
}

/**
 * Follows a table's stream across disable / re-enable. Disabling closes the stream's shards;
 * enabling again creates a new stream (new ARN). Per-item order across the two needs the old
 * stream fully read first, so one stream is active at a time: the oldest not yet drained. A
 * per-stream worker reads it (the `worker` factory's, e.g. the daemon's ChangelogWorker, or a
 * StreamWorker feeding `consume`; leases keyed by its ARN, so the two streams' leases never mix);
 * once it is drained and a newer stream exists, that worker is stopped (it commits and releases
 * its leases) and the next stream becomes active.
 *
 * Every worker of the fleet decides from the shared lease table, so none starts the new stream
 * before every old shard's SHARD_END is committed, which is only after its records were consumed.
 */
export class TableWorker {
  private readonly o: TableWorkerOptions;

  constructor(options: TableWorkerOptions) {
    if (options.worker === undefined && options.consume === undefined) {
      throw new TypeError('TableWorker needs a worker factory or a consume function');
    }
    this.o = options;
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let active: FollowedStream | undefined;
      try {
        active = await this.pickActive(signal);
      } catch (error) {
        if (signal.aborted) break;
        this.o.logger?.warn({ error: String(error) }, 'could not list the table’s streams; trying again');
      }
      if (active === undefined) {
        await sleep(this.pollMs, signal).catch(() => undefined);
        continue;
      }
      await this.follow(active, signal);
    }
  }

  private get pollMs(): number {
    return this.o.pollIntervalMs ?? 5_000;
  }

  private leaseStore(streamArn: string, continuesFrom?: string): LeaseStore {
    return new LeaseStore({
      client: this.o.leaseClient ?? this.o.dynamodb,
      tableName: this.o.leaseTableName,
      streamArn,
      workerId: this.o.workerId,
      ...(continuesFrom !== undefined && { continuesFrom }),
    });
  }

  /** The table's streams, oldest first, with the latest one last even if ListStreams lags. */
  private async tableStreams(signal: AbortSignal): Promise<{ arns: string[]; table: TableStream }> {
    const [arns, table] = await Promise.all([
      listTableStreams(this.o.streams, this.o.tableName, { signal }),
      describeTableStream(this.o.dynamodb, this.o.tableName, { signal }),
    ]);
    const latest = table.latestStreamArn;
    if (latest !== undefined && !arns.includes(latest)) arns.push(latest);
    return { arns, table };
  }

  private drained(streamArn: string, table: TableStream, signal: AbortSignal): Promise<boolean> {
    return isStreamDrained({
      streamArn,
      table,
      streams: this.o.streams,
      leases: this.leaseStore(streamArn),
      logger: this.o.logger,
      signal,
    });
  }

  /** The oldest stream not drained yet; the newest when all are (it may still get shards). */
  private async pickActive(signal: AbortSignal): Promise<FollowedStream | undefined> {
    const { arns, table } = await this.tableStreams(signal);
    let active = arns.at(-1);
    for (const arn of arns.slice(0, -1)) {
      if (!(await this.drained(arn, table, signal))) {
        active = arn;
        break;
      }
    }
    if (active === undefined) return undefined;
    return { streamArn: active, ...(await this.earlierStreams(arns, active, signal)) };
  }

  /**
   * What the table's streams before `streamArn` leave to it:
   * - `continuesFrom`: the latest one this changelog read (it has a changelog start or shard
   *   leases). `streamArn` then continues the changelog, and none of its shards may start at
   *   TRIM_HORIZON (its first records, if trimmed unread, are a gap, not the changelog's start).
   * - `windowFloorMs`: the latest window any of their shard leases committed to. A shard may have
   *   committed records to a window later than their event time (lateness, its windows never
   *   going back), so the new stream's records of the same items must not go to earlier ones.
   */
  private async earlierStreams(
    arns: readonly string[],
    streamArn: string,
    signal: AbortSignal,
  ): Promise<Pick<FollowedStream, 'continuesFrom' | 'windowFloorMs'>> {
    let continuesFrom: string | undefined;
    let windowFloorMs: number | undefined;
    for (const older of arns.slice(0, arns.indexOf(streamArn)).reverse()) {
      const store = this.leaseStore(older);
      const leases = await store.listLeases(signal);
      for (const lease of leases) {
        const w = lease.windowStartMs;
        if (w !== undefined && (windowFloorMs === undefined || w > windowFloorMs)) windowFloorMs = w;
      }
      if (continuesFrom === undefined) {
        if (leases.length > 0 || (await store.changelogStart(signal)) !== undefined) continuesFrom = older;
      }
    }
    return { continuesFrom, windowFloorMs };
  }

  /** The worker for one stream: the factory's, or a StreamWorker feeding `consume`. */
  private streamRunner(stream: FollowedStream): StreamRunner {
    const o = this.o;
    if (o.worker !== undefined) return o.worker(stream);
    const { streamArn, continuesFrom } = stream;
    return new StreamWorker({
      workerId: o.workerId,
      streams: o.streams,
      raw: o.raw,
      consume: o.consume,
      onGap: o.onGap,
      lease: o.lease,
      renewIntervalMs: o.renewIntervalMs,
      idleMinMs: o.idleMinMs,
      idleMaxMs: o.idleMaxMs,
      logger: o.logger,
      onCheckpoint: o.onCheckpoint,
      streamArn,
      leases: this.leaseStore(streamArn, continuesFrom),
      discovery: new ShardDiscovery({ streamsClient: o.streams, streamArn }),
    });
  }

  /** Runs the stream's worker until the stream is drained and a newer one exists, or abort. */
  private async follow(stream: FollowedStream, signal: AbortSignal): Promise<void> {
    const { streamArn } = stream;
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const o = this.o;
    o.logger?.info(
      {
        streamArn,
        tableName: o.tableName,
        continuesFrom: stream.continuesFrom ?? null,
        windowFloor: stream.windowFloorMs === undefined ? null : new Date(stream.windowFloorMs).toISOString(),
      },
      'following stream',
    );
    let running: Promise<void>;
    try {
      running = this.streamRunner(stream).run(stop.signal);
    } catch (error) {
      signal.removeEventListener('abort', onAbort);
      throw error;
    }
    // A worker that stops by itself (it failed) ends the follow: its error goes to the caller.
    let ended = false;
    const settled = running.then(
      () => {
        ended = true;
      },
      () => {
        ended = true;
      },
    );
    try {
      while (!stop.signal.aborted && !ended) {
        await Promise.race([sleep(this.pollMs, stop.signal).catch(() => undefined), settled]);
        if (stop.signal.aborted || ended) break;
        try {
          // Only a newer stream ends this one's turn: while it is still the table's latest (the
          // common case), DescribeTable alone says so, without ListStreams.
          const latest = await describeTableStream(o.dynamodb, o.tableName, { signal: stop.signal });
          if (latest.latestStreamArn === streamArn) continue;
          const { arns, table } = await this.tableStreams(stop.signal);
          const at = arns.indexOf(streamArn);
          // A stream ListStreams no longer shows (past retention) is followed by the latest.
          const next = at < 0 ? arns.at(-1) : arns[at + 1];
          if (
            next !== undefined &&
            next !== streamArn &&
            (await this.drained(streamArn, table, stop.signal))
          ) {
            this.o.logger?.info(
              { streamArn, nextStreamArn: next, tableName: o.tableName },
              'stream drained, moving to the next stream',
            );
            break;
          }
        } catch (error) {
          if (stop.signal.aborted) break;
          this.o.logger?.warn({ streamArn, error: String(error) }, 'drain check failed; trying again');
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort(new Error('stream worker stopping'));
      await running;
    }
  }
}
