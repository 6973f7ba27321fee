/**
 * Shared machinery of the benchmarks: flags, the cached GetRecords pages, running each case in a
 * child process pinned to one core, and reporting medians and paired ratios.
 *
 * The shared machines vary by +-15% from one run to the next, so cases run interleaved
 * (a b c a b c ...) `--repeat` times; each figure is the median run, with the range, and ratios
 * are the median of the per-round ratios (noise hits every case of a round alike).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateRecords, getRecordsResponse } from '../test/helpers/streamRecords.js';

export interface CaseResult {
  name: string;
  seconds: number;
  records: number;
  inputBytes: number;
  outputBytes?: number;
  segments?: number;
  peakRssMiB: number;
  detail?: string;
}

export function parseArgs(): Map<string, string> {
  const args = new Map<string, string>();
  for (let i = 2; i < process.argv.length; i += 2) {
    args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
  }
  return args;
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Realistic NEW_AND_OLD_IMAGES pages (one key space with history: mostly MODIFYs carrying both
 * images), generated once, seeded, under .bench-cache/. Returns the page files in order.
 */
export function cachedPages(records: number, pageSize: number): string[] {
  const dir = resolve('.bench-cache', `encode-v2-${records}-${pageSize}`);
  if (!existsSync(join(dir, 'done'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    let seq = 100000000000000000000n;
    const versions = new Map<number, number>();
    for (let p = 0; p * pageSize < records; p++) {
      const count = Math.min(pageSize, records - p * pageSize);
      const page = generateRecords({
        seed: p + 1,
        records: count,
        startSequence: seq,
        keyCount: 20_000,
        versions,
      });
      seq = BigInt(page.at(-1)!.dynamodb.SequenceNumber);
      const body = getRecordsResponse(page, `AAAAAAAAAAE${'x'.repeat(200)}${p}`);
      writeFileSync(join(dir, `page-${String(p).padStart(5, '0')}.json`), body);
    }
    writeFileSync(join(dir, 'done'), '');
  }
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(dir, f));
}

/** Prefix that pins a command to one core, where taskset exists. */
export function pinTo(core: number): string[] {
  return existsSync('/usr/bin/taskset') ? ['taskset', '-c', String(core)] : [];
}

/** Runs `script --case name ...args` in a child pinned to core 0 and returns its RESULT line. */
export function runCase(script: string, name: string, args: string[], expectRecords: number): CaseResult {
  const cmd = [...pinTo(0), process.execPath, '--import', 'tsx', script, ...args, '--case', name];
  const child = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', maxBuffer: 1 << 26 });
  const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`case ${name} failed:\n${child.stdout}\n${child.stderr}`);
  const result = JSON.parse(line.slice(7)) as CaseResult;
  if (result.records !== expectRecords) {
    throw new Error(`case ${name} handled ${result.records} records, expected ${expectRecords}`);
  }
  return result;
}

/** Runs every case `repeat` times, interleaved, and prints medians, ranges and paired ratios. */
export function runInterleaved(
  labels: Record<string, string>,
  repeat: number,
  run: (name: string) => CaseResult,
  ratios: [string, string][],
): void {
  const names = Object.keys(labels);
  const runs: Record<string, CaseResult[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < repeat; round++) {
    for (const name of names) {
      const r = run(name);
      runs[name]!.push(r);
      process.stderr.write(`  round ${round + 1}/${repeat} case ${name}: ${rate(r).toFixed(0)} rec/s\n`);
    }
  }
  console.log(`median of ${repeat} interleaved runs per case (range in brackets)\n`);
  for (const name of names) {
    const r = median(runs[name]!);
    const rates = runs[name]!.map(rate);
    const output =
      r.outputBytes === undefined
        ? ''
        : `${(r.outputBytes / 2 ** 20).toFixed(1).padStart(6)} MiB out (${r.segments} files)  `;
    console.log(
      `${labels[name]!.padEnd(42)} ${rate(r).toFixed(0).padStart(7)} rec/s [${Math.min(...rates).toFixed(0)}-${Math.max(...rates).toFixed(0)}]  ` +
        `${(r.inputBytes / 2 ** 20 / r.seconds).toFixed(1).padStart(6)} MB/s in  ${output}peak RSS ${r.peakRssMiB.toFixed(0)} MiB` +
        (r.detail ? `\n${' '.repeat(44)}${r.detail}` : ''),
    );
  }
  const paired = ([x, y]: [string, string]) => {
    const values = runs[x]!.map((r, i) => rate(r) / rate(runs[y]![i]!)).sort((p, q) => p - q);
    const med = values[Math.floor(values.length / 2)]!;
    return `(${x})/(${y}) = ${med.toFixed(2)} (per round: ${values.map((v) => v.toFixed(2)).join(', ')})`;
  };
  console.log(`\n${ratios.map(paired).join('   ')}`);
}

function rate(r: CaseResult): number {
  return r.records / r.seconds;
}

function median(results: CaseResult[]): CaseResult {
  const sorted = [...results].sort((x, y) => rate(x) - rate(y));
  return sorted[Math.floor(sorted.length / 2)]!;
}
