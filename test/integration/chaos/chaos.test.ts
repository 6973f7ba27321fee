import { describe, expect, it } from 'vitest';
import { runChaosScenario } from '../../chaos/chaosScenario.js';

/*
 * The short chaos run inside `npm test` (the long one is `npm run test:chaos`): three real
 * `dynamodb-changelog run` processes, a producer, kill -9, SIGSTOP past the failover time and
 * failing S3 writes, then the exactly-once verdict read independently with DuckDB, and `verify`.
 * CHAOS_SEED repeats a run's choices (the seed is printed in the summary line).
 */

const seed = process.env['CHAOS_SEED'] === undefined ? undefined : Number(process.env['CHAOS_SEED']);

describe('chaos (short)', () => {
  it(
    'keeps every stream record exactly once in sealed manifests through kills, pauses and S3 faults',
    async () => {
      const report = await runChaosScenario({
        durationMs: 30_000,
        workers: 3,
        keys: 500,
        seed,
        // Windows are 1 min and DynamoDB Local floors event times to the minute: sealing the last
        // window takes up to ~70 s after the producer stops; more than twice that means it stalled.
        sealTimeoutMs: 150_000,
        // Watching for late duplicates after everything sealed: 15 s here to keep `npm test` under
        // 10 minutes; the long run (`npm run test:chaos`) watches for 70 s.
        settleMs: 15_000,
      });

      expect(report.violations).toEqual([]);
      expect(report.duplicates).toBe(0);
      expect(report.missing).toBe(0);
      expect(report.verify?.exitCode).toBe(0);
      // The run only proves something if the chaos happened and there was data to lose.
      expect(report.changes).toBeGreaterThan(0);
      expect(report.kills).toBeGreaterThan(0);
      expect(report.pauses).toBeGreaterThan(0);
      expect(report.injected503 + report.injectedResponseLost).toBeGreaterThan(0);
    },
    6 * 60_000,
  );
});
