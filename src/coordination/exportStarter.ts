import {
  DescribeExportCommand,
  type DynamoDBClient,
  type ExportDescription,
  ExportTableToPointInTimeCommand,
  type ExportTableToPointInTimeCommandInput,
} from '@aws-sdk/client-dynamodb';
import { ConfigError, ExportError } from '../support/errors.js';
import { sleep as defaultSleep, type RetryOptions } from '../support/retry.js';
import { awsCall } from './awsCall.js';
import type { ExportType } from './dynamoExport.js';

/*
 * Starts a DynamoDB export to S3 (ExportTableToPointInTime, DYNAMODB_JSON) and waits for it with
 * DescribeExport. The export lands under `s3://<bucket>/<S3Prefix>/AWSDynamoDB/<ExportId>/`,
 * ExportId being the last path segment of the export ARN; `openExport` reads it from there.
 */

export interface StartExportRequest {
  tableArn: string;
  s3Bucket: string;
  s3Prefix?: string;
  exportType: ExportType;
  /** Full export: the point in time (default: now, as DynamoDB takes it). */
  exportTimeMs?: number;
  /** Incremental export: the period, start inclusive (required), end exclusive (default: latest). */
  fromMs?: number;
  toMs?: number;
  /** Incremental export: default NEW_AND_OLD_IMAGES, which carries OldImage for updates and deletes. */
  viewType?: 'NEW_AND_OLD_IMAGES' | 'NEW_IMAGE';
  /**
   * Makes the request idempotent: the same token with the same parameters gives back the same
   * export instead of starting another, for 8 hours after that export completes (DynamoDB answers
   * ExportConflictException for the same token with other parameters). Callers derive it from the
   * replay's id, so a replay restarted after a crash finds its export rather than paying twice.
   */
  clientToken: string;
}

export interface ExportProgress {
  exportArn: string;
  status: 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';
  itemCount: number | undefined;
  billedSizeBytes: number | undefined;
}

export interface StartExportOptions {
  signal?: AbortSignal;
  /** Between DescribeExport calls (default 30 s: exports take minutes to hours). */
  pollMs?: number;
  onProgress?: (progress: ExportProgress) => void;
  /** Back-off of transient AWS faults, through `awsCall`. */
  retry?: Omit<RetryOptions, 'signal'>;
  /** Injectable for tests; must reject with the signal's reason when it aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface StartedExport {
  exportArn: string;
  exportId: string;
  /** The export's folder: `s3://<bucket>/<S3Prefix>/AWSDynamoDB/<ExportId>/`. */
  exportPrefix: string;
  itemCount: number;
  billedSizeBytes: number;
}

export const DEFAULT_EXPORT_POLL_MS = 30_000;

/**
 * Starts the export (or finds the one this client token already started) and resolves when it is
 * COMPLETED. FAILED is an ExportError with DynamoDB's FailureCode and FailureMessage. An abort stops
 * the waiting (the export itself goes on in DynamoDB; calling again with the same token resumes).
 */
export async function startExport(
  client: DynamoDBClient,
  request: StartExportRequest,
  options: StartExportOptions = {},
): Promise<StartedExport> {
  const input = exportInput(request);
  const { signal } = options;
  const sleep = options.sleep ?? defaultSleep;
  const pollMs = options.pollMs ?? DEFAULT_EXPORT_POLL_MS;
  const call = <T>(what: string, fn: (s: AbortSignal | undefined) => Promise<T>) =>
    awsCall(fn, {
      retry: options.retry,
      signal,
      wrap: (error, description, retriable) =>
        new ExportError('export-failed', `${what} for table ${request.tableArn} failed: ${description}`, {
          cause: error,
          retriable,
        }),
    });

  const started = await call('ExportTableToPointInTime', (s) =>
    client.send(new ExportTableToPointInTimeCommand(input), { abortSignal: s }),
  );
  let description = started.ExportDescription;
  const exportArn = description?.ExportArn;
  if (exportArn === undefined) {
    throw new ExportError(
      'export-failed',
      `ExportTableToPointInTime for table ${request.tableArn} returned no ExportArn`,
    );
  }
  for (;;) {
    const status = description?.ExportStatus ?? 'IN_PROGRESS';
    options.onProgress?.({
      exportArn,
      status,
      itemCount: description?.ItemCount,
      billedSizeBytes: description?.BilledSizeBytes,
    });
    if (status === 'COMPLETED') return completed(exportArn, description ?? {}, request);
    if (status === 'FAILED') {
      throw new ExportError(
        'export-failed',
        `export ${exportArn} of table ${request.tableArn} FAILED: ${description?.FailureCode ?? 'no FailureCode'}: ${description?.FailureMessage ?? 'no FailureMessage'}`,
        { key: exportArn },
      );
    }
    await sleep(pollMs, signal);
    const described = await call('DescribeExport', (s) =>
      client.send(new DescribeExportCommand({ ExportArn: exportArn }), { abortSignal: s }),
    );
    description = described.ExportDescription;
  }
}

function exportInput(request: StartExportRequest): ExportTableToPointInTimeCommandInput {
  const issues: string[] = [];
  const time = (name: string, ms: number | undefined) => {
    if (ms !== undefined && (!Number.isFinite(ms) || ms <= 0)) issues.push(`${name} ${ms} is not a time`);
  };
  time('exportTimeMs', request.exportTimeMs);
  time('fromMs', request.fromMs);
  time('toMs', request.toMs);
  if (request.clientToken === '') issues.push('clientToken is empty; derive it from the replay id');
  if (request.exportType === 'FULL_EXPORT') {
    if (request.fromMs !== undefined || request.toMs !== undefined || request.viewType !== undefined) {
      issues.push(
        'a FULL_EXPORT takes exportTimeMs, not fromMs/toMs/viewType (those are for INCREMENTAL_EXPORT)',
      );
    }
  } else {
    if (request.exportTimeMs !== undefined)
      issues.push('an INCREMENTAL_EXPORT takes fromMs/toMs, not exportTimeMs');
    if (request.fromMs === undefined) issues.push('an INCREMENTAL_EXPORT needs fromMs (the period start)');
    if (request.fromMs !== undefined && request.toMs !== undefined && request.toMs <= request.fromMs) {
      issues.push(`toMs ${request.toMs} must be after fromMs ${request.fromMs}`);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues.map((i) => `export of ${request.tableArn}: ${i}`));

  const prefix = (request.s3Prefix ?? '').replace(/^\/+|\/+$/g, '');
  return {
    TableArn: request.tableArn,
    S3Bucket: request.s3Bucket,
    ...(prefix !== '' && { S3Prefix: prefix }),
    ExportFormat: 'DYNAMODB_JSON',
    ExportType: request.exportType,
    ClientToken: request.clientToken,
    ...(request.exportTimeMs !== undefined && { ExportTime: new Date(request.exportTimeMs) }),
    ...(request.exportType === 'INCREMENTAL_EXPORT' && {
      IncrementalExportSpecification: {
        ...(request.fromMs !== undefined && { ExportFromTime: new Date(request.fromMs) }),
        ...(request.toMs !== undefined && { ExportToTime: new Date(request.toMs) }),
        ExportViewType: request.viewType ?? 'NEW_AND_OLD_IMAGES',
      },
    }),
  };
}

function completed(
  exportArn: string,
  description: ExportDescription,
  request: StartExportRequest,
): StartedExport {
  const exportId = exportArn.slice(exportArn.lastIndexOf('/') + 1);
  const bucket = description.S3Bucket ?? request.s3Bucket;
  const prefix = (description.S3Prefix ?? request.s3Prefix ?? '').replace(/^\/+|\/+$/g, '');
  return {
    exportArn,
    exportId,
    exportPrefix: `s3://${bucket}/${prefix === '' ? '' : `${prefix}/`}AWSDynamoDB/${exportId}/`,
    itemCount: description.ItemCount ?? 0,
    billedSizeBytes: description.BilledSizeBytes ?? 0,
  };
}
