/**
 * mulberry32: a small seeded PRNG (uniform in [0, 1)), so a run's random choices can be replayed
 * from its seed (the demo producer's, the tests' generated records and write mixes).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
