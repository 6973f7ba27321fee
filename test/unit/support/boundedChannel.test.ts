import { describe, expect, it } from 'vitest';
import { BoundedChannel } from '../../../src/support/boundedChannel.js';

describe('BoundedChannel', () => {
  it('hands items over in order and ends after close once drained', async () => {
    const channel = new BoundedChannel<number>(2);
    await channel.push(1);
    await channel.push(2);
    channel.close();
    expect(await channel.take()).toEqual({ done: false, value: 1 });
    expect(await channel.take()).toEqual({ done: false, value: 2 });
    expect(await channel.take()).toEqual({ done: true, value: undefined });
  });

  it('makes a producer wait while full, until the consumer takes', async () => {
    const channel = new BoundedChannel<number>(1);
    await channel.push(1);
    let pushed = false;
    const second = channel.push(2).then(() => {
      pushed = true;
    });
    await Promise.resolve();
    expect(pushed).toBe(false);
    expect(channel.size).toBe(1);
    expect(await channel.take()).toEqual({ done: false, value: 1 });
    await second;
    expect(pushed).toBe(true);
  });

  it('makes a consumer wait while empty', async () => {
    const channel = new BoundedChannel<string>(1);
    const taken = channel.take();
    await channel.push('a');
    expect(await taken).toEqual({ done: false, value: 'a' });
  });

  it('rejects every waiter with the failure', async () => {
    const channel = new BoundedChannel<number>(1);
    const taker = channel.take();
    channel.fail(new Error('segment 3 failed'));
    await expect(taker).rejects.toThrow('segment 3 failed');
    await expect(channel.push(1)).rejects.toThrow('segment 3 failed');
  });

  it('rejects waits when their signal aborts', async () => {
    const channel = new BoundedChannel<number>(1);
    await channel.push(1);
    const controller = new AbortController();
    const push = channel.push(2, controller.signal);
    controller.abort(new Error('stopped'));
    await expect(push).rejects.toThrow('stopped');
    expect(channel.size).toBe(1);
  });

  it('refuses a capacity below one', () => {
    expect(() => new BoundedChannel(0)).toThrow(/capacity/);
  });
});
