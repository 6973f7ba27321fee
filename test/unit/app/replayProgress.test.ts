import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ReplayConfig } from '../../../src/app/replayConfig.js';
import { ReplayProgressReporter } from '../../../src/app/replayProgress.js';

function reporter(mode: ReplayConfig['progress'], rows = 0) {
  let now = 1_000_000;
  const out = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  const r = new ReplayProgressReporter({ replayId: 'r1', mode, out, now: () => now, rows, everyMs: 10_000 });
  return {
    r,
    advance: (ms: number) => {
      now += ms;
    },
    text: () => chunks.join(''),
  };
}

describe('ReplayProgressReporter', () => {
  it('writes a JSON line at most every everyMs and one at the end: rows, MB, rate, ETA', () => {
    const { r, advance, text } = reporter('json', 100);
    r.expect(1_100);
    advance(1_000);
    r.rows(50); // the first tick writes at once
    advance(2_000);
    r.rows(50); // within 10 s of the last line: nothing
    advance(10_000);
    r.segment(2 * 1024 * 1024);
    r.rows(100);
    r.finish();
    const lines = text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toEqual({
      event: 'replay-progress',
      replayId: 'r1',
      rows: 150,
      expectedRows: 1_100,
      segments: 0,
      megabytes: 0,
      rowsPerSecond: 50,
      etaSeconds: 19,
    });
    // Rates count this run's rows only (100 came from an earlier run of the replay).
    expect(lines[2]).toMatchObject({
      rows: 300,
      segments: 1,
      megabytes: 2,
      rowsPerSecond: 15,
      etaSeconds: 52,
    });
  });

  it('on a terminal rewrites one line in place and ends it; `none` writes nothing', () => {
    const tty = reporter('tty');
    tty.advance(1_000);
    tty.r.rows(10);
    tty.advance(500);
    tty.r.rows(10);
    tty.r.finish();
    expect(tty.text()).toMatch(
      /^\rreplay r1: 10 rows, 0\.0 MB in 0 segment\(s\), 10 rows\/s {3}\rreplay r1: 20 rows/,
    );
    expect(tty.text().endsWith('\n')).toBe(true);
    const none = reporter('none');
    none.r.rows(5);
    none.r.finish();
    expect(none.text()).toBe('');
  });
});
