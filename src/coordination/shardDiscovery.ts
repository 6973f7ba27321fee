import { DescribeTableCommand, type DynamoDBClient, type TableDescription } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  type DescribeStreamCommandInput,
  type DynamoDBStreamsClient,
  type KeySchemaElement,
  ListStreamsCommand,
  type Shard,
  type StreamStatus,
} from '@aws-sdk/client-dynamodb-streams';
import { ChangelogError, ConfigError, StreamError } from '../support/errors.js';
import { sleep as defaultSleep, type RetryOptions } from '../support/retry.js';
import { awsCall } from './awsCall.js';
import { ShardGraph } from './shardGraph.js';

export type Sleeper = (ms: number, signal?: AbortSignal) => Promise<void>;

/** DescribeStream allows 10 calls a second; spacing our calls 100 ms apart stays under it. */
export const DESCRIBE_STREAM_MIN_INTERVAL_MS = 100;
/** The most shards DescribeStream returns in one page. */
export const DESCRIBE_STREAM_MAX_PAGE = 100;

/** Spaces calls at least `minIntervalMs` apart. One pacer shared by callers keeps them all under a limit. */
export interface Pacer {
  wait(signal?: AbortSignal): Promise<void>;
}

export function createPacer(
  minIntervalMs: number,
  options: { now?: () => number; sleep?: Sleeper } = {},
): Pacer {
  const { now = Date.now, sleep = defaultSleep } = options;
  let last: number | undefined;
  return {
    async wait(signal) {
      if (last !== undefined) {
        const delay = last + minIntervalMs - now();
        if (delay > 0) await sleep(delay, signal);
      }
      last = now();
    },
  };
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Back-off for throttling and 5xx (LimitExceededException and the like); see support/retry.ts. */
  retry?: Omit<RetryOptions, 'signal'>;
}

export interface DescribeStreamOptions extends CallOptions {
  /** Shards per DescribeStream page, at most 100. */
  pageLimit?: number;
  /** Shared pacer; without one each listing paces its own pages with `now` and `sleep`. */
  pacer?: Pacer;
  now?: () => number;
  sleep?: Sleeper;
}

export interface StreamShards {
  streamArn: string;
  streamStatus: StreamStatus | undefined;
  shards: Shard[];
  tableName?: string;
  keySchema?: KeySchemaElement[];
}

/** Lists every shard of a stream, following LastEvaluatedShardId until the last page. */
export function describeAllShards(
  client: DynamoDBStreamsClient,
  streamArn: string,
  options: DescribeStreamOptions = {},
): Promise<StreamShards> {
  return describePages(client, { StreamArn: streamArn }, options);
}

/**
 * Endpoints that do not know ShardFilter (older DynamoDB Local, some emulators) reject it with
 * one of these. A ValidationException can also mean a malformed shard id; the fallback then costs
 * a full listing, never a wrong answer.
 */
const SHARD_FILTER_REJECTIONS = new Set([
  'ValidationException',
  'UnknownOperationException',
  'InvalidParameterException',
  'InvalidParameterValueException',
  'SerializationException',
]);

/** Clients that rejected ShardFilter once; they get the full listing without asking again. */
const shardFilterUnsupported = new WeakSet<DynamoDBStreamsClient>();

/**
 * The children of `shardId`, asked with ShardFilter CHILD_SHARDS (one cheap call instead of the
 * whole listing). Falls back to listing all shards when the endpoint rejects the filter, and
 * filters by ParentShardId either way, so an endpoint that ignores the filter is still right.
 */
export async function describeChildShards(
  client: DynamoDBStreamsClient,
  streamArn: string,
  shardId: string,
  options: DescribeStreamOptions = {},
): Promise<Shard[]> {
  if (!shardFilterUnsupported.has(client)) {
    try {
      const filtered = await describePages(
        client,
        { StreamArn: streamArn, ShardFilter: { Type: 'CHILD_SHARDS', ShardId: shardId } },
        options,
      );
      return filtered.shards.filter((s) => s.ParentShardId === shardId);
    } catch (error) {
      if (!(error instanceof StreamError && SHARD_FILTER_REJECTIONS.has(error.code))) throw error;
      shardFilterUnsupported.add(client);
    }
  }
  const all = await describeAllShards(client, streamArn, options);
  return all.shards.filter((s) => s.ParentShardId === shardId);
}

async function describePages(
  client: DynamoDBStreamsClient,
  input: DescribeStreamCommandInput,
  options: DescribeStreamOptions,
): Promise<StreamShards> {
  const { pageLimit = DESCRIBE_STREAM_MAX_PAGE } = options;
  const pacer = options.pacer ?? createPacer(DESCRIBE_STREAM_MIN_INTERVAL_MS, options);
  const streamArn = input.StreamArn ?? '';
  const result: StreamShards = { streamArn, streamStatus: undefined, shards: [] };
  // Every LastEvaluatedShardId seen: one coming back means the listing is not advancing.
  const seen = new Set<string>();
  let exclusiveStart: string | undefined;
  for (;;) {
    const pageInput: DescribeStreamCommandInput = {
      ...input,
      Limit: pageLimit,
      ...(exclusiveStart !== undefined && { ExclusiveStartShardId: exclusiveStart }),
    };
    const page = await call(
      `DescribeStream ${streamArn}`,
      (s) => client.send(new DescribeStreamCommand(pageInput), { abortSignal: s }),
      options,
      pacer,
    );
    const description = page.StreamDescription;
    if (!description) {
      throw new StreamError('InvalidResponse', `DescribeStream ${streamArn} returned no StreamDescription`);
    }
    result.shards.push(...(description.Shards ?? []));
    result.streamStatus = description.StreamStatus ?? result.streamStatus;
    if (description.TableName !== undefined) result.tableName = description.TableName;
    if (description.KeySchema !== undefined) result.keySchema = description.KeySchema;
    // An empty page with a LastEvaluatedShardId is not the end: DynamoDB may return short pages.
    const next = description.LastEvaluatedShardId;
    if (!next) return result;
    if (seen.has(next)) {
      throw new StreamError(
        'PaginationNotAdvancing',
        `DescribeStream ${streamArn} returned LastEvaluatedShardId ${next} twice; stopping instead of looping`,
        { shardId: next },
      );
    }
    seen.add(next);
    exclusiveStart = next;
  }
}

export interface TableStream {
  tableName: string;
  latestStreamArn: string | undefined;
  streamEnabled: boolean;
  /** The whole DescribeTable answer (key schema and the rest), so no caller asks twice. */
  description?: TableDescription | undefined;
}

/** DescribeTable's view of the table's stream: its latest ARN (possibly disabled) and whether it is on. */
export async function describeTableStream(
  dynamodb: DynamoDBClient,
  tableName: string,
  options: CallOptions = {},
): Promise<TableStream> {
  const out = await call(
    `DescribeTable ${tableName}`,
    (s) => dynamodb.send(new DescribeTableCommand({ TableName: tableName }), { abortSignal: s }),
    options,
  );
  return {
    tableName,
    latestStreamArn: out.Table?.LatestStreamArn,
    streamEnabled: out.Table?.StreamSpecification?.StreamEnabled === true,
    description: out.Table,
  };
}

/** The ARN of the table's enabled stream; StreamError('StreamNotEnabled') when it has none. */
export function enabledStreamArn(table: TableStream): string {
  if (!table.streamEnabled || table.latestStreamArn === undefined) throw streamNotEnabled(table.tableName);
  return table.latestStreamArn;
}

/** The ARN of the table's enabled stream; StreamError('StreamNotEnabled') when it has none. */
export async function resolveStreamArn(
  dynamodb: DynamoDBClient,
  tableName: string,
  options: CallOptions = {},
): Promise<string> {
  return enabledStreamArn(await describeTableStream(dynamodb, tableName, options));
}

function streamNotEnabled(tableName: string): StreamError {
  return new StreamError(
    'StreamNotEnabled',
    `table ${tableName} has no enabled DynamoDB stream; enable one, e.g. ` +
      `aws dynamodb update-table --table-name ${tableName} ` +
      '--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES ' +
      '(NEW_AND_OLD_IMAGES is recommended: the changelog then keeps both the new and the old image)',
  );
}

/** Every stream ARN of the table that ListStreams still knows, oldest first. */
export async function listTableStreams(
  client: DynamoDBStreamsClient,
  tableName: string,
  options: CallOptions = {},
): Promise<string[]> {
  const arns = new Set<string>();
  const seen = new Set<string>();
  let exclusiveStart: string | undefined;
  for (;;) {
    const input = {
      TableName: tableName,
      ...(exclusiveStart !== undefined && { ExclusiveStartStreamArn: exclusiveStart }),
    };
    const page = await call(
      `ListStreams ${tableName}`,
      (s) => client.send(new ListStreamsCommand(input), { abortSignal: s }),
      options,
    );
    for (const stream of page.Streams ?? []) if (stream.StreamArn) arns.add(stream.StreamArn);
    const next = page.LastEvaluatedStreamArn;
    if (!next) break;
    if (seen.has(next)) {
      throw new StreamError(
        'PaginationNotAdvancing',
        `ListStreams ${tableName} returned LastEvaluatedStreamArn ${next} twice; stopping instead of looping`,
      );
    }
    seen.add(next);
    exclusiveStart = next;
  }
  return [...arns].sort((a, b) => compareStrings(streamLabelOf(a), streamLabelOf(b)) || compareStrings(a, b));
}

/** The label a stream ARN ends with (`.../stream/2024-01-01T00:00:00.000`): its creation time. */
export function streamLabelOf(streamArn: string): string {
  const at = streamArn.lastIndexOf('/stream/');
  return at < 0 ? '' : streamArn.slice(at + '/stream/'.length);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One AWS call through awsCall (paced when a pacer is given); failures come out as StreamError with the service's code. */
function call<T>(
  what: string,
  fn: (signal: AbortSignal | undefined) => Promise<T>,
  options: CallOptions,
  pacer?: Pacer,
): Promise<T> {
  return awsCall(fn, {
    retry: options.retry,
    signal: options.signal,
    ...(pacer !== undefined && { beforeAttempt: (s: AbortSignal | undefined) => pacer.wait(s) }),
    wrap: (error, _description, retriable) => {
      const code = (error as { name?: string } | null)?.name ?? 'UnknownError';
      const message = error instanceof Error ? error.message : String(error);
      return new StreamError(code, `${what} failed: ${code}: ${message}`, { cause: error, retriable });
    },
  });
}

export type StreamState = 'draining' | 'current';

export interface DiscoveredStream {
  readonly arn: string;
  readonly state: StreamState;
  readonly graph: ShardGraph;
}

type StreamSource =
  | { streamArn: string; tableName?: undefined }
  | { tableName: string; streamArn?: undefined };

export type ShardDiscoveryOptions = StreamSource & {
  streamsClient: DynamoDBStreamsClient;
  /** Needed with `tableName`: DescribeTable finds the table's latest stream. */
  dynamodbClient?: DynamoDBClient;
  /** Full listing every this often; KCL's shard sync default is 60 s. */
  resyncIntervalMs?: number;
  /** Sooner listing while a closed shard has no children yet (they appear within moments). */
  childResyncDelayMs?: number;
  pageLimit?: number;
  now?: () => number;
  sleep?: Sleeper;
  retry?: Omit<RetryOptions, 'signal'>;
  /** Called when a refresh in `start` fails; the loop then tries again later. Without it, `start` rejects. */
  onError?: (error: unknown) => void;
};

interface StreamEntry {
  arn: string;
  state: StreamState;
  graph: ShardGraph;
  /** A draining stream whose every shard was seen closed: its graph is final and was reported once. */
  final: boolean;
}

const ENDED_STATUSES: ReadonlySet<string> = new Set(['DISABLING', 'DISABLED']);

/**
 * Keeps the shard graph of a table's stream up to date: a full listing every `resyncIntervalMs`,
 * and at once on `requestResync()` (an owned shard ended, or a closed shard had no children yet).
 *
 * Stream re-enable (table mode): disabling a stream closes its shards; enabling again creates a
 * new stream with a new ARN and new shards. When DescribeTable's LatestStreamArn changes, the new
 * stream becomes 'current' and the old one is listed in `streams` as 'draining'. The old stream is
 * listed again on each refresh until every one of its shards is seen closed; that refresh reports
 * it one last time with its final graph (a disabled stream gets no new shards), and the refresh
 * after drops it: the caller drains those shards to SHARD_END from that final graph.
 */
export class ShardDiscovery {
  private readonly options: ShardDiscoveryOptions;
  private readonly pacer: Pacer;
  private readonly sleep: Sleeper;
  /** Oldest first; the last entry is the current stream. */
  private entries: StreamEntry[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private resyncRequested = false;
  private running = false;
  private wake: (() => void) | undefined;

  constructor(options: ShardDiscoveryOptions) {
    const issues: string[] = [];
    if ((options.streamArn === undefined) === (options.tableName === undefined)) {
      issues.push('shard discovery needs exactly one of streamArn and tableName');
    }
    if (options.tableName !== undefined && options.dynamodbClient === undefined) {
      issues.push('shard discovery by tableName needs a dynamodbClient to call DescribeTable');
    }
    if (issues.length > 0) throw new ConfigError(issues);
    this.options = options;
    this.sleep = options.sleep ?? defaultSleep;
    this.pacer = createPacer(DESCRIBE_STREAM_MIN_INTERVAL_MS, {
      sleep: this.sleep,
      ...(options.now !== undefined && { now: options.now }),
    });
  }

  /** The current stream's graph; empty before the first refresh. */
  get graph(): ShardGraph {
    return this.entries.at(-1)?.graph ?? ShardGraph.empty();
  }

  /** Streams to read, oldest first: draining ones, then the current one. */
  get streams(): DiscoveredStream[] {
    return this.entries.map(({ arn, state, graph }) => ({ arn, state, graph }));
  }

  /** Asks a running `start` loop to refresh now; requests while one is pending coalesce. */
  requestResync(): void {
    this.resyncRequested = true;
    this.wake?.();
  }

  /** Drops finished, trimmed shards from every stream's graph (see ShardGraph.forget). */
  forget(ids: Iterable<string>): void {
    const list = [...ids];
    for (const entry of this.entries) entry.graph = entry.graph.forget(list);
  }

  /** Lists the shards again and merges them into the graph; refreshes run one at a time. */
  refresh(signal?: AbortSignal): Promise<ShardGraph> {
    const run = this.queue.then(() => this.refreshNow(signal));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Refreshes until `signal` aborts, calling `onChange` (awaited, so a slow consumer slows
   * discovery) whenever a stream, a shard or a shard's closed state changed. Resolves on abort.
   */
  async start(signal: AbortSignal, onChange: (graph: ShardGraph) => void | Promise<void>): Promise<void> {
    // One loop per instance: two would share the wake-up hook and double the DescribeStream calls.
    if (this.running) throw new ChangelogError('shard discovery is already running');
    this.running = true;
    let lastSignature: string | undefined;
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        this.resyncRequested = false;
        let graph: ShardGraph | undefined;
        try {
          graph = await this.refresh(signal);
        } catch (error) {
          if (signal.aborted) return;
          if (!this.options.onError) throw error;
          this.options.onError(error);
        }
        if (graph !== undefined) {
          const signature = this.signature();
          if (signature !== lastSignature) {
            lastSignature = signature;
            await onChange(graph);
          }
        }
        if (signal.aborted) return;
        if (this.resyncRequested) continue;
        const soon = this.entries.some((e) => e.graph.needsResync);
        await this.idle(
          soon ? (this.options.childResyncDelayMs ?? 1_000) : (this.options.resyncIntervalMs ?? 60_000),
        );
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.wake = undefined;
      this.running = false;
    }
  }

  /** Waits `ms`, or less if `requestResync` or the abort listener wakes it. */
  private async idle(ms: number): Promise<void> {
    const timer = new AbortController();
    const woken = new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    try {
      await Promise.race([this.sleep(ms, timer.signal).catch(() => undefined), woken]);
    } finally {
      timer.abort();
      this.wake = undefined;
    }
  }

  private async refreshNow(signal: AbortSignal | undefined): Promise<ShardGraph> {
    this.adopt(await this.latestStreamArn(signal));
    this.entries = this.entries.filter((e) => !(e.state === 'draining' && e.final));
    for (const entry of [...this.entries]) {
      let listed: StreamShards;
      try {
        listed = await describeAllShards(this.options.streamsClient, entry.arn, this.describeOptions(signal));
      } catch (error) {
        // A replaced stream past its 24 h retention is gone; nothing is left in it to drain.
        if (
          entry.state === 'draining' &&
          error instanceof StreamError &&
          error.code === 'ResourceNotFoundException'
        ) {
          this.entries = this.entries.filter((e) => e !== entry);
          continue;
        }
        throw error;
      }
      const ended = entry.state === 'draining' || ENDED_STATUSES.has(listed.streamStatus ?? '');
      entry.graph = entry.graph.merge(listed.shards, { streamEnded: ended });
      if (entry.state === 'draining') entry.final = entry.graph.shards().every((s) => s.endingSequenceNumber);
    }
    return this.graph;
  }

  private async latestStreamArn(signal: AbortSignal | undefined): Promise<string> {
    const { tableName, streamArn, dynamodbClient } = this.options;
    if (streamArn !== undefined) return streamArn;
    const table = await describeTableStream(dynamodbClient!, tableName, {
      ...(signal !== undefined && { signal }),
      ...(this.options.retry !== undefined && { retry: this.options.retry }),
    });
    const current = this.entries.at(-1);
    // A disabled stream we already follow is still read to its end; one we never saw is not started.
    if (table.latestStreamArn === undefined || (!table.streamEnabled && current === undefined)) {
      if (current !== undefined) return current.arn;
      throw streamNotEnabled(tableName);
    }
    return table.latestStreamArn;
  }

  private adopt(arn: string): void {
    const current = this.entries.at(-1);
    if (current?.arn === arn) return;
    if (current !== undefined) current.state = 'draining';
    this.entries.push({ arn, state: 'current', graph: ShardGraph.empty(), final: false });
  }

  private describeOptions(signal: AbortSignal | undefined): DescribeStreamOptions {
    return {
      pacer: this.pacer,
      ...(signal !== undefined && { signal }),
      ...(this.options.pageLimit !== undefined && { pageLimit: this.options.pageLimit }),
      ...(this.options.retry !== undefined && { retry: this.options.retry }),
    };
  }

  /** What onChange consumers care about: streams, their states, shards and which are closed. */
  private signature(): string {
    return this.entries
      .map((e) => {
        const shards = e.graph.shards().map((s) => `${s.shardId}${s.endingSequenceNumber ? '+' : '-'}`);
        return `${e.arn}|${e.state}|${shards.join(',')}`;
      })
      .join(';');
  }
}
