import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { localAwsEnvironment } from '../../src/app/local/localServers.js';
import {
  ChangelogReader,
  type ChangelogRow,
  type ChangelogSnapshot,
  type ManifestSummary,
} from '../helpers/changelogReader.js';
import {
  createRng,
  type ProducedWrite,
  type ProducerResult,
  readStreamChanges,
  runProducer,
  type StreamedChange,
  writeVersion,
} from '../helpers/chaosProducer.js';
import { type CliProcess, type LogRecord, runCli, startCli } from '../helpers/cliProcess.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../helpers/dynamoDbLocal.js';
import { type FaultProxy, startFaultProxy } from '../helpers/faultProxy.js';
import { type S3rverServer, startS3rver } from '../helpers/s3rverServer.js';
import {
  type EmulatedRecord,
  type StreamsEmulator,
  startStreamsEmulator,
} from '../helpers/streamsEmulator.js';
import { type StreamsTap, startStreamsTap } from '../helpers/streamsTap.js';

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
 *
 * Two stream sources:
 * - DynamoDB Local's own stream (default): one shard that never closes. Ground truth: that stream,
 *   read back with the SDK.
 * - the many-shard emulator (`emulator` option, test/helpers/streamsEmulator.ts): the workers'
 *   DynamoDB and Streams endpoints point at it (DescribeTable of the source table answers its
 *   stream; the lease table's calls pass on to DynamoDB Local), it pumps DynamoDB Local's records
 *   into >= 16 shards that split on a schedule, throttles and fails a share of the calls, and with
 *   a short retention trims what nobody read in time. Ground truth: `emulator.records()` (every
 *   record it held, with its shard, sequence number and trimmed flag), joined by event id with
 *   DynamoDB Local's stream for the producer's versions. A tap in front of its Streams endpoint
 *   (streamsTap.ts) watches when each shard's end was served and when each child was first read.
 *   With `freezeAllMs` (the trimmed-retention variant) every worker is SIGSTOPped at once for
 *   longer than the retention while the producer writes: records are trimmed before anyone read
 *   them, and each must then be covered by a gap of a sealed manifest.
 */

/** The many-shard variant's stream (see the top of this file). */
export interface EmulatedStreamOptions {
  /** Open shards of the stream at the start. Default 16. */
  shards?: number;
  /** A seeded-random open shard splits in two this often. Default 10 s. */
  splitEveryMs?: number;
  /** Share of GetRecords/GetShardIterator calls throttled (LimitExceeded) until the verdict. Default 0.05. */
  throttleRate?: number;
  /** Share of Streams calls answered 500 until the verdict. Default 0.01. */
  errorRate?: number;
  /** Records older than this are trimmed. Default 24 h (nothing is trimmed). */
  retentionMs?: number;
  /**
   * The trimmed-retention variant: once, every worker is SIGSTOPped for this long (make it longer
   * than `retentionMs`) while the producer writes on. Sealed manifests may then list gaps, and
   * every record in no manifest must be covered by one.
   */
  freezeAllMs?: number;
  /**
   * When the freeze happens. `after-first-seal` (default): at a seeded time 25-40 % into the
   * chaos, but not before a first window was sealed. (The sealer of a new changelog starts one
   * retention back, and the product assumes AWS's 24 h: a gap committed before the first seal
   * lands in a window 24 h ago, and the sealer then writes ~1440 empty 1-minute manifests, minutes
   * of work, before the real windows.) `start`: as soon as the chaos starts, while some shards of
   * the changelog's start still have no committed checkpoint (they read from TRIM_HORIZON).
   */
  freezeAt?: 'after-first-seal' | 'start';
}

export interface ChaosOptions {
  /** How long the producer writes and the chaos loop acts. */
  durationMs: number;
  /** Worker processes kept running (a killed one is replaced). Default 3. */
  workers?: number;
  /**
   * No kills, pauses or S3 fault periods (the emulator's throttling and splits still apply): for
   * measuring lease churn and refused commits in a fleet without failures.
   */
  calm?: boolean;
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
  /** Run against the many-shard Streams emulator instead of DynamoDB Local's one shard. */
  emulator?: EmulatedStreamOptions;
  /** The workers' --window. Default 1m (the smallest the CLI takes). */
  window?: string;
  /** The workers' --allowed-lateness. Default 5s. */
  allowedLateness?: string;
  /** Keep the workers' log files even when the run passed. Default false. */
  keepLogs?: boolean;
  /** Progress and summary lines. Default console.log. */
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  /** `dynamodb-local`, `emulator` or `emulator-trimmed`. */
  variant: string;
  /** Stream records delivered (the changes the changelog must hold). */
  changes: number;
  producerWrites: number;
  /** Shards of the stream, children included. */
  shards: number;
  splits: number;
  kills: number;
  pauses: number;
  /** SIGSTOPs of every worker at once (the trimmed-retention variant). */
  freezes: number;
  faultPeriods: number;
  /** Emulator: LimitExceeded answers (injected and DescribeStream's rate limit) plus injected 500s. */
  throttles: number;
  injected503: number;
  injectedResponseLost: number;
  s3Requests: number;
  manifests: number;
  segments: number;
  /** Data objects no manifest lists, at the end. */
  orphans: number;
  /** Sum of `count` over the workers' "orphans deleted" log lines. */
  orphansDeleted: number;
  /** Worker log lines: 'commit refused...', 'commit self-check failed...', 'lease lost', 'lease handed off'. */
  refusedCommits: number;
  selfCheckFailures: number;
  leaseLosses: number;
  handOffs: number;
  /** Extra copies of event ids across all sealed manifests' segments. */
  duplicates: number;
  /** Extra copies of (shard, sequence number) across all sealed manifests' segments. */
  duplicateSequenceNumbers: number;
  /** Stream records in no sealed manifest and in no gap that may hold them: lost + uncoveredTrims. */
  missing: number;
  /** Missing records the stream had not trimmed (or a gap claims though it was found before they were trimmed). */
  lost: number;
  /** Records the stream had trimmed by the verdict (with a short retention, all of the old ones). */
  trimmed: number;
  /** Trimmed records in no manifest, covered by a sealed gap: trimmed before anyone read them. */
  trimmedUnread: number;
  /** Trimmed records in no manifest and in no sealed gap: silent loss. */
  uncoveredTrims: number;
  /** Gaps listed by sealed manifests. */
  gaps: number;
  /**
   * Emulator: per child shard, ms from its parent's final page being served to the child's first
   * GetRecords (over the children where both happened).
   */
  childStart: {
    children: number;
    measured: number;
    p50Ms: number | undefined;
    maxMs: number | undefined;
    /** The child that waited longest, and its parent: where to look in the worker logs. */
    slowest?: { child: string; parent: string; ms: number };
  };
  /** Rows whose event id the stream never delivered. */
  extra: number;
  orderViolations: number;
  /** Workers that exited without being killed by the scenario. */
  unexpectedExits: string[];
  verify: { exitCode: number | null; output: string } | undefined;
  /** `verify --stream` (emulator variants, when the CLI has it); 'skipped' when it does not. */
  verifyStream: { exitCode: number | null; output: string } | 'skipped' | undefined;
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

const DAY_MS = 24 * 60 * 60 * 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runChaosScenario(options: ChaosOptions): Promise<ChaosReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const log = options.log ?? ((line: string) => console.log(line));
  const workerCount = options.workers ?? 3;
  const failoverSeconds = options.failoverSeconds ?? 3;
  const faultRate = options.faultRate ?? 0.3;
  const emu = options.emulator;
  const retentionMs = emu?.retentionMs ?? DAY_MS;
  const trimming = emu !== undefined && retentionMs < DAY_MS;
  const variant = emu === undefined ? 'dynamodb-local' : trimming ? 'emulator-trimmed' : 'emulator';
  const rng = createRng(seed);
  const logDir = await mkdtemp(path.join(tmpdir(), 'changelog-chaos-'));
  log(
    `chaos: seed ${seed}, ${variant}, ${options.durationMs} ms, ${workerCount} workers, ${options.keys} keys` +
      (emu === undefined
        ? ''
        : `, ${emu.shards ?? 16} shards splitting every ${emu.splitEveryMs ?? 10_000} ms, retention ${retentionMs} ms` +
          (emu.freezeAllMs === undefined
            ? ''
            : `, all workers frozen ${emu.freezeAllMs} ms (${emu.freezeAt ?? 'after-first-seal'})`)) +
      `; logs in ${logDir}`,
  );

  const violations: string[] = [];
  const unexpectedExits: string[] = [];
  const allLogs: LogRecord[][] = [];
  let dynamo: DynamoDbLocal | undefined;
  let ddb: DynamoDBClient | undefined;
  let s3: S3rverServer | undefined;
  let proxy: FaultProxy | undefined;
  let emulator: StreamsEmulator | undefined;
  let tap: StreamsTap | undefined;
  let splitTimer: NodeJS.Timeout | undefined;
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
    const sourceStreamArn = await createStreamTable(ddb, TABLE);

    let env = localAwsEnvironment({ dynamodb: dynamo.endpoint, s3: proxy.endpoint });
    /** `verify`'s environment: the workers', but Streams calls go to the emulator itself, not the tap. */
    let verifyEnv = env;
    if (emu !== undefined) {
      emulator = await startStreamsEmulator({
        dynamoDbEndpoint: dynamo.endpoint,
        tableName: TABLE,
        // The pump reads DynamoDB Local's database of the producer's key (one database per key).
        accessKeyId: CREDENTIALS.accessKeyId,
        region: 'us-east-1',
        shards: emu.shards ?? 16,
        seed: seed ^ 0xe1e1,
        // Splits are scheduled below, from the chaos start on: a split before the workers are up
        // would, with a short retention, trim a parent away before the changelog even began.
        retentionMs,
        throttleRate: emu.throttleRate ?? 0.05,
        errorRate: emu.errorRate ?? 0.01,
      });
      tap = await startStreamsTap(emulator.endpoint);
      env = localAwsEnvironment({ dynamodb: emulator.endpoint, streams: tap.endpoint, s3: proxy.endpoint });
      verifyEnv = localAwsEnvironment({ dynamodb: emulator.endpoint, s3: proxy.endpoint });
    }

    const destination = `s3://${BUCKET}/${PREFIX}`;
    const runArgs = [
      'run',
      ...['--table', TABLE, '--destination', destination, '--lease-table', LEASE_TABLE],
      '--create-lease-table',
      ...['--window', options.window ?? '1m', '--allowed-lateness', options.allowedLateness ?? '5s'],
      ...['--flush-interval', '2s'],
      ...['--failover', `${failoverSeconds}s`, '--orphan-grace', '15s'],
      '--s3-force-path-style',
      // Several workers on one host: each serves its metrics on a free port.
      ...['--metrics-port', '0'],
      ...['--log-level', 'info'],
      // The emulator's retention, so the workers' check for trims after the changelog's start and
      // the sealer's first window use it (24 h on DynamoDB).
      ...(trimming ? ['--stream-retention', `${retentionMs}ms`] : []),
    ];

    /**
     * When each worker last showed it holds the shard lease or the sealer lease (from its logs).
     * With one shard, a randomly picked victim is often an idle standby; picking the busy ones
     * most of the time makes each kill or pause force a takeover mid-work.
     */
    const lastWork = new Map<CliProcess, Partial<Record<Role, number>>>();
    let windowSealed = false;
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
        if (record['msg'] === 'window sealed') windowSealed = true;
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
    // On a loaded box a worker can take most of a minute to boot; chaos and writes start once one
    // reads, so the whole run is chaos, and with a short retention nothing is trimmed before the
    // changelog began (records older than its start are not its to keep).
    const bootStart = performance.now();
    await Promise.any(workers.map((w) => w!.waitForLog((r) => r['msg'] === 'lease taken', 180_000))).catch(
      () => log('chaos: no worker took a lease within 180 s; starting the chaos anyway'),
    );
    log(`chaos: a worker reads after ${Math.round(performance.now() - bootStart)} ms; chaos starts`);
    if (emulator !== undefined) {
      const splitting = emulator;
      splitTimer = setInterval(() => splitting.split(), emu?.splitEveryMs ?? 10_000);
    }

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

    const counts = { kills: 0, pauses: 0, freezes: 0, faultPeriods: 0 };
    const background = new Set<Promise<void>>();
    const track = (task: Promise<void>) => {
      background.add(task);
      void task.finally(() => background.delete(task));
    };
    let pausing = false;
    let faulting = false;
    const faultProxy = proxy;
    const chaosStart = performance.now();
    const chaosEnd = chaosStart + options.durationMs;
    const freezeAtStart = emu?.freezeAt === 'start';
    // Drawn only when configured, so the other variants' seeds keep their old meaning.
    let freezeAt =
      emu?.freezeAllMs === undefined
        ? undefined
        : freezeAtStart
          ? chaosStart
          : chaosStart + options.durationMs * (0.25 + 0.15 * rng());
    // Each kind of chaos happens at least once, in a seeded order; then they are drawn at random.
    const plan = shuffle(['kill', 'pause', 'faults'] as const, rng);
    // A freeze still waiting for the first sealed window keeps the chaos going (2 minutes at most).
    const chaosGoesOn = () =>
      performance.now() < chaosEnd || (freezeAt !== undefined && performance.now() < chaosEnd + 120_000);
    while (chaosGoesOn()) {
      if (options.calm) {
        await sleep(500); // no kills, pauses or faults: lease churn from balancing and splits alone
        continue;
      }
      if (!(freezeAtStart && freezeAt !== undefined)) await sleep(1_500 + rng() * 3_500);
      if (!chaosGoesOn()) break;
      if (
        freezeAt !== undefined &&
        performance.now() >= freezeAt &&
        (freezeAtStart || windowSealed || performance.now() >= chaosEnd + 60_000)
      ) {
        freezeAt = undefined;
        // Every worker at once, past the retention: nobody reads, the producer writes on, the
        // stream trims. Single pauses and fault periods end first, so the freeze is clean.
        await Promise.all([...background]);
        const freezeMs = emu!.freezeAllMs!;
        const frozen = workers.filter((w): w is CliProcess => w !== undefined && !w.exited);
        log(`chaos: SIGSTOP all ${frozen.length} workers for ${freezeMs} ms`);
        for (const w of frozen) w.pause();
        counts.freezes++;
        await sleep(freezeMs);
        for (const w of frozen) w.resume();
        log('chaos: SIGCONT all workers');
        continue;
      }
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
            // Until at least one fault landed (capped), so a fault period is never a no-op: in a
            // short run S3 writes are few (a flush every 30 s), and 20 s once saw none (CI).
            while (
              performance.now() - start < minMs ||
              (faultProxy.counts.injected503 + faultProxy.counts.injectedResponseLost === before &&
                performance.now() - start < 60_000)
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
        `freezes ${counts.freezes}, fault periods ${counts.faultPeriods}` +
        (emulator === undefined
          ? ''
          : `; emulator: ${emulator.shards().length} shards, ${emulator.counts.splits} splits, ` +
            `${emulator.counts.throttled} throttled, ${emulator.counts.errors} errors, ` +
            `${emulator.counts.placed} records placed`),
    );

    // --- what the stream delivered, independently read ---------------------------------------
    const source = await readStreamChanges({
      endpoint: dynamo.endpoint,
      credentials: CREDENTIALS,
      streamArn: sourceStreamArn,
      expectAtLeast: produced.writes.length,
    });
    let truth: () => TruthChange[];
    if (emulator === undefined) {
      const fixed = source.map((c) => ({ ...c, trimmed: false }));
      truth = () => fixed;
    } else {
      // Every record DynamoDB Local delivered is placed once a pump round after this call ends.
      const emulated = emulator;
      await emulated.waitForPump(60_000);
      violations.push(...checkPump(source, emulated.records()));
      const byId = new Map(source.map((c) => [c.eventId, c]));
      truth = () => joinEmulated(emulated.records(), byId);
    }
    violations.push(...checkProducerAgainstStream(produced, truth()));

    // --- wait until the sealed manifests hold every record, then settle ------------------------
    reader = new ChangelogReader({ client: s3.client, bucket: BUCKET, prefix: PREFIX, table: TABLE });
    const sealDeadline = performance.now() + (options.sealTimeoutMs ?? 240_000);
    let snapshot: ChangelogSnapshot = await reader.read();
    let lastProgress = 0;
    let allSealed = false;
    let accounted = -1;
    let accountedSince = performance.now();
    for (;;) {
      const expected = truth();
      const present = countAccounted(snapshot, expected);
      if (present !== accounted) {
        accounted = present;
        accountedSince = performance.now();
      }
      if (present === expected.length) {
        allSealed = true;
        log(
          `chaos: all ${present} records are in sealed manifests` +
            (trimming ? ' or sealed gaps' : '') +
            '; watching for late duplicates',
        );
        break;
      }
      if (performance.now() > sealDeadline) {
        log(`chaos: gave up waiting for sealing: ${present}/${expected.length} records in sealed manifests`);
        break;
      }
      // The sealer closes a window only once every shard read past it: when two windows after the
      // newest record's are sealed and nothing moved for 30 s, what is missing will not come.
      const past = sealedPast(snapshot, expected);
      if (past && performance.now() - accountedSince > 30_000) {
        log(
          `chaos: ${present}/${expected.length} records in sealed manifests, and sealing went two windows ` +
            'past the newest record 30 s ago: the rest will not come',
        );
        break;
      }
      if (performance.now() - lastProgress > 20_000) {
        lastProgress = performance.now();
        log(
          `chaos: sealed ${present}/${expected.length} records in ${snapshot.manifests.length} manifests, ` +
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
    const expected = truth();
    const check = checkChangelog(snapshot, expected, { allowGaps: trimming });
    violations.push(...check.violations, ...snapshot.problems.map((p) => `changelog reader: ${p}`));

    let childStart: ChaosReport['childStart'] = {
      children: 0,
      measured: 0,
      p50Ms: undefined,
      maxMs: undefined,
    };
    if (emulator !== undefined && tap !== undefined) {
      const lineage = checkLineage(emulator, tap, trimming);
      childStart = lineage.childStart;
      violations.push(...lineage.violations);
      if (tap.counts.unknownIterators > 0) {
        log(
          `chaos: the streams tap saw ${tap.counts.unknownIterators} GetRecords with an iterator it never saw issued`,
        );
      }
      // Faults and splits were part of the run, not of the audit: verify reads a well-behaved stream.
      emulator.setFaults({ throttleRate: 0, errorRate: 0 });
      clearInterval(splitTimer);
    }

    const firstWindow = snapshot.manifests.map((m) => m.windowStart).sort()[0];
    let verify: ChaosReport['verify'];
    let verifyStream: ChaosReport['verifyStream'];
    if (firstWindow === undefined) {
      violations.push('no sealed manifest at all, so nothing for verify to check');
    } else {
      const verifyArgs = [
        'verify',
        ...['--destination', destination, '--table', TABLE, '--since', firstWindow],
        '--s3-force-path-style',
      ];
      // The workers' environment: S3 through the proxy, whose fault rate is 0 by now.
      const runs: Promise<void>[] = [
        runCli(verifyArgs, { env: verifyEnv, name: 'verify', timeoutMs: 180_000 }).then((run) => {
          verify = { exitCode: run.exit.code, output: `${run.stdout}\n${run.stderr}`.trim() };
        }),
      ];
      if (emulator !== undefined) {
        const help = await runCli(['verify', '--help'], { env: verifyEnv, name: 'verify-help' });
        if (!/--stream\b/.test(help.stdout)) {
          verifyStream = 'skipped';
          log('chaos: `verify --stream` is not in this CLI yet: skipped');
        } else {
          // Every record is sealed by now, so none may be excused as possibly late: grace 0.
          const grace = /--late-grace\b/.test(help.stdout) ? ['--late-grace', '0s'] : [];
          runs.push(
            runCli([...verifyArgs, '--stream', ...grace], {
              env: verifyEnv,
              name: 'verify-stream',
              timeoutMs: 240_000,
            }).then((run) => {
              verifyStream = { exitCode: run.exit.code, output: `${run.stdout}\n${run.stderr}`.trim() };
            }),
          );
        }
      }
      await Promise.all(runs);
      if (verify !== undefined && verify.exitCode !== 0) {
        violations.push(`verify exited with ${verify.exitCode}:\n${verify.output}`);
      }
      if (verifyStream !== undefined && verifyStream !== 'skipped' && verifyStream.exitCode !== 0) {
        violations.push(`verify --stream exited with ${verifyStream.exitCode}:\n${verifyStream.output}`);
      }
    }
    violations.push(...unexpectedExits);

    stopping = true;
    const records = allLogs.flat();
    const orphansDeleted = records
      .filter((r) => r['msg'] === 'orphans deleted')
      .reduce((n, r) => n + (typeof r['count'] === 'number' ? r['count'] : 0), 0);
    const logCount = (match: (msg: string) => boolean) =>
      records.filter((r) => typeof r['msg'] === 'string' && match(r['msg'])).length;
    const workerProblems = countProblems(records);
    const report: ChaosReport = {
      seed,
      variant,
      changes: expected.length,
      producerWrites: produced.writes.length,
      shards:
        emulator === undefined ? new Set(expected.map((c) => c.shardId)).size : emulator.shards().length,
      splits: emulator?.counts.splits ?? 0,
      ...counts,
      throttles: emulator === undefined ? 0 : emulator.counts.throttled + emulator.counts.errors,
      injected503: proxy.counts.injected503,
      injectedResponseLost: proxy.counts.injectedResponseLost,
      s3Requests: proxy.counts.requests,
      manifests: snapshot.manifests.length,
      segments: new Set(snapshot.rows.map((r) => r.segmentKey)).size,
      orphans: snapshot.orphans.length,
      orphansDeleted,
      refusedCommits: logCount((m) => m.startsWith('commit refused')),
      selfCheckFailures: logCount((m) => m.startsWith('commit self-check failed')),
      leaseLosses: logCount((m) => m === 'lease lost'),
      handOffs: logCount((m) => m === 'lease handed off'),
      duplicates: check.duplicates,
      duplicateSequenceNumbers: check.duplicateSequenceNumbers,
      missing: check.missing,
      lost: check.lost,
      trimmed: check.trimmed,
      trimmedUnread: check.trimmedUnread,
      uncoveredTrims: check.uncoveredTrims,
      gaps: check.gaps,
      extra: check.extra,
      orderViolations: check.orderViolations,
      childStart,
      unexpectedExits,
      verify,
      verifyStream,
      violations,
      workerProblems,
      logDir,
      summary: '',
    };
    const ms = (n: number | undefined) => (n === undefined ? '-' : String(Math.round(n)));
    const exitOf = (v: ChaosReport['verifyStream']) =>
      v === undefined ? 'not run' : v === 'skipped' ? 'skipped' : String(v.exitCode);
    report.summary =
      `chaos summary: seed=${seed} variant=${variant} changes=${report.changes} shards=${report.shards} ` +
      `splits=${report.splits} kills=${report.kills} pauses=${report.pauses} freezes=${report.freezes} ` +
      `throttles=${report.throttles} faultPeriods=${report.faultPeriods} injected503=${report.injected503} ` +
      `injectedResponseLost=${report.injectedResponseLost} manifests=${report.manifests} ` +
      `segments=${report.segments} orphans=${report.orphans} orphansDeleted=${report.orphansDeleted} ` +
      `refusedCommits=${report.refusedCommits} selfCheckFailures=${report.selfCheckFailures} ` +
      `leaseLosses=${report.leaseLosses} handOffs=${report.handOffs} ` +
      `lost=${report.lost} duplicates=${report.duplicates} duplicateSeqs=${report.duplicateSequenceNumbers} ` +
      `missing=${report.missing} extra=${report.extra} trimmed=${report.trimmed} ` +
      `trimmedUnread=${report.trimmedUnread} uncoveredTrims=${report.uncoveredTrims} gaps=${report.gaps} ` +
      `orderViolations=${report.orderViolations} ` +
      `childStartP50Ms=${ms(childStart.p50Ms)} childStartMaxMs=${ms(childStart.maxMs)} ` +
      `(${childStart.measured}/${childStart.children} children) ` +
      `verify=${exitOf(verify)} verifyStream=${exitOf(verifyStream)} violations=${violations.length}`;
    log(report.summary);
    if (childStart.slowest !== undefined) {
      const { child, parent, ms: waited } = childStart.slowest;
      log(`chaos: slowest child start: ${child} first read ${waited} ms after its parent ${parent} ended`);
    }
    for (const [what, n] of Object.entries(workerProblems)) log(`chaos: worker log ${n}x ${what}`);
    for (const v of violations) log(`chaos violation: ${v}`);
    passed = violations.length === 0;
    return report;
  } finally {
    stopping = true;
    clearInterval(splitTimer);
    await Promise.all(
      workers.map(async (w) => {
        if (w === undefined) return;
        const exit = await w.stop(20_000);
        if (exit.signal === 'SIGKILL') log(`chaos: ${w.name} ignored SIGTERM for 20 s and was killed`);
      }),
    );
    await reader?.close();
    await tap?.stop();
    await emulator?.stop();
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

/** A record the changelog must account for, as the stream held it; `trimmed` by the verdict. */
export interface TruthChange extends StreamedChange {
  trimmed: boolean;
}

/** A gap of a sealed manifest (manifest.ts's manifestGapSchema), as the checks use it. */
interface SealedGap {
  manifestKey: string;
  shardId: string;
  /** Digits, or TRIM_HORIZON (nothing of the shard was read before it). */
  after: string;
  /** Digits; absent when the shard ended with nothing more. */
  resumedAt: string | undefined;
}

function sealedGaps(manifests: readonly ManifestSummary[]): {
  byShard: Map<string, SealedGap[]>;
  count: number;
  problems: string[];
} {
  const byShard = new Map<string, SealedGap[]>();
  const problems: string[] = [];
  let count = 0;
  for (const m of manifests) {
    for (const raw of m.gaps) {
      const g = raw as {
        shardId?: unknown;
        afterSequenceNumber?: unknown;
        resumedAtSequenceNumber?: unknown;
      };
      const digits = (v: unknown) => typeof v === 'string' && /^\d{1,40}$/.test(v);
      if (
        typeof g.shardId !== 'string' ||
        !(g.afterSequenceNumber === 'TRIM_HORIZON' || digits(g.afterSequenceNumber)) ||
        !(g.resumedAtSequenceNumber === undefined || digits(g.resumedAtSequenceNumber))
      ) {
        problems.push(`manifest ${m.key} lists a gap the checks cannot read: ${JSON.stringify(raw)}`);
        continue;
      }
      count++;
      const gap: SealedGap = {
        manifestKey: m.key,
        shardId: g.shardId,
        after: g.afterSequenceNumber as string,
        resumedAt: g.resumedAtSequenceNumber as string | undefined,
      };
      byShard.set(gap.shardId, [...(byShard.get(gap.shardId) ?? []), gap]);
    }
  }
  return { byShard, count, problems };
}

/** The sealed gap whose range holds the record: same shard, after < seq < resumedAt (as integers). */
function gapCovering(
  gaps: ReadonlyMap<string, readonly SealedGap[]>,
  change: { shardId: string; sequenceNumber: string },
): SealedGap | undefined {
  const seq = BigInt(change.sequenceNumber);
  return gaps
    .get(change.shardId)
    ?.find(
      (g) =>
        (g.after === 'TRIM_HORIZON' || seq > BigInt(g.after)) &&
        (g.resumedAt === undefined || seq < BigInt(g.resumedAt)),
    );
}

/** Whether the sealed windows reach two windows past the window of the newest record. */
function sealedPast(snapshot: ChangelogSnapshot, expected: readonly TruthChange[]): boolean {
  const m = snapshot.manifests[0];
  if (m === undefined || expected.length === 0) return false;
  const windowMs = Date.parse(m.windowEnd) - Date.parse(m.windowStart);
  if (!(windowMs > 0)) return false;
  const newest = expected.reduce((n, c) => Math.max(n, c.eventTimeMs), 0);
  const lastSealedEnd = snapshot.manifests.reduce((n, x) => Math.max(n, Date.parse(x.windowEnd)), 0);
  return lastSealedEnd >= Math.floor(newest / windowMs) * windowMs + 3 * windowMs;
}

/** Records a sealed manifest holds, or (trimmed ones) a sealed gap covers. */
function countAccounted(snapshot: ChangelogSnapshot, expected: readonly TruthChange[]): number {
  const present = new Set(snapshot.rows.map((r) => r.event_id));
  const { byShard } = sealedGaps(snapshot.manifests);
  let n = 0;
  for (const c of expected) {
    if (present.has(c.eventId) || (c.trimmed && gapCovering(byShard, c) !== undefined)) n++;
  }
  return n;
}

/**
 * The emulator's pump against its source: every record DynamoDB Local's stream delivered is placed
 * once in an emulated shard, with the same operation, and nothing else is.
 */
function checkPump(source: readonly StreamedChange[], emulated: readonly EmulatedRecord[]): string[] {
  const violations: string[] = [];
  const placed = new Map<string, EmulatedRecord[]>();
  for (const r of emulated) placed.set(r.eventId, [...(placed.get(r.eventId) ?? []), r]);
  const sourceIds = new Set(source.map((c) => c.eventId));
  let problems = 0;
  const note = (text: string) => {
    if (problems++ < EXAMPLES) violations.push(`emulator pump: ${text}`);
  };
  for (const c of source) {
    const copies = placed.get(c.eventId) ?? [];
    if (copies.length !== 1)
      note(`DynamoDB Local record ${c.eventId} (${c.pk} ${c.op}) placed ${copies.length} times`);
    else if (copies[0]!.eventName !== c.op)
      note(`record ${c.eventId}: ${c.op} in DynamoDB Local, ${copies[0]!.eventName} placed`);
  }
  for (const id of placed.keys())
    if (!sourceIds.has(id)) note(`placed record ${id} is not in DynamoDB Local's stream`);
  if (problems > EXAMPLES) violations.push(`emulator pump: ... ${problems - EXAMPLES} more`);
  return violations;
}

/** The emulator's records, with the producer's version from the DynamoDB Local record they came from. */
function joinEmulated(
  emulated: readonly EmulatedRecord[],
  source: ReadonlyMap<string, StreamedChange>,
): TruthChange[] {
  return emulated.map((r) => {
    const from = source.get(r.eventId);
    const pk = (r.keys['pk'] as { S?: string } | undefined)?.S ?? JSON.stringify(r.keys);
    return {
      eventId: r.eventId,
      op: r.eventName,
      pk,
      sequenceNumber: r.sequenceNumber,
      shardId: r.shardId,
      v: from?.v,
      eventTimeMs: r.approximateCreationDateTime.getTime(),
      trimmed: r.trimmed,
    };
  });
}

/**
 * Lineage seen from outside the workers (invariant 4): no GetRecords on a child before its
 * parent's last page was served; and the child start latency (parent's end served -> child's
 * first GetRecords). A child read although its parent's end was never served is a violation
 * unless the stream trims (a parent trimmed away unread has no end to serve).
 */
function checkLineage(
  emulator: StreamsEmulator,
  tap: StreamsTap,
  trimming: boolean,
): { childStart: ChaosReport['childStart']; violations: string[] } {
  const violations: string[] = [];
  const latencies: number[] = [];
  let slowest: { child: string; parent: string; ms: number } | undefined;
  let children = 0;
  for (const shard of emulator.shards()) {
    const parent = shard.parentShardId;
    if (parent === undefined) continue;
    children++;
    const first = tap.firstGetRecords.get(shard.shardId);
    if (first === undefined) continue;
    const parentEnd = tap.endServed.get(parent);
    if (parentEnd === undefined) {
      if (!trimming) {
        violations.push(
          `lineage: child ${shard.shardId} was read, but its parent ${parent}'s end was never served`,
        );
      }
    } else if (first < parentEnd) {
      violations.push(
        `lineage: child ${shard.shardId} was read ${parentEnd - first} ms before its parent ${parent}'s last page was served`,
      );
    } else {
      const ms = first - parentEnd;
      latencies.push(ms);
      if (slowest === undefined || ms > slowest.ms) slowest = { child: shard.shardId, parent, ms };
    }
  }
  latencies.sort((a, b) => a - b);
  return {
    childStart: {
      children,
      measured: latencies.length,
      p50Ms: latencies.length === 0 ? undefined : latencies[Math.floor((latencies.length - 1) / 2)],
      maxMs: latencies.at(-1),
      ...(slowest !== undefined && { slowest }),
    },
    violations,
  };
}

const bySequence = (a: { sequenceNumber: string }, b: { sequenceNumber: string }) => {
  const x = BigInt(a.sequenceNumber);
  const y = BigInt(b.sequenceNumber);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The stream must hold exactly the producer's writes: same count, same (op, v) sequence per key. */
export function checkProducerAgainstStream(
  produced: ProducerResult,
  streamed: readonly StreamedChange[],
): string[] {
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
  duplicateSequenceNumbers: number;
  /** lost + uncoveredTrims. */
  missing: number;
  lost: number;
  trimmed: number;
  trimmedUnread: number;
  uncoveredTrims: number;
  gaps: number;
  extra: number;
  orderViolations: number;
  violations: string[];
}

export interface ChangelogCheckOptions {
  /**
   * The stream trims (short retention): manifests may list gaps, and a trimmed record in no
   * manifest is accounted for when a sealed gap covers it. Default false: every manifest complete.
   */
  allowGaps?: boolean;
}

/**
 * The exactly-once and order verdict on the sealed changelog, against the stream:
 * - every stream record in exactly one row of one sealed manifest (no duplicate event id, no
 *   duplicate (shard, sequence number), none missing, no extra ids), with the stream's op,
 *   sequence number and shard; with `allowGaps`, a record the stream trimmed may instead be in no
 *   manifest if a sealed gap covers it (same shard, afterSequenceNumber < seq < resumedAt);
 * - per item, rows in sequence-number order (across parent and child shards: sequence numbers
 *   grow across a split) carry the producer's versions in increasing order (1, 2, 3, ... unless
 *   trimmed), and never sit in an earlier window than a change before them;
 * - every manifest complete (no gaps) unless `allowGaps`; complete exactly when it lists no gap.
 */
export function checkChangelog(
  snapshot: ChangelogSnapshot,
  streamed: readonly (StreamedChange & { trimmed?: boolean })[],
  options: ChangelogCheckOptions = {},
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

  // The same stream position twice, whatever event ids the rows carry.
  const rowsAt = new Map<string, ChangelogRow[]>();
  for (const r of snapshot.rows) {
    const at = `${r.shard_id}/${BigInt(r.sequence_number)}`;
    rowsAt.set(at, [...(rowsAt.get(at) ?? []), r]);
  }
  let duplicateSequenceNumbers = 0;
  for (const [at, rows] of rowsAt) {
    if (rows.length < 2) continue;
    duplicateSequenceNumbers += rows.length - 1;
    if (duplicateSequenceNumbers <= EXAMPLES) {
      violations.push(
        `duplicate: ${at} appears ${rows.length} times: ${rows.map((r) => `${r.event_id} in ${r.segmentKey}`).join('; ')}`,
      );
    }
  }
  if (duplicateSequenceNumbers > 0) {
    violations.push(
      `${duplicateSequenceNumbers} duplicate (shard, sequence number) rows in sealed manifests`,
    );
  }

  // Records in no sealed manifest: covered by a sealed gap (only a trimmed one may be), or lost.
  const gaps = sealedGaps(snapshot.manifests);
  violations.push(...gaps.problems);
  const lost: string[] = [];
  const uncovered: string[] = [];
  let trimmedUnread = 0;
  const describe = (c: StreamedChange) =>
    `${c.eventId} (${c.pk} ${c.op} v${c.v} ${c.shardId}/${c.sequenceNumber} at ${new Date(c.eventTimeMs).toISOString()})`;
  for (const c of streamed) {
    if (rowsById.has(c.eventId)) continue;
    const gap = options.allowGaps ? gapCovering(gaps.byShard, c) : undefined;
    if (c.trimmed === true) {
      if (gap !== undefined) trimmedUnread++;
      else uncovered.push(describe(c));
    } else {
      lost.push(
        describe(c) +
          (gap === undefined
            ? ''
            : `, which gap ${gap.shardId} after ${gap.after} in ${gap.manifestKey} claims though the stream still holds it`),
      );
    }
  }
  if (lost.length > 0) {
    violations.push(
      `missing: ${lost.length} stream records in no sealed manifest, e.g. ${lost.slice(0, EXAMPLES).join(', ')}`,
    );
  }
  if (uncovered.length > 0) {
    violations.push(
      `uncovered trim: ${uncovered.length} records the stream trimmed are in no sealed manifest and in no sealed gap, e.g. ` +
        uncovered.slice(0, EXAMPLES).join(', '),
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
        violations.push(
          `order: ${pk} ${row.op} ${row.shard_id}/${row.sequence_number} (${row.event_id}) ${problem}`,
        );
      }
      previousV = v ?? previousV;
      if (row.windowStart > previousWindow) previousWindow = row.windowStart;
    }
  }
  if (orderViolations > EXAMPLES) violations.push(`... ${orderViolations - EXAMPLES} more order violations`);

  for (const m of snapshot.manifests) {
    if (!options.allowGaps && (!m.complete || m.gaps.length > 0)) {
      violations.push(`manifest ${m.key} is incomplete: ${JSON.stringify(m.gaps)}`);
    } else if (m.complete !== (m.gaps.length === 0)) {
      violations.push(`manifest ${m.key} says complete=${m.complete} with ${m.gaps.length} gaps`);
    }
  }
  return {
    duplicates,
    duplicateSequenceNumbers,
    missing: lost.length + uncovered.length,
    lost: lost.length,
    trimmed: streamed.filter((c) => c.trimmed === true).length,
    trimmedUnread,
    uncoveredTrims: uncovered.length,
    gaps: gaps.count,
    extra,
    orderViolations,
    violations,
  };
}

function parseImage(text: string | null): Record<string, Record<string, unknown>> | null {
  return text === null ? null : (JSON.parse(text) as Record<string, Record<string, unknown>>);
}

function pkOf(keysJson: string): string {
  const keys = JSON.parse(keysJson) as { pk?: { S?: string } };
  return keys.pk?.S ?? keysJson;
}
