import {
  type _Record,
  DescribeStreamCommand,
  type DescribeStreamCommandOutput,
  type DynamoDBStreamsClient,
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandInput,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  ResourceNotFoundException,
  type Shard,
  TrimmedDataAccessException,
} from '@aws-sdk/client-dynamodb-streams';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import type { WireRecord } from './streamRecords.js';

/*
 * For `verify --stream` tests: a DynamoDB stream served through aws-sdk-client-mock from records
 * the test holds (shards with lineage, closed or open, a trim horizon per shard), a timeline of
 * every GetRecords call, and a virtual clock for the reader's pacers.
 */

export interface FakeShard {
  shardId: string;
  parentShardId?: string;
  /** Closed shards end (no NextShardIterator) after their last record. */
  closed: boolean;
  /** Sorted by sequence number on install. */
  records: WireRecord[];
  /** Records with a smaller sequence number are trimmed (gone). */
  trimHorizon?: bigint;
}

export interface GetRecordsCall {
  shardId: string;
  /** The virtual (or real) clock when the call started and ended (failed calls included). */
  startedAt: number;
  endedAt: number;
  records: number;
}

export interface FakeStreamOptions {
  streamArn: string;
  shards: FakeShard[];
  /** Records per answer at most (the request's Limit also applies). */
  pageSize?: number;
  /** Clock for the call timeline. */
  now?: () => number;
  /** Awaited inside every GetRecords (to hold calls open on a virtual clock). */
  latency?: () => Promise<void>;
  /** Per shard, what its next GetRecords calls throw, one entry a call (undefined: answers). */
  failures?: Map<string, (Error | undefined)[]>;
}

/** The SDK's shape of a record (what a real client hands back): Date times. */
export function sdkRecord(record: WireRecord): _Record {
  return {
    ...record,
    dynamodb: {
      ...record.dynamodb,
      ApproximateCreationDateTime: new Date(record.dynamodb.ApproximateCreationDateTime * 1000),
    },
  } as unknown as _Record;
}

const bySeq = (a: WireRecord, b: WireRecord) => {
  const x = BigInt(a.dynamodb.SequenceNumber);
  const y = BigInt(b.dynamodb.SequenceNumber);
  return x < y ? -1 : x > y ? 1 : 0;
};

export class FakeStream {
  readonly calls: GetRecordsCall[] = [];
  readonly iteratorRequests: GetShardIteratorCommandInput[] = [];
  /** GetRecords calls in flight now, per shard; and the most ever seen. */
  readonly inFlight = new Map<string, number>();
  maxInFlightPerShard = 0;
  maxInFlight = 0;
  private readonly shards: Map<string, FakeShard>;

  constructor(private readonly o: FakeStreamOptions) {
    for (const shard of o.shards) shard.records.sort(bySeq);
    this.shards = new Map(o.shards.map((s) => [s.shardId, s]));
  }

  shard(id: string): FakeShard {
    const shard = this.shards.get(id);
    if (shard === undefined) throw new Error(`no fake shard ${id}`);
    return shard;
  }

  install(mock: AwsClientStub<DynamoDBStreamsClient>): void {
    mock.on(DescribeStreamCommand).callsFake(() => this.describe());
    mock.on(GetShardIteratorCommand).callsFake((input: GetShardIteratorCommandInput) => this.iterator(input));
    mock.on(GetRecordsCommand).callsFake((input: GetRecordsCommandInput) => this.getRecords(input));
  }

  private describe(): DescribeStreamCommandOutput {
    const shards: Shard[] = [...this.shards.values()].map((s) => ({
      ShardId: s.shardId,
      ...(s.parentShardId !== undefined && { ParentShardId: s.parentShardId }),
      SequenceNumberRange: {
        StartingSequenceNumber: s.records[0]?.dynamodb.SequenceNumber ?? '100000000000000000000',
        ...(s.closed && {
          EndingSequenceNumber: s.records.at(-1)?.dynamodb.SequenceNumber ?? '100000000000000000000',
        }),
      },
    }));
    return {
      $metadata: {},
      StreamDescription: { StreamArn: this.o.streamArn, StreamStatus: 'ENABLED', Shards: shards },
    };
  }

  private firstRetained(shard: FakeShard): number {
    const h = shard.trimHorizon;
    if (h === undefined) return 0;
    const i = shard.records.findIndex((r) => BigInt(r.dynamodb.SequenceNumber) >= h);
    return i < 0 ? shard.records.length : i;
  }

  private iterator(input: GetShardIteratorCommandInput) {
    this.iteratorRequests.push(input);
    const shard = this.shards.get(input.ShardId ?? '');
    if (shard === undefined) {
      throw new ResourceNotFoundException({ message: `shard ${input.ShardId} not found`, $metadata: {} });
    }
    let position: number;
    if (input.ShardIteratorType === 'TRIM_HORIZON') {
      position = this.firstRetained(shard);
    } else {
      const seq = BigInt(input.SequenceNumber ?? '');
      if (shard.trimHorizon !== undefined && seq < shard.trimHorizon) {
        throw new TrimmedDataAccessException({ message: `${seq} is trimmed`, $metadata: {} });
      }
      const after = input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER';
      position = shard.records.findIndex((r) => {
        const s = BigInt(r.dynamodb.SequenceNumber);
        return after ? s > seq : s >= seq;
      });
      if (position < 0) position = shard.records.length;
    }
    return { $metadata: {}, ShardIterator: `${shard.shardId}|${position}` };
  }

  private async getRecords(input: GetRecordsCommandInput): Promise<GetRecordsCommandOutput> {
    const [shardId, at] = (input.ShardIterator ?? '').split('|') as [string, string];
    const now = this.o.now ?? Date.now;
    const call: GetRecordsCall = { shardId, startedAt: now(), endedAt: Number.NaN, records: 0 };
    this.calls.push(call);
    const inFlight = (this.inFlight.get(shardId) ?? 0) + 1;
    this.inFlight.set(shardId, inFlight);
    this.maxInFlightPerShard = Math.max(this.maxInFlightPerShard, inFlight);
    const total = [...this.inFlight.values()].reduce((a, b) => a + b, 0);
    this.maxInFlight = Math.max(this.maxInFlight, total);
    try {
      await this.o.latency?.();
      const failure = this.o.failures?.get(shardId)?.shift();
      if (failure !== undefined) throw failure;
      const shard = this.shard(shardId);
      const position = Number(at);
      if (position < this.firstRetained(shard)) {
        throw new TrimmedDataAccessException({ message: 'trimmed under the iterator', $metadata: {} });
      }
      const size = Math.min(input.Limit ?? 1000, this.o.pageSize ?? 1000);
      const page = shard.records.slice(position, position + size);
      const next = position + page.length;
      const ended = shard.closed && next >= shard.records.length;
      call.records = page.length;
      return {
        $metadata: {},
        Records: page.map(sdkRecord),
        ...(!ended && { NextShardIterator: `${shardId}|${next}` }),
      };
    } finally {
      call.endedAt = now();
      this.inFlight.set(shardId, (this.inFlight.get(shardId) ?? 1) - 1);
    }
  }
}

export const expired = () => new ExpiredIteratorException({ message: 'iterator expired', $metadata: {} });

/**
 * A clock that moves only when every sleeper is waiting: each turn of the event loop wakes the
 * earliest sleeper and sets the time to its wake-up time. Pacing decisions then depend on the
 * order of calls, never on how fast the machine is.
 */
export function virtualClock(): {
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
} {
  let now = 0;
  let order = 0;
  let scheduled = false;
  const timers: { at: number; n: number; resolve: () => void }[] = [];
  const pump = () => {
    scheduled = false;
    if (timers.length === 0) return;
    timers.sort((a, b) => a.at - b.at || a.n - b.n);
    const timer = timers.shift()!;
    now = Math.max(now, timer.at);
    timer.resolve();
    schedule();
  };
  const schedule = () => {
    if (scheduled || timers.length === 0) return;
    scheduled = true;
    setImmediate(pump);
  };
  return {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        const onAbort = () => {
          const i = timers.indexOf(timer);
          if (i >= 0) timers.splice(i, 1);
          reject(signal?.reason);
        };
        const timer = {
          at: now + Math.max(0, ms),
          n: order++,
          resolve: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
        };
        timers.push(timer);
        signal?.addEventListener('abort', onAbort, { once: true });
        schedule();
      }),
  };
}
