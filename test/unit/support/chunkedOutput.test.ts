import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChunkedOutput, OUTPUT_CHUNK_SIZE } from '../../../src/support/chunkedOutput.js';

/** Whether a promise has settled once the event loop has run what is queued (no clock involved). */
async function state(promise: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  const marker = new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')));
  return Promise.race([
    promise.then(
      () => 'resolved' as const,
      () => 'rejected' as const,
    ),
    marker,
  ]);
}

/** A stream whose writes (and final) complete only when the test releases them. */
function heldSink(highWaterMark = 16 * 1024) {
  const held: (() => void)[] = [];
  const chunks: Buffer[] = [];
  let finalCallback: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      held.push(() => callback());
    },
    final(callback) {
      finalCallback = () => callback();
    },
  });
  return {
    stream,
    chunks,
    releaseOne: () => held.shift()?.(),
    releaseAll: () => {
      while (held.length > 0) held.shift()!();
    },
    releaseFinal: () => finalCallback?.(),
    get waiting() {
      return held.length;
    },
  };
}

describe('ChunkedOutput', () => {
  it('collects small writes into one chunk and resolves them at once', async () => {
    const sink = heldSink();
    const out = new ChunkedOutput(sink.stream);
    for (let i = 0; i < 100; i++) expect(await state(out.write(`line ${i}\n`))).toBe('resolved');
    expect(sink.chunks).toHaveLength(0);
  });

  it('builds the next chunk while the stream writes, and hands it over only after drain', async () => {
    const sink = heldSink();
    const out = new ChunkedOutput(sink.stream);
    // The first chunk goes to the stream, over its high-water mark: the caller may go on building.
    expect(await state(out.write('x'.repeat(OUTPUT_CHUNK_SIZE)))).toBe('resolved');
    const second = out.write('y'.repeat(OUTPUT_CHUNK_SIZE));
    expect(await state(second)).toBe('pending');
    expect(sink.chunks).toHaveLength(1);
    sink.releaseOne();
    expect(await state(second)).toBe('resolved');
    expect(sink.chunks).toHaveLength(2);
  });

  it('keeps a producer that awaits write() within a chunk or two of the consumer', async () => {
    const sink = heldSink();
    const out = new ChunkedOutput(sink.stream);
    const line = `${'y'.repeat(1023)}\n`;
    let written = 0;
    const producer = (async () => {
      for (let i = 0; i < 1000; i++) {
        await out.write(line);
        written++;
      }
      await out.end();
    })();
    for (let spin = 0; spin < 20; spin++) await state(producer);
    // Blocked on the second full chunk: nothing more was built than two chunks (64 lines each).
    expect(written).toBeLessThanOrEqual((2 * OUTPUT_CHUNK_SIZE) / line.length + 1);
    expect(sink.stream.writableLength).toBeLessThanOrEqual(2 * OUTPUT_CHUNK_SIZE);
    while ((await state(producer)) === 'pending') {
      sink.releaseAll();
      sink.releaseFinal();
    }
    await producer;
    expect(written).toBe(1000);
    expect(Buffer.concat(sink.chunks).toString()).toBe(line.repeat(1000));
  });

  it('resolves end() only once the stream finished', async () => {
    const sink = heldSink();
    const out = new ChunkedOutput(sink.stream);
    await out.write('tail without newline');
    const end = out.end();
    expect(await state(end)).toBe('pending');
    sink.releaseAll();
    expect(await state(end)).toBe('pending');
    sink.releaseFinal();
    expect(await state(end)).toBe('resolved');
    expect(Buffer.concat(sink.chunks).toString()).toBe('tail without newline');
    await expect(out.write('late')).rejects.toThrow('write after the output ended');
  });

  it('writes bytes in chunks, after the text queued before them', async () => {
    const chunks: Buffer[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    const out = new ChunkedOutput(stream);
    const bytes = Buffer.alloc(3 * OUTPUT_CHUNK_SIZE + 10, 7);
    await out.write('head');
    await out.writeBytes(bytes);
    await out.end();
    expect(chunks.map((c) => c.length)).toEqual([
      4,
      OUTPUT_CHUNK_SIZE,
      OUTPUT_CHUNK_SIZE,
      OUTPUT_CHUNK_SIZE,
      10,
    ]);
    expect(Buffer.concat(chunks.slice(1)).equals(bytes)).toBe(true);
  });

  it('rejects the waiting write, later writes and end() when the stream fails', async () => {
    const sink = heldSink();
    const out = new ChunkedOutput(sink.stream);
    await out.write('z'.repeat(OUTPUT_CHUNK_SIZE));
    const write = out.write('z'.repeat(OUTPUT_CHUNK_SIZE));
    expect(await state(write)).toBe('pending');
    sink.stream.destroy(new Error('disk full'));
    await expect(write).rejects.toThrow('disk full');
    await expect(out.write('z'.repeat(OUTPUT_CHUNK_SIZE))).rejects.toThrow('disk full');
    await expect(out.end()).rejects.toThrow('disk full');
  });

  it('rejects a waiting write when the stream closes without an error', async () => {
    const sink = heldSink();
    const out = new ChunkedOutput(sink.stream);
    await out.write('z'.repeat(OUTPUT_CHUNK_SIZE));
    const write = out.write('z'.repeat(OUTPUT_CHUNK_SIZE));
    expect(await state(write)).toBe('pending');
    sink.stream.destroy();
    await expect(write).rejects.toThrow(/closed before its data was written/);
  });
});
