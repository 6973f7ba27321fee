import { ConfigError } from '../support/errors.js';
import { sleep as defaultSleep } from '../support/retry.js';
import type { Sleeper } from './shardDiscovery.js';

/**
 * A token bucket of read capacity units shared by concurrent requests. The cost of a read is only
 * known from its answer, so a caller takes an estimate before the request (`acquire`) and
 * corrects it afterwards (`settle`). The balance may go into debt: a request that cost more than
 * its estimate delays the following ones, so the long-run rate holds.
 */
export interface ReadRateLimiter {
  /** Takes `units` and waits until the balance they leave is paid back (at once when it is not negative). */
  acquire(units: number, signal?: AbortSignal): Promise<void>;
  /** Corrects an acquired estimate by what the request really consumed. */
  settle(estimated: number, actual: number): void;
}

export interface ReadRateLimiterOptions {
  /** Units the bucket gains per second: the long-run rate. */
  unitsPerSecond: number;
  /** Most units the bucket holds, i.e. the largest burst after an idle spell. Default: one second's worth. */
  burst?: number;
  now?: () => number;
  sleep?: Sleeper;
}

export function createReadRateLimiter(options: ReadRateLimiterOptions): ReadRateLimiter {
  const { unitsPerSecond, burst = unitsPerSecond, now = Date.now, sleep = defaultSleep } = options;
  const issues: string[] = [];
  if (!(Number.isFinite(unitsPerSecond) && unitsPerSecond > 0)) {
    issues.push(`read rate ${unitsPerSecond} units/s: must be a finite number above 0`);
  }
  if (!(Number.isFinite(burst) && burst > 0))
    issues.push(`read rate burst ${burst}: must be a finite number above 0`);
  if (issues.length > 0) throw new ConfigError(issues);

  // Starts full: the first second's reads go out at once, as they would after any idle spell.
  let balance = burst;
  let at = now();
  const refill = () => {
    const t = now();
    balance = Math.min(burst, balance + ((t - at) / 1000) * unitsPerSecond);
    at = t;
  };
  return {
    async acquire(units, signal) {
      signal?.throwIfAborted();
      refill();
      // Reserved synchronously, so concurrent callers queue behind each other's debt.
      balance -= units;
      if (balance >= 0) return;
      try {
        await sleep((-balance / unitsPerSecond) * 1000, signal);
      } catch (error) {
        // The request will not be sent: its units go back.
        refill();
        balance += units;
        throw error;
      }
    },
    settle(estimated, actual) {
      refill();
      balance -= actual - estimated;
    },
  };
}
