import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { splitStatements } from '../../../src/app/local/localSummary.js';
import { runCli } from '../../helpers/cliProcess.js';

/*
 * The real `dynamodb-changelog local` in a child process: DynamoDB Local, s3rver, the demo
 * producer and the daemon, for 20 s. Then the DuckDB query it prints is run over the files it
 * left on disk. And what a newcomer without Java sees.
 */

const dirs: string[] = [];
const tempDir = async (name: string) => {
  const dir = await mkdtemp(path.join(tmpdir(), `changelog-local-${name}-`));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const count = (text: string, pattern: RegExp): number => {
  const match = pattern.exec(text);
  if (!match) throw new Error(`no ${pattern} in:\n${text}`);
  return Number(match[1]!.replaceAll(',', ''));
};

describe('dynamodb-changelog local', () => {
  it('runs the pipeline for --duration, stops cleanly and prints a summary with a working DuckDB query', async () => {
    const dataDir = await tempDir('run');
    const run = await runCli(
      ['local', '--data-dir', dataDir, '--duration', '20s', '--rate', '100', '--keys', '200'],
      {
        timeoutMs: 100_000,
      },
    );
    const output = `${run.stdout}\n--- stderr ---\n${run.stderr}`;
    expect(run.exit, output).toEqual({ code: 0, signal: null });
    // The daemon's JSON logs went to the file, not the terminal.
    expect(run.logs, output).toEqual([]);
    const daemonLog = await readFile(path.join(dataDir, 'daemon.log'), 'utf8');
    expect(daemonLog).toContain('"msg":"worker starting"');
    expect(daemonLog).toContain('"msg":"stopped cleanly"');

    const stdout = run.stdout;
    expect(stdout).toContain('Stopped after 20s (--duration 20s reached).');
    expect(stdout).toMatch(/\d+s \| produced [\d,]+ \(\d+\/s\) \| read \d+\/s \| lag \d+s \| committed/); // status lines
    const produced = count(stdout, /produced +([\d,]+) writes: /);
    const committed = count(stdout, /committed +([\d,]+) records in /);
    expect(produced).toBeGreaterThan(100);
    expect(committed).toBeGreaterThan(0);
    // The producer stops first and the reader catches up, so everything written is committed.
    expect(committed).toBe(produced);

    // The printed script is the saved one, and DuckDB runs it over the files s3rver left on disk.
    const saved = await readFile(path.join(dataDir, 'query.sql'), 'utf8');
    const lines = stdout.split('\n');
    const start = lines.findIndex((l) => l.startsWith('CREATE OR REPLACE VIEW changes AS')) - 1;
    expect(start, output).toBeGreaterThan(0);
    const printed = lines.slice(start).join('\n').trim();
    expect(printed).toBe(saved.trim());
    const sealed = !printed.startsWith('-- NOT SEALED YET');
    const expectedRows = sealed ? count(stdout, /sealed on disk in all, ([\d,]+) records/) : committed;

    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      const [view, perOp, states, sample] = splitStatements(printed);
      await connection.run(view!);
      const ops = (await connection.runAndReadAll(perOp!)).getRowObjectsJson() as {
        op: string;
        changes: string;
      }[];
      // The producer inserts orders first and updates them later: the one window sealed within 20 s
      // may hold only inserts when it ends soon after the start (seen on CI); all committed rows
      // hold both.
      expect(ops.map((r) => r.op)).toEqual(
        expect.arrayContaining(sealed ? ['INSERT'] : ['INSERT', 'MODIFY']),
      );
      expect(ops.reduce((n, r) => n + Number(r.changes), 0)).toBe(expectedRows);
      const byStatus = (await connection.runAndReadAll(states!)).getRowObjectsJson() as { status: string }[];
      expect(byStatus.map((r) => r.status)).toContain('placed');
      const rows = (await connection.runAndReadAll(sample!)).getRowObjectsJson();
      expect(rows.length).toBeGreaterThan(0);
      expect(rows[0]).toHaveProperty('order_id');
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  }, 110_000);

  it('says Java is missing, and how to install it, without a stack trace', async () => {
    const emptyBin = await tempDir('nojava');
    const run = await runCli(['local', '--data-dir', path.join(emptyBin, 'data')], {
      env: { PATH: emptyBin, JAVA_HOME: undefined },
      timeoutMs: 30_000,
    });
    expect(run.exit, run.stderr).toEqual({ code: 2, signal: null });
    expect(run.stderr).toContain(
      'dynamodb-changelog: DynamoDB Local needs Java 17 or newer, and no `java` was found on PATH; JAVA_HOME is not set.',
    );
    expect(run.stderr).toContain('Debian/Ubuntu:  sudo apt-get install openjdk-17-jre-headless');
    expect(run.stderr).toContain('macOS:          brew install openjdk@17');
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(run.stdout).not.toContain('Starting the local stack');
  });

  it('says the Java found is too old', async () => {
    const bin = await tempDir('oldjava');
    const java = path.join(bin, 'java');
    await writeFile(
      java,
      "#!/bin/sh\necho 'java version \"1.8.0_292\"' >&2\necho 'Java(TM) SE Runtime Environment (build 1.8.0_292-b10)' >&2\n",
    );
    await chmod(java, 0o755);
    const run = await runCli(['local', '--data-dir', path.join(bin, 'data')], {
      env: { PATH: bin, JAVA_HOME: undefined },
      timeoutMs: 30_000,
    });
    expect(run.exit, run.stderr).toEqual({ code: 2, signal: null });
    expect(run.stderr).toContain(
      'DynamoDB Local needs Java 17 or newer, and `java` on PATH is Java 8 (1.8.0_292), which is too old; JAVA_HOME is not set.',
    );
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });
});
