import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ChangelogError } from '../../support/errors.js';
import type { SpawnDynamoDbLocal } from './devDependencies.js';

/*
 * The two servers of the local stack, on free loopback ports, each in its own process. The one
 * starter of each, for `dynamodb-changelog local`, the tests (test/helpers/dynamoDbLocalServer.ts,
 * test/helpers/s3rverServer.ts) and the benchmarks:
 *
 * - DynamoDB Local (Java), with its database files under a directory, so a second run resumes, or
 *   in memory;
 * - s3rver (an S3 protocol server) over a directory, run by a child Node process because its
 *   ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only offers with
 *   --openssl-legacy-provider (jamhall/s3rver#818).
 *
 * Both are started detached (their own process group), so the terminal's Ctrl-C reaches only this
 * process, which still needs them to commit and release leases while it shuts down. Neither may
 * outlive this process, however it ends: an 'exit' handler kills them, and for deaths that run no
 * handler (SIGKILL, OOM) a watchdog process holds a pipe from this one, and kills DynamoDB Local
 * when the OS closes that pipe; s3rver's child exits by itself when its stdin pipe closes.
 */

/** DynamoDB Local keeps one database per access key and region: every client must use the same. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const LOCAL_REGION = 'us-east-1';

/**
 * The `AWS_*` variables an SDK client (this process's, or a child `dynamodb-changelog`'s) needs to
 * reach a DynamoDB Local and an S3 server on loopback: the region, LOCAL_CREDENTIALS (s3rver
 * accepts no others; DynamoDB Local keeps a database per access key, so every other client of the
 * same tables must use them too) and the endpoints. `streams` (AWS_ENDPOINT_URL_DYNAMODB_STREAMS)
 * defaults to `dynamodb`, since DynamoDB Local answers both APIs on one port; tests give another
 * Streams endpoint (the many-shard emulator, or a tap in front of it).
 */
export function localAwsEnvironment(endpoints: {
  dynamodb: string;
  s3: string;
  streams?: string;
}): Record<string, string> {
  return {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
    AWS_ENDPOINT_URL_DYNAMODB_STREAMS: endpoints.streams ?? endpoints.dynamodb,
    AWS_ENDPOINT_URL_S3: endpoints.s3,
  };
}

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines the server printed. */
  output: string;
}

export interface LocalServer {
  endpoint: string;
  /** Resolves when the process exits, whether stopped or crashed. */
  readonly exited: Promise<ServerExit>;
  stop(): Promise<void>;
}

const START_ATTEMPTS = 3;
/** Own process group (out of reach of the terminal's Ctrl-C); on Windows that would open a console window. */
const DETACH = process.platform !== 'win32';
const DYNAMODB_START_TIMEOUT_MS = 60_000;
const S3RVER_START_TIMEOUT_MS = 30_000;

const WATCHDOG_SCRIPT = `
process.on('SIGINT', () => {});
const pid = Number(process.env.LOCAL_SERVER_PID);
process.stdin.on('end', () => {
  try { process.kill(pid, 'SIGKILL'); } catch {}
  process.exit(0);
});
process.stdin.resume();
`;

/** Keeps the last `max` lines a process printed, for error messages. */
class OutputTail {
  private readonly lines: string[] = [];
  constructor(private readonly max = 40) {}
  attach(stream: NodeJS.ReadableStream | null | undefined): void {
    if (!stream) return;
    createInterface({ input: stream }).on('line', (line) => {
      this.lines.push(line);
      if (this.lines.length > this.max) this.lines.shift();
    });
  }
  toString(): string {
    return this.lines.join('\n');
  }
}

/** A port nobody listens on right now: bind port 0 on loopback, read the port, close. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}

/**
 * Ties a child's life to this process: an exit handler and (unless the child watches its own
 * stdin) a watchdog. Returns the exit promise and a stop function (gentle, then SIGKILL).
 */
function guard(
  child: ChildProcess,
  output: OutputTail,
  gentleStop: (child: ChildProcess) => void,
  options: { watchdog: boolean; graceMs: number },
): { exited: Promise<ServerExit>; stop: () => Promise<void> } {
  const exited = new Promise<ServerExit>((resolve) => {
    child.once('exit', (code, signal) => {
      // Give the last output lines a moment to arrive through the pipes.
      setImmediate(() => resolve({ code, signal, output: output.toString() }));
    });
  });
  let watchdog: ChildProcess | undefined;
  if (options.watchdog && child.pid !== undefined) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SCRIPT], {
      env: { ...process.env, LOCAL_SERVER_PID: String(child.pid) },
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: DETACH,
    });
    // Neither the watchdog nor its pipe may keep this process alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }
  const running = () => child.exitCode === null && child.signalCode === null;
  const onExit = () => {
    if (running()) child.kill('SIGKILL');
    watchdog?.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const stop = async () => {
    process.removeListener('exit', onExit);
    if (running()) {
      gentleStop(child);
      const timer = setTimeout(() => child.kill('SIGKILL'), options.graceMs);
      await exited;
      clearTimeout(timer);
    }
    watchdog?.kill('SIGKILL');
  };
  return { exited, stop };
}

export interface DynamoDbLocalOptions {
  spawn: SpawnDynamoDbLocal;
  /** From checkJava: `java` on PATH, or an absolute path under JAVA_HOME. */
  javaCommand: string;
  /**
   * Database files go here (created if missing); a later start with the same directory resumes.
   * Undefined: in memory (`-inMemory`), gone when the server stops.
   */
  dbPath?: string | undefined;
  signal?: AbortSignal;
}

/**
 * Starts DynamoDB Local on a free loopback port and waits until it answers. Retries on another
 * port if the chosen one was taken in between.
 */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions): Promise<LocalServer> {
  const dbPath = options.dbPath === undefined ? undefined : path.resolve(options.dbPath);
  if (dbPath !== undefined) await mkdir(dbPath, { recursive: true });
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    options.signal?.throwIfAborted();
    const port = await freeLoopbackPort();
    const java = spawnJava(options, port, dbPath);
    const output = new OutputTail();
    output.attach(java.stdout);
    output.attach(java.stderr);
    java.once('error', () => {}); // reported through 'exit' / the start timeout
    const { exited, stop } = guard(java, output, (c) => c.kill('SIGTERM'), {
      watchdog: true,
      graceMs: 5_000,
    });
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitUntilAnswering(endpoint, exited, options.signal);
      return { endpoint, exited, stop };
    } catch (error) {
      await stop();
      if (options.signal?.aborted) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * The package's spawn runs the command `java` (with the jar, `-dbPath` or `-inMemory`, and `-port`).
 * A Java found under JAVA_HOME is put first on PATH for that one call, so the same launcher runs it.
 */
function spawnJava(options: DynamoDbLocalOptions, port: number, dbPath: string | undefined): ChildProcess {
  const savedPath = process.env.PATH;
  if (options.javaCommand !== 'java') {
    process.env.PATH = [path.dirname(options.javaCommand), savedPath].filter(Boolean).join(path.delimiter);
  }
  try {
    return options.spawn({ command: 'java', port, path: dbPath ?? null, detached: DETACH, stdio: 'pipe' });
  } finally {
    if (savedPath === undefined) delete process.env.PATH;
    else process.env.PATH = savedPath;
  }
}

async function waitUntilAnswering(
  endpoint: string,
  exited: Promise<ServerExit>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  let exit: ServerExit | undefined;
  void exited.then((e) => {
    exit = e;
  });
  const deadline = performance.now() + DYNAMODB_START_TIMEOUT_MS;
  try {
    while (performance.now() < deadline) {
      signal?.throwIfAborted();
      if (exit !== undefined) {
        throw new ChangelogError(
          `DynamoDB Local exited before answering (exit code ${exit.code}, signal ${exit.signal}); its output:\n${exit.output}`,
        );
      }
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2_000) });
        return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new ChangelogError(
      `DynamoDB Local did not answer on ${endpoint} within ${DYNAMODB_START_TIMEOUT_MS} ms`,
    );
  } finally {
    client.destroy();
  }
}

const S3RVER_SCRIPT = `
process.on('SIGINT', () => {});
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({
  port: 0,
  address: '127.0.0.1',
  directory: process.env.S3RVER_DIRECTORY,
  silent: true,
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + '\\n'),
  (error) => { console.error(error); process.exit(1); },
);
process.stdin.on('end', () => server.close().finally(() => process.exit(0)));
process.stdin.resume();
`;

export interface S3rverOptions {
  /** Absolute path of s3rver's entry module. */
  module: string;
  /** Objects are kept here: `<directory>/<bucket>/<key>._S3rver_object`. */
  directory: string;
  bucket: string;
}

/** Starts s3rver on a free loopback port over `directory`, with `bucket` created if missing. */
export async function startS3rver(options: S3rverOptions): Promise<LocalServer> {
  const directory = path.resolve(options.directory);
  await mkdir(directory, { recursive: true });
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', S3RVER_SCRIPT], {
    env: {
      ...process.env,
      S3RVER_MODULE: options.module,
      S3RVER_DIRECTORY: directory,
      S3RVER_BUCKET: options.bucket,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: DETACH,
  });
  const output = new OutputTail();
  output.attach(child.stderr);
  child.once('error', () => {});
  // The child exits when its stdin closes, which the OS does when this process dies: no watchdog.
  const { exited, stop } = guard(child, output, (c) => c.stdin?.end(), { watchdog: false, graceMs: 10_000 });
  try {
    const port = await readPort(child, exited);
    child.stdout?.resume(); // keep draining, so the child never blocks on a full pipe
    return { endpoint: `http://127.0.0.1:${port}`, exited, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function readPort(child: ChildProcess, exited: Promise<ServerExit>): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ChangelogError(`s3rver did not start within ${S3RVER_START_TIMEOUT_MS / 1000} s`)),
      S3RVER_START_TIMEOUT_MS,
    );
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      lines.close();
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch {
        reject(new ChangelogError(`s3rver printed ${JSON.stringify(line)} instead of its port`));
      }
    });
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(
        new ChangelogError(
          `s3rver exited before listening (exit code ${exit.code}); its output:\n${exit.output}`,
        ),
      );
    });
  });
}
