import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { StreamError } from '../errors.js';
import { SHARD_END } from '../lease/lease.js';
import { LeaseStore } from '../lease/leaseStore.js';
import { sleep } from '../retry.js';
import {
  describeAllShards,
  describeTableStream,
  listTableStreams,
  ShardDiscovery,
  type TableStream,
} from '../stream/shardDiscovery.js';
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
    | 'failoverMs'
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
}

interface ActiveStream {
  arn: string;
  /** The earlier stream of the table the changelog already read, if any. */
  continuesFrom: string | undefined;
}

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
 * StreamWorker reads it (leases keyed by its ARN, so the two streams' leases never mix); once it
 * is drained and a newer stream exists, that worker stops and the next stream becomes active.
 *
 * Every worker of the fleet decides from the shared lease table, so none starts the new stream
 * before every old shard's SHARD_END is committed, which is only after its records were consumed.
 */
export class TableWorker {
  private readonly o: TableWorkerOptions;

  constructor(options: TableWorkerOptions) {
    this.o = options;
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let active: ActiveStream | undefined;
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
      await this.follow(active.arn, active.continuesFrom, signal);
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
  private async pickActive(signal: AbortSignal): Promise<ActiveStream | undefined> {
    const { arns, table } = await this.tableStreams(signal);
    let active = arns.at(-1);
    for (const arn of arns.slice(0, -1)) {
      if (!(await this.drained(arn, table, signal))) {
        active = arn;
        break;
      }
    }
    if (active === undefined) return undefined;
    return { arn: active, continuesFrom: await this.startedBefore(arns, active, signal) };
  }

  /**
   * The latest stream before `streamArn` that this changelog read (it has a changelog start or
   * shard leases): `streamArn` then continues the changelog, and none of its shards may start at
   * TRIM_HORIZON (its first records, if trimmed unread, are a gap, not the changelog's start).
   */
  private async startedBefore(
    arns: readonly string[],
    streamArn: string,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    for (const older of arns.slice(0, arns.indexOf(streamArn)).reverse()) {
      const store = this.leaseStore(older);
      if ((await store.changelogStart(signal)) !== undefined) return older;
      if ((await store.listLeases(signal)).length > 0) return older;
    }
    return undefined;
  }

  /** Runs a StreamWorker on `streamArn` until it is drained and a newer stream exists, or abort. */
  private async follow(
    streamArn: string,
    continuesFrom: string | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const o = this.o;
    const worker = new StreamWorker({
      workerId: o.workerId,
      streams: o.streams,
      raw: o.raw,
      consume: o.consume,
      onGap: o.onGap,
      failoverMs: o.failoverMs,
      renewIntervalMs: o.renewIntervalMs,
      idleMinMs: o.idleMinMs,
      idleMaxMs: o.idleMaxMs,
      logger: o.logger,
      onCheckpoint: o.onCheckpoint,
      streamArn,
      leases: this.leaseStore(streamArn, continuesFrom),
      discovery: new ShardDiscovery({ streamsClient: this.o.streams, streamArn }),
    });
    o.logger?.info({ streamArn, tableName: o.tableName }, 'following stream');
    const running = worker.run(stop.signal);
    try {
      while (!stop.signal.aborted) {
        await sleep(this.pollMs, stop.signal).catch(() => undefined);
        if (stop.signal.aborted) break;
        try {
          const { arns, table } = await this.tableStreams(stop.signal);
          const newer = arns.indexOf(streamArn) < arns.length - 1;
          if (newer && (await this.drained(streamArn, table, stop.signal))) {
            this.o.logger?.info(
              { streamArn, tableName: o.tableName },
              'stream drained; moving to the next stream',
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
