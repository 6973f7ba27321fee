/*
 * Entry point for running the CLI from source in a child process (cliProcess.ts):
 * `node --import tsx test/helpers/cliEntry.ts <args>`. Running src/ through tsx instead of
 * bin/dynamodb-changelog.js means a test never exercises a stale dist/.
 */
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv);
