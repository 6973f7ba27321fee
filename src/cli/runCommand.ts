import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { Command } from 'commander';
import { parseRunConfig, RUN_OPTIONS, type RunConfig, type RunOptionsInput } from '../config/runConfig.js';
import { createLeaseTable } from '../lease/leaseTable.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { ChangelogWorker } from '../pipeline/changelogWorker.js';
import { keySchemaFromTable } from '../segment/keySchema.js';
import { openObjectStore } from '../sink/openObjectStore.js';
import { RawGetRecordsClient } from '../stream/getRecordsClient.js';
import { resolveStreamArn } from '../stream/shardDiscovery.js';

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
    .option('--log-level <level>', help('logLevel', 'debug, info, warn, error or silent'))
    .action(async (flags: RunOptionsInput) => {
      const config = parseRunConfig(flags);
      const logger = createLogger(config.logLevel, { workerId: config.workerId, table: config.table });
      await runDaemon(config, logger);
    });
}

/** Runs the worker until SIGTERM or SIGINT, then stops gracefully. */
export async function runDaemon(config: RunConfig, logger: Logger): Promise<void> {
  const dynamodb = new DynamoDBClient({ maxAttempts: 1 });
  const streams = new DynamoDBStreamsClient({ maxAttempts: 1 });
  const raw = new RawGetRecordsClient(streams);
  const store = openObjectStore(config.destination, {
    s3: {
      forcePathStyle: config.s3ForcePathStyle,
      expectedBucketOwner: config.expectedBucketOwner,
      sseKmsKeyId: config.sseKmsKeyId,
    },
  });
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'stopping: committing buffered data and releasing leases');
    controller.abort(new Error(`received ${signal}`));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    if (config.createLeaseTable) {
      await createLeaseTable(dynamodb, config.leaseTable, { signal: controller.signal });
    }
    const streamArn =
      config.streamArn ?? (await resolveStreamArn(dynamodb, config.table, { signal: controller.signal }));
    const described = await dynamodb.send(new DescribeTableCommand({ TableName: config.table }), {
      abortSignal: controller.signal,
    });
    const keySchema = keySchemaFromTable(described.Table ?? {});
    logger.info(
      { streamArn, leaseTable: config.leaseTable, destination: config.destination },
      'worker starting',
    );
    const worker = new ChangelogWorker({
      workerId: config.workerId,
      table: config.table,
      streamArn,
      keySchema,
      dynamodb,
      streams,
      raw,
      leaseTableName: config.leaseTable,
      store,
      windowMs: config.windowMs,
      allowedLatenessMs: config.allowedLatenessMs,
      flushIntervalMs: config.flushIntervalMs,
      maxSegmentBytes: config.maxSegmentBytes,
      maxBufferBytes: config.maxBufferBytes,
      compression: config.compression,
      failoverMs: config.failoverMs,
      orphanGraceMs: config.orphanGraceMs,
      logger,
    });
    await worker.run(controller.signal);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    store.close?.();
    raw.destroy();
    dynamodb.destroy();
    streams.destroy();
  }
}
