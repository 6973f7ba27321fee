import { ChangelogError, describeAwsError, isRetriable } from '../support/errors.js';
import { combineSignals, type RetryOptions, retry } from '../support/retry.js';
import { hasName } from './leaseTable.js';

/**
 * Transient for lease-table writes: the usual AWS faults, plus TransactionConflictException, which a
 * single-item write gets when a commit transaction holds the same item at that moment.
 */
export function isTransientLeaseError(error: unknown): boolean {
  return isRetriable(error) || hasName(error, 'TransactionConflictException');
}

export interface DynamoCallOptions {
  retry: RetryOptions;
  /** The call's own signal, alongside the one in `retry`. */
  signal: AbortSignal | undefined;
  /** Errors the caller resolves itself (failed conditions, cancelled transactions). */
  passThrough: (error: unknown) => boolean;
  /** The domain error for any other failure, given the AWS error's description. */
  wrap: (error: unknown, description: string, retriable: boolean) => ChangelogError;
}

/**
 * One lease-table call under retry(): transient faults are retried with back-off; errors the caller
 * resolves pass through untouched; anything else becomes the caller's ChangelogError.
 */
export async function callDynamo<T>(
  fn: (signal: AbortSignal | undefined) => Promise<T>,
  options: DynamoCallOptions,
): Promise<T> {
  const combined = combineSignals(options.retry.signal, options.signal);
  try {
    return await retry((_, s) => fn(s), {
      shouldRetry: isTransientLeaseError,
      ...options.retry,
      signal: combined,
    });
  } catch (error) {
    if (combined?.aborted || error instanceof ChangelogError || options.passThrough(error)) throw error;
    throw options.wrap(error, describeAwsError(error), isTransientLeaseError(error));
  }
}
