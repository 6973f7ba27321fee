/**
 * A FIFO hand-over between producers and one consumer that holds at most `capacity` items: `push`
 * waits while it is full, so a slow consumer slows the producers down instead of letting items
 * pile up in memory.
 */
export class BoundedChannel<T> {
  private readonly items: T[] = [];
  /** Consumers waiting for an item, the end, or a failure. */
  private readonly takers: (() => void)[] = [];
  /** Producers waiting for room or a failure. */
  private readonly pushers: (() => void)[] = [];
  private closed = false;
  private failure: { error: unknown } | undefined;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`BoundedChannel: capacity must be an integer >= 1, got ${capacity}`);
    }
  }

  get size(): number {
    return this.items.length;
  }

  /** Adds an item once there is room; rejects when the channel failed or closed, or `signal` aborts. */
  async push(item: T, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.failure) throw this.failure.error;
      if (this.closed) throw new Error('BoundedChannel: push after close');
      if (this.items.length < this.capacity) {
        this.items.push(item);
        wakeAll(this.takers);
        return;
      }
      await waitOn(this.pushers, signal);
    }
  }

  /** The next item; `done` once the channel is closed and drained. Rejects with a failure at once. */
  async take(signal?: AbortSignal): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.failure) throw this.failure.error;
      const [first] = this.items;
      if (this.items.length > 0) {
        this.items.shift();
        wakeAll(this.pushers);
        return { done: false, value: first as T };
      }
      if (this.closed) return { done: true, value: undefined };
      await waitOn(this.takers, signal);
    }
  }

  /** No more items: the consumer gets what is buffered, then the end. */
  close(): void {
    this.closed = true;
    wakeAll(this.takers);
  }

  /** Ends the channel with an error: buffered items are dropped and every waiter rejects with it. */
  fail(error: unknown): void {
    this.failure ??= { error };
    this.items.length = 0;
    wakeAll(this.takers);
    wakeAll(this.pushers);
  }
}

function wakeAll(waiters: (() => void)[]): void {
  for (const wake of waiters.splice(0)) wake();
}

/** Resolves when woken (the caller re-checks its condition), rejects when `signal` aborts. */
function waitOn(waiters: (() => void)[], signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      const at = waiters.indexOf(wake);
      if (at >= 0) waiters.splice(at, 1);
      reject(signal?.reason);
    };
    const wake = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    waiters.push(wake);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
