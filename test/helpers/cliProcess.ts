import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/*
 * The real CLI as a separate OS process, so a test can do to it what an orchestrator or the kernel
 * does to a daemon: SIGKILL, SIGSTOP/SIGCONT, SIGTERM. It runs src/ through tsx
 * (test/helpers/cliEntry.ts), never a possibly stale dist/.
 *
 * stdout is read as pino's JSON lines (one object a line); anything else is kept as text.
 */

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ENTRY = path.join(REPO_ROOT, 'test', 'helpers', 'cliEntry.ts');

export type LogRecord = Record<string, unknown>;

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcessOptions {
  /** Added over this process's environment. */
  env?: Record<string, string | undefined>;
  /** A label for messages (e.g. `worker-2`). */
  name?: string;
  cwd?: string;
  /** Appends the child's stdout and stderr here, for reading after a failed run. */
  logFile?: string;
  /** Lines kept in memory per stream; older ones are dropped. Default 200,000. */
  maxLines?: number;
  /**
   * Node arguments that replace `--import tsx test/helpers/cliEntry.ts` (the args follow them).
   * For this helper's own tests, which need a stand-in process that behaves predictably.
   */
  nodeArgs?: readonly string[];
}

/*
 * Children must not outlive the test process, including when it dies without running handlers
 * (SIGKILL, OOM, a vitest worker torn down). One watchdog process per test process holds the pids
 * of live children; its stdin is a pipe from here, which the OS closes on any exit, and then it
 * SIGCONTs (a stopped process would keep a pending SIGKILL... no: SIGKILL works, but SIGCONT first
 * keeps the order the same as a normal stop) and SIGKILLs every pid still registered.
 */
const WATCHDOG_SCRIPT = `
const pids = new Set();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let i;
  while ((i = buffered.indexOf('\\n')) >= 0) {
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    if (line.startsWith('+')) pids.add(Number(line.slice(1)));
    else if (line.startsWith('-')) pids.delete(Number(line.slice(1)));
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGCONT'); } catch {}
    try { process.kill(pid, 'SIGKILL'); } catch {}
  }
  process.exit(0);
});
`;

let watchdog: ChildProcess | undefined;
const live = new Set<CliProcess>();

function watch(pid: number): void {
  if (watchdog === undefined) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'] });
    // Neither the watchdog nor its pipe may keep this process's event loop alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
    // In-process cleanup for ordinary exits, synchronous as 'exit' handlers must be.
    process.once('exit', () => {
      for (const child of live) child.killNow();
    });
  }
  watchdog.stdin?.write(`+${pid}\n`);
}

function unwatch(pid: number): void {
  watchdog?.stdin?.write(`-${pid}\n`);
}

export class CliProcess {
  readonly name: string;
  readonly pid: number;
  /** Parsed JSON log lines from stdout, in order. */
  readonly logs: LogRecord[] = [];
  /** stdout lines that were not JSON. */
  readonly stdoutText: string[] = [];
  readonly stderrLines: string[] = [];
  private readonly child: ChildProcess;
  private readonly events = new EventEmitter();
  private readonly maxLines: number;
  private readonly logStream: WriteStream | undefined;
  private exitInfo: CliExit | undefined;
  /** Set on 'exit': from then on the pid may be reused, so no more signals to it. */
  private dead = false;
  private readonly exitPromise: Promise<CliExit>;
  private stopped = false;

  constructor(args: readonly string[], options: CliProcessOptions = {}) {
    this.maxLines = options.maxLines ?? 200_000;
    const nodeArgs = options.nodeArgs ?? ['--import', 'tsx', ENTRY];
    this.child = spawn(process.execPath, [...nodeArgs, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: false,
    });
    if (this.child.pid === undefined) throw new Error(`could not start the CLI (${args.join(' ')})`);
    this.pid = this.child.pid;
    this.name = options.name ?? `cli-${this.pid}`;
    live.add(this);
    watch(this.pid);
    this.logStream = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
    this.logStream?.write(`# ${new Date().toISOString()} ${this.name} pid ${this.pid}: ${args.join(' ')}\n`);

    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onStdout(line));
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.logStream?.write(`[stderr] ${line}\n`);
      push(this.stderrLines, line, this.maxLines);
      this.events.emit('stderr', line);
    });

    this.child.once('exit', () => {
      this.dead = true;
      live.delete(this);
      unwatch(this.pid);
    });
    // 'close' comes after 'exit' once stdout and stderr are drained, so every line is in by then.
    this.exitPromise = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        this.logStream?.write(`# ${new Date().toISOString()} exit code=${code} signal=${signal}\n`);
        this.logStream?.end();
        this.events.emit('exit', this.exitInfo);
        resolve(this.exitInfo);
      });
    });
  }

  private onStdout(line: string): void {
    this.logStream?.write(`${line}\n`);
    if (line.startsWith('{')) {
      try {
        const record = JSON.parse(line) as LogRecord;
        push(this.logs, record, this.maxLines);
        this.events.emit('log', record);
        return;
      } catch {
        // Not JSON after all: keep it as text.
      }
    }
    push(this.stdoutText, line, this.maxLines);
  }

  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  get exit(): CliExit | undefined {
    return this.exitInfo;
  }

  /** True between pause() and resume(). */
  get paused(): boolean {
    return this.stopped;
  }

  /** Sends a signal; false when the process is gone. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.dead) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** SIGSTOP: the process is frozen, sockets and leases included, as in a long GC pause or a VM stall. */
  pause(): void {
    if (this.kill('SIGSTOP')) this.stopped = true;
  }

  resume(): void {
    this.stopped = false;
    this.kill('SIGCONT');
  }

  /** Called from the process 'exit' handler: synchronous, no waiting. */
  killNow(): void {
    this.kill('SIGCONT');
    this.kill('SIGKILL');
  }

  /** Resolves when the process exits; with a timeout, rejects if it has not by then. */
  waitForExit(timeoutMs?: number): Promise<CliExit> {
    if (timeoutMs === undefined) return this.exitPromise;
    return withTimeout(this.exitPromise, timeoutMs, () => `${this.name} did not exit within ${timeoutMs} ms`);
  }

  /** The first log record (already seen or still to come) that matches; rejects on timeout or exit. */
  waitForLog(predicate: (record: LogRecord) => boolean, timeoutMs: number): Promise<LogRecord> {
    const seen = this.logs.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.exitInfo !== undefined) return Promise.reject(this.exitedBeforeLog(this.exitInfo));
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.events.off('log', onLog);
        this.events.off('exit', onExit);
      };
      const onLog = (record: LogRecord) => {
        if (!predicate(record)) return;
        cleanup();
        resolve(record);
      };
      const onExit = (exit: CliExit) => {
        cleanup();
        reject(this.exitedBeforeLog(exit));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      this.events.on('log', onLog);
      this.events.on('exit', onExit);
    });
  }

  private exitedBeforeLog(exit: CliExit): Error {
    return new Error(
      `${this.name} exited (code ${exit.code}, signal ${exit.signal}) before the awaited log line\n${this.tail()}`,
    );
  }

  /** Calls `listener` for every later log record; returns the unsubscribe function. */
  onLog(listener: (record: LogRecord) => void): () => void {
    this.events.on('log', listener);
    return () => this.events.off('log', listener);
  }

  /** A graceful stop: SIGCONT (a stopped process cannot handle SIGTERM), SIGTERM, then SIGKILL. */
  async stop(timeoutMs = 15_000): Promise<CliExit> {
    if (this.exited) return this.exitInfo!;
    this.resume();
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last lines of stderr and stdout, for error messages. */
  tail(lines = 20): string {
    const out = this.logs.slice(-lines).map((r) => JSON.stringify(r));
    const text = this.stdoutText.slice(-lines);
    const err = this.stderrLines.slice(-lines);
    return [
      `--- ${this.name} stdout (last ${lines} JSON lines) ---`,
      ...out,
      ...(text.length > 0 ? ['--- stdout text ---', ...text] : []),
      `--- ${this.name} stderr ---`,
      ...err,
    ].join('\n');
  }
}

export function startCli(args: readonly string[], options: CliProcessOptions = {}): CliProcess {
  return new CliProcess(args, options);
}

export interface CliRun {
  exit: CliExit;
  logs: LogRecord[];
  stdout: string;
  stderr: string;
}

/** Runs a CLI command to completion (e.g. `verify`); SIGKILLs it after `timeoutMs`. */
export async function runCli(
  args: readonly string[],
  options: CliProcessOptions & { timeoutMs?: number } = {},
): Promise<CliRun> {
  const cli = startCli(args, options);
  const timeoutMs = options.timeoutMs ?? 120_000;
  const timer = setTimeout(() => cli.killNow(), timeoutMs);
  const exit = await cli.waitForExit();
  clearTimeout(timer);
  return {
    exit,
    logs: cli.logs,
    stdout: [...cli.logs.map((r) => JSON.stringify(r)), ...cli.stdoutText].join('\n'),
    stderr: cli.stderrLines.join('\n'),
  };
}

function push<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message())), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
