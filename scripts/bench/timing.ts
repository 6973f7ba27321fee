/** Wraps async methods of an instance to time them (count, total, max), without touching src/. */
export interface CallTimes {
  calls: number;
  totalMs: number;
  maxMs: number;
}

export type Timings = Record<string, CallTimes>;

export function timeMethod(target: object, method: string, label: string, timings: Timings): void {
  const obj = target as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = obj[method];
  if (typeof original !== 'function') throw new Error(`no method ${method} to time`);
  const times: CallTimes = timings[label] ?? { calls: 0, totalMs: 0, maxMs: 0 };
  timings[label] = times;
  obj[method] = async function (this: unknown, ...args: unknown[]) {
    const t = performance.now();
    try {
      return await original.apply(this, args);
    } finally {
      const ms = performance.now() - t;
      times.calls++;
      times.totalMs += ms;
      times.maxMs = Math.max(times.maxMs, ms);
    }
  };
}

export function describeTimings(timings: Timings): string {
  return Object.entries(timings)
    .filter(([, t]) => t.calls > 0)
    .map(
      ([k, t]) => `${k} ${t.calls}x mean ${(t.totalMs / t.calls).toFixed(0)} ms max ${t.maxMs.toFixed(0)} ms`,
    )
    .join('; ');
}
