import {
  DescribeExportCommand,
  DynamoDBClient,
  type ExportDescription,
  ExportTableToPointInTimeCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { type ExportProgress, startExport } from '../../../src/coordination/exportStarter.js';
import { ConfigError, ExportError } from '../../../src/support/errors.js';

const TABLE_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders';
const EXPORT_ID = '01763834400000-a1b2c3d4';
const EXPORT_ARN = `${TABLE_ARN}/export/${EXPORT_ID}`;
const FROM = Date.UTC(2026, 10, 22, 17, 0, 0);
const TO = Date.UTC(2026, 10, 22, 18, 0, 0);

const description = (ExportStatus: ExportDescription['ExportStatus'], extra: ExportDescription = {}) => ({
  ExportDescription: {
    ExportArn: EXPORT_ARN,
    ExportStatus,
    TableArn: TABLE_ARN,
    S3Bucket: 'changes-bucket',
    S3Prefix: 'replays/r-42',
    ...extra,
  },
});

describe('startExport (mocked client)', () => {
  let client: DynamoDBClient;
  let ddb: ReturnType<typeof mockClient>;
  // Polling waits go through this fake: it records the delays and never waits on the clock.
  let sleeps: number[];
  const sleep = async (ms: number, signal?: AbortSignal) => {
    signal?.throwIfAborted();
    sleeps.push(ms);
  };

  beforeEach(() => {
    client = new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    ddb = mockClient(client);
    sleeps = [];
  });

  it('sends an incremental export with the client token and spec, polls through IN_PROGRESS to COMPLETED', async () => {
    ddb.on(ExportTableToPointInTimeCommand).resolves(description('IN_PROGRESS'));
    ddb
      .on(DescribeExportCommand)
      .resolvesOnce(description('IN_PROGRESS'))
      .resolvesOnce(description('IN_PROGRESS', { ItemCount: 10 }))
      .resolves(description('COMPLETED', { ItemCount: 1234, BilledSizeBytes: 56789 }));
    const progress: ExportProgress[] = [];
    const result = await startExport(
      client,
      {
        tableArn: TABLE_ARN,
        s3Bucket: 'changes-bucket',
        s3Prefix: '/replays/r-42/',
        exportType: 'INCREMENTAL_EXPORT',
        fromMs: FROM,
        toMs: TO,
        clientToken: 'replay-r-42-export-1',
      },
      { pollMs: 5_000, sleep, onProgress: (p) => progress.push(p) },
    );

    expect(ddb.commandCalls(ExportTableToPointInTimeCommand)).toHaveLength(1);
    expect(ddb.commandCalls(ExportTableToPointInTimeCommand)[0]?.args[0].input).toEqual({
      TableArn: TABLE_ARN,
      S3Bucket: 'changes-bucket',
      S3Prefix: 'replays/r-42',
      ExportFormat: 'DYNAMODB_JSON',
      ExportType: 'INCREMENTAL_EXPORT',
      ClientToken: 'replay-r-42-export-1',
      IncrementalExportSpecification: {
        ExportFromTime: new Date(FROM),
        ExportToTime: new Date(TO),
        ExportViewType: 'NEW_AND_OLD_IMAGES',
      },
    });
    expect(ddb.commandCalls(DescribeExportCommand).map((c) => c.args[0].input)).toEqual([
      { ExportArn: EXPORT_ARN },
      { ExportArn: EXPORT_ARN },
      { ExportArn: EXPORT_ARN },
    ]);
    expect(sleeps).toEqual([5_000, 5_000, 5_000]);
    expect(progress.map((p) => p.status)).toEqual(['IN_PROGRESS', 'IN_PROGRESS', 'IN_PROGRESS', 'COMPLETED']);
    expect(result).toEqual({
      exportArn: EXPORT_ARN,
      exportId: EXPORT_ID,
      exportPrefix: `s3://changes-bucket/replays/r-42/AWSDynamoDB/${EXPORT_ID}/`,
      itemCount: 1234,
      billedSizeBytes: 56789,
    });
  });

  it('sends a full export at its point in time, and returns at once when the token finds a completed export', async () => {
    ddb
      .on(ExportTableToPointInTimeCommand)
      .resolves(description('COMPLETED', { S3Prefix: undefined, ItemCount: 8, BilledSizeBytes: 0 }));
    const result = await startExport(
      client,
      {
        tableArn: TABLE_ARN,
        s3Bucket: 'changes-bucket',
        exportType: 'FULL_EXPORT',
        exportTimeMs: TO,
        clientToken: 't',
      },
      { sleep },
    );
    expect(ddb.commandCalls(ExportTableToPointInTimeCommand)[0]?.args[0].input).toEqual({
      TableArn: TABLE_ARN,
      S3Bucket: 'changes-bucket',
      ExportFormat: 'DYNAMODB_JSON',
      ExportType: 'FULL_EXPORT',
      ClientToken: 't',
      ExportTime: new Date(TO),
    });
    expect(ddb.commandCalls(DescribeExportCommand)).toHaveLength(0);
    expect(result.exportPrefix).toBe(`s3://changes-bucket/AWSDynamoDB/${EXPORT_ID}/`);
    expect(result.itemCount).toBe(8);
  });

  it('surfaces FAILED with its FailureCode and FailureMessage', async () => {
    ddb.on(ExportTableToPointInTimeCommand).resolves(description('IN_PROGRESS'));
    ddb.on(DescribeExportCommand).resolves(
      description('FAILED', {
        FailureCode: 'S3AccessDenied',
        FailureMessage: 'Access denied to bucket changes-bucket',
      }),
    );
    const error = await startExport(
      client,
      { tableArn: TABLE_ARN, s3Bucket: 'changes-bucket', exportType: 'FULL_EXPORT', clientToken: 't' },
      { sleep },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExportError);
    expect((error as ExportError).problem).toBe('export-failed');
    expect((error as ExportError).retriable).toBe(false);
    expect((error as Error).message).toContain('S3AccessDenied');
    expect((error as Error).message).toContain('Access denied to bucket changes-bucket');
    expect((error as Error).message).toContain(EXPORT_ARN);
  });

  it('stops polling when the signal aborts, with the signal reason', async () => {
    ddb.on(ExportTableToPointInTimeCommand).resolves(description('IN_PROGRESS'));
    ddb.on(DescribeExportCommand).resolves(description('IN_PROGRESS'));
    const controller = new AbortController();
    const reason = new Error('replay stopped');
    const error = await startExport(
      client,
      { tableArn: TABLE_ARN, s3Bucket: 'changes-bucket', exportType: 'FULL_EXPORT', clientToken: 't' },
      {
        signal: controller.signal,
        sleep,
        onProgress: () => {
          if (ddb.commandCalls(DescribeExportCommand).length === 2) controller.abort(reason);
        },
      },
    ).catch((e: unknown) => e);
    expect(error).toBe(reason);
    expect(ddb.commandCalls(DescribeExportCommand)).toHaveLength(2);
  });

  it('retries a throttled call through the one retry layer, and wraps a refused one', async () => {
    const throttled = Object.assign(new Error('slow down'), {
      name: 'LimitExceededException',
      $metadata: {},
    });
    const refused = Object.assign(new Error('PITR is not enabled'), {
      name: 'PointInTimeRecoveryUnavailableException',
      $metadata: { httpStatusCode: 400 },
    });
    ddb.on(ExportTableToPointInTimeCommand).rejectsOnce(throttled).resolves(description('COMPLETED'));
    const ok = await startExport(
      client,
      { tableArn: TABLE_ARN, s3Bucket: 'b-1', exportType: 'FULL_EXPORT', clientToken: 't' },
      { sleep, retry: { baseDelayMs: 0 } },
    );
    expect(ok.exportArn).toBe(EXPORT_ARN);
    expect(ddb.commandCalls(ExportTableToPointInTimeCommand)).toHaveLength(2);

    ddb.reset();
    ddb.on(ExportTableToPointInTimeCommand).rejects(refused);
    const error = await startExport(
      client,
      { tableArn: TABLE_ARN, s3Bucket: 'b-1', exportType: 'FULL_EXPORT', clientToken: 't' },
      { sleep, retry: { baseDelayMs: 0 } },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExportError);
    expect((error as Error).message).toContain('PointInTimeRecoveryUnavailableException');
    expect(ddb.commandCalls(ExportTableToPointInTimeCommand)).toHaveLength(1);
  });

  it('refuses requests that mix full and incremental parameters, before calling AWS', async () => {
    const error = await startExport(
      client,
      {
        tableArn: TABLE_ARN,
        s3Bucket: 'b-1',
        exportType: 'INCREMENTAL_EXPORT',
        exportTimeMs: TO,
        clientToken: 't',
      },
      { sleep },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      `export of ${TABLE_ARN}: an INCREMENTAL_EXPORT takes fromMs/toMs, not exportTimeMs`,
      `export of ${TABLE_ARN}: an INCREMENTAL_EXPORT needs fromMs (the period start)`,
    ]);
    expect(ddb.commandCalls(ExportTableToPointInTimeCommand)).toHaveLength(0);
  });
});
