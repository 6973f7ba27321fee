/**
 * Maps `source` through `load`, in order, keeping at most `ahead` loads running beyond the item the
 * consumer holds: while it works on item i, items i+1..i+ahead are being loaded. Bounded: never
 * more than `ahead` + 1 results held, whatever the source's length.
 *
 * A load's failure surfaces when the consumer reaches that item, not before (earlier items are
 * handed out first). When the consumer stops early or an error ends the iteration, the loads still
 * running are aborted through the signal `load` gets, and the source is closed.
 */
export async function* readAhead<T, R>(
  source: AsyncIterable<T>,
  ahead: number,
  load: (item: T, signal: AbortSignal) => Promise<R>,
): AsyncGenerator<R, void, undefined> {
  if (!Number.isInteger(ahead) || ahead < 0)
    throw new RangeError(`readAhead: ahead must be an integer >= 0, got ${ahead}`);
  const iterator = source[Symbol.asyncIterator]();
  const stop = new AbortController();
  const queue: Promise<R>[] = [];
  let exhausted = false;
  const fill = async (size: number) => {
    while (!exhausted && queue.length < size) {
      const next = await iterator.next();
      if (next.done) {
        exhausted = true;
        return;
      }
      const loading = load(next.value, stop.signal);
      // Awaited later, in order; until then a rejection must not count as unhandled.
      loading.catch(() => {});
      queue.push(loading);
    }
  };
  try {
    for (;;) {
      await fill(ahead + 1);
      const current = queue.shift();
      if (current === undefined) return;
      yield await current;
    }
  } finally {
    stop.abort();
    if (!exhausted) await iterator.return?.();
  }
}
