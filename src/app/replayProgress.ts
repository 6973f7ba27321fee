import type { ReplayConfig } from './replayConfig.js';

export interface ReplayProgressOptions {
  replayId: string;
  mode: ReplayConfig['progress'];
  out: NodeJS.WritableStream;
  now: () => number;
  /** Rows written by earlier runs of the replay (a resumed one counts on from there). */
  rows?: number;
  /** How often a JSON line is written (ms). Default 10 s. */
  everyMs?: number;
}

/**
 * The replay's progress: rows, MB written, rate and ETA. On a terminal one line rewritten in
 * place (at most every 200 ms); otherwise a JSON line every `everyMs` (for log collectors), and
 * one at the end; `none` writes nothing.
 */
export class ReplayProgressReporter {
  private rowCount: number;
  private bytes = 0;
  private segments = 0;
  private expected: number | undefined;
  private readonly startedAt: number;
  private readonly startRows: number;
  private lastAt = 0;

  constructor(private readonly o: ReplayProgressOptions) {
    this.rowCount = o.rows ?? 0;
    this.startRows = this.rowCount;
    this.startedAt = o.now();
  }

  /** The rows the source holds, when known (an export's item count, a table's ItemCount). */
  expect(rows: number | undefined): void {
    this.expected = rows;
  }

  rows(n: number): void {
    this.rowCount += n;
    this.tick(false);
  }

  segment(bytes: number): void {
    this.segments++;
    this.bytes += bytes;
    this.tick(false);
  }

  finish(): void {
    this.tick(true);
    if (this.o.mode === 'tty') this.o.out.write('\n');
  }

  private tick(force: boolean): void {
    if (this.o.mode === 'none') return;
    const now = this.o.now();
    const every = this.o.mode === 'tty' ? 200 : (this.o.everyMs ?? 10_000);
    if (!force && now - this.lastAt < every) return;
    this.lastAt = now;
    const seconds = Math.max((now - this.startedAt) / 1000, 1e-3);
    const rate = (this.rowCount - this.startRows) / seconds;
    const left = this.expected === undefined ? undefined : Math.max(this.expected - this.rowCount, 0);
    const eta = left === undefined || rate <= 0 ? undefined : Math.round(left / rate);
    const mb = this.bytes / (1024 * 1024);
    if (this.o.mode === 'tty') {
      const of = this.expected === undefined ? '' : ` of ~${this.expected}`;
      this.o.out.write(
        `\rreplay ${this.o.replayId}: ${this.rowCount}${of} rows, ${mb.toFixed(1)} MB in ${this.segments} segment(s), ${Math.round(rate)} rows/s${eta === undefined ? '' : `, ETA ${eta} s`}   `,
      );
    } else {
      this.o.out.write(
        `${JSON.stringify({
          event: 'replay-progress',
          replayId: this.o.replayId,
          rows: this.rowCount,
          expectedRows: this.expected ?? null,
          segments: this.segments,
          megabytes: Number(mb.toFixed(3)),
          rowsPerSecond: Math.round(rate),
          etaSeconds: eta ?? null,
        })}\n`,
      );
    }
  }
}
