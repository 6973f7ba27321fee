import { type Command, CommanderError } from 'commander';
import { runDaemon } from '../app/daemon.js';
import { parseRunConfig, RUN_OPTIONS, type RunOptionsInput } from '../app/runConfig.js';
import { createLogger } from '../support/logger.js';

/**
 * `run`: the tailing daemon. Endpoints, region and credentials come from the AWS SDK's own
 * conventions (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_DYNAMODB_STREAMS,
 * AWS_ENDPOINT_URL_S3, the default credential chain).
 */
export function registerRunCommand(program: Command): void {
  const command = program
    .command('run')
    .description("tail a table's stream into change segments and sealed window manifests (the daemon)");
  for (const spec of Object.values(RUN_OPTIONS)) {
    const fallback = 'default' in spec ? `; default ${spec.default}` : '';
    command.option(
      'arg' in spec ? `${spec.flag} ${spec.arg}` : spec.flag,
      `${spec.help} [env ${spec.env}${fallback}]`,
    );
  }
  command
    .addHelpText(
      'after',
      `
Endpoints, region and credentials come from the AWS SDK's own settings: AWS_REGION,
AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_DYNAMODB_STREAMS, AWS_ENDPOINT_URL_S3, and the
default credential chain (environment, web identity / IRSA, ECS task role, instance profile).
A flag wins over its environment variable. Exit codes: 0 stopped cleanly, 1 runtime failure or
data left uncommitted at the stop (read again by the next lease holders), 2 bad configuration.`,
    )
    .action(async (flags: RunOptionsInput) => {
      const config = parseRunConfig(flags);
      const logger = createLogger(config.operations.logLevel, {
        workerId: config.source.workerId,
        table: config.source.table,
      });
      const result = await runDaemon(config, logger);
      // Whatever handle is left (an idle socket) must not hold the process past its deadline.
      setTimeout(() => process.exit(result.exitCode), 2000).unref();
      if (result.exitCode !== 0) {
        throw new CommanderError(result.exitCode, 'shutdown.uncommitted', 'stopped with uncommitted data');
      }
    });
}
