/**
 * Lease churn without failures: two `run` workers on the many-shard Streams emulator (16 shards
 * splitting every 10 s, no throttling, no kills, pauses or S3 faults) for CALM_DURATION_MS
 * (default 120 s). Prints the chaos report's summary: lease losses, refused commits, hand-offs
 * and child start latency should show balancing by hand-off and no refusals.
 *
 *   npx tsx scripts/chaosCalm.ts
 */
import { runChaosScenario } from '../test/chaos/chaosScenario.js';

const report = await runChaosScenario({
  durationMs: Number(process.env['CALM_DURATION_MS'] ?? 120_000),
  workers: 2,
  keys: 2_000,
  ratePerSecond: 100,
  calm: true,
  seed: process.env['CHAOS_SEED'] === undefined ? undefined : Number(process.env['CHAOS_SEED']),
  emulator: { shards: 16, splitEveryMs: 10_000, throttleRate: 0, errorRate: 0 },
  sealTimeoutMs: 240_000,
  settleMs: 10_000,
});
console.log(report.summary);
process.exit(report.violations.length === 0 ? 0 : 1);
