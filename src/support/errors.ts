/**
 * The project's error hierarchy. Every error carries a `retriable` flag that the one retry helper
 * (`support/retry.ts`) reads, keeps its `cause`, and names the context it happened in so a log line or an
 * operator can find the record, shard or object without a stack trace.
 */

export interface ErrorContext {
  shardId?: string;
  sequenceNumber?: string;
  key?: string;
  /** Byte offset in a raw response when decoding wire bytes. */
  offset?: number;
}

export interface ChangelogErrorOptions extends ErrorContext {
  cause?: unknown;
  retriable?: boolean;
}

export class ChangelogError extends Error {
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(message: string, options: ChangelogErrorOptions = {}) {
    const { cause, retriable = false, ...context } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ChangelogError';
    this.retriable = retriable;
    this.context = context;
  }
}

/** A stream record that cannot be decoded. Never retried: the same bytes fail the same way. */
export class MalformedRecordError extends ChangelogError {
  constructor(message: string, options: ChangelogErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'MalformedRecordError';
  }
}

/** A change segment that cannot be built (bad key schema, encoder failure). */
export class SegmentEncodeError extends ChangelogError {
  constructor(message: string, options: ChangelogErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'SegmentEncodeError';
  }
}

/** An object store call failed. `retriable` tells whether trying again may help. */
export class ObjectStoreError extends ChangelogError {
  constructor(message: string, options: ChangelogErrorOptions = {}) {
    super(message, options);
    this.name = 'ObjectStoreError';
  }
}

/**
 * A create-only write found a different object already at the key. The existing object is kept:
 * overwriting it could change a file a sealed manifest points to.
 */
export class ObjectConflictError extends ObjectStoreError {
  readonly existingChecksum: string | undefined;
  readonly newChecksum: string;

  constructor(key: string, newChecksum: string, existingChecksum: string | undefined) {
    super(
      `object ${key} already exists with different content (existing ${existingChecksum ?? 'unknown'}, new ${newChecksum}); refusing to overwrite`,
      { key, retriable: false },
    );
    this.name = 'ObjectConflictError';
    this.existingChecksum = existingChecksum;
    this.newChecksum = newChecksum;
  }
}

/**
 * The worker no longer holds a shard's lease (another worker took it, or it expired): its
 * conditional write on lease owner + epoch failed. The shard's reader must stop; never retried.
 * Translated from DynamoDB's ConditionalCheckFailedException after re-reading the lease item.
 */
export class LeaseLostError extends ChangelogError {
  constructor(message: string, options: ChangelogErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'LeaseLostError';
  }
}

/**
 * A commit went to a window the sealer has already closed (its manifest is or will be written
 * without it). The segment is an orphan; its shards are read again and their records go to the
 * earliest open window. Translated from the commit transaction's failed condition on the
 * window state item.
 */
export class WindowClosedError extends ChangelogError {
  readonly windowStartMs: number;

  constructor(message: string, windowStartMs: number, options: ChangelogErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'WindowClosedError';
    this.windowStartMs = windowStartMs;
  }
}

/** A DynamoDB Streams call failed in a way the reader must act on (not a plain transient fault). */
export class StreamError extends ChangelogError {
  /** The service's error code, e.g. ExpiredIteratorException, TrimmedDataAccessException. */
  readonly code: string;

  constructor(code: string, message: string, options: ChangelogErrorOptions = {}) {
    super(message, options);
    this.name = 'StreamError';
    this.code = code;
  }
}

/** Why a table scan (replay's scan source) failed or was refused. */
export type TableScanProblem =
  /** DescribeTable or Scan answered ResourceNotFoundException. */
  | 'table-not-found'
  /** Scan or DescribeTable failed otherwise (after retries, when transient). */
  | 'scan-failed'
  /** A saved scan progress that is not valid. */
  | 'invalid-progress'
  /** A scan progress of another table or another segment count. */
  | 'progress-mismatch';

/** A table scan (replay's scan source) failed or was refused; names the table when known. */
export class TableScanError extends ChangelogError {
  readonly problem: TableScanProblem;
  readonly table: string | undefined;

  constructor(
    problem: TableScanProblem,
    table: string | undefined,
    message: string,
    options: ChangelogErrorOptions = {},
  ) {
    super(message, options);
    this.name = 'TableScanError';
    this.problem = problem;
    this.table = table;
  }
}

/** What a reader found wrong in changelog data it relies on (see ChangelogIntegrityError). */
export type IntegrityProblem =
  /** A segment's rows are not in key-then-sequence-number order. */
  | 'unsorted-segment'
  /** Two rows of one item carry one sequence number: a record is in the changelog twice. */
  | 'duplicate-sequence-number'
  /** The same row (segment, event id, op) was handed over twice: a reader bug, not the data's. */
  | 'row-read-twice'
  /** A row whose key column or sequence number is missing or not what its type allows. */
  | 'invalid-row';

/**
 * Changelog data breaks an assumption a reader relies on, so any answer built on it would be wrong.
 * Never retried: the same objects fail the same way. `context.key` is the first segment named.
 */
export class ChangelogIntegrityError extends ChangelogError {
  readonly problem: IntegrityProblem;
  /** The segment object(s) involved, relative to the destination. */
  readonly segmentKeys: readonly string[];
  /** The item's key attributes (DynamoDB JSON), when the problem is about one item. */
  readonly itemKeys: string | undefined;

  constructor(
    problem: IntegrityProblem,
    message: string,
    details: { segmentKeys: readonly string[]; itemKeys?: string } & ChangelogErrorOptions,
  ) {
    const { segmentKeys, itemKeys, ...options } = details;
    super(message, { key: segmentKeys[0], ...options, retriable: false });
    this.name = 'ChangelogIntegrityError';
    this.problem = problem;
    this.segmentKeys = segmentKeys;
    this.itemKeys = itemKeys;
  }
}

/** What is wrong with a DynamoDB export to S3, or with starting one (see ExportError). */
export type ExportProblem =
  /** The location holds no manifest-summary.json: not an export's folder. */
  | 'not-an-export'
  /** The export is of another table than the caller expects. */
  | 'wrong-table'
  /** An output format or export type this reader does not read (only DYNAMODB_JSON). */
  | 'unsupported-format'
  /** A manifest that is not what AWS documents (bad JSON, missing or mistyped field). */
  | 'malformed-manifest'
  /** A manifest or data file whose MD5 differs from the one recorded for it. */
  | 'checksum-mismatch'
  /** Item counts that disagree (summary vs files, a file's lines vs its manifest entry). */
  | 'item-count-mismatch'
  /** A file the manifest lists is not in the store. */
  | 'missing-file'
  /** A data file that is not gzip, or a line of it that is not one export record. */
  | 'malformed-data'
  /** DynamoDB reported the export FAILED, or a call to start or describe it failed. */
  | 'export-failed';

/**
 * A DynamoDB export to S3 that cannot be used as it is. Data faults are never retried (the same
 * objects fail the same way); `context.key` is the object involved, `line` the 1-based line of a
 * data file when the fault is in one record.
 */
export class ExportError extends ChangelogError {
  readonly problem: ExportProblem;
  readonly line: number | undefined;

  constructor(
    problem: ExportProblem,
    message: string,
    options: ChangelogErrorOptions & { line?: number } = {},
  ) {
    const { line, ...rest } = options;
    super(message, { retriable: false, ...rest });
    this.name = 'ExportError';
    this.problem = problem;
    this.line = line;
  }
}

/** Invalid configuration: lists every problem at once. */
export class ConfigError extends ChangelogError {
  readonly issues: readonly string[];

  constructor(issues: readonly string[]) {
    super(`invalid configuration:\n  - ${issues.join('\n  - ')}`, { retriable: false });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** True for errors that say trying again may succeed: our own flag first, then AWS SDK metadata. */
export function isRetriable(error: unknown): boolean {
  if (error instanceof ChangelogError) return error.retriable;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as {
    name?: string;
    code?: string;
    $retryable?: unknown;
    $fault?: string;
    $metadata?: { httpStatusCode?: number };
  };
  if (e.$retryable) return true;
  if (e.name === 'AbortError') return false;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (e.$fault === 'server') return true;
  const transient = new Set([
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'ETIMEDOUT',
    'EAI_AGAIN',
    'TimeoutError',
    'RequestTimeout',
    'RequestTimeoutException',
    'ThrottlingException',
    'Throttling',
    'SlowDown',
    'ProvisionedThroughputExceededException',
    'LimitExceededException',
    'InternalServerError',
    'ServiceUnavailable',
  ]);
  return transient.has(e.code ?? '') || transient.has(e.name ?? '');
}

/**
 * `Name (HTTP status): message` of an AWS SDK error. The name matters: some services (DynamoDB
 * Local among them) answer errors the SDK can only call "UnknownError" in the message.
 */
export function describeAwsError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const code = status === undefined ? '' : ` (HTTP ${status})`;
  if (error.name === 'Error') return `${error.message}${code}`;
  const message = error.message.startsWith(`${error.name}: `)
    ? error.message.slice(error.name.length + 2)
    : error.message;
  return `${error.name}${code}: ${message}`;
}
