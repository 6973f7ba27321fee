import { type Command, CommanderError } from 'commander';
import { parseRunConfig, RUN_OPTIONS, type RunOptionsInput } from '../config/runConfig.js';
import { createLogger } from '../observability/logger.js';
import { runDaemon } from './daemon.js';

const help = (name: keyof typeof RUN_OPTIONS, text: string) => {
  const spec = RUN_OPTIONS[name];
  const fallback = 'default' in spec ? `; default ${spec.default}` : '';
  return `${text} [env ${spec.env}${fallback}]`;
};

/**
 * `run`: the tailing daemon. Endpoints, region and credentials come from the AWS SDK's own
 * conventions (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_DYNAMODB_STREAMS,
 * AWS_ENDPOINT_URL_S3, the default credential chain).
 */
export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description("tail a table's stream into change segments and sealed window manifests (the daemon)")
    .option('--table <name>', help('table', 'source DynamoDB table (its latest stream is read)'))
    .option('--stream-arn <arn>', help('streamArn', "read this stream instead of the table's latest"))
    .option('--destination <url>', help('destination', 's3://bucket/prefix or file:///dir'))
    .option('--lease-table <name>', help('leaseTable', 'DynamoDB table for leases and the segment registry'))
    .option('--create-lease-table', help('createLeaseTable', 'create the lease table if it does not exist'))
    .option('--window <duration>', help('window', 'window size, 1m to 24h, dividing a day'))
    .option('--allowed-lateness <duration>', help('allowedLateness', 'wait past a window end before sealing'))
    .option(
      '--flush-interval <duration>',
      help('flushInterval', 'flush a buffer once its oldest row waited this long'),
    )
    .option(
      '--max-segment-bytes <size>',
      help('maxSegmentBytes', 'flush a buffer at this many uncompressed bytes'),
    )
    .option('--max-buffer-bytes <size>', help('maxBufferBytes', 'pause reading while this much is buffered'))
    .option('--compression <codec>', help('compression', 'zstd, snappy or none'))
    .option('--worker-id <id>', help('workerId', "this worker's lease owner id (default host-pid-random)"))
    .option('--failover <duration>', help('failover', 'a lease not renewed for this long is taken over'))
    .option(
      '--orphan-grace <duration>',
      help('orphanGrace', 'unreferenced segment objects older than this are deleted'),
    )
    .option(
      '--s3-force-path-style',
      help('s3ForcePathStyle', 'path-style S3 URLs (MinIO, s3rver, LocalStack)'),
    )
    .option(
      '--expected-bucket-owner <account>',
      help('expectedBucketOwner', 'refuse a bucket owned by another account'),
    )
    .option('--sse-kms-key-id <key>', help('sseKmsKeyId', 'encrypt objects with this KMS key'))
    .option('--metrics-port <port>', help('metricsPort', 'serve /metrics, /healthz and /readyz on this port'))
    .option(
      '--shutdown-timeout <duration>',
      help('shutdownTimeout', 'on SIGTERM, exit within this long (keep it under the orchestrator grace)'),
    )
    .option(
      '--stall-timeout <duration>',
      help('stallTimeout', 'a shard without progress this long is stalled (metric, error log, /readyz)'),
    )
    .option('--log-level <level>', help('logLevel', 'debug, info, warn, error or silent'))
    .addHelpText(
      'after',
      `
Endpoints, region and credentials come from the AWS SDK's own settings: AWS_REGION,
AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_DYNAMODB_STREAMS, AWS_ENDPOINT_URL_S3, and the
default credential chain (environment, web identity / IRSA, ECS task role, instance profile).
A flag wins over its environment variable. Exit codes: 0 stopped cleanly, 1 runtime failure or
shutdown deadline passed, 2 bad configuration.`,
    )
    .action(async (flags: RunOptionsInput) => {
      const config = parseRunConfig(flags);
      const logger = createLogger(config.logLevel, { workerId: config.workerId, table: config.table });
      const result = await runDaemon(config, logger);
      // Whatever handle is left (an idle socket) must not hold the process past its deadline.
      setTimeout(() => process.exit(result.exitCode), 2000).unref();
      if (result.exitCode !== 0) {
        throw new CommanderError(result.exitCode, 'shutdown.deadline', 'shutdown deadline passed');
      }
    });
}
