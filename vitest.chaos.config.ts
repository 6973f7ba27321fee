import { defineConfig } from 'vitest/config';

/*
 * `npm run test:chaos`: only the long chaos scenario (test/chaos/*.chaos.ts), one file at a time,
 * since each run starts its own DynamoDB Local, s3rver and three worker processes.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    pool: 'forks',
    fileParallelism: false,
    hookTimeout: 120_000,
    // Per-test timeouts are set in the test, from the configured duration.
    testTimeout: 30 * 60_000,
  },
});
