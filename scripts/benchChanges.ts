/**
 * `changes` benchmark: reading a changelog back, ours against DuckDB on the same Parquet files.
 *
 *   npm run bench:changes [-- --changes 200000 --keys 10000 --repeat 3 --windows 60 --segments-per-window 4]
 *
 * One generated changelog (scripts/bench/generatedChangelog.ts: ~900-byte items, INSERT/MODIFY/
 * REMOVE over --keys items, 1-minute windows, several segments per window, manifests as the sealer
 * writes them) in a file:/// store under .bench-cache/, written once and reused. Each case runs in
 * its own child process pinned to one core:
 *   a  ours: runChanges, every change of the range to an NDJSON file
 *   b  DuckDB (threads=1): COPY (SELECT * FROM read_parquet([same files])) TO file (FORMAT JSON)
 *   c  ours --latest (latest change per item, items deleted last left out)
 *   d  DuckDB: the same latest-per-key rule (read/latestStateSql.ts) to JSON
 *   e  ours --key for one item
 *   f  DuckDB: the same item (WHERE pk = ... AND sk = ...)
 *   g  ours --latest on a changelog of as many changes over 10x the keys (memory as keys grow)
 * changes/s counts the range's changes read per second in every case (so a ratio is a ratio of
 * times); MB/s is given of the range's Parquet bytes (in) and of the bytes written (out). Output rows of the paired cases must match (the
 * latest and key cases compare their event ids too). Cases run interleaved `--repeat` times.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { runChanges } from '../src/app/changes.js';
import { parseChangesConfig } from '../src/app/changesConfig.js';
import { isoTime } from '../src/changelog/layout.js';
import { sqlString } from '../src/read/latestStateSql.js';
import {
  type ChangelogShape,
  type GeneratedChangelog,
  generatedChangelog,
} from './bench/generatedChangelog.js';
import { median, table } from './bench/stats.js';
import { type CaseResult, parseArgs, peakRssMiB, runCase } from './benchHarness.js';

const args = parseArgs();
const CHANGES = Number(args.get('changes') ?? 200_000);
const KEYS = Number(args.get('keys') ?? 10_000);
const REPEAT = Number(args.get('repeat') ?? 3);
const WINDOWS = Number(args.get('windows') ?? 60);
const SEGMENTS_PER_WINDOW = Number(args.get('segments-per-window') ?? 4);
const KEY_COLUMNS = ['pk', 'sk'];
/**
 * DuckDB's baseline for the latest state: what a user writes for stream-only rows (the data here
 * has no SNAPSHOT/NET rows, so it gives the same answer as the full rule, read/latestStateSql.ts,
 * and is the cheaper query: the stricter baseline).
 */
const STREAM_ONLY_LATEST = `QUALIFY row_number() OVER (PARTITION BY ${KEY_COLUMNS.join(', ')} ORDER BY lpad(sequence_number, 40, '0') DESC) = 1`;

interface ChangesCaseResult extends CaseResult {
  outputRows: number;
  /** sha256 of the sorted output event ids (small outputs only), to compare two answers. */
  eventIds?: string;
}

const LABELS: Record<string, string> = {
  a: '(a) ours: all changes -> NDJSON',
  b: '(b) DuckDB: all changes -> JSON',
  c: '(c) ours --latest',
  d: '(d) DuckDB latest per key',
  e: '(e) ours --key (one item)',
  f: '(f) DuckDB WHERE pk AND sk',
  g: `(g) ours --latest, ${(KEYS * 10).toLocaleString('en-US')} keys`,
};
const PAIRS: [string, string][] = [
  ['a', 'b'],
  ['c', 'd'],
  ['e', 'f'],
];

function shape(keys: number): ChangelogShape {
  return { changes: CHANGES, keys, windows: WINDOWS, segmentsPerWindow: SEGMENTS_PER_WINDOW };
}

async function runOurs(name: string, log: GeneratedChangelog): Promise<ChangesCaseResult> {
  const output = join(tmpdir(), `bench-changes-${name}-${process.pid}.ndjson`);
  const flags = {
    destination: log.destination,
    table: log.table,
    since: isoTime(log.sinceMs),
    until: isoTime(log.untilMs),
    output,
    ...((name === 'c' || name === 'g') && { latest: true }),
    ...(name === 'e' && { key: `pk=${log.sampleKey.pk},sk=${log.sampleKey.sk}` }),
  };
  const config = parseChangesConfig(flags, Date.now());
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
  const start = performance.now();
  const result = await runChanges(config, { stdout: quiet, stderr: quiet });
  const seconds = (performance.now() - start) / 1000;
  return finish(name, log, seconds, output, result.items);
}

async function runDuckDb(name: string, log: GeneratedChangelog): Promise<ChangesCaseResult> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run('SET threads=1');
  const output = join(tmpdir(), `bench-changes-${name}-${process.pid}.json`);
  const files = `read_parquet([${log.segmentFiles.map(sqlString).join(', ')}], hive_partitioning = false)`;
  const select =
    name === 'b'
      ? `SELECT * FROM ${files}`
      : name === 'd'
        ? `SELECT * FROM (SELECT * FROM ${files} ${STREAM_ONLY_LATEST}) WHERE op <> 'REMOVE'`
        : `SELECT * FROM ${files} WHERE pk = ${sqlString(log.sampleKey.pk)} AND sk = ${sqlString(log.sampleKey.sk)}`;
  const start = performance.now();
  await connection.run(`COPY (${select}) TO ${sqlString(output)} (FORMAT JSON)`);
  const seconds = (performance.now() - start) / 1000;
  connection.closeSync();
  return finish(name, log, seconds, output, undefined);
}

/** Checks and measures the output file (outside the timed part), then removes it. */
async function finish(
  name: string,
  log: GeneratedChangelog,
  seconds: number,
  output: string,
  reportedRows: number | undefined,
): Promise<ChangesCaseResult> {
  const peak = peakRssMiB();
  const outputBytes = statSync(output).size;
  let outputRows = 0;
  let eventIds: string | undefined;
  if (name === 'a' || name === 'b') {
    const bytes = readFileSync(output);
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) outputRows++;
  } else {
    const ids: string[] = [];
    for await (const line of createInterface({ input: createReadStream(output) })) {
      const id = /^\{"event_id":"([^"\\]*)"/.exec(line)?.[1];
      if (id === undefined)
        throw new Error(`case ${name}: a line without a leading event_id: ${line.slice(0, 80)}`);
      ids.push(id);
    }
    outputRows = ids.length;
    eventIds = createHash('sha256').update(ids.sort().join('\n')).digest('hex').slice(0, 16);
  }
  rmSync(output, { force: true });
  if (reportedRows !== undefined && reportedRows !== outputRows) {
    throw new Error(`case ${name}: runChanges reported ${reportedRows} rows but wrote ${outputRows} lines`);
  }
  return {
    name,
    seconds,
    records: log.changes,
    inputBytes: log.parquetBytes,
    outputBytes,
    peakRssMiB: peak,
    outputRows,
    ...(eventIds !== undefined && { eventIds }),
  };
}

async function runOne(name: string): Promise<ChangesCaseResult> {
  const log = await generatedChangelog(shape(name === 'g' ? KEYS * 10 : KEYS));
  return name === 'b' || name === 'd' || name === 'f' ? runDuckDb(name, log) : runOurs(name, log);
}

const rate = (r: CaseResult) => r.records / r.seconds;

function caseArgs(): string[] {
  return [
    ...['--changes', String(CHANGES), '--keys', String(KEYS), '--windows', String(WINDOWS)],
    ...['--segments-per-window', String(SEGMENTS_PER_WINDOW)],
  ];
}

async function main(): Promise<void> {
  const only = args.get('case');
  if (only) {
    process.stdout.write(`RESULT ${JSON.stringify(await runOne(only))}\n`);
    return;
  }
  if (args.has('generate')) {
    await generatedChangelog(shape(Number(args.get('generate'))));
    return;
  }
  // The two changelogs are written once (cached); on a first run, on both cores at once.
  const other = spawn(
    process.execPath,
    ['--import', 'tsx', 'scripts/benchChanges.ts', ...caseArgs(), '--generate', String(KEYS * 10)],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const generated = new Promise<void>((resolve, reject) =>
    other.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`generating the changelog failed (${code})`)),
    ),
  );
  const log = await generatedChangelog(shape(KEYS));
  await generated;
  const manyKeys = await generatedChangelog(shape(KEYS * 10));
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  console.log(
    `changes benchmark: ${CHANGES.toLocaleString('en-US')} changes over ${KEYS.toLocaleString('en-US')} keys, ` +
      `${WINDOWS} windows of 1 min x ${SEGMENTS_PER_WINDOW} segments (${log.segmentFiles.length} files, ` +
      `${mib(log.parquetBytes)} MiB of Parquet, ZSTD); (g): ${mib(manyKeys.parquetBytes)} MiB`,
  );
  console.log('each case in its own process on one core; DuckDB with SET threads=1\n');

  const names = Object.keys(LABELS);
  const runs: Record<string, ChangesCaseResult[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < REPEAT; round++) {
    for (const name of names) {
      const r = runCase('scripts/benchChanges.ts', name, caseArgs(), CHANGES) as ChangesCaseResult;
      runs[name]!.push(r);
      process.stderr.write(`  round ${round + 1}/${REPEAT} case ${name}: ${rate(r).toFixed(0)} changes/s\n`);
    }
  }

  const rows = names.map((name) => {
    const results = runs[name]!;
    const rates = results.map(rate);
    const m = [...results].sort((x, y) => rate(x) - rate(y))[Math.floor(results.length / 2)]!;
    return [
      LABELS[name]!,
      `${Math.round(rate(m)).toLocaleString('en-US')} [${Math.round(Math.min(...rates))}-${Math.round(Math.max(...rates))}]`,
      (m.inputBytes / 2 ** 20 / m.seconds).toFixed(1),
      (m.outputBytes! / 2 ** 20 / m.seconds).toFixed(1),
      m.outputRows.toLocaleString('en-US'),
      mib(m.outputBytes!),
      median(results.map((r) => r.peakRssMiB)).toFixed(0),
    ];
  });
  console.log(
    table(
      [
        'case',
        'changes/s (median [range])',
        'MB/s Parquet in',
        'MB/s out',
        'rows out',
        'MiB out',
        'peak RSS MiB',
      ],
      rows,
    ),
  );
  console.log('');
  for (const [x, y] of PAIRS) {
    const values = runs[x]!.map((r, i) => rate(r) / rate(runs[y]![i]!)).sort((p, q) => p - q);
    const sameRows = runs[x]!.every((r, i) => r.outputRows === runs[y]![i]!.outputRows);
    const sameIds = runs[x]![0]!.eventIds === undefined || runs[x]![0]!.eventIds === runs[y]![0]!.eventIds;
    console.log(
      `(${x})/(${y}) = ${values[Math.floor(values.length / 2)]!.toFixed(2)} (per round: ${values.map((v) => v.toFixed(2)).join(', ')}); ` +
        `rows ${sameRows ? 'match' : 'DIFFER'} (${runs[x]![0]!.outputRows} vs ${runs[y]![0]!.outputRows})` +
        (runs[x]![0]!.eventIds === undefined ? '' : `, event ids ${sameIds ? 'match' : 'DIFFER'}`),
    );
    if (!sameRows || !sameIds) process.exitCode = 1;
  }
  const [c, g] = [runs.c!, runs.g!].map((rs) => median(rs.map((r) => r.peakRssMiB)));
  console.log(
    `(c) at ${KEYS.toLocaleString('en-US')} keys: peak RSS ${c!.toFixed(0)} MiB; (g) at ${(KEYS * 10).toLocaleString('en-US')} keys: ${g!.toFixed(0)} MiB ` +
      `(${runs.c![0]!.outputRows} and ${runs.g![0]!.outputRows} items)`,
  );
}

await main();
