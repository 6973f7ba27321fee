import {
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  type ShardIteratorType,
} from '@aws-sdk/client-dynamodb-streams';
import { type AttributeMap, attributeMapToJson } from '../changelog/attributeValueJson.js';
import type { StreamRecordObject } from '../changelog/sdkRecordDecoder.js';
import type { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { ShardDiscovery, type Sleeper } from '../coordination/shardDiscovery.js';
import type { ShardGraph } from '../coordination/shardGraph.js';
import { getShardIterator } from '../coordination/shardIterator.js';
import { MalformedRecordError, StreamError } from '../support/errors.js';
import { sleep as defaultSleep, type RetryOptions, retry } from '../support/retry.js';

/*
 * A read-only, lease-free reader of a stream's shards for `verify --stream`. It takes no lease and
 * writes no checkpoint: it only reads what the stream still retains, as a second reader beside
 * the live daemon. DynamoDB allows two readers per shard, so it keeps to ONE GetRecords per shard
 * at a time (one loop per shard, never two loops on one shard), paces each shard's calls
 * (`shardRate`, default 5 calls/s) and all calls together (`totalRate`), reads at most
 * `concurrency` shards at once, lists shards through ShardDiscovery (DescribeStream paced under
 * its 10 calls/s), and retries throttling and 5xx with the project's retry layer.
 *
 * Why not ShardReader: it is the pipeline's reader. Its only rate hook is a queue around a whole
 * retry() (retried attempts are not paced, and there is no per-shard rate), it reads until
 * SHARD_END or an abort with wall-clock idle waits on an open shard, and it turns trimmed data
 * into gaps for the committer. The audit needs every attempt paced, to stop where its rules are
 * satisfied, and to know exactly which stretches of a shard it read (ReadSpan), so it has this
 * small loop on the same clients (the SDK's, or RawGetRecordsClient) and the same retry layer.
 */

/** One stream record, as much of it as the audit compares. */
export interface AuditRecord {
  sequenceNumber: string;
  eventId: string;
  /** eventName: INSERT, MODIFY or REMOVE. */
  op: string;
  /** dynamodb.Keys as DynamoDB JSON (the attribute order the stream gave). */
  keys: string;
  /** ApproximateCreationDateTime, epoch ms. */
  eventTimeMs: number;
}

/**
 * A stretch of a shard read without a break. It covers the sequence numbers from just after
 * `afterSequenceNumber` (or from `firstSequenceNumber` when it was opened at TRIM_HORIZON: what was
 * before it is trimmed) up to `lastSequenceNumber`, or with no upper end when `toEnd` (the shard
 * ended, or an open shard was read up to its newest record). A span opened at TRIM_HORIZON that
 * returned nothing covers nothing.
 */
export interface ReadSpan {
  afterSequenceNumber?: string;
  firstSequenceNumber?: string;
  lastSequenceNumber?: string;
  toEnd: boolean;
}

export interface ShardReadPlan {
  shardId: string;
  /** Closed (or closing) in the listing: read to SHARD_END, empty answers never stop it. */
  closed: boolean;
  /** Start after this sequence number; at TRIM_HORIZON when absent or no longer retained. */
  afterSequenceNumber?: string;
  /** Each answer's records, in stream order. Return false to stop reading the shard. */
  onPage: (records: AuditRecord[]) => boolean;
  /** True while the reader must get further (then empty answers stop an open shard much later). */
  needsMore?: () => boolean;
}

export type ShardReadEnd = 'shard-end' | 'caught-up' | 'stopped' | 'not-found';

export interface ShardReadOutcome {
  shardId: string;
  end: ShardReadEnd;
  spans: ReadSpan[];
  records: number;
  getRecordsCalls: number;
}

export interface StreamAuditReaderOptions {
  streams: DynamoDBStreamsClient;
  /** The fast GetRecords path (no SDK deserialisation); the SDK's GetRecords without it. */
  raw?: RawGetRecordsClient;
  /** GetRecords calls per second on one shard (default 5). */
  shardRate?: number;
  /** GetRecords calls per second over all shards (default 20). */
  totalRate?: number;
  /** Shards read at the same time (default 4). */
  concurrency?: number;
  /** GetRecords Limit (default 1000, the most). */
  limit?: number;
  /**
   * Empty answers in a row after which an open shard counts as read to its newest record
   * (default 5). While the plan still needs more (`needsMore`), ten times as many: DynamoDB may
   * answer empty before the part of a shard that holds records.
   */
  emptyReads?: number;
  retry?: Omit<RetryOptions, 'signal'>;
  /** Clock and sleep of the pacers (tests inject a virtual clock). */
  now?: () => number;
  sleep?: Sleeper;
}

export const AUDIT_DEFAULTS = {
  shardRate: 5,
  totalRate: 20,
  concurrency: 4,
  limit: 1000,
  emptyReads: 5,
} as const;

/** Spaces calls at least 1/rate s apart. Reserves slots synchronously, so concurrent callers share it. */
export interface RatePacer {
  wait(signal?: AbortSignal): Promise<void>;
}

export function createRatePacer(
  callsPerSecond: number,
  options: { now?: () => number; sleep?: Sleeper } = {},
): RatePacer {
  const { now = Date.now, sleep = defaultSleep } = options;
  const intervalMs = 1000 / callsPerSecond;
  let next = Number.NEGATIVE_INFINITY;
  return {
    async wait(signal) {
      const t = now();
      const at = Math.max(t, next);
      next = at + intervalMs;
      if (at > t) await sleep(at - t, signal);
    },
  };
}

const errorCode = (e: unknown): string =>
  e instanceof StreamError ? e.code : typeof e === 'object' && e !== null ? String((e as Error).name) : '';

/** `Keys` as DynamoDB JSON with the attribute names sorted: equal keys give equal text. */
export function canonicalKeys(keys: AttributeMap | string): string {
  const map = typeof keys === 'string' ? (JSON.parse(keys) as AttributeMap) : keys;
  const sorted: AttributeMap = {};
  for (const name of Object.keys(map).sort()) sorted[name] = map[name]!;
  return attributeMapToJson(sorted);
}

function toAuditRecord(record: StreamRecordObject, shardId: string): AuditRecord {
  const d = record.dynamodb;
  const sequenceNumber = d?.SequenceNumber;
  const fail = (why: string) =>
    new MalformedRecordError(`shard ${shardId} record ${sequenceNumber ?? '(no sequence number)'}: ${why}`, {
      shardId,
      sequenceNumber,
    });
  if (typeof sequenceNumber !== 'string' || !/^\d+$/.test(sequenceNumber)) {
    throw fail('no decimal dynamodb.SequenceNumber');
  }
  if (typeof record.eventID !== 'string') throw fail('no eventID');
  if (!d?.Keys) throw fail('no dynamodb.Keys');
  const t = d.ApproximateCreationDateTime;
  const eventTimeMs =
    t instanceof Date ? t.getTime() : typeof t === 'number' ? Math.round(t * 1000) : Number.NaN;
  if (!Number.isFinite(eventTimeMs)) throw fail('no valid ApproximateCreationDateTime');
  return {
    sequenceNumber,
    eventId: record.eventID,
    op: record.eventName ?? '',
    keys: attributeMapToJson(d.Keys),
    eventTimeMs,
  };
}

interface Answer {
  records: AuditRecord[];
  next: string | undefined;
}

export class StreamAuditReader {
  private readonly o: StreamAuditReaderOptions;
  private readonly totalPacer: RatePacer;
  private readonly shardRate: number;
  private calls = 0;

  constructor(options: StreamAuditReaderOptions) {
    for (const name of ['shardRate', 'totalRate', 'concurrency', 'limit', 'emptyReads'] as const) {
      const value = options[name];
      if (value !== undefined && !(value > 0)) {
        throw new StreamError('InvalidOption', `${name} must be positive, got ${value}`);
      }
    }
    this.o = options;
    this.shardRate = options.shardRate ?? AUDIT_DEFAULTS.shardRate;
    this.totalPacer = createRatePacer(options.totalRate ?? AUDIT_DEFAULTS.totalRate, this.clock());
  }

  /** GetRecords calls sent so far (every attempt, retries included). */
  get getRecordsCalls(): number {
    return this.calls;
  }

  private clock(): { now?: () => number; sleep?: Sleeper } {
    return {
      ...(this.o.now !== undefined && { now: this.o.now }),
      ...(this.o.sleep !== undefined && { sleep: this.o.sleep }),
    };
  }

  /**
   * The stream's shards and their lineage (one DescribeStream listing, paged and paced by
   * ShardDiscovery). Undefined when the stream no longer exists (disabled more than 24 h ago).
   */
  async listShards(streamArn: string, signal?: AbortSignal): Promise<ShardGraph | undefined> {
    const discovery = new ShardDiscovery({
      streamArn,
      streamsClient: this.o.streams,
      ...this.clock(),
      ...(this.o.retry !== undefined && { retry: this.o.retry }),
    });
    try {
      return await discovery.refresh(signal);
    } catch (error) {
      if (errorCode(error) === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }

  /**
   * Reads the planned shards, at most `concurrency` at a time, each by one loop. The first error
   * stops the others and is thrown once they have stopped.
   */
  async readShards(
    streamArn: string,
    plans: ShardReadPlan[],
    signal?: AbortSignal,
  ): Promise<ShardReadOutcome[]> {
    const stop = new AbortController();
    const combined = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
    const results: ShardReadOutcome[] = new Array(plans.length);
    let next = 0;
    const loop = async () => {
      while (next < plans.length) {
        const i = next++;
        results[i] = await this.readShard(streamArn, plans[i]!, combined);
      }
    };
    const loops = Array.from(
      { length: Math.min(this.o.concurrency ?? AUDIT_DEFAULTS.concurrency, plans.length) },
      () =>
        loop().catch((error: unknown) => {
          stop.abort(error);
          throw error;
        }),
    );
    const settled = await Promise.allSettled(loops);
    signal?.throwIfAborted();
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw stop.signal.aborted ? stop.signal.reason : failed.reason;
    return results;
  }

  /** Reads one shard per its plan. */
  async readShard(streamArn: string, plan: ShardReadPlan, signal: AbortSignal): Promise<ShardReadOutcome> {
    const { shardId } = plan;
    const pacer = createRatePacer(this.shardRate, this.clock());
    const outcome: ShardReadOutcome = { shardId, end: 'stopped', spans: [], records: 0, getRecordsCalls: 0 };
    const emptyReads = this.o.emptyReads ?? AUDIT_DEFAULTS.emptyReads;
    // Replaced by open(); the placeholder is never pushed.
    let span: ReadSpan = { toEnd: false };
    let last: string | undefined;

    /** A new iterator after `after` (or at TRIM_HORIZON): a new span unless it continues the current one. */
    const open = async (after: string | undefined, continuing: boolean): Promise<string | undefined> => {
      if (after !== undefined) {
        try {
          const iterator = await this.iterator(streamArn, shardId, 'AFTER_SEQUENCE_NUMBER', after, signal);
          if (!continuing) {
            span = { afterSequenceNumber: after, toEnd: false };
            outcome.spans.push(span);
          }
          return iterator;
        } catch (error) {
          if (errorCode(error) === 'ResourceNotFoundException') return undefined;
          if (errorCode(error) !== 'TrimmedDataAccessException') throw error;
        }
      }
      const iterator = await this.iterator(streamArn, shardId, 'TRIM_HORIZON', undefined, signal).catch(
        (error: unknown) => {
          if (errorCode(error) === 'ResourceNotFoundException') return undefined;
          throw error;
        },
      );
      if (iterator === undefined) return undefined;
      span = { toEnd: false };
      outcome.spans.push(span);
      return iterator;
    };

    let iterator = await open(plan.afterSequenceNumber, false);
    if (iterator === undefined) return { ...outcome, end: 'not-found' };
    let empty = 0;
    for (;;) {
      signal.throwIfAborted();
      let answer: Answer;
      try {
        answer = await this.getRecords(iterator, shardId, pacer, outcome, signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const code = errorCode(error);
        let reopened: string | undefined;
        if (code === 'ExpiredIteratorException') {
          // Go on right after the last record read: the span continues without a break.
          const after = last ?? span.afterSequenceNumber;
          reopened = await open(after, after !== undefined);
        } else if (code === 'TrimmedDataAccessException') {
          // What was between the last record read and the new trim horizon is gone: a new span.
          reopened = await open(undefined, false);
        } else if (code === 'ResourceNotFoundException') {
          reopened = undefined;
        } else {
          throw error;
        }
        if (reopened === undefined) return { ...outcome, end: 'not-found' };
        iterator = reopened;
        continue;
      }
      const { records } = answer;
      if (records.length > 0) {
        span.firstSequenceNumber ??= records[0]!.sequenceNumber;
        last = records.at(-1)!.sequenceNumber;
        span.lastSequenceNumber = last;
        outcome.records += records.length;
        empty = 0;
      } else {
        empty++;
      }
      const more = plan.onPage(records);
      if (answer.next === undefined) {
        span.toEnd = true;
        return { ...outcome, end: 'shard-end' };
      }
      if (!more) return { ...outcome, end: 'stopped' };
      if (!plan.closed && empty >= emptyReads * (plan.needsMore?.() ? 10 : 1)) {
        span.toEnd = true;
        return { ...outcome, end: 'caught-up' };
      }
      iterator = answer.next;
    }
  }

  private iterator(
    streamArn: string,
    shardId: string,
    type: ShardIteratorType,
    sequenceNumber: string | undefined,
    signal: AbortSignal,
  ): Promise<string> {
    return getShardIterator(
      this.o.streams,
      { streamArn, shardId, type, sequenceNumber },
      this.o.retry,
      signal,
    );
  }

  /** One GetRecords answer; every attempt waits for the shard's pacer, then the global one. */
  private getRecords(
    iterator: string,
    shardId: string,
    pacer: RatePacer,
    outcome: ShardReadOutcome,
    signal: AbortSignal,
  ): Promise<Answer> {
    const limit = this.o.limit ?? AUDIT_DEFAULTS.limit;
    return retry(
      async () => {
        await pacer.wait(signal);
        await this.totalPacer.wait(signal);
        this.calls++;
        outcome.getRecordsCalls++;
        if (this.o.raw) {
          const response = await this.o.raw.getRecords({ ShardIterator: iterator, Limit: limit }, signal);
          const body = JSON.parse(Buffer.from(response.body).toString('utf8')) as {
            Records?: StreamRecordObject[];
            NextShardIterator?: string;
          };
          return {
            records: (body.Records ?? []).map((r) => toAuditRecord(r, shardId)),
            next: body.NextShardIterator ?? undefined,
          };
        }
        const output = await this.o.streams.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }),
          {
            abortSignal: signal,
          },
        );
        return {
          records: ((output.Records ?? []) as StreamRecordObject[]).map((r) => toAuditRecord(r, shardId)),
          next: output.NextShardIterator ?? undefined,
        };
      },
      { ...this.o.retry, signal },
    );
  }
}
