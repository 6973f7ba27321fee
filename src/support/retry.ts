import { isRetriable } from './errors.js';

export interface RetryOptions {
  /** Attempts after the first one. */
  retries?: number;
  /** First back-off, in milliseconds; doubles each attempt up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  /** Defaults to `isRetriable` from support/errors.ts. */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Injectable for tests. */
  random?: () => number;
}

/**
 * Runs `fn` until it succeeds, a non-retriable error is thrown, the retries run out, or `signal`
 * aborts. Back-off is "full jitter" (a random delay in [0, min(max, base * 2^attempt)]), which
 * spreads a fleet of workers hitting the same throttled shard instead of synchronising them.
 */
export async function retry<T>(
  fn: (attempt: number, signal?: AbortSignal) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const {
    retries = 5,
    baseDelayMs = 100,
    maxDelayMs = 20_000,
    signal,
    shouldRetry = isRetriable,
    onRetry,
    random = Math.random,
  } = options;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (attempt >= retries || !shouldRetry(error, attempt)) throw error;
      const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
      const delayMs = Math.floor(random() * cap);
      onRetry?.(error, attempt + 1, delayMs);
      await sleep(delayMs, signal);
    }
  }
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One signal that aborts when any of the given ones does (undefined when none is given). */
export function combineSignals(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}
