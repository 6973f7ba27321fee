import { finished } from 'node:stream/promises';

/** Hands text or bytes to a writable stream in chunks of about this many characters or bytes. */
export const OUTPUT_CHUNK_SIZE = 64 * 1024;

const READY: Promise<void> = Promise.resolve();

/**
 * Writes to a Node stream in ~64 KB chunks with backpressure. Small pieces (one output line) are
 * collected into one chunk: a stream write per line costs more than building the line. When the
 * stream says its buffer is full (write() returns false), the next chunk is built meanwhile but
 * not handed over before 'drain': the caller's write() that completes that next chunk waits. So
 * building overlaps the stream's I/O, and memory holds at most the chunk being built, one chunk
 * beyond the stream's high-water mark, and that buffer.
 *
 * A stream error (EPIPE when the reader went away, a full disk) rejects the waiting or next write
 * and end(); it is never thrown as an unhandled 'error' event.
 */
export class ChunkedOutput {
  private pending = '';
  /** Set while the stream is over its high-water mark: settles on 'drain' (or the failure). */
  private draining: Promise<void> | undefined;
  private failure: unknown;
  private ended = false;

  constructor(
    private readonly output: NodeJS.WritableStream,
    private readonly chunkSize = OUTPUT_CHUNK_SIZE,
  ) {
    output.on('error', (error: unknown) => {
      this.failure ??= error;
    });
  }

  /** Queues text; resolves at once unless a full chunk must wait for the stream to drain. */
  write(text: string): Promise<void> {
    if (this.ended) return Promise.reject(new Error('write after the output ended'));
    this.pending += text;
    if (this.pending.length < this.chunkSize) return READY;
    const chunk = this.pending;
    this.pending = '';
    return this.hand(chunk);
  }

  /**
   * Writes bytes (after any queued text), in chunks, with the same backpressure. `written` is
   * called once the stream has written all of them (its write callbacks), not on a failure.
   */
  async writeBytes(bytes: Uint8Array, written?: () => void): Promise<void> {
    await this.flush();
    for (let at = 0; at < bytes.length; at += this.chunkSize) {
      const end = Math.min(bytes.length, at + this.chunkSize);
      await this.hand(bytes.subarray(at, end), end === bytes.length ? written : undefined);
    }
  }

  /** Hands over what is queued (without ending the stream). */
  async flush(): Promise<void> {
    if (this.pending === '') return;
    const chunk = this.pending;
    this.pending = '';
    await this.hand(chunk);
  }

  /**
   * Hands over what is queued, ends the stream and resolves once it finished (its data is with the
   * operating system or the next stream), so a caller can then record that the data was written.
   */
  async end(): Promise<void> {
    if (this.ended) throw new Error('output already ended');
    await this.flush();
    this.ended = true;
    if (this.failure !== undefined) throw this.failure;
    this.output.end();
    // readable: false, so a Duplex (a PassThrough in a pipeline) counts as finished once written.
    await finished(this.output, { readable: false });
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for a pending drain, then gives the chunk to the stream. */
  private hand(chunk: string | Uint8Array, written?: () => void): Promise<void> {
    if (this.draining === undefined) return this.give(chunk, written);
    return this.draining.then(() => this.give(chunk, written));
  }

  private give(chunk: string | Uint8Array, written?: () => void): Promise<void> {
    if (this.ended) return Promise.reject(new Error('write after the output ended'));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const output = this.output;
    let stopWaiting: ((error: unknown) => void) | undefined;
    const ok = output.write(chunk, (error?: Error | null) => {
      if (!error) {
        written?.();
        return;
      }
      this.failure ??= error;
      stopWaiting?.(error);
    });
    if (ok) return READY;
    const draining = new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        output.off('drain', onDrain);
        output.off('close', onClose);
        if (this.draining === draining) this.draining = undefined;
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onClose = () => {
        cleanup();
        reject(this.failure ?? new Error('the output stream closed before its data was written'));
      };
      // The write callback reports a failure on a later tick, never before this runs.
      stopWaiting = (error) => {
        cleanup();
        reject(error);
      };
      output.on('drain', onDrain);
      output.on('close', onClose);
    });
    // Awaited by the next hand() or end(); until then a failure must not count as unhandled.
    draining.catch(() => {});
    this.draining = draining;
    return READY;
  }
}
