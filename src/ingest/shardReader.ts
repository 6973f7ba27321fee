import {
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  type Shard,
  type ShardIteratorType,
} from '@aws-sdk/client-dynamodb-streams';
import type PQueue from 'p-queue';
import type { ChangeBuffer } from '../changelog/changeBuffer.js';
import { appendStreamRecords, type StreamRecordObject } from '../changelog/sdkRecordDecoder.js';
import { type DecodedPage, decodeGetRecordsResponse } from '../changelog/wireRecordDecoder.js';
import type { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import type { PipelineObserver } from '../coordination/pipelineObserver.js';
import { describeAllShards } from '../coordination/shardDiscovery.js';
import { getShardIterator } from '../coordination/shardIterator.js';
import { isRetriable, StreamError } from '../support/errors.js';
import { type RetryOptions, retry, sleep } from '../support/retry.js';

/** One GetRecords response, as bytes (fast path) or as the SDK's objects. */
export type FetchedPage =
  | { kind: 'raw'; shardId: string; body: Uint8Array; serverTime: Date | undefined }
  | {
      kind: 'objects';
      shardId: string;
      records: StreamRecordObject[];
      nextShardIterator: string | undefined;
      serverTime: Date | undefined;
    };

/** What a consumer learned from a page: decodePage's result. */
export type PageSummary = Pick<
  DecodedPage,
  'nextShardIterator' | 'records' | 'firstSequenceNumber' | 'lastSequenceNumber' | 'lastEventTimeMs'
>;

/** Decodes a fetched page into `buffer` (all-or-nothing) and returns what the reader needs. */
export function decodePage(page: FetchedPage, buffer: ChangeBuffer): PageSummary {
  if (page.kind === 'raw') return decodeGetRecordsResponse(page.body, page.shardId, buffer);
  appendStreamRecords(page.records, page.shardId, buffer);
  const first = page.records[0];
  const last = page.records.at(-1);
  const lastTime = last?.dynamodb?.ApproximateCreationDateTime;
  return {
    nextShardIterator: page.nextShardIterator,
    records: page.records.length,
    firstSequenceNumber: first?.dynamodb?.SequenceNumber,
    lastSequenceNumber: last?.dynamodb?.SequenceNumber,
    lastEventTimeMs:
      lastTime instanceof Date
        ? lastTime.getTime()
        : typeof lastTime === 'number'
          ? Math.round(lastTime * 1000)
          : undefined,
  };
}

/** Data the stream trimmed (24 h retention) before this reader got to it: listed in manifests. */
export interface StreamGap {
  shardId: string;
  /** The last sequence number known read before the gap (the checkpoint), if any. */
  afterSequenceNumber: string | undefined;
  reason: 'TrimmedDataAccessException';
  /** DynamoDB's clock when the gap was found, when known. */
  detectedAt: Date | undefined;
}

/**
 * Where a shard with no checkpoint starts reading (see lease.ts, LeaseStartAt):
 * - `TRIM_HORIZON`: the oldest record retained. Only for the shards the changelog began with:
 *   whatever the stream trimmed before that is before the changelog, not a gap.
 * - `AT_SEQUENCE_NUMBER`: the shard's first record (its StartingSequenceNumber). When the stream
 *   trimmed it already, TrimmedDataAccessException makes it a gap, then reading goes on from
 *   TRIM_HORIZON.
 * - `VANISHED`: the shard was not listed (trimmed away entirely), or listed without a starting
 *   sequence number. Gone (ResourceNotFoundException) means a gap for the whole shard, then
 *   shard-end; if it exists after all, it is looked up in DescribeStream and read from its
 *   StartingSequenceNumber, or, when no listing has it, a gap is recorded (its start is unknown)
 *   and it is read from TRIM_HORIZON.
 */
export type ShardStart =
  | { readonly type: 'TRIM_HORIZON' }
  | { readonly type: 'AT_SEQUENCE_NUMBER'; readonly sequenceNumber: string }
  | { readonly type: 'VANISHED' };

/** Where the next iterator opens: the start, or after the last record read. */
type Position = ShardStart | { readonly type: 'AFTER_SEQUENCE_NUMBER'; readonly sequenceNumber: string };

export interface ReaderLogger {
  error(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

export interface ShardReaderOptions {
  streamArn: string;
  shardId: string;
  /** The SDK client: GetShardIterator, DescribeStream, and GetRecords when `raw` is not given. */
  streams: DynamoDBStreamsClient;
  /** The fast path for GetRecords; without it the SDK's GetRecords is used. */
  raw?: RawGetRecordsClient;
  /** Resume after this sequence number (the checkpoint); absent = from `startAt` (nothing read yet). */
  afterSequenceNumber?: string;
  /** Where to start when there is no checkpoint. Default TRIM_HORIZON. */
  startAt?: ShardStart;
  /**
   * Receives every page, in order, and resolves when the next stage has taken it: the reader does
   * not fetch again until then (backpressure). It decodes the page where it wants it (decodePage).
   */
  consume: (page: FetchedPage) => Promise<PageSummary>;
  /** Called (and awaited) for every gap before reading resumes from TRIM_HORIZON. */
  onGap: (gap: StreamGap) => Promise<void> | void;
  /** Bounds GetRecords calls in flight across all shards' readers. */
  limiter?: PQueue;
  /** GetRecords Limit (max 1000). */
  limit?: number;
  /** Wait after an empty page, doubling from `idleMinMs` to `idleMaxMs` while pages stay empty. */
  idleMinMs?: number;
  idleMaxMs?: number;
  retry?: RetryOptions;
  logger?: ReaderLogger;
  /** Told of every GetRecords call and every page handed on (metrics, stall detection). */
  observer?: PipelineObserver;
  /** Confirms a shard really ended after ResourceNotFound (default: DescribeStream). */
  confirmShardGone?: (shardId: string, signal: AbortSignal) => Promise<boolean>;
}

export interface ShardReadResult {
  /** 'shard-end': the shard is closed and fully read; 'aborted': stopped by the signal. */
  outcome: 'shard-end' | 'aborted';
  lastSequenceNumber: string | undefined;
  records: number;
  pages: number;
  gaps: number;
  iteratorRenewals: number;
}

const errorCode = (e: unknown): string =>
  e instanceof StreamError ? e.code : typeof e === 'object' && e !== null ? String((e as Error).name) : '';

/**
 * Reads one shard from its checkpoint to its end (or until aborted): GetShardIterator, then
 * GetRecords in a loop, handing each page to `consume` and waiting for it.
 *
 * Start: AFTER the checkpoint, or at `startAt` when there is none (see ShardStart).
 *
 * Failure handling:
 * - ExpiredIteratorException: a new iterator AFTER the last sequence number read (or at the start
 *   position if nothing was read yet; TRIM_HORIZON after a gap): no gap, no repeat.
 * - Throttling, LimitExceeded, 5xx, network: jittered exponential back-off (support/retry.ts), then on.
 * - TrimmedDataAccessException: records were lost before they were read. The gap is reported
 *   (`onGap`, error log), then reading restarts at TRIM_HORIZON. Never skipped silently. One gap
 *   is reported until a record is read again, however often the trim is met meanwhile. Met while
 *   reading from TRIM_HORIZON (nothing read yet, or a gap already reported) it is no new gap: the
 *   horizon moved, a new TRIM_HORIZON iterator is taken (trims after the changelog's start are
 *   SegmentCommitter's check).
 * - ResourceNotFoundException from GetRecords: confirmed with DescribeStream; only a shard that is
 *   gone or closed counts as ended, otherwise the error is raised.
 * - ResourceNotFoundException from GetShardIterator: a shard DescribeStream no longer lists was
 *   trimmed away before the rest of it was read: a gap, then shard-end.
 * - No NextShardIterator: the shard is closed; the last page was delivered first.
 */
export class ShardReader {
  private readonly o: ShardReaderOptions;
  private lastSequenceNumber: string | undefined;
  private position: Position;
  /** A gap was reported and no record read since: meeting the trim again is the same gap. */
  private inGap = false;
  /** TRIM_HORIZON iterators renewed since the last record read (back-off from the second on). */
  private horizonRenewals = 0;
  private readonly stats = { records: 0, pages: 0, gaps: 0, iteratorRenewals: 0 };

  constructor(options: ShardReaderOptions) {
    this.o = options;
    this.lastSequenceNumber = options.afterSequenceNumber;
    this.position =
      options.afterSequenceNumber === undefined
        ? (options.startAt ?? { type: 'TRIM_HORIZON' })
        : { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: options.afterSequenceNumber };
  }

  async run(signal: AbortSignal): Promise<ShardReadResult> {
    const { idleMinMs = 250, idleMaxMs = 1000 } = this.o;
    let idleMs = 0;
    try {
      const opened = await this.openIterator(signal);
      if (opened === 'ended') return this.result('shard-end');
      let iterator = opened;
      for (;;) {
        signal.throwIfAborted();
        let page: FetchedPage;
        try {
          page = await this.fetch(iterator, signal);
        } catch (error) {
          const next = await this.recover(error, iterator, signal);
          if (next === 'ended') return this.result('shard-end');
          iterator = next;
          continue;
        }
        const summary = await this.o.consume(page);
        this.stats.pages++;
        this.o.observer?.pageConsumed?.({
          shardId: this.o.shardId,
          records: summary.records,
          bytes: page.kind === 'raw' ? page.body.byteLength : 0,
          lastEventTimeMs: summary.lastEventTimeMs,
          caughtUp: summary.records === 0 && summary.nextShardIterator !== undefined,
        });
        if (summary.records > 0) {
          this.stats.records += summary.records;
          this.lastSequenceNumber = summary.lastSequenceNumber;
          if (summary.lastSequenceNumber !== undefined) {
            this.position = { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: summary.lastSequenceNumber };
          }
          this.inGap = false;
          this.horizonRenewals = 0;
          idleMs = 0;
        }
        if (summary.nextShardIterator === undefined) return this.result('shard-end');
        iterator = summary.nextShardIterator;
        if (summary.records === 0) {
          idleMs = idleMs === 0 ? idleMinMs : Math.min(idleMaxMs, idleMs * 2);
          await sleep(idleMs, signal);
        }
      }
    } catch (error) {
      if (signal.aborted) return this.result('aborted');
      throw error;
    }
  }

  private result(outcome: ShardReadResult['outcome']): ShardReadResult {
    return { outcome, lastSequenceNumber: this.lastSequenceNumber, ...this.stats };
  }

  /**
   * An iterator at the current position (after the last record read, or the start); 'ended' for a
   * shard that is gone. A trimmed position becomes a gap, then TRIM_HORIZON.
   */
  private async openIterator(signal: AbortSignal): Promise<string | 'ended'> {
    const position = this.position;
    if (position.type === 'VANISHED') return this.openVanished(signal);
    try {
      return await this.iterator(
        position.type,
        position.type === 'TRIM_HORIZON' ? undefined : position.sequenceNumber,
        signal,
      );
    } catch (error) {
      const code = errorCode(error);
      if (code === 'TrimmedDataAccessException' && position.type !== 'TRIM_HORIZON') {
        await this.reportGap(undefined, signal);
        return this.openIterator(signal);
      }
      if (code === 'ResourceNotFoundException' && (await this.listedShard(signal)) === undefined) {
        await this.reportGap(
          undefined,
          signal,
          'the shard is gone: trimmed away before it was read to its end',
        );
        return 'ended';
      }
      throw error;
    }
  }

  /**
   * A shard no listing showed (or showed without a start). Gone: the whole rest of it is a gap.
   * Still there: read from its StartingSequenceNumber if DescribeStream now lists it, otherwise
   * from TRIM_HORIZON after a gap, since nothing proves its oldest records were not trimmed.
   */
  private async openVanished(signal: AbortSignal): Promise<string | 'ended'> {
    let horizon: string;
    try {
      horizon = await this.iterator('TRIM_HORIZON', undefined, signal);
    } catch (error) {
      if (errorCode(error) !== 'ResourceNotFoundException') throw error;
      await this.reportGap(undefined, signal, 'the shard was trimmed away entirely before it was read');
      return 'ended';
    }
    const starting = (await this.listedShard(signal))?.SequenceNumberRange?.StartingSequenceNumber;
    if (starting !== undefined) {
      this.position = { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: starting };
      return this.openIterator(signal);
    }
    await this.reportGap(undefined, signal, 'the shard is not listed, so where it starts is unknown');
    return horizon;
  }

  private iterator(type: ShardIteratorType, sequenceNumber: string | undefined, signal: AbortSignal) {
    const { streams, streamArn, shardId } = this.o;
    return getShardIterator(streams, { streamArn, shardId, type, sequenceNumber }, this.o.retry, signal);
  }

  private async fetch(iterator: string, signal: AbortSignal): Promise<FetchedPage> {
    const call = () =>
      retry(() => this.fetchOnce(iterator, signal), {
        ...this.o.retry,
        signal,
        onRetry: (error, attempt, delayMs) =>
          this.o.logger?.warn(
            { shardId: this.o.shardId, code: errorCode(error), attempt, delayMs },
            'GetRecords failed, backing off',
          ),
      });
    if (!this.o.limiter) return call();
    return (await this.o.limiter.add(call, { signal })) as FetchedPage;
  }

  private async fetchOnce(iterator: string, signal: AbortSignal): Promise<FetchedPage> {
    const observer = this.o.observer;
    if (observer?.getRecords === undefined) return this.getRecords(iterator, signal);
    const started = performance.now();
    try {
      const page = await this.getRecords(iterator, signal);
      observer.getRecords(this.o.shardId, 'ok', (performance.now() - started) / 1000);
      return page;
    } catch (error) {
      if (!signal.aborted) {
        observer.getRecords(
          this.o.shardId,
          errorCode(error) || 'Error',
          (performance.now() - started) / 1000,
        );
      }
      throw error;
    }
  }

  private async getRecords(iterator: string, signal: AbortSignal): Promise<FetchedPage> {
    const { shardId, limit = 1000 } = this.o;
    if (this.o.raw) {
      const response = await this.o.raw.getRecords({ ShardIterator: iterator, Limit: limit }, signal);
      return { kind: 'raw', shardId, body: response.body, serverTime: response.serverTime };
    }
    const output = await this.o.streams.send(
      new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }),
      {
        abortSignal: signal,
      },
    );
    return {
      kind: 'objects',
      shardId,
      records: (output.Records ?? []) as StreamRecordObject[],
      nextShardIterator: output.NextShardIterator,
      serverTime: undefined,
    };
  }

  /** Acts on a GetRecords failure that retry() did not absorb: the iterator to go on with, or the end. */
  private async recover(error: unknown, iterator: string, signal: AbortSignal): Promise<string | 'ended'> {
    if (signal.aborted) throw signal.reason;
    const code = errorCode(error);
    if (code === 'ExpiredIteratorException') {
      this.stats.iteratorRenewals++;
      return this.openIterator(signal);
    }
    if (code === 'TrimmedDataAccessException') {
      if (this.position.type === 'TRIM_HORIZON') {
        // Reading from the horizon skipped nothing the reader owes: the horizon moved between the
        // iterator and the read (DynamoDB Local: an iterator taken on an empty shard points before
        // its first record). Nothing was read yet, or a gap is already reported; a start shard's
        // trim after the changelog began is the committer's check on the first record.
        this.stats.iteratorRenewals++;
        this.o.logger?.warn(
          { shardId: this.o.shardId },
          'the trim horizon moved past the TRIM_HORIZON iterator: taking a new one (no gap)',
        );
        if (this.horizonRenewals++ > 0) await sleep(Math.min(1000, 50 * 2 ** this.horizonRenewals), signal);
        return this.openIterator(signal);
      }
      await this.reportGap(undefined, signal);
      return this.openIterator(signal);
    }
    if (code === 'ResourceNotFoundException') {
      const gone = await (this.o.confirmShardGone ?? this.describeSaysGone.bind(this))(
        this.o.shardId,
        signal,
      );
      if (gone) return 'ended';
      throw new StreamError(
        code,
        `shard ${this.o.shardId} not found, but DescribeStream still lists it open`,
        {
          shardId: this.o.shardId,
          cause: error,
          retriable: true,
        },
      );
    }
    if (isRetriable(error)) {
      // A long outage outlasted retry()'s budget: keep going with the same iterator (retry() has
      // already backed off); if it expires meanwhile, the ExpiredIterator path renews it.
      this.o.logger?.error(
        { shardId: this.o.shardId, code, error: (error as Error).message },
        'GetRecords keeps failing; still retrying',
      );
      return iterator;
    }
    throw error;
  }

  private async describeSaysGone(shardId: string, signal: AbortSignal): Promise<boolean> {
    const { shards } = await describeAllShards(this.o.streams, this.o.streamArn, { signal });
    const shard = shards.find((s) => s.ShardId === shardId);
    return shard === undefined || shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
  }

  /** The shard as DescribeStream lists it now; undefined when it (or its whole stream) is gone. */
  private async listedShard(signal: AbortSignal): Promise<Shard | undefined> {
    try {
      const { shards } = await describeAllShards(this.o.streams, this.o.streamArn, { signal });
      return shards.find((s) => s.ShardId === this.o.shardId);
    } catch (error) {
      if (errorCode(error) === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }

  /** Reports a gap (once until a record is read again); reading then goes on from TRIM_HORIZON. */
  private async reportGap(detectedAt: Date | undefined, signal: AbortSignal, detail?: string): Promise<void> {
    signal.throwIfAborted();
    this.position = { type: 'TRIM_HORIZON' };
    if (this.inGap) return;
    this.inGap = true;
    this.stats.gaps++;
    const gap: StreamGap = {
      shardId: this.o.shardId,
      afterSequenceNumber: this.lastSequenceNumber,
      reason: 'TrimmedDataAccessException',
      detectedAt,
    };
    // Loud on purpose: data was lost before it was read. The gap goes into the manifest.
    this.o.logger?.error(
      { ...gap, ...(detail !== undefined && { detail }) },
      'stream data was trimmed before it was read: recording a gap',
    );
    this.o.observer?.gapRecorded?.(this.o.shardId);
    await this.o.onGap(gap);
  }
}
