import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ChangelogReader, type ChangelogRow, type ChangelogSnapshot } from '../helpers/changelogReader.js';
import {
  createRng,
  type ProducedWrite,
  type ProducerResult,
  readStreamChanges,
  runProducer,
  type StreamedChange,
  writeVersion,
} from '../helpers/chaosProducer.js';
import { type CliProcess, type LogRecord, localAwsEnv, runCli, startCli } from '../helpers/cliProcess.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../helpers/dynamoDbLocal.js';
import { type FaultProxy, startFaultProxy } from '../helpers/faultProxy.js';
import { type S3rverServer, startS3rver } from '../helpers/s3rverServer.js';

/*
 * The chaos scenario (the issue's acceptance test): real `dynamodb-changelog run` workers as
 * separate processes against DynamoDB Local and s3rver, while a producer writes and a seeded chaos
 * loop SIGKILLs workers, SIGSTOPs them past the failover time, and makes S3 writes fail through a
 * fault proxy. Afterwards every record the stream delivered must be in exactly one sealed manifest,
 * once, in per-item order, as read by an independent reader (changelogReader.ts, DuckDB), and the
 * project's own `verify` must agree.
 *
 * It returns a report instead of asserting, so the same scenario serves the short run inside
 * `npm test`, the long `npm run test:chaos`, and manual runs; the callers assert on the report.
 */

export interface ChaosOptions {
  /** How long the producer writes and the chaos loop acts. */
  durationMs: number;
  /** Worker processes kept running (a killed one is replaced). Default 3. */
  workers?: number;
  /** Key space of the producer. */
  keys: number;
  /** Seeds the producer, the chaos loop and the fault draws; printed so a run can be repeated. */
  seed?: number;
  /** Producer writes per second (over all its lanes). Default 50. */
  ratePerSecond?: number;
  /** Probability of a fault per S3 object write while a fault period is on. Default 0.3. */
  faultRate?: number;
  /** The workers' --failover, in seconds; a SIGSTOP lasts this + 2 s. Default 3. */
  failoverSeconds?: number;
  /** Longest wait, after the producer stops, for the sealed manifests to hold every record. Default 240 s. */
  sealTimeoutMs?: number;
  /**
   * After every record is sealed, keep watching this long for duplicates that arrive later (a
   * re-read after a takeover lands in a later window). Default 70 s: window + lateness + flushes.
   */
  settleMs?: number;
  /**
   * A --worker-id per started worker (n counts starts). Default: none passed, so each worker uses
   * the CLI's own unique default, as in production; for diagnosing id-dependent behaviour only.
   */
  workerId?: (n: number) => string;
  /** Keep the workers' log files even when the run passed. Default false. */
  keepLogs?: boolean;
  /** Progress and summary lines. Default console.log. */
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  /** Stream records delivered (the changes the changelog must hold). */
  changes: number;
  producerWrites: number;
  kills: number;
  pauses: number;
  faultPeriods: number;
  injected503: number;
  injectedResponseLost: number;
  s3Requests: number;
  manifests: number;
  segments: number;
  /** Data objects no manifest lists, at the end. */
  orphans: number;
  /** Sum of `count` over the workers' "orphans deleted" log lines. */
  orphansDeleted: number;
  /** Extra copies of event ids across all sealed manifests' segments. */
  duplicates: number;
  /** Stream records in no sealed manifest. */
  missing: number;
  /** Rows whose event id the stream never delivered. */
  extra: number;
  orderViolations: number;
  /** Workers that exited without being killed by the scenario. */
  unexpectedExits: string[];
  verify: { exitCode: number | null; output: string } | undefined;
  /** Every broken expectation, human-readable; empty when the run proved what it should. */
  violations: string[];
  /** The workers' warn/error log lines, counted by level, message and error text (first 160 chars). */
  workerProblems: Record<string, number>;
  /** Where the workers' stdout/stderr were written; kept only when there were violations. */
  logDir: string;
  summary: string;
}

const TABLE = 'chaos-source';
const LEASE_TABLE = 'chaos-leases';
const BUCKET = 'changelog-chaos';
const PREFIX = 'changelog';
const EXAMPLES = 5;
/*
 * One set of credentials for every process and both services. s3rver accepts only S3RVER/S3RVER
 * (any other access key is refused with InvalidAccessKeyId), the workers get one AWS_ACCESS_KEY_ID
 * for DynamoDB and S3 alike, and DynamoDB Local (without -sharedDb) keeps a separate database per
 * access key, so the harness's own DynamoDB clients must use the same key as the workers.
 */
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runChaosScenario(options: ChaosOptions): Promise<ChaosReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const log = options.log ?? ((line: string) => console.log(line));
  const workerCount = options.workers ?? 3;
  const failoverSeconds = options.failoverSeconds ?? 3;
  const faultRate = options.faultRate ?? 0.3;
  const rng = createRng(seed);
  const logDir = await mkdtemp(path.join(tmpdir(), 'changelog-chaos-'));
  log(
    `chaos: seed ${seed}, ${options.durationMs} ms, ${workerCount} workers, ${options.keys} keys; logs in ${logDir}`,
  );

  const violations: string[] = [];
  const unexpectedExits: string[] = [];
  const allLogs: LogRecord[][] = [];
  let dynamo: DynamoDbLocal | undefined;
  let ddb: DynamoDBClient | undefined;
  let s3: S3rverServer | undefined;
  let proxy: FaultProxy | undefined;
  let reader: ChangelogReader | undefined;
  const workers: (CliProcess | undefined)[] = [];
  /** Workers this scenario killed or is stopping on purpose: their exits are expected. */
  const expectedExits = new Set<CliProcess>();
  let stopping = false;
  let passed = false;

  try {
    dynamo = await startDynamoDbLocal();
    s3 = await startS3rver(BUCKET);
    proxy = await startFaultProxy(s3.endpoint, { random: createRng(seed ^ 0x5eed) });
    ddb = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: CREDENTIALS,
      maxAttempts: 1,
    });
    const streamArn = await createStreamTable(ddb, TABLE);

    const env = localAwsEnv({ dynamodb: dynamo.endpoint, s3: proxy.endpoint });
    const destination = `s3://${BUCKET}/${PREFIX}`;
    const runArgs = [
      'run',
      ...['--table', TABLE, '--destination', destination, '--lease-table', LEASE_TABLE],
      '--create-lease-table',
      ...['--window', '1m', '--allowed-lateness', '5s', '--flush-interval', '2s'],
      ...['--failover', `${failoverSeconds}s`, '--orphan-grace', '15s'],
      '--s3-force-path-style',
      // Several workers on one host: each serves its metrics on a free port.
      ...['--metrics-port', '0'],
      ...['--log-level', 'info'],
    ];

    /**
     * When each worker last showed it holds the shard lease or the sealer lease (from its logs).
     * With one shard, a randomly picked victim is often an idle standby; picking the busy ones
     * most of the time makes each kill or pause force a takeover mid-work.
     */
    const lastWork = new Map<CliProcess, Partial<Record<Role, number>>>();
    const pickVictim = (): number => {
      const r = rng();
      const role: Role | undefined = r < 0.5 ? 'shard' : r < 0.75 ? 'sealer' : undefined;
      let best = -1;
      let bestAt = -1;
      for (const [slot, w] of workers.entries()) {
        const at = role === undefined || w === undefined ? undefined : lastWork.get(w)?.[role];
        if (at !== undefined && at > bestAt && !w!.exited) {
          best = slot;
          bestAt = at;
        }
      }
      return best >= 0 ? best : Math.floor(rng() * workerCount);
    };

    let started = 0;
    const startWorker = (slot: number): CliProcess => {
      const idArgs = options.workerId === undefined ? [] : ['--worker-id', options.workerId(started)];
      const cli = startCli([...runArgs, ...idArgs], {
        env,
        name: `worker-${slot}#${started++}`,
        logFile: path.join(logDir, `worker-${slot}.log`),
      });
      allLogs.push(cli.logs);
      cli.onLog((record) => {
        const role = roleOf(record);
        if (role !== undefined) lastWork.set(cli, { ...lastWork.get(cli), [role]: performance.now() });
        const lost =
          record['msg'] === 'lease lost'
            ? 'shard'
            : record['msg'] === 'sealer lease lost'
              ? 'sealer'
              : undefined;
        if (lost !== undefined) lastWork.set(cli, { ...lastWork.get(cli), [lost]: undefined });
      });
      workers[slot] = cli;
      void cli.waitForExit().then((exit) => {
        if (expectedExits.has(cli) || stopping) return;
        // A worker that dies by itself (say, on an S3 error) is a finding; replace it so the run goes on.
        unexpectedExits.push(
          `${cli.name} exited by itself (code ${exit.code}, signal ${exit.signal})\n${cli.tail(15)}`,
        );
        if (workers[slot] === cli) startWorker(slot);
      });
      return cli;
    };
    for (let slot = 0; slot < workerCount; slot++) startWorker(slot);

    // --- producer and chaos, side by side -------------------------------------------------------
    const producerStop = new AbortController();
    const producing = runProducer({
      client: ddb,
      table: TABLE,
      keys: options.keys,
      signal: producerStop.signal,
      seed,
      ratePerSecond: options.ratePerSecond ?? 50,
    });

    const counts = { kills: 0, pauses: 0, faultPeriods: 0 };
    const background = new Set<Promise<void>>();
    const track = (task: Promise<void>) => {
      background.add(task);
      void task.finally(() => background.delete(task));
    };
    let pausing = false;
    let faulting = false;
    const faultProxy = proxy;
    const chaosEnd = performance.now() + options.durationMs;
    // Each kind of chaos happens at least once, in a seeded order; then they are drawn at random.
    const plan = shuffle(['kill', 'pause', 'faults'] as const, rng);
    while (performance.now() < chaosEnd) {
      await sleep(1_500 + rng() * 3_500);
      if (performance.now() >= chaosEnd) break;
      let action = plan.shift() ?? (['kill', 'pause', 'faults'] as const)[Math.floor(rng() * 3)]!;
      if ((action === 'pause' && pausing) || (action === 'faults' && faulting)) action = 'kill';
      const slot = pickVictim();
      const victim = workers[slot]!;
      if (action === 'kill') {
        expectedExits.add(victim);
        victim.kill('SIGKILL');
        await victim.waitForExit(30_000);
        counts.kills++;
        log(`chaos: kill -9 ${victim.name}`);
        startWorker(slot);
      } else if (action === 'pause') {
        pausing = true;
        counts.pauses++;
        const pauseMs = failoverSeconds * 1000 + 2_000;
        log(`chaos: SIGSTOP ${victim.name} for ${pauseMs} ms`);
        victim.pause();
        track(
          sleep(pauseMs).then(() => {
            victim.resume(); // a no-op if it was killed meanwhile
            pausing = false;
          }),
        );
      } else {
        faulting = true;
        counts.faultPeriods++;
        const minMs = 3_000 + rng() * 3_000;
        log(`chaos: S3 write faults at ${faultRate} for >= ${Math.round(minMs)} ms`);
        track(
          (async () => {
            const before = faultProxy.counts.injected503 + faultProxy.counts.injectedResponseLost;
            faultProxy.setFaultRate(faultRate);
            const start = performance.now();
            // Until at least one fault landed (capped), so a fault period is never a no-op.
            while (
              performance.now() - start < minMs ||
              (faultProxy.counts.injected503 + faultProxy.counts.injectedResponseLost === before &&
                performance.now() - start < 20_000)
            ) {
              await sleep(200);
            }
            faultProxy.setFaultRate(0);
            faulting = false;
          })(),
        );
      }
    }
    await Promise.all([...background]);
    proxy.setFaultRate(0);
    producerStop.abort();
    const produced = await producing;
    for (const w of workers) w?.resume();
    log(
      `chaos: producer stopped after ${produced.writes.length} writes ` +
        `(${produced.uncertainAttempts} uncertain attempts); kills ${counts.kills}, pauses ${counts.pauses}, ` +
        `fault periods ${counts.faultPeriods}`,
    );

    // --- what the stream delivered, independently read ---------------------------------------
    const streamed = await readStreamChanges({
      endpoint: dynamo.endpoint,
      credentials: CREDENTIALS,
      streamArn,
      expectAtLeast: produced.writes.length,
    });
    violations.push(...checkProducerAgainstStream(produced, streamed));

    // --- wait until the sealed manifests hold every record, then settle ------------------------
    reader = new ChangelogReader({ client: s3.client, bucket: BUCKET, prefix: PREFIX, table: TABLE });
    const streamIds = new Set(streamed.map((c) => c.eventId));
    const sealDeadline = performance.now() + (options.sealTimeoutMs ?? 240_000);
    let snapshot: ChangelogSnapshot = await reader.read();
    let lastProgress = 0;
    let allSealed = false;
    for (;;) {
      const present = countPresent(snapshot.rows, streamIds);
      if (present === streamIds.size) {
        allSealed = true;
        log(`chaos: all ${present} records are in sealed manifests; watching for late duplicates`);
        break;
      }
      if (performance.now() > sealDeadline) {
        log(`chaos: gave up waiting for sealing: ${present}/${streamIds.size} records in sealed manifests`);
        break;
      }
      if (performance.now() - lastProgress > 20_000) {
        lastProgress = performance.now();
        log(
          `chaos: sealed ${present}/${streamIds.size} records in ${snapshot.manifests.length} manifests, ` +
            `${snapshot.dataObjects.length} data objects`,
        );
      }
      await sleep(3_000);
      snapshot = await reader.read();
    }
    // Pointless when sealing already stalled: the verdict (missing records) is known.
    const settleEnd = performance.now() + (allSealed ? (options.settleMs ?? 70_000) : 0);
    while (performance.now() < settleEnd) {
      await sleep(5_000);
      snapshot = await reader.read();
    }

    // --- the verdict ----------------------------------------------------------------------------
    const check = checkChangelog(snapshot, streamed);
    violations.push(...check.violations, ...snapshot.problems.map((p) => `changelog reader: ${p}`));

    const firstWindow = snapshot.manifests.map((m) => m.windowStart).sort()[0];
    let verify: ChaosReport['verify'];
    if (firstWindow === undefined) {
      violations.push('no sealed manifest at all, so nothing for verify to check');
    } else {
      const run = await runCli(
        [
          'verify',
          '--destination',
          destination,
          '--table',
          TABLE,
          '--since',
          firstWindow,
          '--s3-force-path-style',
        ],
        // The workers' environment: S3 through the proxy, whose fault rate is 0 by now.
        { env, name: 'verify', timeoutMs: 180_000 },
      );
      verify = { exitCode: run.exit.code, output: `${run.stdout}\n${run.stderr}`.trim() };
      if (run.exit.code !== 0) {
        violations.push(`verify exited with ${run.exit.code} (signal ${run.exit.signal}):\n${verify.output}`);
      }
    }
    violations.push(...unexpectedExits);

    stopping = true;
    const orphansDeleted = allLogs
      .flat()
      .filter((r) => r['msg'] === 'orphans deleted')
      .reduce((n, r) => n + (typeof r['count'] === 'number' ? r['count'] : 0), 0);
    const workerProblems = countProblems(allLogs.flat());
    const report: ChaosReport = {
      seed,
      changes: streamed.length,
      producerWrites: produced.writes.length,
      ...counts,
      injected503: proxy.counts.injected503,
      injectedResponseLost: proxy.counts.injectedResponseLost,
      s3Requests: proxy.counts.requests,
      manifests: snapshot.manifests.length,
      segments: new Set(snapshot.rows.map((r) => r.segmentKey)).size,
      orphans: snapshot.orphans.length,
      orphansDeleted,
      duplicates: check.duplicates,
      missing: check.missing,
      extra: check.extra,
      orderViolations: check.orderViolations,
      unexpectedExits,
      verify,
      violations,
      workerProblems,
      logDir,
      summary: '',
    };
    report.summary =
      `chaos summary: seed=${seed} changes=${report.changes} kills=${report.kills} pauses=${report.pauses} ` +
      `faultPeriods=${report.faultPeriods} injected503=${report.injected503} ` +
      `injectedResponseLost=${report.injectedResponseLost} manifests=${report.manifests} ` +
      `segments=${report.segments} orphans=${report.orphans} orphansDeleted=${report.orphansDeleted} ` +
      `duplicates=${report.duplicates} missing=${report.missing} extra=${report.extra} ` +
      `orderViolations=${report.orderViolations} verify=${verify?.exitCode ?? 'not run'} ` +
      `violations=${violations.length}`;
    log(report.summary);
    for (const [what, n] of Object.entries(workerProblems)) log(`chaos: worker log ${n}x ${what}`);
    for (const v of violations) log(`chaos violation: ${v}`);
    passed = violations.length === 0;
    return report;
  } finally {
    stopping = true;
    await Promise.all(
      workers.map(async (w) => {
        if (w === undefined) return;
        const exit = await w.stop(20_000);
        if (exit.signal === 'SIGKILL') log(`chaos: ${w.name} ignored SIGTERM for 20 s and was killed`);
      }),
    );
    await reader?.close();
    await proxy?.stop();
    await s3?.stop();
    ddb?.destroy();
    await dynamo?.stop();
    // Worker logs are for post-mortems: keep them when something failed (or threw), else tidy up.
    if (passed && !options.keepLogs) await rm(logDir, { recursive: true, force: true });
    else log(`chaos: worker logs kept in ${logDir}`);
  }
}

type Role = 'shard' | 'sealer';

/**
 * Which lease a log line shows its worker holds. Keyed on the worker's message texts; if those
 * change, victims are simply picked at random again.
 */
function roleOf(record: LogRecord): Role | undefined {
  switch (record['msg']) {
    case 'lease taken':
    case 'segment committed':
      return 'shard';
    case 'sealer lease taken':
    case 'windows closed':
    case 'window sealed':
      return 'sealer';
    default:
      return undefined;
  }
}

/** Warn and error lines of the workers, grouped, most frequent first: the first place to look. */
function countProblems(records: readonly LogRecord[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const r of records) {
    const level = r['level'];
    const serious =
      typeof level === 'number' ? level >= 40 : ['warn', 'error', 'fatal'].includes(String(level));
    if (!serious) continue;
    const error = typeof r['error'] === 'string' ? `: ${r['error'].slice(0, 160)}` : '';
    const key = `${level} "${String(r['msg'])}"${error}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
}

function shuffle<T>(items: readonly T[], rng: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function countPresent(rows: readonly ChangelogRow[], ids: ReadonlySet<string>): number {
  const seen = new Set<string>();
  for (const r of rows) if (ids.has(r.event_id)) seen.add(r.event_id);
  return seen.size;
}

const bySequence = (a: { sequenceNumber: string }, b: { sequenceNumber: string }) => {
  const x = BigInt(a.sequenceNumber);
  const y = BigInt(b.sequenceNumber);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The stream must hold exactly the producer's writes: same count, same (op, v) sequence per key. */
export function checkProducerAgainstStream(produced: ProducerResult, streamed: StreamedChange[]): string[] {
  const violations: string[] = [];
  for (const w of produced.notWritten.slice(0, EXAMPLES)) {
    violations.push(`producer: write refused (${w.reason}): ${JSON.stringify(w)}`);
  }
  if (streamed.length !== produced.writes.length) {
    violations.push(
      `stream delivered ${streamed.length} records for ${produced.writes.length} producer writes`,
    );
  }
  const perKey = (entries: readonly (ProducedWrite | StreamedChange)[]) => {
    const map = new Map<string, string[]>();
    for (const e of entries) map.set(e.pk, [...(map.get(e.pk) ?? []), `${e.op}:${e.v}`]);
    return map;
  };
  const wrote = perKey(produced.writes);
  const delivered = perKey([...streamed].sort(bySequence));
  let mismatches = 0;
  for (const pk of new Set([...wrote.keys(), ...delivered.keys()])) {
    const a = (wrote.get(pk) ?? []).join(' ');
    const b = (delivered.get(pk) ?? []).join(' ');
    if (a !== b && mismatches++ < EXAMPLES)
      violations.push(`stream vs producer for ${pk}: wrote [${a}], stream [${b}]`);
  }
  if (mismatches > EXAMPLES)
    violations.push(`... ${mismatches - EXAMPLES} more keys differ between producer and stream`);
  return violations;
}

export interface ChangelogCheck {
  duplicates: number;
  missing: number;
  extra: number;
  orderViolations: number;
  violations: string[];
}

/**
 * The exactly-once and order verdict on the sealed changelog, against the stream:
 * - every stream event id in exactly one row of one sealed manifest (no duplicates, none missing,
 *   no extra ids), with the stream's op, sequence number and shard;
 * - per item, rows in sequence-number order carry the producer's versions 1, 2, 3, ... in order,
 *   and never sit in an earlier window than a change before them;
 * - every manifest complete (no gaps: nothing was trimmed in a test this short).
 */
export function checkChangelog(
  snapshot: ChangelogSnapshot,
  streamed: readonly StreamedChange[],
): ChangelogCheck {
  const violations: string[] = [];
  const stream = new Map(streamed.map((c) => [c.eventId, c]));
  const rowsById = new Map<string, ChangelogRow[]>();
  for (const r of snapshot.rows) rowsById.set(r.event_id, [...(rowsById.get(r.event_id) ?? []), r]);

  let duplicates = 0;
  let extra = 0;
  let mismatched = 0;
  for (const [id, rows] of rowsById) {
    if (rows.length > 1) {
      duplicates += rows.length - 1;
      if (duplicates <= EXAMPLES) {
        violations.push(
          `duplicate: event ${id} appears ${rows.length} times: ${rows.map((r) => `${r.manifestKey} ${r.segmentKey}`).join('; ')}`,
        );
      }
    }
    const expected = stream.get(id);
    if (expected === undefined) {
      if (extra++ < EXAMPLES)
        violations.push(`extra: event ${id} is in ${rows[0]!.segmentKey} but not in the stream`);
      continue;
    }
    const row = rows[0]!;
    if (
      row.op !== expected.op ||
      row.sequence_number !== expected.sequenceNumber ||
      row.shard_id !== expected.shardId
    ) {
      if (mismatched++ < EXAMPLES) {
        violations.push(
          `event ${id}: changelog has ${row.op} ${row.shard_id}/${row.sequence_number}, ` +
            `stream has ${expected.op} ${expected.shardId}/${expected.sequenceNumber}`,
        );
      }
    }
  }
  if (duplicates > 0) violations.push(`${duplicates} duplicate rows in sealed manifests`);
  if (extra > 0) violations.push(`${extra} rows with event ids the stream never delivered`);
  if (mismatched > 0) violations.push(`${mismatched} rows differ from their stream record`);

  const missingIds = streamed.filter((c) => !rowsById.has(c.eventId));
  if (missingIds.length > 0) {
    violations.push(
      `missing: ${missingIds.length} stream records in no sealed manifest, e.g. ` +
        missingIds
          .slice(0, EXAMPLES)
          .map(
            (c) =>
              `${c.eventId} (${c.pk} ${c.op} v${c.v} seq ${c.sequenceNumber} at ${new Date(c.eventTimeMs).toISOString()})`,
          )
          .join(', '),
    );
  }

  // Per-item order, on the first copy of each id (duplicates are reported above).
  const perKey = new Map<string, { row: ChangelogRow; sequenceNumber: string }[]>();
  for (const rows of rowsById.values()) {
    const row = rows[0]!;
    const pk = pkOf(row.keys);
    perKey.set(pk, [...(perKey.get(pk) ?? []), { row, sequenceNumber: row.sequence_number }]);
  }
  let orderViolations = 0;
  for (const [pk, entries] of perKey) {
    entries.sort(bySequence);
    let previousV = 0;
    let previousWindow = '';
    for (const { row } of entries) {
      const v = writeVersion(row.op, parseImage(row.new_image), parseImage(row.old_image));
      const problem =
        v === undefined
          ? 'has no version in its images'
          : v <= previousV
            ? `has v${v} after v${previousV}`
            : row.windowStart < previousWindow
              ? `is in window ${row.windowStart}, before the window ${previousWindow} of an earlier change`
              : undefined;
      if (problem !== undefined && orderViolations++ < EXAMPLES) {
        violations.push(`order: ${pk} ${row.op} seq ${row.sequence_number} (${row.event_id}) ${problem}`);
      }
      previousV = v ?? previousV;
      if (row.windowStart > previousWindow) previousWindow = row.windowStart;
    }
  }
  if (orderViolations > EXAMPLES) violations.push(`... ${orderViolations - EXAMPLES} more order violations`);

  for (const m of snapshot.manifests) {
    if (!m.complete || m.gaps.length > 0) {
      violations.push(`manifest ${m.key} is incomplete: ${JSON.stringify(m.gaps)}`);
    }
  }
  return { duplicates, missing: missingIds.length, extra, orderViolations, violations };
}

function parseImage(text: string | null): Record<string, Record<string, unknown>> | null {
  return text === null ? null : (JSON.parse(text) as Record<string, Record<string, unknown>>);
}

function pkOf(keysJson: string): string {
  const keys = JSON.parse(keysJson) as { pk?: { S?: string } };
  return keys.pk?.S ?? keysJson;
}
