import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { ChangeBuffer } from '../changelog/changeBuffer.js';
import type { KeySchema } from '../changelog/keySchema.js';
import { segmentId, segmentObjectKey, windowId, windowStartOf } from '../changelog/layout.js';
import { type EncodedSegment, encodeSegment, streamSegmentMetadata } from '../changelog/segmentEncoder.js';
import {
  compareCheckpoints,
  compareSequenceNumbers,
  SHARD_END,
  TRIM_HORIZON,
} from '../changelog/sequenceNumber.js';
import { cancellationReasons, hasName, isTransactionConflict } from '../coordination/awsCall.js';
import { type BufferConfig, DEFAULTS, type StreamConfig, type WindowConfig } from '../coordination/config.js';
import type { Lease } from '../coordination/lease.js';
import type { LeaseStore, RenewProgress } from '../coordination/leaseStore.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import type { CommittedSegment, PipelineObserver } from '../coordination/pipelineObserver.js';
import {
  type GapRecord,
  type RegistryShardEntry,
  type RegistryStore,
  requestToken,
  type SegmentRecord,
  windowSizeMismatch,
} from '../coordination/registryStore.js';
import { ChangelogError, isRetriable, LeaseLostError, WindowClosedError } from '../support/errors.js';
import { type Logger, silentLogger } from '../support/logger.js';
import { sleep } from '../support/retry.js';
import { decodePage, type FetchedPage, type PageSummary, type StreamGap } from './shardReader.js';
import type { ShardSession, ShardSink } from './shardSink.js';

export interface SegmentCommitterOptions {
  workerId: string;
  streamArn: string;
  /** Source table name (object keys, registry partition). */
  table: string;
  keySchema: KeySchema;
  leases: LeaseStore;
  registry: RegistryStore;
  store: ObjectStore;
  window: WindowConfig;
  /**
   * Flush triggers, the bound on buffered bytes, and shards per segment (a commit is one
   * transaction of shards + 2 items (+ gaps), and DynamoDB allows 100).
   */
  buffer: BufferConfig;
  /**
   * The stream's retention. A shard of the changelog's start is read from TRIM_HORIZON; if it is
   * first read later than the retention after the start, records written after the start may have
   * been trimmed unread, and a gap says so (see accept). Default DEFAULTS.stream.
   */
  stream?: StreamConfig | undefined;
  /** Wall clock (ms) for the retention check; default Date.now. */
  wallClock?: () => number;
  logger?: Logger;
  /** How often the window state (closed windows, watermark) is re-read. Default 2 s. */
  stateRefreshMs?: number;
  /** Told of commits and failed commits (metrics). */
  observer?: PipelineObserver;
  /** Monotonic ms, for buffer ages. */
  now?: () => number;
  /**
   * No shard opened by this committer puts rows in a window before this one (its initial `hwm`).
   * Set when a table's new stream continues an earlier one (TableWorker): the latest window any
   * lease of the earlier streams committed to, so an item's new records never land in an earlier
   * window than its old ones.
   */
  windowFloorMs?: number | undefined;
}

interface PendingGap {
  afterSequenceNumber: string;
  resumedAtSequenceNumber?: string | undefined;
  fromTimeMs?: number | undefined;
  toTimeMs?: number | undefined;
  detectedAtMs?: number | undefined;
}

interface ShardState {
  session: ShardSession;
  /** Last committed checkpoint (the `from` of the next commit). */
  committed: string;
  /** Window the shard's next rows go to at the earliest: its windows never go backwards. */
  hwm: number;
  lastEventTimeMs: number | undefined;
  /** DynamoDB's time of the last empty read at the tip with nothing of the shard uncommitted. */
  caughtUpAtMs: number | undefined;
  pendingGaps: PendingGap[];
  /** Set when the shard's data was dropped: its reader is restarting. */
  dropped: Error | undefined;
  /**
   * The self-check's own account of what this session accepted and did not commit yet: runs of
   * consecutive rows, in stream order, each naming the buffer it went to. Kept apart from the
   * buffers on purpose, so a buffer that vanished or a segment that starts late is seen.
   */
  ledger: LedgerRun[];
  /** Rows accepted in this session: accepted = committed + in the ledger (see checkAccounts). */
  accepted: number;
  committedRows: number;
}

/** Consecutive rows of one shard that went to one buffer. */
interface LedgerRun {
  buffer: WindowBuffer;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
  rows: number;
}

interface WindowBuffer {
  startMs: number;
  buffer: ChangeBuffer;
  /** Monotonic time the first row arrived. */
  firstArrival: number;
  /** Being flushed, or full: no more rows go in. */
  sealed: boolean;
  /** The encoded segment, kept across retries of a failed write; cleared when rows are dropped. */
  encoded?: EncodedSegment | undefined;
  /**
   * The reader session each shard's rows came from. Rows of a session that is no longer open
   * (its shard was dropped while this buffer was being committed) are purged before the next try.
   */
  sessions: Map<string, ShardSession>;
  /** Rows per shard in this buffer (the buffer's side of the self-check). */
  rowsByShard: Map<string, number>;
}

/** A shard of a segment whose commit the self-check refused. */
export interface SelfCheckViolation {
  shardId: string;
  message: string;
}

const MAX_TRANSACTION_ITEMS = 100;

/**
 * Buffers rows per time window and commits them exactly once. A flush writes the window's buffer
 * as a Parquet segment (create-only, deterministic key), then runs ONE DynamoDB transaction:
 * every shard's fenced checkpoint move (owner + epoch + checkpoint == the previous one), the
 * segment's registry item, a check that the window is still open, and any gap entries. Either
 * all of it happens or none: a failed transaction leaves an orphan object, never listed, and
 * the shards are read again from their checkpoints.
 *
 * Ordering: a shard's rows go to windows that never go backwards (max of the row's own window,
 * the shard's last window, and the earliest open window), and buffers are committed in window
 * order, one at a time. So every commit of a shard starts right after its previous one.
 */
export class SegmentCommitter implements ShardSink {
  private readonly o: SegmentCommitterOptions;
  private readonly log: Logger;
  private readonly shards = new Map<string, ShardState>();
  /** Buffers in commit order: by window, then creation. */
  private readonly queue: WindowBuffer[] = [];
  private readonly scratch: ChangeBuffer;
  private readonly now: () => number;
  private readonly maxShards: number;
  private flushing: Promise<void> = Promise.resolve();
  /** The buffer being committed now, if any: drop() leaves its rows until that try is over. */
  private inFlight: WindowBuffer | undefined;
  /** Windows before this are closed (from the window state). */
  private openFromMs = 0;
  private watermarkMs: number | undefined;
  private stateReadAt = Number.NEGATIVE_INFINITY;

  constructor(options: SegmentCommitterOptions) {
    this.o = options;
    this.log = options.logger ?? silentLogger;
    this.scratch = new ChangeBuffer(options.keySchema);
    this.now = options.now ?? (() => performance.now());
    this.maxShards = Math.min(options.buffer.maxShardsPerSegment, MAX_TRANSACTION_ITEMS - 2);
  }

  /** Uncompressed bytes buffered and not yet committed. */
  get bufferedBytes(): number {
    let total = 0;
    for (const b of this.queue) total += b.buffer.byteSize;
    return total;
  }

  /** Windows with rows buffered. */
  get bufferedWindows(): number {
    return new Set(this.queue.filter((b) => b.buffer.rowCount > 0).map((b) => b.startMs)).size;
  }

  /** Flushes buffers that are due (age, size, window about to close) until aborted. */
  async run(signal: AbortSignal): Promise<void> {
    const tick = Math.max(50, Math.min(1000, Math.floor(this.o.buffer.flushIntervalMs / 4)));
    while (!signal.aborted) {
      try {
        await this.refreshState(signal);
        await this.flushDue(false);
      } catch (error) {
        if (signal.aborted) break;
        this.log.warn({ error: String(error) }, 'flush cycle failed; trying again');
        this.o.observer?.cycleFailed?.('flush-cycle', error);
      }
      await sleep(tick, signal).catch(() => undefined);
    }
  }

  open(session: ShardSession): void {
    const lease = session.lease;
    this.shards.set(session.shardId, {
      session,
      committed: lease.checkpoint,
      hwm: Math.max(lease.windowStartMs ?? 0, this.o.windowFloorMs ?? 0),
      lastEventTimeMs: lease.lastEventTimeMs,
      caughtUpAtMs: undefined,
      pendingGaps: [],
      dropped: undefined,
      ledger: [],
      accepted: 0,
      committedRows: 0,
    });
  }

  async accept(session: ShardSession, page: FetchedPage): Promise<PageSummary> {
    this.live(session);
    // The window state is read before the page is decoded: the scratch buffer is shared by every
    // shard's reader, so decoding and routing must not be split by an await (another reader's
    // page would overwrite the rows in between: one page lost, another committed twice).
    await this.refreshState(session.signal);
    const startedAtMs = await this.trimHorizonStart(session);
    const st = this.live(session);
    const scratch = this.scratch;
    scratch.clear();
    const summary = decodePage(page, scratch);
    if (summary.records === 0) {
      if (
        summary.nextShardIterator !== undefined &&
        page.serverTime !== undefined &&
        st.ledger.length === 0
      ) {
        st.caughtUpAtMs = page.serverTime.getTime();
      }
      return summary;
    }
    st.caughtUpAtMs = undefined;
    if (startedAtMs !== undefined && st.accepted === 0)
      this.checkTrimAfterStart(st, startedAtMs, scratch.eventTimeMs(0));
    this.route(st, scratch);
    // A due flush (size, age) runs in the background: readers only wait when the bound is hit.
    this.kickFlush();
    // Backpressure: hold this reader until flushes bring the buffers under their bound. A flush
    // that made no progress (the store is down) backs off; a stopped reader stops waiting.
    let pauseMs = 0;
    while (this.bufferedBytes >= this.o.buffer.maxBufferBytes && this.queue.length > 0 && !st.dropped) {
      session.signal.throwIfAborted();
      const before = this.bufferedBytes;
      await this.flushDue(true, 1);
      if (this.bufferedBytes < before) pauseMs = 0;
      else {
        pauseMs = Math.min(5000, pauseMs === 0 ? 100 : pauseMs * 2);
        await sleep(pauseMs, session.signal);
      }
    }
    if (st.dropped) throw st.dropped;
    return summary;
  }

  async gap(session: ShardSession, gap: StreamGap): Promise<void> {
    const st = this.live(session);
    addGap(st, {
      // The reader's last read may be buffered, not committed: the gap follows what it read.
      afterSequenceNumber: gap.afterSequenceNumber ?? st.ledger.at(-1)?.lastSequenceNumber ?? st.committed,
      fromTimeMs: st.lastEventTimeMs,
      detectedAtMs: gap.detectedAt?.getTime(),
    });
    st.caughtUpAtMs = undefined;
  }

  async finish(session: ShardSession): Promise<Lease> {
    const startedAtMs = await this.trimHorizonStart(session);
    const st = this.live(session);
    // Read to its end without a single record: anything written after the start may be gone.
    if (startedAtMs !== undefined && st.accepted === 0) this.checkTrimAfterStart(st, startedAtMs, undefined);
    const last = this.lastBufferIndexOf(session.shardId);
    if (last >= 0) await this.flushDue(true, last + 1);
    if (st.dropped) throw st.dropped;
    if (this.lastBufferIndexOf(session.shardId) >= 0 || st.ledger.length > 0) {
      throw new ChangelogError(`shard ${session.shardId} still has uncommitted rows at its end`, {
        retriable: true,
        shardId: session.shardId,
      });
    }
    const lease = { ...session.lease, checkpoint: st.committed };
    // Like every commit, the SHARD_END write is not cut short by a stopping reader: an outcome
    // left unknown would only be learned again from the lease.
    const windowStartMs = Math.max(st.hwm, this.openFromMs);
    if (st.pendingGaps.length === 0) {
      const ended = await this.o.leases.checkpoint(lease, {
        from: st.committed,
        to: SHARD_END,
        windowStartMs,
      });
      st.committed = SHARD_END;
      return ended;
    }
    if (st.pendingGaps.length > MAX_TRANSACTION_ITEMS - 2) {
      throw new ChangelogError(
        `shard ${session.shardId} has ${st.pendingGaps.length} trimmed-data gaps, more than one transaction holds`,
        { retriable: false, shardId: session.shardId },
      );
    }
    const gaps = st.pendingGaps.map((g) => this.gapRecord(session.shardId, g, windowStartMs));
    const items: TransactWriteItem[] = [
      { Update: this.o.leases.checkpointUpdate(lease, { from: st.committed, to: SHARD_END, windowStartMs }) },
      this.o.registry.windowOpenCheck(windowStartMs),
      ...gaps.map((g) => this.o.registry.gapPut(g)),
    ];
    try {
      await this.o.registry.transact(items);
    } catch (error) {
      const explained = await this.explainFailure(error, items, [st], undefined, windowStartMs);
      if (explained instanceof WindowClosedError) await this.refreshState(undefined, true);
      throw explained;
    }
    st.pendingGaps = [];
    st.committed = SHARD_END;
    this.log.warn(
      { shardId: session.shardId, window: windowId(windowStartMs), gaps: gaps.length },
      'gap committed at shard end',
    );
    return { ...lease, checkpoint: SHARD_END, windowStartMs };
  }

  async handOff(session: ShardSession): Promise<void> {
    const st = this.live(session);
    const last = this.lastBufferIndexOf(session.shardId);
    if (last >= 0) await this.flushDue(true, last + 1);
    if (st.dropped) throw st.dropped;
    if (this.lastBufferIndexOf(session.shardId) >= 0 || st.ledger.length > 0) {
      throw new ChangelogError(`shard ${session.shardId} still has uncommitted rows at its hand-off`, {
        retriable: true,
        shardId: session.shardId,
      });
    }
    // Pending gaps are not lost: the next holder resumes at the checkpoint, before the trimmed
    // records, and meets the same TrimmedDataAccessException.
  }

  /**
   * The changelog's start time when `session` reads a start shard from TRIM_HORIZON and has read
   * nothing yet (the only case where a trim raises no TrimmedDataAccessException); else undefined.
   */
  private async trimHorizonStart(session: ShardSession): Promise<number | undefined> {
    const st = this.shards.get(session.shardId);
    const lease = session.lease;
    if (st === undefined || st.accepted > 0 || lease.checkpoint !== TRIM_HORIZON) return undefined;
    if (lease.startAt !== undefined && lease.startAt !== 'TRIM_HORIZON') return undefined;
    const start = await this.o.leases.changelogStart(session.signal);
    return start?.startedAtMs;
  }

  /**
   * A start shard read from TRIM_HORIZON: the stream trims without a word there. If the oldest
   * record still held is from before the changelog began, nothing after the start was trimmed.
   * Otherwise, once the start is older than the retention (less a margin for clock skew), records
   * written after the start may have been trimmed unread: a gap is recorded (possibly for nothing,
   * never a silent loss). `firstEventTimeMs` undefined: the shard ended without a record.
   */
  private checkTrimAfterStart(
    st: ShardState,
    startedAtMs: number,
    firstEventTimeMs: number | undefined,
  ): void {
    // Event times have one-second precision.
    if (firstEventTimeMs !== undefined && firstEventTimeMs <= startedAtMs + 1000) return;
    const retentionMs = (this.o.stream ?? DEFAULTS.stream).streamRetentionMs;
    const now = (this.o.wallClock ?? Date.now)();
    if (now < startedAtMs + retentionMs - Math.min(3_600_000, retentionMs / 10)) return;
    const shardId = st.session.shardId;
    addGap(st, { afterSequenceNumber: TRIM_HORIZON, fromTimeMs: startedAtMs, detectedAtMs: now });
    this.log.error(
      { shardId, changelogStartedAt: new Date(startedAtMs).toISOString(), retentionMs },
      'shard first read longer after the changelog began than the stream keeps records: records written after the start may have been trimmed unread; recording a gap',
    );
    this.o.observer?.gapRecorded?.(shardId);
  }

  close(session: ShardSession, keep: boolean): void {
    const st = this.shards.get(session.shardId);
    if (st === undefined || st.session !== session) return;
    if (keep && !st.dropped) return;
    this.drop([session.shardId], new Error('reader stopped'), false);
  }

  progress(shardId: string): RenewProgress | undefined {
    const st = this.shards.get(shardId);
    if (st === undefined || st.dropped || st.ledger.length > 0 || st.pendingGaps.length > 0) return undefined;
    return st.caughtUpAtMs === undefined ? undefined : { caughtUpAtMs: st.caughtUpAtMs };
  }

  /** Commits everything buffered (graceful stop), in order. */
  async drain(): Promise<void> {
    await this.flushDue(true, this.queue.length);
    if (this.queue.length > 0) {
      throw new ChangelogError(`${this.queue.length} buffered segment(s) could not be committed`, {
        retriable: true,
      });
    }
  }

  private live(session: ShardSession): ShardState {
    const st = this.shards.get(session.shardId);
    if (st === undefined || st.session !== session) {
      throw new LeaseLostError(`shard ${session.shardId} is no longer open in this worker`, {
        shardId: session.shardId,
      });
    }
    if (st.dropped) throw st.dropped;
    return st;
  }

  /** Re-reads the window state (closed windows, watermark) at most every stateRefreshMs. */
  private async refreshState(signal: AbortSignal | undefined, force = false): Promise<void> {
    const now = this.now();
    if (!force && now - this.stateReadAt < (this.o.stateRefreshMs ?? 2000)) return;
    this.stateReadAt = now;
    const [state, watermark] = await Promise.all([
      this.o.registry.getState(signal),
      this.o.registry.getWatermark(signal),
    ]);
    if (state !== undefined) {
      if (state.windowMs !== this.o.window.windowMs) {
        throw windowSizeMismatch(this.o.table, state.windowMs, this.o.window.windowMs);
      }
      this.openFromMs = Math.max(this.openFromMs, state.closedThroughMs);
    }
    if (watermark !== undefined) this.watermarkMs = watermark;
  }

  /** Copies the page's rows into window buffers: contiguous runs, windows never going back. */
  private route(st: ShardState, rows: ChangeBuffer): void {
    const shardId = st.session.shardId;
    const seqAt = (r: number) => Buffer.from(rows.sequenceNumber.value(r)).toString('latin1');
    const firstRowSeq = seqAt(0);
    // The reader resumes after the committed checkpoint: a first row at or before it would be a
    // repeat, and one the self-check must never let through.
    const after = st.ledger.at(-1)?.lastSequenceNumber ?? st.committed;
    if (/^\d+$/.test(after) && compareSequenceNumbers(firstRowSeq, after) <= 0) {
      throw new ChangelogError(
        `shard ${shardId} delivered ${firstRowSeq}, not after ${after} where this session stands`,
        { retriable: true, shardId, sequenceNumber: firstRowSeq },
      );
    }
    for (const gap of st.pendingGaps) {
      if (gap.resumedAtSequenceNumber === undefined) {
        gap.resumedAtSequenceNumber = firstRowSeq;
        gap.toTimeMs = rows.eventTimeMs(0);
      }
    }
    let target: WindowBuffer | undefined;
    let runStart = 0;
    const closeRun = (end: number) => {
      if (target === undefined || end === runStart) return;
      this.record(st, target, seqAt(runStart), seqAt(end - 1), end - runStart);
    };
    for (let r = 0; r < rows.rowCount; r++) {
      const w = Math.max(windowStartOf(rows.eventTimeMs(r), this.o.window.windowMs), st.hwm, this.openFromMs);
      if (target === undefined || target.startMs !== w || target.sealed) {
        closeRun(r);
        runStart = r;
        target = this.appendTarget(w, shardId);
        target.sessions.set(shardId, st.session);
        st.hwm = w;
      }
      target.buffer.appendRowFrom(rows, r);
    }
    closeRun(rows.rowCount);
    st.accepted += rows.rowCount;
  }

  /** Adds rows to the shard's ledger and to the buffer's per-shard count. */
  private record(st: ShardState, b: WindowBuffer, first: string, last: string, rows: number): void {
    const shardId = st.session.shardId;
    b.rowsByShard.set(shardId, (b.rowsByShard.get(shardId) ?? 0) + rows);
    const tail = st.ledger.at(-1);
    if (tail !== undefined && tail.buffer === b) {
      tail.lastSequenceNumber = last;
      tail.rows += rows;
    } else {
      st.ledger.push({ buffer: b, firstSequenceNumber: first, lastSequenceNumber: last, rows });
    }
  }

  /** The buffer of window `w` that takes the shard's next rows. */
  private appendTarget(w: number, shardId: string): WindowBuffer {
    let withRoom: WindowBuffer | undefined;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const b = this.queue[i]!;
      if (b.startMs !== w || b.sealed) continue;
      if (b.buffer.shards.includes(shardId)) return b;
      if (withRoom === undefined && b.buffer.shards.length < this.maxShards) withRoom = b;
    }
    if (withRoom) return withRoom;
    for (const b of this.queue) if (b.startMs === w && !b.sealed) b.sealed = true; // full: commit as is
    const created: WindowBuffer = {
      startMs: w,
      buffer: new ChangeBuffer(this.o.keySchema),
      firstArrival: this.now(),
      sealed: false,
      sessions: new Map(),
      rowsByShard: new Map(),
    };
    let at = this.queue.length;
    while (at > 0 && this.queue[at - 1]!.startMs > w) at--;
    this.queue.splice(at, 0, created);
    return created;
  }

  private lastBufferIndexOf(shardId: string): number {
    for (let i = this.queue.length - 1; i >= 0; i--)
      if ((this.queue[i]!.rowsByShard.get(shardId) ?? 0) > 0) return i;
    return -1;
  }

  private kicked = false;

  /** Resolves once no flush is running (the background one an accept may have started). */
  async idle(): Promise<void> {
    await this.flushing;
  }

  private kickFlush(): void {
    if (this.kicked) return;
    this.kicked = true;
    this.flushDue(false)
      .catch((error: unknown) => this.log.warn({ error: String(error) }, 'flush failed; trying again'))
      .finally(() => {
        this.kicked = false;
      });
  }

  /**
   * Flushes, in queue order, every buffer up to the last one that is due (or the first `count`
   * when forced). One flush runs at a time; callers wait their turn.
   */
  private flushDue(force: boolean, count = 0): Promise<void> {
    const run = async () => {
      const now = this.now();
      let upTo = force ? Math.min(count, this.queue.length) : 0;
      for (let i = 0; i < this.queue.length; i++) {
        const b = this.queue[i]!;
        const closing =
          this.watermarkMs !== undefined &&
          b.startMs + this.o.window.windowMs + this.o.window.allowedLatenessMs <=
            this.watermarkMs + this.o.buffer.flushIntervalMs;
        const due =
          b.sealed ||
          closing ||
          b.startMs < this.openFromMs ||
          now - b.firstArrival >= this.o.buffer.flushIntervalMs ||
          b.buffer.byteSize >= this.o.buffer.maxSegmentBytes;
        if (due) upTo = Math.max(upTo, i + 1);
      }
      for (let n = 0; n < upTo && this.queue.length > 0; n++) {
        const head = this.queue[0]!;
        const ok = await this.flushHead(head);
        if (!ok) break; // a transient failure: keep order, try again later
      }
    };
    const next = this.flushing.then(run, run);
    this.flushing = next.catch(() => undefined);
    return next;
  }

  /**
   * Commits buffer `b` (the head). False when it stays queued after a transient failure. The
   * buffer is removed from the queue by identity, never by position: while it is in flight other
   * buffers may be added before it or removed.
   */
  private async flushHead(b: WindowBuffer): Promise<boolean> {
    b.sealed = true;
    this.inFlight = b;
    try {
      for (;;) {
        const outcome = await this.commitOnce(b);
        if (outcome !== 'again') return outcome === 'done';
      }
    } finally {
      this.inFlight = undefined;
    }
  }

  /**
   * One try at committing `b`: 'done' (committed or given up, removed from the queue), 'kept'
   * (a transient failure: stays at the head), 'again' (some shards were refused and dropped: try
   * again at once with the rest).
   */
  private async commitOnce(b: WindowBuffer): Promise<'done' | 'kept' | 'again'> {
    const started = performance.now();
    this.purge(b);
    if (b.buffer.rowCount === 0) {
      this.remove(b);
      return 'done';
    }
    const states = b.buffer.shards.map((id) => this.shards.get(id)!);
    const refused = this.checkAccounts(b, states);
    if (refused.length > 0) {
      for (const v of refused) {
        this.log.error(
          { shardId: v.shardId, window: windowId(b.startMs), error: v.message },
          'commit self-check failed: refusing the shard and reading it again from its checkpoint',
        );
        this.o.observer?.commitFailed?.('self-check');
      }
      this.drop(
        refused.map((v) => v.shardId),
        new ChangelogError(`commit self-check failed: ${refused.map((v) => v.message).join('; ')}`, {
          retriable: true,
          shardId: refused[0]!.shardId,
        }),
        true,
      );
      return 'again';
    }
    const segment =
      b.encoded ??
      encodeSegment(b.buffer, {
        compression: this.o.buffer.compression,
        metadata: streamSegmentMetadata(this.o.table, this.o.streamArn),
      });
    b.encoded = segment;
    const id = segmentId({
      windowStartMs: b.startMs,
      compression: this.o.buffer.compression,
      shards: segment.shards,
    });
    const key = segmentObjectKey(this.o.table, b.startMs, id);
    let put: Awaited<ReturnType<ObjectStore['putIfAbsent']>>;
    try {
      put = await this.o.store.putIfAbsent(key, segment.bytes, {
        contentType: 'application/vnd.apache.parquet',
      });
    } catch (error) {
      this.log.warn(
        { key, window: windowId(b.startMs), error: String(error) },
        'segment write failed; will retry',
      );
      this.o.observer?.commitFailed?.('write-failed');
      if (isRetriable(error)) return 'kept';
      throw error;
    }

    const byShard = new Map(states.map((s) => [s.session.shardId, s]));
    const entries: RegistryShardEntry[] = segment.shards.map((range) => ({
      shardId: range.shardId,
      afterSequenceNumber: byShard.get(range.shardId)!.committed,
      firstSequenceNumber: range.firstSequenceNumber,
      lastSequenceNumber: range.lastSequenceNumber,
      records: range.records,
    }));
    // The encoded segment must hold exactly what the self-check approved (it was encoded from
    // this buffer's rows; a cached encoding is cleared whenever rows are removed).
    const mismatch = this.checkRanges(b, entries, byShard);
    if (mismatch.length > 0) {
      throw new ChangelogError(`segment ${key} does not match its buffer: ${mismatch.join('; ')}`, {
        retriable: false,
        key,
      });
    }
    const maxTimes = maxEventTimeByShard(b.buffer);
    // Names this attempt: a registry item found after a lost answer is ours only if it has it.
    const commitId = requestToken(
      'commit-id',
      this.o.workerId,
      key,
      ...entries.map(
        (e) => `${e.shardId}@${byShard.get(e.shardId)!.session.lease.leaseEpoch}:${e.afterSequenceNumber}`,
      ),
    );
    const record: SegmentRecord = {
      windowStartMs: b.startMs,
      segmentId: id,
      key,
      bytes: put.bytes,
      records: segment.records,
      checksum: put.checksum,
      minEventTimeMs: segment.minEventTimeMs,
      maxEventTimeMs: segment.maxEventTimeMs,
      lateRecords: lateRows(b.buffer, b.startMs),
      shards: entries,
      streamArn: this.o.streamArn,
      workerId: this.o.workerId,
      commitId,
    };
    const items: TransactWriteItem[] = [
      this.o.registry.segmentPut(record),
      this.o.registry.windowOpenCheck(b.startMs),
    ];
    /** The shard each lease update of `items` belongs to, by item index. */
    const itemShard = new Map<number, string>();
    for (const entry of entries) {
      const st = byShard.get(entry.shardId)!;
      itemShard.set(items.length, entry.shardId);
      items.push({
        Update: this.o.leases.checkpointUpdate(
          { ...st.session.lease, checkpoint: st.committed },
          {
            from: st.committed,
            to: entry.lastSequenceNumber,
            lastEventTimeMs: maxTimes.get(entry.shardId),
            windowStartMs: b.startMs,
          },
        ),
      });
    }
    const gapsCommitted = new Map<ShardState, PendingGap[]>();
    for (const entry of entries) {
      const st = byShard.get(entry.shardId)!;
      // A gap goes with the segment holding the first record read after it (or a later one,
      // when a transaction had no room left, or SHARD_END): never before that record is read.
      const inRange = (seq: string | undefined) =>
        seq !== undefined && compareCheckpoints(seq, entry.lastSequenceNumber) <= 0;
      const taken: PendingGap[] = [];
      for (const gap of st.pendingGaps) {
        if (items.length >= MAX_TRANSACTION_ITEMS) break;
        if (!inRange(gap.resumedAtSequenceNumber)) continue;
        items.push(this.o.registry.gapPut(this.gapRecord(st.session.shardId, gap, b.startMs)));
        taken.push(gap);
      }
      if (taken.length > 0) gapsCommitted.set(st, taken);
    }

    try {
      // One retry layer: the registry's, for transient faults and (asked here) conflicts.
      await this.o.registry.transact(items, undefined, {
        retryConflicts: true,
        onRetry: (error) => {
          if (isTransactionConflict(error)) this.o.observer?.commitFailed?.('conflict');
        },
      });
    } catch (error) {
      const landed = await this.landed(error, b.startMs, id, commitId).catch(() => false);
      if (!landed) {
        if (isRetriable(error) && !hasName(error, 'TransactionCanceledException')) {
          this.log.warn({ key, error: String(error) }, 'commit failed; will retry');
          this.o.observer?.commitFailed?.('transient');
          return 'kept';
        }
        const failure = classifyCommitFailure(error, itemShard);
        this.o.observer?.commitFailed?.('refused');
        if (failure.kind === 'shards') {
          // Refuse only what was lost: those shards are read again, the rest is committed now.
          const explained = await Promise.all(
            failure.shardIds.map((shardId) => this.explainShardFailure(error, byShard.get(shardId)!, key)),
          );
          this.log.warn(
            {
              key,
              window: windowId(b.startMs),
              refused: failure.shardIds,
              kept: entries.length - failure.shardIds.length,
              error: explained.map((e) => e.message).join('; '),
            },
            'commit refused for some shards: they will be read again, the others are committed without them',
          );
          for (let i = 0; i < failure.shardIds.length; i++) {
            this.drop([failure.shardIds[i]!], explained[i]!, true);
          }
          return 'again';
        }
        const explained =
          failure.kind === 'window-closed'
            ? new WindowClosedError(`window ${windowId(b.startMs)} was closed before the commit`, b.startMs, {
                key,
                cause: error,
              })
            : error instanceof Error
              ? error
              : new ChangelogError(String(error), { key });
        this.remove(b);
        this.drop(
          states.map((s) => s.session.shardId),
          explained,
          true,
        );
        this.log.warn(
          {
            key,
            window: windowId(b.startMs),
            shards: entries.length,
            reason: explained.name,
            error: explained.message,
          },
          'commit refused: segment left as an orphan, shards will be read again',
        );
        if (explained instanceof WindowClosedError) await this.refreshState(undefined, true);
        return 'done';
      }
    }

    this.remove(b);
    let gapCount = 0;
    for (const entry of entries) {
      const st = byShard.get(entry.shardId)!;
      st.committed = entry.lastSequenceNumber;
      st.committedRows += entry.records;
      // The ledger's head runs are exactly this buffer's rows of the shard (checked before).
      while (st.ledger[0]?.buffer === b) st.ledger.shift();
      const t = maxTimes.get(entry.shardId);
      if (t !== undefined) st.lastEventTimeMs = Math.max(st.lastEventTimeMs ?? 0, t);
      const taken = gapsCommitted.get(st) ?? [];
      st.pendingGaps = st.pendingGaps.filter((g) => !taken.includes(g));
      gapCount += taken.length;
      // The shard was dropped while this commit was in flight and a new session has opened since:
      // it may have started from the checkpoint this commit replaced. Rewind it.
      const live = this.shards.get(entry.shardId);
      if (live !== undefined && live !== st) {
        this.drop(
          [entry.shardId],
          new ChangelogError(
            `shard ${entry.shardId} was committed by an earlier session while it restarted`,
            {
              retriable: true,
              shardId: entry.shardId,
            },
          ),
          true,
        );
      }
    }
    const event: CommittedSegment = {
      windowStartMs: b.startMs,
      key,
      records: record.records,
      bytes: record.bytes,
      lateRecords: record.lateRecords,
      shards: entries,
      gaps: gapCount,
      put: put.outcome,
      seconds: (performance.now() - started) / 1000,
    };
    this.log.info(
      {
        window: windowId(b.startMs),
        key,
        records: record.records,
        bytes: record.bytes,
        lateRecords: record.lateRecords,
        shards: entries.map((e) => ({
          shardId: e.shardId,
          after: e.afterSequenceNumber,
          first: e.firstSequenceNumber,
          last: e.lastSequenceNumber,
        })),
        gaps: gapCount,
      },
      'segment committed',
    );
    this.o.observer?.segmentCommitted?.(event);
    return 'done';
  }

  /**
   * The self-check, run before every commit: per shard of `b`, its rows must be exactly the first
   * rows this session accepted after the committed checkpoint and not committed yet (the head of
   * the shard's ledger), and accepted = committed + buffered. Returns the shards that fail it.
   */
  private checkAccounts(b: WindowBuffer, states: readonly ShardState[]): SelfCheckViolation[] {
    const out: SelfCheckViolation[] = [];
    for (const st of states) {
      const shardId = st.session.shardId;
      const problem = this.accountProblem(b, st);
      if (problem !== undefined) out.push({ shardId, message: `shard ${shardId}: ${problem}` });
    }
    return out;
  }

  private accountProblem(b: WindowBuffer, st: ShardState): string | undefined {
    const shardId = st.session.shardId;
    const inBuffer = b.rowsByShard.get(shardId) ?? 0;
    let headRows = 0;
    let i = 0;
    while (i < st.ledger.length && st.ledger[i]!.buffer === b) headRows += st.ledger[i++]!.rows;
    if (i === 0) {
      const head = st.ledger[0];
      return head === undefined
        ? `${inBuffer} rows buffered but none accepted and uncommitted`
        : `the first uncommitted rows (from ${head.firstSequenceNumber}) are not in this segment`;
    }
    if (st.ledger.slice(i).some((run) => run.buffer === b)) {
      return 'rows of this segment are not contiguous in the stream order';
    }
    if (headRows !== inBuffer) return `segment holds ${inBuffer} rows, the ledger ${headRows}`;
    let ledgerRows = 0;
    for (const run of st.ledger) ledgerRows += run.rows;
    let queued = 0;
    for (const q of this.queue)
      if (q.sessions.get(shardId) === st.session) queued += q.rowsByShard.get(shardId) ?? 0;
    if (ledgerRows !== queued) return `${ledgerRows} rows accepted and uncommitted, but ${queued} buffered`;
    if (st.accepted !== st.committedRows + ledgerRows) {
      return `accepted ${st.accepted} != committed ${st.committedRows} + buffered ${ledgerRows}`;
    }
    return undefined;
  }

  /** The encoded ranges against the ledger: first and last sequence number per shard. */
  private checkRanges(
    b: WindowBuffer,
    entries: readonly RegistryShardEntry[],
    byShard: ReadonlyMap<string, ShardState>,
  ): string[] {
    const problems: string[] = [];
    if (entries.length !== byShard.size)
      problems.push(`${entries.length} shard ranges for ${byShard.size} shards`);
    for (const e of entries) {
      const st = byShard.get(e.shardId);
      const runs = st?.ledger.filter((run) => run.buffer === b) ?? [];
      const first = runs[0]?.firstSequenceNumber;
      const last = runs.at(-1)?.lastSequenceNumber;
      if (first !== e.firstSequenceNumber || last !== e.lastSequenceNumber) {
        problems.push(
          `${e.shardId} spans ${e.firstSequenceNumber}..${e.lastSequenceNumber}, accepted ${first}..${last}`,
        );
      }
      if (
        st !== undefined &&
        /^\d+$/.test(st.committed) &&
        compareSequenceNumbers(e.firstSequenceNumber, st.committed) <= 0
      ) {
        problems.push(
          `${e.shardId} starts at ${e.firstSequenceNumber}, not after its checkpoint ${st.committed}`,
        );
      }
    }
    return problems;
  }

  /** Removes the rows of shards whose session closed (dropped while `b` was in flight). */
  private purge(b: WindowBuffer): void {
    const stale = new Set<string>();
    for (const [shardId, session] of b.sessions) {
      if (this.shards.get(shardId)?.session !== session) stale.add(shardId);
    }
    if (stale.size === 0) return;
    this.removeRows(b, stale);
  }

  private removeRows(b: WindowBuffer, shardIds: ReadonlySet<string>): void {
    const kept = new ChangeBuffer(this.o.keySchema);
    for (let r = 0; r < b.buffer.rowCount; r++) {
      if (!shardIds.has(b.buffer.shards[b.buffer.shardOf(r)]!)) kept.appendRowFrom(b.buffer, r);
    }
    b.buffer = kept;
    b.encoded = undefined;
    for (const id of shardIds) {
      b.sessions.delete(id);
      b.rowsByShard.delete(id);
    }
  }

  private remove(b: WindowBuffer): void {
    const i = this.queue.indexOf(b);
    if (i >= 0) this.queue.splice(i, 1);
  }

  /** After a failed commit: did an earlier attempt land (the registry item is there)? */
  private async landed(
    error: unknown,
    windowStartMs: number,
    id: string,
    commitId: string,
  ): Promise<boolean> {
    if (!hasName(error, 'TransactionCanceledException') && !isRetriable(error)) return false;
    // Another holder may have committed the same records (same key) after taking the lease:
    // that commit is not ours, and our lease is gone.
    return (await this.o.registry.getSegment(windowStartMs, id))?.commitId === commitId;
  }

  /** Why a shard's fenced checkpoint update failed: the lease is gone, or its checkpoint moved. */
  private async explainShardFailure(error: unknown, st: ShardState, key: string): Promise<Error> {
    const shardId = st.session.shardId;
    const current = await this.o.leases.getLease(shardId).catch(() => undefined);
    const lost =
      current === undefined ||
      current.owner !== this.o.workerId ||
      current.leaseEpoch !== st.session.lease.leaseEpoch;
    return lost
      ? new LeaseLostError(`lease of ${shardId} lost before the commit`, { shardId, key, cause: error })
      : new ChangelogError(
          `checkpoint of ${shardId} is ${current.checkpoint}, not ${st.committed} as this worker committed`,
          { shardId, key, cause: error, retriable: false },
        );
  }

  /** Turns a failed commit into the domain error that says why. */
  private async explainFailure(
    error: unknown,
    items: TransactWriteItem[],
    states: ShardState[],
    key: string | undefined,
    windowStartMs: number,
  ): Promise<Error> {
    const reasons = cancellationReasons(error) ?? [];
    for (let i = 0; i < reasons.length; i++) {
      if (reasons[i] !== 'ConditionalCheckFailed') continue;
      const item = items[i]!;
      if (item.ConditionCheck) {
        return new WindowClosedError(
          `window ${windowId(windowStartMs)} was closed before the commit`,
          windowStartMs,
          {
            key,
            cause: error,
          },
        );
      }
      if (item.Update) {
        const shardId = item.Update.Key?.['leaseKey']?.S?.replace(/^shard#/, '');
        const st = states.find((s) => s.session.shardId === shardId);
        const current =
          shardId === undefined ? undefined : await this.o.leases.getLease(shardId).catch(() => undefined);
        const lost =
          current === undefined ||
          current.owner !== this.o.workerId ||
          current.leaseEpoch !== st?.session.lease.leaseEpoch;
        return lost
          ? new LeaseLostError(`lease of ${shardId} lost before the commit`, { shardId, key, cause: error })
          : new ChangelogError(
              `checkpoint of ${shardId} is ${current.checkpoint}, not ${st?.committed} as this worker committed`,
              { shardId, key, cause: error, retriable: false },
            );
      }
    }
    return error instanceof Error ? error : new ChangelogError(String(error), { key });
  }

  /**
   * Forgets the shards' uncommitted rows and pending gaps, always together with a rewind: the
   * shard's session ends (with `restart`, its reader is stopped and starts again from the
   * committed checkpoint; without, the reader has already stopped). Rows in the buffer being
   * committed stay until that commit is over: they are purged (by session) before its next try.
   */
  private drop(shardIds: string[], reason: Error, restart: boolean): void {
    const set = new Set(shardIds.filter((id) => this.shards.has(id)));
    if (set.size === 0) return;
    for (const b of [...this.queue]) {
      if (b === this.inFlight) continue;
      const hit = [...set].filter((id) => this.shards.get(id)!.session === b.sessions.get(id));
      if (hit.length === 0) continue;
      this.removeRows(b, new Set(hit));
      if (b.buffer.rowCount === 0) this.remove(b);
    }
    for (const id of set) {
      const st = this.shards.get(id)!;
      let discarded = 0;
      for (const run of st.ledger) discarded += run.rows;
      st.dropped = reason;
      this.shards.delete(id);
      if (discarded > 0 || st.pendingGaps.length > 0) {
        this.log.info(
          { shardId: id, discardedRows: discarded, checkpoint: st.committed, reason: reason.message },
          'uncommitted rows discarded; the shard is read again from its checkpoint',
        );
      }
      if (restart) st.session.restart(reason);
    }
  }

  private gapRecord(shardId: string, gap: PendingGap, windowStartMs: number): GapRecord {
    return {
      windowStartMs,
      shardId,
      afterSequenceNumber: gap.afterSequenceNumber,
      resumedAtSequenceNumber: gap.resumedAtSequenceNumber,
      fromTimeMs: gap.fromTimeMs,
      toTimeMs: gap.toTimeMs,
      detectedAtMs: gap.detectedAtMs,
      reason: 'TrimmedDataAccessException',
    };
  }
}

/** What a refused commit transaction says about its items. */
export type CommitFailure =
  /** These shards' fenced checkpoint updates failed (lease lost or checkpoint moved): only they are refused. */
  | { kind: 'shards'; shardIds: string[] }
  /** The window was closed (sealed) before the commit: nothing of it can go there any more. */
  | { kind: 'window-closed' }
  | { kind: 'other' };

/**
 * Classifies a refused transaction from its cancellation reasons. `itemShard` names the shard of
 * each lease-update item by index. A failed window check wins over failed lease updates.
 */
export function classifyCommitFailure(error: unknown, itemShard: ReadonlyMap<number, string>): CommitFailure {
  const reasons = cancellationReasons(error);
  if (reasons === undefined) return { kind: 'other' };
  const shardIds: string[] = [];
  let other = false;
  for (let i = 0; i < reasons.length; i++) {
    const code = reasons[i];
    if (code === 'None') continue;
    if (code !== 'ConditionalCheckFailed') other = true;
    else if (i === WINDOW_CHECK_ITEM) return { kind: 'window-closed' };
    else if (itemShard.has(i)) shardIds.push(itemShard.get(i)!);
    // The segment item exists already: another holder committed the same shards' records, so
    // their lease updates failed too (handled above); on its own it says nothing about a shard.
    else if (i !== SEGMENT_ITEM) other = true;
  }
  return shardIds.length > 0 && !other ? { kind: 'shards', shardIds } : { kind: 'other' };
}

/** Index of the segment's registry item in a commit transaction. */
const SEGMENT_ITEM = 0;
/** Index of the window-open check in a commit transaction (after the segment's registry item). */
const WINDOW_CHECK_ITEM = 1;

/**
 * Adds a pending gap, or widens the open one: a gap no record was read after yet is the same hole
 * (the reader met the trim again, or the start check and a TrimmedDataAccessException both saw
 * it). Two gaps at one position would also be two writes of one registry item in one transaction.
 */
function addGap(st: ShardState, gap: PendingGap): void {
  const open = st.pendingGaps.find((g) => g.resumedAtSequenceNumber === undefined);
  if (open === undefined) {
    st.pendingGaps.push(gap);
    return;
  }
  if (compareCheckpoints(gap.afterSequenceNumber, open.afterSequenceNumber) < 0) {
    open.afterSequenceNumber = gap.afterSequenceNumber;
  }
  if (gap.fromTimeMs !== undefined && (open.fromTimeMs === undefined || gap.fromTimeMs < open.fromTimeMs)) {
    open.fromTimeMs = gap.fromTimeMs;
  }
  open.detectedAtMs ??= gap.detectedAtMs;
}

function maxEventTimeByShard(buffer: ChangeBuffer): Map<string, number> {
  const out = new Map<string, number>();
  for (let r = 0; r < buffer.rowCount; r++) {
    const shard = buffer.shards[buffer.shardOf(r)]!;
    const t = Math.floor(buffer.eventTimeMs(r));
    if ((out.get(shard) ?? Number.NEGATIVE_INFINITY) < t) out.set(shard, t);
  }
  return out;
}

function lateRows(buffer: ChangeBuffer, windowStartMs: number): number {
  let n = 0;
  for (let r = 0; r < buffer.rowCount; r++) if (buffer.eventTimeMs(r) < windowStartMs) n++;
  return n;
}
