import { describe, expect, it } from 'vitest';
import { runChaosScenario } from './chaosScenario.js';

/*
 * The long chaos run: `npm run test:chaos` (vitest.chaos.config.ts). Not named *.test.ts, so the
 * default suite does not pick it up; the short version is test/integration/chaos/chaos.test.ts.
 *
 * Environment: RUNS (default 1) repeats the scenario with fresh seeds; CHAOS_SEED fixes the first
 * run's seed; CHAOS_DURATION_MS (default 180000) and CHAOS_KEYS (default 3000) size it.
 */

const runs = Number(process.env['RUNS'] ?? 1);
const durationMs = Number(process.env['CHAOS_DURATION_MS'] ?? 180_000);
const keys = Number(process.env['CHAOS_KEYS'] ?? 3_000);
const firstSeed = process.env['CHAOS_SEED'] === undefined ? undefined : Number(process.env['CHAOS_SEED']);

describe('chaos (long)', () => {
  for (let run = 1; run <= runs; run++) {
    it(
      `run ${run}/${runs}: every stream record exactly once in sealed manifests`,
      async () => {
        const report = await runChaosScenario({
          durationMs,
          workers: 3,
          keys,
          ratePerSecond: 100,
          seed: run === 1 ? firstSeed : undefined,
          log: (line) => console.log(`[run ${run}] ${line}`),
        });

        expect(report.violations).toEqual([]);
        expect(report.duplicates).toBe(0);
        expect(report.missing).toBe(0);
        expect(report.verify?.exitCode).toBe(0);
        expect(report.changes).toBeGreaterThan(0);
        expect(report.kills).toBeGreaterThan(0);
        expect(report.pauses).toBeGreaterThan(0);
        expect(report.injected503 + report.injectedResponseLost).toBeGreaterThan(0);
      },
      durationMs + 10 * 60_000,
    );
  }
});
