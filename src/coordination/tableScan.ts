import {
  type AttributeValue,
  DescribeTableCommand,
  type DynamoDBClient,
  ScanCommand,
  type ScanCommandOutput,
} from '@aws-sdk/client-dynamodb';
import { BoundedChannel } from '../support/boundedChannel.js';
import { ConfigError, TableScanError } from '../support/errors.js';
import { combineSignals, type RetryOptions } from '../support/retry.js';
import { awsCall, hasName } from './awsCall.js';
import { createReadRateLimiter, type ReadRateLimiter } from './readRateLimiter.js';
import type { Sleeper } from './shardDiscovery.js';

/*
 * replay's scan source: a parallel Scan of the table (TotalSegments), under a read-rate limit,
 * resumable from the progress each handed-out page carries.
 */

/** DynamoDB's limit on a parallel Scan's TotalSegments. */
export const MAX_SCAN_SEGMENTS = 1_000_000;
/** Most Scan requests in flight at once. */
export const MAX_SCAN_CONCURRENCY = 16;
export const SCAN_DEFAULTS = { concurrency: 4 } as const;

/** A LastEvaluatedKey: the table's key attributes (S, N or B) of the last item a page read. */
export type ScanKey = Record<string, AttributeValue>;

/** A segment's place: the key its next page starts after, or 'done'. */
export type ScanSegmentState = ScanKey | 'done';

/**
 * Where a scan stands. Segments below `doneBelow` are all done (kept as a count, so the progress of
 * a scan with many segments stays small); `segments` holds the others that have begun. A segment
 * in neither has not begun. JSON-serialisable with `serializeScanProgress`.
 */
export interface ScanProgress {
  readonly table: string;
  readonly totalSegments: number;
  readonly doneBelow: number;
  readonly segments: Readonly<Record<number, ScanSegmentState>>;
}

export interface ScanPage {
  segment: number;
  items: Record<string, AttributeValue>[];
  /** ConsumedCapacity.CapacityUnits of the answer (0 when the endpoint did not say). */
  consumedRcu: number;
  /**
   * The progress after this page and every page handed out before it, and none handed out after:
   * once the consumer has committed this page and all earlier ones, it can persist this to resume.
   */
  progress: ScanProgress;
}

export interface ScanTableOptions {
  table: string;
  /** TotalSegments, 1..1,000,000. */
  segments: number;
  /** Read capacity units per second over all segments; unlimited when absent. */
  maxRcuPerSecond?: number;
  /** Scan's Limit (items per page); DynamoDB's 1 MB page size when absent. */
  pageLimit?: number;
  consistentRead?: boolean;
  /** Continue a scan: done segments are skipped, begun ones restart after their key. */
  resume?: ScanProgress;
  signal?: AbortSignal;
  /** Requests in flight at most, 1..16 (never more than the segments left). Default 4. */
  concurrency?: number;
  /** Pages fetched but not yet taken by the consumer, at most (beyond one per request). Default `concurrency`. */
  bufferPages?: number;
  /** Back-off for throttling, 5xx and network faults (the one retry layer, via awsCall). */
  retry?: Omit<RetryOptions, 'signal'>;
  /** Clock and sleep of the rate limiter (tests inject a virtual clock). */
  now?: () => number;
  sleep?: Sleeper;
}

/** The progress of a scan that has not begun. */
export function initialScanProgress(table: string, totalSegments: number): ScanProgress {
  return { table, totalSegments, doneBelow: 0, segments: {} };
}

/** Where one segment stands: 'pending' (not begun), 'done', or the key its next page starts after. */
export function scanSegmentState(progress: ScanProgress, segment: number): ScanSegmentState | 'pending' {
  if (segment < progress.doneBelow) return 'done';
  return progress.segments[segment] ?? 'pending';
}

export function isScanComplete(progress: ScanProgress): boolean {
  return progress.doneBelow >= progress.totalSegments;
}

/**
 * Scans `table` in `segments` parallel segments and hands out its pages in the order they arrive.
 * Options are checked at once (ConfigError; TableScanError for a resume of another scan); AWS
 * failures surface from the iteration as TableScanError. Breaking out of the loop stops the scan.
 */
export function scanTable(
  client: DynamoDBClient,
  options: ScanTableOptions,
): AsyncGenerator<ScanPage, void, undefined> {
  return runScan(client, planScan(options));
}

interface ScanPlan {
  table: string;
  start: ScanProgress;
  concurrency: number;
  bufferPages: number;
  limiter: ReadRateLimiter | undefined;
  pageLimit: number | undefined;
  consistentRead: boolean | undefined;
  signal: AbortSignal | undefined;
  retry: Omit<RetryOptions, 'signal'> | undefined;
}

function planScan(options: ScanTableOptions): ScanPlan {
  const { table, segments, maxRcuPerSecond, pageLimit, resume } = options;
  const concurrency = options.concurrency ?? SCAN_DEFAULTS.concurrency;
  const bufferPages = options.bufferPages ?? concurrency;
  const issues: string[] = [];
  if (typeof table !== 'string' || table === '') issues.push('scan: table must be a non-empty name');
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SCAN_SEGMENTS) {
    issues.push(
      `scan of table ${table}: segments ${segments} must be an integer from 1 to ${MAX_SCAN_SEGMENTS}`,
    );
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_SCAN_CONCURRENCY) {
    issues.push(
      `scan of table ${table}: concurrency ${concurrency} must be an integer from 1 to ${MAX_SCAN_CONCURRENCY}`,
    );
  }
  if (!Number.isInteger(bufferPages) || bufferPages < 1) {
    issues.push(`scan of table ${table}: bufferPages ${bufferPages} must be an integer >= 1`);
  }
  if (pageLimit !== undefined && (!Number.isInteger(pageLimit) || pageLimit < 1)) {
    issues.push(`scan of table ${table}: pageLimit ${pageLimit} must be an integer >= 1`);
  }
  if (maxRcuPerSecond !== undefined && !(Number.isFinite(maxRcuPerSecond) && maxRcuPerSecond > 0)) {
    issues.push(`scan of table ${table}: maxRcuPerSecond ${maxRcuPerSecond} must be a finite number above 0`);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  if (resume !== undefined && (resume.table !== table || resume.totalSegments !== segments)) {
    throw new TableScanError(
      'progress-mismatch',
      table,
      `cannot resume the scan of table ${table} in ${segments} segments from the progress of a scan of ` +
        `table ${resume.table} in ${resume.totalSegments} segments; resume with the same table and segment count, ` +
        'or start over without the progress',
    );
  }
  return {
    table,
    start: resume ?? initialScanProgress(table, segments),
    concurrency,
    bufferPages,
    limiter:
      maxRcuPerSecond === undefined
        ? undefined
        : createReadRateLimiter({
            unitsPerSecond: maxRcuPerSecond,
            ...(options.now !== undefined && { now: options.now }),
            ...(options.sleep !== undefined && { sleep: options.sleep }),
          }),
    pageLimit,
    consistentRead: options.consistentRead,
    signal: options.signal,
    retry: options.retry,
  };
}

/** A page as a segment fetched it, before it is handed out with its progress. */
interface FetchedPage {
  segment: number;
  items: Record<string, AttributeValue>[];
  consumedRcu: number;
  lastEvaluatedKey: ScanKey | undefined;
}

async function* runScan(client: DynamoDBClient, plan: ScanPlan): AsyncGenerator<ScanPage, void, undefined> {
  const stop = new AbortController();
  const signal = combineSignals(plan.signal, stop.signal) ?? stop.signal;
  const channel = new BoundedChannel<FetchedPage>(plan.bufferPages);
  const tracker = new ProgressTracker(plan.start);
  const claims = claimableSegments(plan.start);
  const worker = async () => {
    for (let claim = claims.next(); !claim.done; claim = claims.next()) {
      await scanSegment(client, plan, claim.value.segment, claim.value.startKey, channel, signal);
    }
  };
  const workerCount = Math.min(plan.concurrency, pendingSegmentCount(plan.start));
  const workers = Promise.all(Array.from({ length: workerCount }, worker)).then(
    () => channel.close(),
    (error: unknown) => {
      stop.abort(error);
      channel.fail(error);
    },
  );
  try {
    for (;;) {
      // The caller's signal, not the combined one: a worker's failure reaches us through the channel.
      const next = await channel.take(plan.signal);
      if (next.done) break;
      const page = next.value;
      tracker.apply(page.segment, page.lastEvaluatedKey);
      yield {
        segment: page.segment,
        items: page.items,
        consumedRcu: page.consumedRcu,
        progress: tracker.snapshot(),
      };
    }
    await workers;
  } finally {
    // Stops requests and waits still pending when the consumer stops early or the scan failed, and
    // releases segments blocked on a full channel. Not awaited, so an abort returns at once even if
    // an SDK call is slow to notice it.
    const stopped = new Error(`scan of table ${plan.table} stopped`);
    stop.abort(stopped);
    channel.fail(stopped);
  }
}

/** Reads one segment to its end, handing each page to the channel (waiting while it is full). */
async function scanSegment(
  client: DynamoDBClient,
  plan: ScanPlan,
  segment: number,
  startKey: ScanKey | undefined,
  channel: BoundedChannel<FetchedPage>,
  signal: AbortSignal,
): Promise<void> {
  const total = plan.start.totalSegments;
  let exclusiveStartKey = startKey;
  let estimate = 1;
  for (;;) {
    await plan.limiter?.acquire(estimate, signal);
    const input = {
      TableName: plan.table,
      Segment: segment,
      TotalSegments: total,
      ReturnConsumedCapacity: 'TOTAL' as const,
      ...(exclusiveStartKey !== undefined && { ExclusiveStartKey: exclusiveStartKey }),
      ...(plan.pageLimit !== undefined && { Limit: plan.pageLimit }),
      ...(plan.consistentRead !== undefined && { ConsistentRead: plan.consistentRead }),
    };
    const out: ScanCommandOutput = await awsCall(
      (s) => client.send(new ScanCommand(input), { abortSignal: s }),
      {
        retry: plan.retry,
        signal,
        wrap: (error, description, retriable) =>
          scanError(error, plan.table, `Scan of segment ${segment} of ${total}`, description, retriable),
      },
    );
    const consumed = out.ConsumedCapacity?.CapacityUnits;
    // Without an answer from the endpoint the estimate stands.
    plan.limiter?.settle(estimate, consumed ?? estimate);
    const last =
      out.LastEvaluatedKey !== undefined && Object.keys(out.LastEvaluatedKey).length > 0
        ? out.LastEvaluatedKey
        : undefined;
    await channel.push(
      { segment, items: out.Items ?? [], consumedRcu: consumed ?? 0, lastEvaluatedKey: last },
      signal,
    );
    if (last === undefined) return;
    exclusiveStartKey = last;
    estimate = consumed ?? 1;
  }
}

function scanError(
  error: unknown,
  table: string,
  what: string,
  description: string,
  retriable: boolean,
): TableScanError {
  if (hasName(error, 'ResourceNotFoundException')) {
    return new TableScanError(
      'table-not-found',
      table,
      `table ${table} was not found (${what}: ${description}); check the table name and region`,
      { cause: error, retriable: false },
    );
  }
  return new TableScanError('scan-failed', table, `${what} of table ${table} failed: ${description}`, {
    cause: error,
    retriable,
  });
}

/** The segments still to read, in order, each with the key to start after; each is claimed once. */
function* claimableSegments(
  start: ScanProgress,
): Generator<{ segment: number; startKey: ScanKey | undefined }> {
  for (let segment = start.doneBelow; segment < start.totalSegments; segment++) {
    const state = start.segments[segment];
    if (state === 'done') continue;
    yield { segment, startKey: state };
  }
}

function pendingSegmentCount(start: ScanProgress): number {
  const done = Object.values(start.segments).filter((state) => state === 'done').length;
  return Math.max(0, start.totalSegments - start.doneBelow - done);
}

/** The progress of the pages handed out so far. */
class ProgressTracker {
  private readonly table: string;
  private readonly totalSegments: number;
  private doneBelow: number;
  private readonly segments = new Map<number, ScanSegmentState>();

  constructor(start: ScanProgress) {
    this.table = start.table;
    this.totalSegments = start.totalSegments;
    this.doneBelow = start.doneBelow;
    for (const [segment, state] of Object.entries(start.segments)) this.segments.set(Number(segment), state);
    this.compact();
  }

  apply(segment: number, lastEvaluatedKey: ScanKey | undefined): void {
    this.segments.set(segment, lastEvaluatedKey ?? 'done');
    this.compact();
  }

  snapshot(): ScanProgress {
    const segments: Record<number, ScanSegmentState> = {};
    for (const segment of [...this.segments.keys()].sort((a, b) => a - b)) {
      segments[segment] = this.segments.get(segment) as ScanSegmentState;
    }
    return { table: this.table, totalSegments: this.totalSegments, doneBelow: this.doneBelow, segments };
  }

  private compact(): void {
    while (this.segments.get(this.doneBelow) === 'done') {
      this.segments.delete(this.doneBelow);
      this.doneBelow++;
    }
  }
}

const PROGRESS_FORMAT = 'dynamodb-changelog/scan-progress';
const PROGRESS_VERSION = 1;

/**
 * The progress as JSON text. Key values are S, N or B (a table's key attributes); B, a Uint8Array
 * in the SDK, is written as base64 so it survives the round trip.
 */
export function serializeScanProgress(progress: ScanProgress): string {
  const segments: Record<string, unknown> = {};
  for (const [segment, state] of Object.entries(progress.segments)) {
    segments[segment] = state === 'done' ? 'done' : keyToJson(progress.table, Number(segment), state);
  }
  return JSON.stringify({
    format: PROGRESS_FORMAT,
    version: PROGRESS_VERSION,
    table: progress.table,
    totalSegments: progress.totalSegments,
    doneBelow: progress.doneBelow,
    segments,
  });
}

function keyToJson(table: string, segment: number, key: ScanKey): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(key)) {
    if (value.S !== undefined) out[name] = { S: value.S };
    else if (value.N !== undefined) out[name] = { N: value.N };
    else if (value.B !== undefined) out[name] = { B: Buffer.from(value.B).toString('base64') };
    else {
      throw new TableScanError(
        'invalid-progress',
        table,
        `scan progress of table ${table}, segment ${segment}: key attribute ${JSON.stringify(name)} is not S, N or B (the only key types)`,
      );
    }
  }
  return out;
}

const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Reads what `serializeScanProgress` wrote; TableScanError('invalid-progress') listing every problem. */
export function parseScanProgress(text: string): ScanProgress {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TableScanError(
      'invalid-progress',
      undefined,
      `scan progress is not JSON: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const issues: string[] = [];
  const doc = isObject(parsed) ? parsed : {};
  if (!isObject(parsed)) issues.push('is not a JSON object');
  if (doc['format'] !== PROGRESS_FORMAT || doc['version'] !== PROGRESS_VERSION) {
    issues.push(
      `format/version must be ${PROGRESS_FORMAT}/${PROGRESS_VERSION}, got ${doc['format']}/${doc['version']}`,
    );
  }
  const table = doc['table'];
  if (typeof table !== 'string' || table === '') issues.push('table must be a non-empty string');
  const total = doc['totalSegments'];
  const totalOk = Number.isInteger(total) && (total as number) >= 1 && (total as number) <= MAX_SCAN_SEGMENTS;
  if (!totalOk)
    issues.push(`totalSegments ${JSON.stringify(total)} must be an integer from 1 to ${MAX_SCAN_SEGMENTS}`);
  const doneBelow = doc['doneBelow'];
  const doneOk =
    Number.isInteger(doneBelow) &&
    (doneBelow as number) >= 0 &&
    (!totalOk || (doneBelow as number) <= (total as number));
  if (!doneOk)
    issues.push(`doneBelow ${JSON.stringify(doneBelow)} must be an integer from 0 to totalSegments`);
  const segments: Record<number, ScanSegmentState> = {};
  if (!isObject(doc['segments'])) issues.push('segments must be an object');
  else {
    for (const [name, state] of Object.entries(doc['segments'])) {
      const segment = Number(name);
      if (
        !/^\d+$/.test(name) ||
        (totalOk && segment >= (total as number)) ||
        (doneOk && segment < (doneBelow as number))
      ) {
        issues.push(`segment ${JSON.stringify(name)} must be an integer from doneBelow to totalSegments - 1`);
        continue;
      }
      if (state === 'done') segments[segment] = 'done';
      else {
        const key = parseKey(state, `segment ${name}`, issues);
        if (key !== undefined) segments[segment] = key;
      }
    }
  }
  if (issues.length > 0) {
    const name = typeof table === 'string' ? table : undefined;
    throw new TableScanError(
      'invalid-progress',
      name,
      `invalid scan progress${name === undefined ? '' : ` of table ${name}`}:\n  - ${issues.join('\n  - ')}`,
    );
  }
  return { table: table as string, totalSegments: total as number, doneBelow: doneBelow as number, segments };
}

function parseKey(value: unknown, where: string, issues: string[]): ScanKey | undefined {
  if (!isObject(value) || Object.keys(value).length === 0) {
    issues.push(`${where}: must be 'done' or a key (an object of S, N or B attributes)`);
    return undefined;
  }
  const key: ScanKey = {};
  for (const [name, attribute] of Object.entries(value)) {
    const types = isObject(attribute) ? Object.keys(attribute) : [];
    const [type] = types;
    const text = isObject(attribute) && type !== undefined ? attribute[type] : undefined;
    if (types.length !== 1 || typeof text !== 'string') {
      issues.push(`${where}: key attribute ${JSON.stringify(name)} must be {"S"|"N"|"B": string}`);
    } else if (type === 'S') key[name] = { S: text };
    else if (type === 'N' && DECIMAL.test(text)) key[name] = { N: text };
    else if (type === 'B' && Buffer.from(text, 'base64').toString('base64') === text) {
      key[name] = { B: new Uint8Array(Buffer.from(text, 'base64')) };
    } else {
      issues.push(
        `${where}: key attribute ${JSON.stringify(name)} ${type} ${JSON.stringify(text)} is not a valid S, N or base64 B value`,
      );
    }
  }
  return key;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface ScanEstimate {
  table: string;
  itemCount: number;
  tableSizeBytes: number;
  /** A full eventually consistent Scan: half a unit per 4 KB read. */
  eventuallyConsistentRcu: number;
  /** A full strongly consistent Scan: one unit per 4 KB read. */
  stronglyConsistentRcu: number;
}

/**
 * What a full scan of `table` reads and costs, for `replay --dry-run`. DynamoDB refreshes
 * ItemCount and TableSizeBytes only about every six hours, so this is an estimate of that age.
 */
export async function estimateScan(
  client: DynamoDBClient,
  table: string,
  options: { signal?: AbortSignal; retry?: Omit<RetryOptions, 'signal'> } = {},
): Promise<ScanEstimate> {
  const out = await awsCall(
    (s) => client.send(new DescribeTableCommand({ TableName: table }), { abortSignal: s }),
    {
      retry: options.retry,
      signal: options.signal,
      wrap: (error, description, retriable) =>
        scanError(error, table, 'DescribeTable', description, retriable),
    },
  );
  const itemCount = out.Table?.ItemCount ?? 0;
  const tableSizeBytes = out.Table?.TableSizeBytes ?? 0;
  const blocks = Math.ceil(tableSizeBytes / 4096);
  return {
    table,
    itemCount,
    tableSizeBytes,
    eventuallyConsistentRcu: blocks / 2,
    stronglyConsistentRcu: blocks,
  };
}
