/**
 * End-to-end benchmark of the daemon (issue 5, parts 5 and 8).
 *
 *   npm run bench:e2e                      both parts (~5 min)
 *   npm run bench:e2e -- backpressure      part A only
 *   npm run bench:e2e -- e2e               part B only
 *
 * A. Backpressure: a ChangelogWorker on E2E_SHARDS (100) mocked shards that are busy forever
 *    (aws-sdk-client-mock; lease table on DynamoDB Local, segments on s3rver through the S3 object
 *    store). For each maxBufferBytes B in E2E_BUFFER_MIB (64,128) it runs until the buffers first
 *    hold B, then E2E_BP_SECONDS (12) under backpressure; then a control run at the smallest B for
 *    E2E_CONTROL_SECONDS (36), i.e. ~3x the data. Each case is its own process, so its peak RSS is
 *    its own; the baseline is that process's RSS just before the worker starts. Reports the peak
 *    of the committer's buffered bytes, peak RSS, overhead = peak RSS - peak buffered bytes, and
 *    reads every committed segment back (each record delivered exactly once).
 * B. End to end: a producer (its own process) writes BatchWriteItem batches of 25 inserts, updates
 *    and deletes (~900-byte items with `written_at`) into a DynamoDB Local table with a
 *    NEW_AND_OLD_IMAGES stream, as fast as it accepts them, for E2E_SECONDS (130). A
 *    ChangelogWorker (its own process: real streams client + the raw GetRecords path) tails it
 *    into s3rver with 1m windows, 5s allowed lateness and a 2s flush interval. The baseline is the
 *    producer alone for E2E_BASELINE_SECONDS (15) on a fresh DynamoDB Local, before and after the
 *    run (interleaved), compared with the same first seconds of the run. Reports records/s, write -> commit delay per row, window end ->
 *    manifest delay, peak RSS, and checks that every write is committed exactly once.
 *
 * Other knobs: E2E_SEGMENT_MIB (16: part A's maxSegmentBytes), E2E_PAGE_RECORDS (part A's records
 * per GetRecords page; default what fits in 1 MB), E2E_WRITERS (4),
 * E2E_KEYS (20000), E2E_NODE_FLAGS (node flags for the measured processes, e.g. --cpu-prof).
 */
import { dynamoDbLocalClient, startDynamoDbLocal } from '../test/helpers/dynamoDbLocalServer.js';
import { startS3rver } from '../test/helpers/s3rverServer.js';
import { type BackpressureResult, runBackpressureCase } from './bench/backpressure.js';
import { type EndToEndCase, type EndToEndResult, runEndToEnd } from './bench/endToEnd.js';
import { createSourceTable, type ProducerResult, runProducer } from './bench/producer.js';
import type { S3Target } from './bench/s3rverStore.js';
import {
  emitResult,
  envList,
  envNumber,
  int,
  log,
  MIB,
  median,
  mib,
  runChild,
  sec,
  table,
} from './bench/stats.js';
import { describeTimings } from './bench/timing.js';

const SCRIPT = 'scripts/benchE2e.ts';
const NODE_FLAGS = (process.env['E2E_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

interface ProducerChildArgs {
  endpoint: string;
  table: string;
  seconds: number;
  writers: number;
  keys: number;
  logFile?: string;
  createTable?: boolean;
}

async function child(kind: string, json: string): Promise<void> {
  if (kind === 'backpressure') {
    emitResult(await runBackpressureCase(JSON.parse(json)));
  } else if (kind === 'e2e') {
    emitResult(await runEndToEnd(JSON.parse(json)));
  } else if (kind === 'producer') {
    const a = JSON.parse(json) as ProducerChildArgs;
    const client = dynamoDbLocalClient(a.endpoint);
    if (a.createTable) await createSourceTable(client, a.table);
    emitResult(await runProducer({ client, ...a }));
    client.destroy();
  } else {
    throw new Error(`unknown child ${kind}`);
  }
}

/** Runs `fn` against a fresh DynamoDB Local, stopped afterwards. */
async function withFreshDynamoDb<T>(fn: (endpoint: string) => Promise<T>): Promise<T> {
  const dynamo = await startDynamoDbLocal();
  try {
    return await fn(dynamo.endpoint);
  } finally {
    await dynamo.stop();
  }
}

/*
 * DynamoDB Local's write rate depends on its state: it warms up over the first minute, and with
 * nobody reading its stream it falls to ~40-100 writes/s once a few tens of thousands of writes
 * are in it (new tables included), while a table whose stream is read keeps ~1,000/s. So the
 * baseline and the run each get a fresh instance, and the producer alone is compared with the
 * same first seconds of the run (a baseline writes ~10,000 items, before any slowdown).
 */
async function partB(s3: S3Target): Promise<string> {
  const seconds = envNumber('E2E_SECONDS', 130);
  const baselineSeconds = Math.min(seconds, envNumber('E2E_BASELINE_SECONDS', 15));
  const writers = envNumber('E2E_WRITERS', 4);
  const keys = envNumber('E2E_KEYS', 20_000);
  const baseline = (when: string) => {
    log(`producer alone (baseline, ${when}) for ${baselineSeconds} s on a fresh DynamoDB Local`);
    return withFreshDynamoDb((endpoint) => {
      const args: ProducerChildArgs = {
        endpoint,
        table: `bench-baseline-${Date.now()}`,
        seconds: baselineSeconds,
        writers,
        keys,
        createTable: true,
      };
      return runChild<ProducerResult>(SCRIPT, ['--child', 'producer', JSON.stringify(args)], {});
    });
  };
  const before = await baseline('before');
  const r = await withFreshDynamoDb((dynamoEndpoint) => {
    const e2eCase: EndToEndCase = {
      dynamoEndpoint,
      s3,
      script: SCRIPT,
      seconds,
      writers,
      keys,
      windowMs: 60_000,
      allowedLatenessMs: 5_000,
      flushIntervalMs: 2_000,
    };
    return runChild<EndToEndResult>(SCRIPT, ['--child', 'e2e', JSON.stringify(e2eCase)], {}, NODE_FLAGS);
  });
  const after = await baseline('after');
  return reportB(r, [before, after]);
}

function reportB(r: EndToEndResult, baselines: ProducerResult[]): string {
  const p = r.producer;
  const n = Math.round(baselines[0]!.seconds);
  const rates = baselines.map((b) => b.writes / b.seconds);
  const baselineRate = rates.reduce((a, b) => a + b, 0) / rates.length;
  const producerFirst = p.perSecond.slice(0, n).reduce((a, b) => a + b, 0) / n;
  // The daemon over the baseline's span: records committed by the end of the run's first n
  // seconds plus the flush interval it takes to commit them, per second.
  const committedBy = (ms: number) =>
    r.commits.filter((c) => c.atMs <= ms).reduce((s, c) => s + c.records, 0);
  const daemonFirst = committedBy(p.startedAtMs + n * 1000 + r.flushIntervalMs) / n;
  const producerRate = p.writes / p.seconds;
  const committed = r.commits.reduce((s, c) => s + c.records, 0);
  const lastCommit = r.commits.at(-1)?.atMs ?? p.endedAtMs;
  const overallRate = committed / ((lastCommit - p.startedAtMs) / 1000);
  // Steady state: records committed in each 10 s of the producer's run, the first 10 s left out.
  const buckets: number[] = [];
  for (let t = p.startedAtMs + 10_000; t + 10_000 <= p.endedAtMs; t += 10_000) {
    buckets.push(
      r.commits.filter((c) => c.atMs >= t && c.atMs < t + 10_000).reduce((s, c) => s + c.records, 0) / 10,
    );
  }
  const steady = median(buckets);
  const producerBuckets: number[] = [];
  for (let i = 10; i + 10 <= p.perSecond.length; i += 10) {
    producerBuckets.push(p.perSecond.slice(i, i + 10).reduce((a, b) => a + b, 0) / 10);
  }
  const seals = r.seals.map((s) => ({
    ...s,
    delayMs: s.atMs - (s.windowStartMs + r.windowMs),
    underLoad: s.atMs <= p.endedAtMs,
  }));
  const loaded = seals.filter((s) => s.underLoad).map((s) => s.delayMs);
  const after = seals.filter((s) => !s.underLoad).map((s) => s.delayMs);
  const describeDelays = (xs: number[]) =>
    xs.length === 0
      ? 'none'
      : `p50 ${sec(median(xs))} s, max ${sec(Math.max(...xs))} s (${xs.length} windows)`;
  const correct = r.missing === 0 && r.unexpected === 0 && r.duplicated === 0 && r.rows === p.writes;
  const bytes = r.commits.reduce((s, c) => s + c.bytes, 0);
  const lines = [
    `Part B: end to end on DynamoDB Local + s3rver, ${p.seconds.toFixed(0)} s of writes ` +
      `(window ${r.windowMs / 1000}s, allowed lateness ${r.allowedLatenessMs / 1000}s, flush interval ${r.flushIntervalMs / 1000}s)`,
    table(
      ['measure', 'value'],
      [
        [
          `producer alone, writes/s over ${n} s (baseline)`,
          `${int(baselineRate)} (mean of ${rates.map(int).join(' before and ')} after the run)`,
        ],
        [
          `with the daemon: producer / daemon over the first ${n} s`,
          `${int(producerFirst)} writes/s / ${int(daemonFirst)} records committed/s`,
        ],
        [
          'daemon / producer alone (same span)',
          `${(daemonFirst / baselineRate).toFixed(2)} (producer with daemon / alone: ${(producerFirst / baselineRate).toFixed(2)})`,
        ],
        [
          'whole run: producer / daemon',
          `${int(producerRate)} writes/s / ${int(overallRate)} records committed/s (steady: median of 10 s steps ` +
            `${int(median(producerBuckets))} / ${int(steady)}); daemon/producer ${(overallRate / producerRate).toFixed(2)}`,
        ],
        [
          'write -> commit delay',
          `p50 ${sec(r.delayMs.p50)} s, p99 ${sec(r.delayMs.p99)} s, max ${sec(r.delayMs.max)} s`,
        ],
        ['catch-up after the producer stopped', `${sec(r.catchUpMs)} s`],
        ['window end -> manifest, under load', describeDelays(loaded)],
        ['window end -> manifest, after the producer stopped', describeDelays(after)],
        [
          'segments',
          `${r.commits.length} (${mib(bytes)} MiB Parquet, ${int(committed / Math.max(1, r.commits.length))} records each on average)`,
        ],
        ['daemon CPU', `${(r.cpuShare * 100).toFixed(0)}% of one core while the producer ran`],
        [
          'peak RSS',
          `${mib(r.peaks.maxRssBytes)} MiB (baseline ${mib(r.baselineRss)} MiB; peak buffered ${mib(r.peaks.bufferedBytes)} MiB; heapUsed ${mib(r.peaks.heapUsedBytes)} MiB)`,
        ],
        [
          'correctness',
          `${correct ? 'OK' : 'FAILED'}: ${int(p.writes)} writes (${p.ops.INSERT} inserts, ${p.ops.MODIFY} updates, ${p.ops.REMOVE} deletes), ` +
            `${int(r.rows)} rows committed, ${int(r.distinctEvents)} distinct event ids; ${r.missing} missing, ` +
            `${r.duplicated} duplicated, ${r.unexpected} unexpected; written_at mismatches ${r.writtenAtMismatches}`,
        ],
      ],
      2,
    ),
    `windows sealed: ${seals
      .map(
        (s) =>
          `${new Date(s.windowStartMs).toISOString().slice(11, 16)} (${int(s.records)} records, +${sec(s.delayMs)} s${s.underLoad ? '' : ', after stop'})`,
      )
      .join('; ')}`,
    `commit steps: ${describeTimings(r.timings)}; producer batches ${p.batches}, unprocessed items resent ${p.unprocessedRetries}, failed batches ${p.failedBatches}`,
    `The window delay includes the allowed lateness (${r.allowedLatenessMs / 1000} s), DynamoDB Local's event times rounded down to the minute`,
    '(a window closes only once a record of the minute after the next one is committed, or the shard is caught up),',
    'the heartbeat that reports caught-up progress and the 1 s sealer cycle.',
  ];
  if (r.warnings.length > 0) lines.push(`warnings/errors logged:\n  ${r.warnings.join('\n  ')}`);
  return lines.join('\n');
}

async function partA(dynamoEndpoint: string, s3: S3Target): Promise<string> {
  const shards = envNumber('E2E_SHARDS', 100);
  const seconds = envNumber('E2E_BP_SECONDS', 12);
  const controlSeconds = envNumber('E2E_CONTROL_SECONDS', 36);
  const buffers = envList('E2E_BUFFER_MIB', [64, 128]);
  const segmentBytes = envNumber('E2E_SEGMENT_MIB', 16) * MIB;
  const pageRecords = process.env['E2E_PAGE_RECORDS'] ? envNumber('E2E_PAGE_RECORDS', 1000) : undefined;
  const cases = [
    ...buffers.map((b) => ({ label: `B=${b} MiB`, b, seconds })),
    { label: `control B=${Math.min(...buffers)} MiB`, b: Math.min(...buffers), seconds: controlSeconds },
  ];
  const results: { label: string; r: BackpressureResult }[] = [];
  for (const c of cases) {
    const r = await runChild<BackpressureResult>(
      SCRIPT,
      [
        '--child',
        'backpressure',
        JSON.stringify({
          dynamoEndpoint,
          s3,
          shards,
          seconds: c.seconds,
          maxBufferBytes: c.b * MIB,
          maxSegmentBytes: segmentBytes,
          pageRecords,
        }),
      ],
      {},
      NODE_FLAGS,
    );
    results.push({ label: c.label, r });
    if (r.violations.length > 0)
      log(`  ${c.label}: COMMIT CHAIN VIOLATIONS:\n    ${r.violations.join('\n    ')}`);
    const rc = r.rowsCheck;
    log(
      `  ${c.label}: read back ${rc.segments} segments: ${rc.rows} rows of ${rc.shards} shards, ${rc.distinctEvents} distinct, ` +
        `${rc.duplicates} duplicates, ${rc.missing} missing, ${rc.badShards} shards bad${rc.examples.length ? `\n    ${rc.examples.join('\n    ')}` : ''}`,
    );
    log(`  ${c.label}: ${describeTimings(r.timings)}`);
    if (r.warnings.length > 0) log(`  ${c.label}: warnings/errors logged:\n    ${r.warnings.join('\n    ')}`);
  }
  const first = results[0]!.r;
  const overhead = (r: BackpressureResult) => r.peaks.maxRssBytes - r.peaks.bufferedBytes;
  const reference = overhead(first);
  const rows = results.map(({ label, r }) => {
    const over = r.peaks.bufferedBytes - r.maxBufferBytes;
    const rc = r.rowsCheck;
    return [
      label,
      r.fillSeconds.toFixed(0),
      r.seconds.toFixed(0),
      int(r.recordsRead / r.seconds),
      int(r.recordsCommitted / r.seconds),
      ((r.recordsCommitted * r.bufferedBytesPerRecord) / MIB / r.seconds).toFixed(1),
      int(rc.rows),
      mib(r.peaks.bufferedBytes),
      `${over > 0 ? '+' : ''}${mib(over)} (${(over / r.maxPageBufferedBytes).toFixed(0)} pages)`,
      mib(r.baseline.rss),
      mib(r.peaks.maxRssBytes),
      mib(overhead(r)),
      (r.peaks.maxRssBytes / (r.maxBufferBytes + reference)).toFixed(2),
      rc.duplicates === 0 && rc.missing === 0 && rc.undelivered === 0
        ? 'ok'
        : `${rc.duplicates} dup, ${rc.missing} lost`,
    ];
  });
  const halves = (r: BackpressureResult) => {
    const measured = r.peaks.timeline.filter(([t]) => t >= r.fillSeconds);
    const mid = r.fillSeconds + r.seconds / 2;
    const max = (xs: [number, number, number][]) => Math.max(0, ...xs.map(([, rss]) => rss));
    return `${mib(max(measured.filter(([t]) => t < mid)))} / ${mib(max(measured.filter(([t]) => t >= mid)))}`;
  };
  const lines = [
    `Part A: backpressure, ${first.shards} mocked busy shards, ${first.pageRecords} records/page ` +
      `(~${int(first.wireBytesPerRecord)} B of stream JSON and ${int(first.bufferedBytesPerRecord)} B buffered per record; ` +
      `largest page ${mib(first.maxPageBufferedBytes)} MiB buffered), maxSegmentBytes ${mib(first.maxSegmentBytes)} MiB`,
    table(
      [
        'case',
        'fill s',
        'run s',
        'read rec/s',
        'commit rec/s',
        'MB/s',
        'records',
        'peak buf MiB',
        'over B MiB',
        'base RSS',
        'peak RSS',
        'overhead',
        'RSS/(B+ovh0)',
        'rows check',
      ],
      rows,
    ),
    '',
    'fill = start until the buffers first hold B; rates are of the run after it (under backpressure); records = all',
    'committed, read back from s3rver; MB/s = uncompressed buffered bytes committed; RSS in MiB;',
    "overhead = peak RSS (kernel maxrss) - peak buffered bytes; ovh0 = the first case's overhead.",
    ...results.map(
      ({ label, r }) =>
        `${label}: peak (baseline) heapUsed ${mib(r.peaks.heapUsedBytes)} (${mib(r.baseline.heapUsed)}) MiB, ` +
        `external ${mib(r.peaks.externalBytes)} (${mib(r.baseline.external)}), arrayBuffers ` +
        `${mib(r.peaks.arrayBuffersBytes)} (${mib(r.baseline.arrayBuffers)}); sampled RSS max 1st/2nd half of run ${halves(r)} MiB; ` +
        `pages routed while over B ${r.pagesOverBound}/${r.pages}; mean accept ${r.meanAcceptMs.toFixed(0)} ms/page; ` +
        `longest event-loop stall ${r.peaks.maxSampleGapMs.toFixed(0)} ms; ${r.segments} segments, ` +
        `${mib(r.parquetBytes)} MiB Parquet in the run; drain on stop ${r.drainSeconds.toFixed(1)} s`,
    ),
  ];
  // The control's RSS over time: the largest sample in each 10 s of its run.
  const control = results.at(-1)!.r;
  const steps: string[] = [];
  for (let t = Math.floor(control.fillSeconds); t < control.fillSeconds + control.seconds; t += 10) {
    const xs = control.peaks.timeline.filter(([at]) => at >= t && at < t + 10).map(([, rss]) => rss);
    if (xs.length > 0) steps.push(mib(Math.max(...xs)));
  }
  lines.push(`control: RSS max in each 10 s of its run (MiB): ${steps.join(', ')}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await child(argv[1]!, argv[2]!);
    return;
  }
  const parts = argv.length === 0 ? ['backpressure', 'e2e'] : argv;
  for (const p of parts) {
    if (p !== 'backpressure' && p !== 'e2e') throw new Error(`unknown part "${p}": use backpressure or e2e`);
  }
  const started = performance.now();
  log('starting s3rver and DynamoDB Local');
  const s3rver = await startS3rver('bench-e2e');
  const s3 = { endpoint: s3rver.endpoint, bucket: s3rver.bucket };
  const reports: string[] = [];
  try {
    if (parts.includes('backpressure')) {
      reports.push(await withFreshDynamoDb((endpoint) => partA(endpoint, s3)));
    }
    if (parts.includes('e2e')) reports.push(await partB(s3));
  } finally {
    await s3rver.stop();
  }
  console.log(`\n${reports.join('\n\n')}`);
  console.log(
    `\nnode ${process.version}, ${(await import('node:os')).cpus().length} cores; total ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

await main();
