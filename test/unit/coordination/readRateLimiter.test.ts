import { describe, expect, it } from 'vitest';
import { createReadRateLimiter } from '../../../src/coordination/readRateLimiter.js';
import { ConfigError } from '../../../src/support/errors.js';

/** A virtual clock: `sleep` records the wait and moves the clock to its end at once. */
function virtualClock() {
  const clock = {
    now: 0,
    sleeps: [] as number[],
    sleep: async (ms: number, signal?: AbortSignal) => {
      signal?.throwIfAborted();
      clock.sleeps.push(ms);
      clock.now = Math.max(clock.now, clock.now + ms);
    },
  };
  return clock;
}

describe('createReadRateLimiter', () => {
  it('lets a burst through, then spaces acquisitions at the rate', async () => {
    const clock = virtualClock();
    const limiter = createReadRateLimiter({ unitsPerSecond: 10, now: () => clock.now, sleep: clock.sleep });
    await limiter.acquire(10);
    expect(clock.sleeps).toEqual([]);
    await limiter.acquire(5);
    expect(clock.sleeps).toEqual([500]);
    for (let i = 0; i < 8; i++) await limiter.acquire(5);
    // 45 units after the first 10: 4.5 seconds at 10 units/s.
    expect(clock.now).toBe(4500);
  });

  it('carries debt when a read cost more than its estimate, so the long-run rate holds', async () => {
    const clock = virtualClock();
    const limiter = createReadRateLimiter({ unitsPerSecond: 10, now: () => clock.now, sleep: clock.sleep });
    await limiter.acquire(10);
    limiter.settle(1, 41); // estimated 1, really 41: 40 units of debt
    await limiter.acquire(1);
    expect(clock.sleeps).toEqual([4100]);
  });

  it('gives back credit when a read cost less than its estimate, up to the burst', async () => {
    const clock = virtualClock();
    const limiter = createReadRateLimiter({
      unitsPerSecond: 10,
      burst: 20,
      now: () => clock.now,
      sleep: clock.sleep,
    });
    await limiter.acquire(20);
    limiter.settle(20, 0);
    await limiter.acquire(20);
    expect(clock.sleeps).toEqual([]);
    clock.now += 60_000; // a long idle spell refills only up to the burst
    await limiter.acquire(25);
    expect(clock.sleeps).toEqual([500]);
  });

  it('queues concurrent callers behind each other', async () => {
    const clock = virtualClock();
    const waits: number[] = [];
    const limiter = createReadRateLimiter({
      unitsPerSecond: 4,
      now: () => clock.now,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    await Promise.all([limiter.acquire(4), limiter.acquire(4), limiter.acquire(4)]);
    expect(waits).toEqual([1000, 2000]);
  });

  it('rejects a wait on abort and returns its units', async () => {
    const clock = { now: 0 };
    const sleeps: number[] = [];
    const controller = new AbortController();
    const limiter = createReadRateLimiter({
      unitsPerSecond: 1,
      now: () => clock.now,
      sleep: (ms, signal) => {
        sleeps.push(ms);
        return new Promise((_resolve, reject) =>
          signal?.addEventListener('abort', () => reject(signal.reason)),
        );
      },
    });
    await limiter.acquire(1);
    const waiting = limiter.acquire(100, controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    clock.now = 1000; // one unit refilled; the aborted 100 were given back, so no wait
    await limiter.acquire(1);
    expect(sleeps).toEqual([100_000]);
  });

  it('refuses a rate that is not a positive number', () => {
    expect(() => createReadRateLimiter({ unitsPerSecond: 0 })).toThrow(ConfigError);
    expect(() => createReadRateLimiter({ unitsPerSecond: Number.POSITIVE_INFINITY })).toThrow(/read rate/);
    expect(() => createReadRateLimiter({ unitsPerSecond: 1, burst: -1 })).toThrow(/burst/);
  });
});
