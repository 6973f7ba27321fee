import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/support/random.js';

describe('seededRandom', () => {
  it('replays the same sequence from the same seed (mulberry32)', () => {
    const a = seededRandom(1);
    const b = seededRandom(1);
    const first = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(first);
    expect(first).toEqual([0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
  });

  it('gives other sequences for other seeds, uniform in [0, 1)', () => {
    const one = seededRandom(1);
    const two = seededRandom(2);
    expect(one()).not.toBe(two());
    const random = seededRandom(42);
    const values = Array.from({ length: 10_000 }, () => random());
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
  });
});
