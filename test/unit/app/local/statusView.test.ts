import { describe, expect, it } from 'vitest';
import {
  fitToWidth,
  formatElapsed,
  formatStatusLine,
  type StatusSample,
  StatusView,
} from '../../../../src/app/local/statusView.js';

const sample = (
  over: Partial<StatusSample> = {},
  metrics: Partial<StatusSample['metrics']> = {},
): StatusSample => ({
  atMs: 10_000,
  elapsedMs: 10_000,
  produced: 2_000,
  producerErrors: 0,
  ...over,
  metrics: {
    recordsRead: 1_900,
    recordsWritten: 1_500,
    segmentsCommitted: 3,
    windowsSealed: 1,
    bufferedWindows: 2,
    bufferedBytes: 1_250_000,
    maxBehindSeconds: 42.4,
    gaps: 0,
    stalledShards: 0,
    ...metrics,
  },
});

describe('formatStatusLine', () => {
  it('shows the counts, rates since the start, lag, windows and buffer', () => {
    expect(formatStatusLine(sample())).toBe(
      '10s | produced 2,000 (200/s) | read 190/s | lag 42s | committed 1,500 in 3 segments | windows 2 open, 1 sealed | buffer 1.3 MB',
    );
  });

  it('takes rates over the time since the previous sample', () => {
    const before = sample({ atMs: 8_000, elapsedMs: 8_000, produced: 1_600 }, { recordsRead: 1_500 });
    const line = formatStatusLine(sample(), before);
    expect(line).toContain('produced 2,000 (200/s)');
    expect(line).toContain('read 200/s');
  });

  it('flags write errors, gaps and stalled shards', () => {
    const line = formatStatusLine(sample({ producerErrors: 3 }, { gaps: 1, stalledShards: 2 }));
    expect(line.endsWith(' | write errors 3 | GAPS 1 | STALLED 2')).toBe(true);
  });
});

describe('formatElapsed and fitToWidth', () => {
  it('formats elapsed time', () => {
    expect(formatElapsed(9_400)).toBe('9s');
    expect(formatElapsed(75_000)).toBe('1m15s');
    expect(formatElapsed(3_725_000)).toBe('1h02m05s');
  });

  it('cuts lines to the terminal width', () => {
    expect(fitToWidth('abcdef', 10)).toBe('abcdef');
    expect(fitToWidth('abcdefghijkl', 8)).toBe('abcdef…');
    expect(fitToWidth('abcdefghijkl', undefined)).toBe('abcdefghijkl');
  });
});

class FakeOutput {
  text = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 200,
  ) {}
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

describe('StatusView', () => {
  it('rewrites one line in place on a terminal, and keeps the last one when stopped', async () => {
    const output = new FakeOutput(true);
    let produced = 0;
    const view = new StatusView({
      output,
      sample: async () => {
        produced += 100;
        return sample({ produced });
      },
    });
    expect(view.intervalMs).toBe(2_000);
    await view.tick();
    await view.tick();
    view.print('a message');
    await view.tick();
    view.stop();
    await view.tick(); // after stop: nothing more
    const parts = output.text.split('\r\x1b[2K');
    expect(parts[0]).toBe('');
    expect(parts[1]).toMatch(/^10s \| produced 100 /);
    expect(parts[2]).toMatch(/^10s \| produced 200 /);
    expect(parts[3]).toBe('a message\n'); // print() cleared the status line and wrote in its place
    expect(parts[4]).toMatch(/^10s \| produced 300 .*MB\n$/); // stop() ended the line
    expect(parts).toHaveLength(5);
    expect(output.text).not.toContain('\x1b[2K\n'); // no blank status lines
  });

  it('prints whole lines, every 5 s by default, when not on a terminal', async () => {
    const output = new FakeOutput(false);
    const view = new StatusView({ output, sample: async () => sample() });
    expect(view.intervalMs).toBe(5_000);
    await view.tick();
    view.print('note');
    await view.tick();
    view.stop();
    expect(output.text).not.toContain('\r');
    expect(output.text.split('\n')).toEqual([
      expect.stringMatching(/^10s \| produced/),
      'note',
      expect.stringMatching(/^10s \| produced/),
      '',
    ]);
  });

  it('cuts the line to the terminal width', async () => {
    const output = new FakeOutput(true, 40);
    const view = new StatusView({ output, sample: async () => sample() });
    await view.tick();
    expect(output.text.replace('\r\x1b[2K', '')).toHaveLength(39);
  });
});
