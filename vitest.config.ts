import path from 'node:path';
import { configDefaults, defineConfig } from 'vitest/config';

/*
 * The AWS calls src/ makes during this run are recorded under .local/aws-calls/<run>/ (by the
 * setup file, and by CLI processes the tests start); the IAM policy test checks them against
 * infra/iam/policy.json.tftpl. It is its own project with the last groupOrder, so it starts only
 * after every other test file has finished and sees the whole run's recordings.
 */
// vitest evaluates this file more than once per run (once per project): keep the first directory.
process.env['DYNAMODB_CHANGELOG_AWS_CALLS_DIR'] ??= path.resolve(
  '.local',
  'aws-calls',
  `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`,
);
const awsCallsDir = process.env['DYNAMODB_CHANGELOG_AWS_CALLS_DIR'];
const iamPolicyTests = 'test/integration/infra/**/*.test.ts';
// The two chaos runs kill and SIGSTOP workers on a timetable and judge failover by the clock: they
// run alone, after everything else, so a neighbour's CPU use cannot skew them.
const chaosTests = 'test/integration/chaos/**/*.test.ts';

/*
 * Most integration files spend their time waiting for windows to seal, not on the CPU, so the
 * rest of the suite runs two files at a time (vitest's default is availableParallelism() - 1,
 * which is one on a 2-core machine). Projects of one group must agree on maxWorkers.
 */
export default defineConfig({
  test: {
    // Integration tests start real servers (s3rver, DynamoDB Local); give them room on a busy 2-core box.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    env: { DYNAMODB_CHANGELOG_AWS_CALLS_DIR: awsCallsDir },
    setupFiles: ['test/helpers/recordAwsCalls.setup.ts'],
    projects: [
      {
        extends: true,
        // `include` is per project: with `extends`, arrays set here too would be concatenated.
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, iamPolicyTests, chaosTests],
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: { name: 'chaos', include: [chaosTests], maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
      {
        extends: true,
        test: { name: 'iam-policy', include: [iamPolicyTests], maxWorkers: 1, sequence: { groupOrder: 2 } },
      },
    ],
  },
});
