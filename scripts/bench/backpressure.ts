/**
 * Part A of bench:e2e, one case per process: a ChangelogWorker on `shards` mocked busy shards
 * (mockStream.ts), with the lease table on DynamoDB Local and segments on s3rver, runs for
 * `seconds` with `maxBufferBytes` B. Reports what was read and committed, the peak of the
 * committer's buffered bytes, and peak RSS against the process's RSS just before the worker
 * started (the baseline).
 */

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ChangeBuffer } from '../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../src/changelog/keySchema.js';
import { readSegmentBatches } from '../../src/changelog/parquetDecoder.js';
import { pipelineConfig } from '../../src/coordination/config.js';
import { createLeaseTable } from '../../src/coordination/leaseTable.js';
import type { ObjectStore } from '../../src/coordination/objectStore.js';
import type { CommittedSegment } from '../../src/coordination/pipelineObserver.js';
import { ChangelogWorker } from '../../src/ingest/changelogWorker.js';
import type { SegmentCommitter } from '../../src/ingest/segmentCommitter.js';
import type { FetchedPage, PageSummary } from '../../src/ingest/shardReader.js';
import type { Logger } from '../../src/support/logger.js';
import { dynamoDbLocalClient } from '../../test/helpers/dynamoDbLocalServer.js';
import { type MemoryPeaks, MemorySampler } from './memorySampler.js';
import { MOCK_STREAM_ARN, MOCK_TABLE, mockBusyStream, mockSeqNumber } from './mockStream.js';
import { openS3rverStore, type S3Target } from './s3rverStore.js';
import { log, MIB } from './stats.js';
import { type Timings, timeMethod } from './timing.js';

export interface BackpressureCase {
  dynamoEndpoint: string;
  s3: S3Target;
  shards: number;
  /** Measured phase, after the buffers first reach maxBufferBytes. */
  seconds: number;
  maxBufferBytes: number;
  maxSegmentBytes: number;
  pageRecords?: number;
}

export interface BackpressureResult {
  shards: number;
  seconds: number;
  maxBufferBytes: number;
  maxSegmentBytes: number;
  pageRecords: number;
  wireBytesPerRecord: number;
  /** From start until the buffers first held maxBufferBytes (leases, readers, filling). */
  fillSeconds: number;
  /** The rest are of the measured phase: `seconds` after the bound was first reached. */
  recordsRead: number;
  recordsCommitted: number;
  segments: number;
  parquetBytes: number;
  /** Everything committed, the fill and the drain on stop included. */
  totalRecordsCommitted: number;
  /** Uncompressed (buffered) bytes per record, measured. */
  bufferedBytesPerRecord: number;
  /** Largest page, in buffered bytes. */
  maxPageBufferedBytes: number;
  /** Pages accepted while the buffers already held >= maxBufferBytes (their reader then waited). */
  pagesOverBound: number;
  pages: number;
  /** Time readers spent inside accept (decode + route + backpressure wait), summed, per page. */
  meanAcceptMs: number;
  baseline: NodeJS.MemoryUsage;
  peaks: MemoryPeaks;
  drainSeconds: number;
  /** Commit chain violations (per shard: each commit must start right after the previous one). */
  violations: string[];
  /** The committed segments read back: rows, distinct event ids, and sequence numbers missing. */
  rowsCheck: RowsCheck;
  /** Times of the commit steps and lease calls (wrapped instance methods). */
  timings: Timings;
  warnings: string[];
}

export interface RowsCheck {
  segments: number;
  rows: number;
  distinctEvents: number;
  /** Rows beyond the first of the same record. */
  duplicates: number;
  /** Records delivered to the committer that no committed row holds. */
  missing: number;
  /** Rows of records never delivered (cannot happen). */
  undelivered: number;
  /** Shards with records committed. */
  shards: number;
  /** Shards with duplicate or missing rows. */
  badShards: number;
  examples: string[];
}

const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');
const latin1 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

function countingLogger(warnings: string[]): Logger {
  const keep = (level: string) => (details: Record<string, unknown>, message: string) => {
    if (warnings.length < 20) warnings.push(`${level}: ${message} ${JSON.stringify(details).slice(0, 300)}`);
  };
  return { debug() {}, info() {}, warn: keep('warn'), error: keep('error') };
}

/** Checks that each shard's commits chain: after = previous last, first = after + 1, no holes. */
class ChainChecker {
  private readonly last = new Map<string, number>();
  readonly violations: string[] = [];
  check(event: CommittedSegment): void {
    for (const s of event.shards) {
      const first = mockSeqNumber(s.firstSequenceNumber);
      const lastSeq = mockSeqNumber(s.lastSequenceNumber);
      const after = /^\d+$/.test(s.afterSequenceNumber) ? mockSeqNumber(s.afterSequenceNumber) : 0;
      const previous = this.last.get(s.shardId) ?? 0;
      const problems: string[] = [];
      if (after !== previous) problems.push(`after ${after} but previous commit ended at ${previous}`);
      if (first !== after + 1) problems.push(`first ${first} does not follow after ${after}`);
      if (s.records !== lastSeq - first + 1) {
        problems.push(
          `${s.records} records for the ${lastSeq - first + 1} sequence numbers ${first}..${lastSeq}`,
        );
      }
      if (problems.length > 0 && this.violations.length < 20) {
        this.violations.push(
          `${s.shardId.slice(-8)} in ${event.key.split('/').at(-1)}: ${problems.join('; ')}`,
        );
      }
      this.last.set(s.shardId, Math.max(previous, lastSeq));
    }
  }
}

export async function runBackpressureCase(c: BackpressureCase): Promise<BackpressureResult> {
  const dynamodb: DynamoDBClient = dynamoDbLocalClient(c.dynamoEndpoint);
  const leaseTable = `bench-bp-${process.pid}-${Date.now()}`;
  await createLeaseTable(dynamodb, leaseTable);
  const { store, close } = openS3rverStore(c.s3, `bp-${process.pid}-${Date.now()}`);
  const mock = mockBusyStream({ shards: c.shards, pageRecords: c.pageRecords });
  const warnings: string[] = [];
  const chain = new ChainChecker();
  let recordsCommitted = 0;
  let segments = 0;
  let parquetBytes = 0;
  let measuring = true;
  const committedKeys: string[] = [];
  const worker = new ChangelogWorker({
    workerId: `bench-bp-${process.pid}`,
    table: MOCK_TABLE,
    streamArn: MOCK_STREAM_ARN,
    keySchema: KEY_SCHEMA,
    dynamodb,
    streams: mock.client,
    leaseTableName: leaseTable,
    store,
    // The daemon's defaults, except the two bounds under test.
    config: pipelineConfig({
      buffer: { maxSegmentBytes: c.maxSegmentBytes, maxBufferBytes: c.maxBufferBytes },
    }),
    logger: countingLogger(warnings),
    observer: {
      segmentCommitted: (event) => {
        chain.check(event);
        committedKeys.push(event.key);
        if (!measuring) return;
        recordsCommitted += event.records;
        segments++;
        parquetBytes += event.bytes;
      },
    },
  });

  // Exact buffered peak: sample right after each page's rows enter the window buffers (the
  // committer's private `route`), besides the timer. Page sizes come from the same place.
  const committer: SegmentCommitter = worker.committer;
  const hooks = committer as unknown as { route: (st: unknown, rows: ChangeBuffer) => void };
  const sampler = new MemorySampler(() => committer.bufferedBytes);
  let maxPageBufferedBytes = 0;
  let pagesOverBound = 0;
  let pages = 0;
  let pageRecordsSeen = 0;
  let pageBytesSeen = 0;
  const delivered = new Map<string, number>();
  const deliver = (shardId: string, sequenceNumber: string) =>
    delivered.set(shardId, Math.max(delivered.get(shardId) ?? 0, mockSeqNumber(sequenceNumber)));
  const route = hooks.route.bind(committer);
  hooks.route = (st, rows) => {
    if (committer.bufferedBytes >= c.maxBufferBytes) pagesOverBound++;
    route(st, rows);
    // Routed rows are kept and committed on a graceful stop even when the reader then stops
    // while waiting for room (its accept throws).
    if (rows.rowCount > 0) {
      deliver(
        rows.shards[rows.shardOf(rows.rowCount - 1)]!,
        latin1(rows.sequenceNumber.value(rows.rowCount - 1)),
      );
    }
    maxPageBufferedBytes = Math.max(maxPageBufferedBytes, rows.byteSize);
    pages++;
    pageRecordsSeen += rows.rowCount;
    pageBytesSeen += rows.byteSize;
    sampler.observe();
  };
  let acceptMs = 0;
  const accept = committer.accept.bind(committer);
  committer.accept = async (session, page: FetchedPage): Promise<PageSummary> => {
    const t = performance.now();
    try {
      const summary = await accept(session, page);
      // Taken: the reader moves past this page, so a graceful stop must commit it.
      if (summary.lastSequenceNumber !== undefined) deliver(page.shardId, summary.lastSequenceNumber);
      return summary;
    } finally {
      acceptMs += performance.now() - t;
    }
  };

  const timings: Timings = {};
  timeMethod(committer, 'flushHead', 'flush', timings);
  timeMethod(store, 'putIfAbsent', 'put', timings);
  timeMethod(worker.registry, 'transact', 'transact', timings);
  timeMethod(worker.leases, 'renew', 'renew', timings);
  timeMethod(worker.streamWorker, 'tick', 'lease cycle', timings);

  const baseline = process.memoryUsage();
  log(
    `backpressure: ${c.shards} shards, B = ${c.maxBufferBytes / MIB} MiB, segments ${c.maxSegmentBytes / MIB} MiB, ` +
      `${c.seconds} s; ${mock.pageRecords} records/page; baseline RSS ${(baseline.rss / MIB).toFixed(0)} MiB`,
  );
  sampler.start();
  const controller = new AbortController();
  const running = worker.run(controller.signal);
  const startedAt = performance.now();
  const progress = setInterval(() => {
    log(
      `  t=${((performance.now() - startedAt) / 1000).toFixed(0)}s read ${mock.served.records} committed ${recordsCommitted} ` +
        `buffered ${(committer.bufferedBytes / MIB).toFixed(0)} MiB rss ${(process.memoryUsage.rss() / MIB).toFixed(0)} MiB`,
    );
  }, 5000);
  // Fill: until the buffers first reach the bound (leases taken, readers started, buffers full).
  while (committer.bufferedBytes < c.maxBufferBytes) {
    if (performance.now() - startedAt > 180_000) throw new Error('the buffers never reached maxBufferBytes');
    await new Promise((r) => setTimeout(r, 20));
  }
  const fillSeconds = (performance.now() - startedAt) / 1000;
  const readAtBound = mock.served.records;
  const committedAtBound = recordsCommitted;
  const bytesAtBound = parquetBytes;
  const segmentsAtBound = segments;
  const boundAt = performance.now();
  // Then the measured phase: `seconds` under backpressure.
  await new Promise((r) => setTimeout(r, c.seconds * 1000));
  const elapsed = (performance.now() - boundAt) / 1000;
  measuring = false;
  const recordsRead = mock.served.records - readAtBound;
  const peaks = sampler.stop();
  clearInterval(progress);
  const drainStart = performance.now();
  controller.abort(new Error('benchmark over'));
  await running;
  const drainSeconds = (performance.now() - drainStart) / 1000;
  mock.restore();
  const rowsCheck = await checkRows(store, committedKeys, delivered);
  close();
  dynamodb.destroy();
  return {
    shards: c.shards,
    seconds: elapsed,
    maxBufferBytes: c.maxBufferBytes,
    maxSegmentBytes: c.maxSegmentBytes,
    pageRecords: mock.pageRecords,
    wireBytesPerRecord: mock.wireBytesPerRecord,
    fillSeconds,
    recordsRead,
    recordsCommitted: recordsCommitted - committedAtBound,
    segments: segments - segmentsAtBound,
    parquetBytes: parquetBytes - bytesAtBound,
    totalRecordsCommitted: rowsCheck.rows,
    bufferedBytesPerRecord: pageRecordsSeen > 0 ? pageBytesSeen / pageRecordsSeen : 0,
    maxPageBufferedBytes,
    pagesOverBound,
    pages,
    meanAcceptMs: pages > 0 ? acceptMs / pages : 0,
    baseline,
    peaks,
    drainSeconds,
    violations: chain.violations,
    rowsCheck,
    timings,
    warnings,
  };
}

/**
 * Reads every committed segment back and checks each shard's rows against what the committer
 * took (`delivered`: the last sequence number of the pages it accepted or routed, which a graceful
 * stop commits in full): 1..delivered, each exactly once.
 */
async function checkRows(
  store: ObjectStore,
  keys: readonly string[],
  delivered: ReadonlyMap<string, number>,
): Promise<RowsCheck> {
  const counts = new Map<string, Uint16Array>();
  let rows = 0;
  for (const key of keys) {
    const bytes = await store.get(key);
    if (bytes === undefined) throw new Error(`committed segment ${key} is missing`);
    for (const batch of readSegmentBatches(bytes, ['shard_id', 'sequence_number'], key)) {
      const shardIds = batch.columns['shard_id']!;
      const seqs = batch.columns['sequence_number']!;
      for (let i = 0; i < batch.rows; i++) {
        const shard = String(shardIds[i]);
        const n = mockSeqNumber(String(seqs[i]));
        let c = counts.get(shard);
        if (c === undefined || c.length <= n) {
          const grown = new Uint16Array(Math.max(n + 1, (c?.length ?? 0) * 2, 1024));
          if (c) grown.set(c);
          c = grown;
          counts.set(shard, c);
        }
        c[n]!++;
        rows++;
      }
    }
  }
  let distinctEvents = 0;
  let missing = 0;
  let duplicates = 0;
  let undelivered = 0;
  let badShards = 0;
  const examples: string[] = [];
  for (const shard of new Set([...delivered.keys(), ...counts.keys()])) {
    const c = counts.get(shard) ?? new Uint16Array(1);
    const max = delivered.get(shard) ?? 0;
    let dup = 0;
    let hole = 0;
    let extra = 0;
    for (let n = 1; n < Math.max(c.length, max + 1); n++) {
      const k = c[n] ?? 0;
      if (k > 0) distinctEvents++;
      if (k > 1) dup += k - 1;
      if (n <= max && k === 0) hole++;
      if (n > max && k > 0) extra++;
    }
    missing += hole;
    duplicates += dup;
    undelivered += extra;
    if (dup > 0 || hole > 0 || extra > 0) {
      badShards++;
      if (examples.length < 10) {
        examples.push(
          `${shard.slice(-8)}: delivered 1..${max}, ${dup} duplicate rows, ${hole} records missing, ${extra} rows never delivered`,
        );
      }
    }
  }
  return {
    segments: keys.length,
    rows,
    distinctEvents,
    duplicates,
    missing,
    undelivered,
    shards: counts.size,
    badShards,
    examples,
  };
}
