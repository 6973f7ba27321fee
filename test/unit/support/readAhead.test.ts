import { describe, expect, it } from 'vitest';
import { readAhead } from '../../../src/support/readAhead.js';

async function* numbers(n: number, pulled: number[]): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    pulled.push(i);
    yield i;
  }
}

describe('readAhead', () => {
  it('hands out the loads in source order, at most `ahead` started beyond the one held', async () => {
    const started: number[] = [];
    const resolvers = new Map<number, (value: string) => void>();
    const loads = readAhead(numbers(6, []), 2, (i) => {
      started.push(i);
      return new Promise<string>((resolve) => resolvers.set(i, resolve));
    });
    const first = loads.next();
    await new Promise((r) => setImmediate(r));
    // Item 0 is awaited, 1 and 2 are loading, 3 is not started.
    expect(started).toEqual([0, 1, 2]);
    // Finishing out of order changes nothing about the order handed out.
    resolvers.get(2)!('two');
    resolvers.get(1)!('one');
    resolvers.get(0)!('zero');
    expect(await first).toEqual({ done: false, value: 'zero' });
    expect(started).toEqual([0, 1, 2]);
    const second = loads.next();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2, 3]);
    expect(await second).toEqual({ done: false, value: 'one' });
    await loads.return();
  });

  it('raises a failed load when its item is reached, after the items before it', async () => {
    const loads = readAhead(numbers(4, []), 2, async (i) => {
      if (i === 2) throw new Error('load 2 failed');
      return i;
    });
    expect((await loads.next()).value).toBe(0);
    expect((await loads.next()).value).toBe(1);
    await expect(loads.next()).rejects.toThrow('load 2 failed');
  });

  it('aborts the loads still running and closes the source when the consumer stops', async () => {
    const pulled: number[] = [];
    const signals: AbortSignal[] = [];
    const loads = readAhead(numbers(10, pulled), 2, (i, signal) => {
      signals.push(signal);
      return i === 0 ? Promise.resolve(i) : new Promise<number>(() => {});
    });
    for await (const value of loads) {
      expect(value).toBe(0);
      break;
    }
    expect(pulled).toEqual([0, 1, 2]);
    expect(signals.every((s) => s.aborted)).toBe(true);
  });
});
