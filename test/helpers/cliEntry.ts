/*
 * Entry point for running the CLI from source in a child process (cliProcess.ts):
 * `node --import tsx test/helpers/cliEntry.ts <args>`. Running src/ through tsx instead of
 * bin/dynamodb-changelog.js means a test never exercises a stale dist/.
 *
 * Under the test suite (DYNAMODB_CHANGELOG_AWS_CALLS_DIR set by vitest.config.ts) the process
 * records its AWS calls for the IAM policy test (test/helpers/awsCallRecorder.ts).
 */
import { main } from '../../src/cli/main.js';

const awsCallsDir = process.env['DYNAMODB_CHANGELOG_AWS_CALLS_DIR'];
if (awsCallsDir) {
  const { installAwsCallRecorder } = await import('./awsCallRecorder.js');
  installAwsCallRecorder({
    dir: awsCallsDir,
    origin: 'cli',
    processInfo: {
      argv: process.argv.slice(2),
      env: Object.fromEntries(
        Object.entries(process.env).filter(
          (e): e is [string, string] => e[0].startsWith('CHANGELOG_') && e[1] !== undefined,
        ),
      ),
    },
  });
}

process.exitCode = await main(process.argv);
