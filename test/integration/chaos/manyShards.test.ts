import { describe, it } from 'vitest';
import { runChaosScenario } from '../../chaos/chaosScenario.js';
import { expectManyShardRun } from '../../chaos/expectManyShardRun.js';

/*
 * The short many-shard chaos run inside `npm test` (the long one, with the trimmed-retention
 * variant, is test/chaos/manyShards.chaos.ts in `npm run test:chaos`). Three real
 * `dynamodb-changelog run` processes read the many-shard Streams emulator
 * (test/helpers/streamsEmulator.ts): 16 shards at the start, a split every ~10 s, 5 % of GetRecords
 * throttled and 1 % of Streams calls failing with 500, while the chaos loop kills (-9) and SIGSTOPs
 * workers and fails S3 writes. Then every record the emulated stream held must be exactly once in
 * the sealed manifests (read with DuckDB), in per-item order across parent and child shards, no
 * child read before its parent's end was served, and `verify` (and `verify --stream`, when the
 * CLI has it) must pass. CHAOS_SEED repeats a run's choices (the seed is in the summary line);
 * CHAOS_KEEP_LOGS=1 keeps the workers' logs of a passing run too.
 *
 * The trimmed-retention variant (all workers frozen past a short retention) runs only in the long
 * suite: it needs a first sealed window before its freeze, and with this one it would take the
 * pair well past 4 minutes.
 */

const seed = process.env['CHAOS_SEED'] === undefined ? undefined : Number(process.env['CHAOS_SEED']);

describe('chaos on many shards (short)', () => {
  it(
    'keeps every record of a splitting 16-shard stream exactly once through kills, pauses, throttling and S3 faults',
    async () => {
      const report = await runChaosScenario({
        durationMs: 35_000,
        workers: 3,
        keys: 500,
        seed,
        emulator: { shards: 16, splitEveryMs: 10_000, throttleRate: 0.05, errorRate: 0.01 },
        // 1-minute windows (the smallest): the last one seals up to ~70 s after the producer stops.
        sealTimeoutMs: 150_000,
        keepLogs: process.env['CHAOS_KEEP_LOGS'] === '1',
        // Late duplicates would need another window to seal; the long run watches for them.
        settleMs: 10_000,
      });
      expectManyShardRun(report);
    },
    6 * 60_000,
  );
});
