/*
 * vitest setup file (vitest.config.ts): records the AWS calls src/ makes in this test worker, for
 * the IAM policy test (test/integration/infra/iamPolicy.test.ts). The run's directory comes from
 * vitest.config.ts; CLI processes the tests start inherit it and record through
 * test/helpers/cliEntry.ts.
 */
import { AWS_CALLS_DIR_ENV, installAwsCallRecorder } from './awsCallRecorder.js';

installAwsCallRecorder({ dir: process.env[AWS_CALLS_DIR_ENV] });
