import { type Command, CommanderError } from 'commander';
import { runLocalStack } from '../app/local/localStack.js';
import { parseDuration } from '../support/duration.js';
import { ConfigError } from '../support/errors.js';

export interface LocalFlags {
  dataDir: string;
  duration?: string | undefined;
  rate: string;
  keys: string;
  fresh?: boolean | undefined;
}

export interface LocalOptions {
  dataDir: string;
  durationMs: number | undefined;
  rate: number;
  keys: number;
  fresh: boolean;
}

export const LOCAL_DEFAULTS = { dataDir: '.local', rate: '200', keys: '1000' } as const;

/** Validates the `local` flags; every problem is reported at once (ConfigError, exit code 2). */
export function parseLocalFlags(flags: LocalFlags): LocalOptions {
  const problems: string[] = [];
  let durationMs: number | undefined;
  if (flags.duration !== undefined) {
    durationMs = parseDuration(flags.duration);
    if (durationMs === undefined || durationMs < 1000) {
      problems.push(
        `--duration is ${JSON.stringify(flags.duration)}: expected a duration of 1s or more, e.g. 90s, 5m`,
      );
    }
  }
  const integer = (flag: string, value: string, min: number, max: number): number => {
    const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!(n >= min && n <= max))
      problems.push(`${flag} is ${JSON.stringify(value)}: expected a whole number from ${min} to ${max}`);
    return n;
  };
  const rate = integer('--rate', flags.rate, 1, 5000);
  const keys = integer('--keys', flags.keys, 1, 1_000_000);
  if (flags.dataDir.trim() === '') problems.push('--data-dir is empty');
  if (problems.length > 0) throw new ConfigError(problems);
  return { dataDir: flags.dataDir, durationMs, rate, keys, fresh: flags.fresh === true };
}

/**
 * True when the environment says where AWS is: a region, a profile, credentials, an endpoint, or
 * the container / web-identity credentials that ECS and EKS provide. Without any of these,
 * `dynamodb-changelog` with no command runs `local` (DESIGN.md).
 */
export function hasAwsConfiguration(env: NodeJS.ProcessEnv): boolean {
  return Object.entries(env).some(
    ([name, value]) =>
      value !== undefined &&
      value !== '' &&
      (name === 'AWS_REGION' ||
        name === 'AWS_DEFAULT_REGION' ||
        name === 'AWS_PROFILE' ||
        name === 'AWS_ACCESS_KEY_ID' ||
        name === 'AWS_WEB_IDENTITY_TOKEN_FILE' ||
        name.startsWith('AWS_CONTAINER_CREDENTIALS_') ||
        name.startsWith('AWS_ENDPOINT_URL')),
  );
}

/**
 * `local`: DynamoDB Local + s3rver + a demo producer + the daemon, with a live status line. The
 * default command when the environment has no AWS configuration.
 */
export function registerLocalCommand(program: Command, env: NodeJS.ProcessEnv = process.env): void {
  program
    .command('local', { isDefault: !hasAwsConfiguration(env) })
    .description(
      'the whole pipeline on this machine: DynamoDB Local, an S3 server, a demo producer and the daemon, with a live status (needs Java 17+ and the dev dependencies)',
    )
    .option(
      '--data-dir <dir>',
      'where the servers keep their data, the daemon log and the query',
      LOCAL_DEFAULTS.dataDir,
    )
    .option('--duration <duration>', 'stop after this long, e.g. 90s or 5m (default: until Ctrl-C)')
    .option('--rate <n>', 'demo writes per second', LOCAL_DEFAULTS.rate)
    .option('--keys <n>', 'demo key space: how many order ids', LOCAL_DEFAULTS.keys)
    .option(
      '--fresh',
      'delete the data of earlier runs first (otherwise a run resumes where the last stopped)',
    )
    .allowExcessArguments(true)
    .addHelpText(
      'after',
      `
Runs with nothing configured: it sets its own AWS_* variables for the local servers. Data stays in
<data-dir>, so a second run resumes from the leases. On Ctrl-C (or after --duration) it stops
cleanly and prints a summary and a DuckDB query over the sealed windows' Parquet files.
Exit codes: 0 stopped cleanly, 1 failure, 2 bad flags, Java missing or too old, or a production
install without the dev dependencies.`,
    )
    .action(async (flags: LocalFlags, command: Command) => {
      // Reached as the default command, a mistyped command name lands here: say so.
      const [unexpected] = command.args;
      if (unexpected !== undefined) {
        program.error(`error: unknown command '${unexpected}'`, {
          code: 'commander.unknownCommand',
          exitCode: 1,
        });
      }
      const options = parseLocalFlags(flags);
      const exitCode = await runLocalStack(options);
      // Whatever handle is left (an idle socket) must not keep the process alive.
      setTimeout(() => process.exit(exitCode), 2000).unref();
      if (exitCode !== 0)
        throw new CommanderError(exitCode, 'local.failed', 'the local stack did not stop cleanly');
    });
  program.addHelpText(
    'after',
    `
With no command and no AWS configuration in the environment (AWS_REGION, AWS_DEFAULT_REGION,
AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL*), it runs \`local\`.`,
  );
}
