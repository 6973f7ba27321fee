import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { type CliProcess, REPO_ROOT, runCli, startCli } from '../../helpers/cliProcess.js';

/*
 * cliProcess drives the chaos test's workers: its signals must reach the process, its log capture
 * must not lose lines, and its children must die with the test process.
 */

/** A stand-in daemon: one pino-like JSON line every 20 ms, and a non-JSON line at start. */
const TICKER = `
console.log('starting');
let n = 0;
setInterval(() => console.log(JSON.stringify({ level: 30, msg: 'tick', n: n++ })), 20);
`;

const started: CliProcess[] = [];
function ticker(): CliProcess {
  const cli = startCli([], { nodeArgs: ['-e', TICKER], name: 'ticker' });
  started.push(cli);
  return cli;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const lastTick = (cli: CliProcess) => Number(cli.logs.at(-1)?.['n'] ?? -1);

/** True while `pid` is a live (not zombie) process. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie answers kill(0) until reaped; in a container nothing may reap it.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('cliProcess', () => {
  afterEach(async () => {
    await Promise.all(started.splice(0).map((cli) => cli.stop(5_000)));
  });

  it('runs the real CLI from source through tsx', async () => {
    const { version } = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const run = await runCli(['--version']);
    expect(run.exit).toEqual({ code: 0, signal: null });
    expect(run.stdout.trim()).toBe(version);

    const unknown = await runCli(['no-such-command']);
    expect(unknown.exit.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown command/);
  });

  it('parses JSON lines, keeps other text, and waits for a matching line', async () => {
    const cli = ticker();
    const record = await cli.waitForLog((r) => r['n'] === 5, 10_000);
    expect(record).toEqual({ level: 30, msg: 'tick', n: 5 });
    expect(cli.stdoutText).toContain('starting');
    // Lines already seen satisfy a later wait at once.
    expect(await cli.waitForLog((r) => r['n'] === 1, 1)).toMatchObject({ n: 1 });
    await expect(cli.waitForLog(() => false, 50)).rejects.toThrow(/no matching log line/);
  });

  it('SIGSTOP freezes the process and SIGCONT resumes it', async () => {
    const cli = ticker();
    await cli.waitForLog((r) => r['n'] === 2, 10_000);
    cli.pause();
    expect(cli.paused).toBe(true);
    await sleep(200); // lines written just before the stop are still in the pipe
    const frozenAt = lastTick(cli);
    await sleep(500);
    expect(lastTick(cli)).toBe(frozenAt);
    cli.resume();
    expect(cli.paused).toBe(false);
    await cli.waitForLog((r) => Number(r['n']) > frozenAt, 10_000);
  });

  it('reports a SIGKILL, and stops a paused process with SIGCONT + SIGTERM', async () => {
    const killed = ticker();
    await killed.waitForLog(() => true, 10_000);
    expect(killed.kill('SIGKILL')).toBe(true);
    expect(await killed.waitForExit(10_000)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(killed.kill('SIGTERM')).toBe(false);

    const paused = ticker();
    await paused.waitForLog(() => true, 10_000);
    paused.pause();
    expect(await paused.stop(10_000)).toEqual({ code: null, signal: 'SIGTERM' });
    await expect(paused.waitForLog(() => false, 1_000)).rejects.toThrow(/exited/);
  });

  it('kills its children when the test process is SIGKILLed', async () => {
    // A parent that starts a (paused) ticker through cliProcess, prints its pid, then idles.
    const parentScript = `
      import { startCli } from ${JSON.stringify(path.join(REPO_ROOT, 'test/helpers/cliProcess.ts'))};
      const cli = startCli([], { nodeArgs: ['-e', 'setInterval(() => {}, 1000)'] });
      cli.pause();
      console.log(cli.pid);
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', parentScript], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const childPid = await new Promise<number>((resolve, reject) => {
      createInterface({ input: parent.stdout! }).once('line', (line) => resolve(Number(line)));
      parent.once('exit', (code) => reject(new Error(`parent exited early (${code})`)));
    });
    expect(alive(childPid)).toBe(true);
    parent.kill('SIGKILL');
    const deadline = Date.now() + 10_000;
    while (alive(childPid) && Date.now() < deadline) await sleep(50);
    expect(alive(childPid)).toBe(false);
  });
});
