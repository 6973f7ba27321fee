import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ChangelogError } from '../support/errors.js';
import { registerChangesCommand } from './changesCommand.js';
import { registerLocalCommand } from './localCommand.js';
import { registerReplayCommand } from './replayCommand.js';
import { registerRunCommand } from './runCommand.js';
import { registerSegmentCommand } from './segmentCommand.js';
import { registerVerifyCommand } from './verifyCommand.js';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command('dynamodb-changelog')
    .description(
      "Turns a DynamoDB table's stream into a durable, queryable changelog of Parquet segments on S3.",
    )
    .version(version)
    .showHelpAfterError()
    .exitOverride();
  registerRunCommand(program);
  registerSegmentCommand(program);
  registerVerifyCommand(program);
  registerChangesCommand(program);
  registerReplayCommand(program);
  registerLocalCommand(program);
  return program;
}

/** Runs the CLI; returns the process exit code. Errors print one clear message, no stack trace. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ChangelogError) {
      process.stderr.write(`dynamodb-changelog: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(
      `dynamodb-changelog: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
}
