import { setMaxListeners } from 'node:events';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import PQueue from 'p-queue';
import { SHARD_END } from '../changelog/sequenceNumber.js';
import { DEFAULTS, type LeaseConfig } from '../coordination/config.js';
import type { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { type Lease, startPositionOf } from '../coordination/lease.js';
import { planLeaseTakes } from '../coordination/leaseBalancer.js';
import { LeaseExpiryTracker } from '../coordination/leaseExpiry.js';
import { changelogStartMessage, type LeaseStore } from '../coordination/leaseStore.js';
import type { PipelineObserver } from '../coordination/pipelineObserver.js';
import { ShardDiscovery } from '../coordination/shardDiscovery.js';
import type { ShardGraph } from '../coordination/shardGraph.js';
import { isRetriable, LeaseLostError } from '../support/errors.js';
import { type RetryOptions, sleep } from '../support/retry.js';
import { type CheckpointEvent, PageCheckpointSink } from './pageCheckpointSink.js';
import {
  type FetchedPage,
  type PageSummary,
  type ReaderLogger,
  ShardReader,
  type StreamGap,
} from './shardReader.js';
import type { ShardSession, ShardSink } from './shardSink.js';

export type { CheckpointEvent } from './pageCheckpointSink.js';

export interface StreamWorkerOptions {
  workerId: string;
  streamArn: string;
  streams: DynamoDBStreamsClient;
  /** The fast GetRecords path; without it the SDK's GetRecords is used. */
  raw?: RawGetRecordsClient;
  /** This worker's lease store (same workerId, same stream). */
  leases: LeaseStore;
  /** Defaults to a ShardDiscovery on `streamArn` with `streams`. */
  discovery?: ShardDiscovery;
  /**
   * Where pages go: buffering, commits and checkpoints (the SegmentCommitter). Without it, each
   * page goes to `consume` and its last sequence number is checkpointed right after (fenced by
   * owner + epoch): at-least-once delivery, for consumers that are idempotent themselves.
   */
  sink?: ShardSink;
  consume?: (page: FetchedPage, shardId: string) => Promise<PageSummary>;
  onGap?: (gap: StreamGap) => Promise<void> | void;
  /**
   * Lease expiry: no counter change for `failoverMs`, on this worker's monotonic clock. Default
   * DEFAULTS.lease.
   */
  lease?: LeaseConfig | undefined;
  /** Renew and balancing period; default a third of failoverMs. */
  renewIntervalMs?: number;
  /** GetRecords calls in flight across this worker's shards. */
  maxGetRecordsInFlight?: number;
  idleMinMs?: number;
  idleMaxMs?: number;
  retry?: RetryOptions;
  logger?: ReaderLogger & { info(details: Record<string, unknown>, message: string): void };
  /** Release held leases on stop so others take them at once (default). false behaves like a crash. */
  releaseOnStop?: boolean;
  onCheckpoint?: (event: CheckpointEvent) => void;
  /** Told of lease changes, lease cycles, GetRecords calls and pages (metrics, stall detection). */
  observer?: PipelineObserver;
  now?: () => number;
}

interface HeldShard {
  lease: Lease;
  /** Serialises lease writes for the shard: a renew answer must not overwrite a newer checkpoint. */
  ops: Promise<unknown>;
  reader: AbortController | undefined;
  running: Promise<void> | undefined;
  /** Set while the lease is being handed to this worker id (its reader stays stopped). */
  handingOff?: string | undefined;
}

/** Why a reader stopped: its lease is being handed to another worker. */
class HandOff extends Error {
  constructor(readonly to: string) {
    super(`lease handed to ${to}`);
    this.name = 'HandOff';
  }
}

/** A hand-off this worker asked for: the lease as it was held then. */
interface HandOffRequest {
  owner: string;
  leaseEpoch: number;
  at: number;
}

/** Lease renewals in flight at once per worker. */
const RENEW_CONCURRENCY = 16;

/**
 * One worker of a fleet reading a stream: it keeps leases (renew, balance, take), runs one
 * ShardReader per held lease whose shard is readable (parents at SHARD_END), checkpoints every
 * consumed page under the lease, and marks SHARD_END when a shard is fully read.
 *
 * A LeaseLostError anywhere (renew or checkpoint) stops that shard's reader at once. Nothing a
 * stopped reader delivered after the last successful checkpoint is lost: the next holder resumes
 * after that checkpoint.
 */
export class StreamWorker {
  private readonly o: StreamWorkerOptions;
  private readonly held = new Map<string, HeldShard>();
  private readonly expiry: LeaseExpiryTracker;
  private readonly limiter: PQueue;
  private readonly discovery: ShardDiscovery;
  private readonly now: () => number;
  private readonly failoverMs: number;
  private readonly sink: ShardSink;
  /** Hand-offs this worker asked for, by shard. */
  private readonly requested = new Map<string, HandOffRequest>();
  private readonly handOffs = new Set<Promise<void>>();

  constructor(options: StreamWorkerOptions) {
    this.o = options;
    this.failoverMs = (options.lease ?? DEFAULTS.lease).failoverMs;
    const { consume } = options;
    if (options.sink === undefined && consume === undefined) {
      throw new TypeError('StreamWorker needs a sink or a consume function');
    }
    this.sink =
      options.sink ??
      new PageCheckpointSink({
        leases: options.leases,
        consume: consume!,
        onGap: options.onGap,
        onCheckpoint: options.onCheckpoint,
      });
    this.now = options.now ?? (() => performance.now());
    this.expiry = new LeaseExpiryTracker({ failoverMs: this.failoverMs, now: this.now });
    this.limiter = new PQueue({ concurrency: options.maxGetRecordsInFlight ?? 16 });
    this.discovery =
      options.discovery ??
      new ShardDiscovery({ streamsClient: options.streams, streamArn: options.streamArn });
  }

  /** Shards this worker holds now. */
  get heldShards(): string[] {
    return [...this.held.keys()].sort();
  }

  async run(signal: AbortSignal): Promise<void> {
    // One abort listener per shard reader: hundreds are expected, not a leak.
    setMaxListeners(0, signal);
    const interval = this.o.renewIntervalMs ?? Math.round(this.failoverMs / 3);
    const discovering = this.discovery
      .start(signal, (graph) => this.onGraph(graph, signal))
      .catch((error: unknown) => {
        if (signal.aborted) return; // stopping: not a failure
        this.o.logger?.error({ error: String(error) }, 'shard discovery stopped');
        this.o.observer?.cycleFailed?.('discovery', error);
      });
    try {
      while (!signal.aborted) {
        try {
          await this.tick(signal);
        } catch (error) {
          if (signal.aborted) break;
          this.o.logger?.warn({ error: String(error) }, 'lease cycle failed; trying again next cycle');
          this.o.observer?.cycleFailed?.('lease-cycle', error);
        }
        await sleep(interval, signal).catch(() => undefined);
      }
    } finally {
      await this.stop();
      await discovering;
    }
  }

  private async onGraph(graph: ShardGraph, signal: AbortSignal): Promise<void> {
    const lineage = graph.shards().map((s) => ({
      shardId: s.shardId,
      parentShardIds: s.parentShardId ? [s.parentShardId] : [],
      startingSequenceNumber: s.startingSequenceNumber,
    }));
    await this.o.leases.ensureLeases(lineage, signal, {
      onChangelogStart: (start, existingLeases) =>
        this.o.logger?.info(
          {
            streamArn: this.o.streamArn,
            startedAt: new Date(start.startedAtMs).toISOString(),
            shards: start.shardIds.size,
            continuesFrom: start.continuesFrom,
          },
          changelogStartMessage(start, existingLeases),
        ),
    });
  }

  /** One renew + balance cycle. */
  private async tick(signal: AbortSignal): Promise<void> {
    const { leases, workerId } = this.o;
    // Renewals run side by side (each shard's lease writes stay serialised by withLease): one after
    // another, 100 held leases at ~50 ms each would take most of a failover period.
    const renewals = [...this.held].map(([shardId, h]) => async () => {
      try {
        await this.withLease(h, async () => {
          h.lease = await leases.renew(h.lease, signal, this.sink.progress?.(shardId));
        });
        const to = h.lease.pendingOwner;
        if (to !== undefined && to !== workerId && h.handingOff === undefined)
          this.handOff(shardId, h, to, signal);
      } catch (error) {
        if (!(error instanceof LeaseLostError)) throw error;
        this.lose(shardId, 'renew');
      }
    });
    const renewing = new PQueue({ concurrency: RENEW_CONCURRENCY });
    const outcomes = await Promise.allSettled(renewals.map((renew) => renewing.add(renew)));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;

    const all = await leases.listLeases(signal);
    const now = this.now();
    this.expiry.observe(all, now);
    for (const lease of all) {
      const h = this.held.get(lease.shardId);
      // Another worker took a lease we think we hold (we missed renewals, e.g. paused).
      if (h !== undefined && lease.owner !== workerId && h.handingOff === undefined) {
        this.lose(lease.shardId, 'listing');
      }
      const request = this.requested.get(lease.shardId);
      if (request === undefined) continue;
      if (lease.owner === workerId && h === undefined) {
        // Handed over to us: the holder committed what it had read.
        this.requested.delete(lease.shardId);
        this.adopt(lease, signal, 'handed over');
      } else if (lease.owner !== request.owner || lease.leaseEpoch !== request.leaseEpoch) {
        this.requested.delete(lease.shardId); // taken by someone else, or released: the plan decides again
      }
    }
    const plan = planLeaseTakes({
      leases: all.filter((l) => !(l.owner === workerId && !this.held.has(l.shardId))),
      workerId,
      expiry: this.expiry,
      now,
    });
    let steal = plan.steal;
    if (steal !== undefined) {
      // Balancing asks the holder to hand the lease over instead of taking it mid-work (which
      // refuses its buffered commit). Only a holder that ignores the request for a failover period
      // (an older version, or stuck) has it taken the hard way.
      const request = this.requested.get(steal.shardId);
      const asked =
        request !== undefined && request.owner === steal.owner && request.leaseEpoch === steal.leaseEpoch;
      if (!asked) {
        if (await leases.requestHandoff(steal, signal)) {
          this.requested.set(steal.shardId, { owner: steal.owner!, leaseEpoch: steal.leaseEpoch, at: now });
          this.o.logger?.info(
            { shardId: steal.shardId, from: steal.owner, leaseEpoch: steal.leaseEpoch },
            'lease hand-off requested',
          );
        }
        steal = undefined;
      } else if (now - request.at < this.failoverMs) {
        steal = undefined;
      } else {
        this.requested.delete(steal.shardId);
      }
    }
    for (const observed of steal ? [...plan.take, steal] : plan.take) {
      const taken = await leases.take(observed, signal);
      if (!taken) continue;
      this.o.observer?.leaseChanged?.(taken.shardId, observed === steal ? 'stolen' : 'taken');
      this.o.logger?.info(
        {
          shardId: taken.shardId,
          leaseEpoch: taken.leaseEpoch,
          from: observed.owner ?? null,
          stolen: observed === steal,
        },
        'lease taken',
      );
      this.held.set(taken.shardId, {
        lease: taken,
        ops: Promise.resolve(),
        reader: undefined,
        running: undefined,
      });
    }
    for (const [shardId, h] of this.held) {
      if (h.running === undefined && h.handingOff === undefined && h.lease.checkpoint !== SHARD_END) {
        this.startReader(shardId, h, signal);
      }
    }
    this.o.observer?.leaseCycle?.({
      held: [...this.held].filter(([, h]) => h.lease.checkpoint !== SHARD_END).map(([shardId]) => shardId),
      // What this cycle took is no longer waiting (the plan was made before the takes).
      readableUnowned: plan.available.filter((l) => !this.held.has(l.shardId)).map((l) => l.shardId),
    });
  }

  private startReader(shardId: string, h: HeldShard, signal: AbortSignal): void {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    h.reader = controller;
    h.running = this.runReader(shardId, h, controller, signal).finally(() => {
      signal.removeEventListener('abort', onAbort);
      if (this.held.get(shardId) === h) {
        h.running = undefined;
        h.reader = undefined;
      }
    });
  }

  private async runReader(
    shardId: string,
    h: HeldShard,
    controller: AbortController,
    workerSignal: AbortSignal,
  ): Promise<void> {
    let session: ShardSession | undefined;
    let keep = false;
    try {
      // The checkpoint in memory may be stale (a commit moved it, a renew answer raced it): start
      // from the lease as stored, and only while it is still ours at our epoch.
      const current = await this.withLease(h, () => this.o.leases.getLease(shardId, controller.signal));
      if (
        current === undefined ||
        current.owner !== this.o.workerId ||
        current.leaseEpoch !== h.lease.leaseEpoch
      ) {
        throw new LeaseLostError(`lease on ${shardId} lost before its reader started`, { shardId });
      }
      h.lease = current;
      if (current.checkpoint === SHARD_END) return;
      const opened: ShardSession = {
        shardId,
        lease: current,
        signal: controller.signal,
        restart: (reason) => controller.abort(reason),
      };
      session = opened;
      this.sink.open(opened);
      const reader = new ShardReader({
        streamArn: this.o.streamArn,
        shardId,
        streams: this.o.streams,
        raw: this.o.raw,
        afterSequenceNumber: /^\d+$/.test(current.checkpoint) ? current.checkpoint : undefined,
        startAt: startPositionOf(current),
        consume: (page) => this.sink.accept(opened, page),
        onGap: (gap) => this.sink.gap(opened, gap),
        limiter: this.limiter,
        idleMinMs: this.o.idleMinMs,
        idleMaxMs: this.o.idleMaxMs,
        retry: this.o.retry,
        logger: this.o.logger,
        observer: this.o.observer,
      });
      const result = await reader.run(controller.signal);
      if (result.outcome !== 'shard-end' && controller.signal.reason instanceof HandOff) {
        await this.sink.handOff?.(opened);
        return;
      }
      if (result.outcome !== 'shard-end') {
        keep = workerSignal.aborted && !(controller.signal.reason instanceof LeaseLostError);
        return;
      }
      const ended = await this.sink.finish(opened);
      if (this.held.get(shardId) === h) h.lease = ended;
      this.o.logger?.info({ shardId, records: result.records }, 'shard fully read');
      this.o.observer?.leaseChanged?.(shardId, 'ended');
      this.discovery.requestResync();
      // Children start now, not on the next lease cycle: their parent's SHARD_END is committed.
      await this.startChildren(shardId, workerSignal).catch((error: unknown) => {
        if (!workerSignal.aborted) {
          this.o.logger?.warn({ shardId, error: String(error) }, 'could not start child shards at once');
        }
      });
    } catch (error) {
      if (error instanceof LeaseLostError) this.lose(shardId, 'commit');
      else if (!controller.signal.aborted) {
        // A transient failure (S3 or DynamoDB down for a while) is expected under faults: a warning.
        const log = isRetriable(error) ? this.o.logger?.warn : this.o.logger?.error;
        log?.call(
          this.o.logger,
          { shardId, error: String(error) },
          'shard reader failed; restarting next cycle',
        );
        this.o.observer?.readerFailed?.(shardId, error);
      }
    } finally {
      if (session !== undefined) this.sink.close(session, keep);
    }
  }

  /**
   * After `parentId` reached SHARD_END: takes its children that are free and whose parents have
   * all ended, and starts their readers at once (KCL waits for the next shard sync; a child then
   * sat unread for up to a lease cycle or more). Children whose lease items do not exist yet are
   * created from a fresh listing first. Balancing later hands them on if this worker has too many.
   */
  private async startChildren(parentId: string, signal: AbortSignal): Promise<void> {
    let all = await this.o.leases.listLeases(signal);
    if (!all.some((l) => l.parentShardIds.includes(parentId))) {
      const graph = await this.discovery.refresh(signal);
      if (graph.childrenOf(parentId).length === 0) return; // none yet: the next cycle takes them
      await this.onGraph(graph, signal);
      all = await this.o.leases.listLeases(signal);
    }
    const byId = new Map(all.map((l) => [l.shardId, l]));
    const ended = (id: string) => {
      const lease = byId.get(id);
      return lease === undefined || lease.checkpoint === SHARD_END;
    };
    for (const child of all) {
      if (!child.parentShardIds.includes(parentId) || child.owner !== undefined) continue;
      if (
        child.checkpoint === SHARD_END ||
        !child.parentShardIds.every(ended) ||
        this.held.has(child.shardId)
      ) {
        continue;
      }
      const taken = await this.o.leases.take(child, signal);
      if (!taken || signal.aborted) continue;
      this.o.observer?.leaseChanged?.(taken.shardId, 'taken');
      this.o.logger?.info(
        { shardId: taken.shardId, leaseEpoch: taken.leaseEpoch, from: null, stolen: false, parent: parentId },
        'lease taken',
      );
      const h: HeldShard = { lease: taken, ops: Promise.resolve(), reader: undefined, running: undefined };
      this.held.set(taken.shardId, h);
      this.startReader(taken.shardId, h, signal);
    }
  }

  /** Holds `lease` (just acquired) and starts its reader. */
  private adopt(lease: Lease, signal: AbortSignal, how: string): void {
    this.o.observer?.leaseChanged?.(lease.shardId, 'taken');
    this.o.logger?.info({ shardId: lease.shardId, leaseEpoch: lease.leaseEpoch, how }, 'lease taken');
    const h: HeldShard = { lease, ops: Promise.resolve(), reader: undefined, running: undefined };
    this.held.set(lease.shardId, h);
    if (lease.checkpoint !== SHARD_END) this.startReader(lease.shardId, h, signal);
  }

  /**
   * Hands the shard to `to`, which asked for it: stops the reader, commits what it read (the
   * sink's handOff), then transfers the lease (fenced). Runs in the background of the lease cycle.
   */
  private handOff(shardId: string, h: HeldShard, to: string, signal: AbortSignal): void {
    h.handingOff = to;
    const task = (async () => {
      h.reader?.abort(new HandOff(to));
      await h.running;
      if (this.held.get(shardId) !== h || signal.aborted) return;
      try {
        await this.withLease(h, async () => {
          h.lease = await this.o.leases.handOff(h.lease, to, signal);
        });
        this.held.delete(shardId);
        this.o.logger?.info({ shardId, to, leaseEpoch: h.lease.leaseEpoch }, 'lease handed off');
        this.o.observer?.leaseChanged?.(shardId, 'handed-off');
      } catch (error) {
        h.handingOff = undefined;
        if (error instanceof LeaseLostError) this.lose(shardId, 'hand-off');
        else if (!signal.aborted)
          this.o.logger?.warn({ shardId, to, error: String(error) }, 'lease hand-off failed');
      }
    })();
    this.handOffs.add(task);
    void task.finally(() => this.handOffs.delete(task));
  }

  private withLease<T>(h: HeldShard, op: () => Promise<T>): Promise<T> {
    const next = h.ops.then(op, op);
    h.ops = next.catch(() => undefined);
    return next;
  }

  /** The lease is gone: stop the shard's reader now and forget the shard. */
  private lose(shardId: string, where: string): void {
    const h = this.held.get(shardId);
    if (!h) return;
    this.held.delete(shardId);
    h.reader?.abort(new LeaseLostError(`lease on ${shardId} lost (${where})`, { shardId }));
    this.o.logger?.warn({ shardId, where, leaseEpoch: h.lease.leaseEpoch }, 'lease lost');
    this.o.observer?.leaseChanged?.(shardId, 'lost');
  }

  /** Stops every reader; releases the leases (unless configured to behave like a crash). */
  private async stop(): Promise<void> {
    await Promise.all([...this.handOffs]);
    const shards = [...this.held.entries()];
    for (const [, h] of shards) h.reader?.abort(new Error('worker stopping'));
    await Promise.all(shards.map(([, h]) => h.running));
    if (this.o.releaseOnStop === false) return;
    try {
      await this.sink.drain?.();
    } catch (error) {
      this.o.logger?.error({ error: String(error) }, 'could not commit buffered data on stop');
    }
    await Promise.all(
      shards.map(async ([shardId, h]) => {
        try {
          await this.withLease(h, () => this.o.leases.release(h.lease));
          this.o.logger?.info({ shardId, leaseEpoch: h.lease.leaseEpoch }, 'lease released');
          this.o.observer?.leaseChanged?.(shardId, 'released');
        } catch (error) {
          this.o.logger?.warn({ shardId, error: String(error) }, 'could not release lease on stop');
        }
      }),
    );
    this.held.clear();
  }
}
