import { ChangelogError, describeAwsError, isRetriable } from '../support/errors.js';
import { combineSignals, type RetryOptions, retry } from '../support/retry.js';

/*
 * The one way coordination/ calls AWS (DynamoDB, DynamoDB Streams, S3): the error predicates, the
 * line between failures a caller resolves itself (failed conditions) and failures that become a
 * domain error, and the single retry layer (support/retry.ts: full jitter, AbortSignal). Nothing
 * above a call made through `awsCall` retries it again: one transient fault is retried by exactly
 * one layer, never by nested ones that multiply their attempts.
 */

export function hasName(error: unknown, name: string): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === name;
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** Service error codes that mean "too many requests": trying again later succeeds. */
const THROTTLING_CODES: ReadonlySet<string> = new Set([
  'LimitExceededException',
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
]);

/** Service error codes of a server-side fault. */
const SERVER_FAULT_CODES: ReadonlySet<string> = new Set([
  'InternalServerError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/**
 * Whether a service error answer, known only by its code and HTTP status (the raw GetRecords
 * client reads no SDK error object), is transient: a 5xx, throttling, or a server fault.
 */
export function isTransientServiceError(code: string, status: number): boolean {
  return status >= 500 || THROTTLING_CODES.has(code) || SERVER_FAULT_CODES.has(code);
}

/**
 * True for AWS SDK errors worth trying again: everything `isRetriable` accepts (our flag, SDK
 * retry metadata, throttling, 5xx, network faults); TransactionConflictException, which a
 * single-item write gets while a transaction holds the item; and S3's 409 for a conditional write
 * racing another on the same key.
 */
export function isTransientAwsError(error: unknown): boolean {
  return isRetriable(error) || hasName(error, 'TransactionConflictException') || isConditionalConflict(error);
}

/** DynamoDB: a single-item write's condition did not hold. */
export function isConditionalCheckFailed(error: unknown): boolean {
  return hasName(error, 'ConditionalCheckFailedException');
}

/**
 * DynamoDB's failed conditions, which the caller turns into its domain outcome (LeaseLostError, a
 * refused commit, `false`) after reading what is stored: ConditionalCheckFailedException, and a
 * cancelled TransactWriteItems (see `cancellationReasons`).
 */
export function isConditionFailure(error: unknown): boolean {
  return isConditionalCheckFailed(error) || hasName(error, 'TransactionCanceledException');
}

/**
 * The reasons of a cancelled TransactWriteItems, one code per item in request order
 * (`ConditionalCheckFailed`, `TransactionConflict`, ...; `None` for an item that was fine);
 * undefined for any other error. The one place CancellationReasons are read.
 */
export function cancellationReasons(error: unknown): string[] | undefined {
  if (!hasName(error, 'TransactionCanceledException')) return undefined;
  const reasons = (error as { CancellationReasons?: ({ Code?: string } | undefined)[] }).CancellationReasons;
  return (reasons ?? []).map((reason) => reason?.Code ?? 'None');
}

/**
 * A write that lost a race with another transaction and changed nothing: TransactionConflictException,
 * or a transaction cancelled for conflicts with no failed condition. Trying the same request again
 * (same ClientRequestToken) is safe.
 */
export function isTransactionConflict(error: unknown): boolean {
  if (hasName(error, 'TransactionConflictException')) return true;
  const reasons = cancellationReasons(error) ?? [];
  return reasons.includes('TransactionConflict') && !reasons.includes('ConditionalCheckFailed');
}

/** S3: a missing key (HEAD answers a bare 404 named NotFound, having no body). */
export function isNotFound(error: unknown): boolean {
  return hasName(error, 'NoSuchKey') || hasName(error, 'NotFound');
}

/** S3: a create-only write (`If-None-Match: *`) found the key taken. */
export function isPreconditionFailed(error: unknown): boolean {
  return hasName(error, 'PreconditionFailed') || httpStatus(error) === 412;
}

/** S3's 409 for a conditional write racing another one on the same key: retrying resolves it. */
export function isConditionalConflict(error: unknown): boolean {
  return (
    httpStatus(error) === 409 &&
    (hasName(error, 'ConditionalRequestConflict') || hasName(error, 'OperationAborted'))
  );
}

export interface AwsCallOptions {
  /** Back-off for transient faults. A signal here aborts the call too, alongside `signal`. */
  retry?: RetryOptions | undefined;
  /** The call's own signal. */
  signal?: AbortSignal | undefined;
  /** Which failures are tried again (unless `retry.shouldRetry` says otherwise). Default `isTransientAwsError`. */
  isTransient?: (error: unknown) => boolean;
  /** Failures the caller resolves itself, thrown untouched. Default `isConditionFailure`. */
  passThrough?: (error: unknown) => boolean;
  /**
   * The domain error for any other failure, given the AWS error's description and whether it was
   * transient. Without it, failures are thrown as they are. Our own ChangelogErrors and aborts are
   * never wrapped.
   */
  wrap?: (error: unknown, description: string, retriable: boolean) => Error;
  /** Awaited before every attempt, retries included (a rate pacer). */
  beforeAttempt?: (signal: AbortSignal | undefined) => Promise<void>;
  /** Told of each retry, after `retry.onRetry`. */
  onRetry?: RetryOptions['onRetry'];
}

/**
 * One AWS call: `fn` is tried until it succeeds, fails with something not transient, the retries
 * run out, or a signal aborts (its reason is thrown). `fn` gets the signal to hand to the SDK.
 */
export async function awsCall<T>(
  fn: (signal: AbortSignal | undefined) => Promise<T>,
  options: AwsCallOptions = {},
): Promise<T> {
  const { isTransient = isTransientAwsError, passThrough = isConditionFailure, wrap } = options;
  const signal = combineSignals(options.retry?.signal, options.signal);
  const listeners = [options.retry?.onRetry, options.onRetry].filter((f) => f !== undefined);
  try {
    return await retry(
      async (_attempt, s) => {
        await options.beforeAttempt?.(s);
        return fn(s);
      },
      {
        shouldRetry: isTransient,
        ...options.retry,
        signal,
        onRetry: (error, attempt, delayMs) => {
          for (const listener of listeners) listener(error, attempt, delayMs);
        },
      },
    );
  } catch (error) {
    if (wrap === undefined || signal?.aborted || error instanceof ChangelogError || passThrough(error)) {
      throw error;
    }
    throw wrap(error, describeAwsError(error), isTransient(error));
  }
}
