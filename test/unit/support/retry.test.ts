import { describe, expect, it, vi } from 'vitest';
import {
  ChangelogError,
  isRetriable,
  MalformedRecordError,
  ObjectStoreError,
} from '../../../src/support/errors.js';
import { retry, sleep } from '../../../src/support/retry.js';

const transient = () => new ObjectStoreError('503', { retriable: true });

describe('retry', () => {
  it('retries retriable errors with jittered, capped exponential back-off', async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await retry(
      async () => {
        if (++calls < 4) throw transient();
        return 'ok';
      },
      { baseDelayMs: 1, maxDelayMs: 3, random: () => 0.999, onRetry: (_e, _a, d) => delays.push(d) },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(4);
    expect(delays).toEqual([0, 1, 2]); // floor(0.999 * min(3, 1 * 2^attempt))
  });

  it('does not retry non-retriable errors and gives up after `retries`', async () => {
    const fatal = vi.fn(async () => {
      throw new MalformedRecordError('bad');
    });
    await expect(retry(fatal, { baseDelayMs: 0 })).rejects.toBeInstanceOf(MalformedRecordError);
    expect(fatal).toHaveBeenCalledTimes(1);
    const flaky = vi.fn(async () => {
      throw transient();
    });
    await expect(retry(flaky, { retries: 2, baseDelayMs: 0 })).rejects.toBeInstanceOf(ObjectStoreError);
    expect(flaky).toHaveBeenCalledTimes(3);
  });

  it('stops waiting as soon as the signal aborts, with the abort reason', async () => {
    const controller = new AbortController();
    const reason = new Error('shutdown');
    const pending = retry(
      async () => {
        throw transient();
      },
      { baseDelayMs: 60_000, random: () => 1, signal: controller.signal },
    );
    setTimeout(() => controller.abort(reason), 5);
    await expect(pending).rejects.toBe(reason);
    await expect(sleep(10, AbortSignal.abort(reason))).rejects.toBe(reason);
  });
});

describe('isRetriable', () => {
  it('reads our flag first, then AWS SDK error metadata', () => {
    expect(isRetriable(new ChangelogError('x', { retriable: true }))).toBe(true);
    expect(isRetriable(new ChangelogError('x'))).toBe(false);
    expect(isRetriable({ name: 'ThrottlingException' })).toBe(true);
    expect(isRetriable({ name: 'X', $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isRetriable({ name: 'X', $metadata: { httpStatusCode: 400 } })).toBe(false);
    expect(isRetriable({ name: 'X', $retryable: {} })).toBe(true);
    expect(isRetriable({ code: 'ECONNRESET' })).toBe(true);
    expect(isRetriable('nope')).toBe(false);
  });

  it('keeps cause and context on our errors', () => {
    const cause = new Error('root');
    const e = new MalformedRecordError('m', { shardId: 's', sequenceNumber: '1', cause });
    expect(e.name).toBe('MalformedRecordError');
    expect(e.cause).toBe(cause);
    expect(e.context).toEqual({ shardId: 's', sequenceNumber: '1' });
  });
});
