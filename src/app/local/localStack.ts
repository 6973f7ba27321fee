import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { keyColumnName } from '../../changelog/keySchema.js';
import { openDestination } from '../../coordination/openObjectStore.js';
import type { WindowSealed } from '../../coordination/pipelineObserver.js';
import { formatDuration } from '../../support/duration.js';
import { ChangelogError } from '../../support/errors.js';
import { createLogger, type Logger } from '../../support/logger.js';
import { runDaemon } from '../daemon.js';
import { ChangelogMetrics, type MetricsSnapshot } from '../metrics.js';
import { parseRunConfig, type RunConfig } from '../runConfig.js';
import { DEMO_KEY, DEMO_TABLE, DemoProducer, ensureDemoTable } from './demoProducer.js';
import { loadLocalDevDependencies } from './devDependencies.js';
import { checkJava } from './java.js';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  type LocalServer,
  localAwsEnvironment,
  startDynamoDbLocal,
  startS3rver,
} from './localServers.js';
import { buildLocalSummary, readSealedWindows, type SealedWindowOnDisk } from './localSummary.js';
import { type StatusOutput, StatusView } from './statusView.js';

/*
 * `dynamodb-changelog local`: the whole pipeline on one machine, with nothing to configure.
 * DynamoDB Local and s3rver on loopback (data under <data-dir>, default .local/), a demo table
 * with a stream, a producer writing orders to it, the daemon tailing the stream into s3rver, and a
 * status line. On Ctrl-C or after --duration it stops in order (producer, daemon, servers) and
 * prints a summary with a DuckDB query over the files on disk.
 */

export const LOCAL_BUCKET = 'changelog';
export const LOCAL_PREFIX = 'demo';
export const LOCAL_LEASE_TABLE = `${DEMO_TABLE}-changelog-leases`;
/**
 * DynamoDB Local stamps stream records with their minute, so event time, and the watermark with it,
 * moves in whole minutes: a 1-minute window is complete as soon as a record of the next minute
 * arrives, and no lateness is needed on its single shard. With any lateness above 0 a window would
 * wait for the minute after that, and the first seal would take up to 3 minutes instead of 2.
 */
export const LOCAL_WINDOW = '1m';
export const LOCAL_ALLOWED_LATENESS = '0s';
export const LOCAL_FLUSH_INTERVAL = '5s';

export interface LocalStackOptions {
  /** Where DynamoDB Local and s3rver keep their data, the daemon log and the query. */
  dataDir: string;
  /** Stop after this long; undefined: until Ctrl-C. */
  durationMs?: number | undefined;
  /** Demo writes per second. */
  rate: number;
  /** Demo key space (orders). */
  keys: number;
  /** Delete the data of earlier runs first. */
  fresh: boolean;
  stdout?: StatusOutput;
  stderr?: { write(text: string): unknown };
  /** Stop on SIGINT/SIGTERM (default true): the first stops cleanly, a second one exits at once. */
  handleSignals?: boolean;
  /** Stops the stack like Ctrl-C. */
  signal?: AbortSignal;
}

/** Variables that would change what the SDK does with the ones of localAwsEnvironment. */
const CONFLICTING_AWS_VARIABLES = [
  'AWS_PROFILE',
  'AWS_DEFAULT_REGION',
  'AWS_SESSION_TOKEN',
  'AWS_ENDPOINT_URL',
  'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS',
  'AWS_USE_FIPS_ENDPOINT',
  'AWS_USE_DUALSTACK_ENDPOINT',
];

function applyEnvironment(values: Record<string, string>): void {
  for (const name of CONFLICTING_AWS_VARIABLES) delete process.env[name];
  Object.assign(process.env, values);
}

/** Ctrl-C from a terminal under `npm start` arrives twice (from the terminal and forwarded by npm). */
const SECOND_SIGNAL_AFTER_MS = 1_000;

/** Runs the local stack; resolves with the exit code once everything is stopped. */
export async function runLocalStack(options: LocalStackOptions): Promise<number> {
  const out = options.stdout ?? process.stdout;
  const deps = await loadLocalDevDependencies();
  const java = checkJava();
  if (!java.ok) throw new ChangelogError(java.message, { retriable: false });

  const dataDir = path.resolve(options.dataDir);
  const dirs = {
    dynamodb: path.join(dataDir, 'dynamodb'),
    s3: path.join(dataDir, 's3'),
    log: path.join(dataDir, 'daemon.log'),
    query: path.join(dataDir, 'query.sql'),
  };
  if (options.fresh) {
    // Only what this command creates: --data-dir may point at a directory holding other things.
    for (const p of Object.values(dirs)) await rm(p, { recursive: true, force: true });
  }

  // Stop requests: Ctrl-C, SIGTERM, options.signal, --duration, a server dying.
  const stopController = new AbortController();
  let stopReason = '';
  let failure: string | undefined;
  let firstSignalAt: number | undefined;
  const status = new StatusView({ output: out, sample: async () => sample() });
  const requestStop = (reason: string, failed?: string) => {
    if (stopController.signal.aborted) return;
    stopReason = reason;
    failure = failed;
    stopController.abort(new Error(reason));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    const now = performance.now();
    if (firstSignalAt === undefined) {
      firstSignalAt = now;
      // The last status line stays; on a terminal, start below the echoed ^C.
      const fresh = status.stop() || out.isTTY !== true;
      out.write(
        `${fresh ? '' : '\n'}${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping cleanly (Ctrl-C again to exit at once)...\n`,
      );
      requestStop(signal === 'SIGINT' ? 'Ctrl-C' : signal);
      return;
    }
    if (now - firstSignalAt < SECOND_SIGNAL_AFTER_MS) return;
    out.write('\nExiting at once: buffered rows are read again from the checkpoints on the next run.\n');
    process.exit(130); // the servers are killed by their exit handlers
  };
  const handleSignals = options.handleSignals !== false;
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const onAbort = () => requestStop('stop requested');
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const servers: LocalServer[] = [];
  let producerClient: DynamoDBClient | undefined;
  let logger: Logger | undefined;
  const metrics = new ChangelogMetrics();
  let producer: DemoProducer | undefined;
  let startedAt: number | undefined;
  const sample = async () => ({
    atMs: performance.now(),
    elapsedMs: startedAt === undefined ? 0 : performance.now() - startedAt,
    produced: producer?.written ?? 0,
    producerErrors: producer?.counts.errors ?? 0,
    metrics: await metrics.snapshot(),
  });

  try {
    out.write(`Starting the local stack (data in ${dataDir})...\n`);
    const [dynamo, s3] = await Promise.allSettled([
      startDynamoDbLocal({
        spawn: deps.spawnDynamoDbLocal,
        javaCommand: java.command,
        dbPath: dirs.dynamodb,
        signal: stopController.signal,
      }),
      startS3rver({ module: deps.s3rverModule, directory: dirs.s3, bucket: LOCAL_BUCKET }),
    ]);
    if (dynamo.status === 'fulfilled') servers.push(dynamo.value);
    if (s3.status === 'fulfilled') servers.push(s3.value);
    if (dynamo.status === 'rejected') {
      if (stopController.signal.aborted) return stoppedDuringStartup(out);
      throw dynamo.reason;
    }
    if (s3.status === 'rejected') throw s3.reason;
    for (const [name, server] of [
      ['DynamoDB Local', dynamo.value],
      ['s3rver', s3.value],
    ] as const) {
      void server.exited.then((exit) => {
        requestStop(
          `${name} exited`,
          `${name} exited unexpectedly (exit code ${exit.code}, signal ${exit.signal}); its last output:\n${exit.output}`,
        );
      });
    }
    applyEnvironment(localAwsEnvironment({ dynamodb: dynamo.value.endpoint, s3: s3.value.endpoint }));

    const config: RunConfig = parseRunConfig(
      {
        table: DEMO_TABLE,
        destination: `s3://${LOCAL_BUCKET}/${LOCAL_PREFIX}`,
        leaseTable: LOCAL_LEASE_TABLE,
        createLeaseTable: true,
        window: LOCAL_WINDOW,
        allowedLateness: LOCAL_ALLOWED_LATENESS,
        flushInterval: LOCAL_FLUSH_INTERVAL,
        metricsPort: '0',
        s3ForcePathStyle: true,
        shutdownTimeout: '20s',
        logLevel: 'info',
      },
      {}, // not the environment: CHANGELOG_* meant for `run` must not change the demo
    );
    logger = createLogger(
      config.operations.logLevel,
      { workerId: config.source.workerId, table: config.source.table },
      { file: dirs.log },
    );
    producerClient = new DynamoDBClient({
      endpoint: dynamo.value.endpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    });
    await ensureDemoTable(producerClient);
    if (stopController.signal.aborted) return stoppedDuringStartup(out);

    out.write(
      [
        `  DynamoDB Local  ${dynamo.value.endpoint}  (Java ${java.version.version}; data in ${dirs.dynamodb})`,
        `  S3 (s3rver)     ${s3.value.endpoint}  (bucket ${LOCAL_BUCKET}; objects in ${dirs.s3})`,
        `  demo table      ${DEMO_TABLE}, stream NEW_AND_OLD_IMAGES; ${options.keys} orders, ${options.rate} writes/s`,
        `  changelog       ${config.destination.url}, ${LOCAL_WINDOW} windows, lease table ${LOCAL_LEASE_TABLE}`,
        `  daemon log      ${dirs.log}`,
        '',
      ].join('\n'),
    );

    producer = new DemoProducer({
      client: producerClient,
      keys: options.keys,
      ratePerSecond: options.rate,
      logger,
    });
    const producerController = new AbortController();
    const daemonController = new AbortController();
    const sealed: WindowSealed[] = [];
    const committed: string[] = [];
    startedAt = performance.now();
    const producing = producer.run(producerController.signal).catch((error: unknown) => {
      logger?.error({ error: String(error) }, 'demo producer stopped');
      requestStop('the demo producer failed', `the demo producer failed: ${describe(error)}`);
    });
    const daemon = runDaemon(config, logger, {
      signal: daemonController.signal,
      handleSignals: false,
      metricsHost: '127.0.0.1',
      metrics,
      observer: {
        segmentCommitted: (event) => committed.push(event.key),
        windowSealed: (event) => sealed.push(event),
      },
      onStarted: ({ metricsUrl }) => {
        status.print(
          [
            `  metrics         ${metricsUrl}/metrics`,
            '',
            'Running. DynamoDB Local stamps stream records to the minute, so lag reads up to ~60 s and windows',
            `seal at minute steps: the first one within about 2 minutes. ${
              options.durationMs === undefined
                ? 'Ctrl-C stops it.'
                : `Stopping after ${formatDuration(options.durationMs)} (Ctrl-C stops it sooner).`
            }`,
            '',
          ].join('\n'),
        );
        status.start();
        void status.tick();
      },
    });
    // A daemon that ends by itself (an error) stops the rest too.
    const daemonEnded = daemon.then(
      () => requestStop('the daemon stopped'),
      (error: unknown) => requestStop('the daemon failed', describe(error)),
    );
    const timer =
      options.durationMs === undefined
        ? undefined
        : setTimeout(
            () => requestStop(`--duration ${formatDuration(options.durationMs!)} reached`),
            options.durationMs,
          );

    await new Promise<void>((resolve) => {
      if (stopController.signal.aborted) resolve();
      else stopController.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    clearTimeout(timer);
    const stopStartedAt = performance.now();
    const elapsedMs = stopStartedAt - startedAt;
    status.stop();
    out.write('Stopping the demo producer...\n');
    producerController.abort(new Error('stopping'));
    await producing;
    if (failure === undefined) await waitForReaderToCatchUp(metrics);
    out.write('Stopping the daemon (committing what is buffered, releasing the leases)...\n');
    daemonController.abort(new Error(stopReason));
    let daemonExit: number;
    try {
      daemonExit = (await daemon).exitCode;
    } catch (error) {
      await daemonEnded;
      failure ??= `the daemon failed: ${describe(error)}`;
      daemonExit = 1;
    }
    const snapshot: MetricsSnapshot = await metrics.snapshot();
    let sealedOnDisk: SealedWindowOnDisk[] | undefined;
    if (failure === undefined) {
      const store = openDestination(config.destination);
      try {
        sealedOnDisk = await readSealedWindows(store, config.source.table, AbortSignal.timeout(30_000));
      } catch (error) {
        logger.warn({ error: describe(error) }, 'could not read the manifests for the summary');
      } finally {
        store.close?.();
      }
    }
    out.write('Stopping DynamoDB Local and s3rver...\n\n');
    await stopServers(servers);

    const summary = buildLocalSummary({
      stoppedBecause: stopReason,
      elapsedMs,
      produced: producer.counts,
      metrics: snapshot,
      sealedThisRun: sealed,
      sealedOnDisk,
      committedThisRun: committed,
      s3Directory: dirs.s3,
      bucket: LOCAL_BUCKET,
      prefix: LOCAL_PREFIX,
      table: DEMO_TABLE,
      keyColumns: [keyColumnName(DEMO_KEY)],
      dataDirectory: dataDir,
      logFile: dirs.log,
      queryFile: dirs.query,
    });
    if (summary.query !== undefined) await writeFile(dirs.query, summary.query);
    out.write(summary.text);
    if (failure !== undefined) {
      (options.stderr ?? process.stderr).write(`dynamodb-changelog local: ${failure}\n`);
      return 1;
    }
    return daemonExit;
  } catch (error) {
    // A server that would not start, a lost connection during startup: one clear line, exit 1.
    if (!(error instanceof ChangelogError)) throw error;
    status.stop();
    (options.stderr ?? process.stderr).write(`dynamodb-changelog local: ${error.message}\n`);
    return 1;
  } finally {
    status.stop();
    options.signal?.removeEventListener('abort', onAbort);
    if (handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    producerClient?.destroy();
    await stopServers(servers);
  }
}

function stoppedDuringStartup(out: StatusOutput): number {
  out.write('Stopped during startup.\n');
  return 0;
}

async function stopServers(servers: LocalServer[]): Promise<void> {
  const all = servers.splice(0);
  await Promise.all(all.map((s) => s.stop()));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * After the producer stopped: let the reader take in what is left in the stream (until nothing new
 * was read for 1.5 s, at most 6 s), so the summary's counts line up.
 */
async function waitForReaderToCatchUp(metrics: ChangelogMetrics): Promise<void> {
  const deadline = performance.now() + 6_000;
  let last = (await metrics.snapshot()).recordsRead;
  let quietSince = performance.now();
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = (await metrics.snapshot()).recordsRead;
    if (now !== last) {
      last = now;
      quietSince = performance.now();
    } else if (performance.now() - quietSince >= 1_500) return;
  }
}
