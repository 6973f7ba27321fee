/**
 * Part B of bench:e2e, in its own process: a ChangelogWorker (real streams client against
 * DynamoDB Local, the raw GetRecords path, segments on s3rver through the S3 object store) tails a
 * table that a producer process (producer.ts) writes to as fast as DynamoDB Local accepts.
 *
 * Measures: records committed per second (overall and steady state), the delay from each write
 * to the commit of the segment holding it, the delay from a window's end to its manifest, peak
 * RSS and buffered bytes. Then reads every committed segment back and checks that each write of
 * the producer's log is there exactly once.
 */

import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { LOCAL_REGION } from '../../src/app/local/localServers.js';
import { parseKeySchema } from '../../src/changelog/keySchema.js';
import { readSegmentBatches } from '../../src/changelog/parquetDecoder.js';
import { pipelineConfig } from '../../src/coordination/config.js';
import { RawGetRecordsClient } from '../../src/coordination/getRecordsClient.js';
import { createLeaseTable } from '../../src/coordination/leaseTable.js';
import type { CommittedSegment, WindowSealed } from '../../src/coordination/pipelineObserver.js';
import { ChangelogWorker } from '../../src/ingest/changelogWorker.js';
import type { Logger } from '../../src/support/logger.js';
import { DYNAMODB_LOCAL_CREDENTIALS, dynamoDbLocalClient } from '../../test/helpers/dynamoDbLocalServer.js';
import { type MemoryPeaks, MemorySampler } from './memorySampler.js';
import { createSourceTable, keyIndex, type ProducerResult } from './producer.js';
import { openS3rverStore, type S3Target } from './s3rverStore.js';
import { log, MIB, percentile, runChild } from './stats.js';
import { type Timings, timeMethod } from './timing.js';

export interface EndToEndCase {
  dynamoEndpoint: string;
  s3: S3Target;
  script: string;
  seconds: number;
  writers: number;
  keys: number;
  windowMs: number;
  allowedLatenessMs: number;
  flushIntervalMs: number;
}

export interface EndToEndResult {
  producer: ProducerResult;
  /** Wall ms from the producer's end until every write was committed. */
  catchUpMs: number;
  commits: { atMs: number; records: number; bytes: number; windowStartMs: number }[];
  seals: { windowStartMs: number; atMs: number; records: number; segments: number }[];
  rows: number;
  distinctEvents: number;
  /** Producer writes with no row, rows of no producer write, writes with more than one row. */
  missing: number;
  unexpected: number;
  duplicated: number;
  /** written_at in the image differs from the producer's log (should be 0). */
  writtenAtMismatches: number;
  delayMs: { p50: number; p99: number; max: number; min: number };
  peaks: MemoryPeaks;
  baselineRss: number;
  /** CPU time of this process (the worker) per wall second, from its start to the producer's end. */
  cpuShare: number;
  timings: Timings;
  warnings: string[];
  windowMs: number;
  allowedLatenessMs: number;
  flushIntervalMs: number;
}

const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');
const WRITTEN_AT = /"written_at":\{"N":"(\d+)"\}/;
const VERSION = /"v":\{"N":"(\d+)"\}/;

export async function runEndToEnd(c: EndToEndCase): Promise<EndToEndResult> {
  const dynamodb = dynamoDbLocalClient(c.dynamoEndpoint);
  const streams = new DynamoDBStreamsClient({
    endpoint: c.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: DYNAMODB_LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  const raw = new RawGetRecordsClient(streams);
  const suffix = `${process.pid}-${Date.now()}`;
  const table = `bench-source-${suffix}`;
  const leaseTable = `bench-leases-${suffix}`;
  const streamArn = await createSourceTable(dynamodb, table);
  await createLeaseTable(dynamodb, leaseTable);
  const { store, close } = openS3rverStore(c.s3, `e2e-${suffix}`);
  const warnings: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (d, m) =>
      void (warnings.length < 20 && warnings.push(`warn: ${m} ${JSON.stringify(d).slice(0, 300)}`)),
    error: (d, m) =>
      void (warnings.length < 20 && warnings.push(`error: ${m} ${JSON.stringify(d).slice(0, 300)}`)),
  };
  const commits: EndToEndResult['commits'] = [];
  const commitKeys: { key: string; atMs: number }[] = [];
  const seals: EndToEndResult['seals'] = [];
  let committedRecords = 0;
  const worker = new ChangelogWorker({
    workerId: `bench-e2e-${process.pid}`,
    table,
    streamArn,
    keySchema: KEY_SCHEMA,
    dynamodb,
    streams,
    raw,
    leaseTableName: leaseTable,
    store,
    config: pipelineConfig({
      window: { windowMs: c.windowMs, allowedLatenessMs: c.allowedLatenessMs },
      buffer: { flushIntervalMs: c.flushIntervalMs },
    }),
    logger,
    observer: {
      segmentCommitted: (e: CommittedSegment) => {
        const atMs = Date.now();
        commits.push({ atMs, records: e.records, bytes: e.bytes, windowStartMs: e.windowStartMs });
        commitKeys.push({ key: e.key, atMs });
        committedRecords += e.records;
      },
      windowSealed: (e: WindowSealed) => {
        seals.push({
          windowStartMs: e.windowStartMs,
          atMs: Date.now(),
          records: e.records,
          segments: e.segments,
        });
        log(`  sealed window ${new Date(e.windowStartMs).toISOString().slice(11, 19)}: ${e.records} records`);
      },
    },
  });
  const timings: Timings = {};
  timeMethod(store, 'putIfAbsent', 'put', timings);
  timeMethod(worker.registry, 'transact', 'transact', timings);
  const sampler = new MemorySampler(() => worker.committer.bufferedBytes);
  const baselineRss = process.memoryUsage.rss();
  const cpuBefore = process.cpuUsage();
  const workerStartedAt = Date.now();
  sampler.start();
  const controller = new AbortController();
  const running = worker.run(controller.signal);

  const logFile = join(tmpdir(), `bench-e2e-writes-${suffix}.log`);
  log(`e2e: producer (${c.writers} writers, ${c.keys} keys) for ${c.seconds} s; worker tailing ${table}`);
  const progress = setInterval(() => {
    log(
      `  committed ${committedRecords} in ${commits.length} segments, buffered ${(worker.committer.bufferedBytes / MIB).toFixed(1)} MiB, ` +
        `rss ${(process.memoryUsage.rss() / MIB).toFixed(0)} MiB`,
    );
  }, 15_000);
  const producer = await runChild<ProducerResult>(
    c.script,
    [
      '--child',
      'producer',
      JSON.stringify({
        endpoint: c.dynamoEndpoint,
        table,
        seconds: c.seconds,
        writers: c.writers,
        keys: c.keys,
        logFile,
      }),
    ],
    {},
  );
  log(`  producer done: ${producer.writes} writes, ${(producer.writes / producer.seconds).toFixed(0)}/s`);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuShare = (cpu.user + cpu.system) / 1000 / (Date.now() - workerStartedAt);
  // Catch up: until every write is committed.
  while (committedRecords < producer.writes) {
    if (Date.now() - producer.endedAtMs > 120_000) {
      log(`  gave up waiting: ${committedRecords} of ${producer.writes} committed`);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const catchUpMs = Math.max(0, (commits.at(-1)?.atMs ?? producer.endedAtMs) - producer.endedAtMs);
  // Then the windows the caught-up watermark closes (ended more than allowedLateness before the
  // producer stopped) get sealed within a few heartbeats and sealer cycles.
  const lastClosable =
    Math.floor((producer.endedAtMs - c.allowedLatenessMs) / c.windowMs) * c.windowMs - c.windowMs;
  const sealWaitStart = Date.now();
  while (!seals.some((s) => s.windowStartMs >= lastClosable) && Date.now() - sealWaitStart < 30_000) {
    await new Promise((r) => setTimeout(r, 100));
  }
  clearInterval(progress);
  const peaks = sampler.stop();
  controller.abort(new Error('benchmark over'));
  await running;

  // Read back every committed segment and check it against the producer's log.
  const expected = new Map<string, number>(); // `${k} ${v}` -> written_at
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (line === '') continue;
    const [k, v, , at] = line.split(' ');
    expected.set(`${k} ${v}`, Number(at));
  }
  rmSync(logFile, { force: true });
  const seen = new Map<string, number>();
  const eventIds = new Set<string>();
  const delays: number[] = [];
  let rows = 0;
  let writtenAtMismatches = 0;
  for (const { key, atMs } of commitKeys) {
    const bytes = await store.get(key);
    if (bytes === undefined) throw new Error(`committed segment ${key} is missing`);
    for (const batch of readSegmentBatches(bytes, ['event_id', 'op', 'pk', 'new_image', 'old_image'], key)) {
      const { event_id, op, pk, new_image, old_image } = batch.columns as Record<string, (string | null)[]>;
      for (let i = 0; i < batch.rows; i++) {
        rows++;
        eventIds.add(event_id![i]!);
        const remove = op![i] === 'REMOVE';
        const image = remove ? old_image![i]! : new_image![i]!;
        const v = Number(VERSION.exec(image)?.[1]) + (remove ? 1 : 0);
        const id = `${keyIndex(pk![i]!)} ${v}`;
        seen.set(id, (seen.get(id) ?? 0) + 1);
        const writtenAt = expected.get(id);
        if (writtenAt === undefined) continue;
        if (!remove && Number(WRITTEN_AT.exec(image)?.[1]) !== writtenAt) writtenAtMismatches++;
        delays.push(atMs - writtenAt);
      }
    }
  }
  let missing = 0;
  let duplicated = 0;
  for (const id of expected.keys()) {
    const n = seen.get(id) ?? 0;
    if (n === 0) missing++;
    if (n > 1) duplicated++;
  }
  let unexpected = 0;
  for (const id of seen.keys()) if (!expected.has(id)) unexpected++;
  delays.sort((a, b) => a - b);

  close();
  raw.destroy();
  streams.destroy();
  dynamodb.destroy();
  return {
    producer,
    catchUpMs,
    commits,
    seals,
    rows,
    distinctEvents: eventIds.size,
    missing,
    unexpected,
    duplicated,
    writtenAtMismatches,
    delayMs: {
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      max: delays.at(-1) ?? Number.NaN,
      min: delays[0] ?? Number.NaN,
    },
    peaks,
    baselineRss,
    cpuShare,
    timings,
    warnings,
    windowMs: c.windowMs,
    allowedLatenessMs: c.allowedLatenessMs,
    flushIntervalMs: c.flushIntervalMs,
  };
}
