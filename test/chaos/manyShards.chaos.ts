import { describe, it } from 'vitest';
import { type EmulatedStreamOptions, runChaosScenario } from './chaosScenario.js';
import { expectManyShardRun } from './expectManyShardRun.js';

/*
 * The long many-shard chaos runs: `npm run test:chaos` (vitest.chaos.config.ts), or only these:
 *   npx vitest run --config vitest.chaos.config.ts test/chaos/manyShards.chaos.ts
 * The short one is test/integration/chaos/manyShards.test.ts.
 *
 * Each run plays three scenarios on the many-shard Streams emulator (test/helpers/streamsEmulator.ts),
 * with three real `run` workers, kill -9, SIGSTOP, S3 write faults, GetRecords throttling and 500s,
 * and a split every CHAOS_SPLIT_EVERY_MS:
 * - `emulator`: 24 h retention; every record exactly once, manifests complete.
 * - `emulator-trimmed`: a CHAOS_RETENTION_MS retention, and once (after a first window was sealed)
 *   every worker is SIGSTOPped for CHAOS_FREEZE_MS while the producer writes: records are trimmed
 *   before anyone read them, and each must be covered by a gap of a sealed manifest.
 * - `emulator-trimmed at start`: the same freeze as soon as the chaos starts, while shards of the
 *   changelog's start still have no committed checkpoint (they read from TRIM_HORIZON).
 *
 * Environment: RUNS (default 1) repeats them with fresh seeds; CHAOS_SEED fixes the first run's
 * seed; CHAOS_DURATION_MS (default 180000), CHAOS_KEYS (3000), CHAOS_SHARDS (16),
 * CHAOS_SPLIT_EVERY_MS (10000), CHAOS_RETENTION_MS (20000), CHAOS_FREEZE_MS (35000) size them;
 * CHAOS_VARIANTS (default `emulator,trimmed,trimmed-at-start`) picks some; CHAOS_KEEP_LOGS=1 keeps
 * the workers' logs of passing runs too.
 */

const env = (name: string, fallback: number) =>
  process.env[name] === undefined ? fallback : Number(process.env[name]);
const runs = env('RUNS', 1);
const durationMs = env('CHAOS_DURATION_MS', 180_000);
const keys = env('CHAOS_KEYS', 3_000);
const shards = env('CHAOS_SHARDS', 16);
const splitEveryMs = env('CHAOS_SPLIT_EVERY_MS', 10_000);
const retentionMs = env('CHAOS_RETENTION_MS', 20_000);
const freezeAllMs = env('CHAOS_FREEZE_MS', 35_000);
const firstSeed = process.env['CHAOS_SEED'] === undefined ? undefined : Number(process.env['CHAOS_SEED']);
const chosen = new Set((process.env['CHAOS_VARIANTS'] ?? 'emulator,trimmed,trimmed-at-start').split(','));

const variants: { name: string; title: string; emulator: EmulatedStreamOptions; sealTimeoutMs: number }[] = [
  {
    name: 'emulator',
    title: 'every record of a splitting stream exactly once in sealed manifests',
    emulator: { shards, splitEveryMs },
    sealTimeoutMs: 240_000,
  },
  {
    name: 'trimmed',
    title: 'records trimmed while every worker was frozen are covered by sealed gaps, the rest exactly once',
    emulator: { shards, splitEveryMs, retentionMs, freezeAllMs, freezeAt: 'after-first-seal' },
    sealTimeoutMs: 240_000,
  },
  {
    name: 'trimmed-at-start',
    title: 'records trimmed while every worker was frozen at the start are covered by sealed gaps',
    emulator: { shards, splitEveryMs, retentionMs, freezeAllMs, freezeAt: 'start' },
    // A gap committed before the first seal lands in a window 24 h back: the sealer then writes
    // ~1440 empty manifests first (see EmulatedStreamOptions.freezeAt), minutes of work.
    sealTimeoutMs: 480_000,
  },
];

describe('chaos on many shards (long)', () => {
  for (let run = 1; run <= runs; run++) {
    for (const [i, variant] of variants.entries()) {
      if (!chosen.has(variant.name)) continue;
      it(
        `run ${run}/${runs}, ${variant.name}: ${variant.title}`,
        async () => {
          const report = await runChaosScenario({
            durationMs,
            workers: 3,
            keys,
            ratePerSecond: 100,
            // The first run's seed repeats with CHAOS_SEED; the variants of a run get seed, seed+1, ...
            seed: run === 1 && firstSeed !== undefined ? firstSeed + i : undefined,
            emulator: variant.emulator,
            sealTimeoutMs: variant.sealTimeoutMs,
            keepLogs: process.env['CHAOS_KEEP_LOGS'] === '1',
            log: (line) => console.log(`[run ${run} ${variant.name}] ${line}`),
          });
          expectManyShardRun(report, { trimmed: variant.emulator.freezeAllMs !== undefined });
        },
        durationMs + 20 * 60_000,
      );
    }
  }
});
