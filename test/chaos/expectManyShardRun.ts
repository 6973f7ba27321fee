import { expect } from 'vitest';
import type { ChaosReport } from './chaosScenario.js';

/**
 * What a many-shard chaos run (test/integration/chaos/manyShards.test.ts, the short one, and
 * test/chaos/manyShards.chaos.ts, the long ones) must show: no violation of any kind, and enough
 * chaos that the verdict means something.
 */
export function expectManyShardRun(report: ChaosReport, options: { trimmed?: boolean } = {}): void {
  expect(report.violations).toEqual([]);
  expect(report.lost).toBe(0);
  expect(report.missing).toBe(0);
  expect(report.uncoveredTrims).toBe(0);
  expect(report.duplicates).toBe(0);
  expect(report.duplicateSequenceNumbers).toBe(0);
  expect(report.orderViolations).toBe(0);
  expect(report.verify?.exitCode).toBe(0);
  if (report.verifyStream !== 'skipped') expect(report.verifyStream?.exitCode).toBe(0);
  // The run only proves something if the chaos happened and there was data to lose.
  expect(report.changes).toBeGreaterThan(0);
  expect(report.splits).toBeGreaterThan(0);
  expect(report.shards).toBeGreaterThan(16);
  expect(report.childStart.measured).toBeGreaterThan(0);
  expect(report.throttles).toBeGreaterThan(0);
  expect(report.kills).toBeGreaterThan(0);
  expect(report.pauses).toBeGreaterThan(0);
  expect(report.injected503 + report.injectedResponseLost).toBeGreaterThan(0);
  if (options.trimmed) {
    expect(report.freezes).toBe(1);
    // The freeze outlasted the retention while the producer wrote: something was trimmed unread.
    expect(report.trimmedUnread).toBeGreaterThan(0);
    expect(report.gaps).toBeGreaterThan(0);
  }
}
