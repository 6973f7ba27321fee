import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers (s3rver, DynamoDB Local); give them room on a busy 2-core box.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
