import { describe, expect, it } from 'vitest';
import { ByteBuilder } from '../../../src/support/byteBuilder.js';

describe('ByteBuilder', () => {
  it('appends byte ranges, bytes and UTF-8 text in order, growing past its first buffer', () => {
    const builder = new ByteBuilder(4);
    const source = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
    builder.bytes(source, 2, 5); // short: copied in a loop
    builder.byte(0x2c);
    builder.bytes(source, 0, 30); // long: a native copy, after growing
    builder.text('é😀');
    expect(builder.length).toBe(3 + 1 + 30 + 6);
    expect(builder.take().toString('utf8')).toBe(`234,${'0123456789abcdefghijklmnopqrst'}é😀`);
  });

  it('take() hands the bytes over and starts a new buffer, so what was taken never changes', () => {
    const builder = new ByteBuilder(8);
    builder.text('first');
    const first = builder.take();
    expect(builder.length).toBe(0);
    builder.text('second!!');
    expect(first.toString()).toBe('first');
    expect(builder.take().toString()).toBe('second!!');
  });

  it('truncate() drops what came after a length', () => {
    const builder = new ByteBuilder();
    builder.text('keep');
    const mark = builder.length;
    builder.text(' drop');
    builder.truncate(mark);
    builder.text('!');
    expect(builder.take().toString()).toBe('keep!');
  });
});
