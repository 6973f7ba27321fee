import type { MetricsSnapshot } from '../metrics.js';

/*
 * The local stack's live status: one line every ~2 s, rewritten in place on a terminal, or a line
 * every ~5 s when the output is a pipe or a file (so a log of it stays readable).
 */

export interface StatusSample {
  /** performance.now() when taken. */
  atMs: number;
  /** Since the pipeline started. */
  elapsedMs: number;
  produced: number;
  producerErrors: number;
  metrics: Pick<
    MetricsSnapshot,
    | 'recordsRead'
    | 'recordsWritten'
    | 'segmentsCommitted'
    | 'windowsSealed'
    | 'bufferedWindows'
    | 'bufferedBytes'
    | 'maxBehindSeconds'
    | 'gaps'
    | 'stalledShards'
  >;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatCount(n: number): string {
  return integer.format(n);
}

/** `75_000` -> `1m15s`, `9_000` -> `9s`, `3_725_000` -> `1h02m05s`. */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(s).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

export function formatMegabytes(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

function perSecond(now: number, before: number, ms: number): string {
  if (ms <= 0) return '0/s';
  return `${formatCount(Math.max(0, ((now - before) * 1000) / ms))}/s`;
}

/**
 * One status line. Rates come from the previous sample (the first line has none, so its rates are
 * averages since the start).
 */
export function formatStatusLine(sample: StatusSample, previous?: StatusSample): string {
  const m = sample.metrics;
  const spanMs = previous ? sample.atMs - previous.atMs : sample.elapsedMs;
  const producedBefore = previous?.produced ?? 0;
  const readBefore = previous?.metrics.recordsRead ?? 0;
  const parts = [
    formatElapsed(sample.elapsedMs),
    `produced ${formatCount(sample.produced)} (${perSecond(sample.produced, producedBefore, spanMs)})`,
    `read ${perSecond(m.recordsRead, readBefore, spanMs)}`,
    `lag ${Math.round(m.maxBehindSeconds)}s`,
    `committed ${formatCount(m.recordsWritten)} in ${formatCount(m.segmentsCommitted)} segments`,
    `windows ${m.bufferedWindows} open, ${m.windowsSealed} sealed`,
    `buffer ${formatMegabytes(m.bufferedBytes)}`,
  ];
  if (sample.producerErrors > 0) parts.push(`write errors ${formatCount(sample.producerErrors)}`);
  if (m.gaps > 0) parts.push(`GAPS ${m.gaps}`);
  if (m.stalledShards > 0) parts.push(`STALLED ${m.stalledShards}`);
  return parts.join(' | ');
}

/** Cuts a line to the terminal width (a wrapped line cannot be rewritten with \r). */
export function fitToWidth(line: string, columns: number | undefined): string {
  if (columns === undefined || columns <= 0 || line.length < columns) return line;
  return `${line.slice(0, Math.max(0, columns - 2))}…`;
}

export interface StatusOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface StatusViewOptions {
  output: StatusOutput;
  sample: () => Promise<StatusSample>;
  /** Default: 2 s on a terminal, 5 s otherwise. */
  intervalMs?: number;
}

/** Prints the status line on a timer. `print` puts other text above it without garbling it. */
export class StatusView {
  private timer: NodeJS.Timeout | undefined;
  private previous: StatusSample | undefined;
  private lineShown = false;
  private ticking = false;
  private stopped = false;
  private readonly tty: boolean;

  constructor(private readonly options: StatusViewOptions) {
    this.tty = options.output.isTTY === true;
  }

  get intervalMs(): number {
    return this.options.intervalMs ?? (this.tty ? 2_000 : 5_000);
  }

  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /**
   * Stops the timer; on a terminal, the last status line stays and output continues below it.
   * True when that ended a status line (so the cursor is at the start of a fresh line).
   */
  stop(): boolean {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopped = true;
    if (this.tty && this.lineShown) {
      this.options.output.write('\n');
      this.lineShown = false;
      return true;
    }
    return false;
  }

  /** Writes text (ending with a newline) above the status line. */
  print(text: string): void {
    this.clearLine();
    this.options.output.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const sample = await this.options.sample();
      const line = formatStatusLine(sample, this.previous);
      this.previous = sample;
      if (this.stopped) return;
      if (this.tty) {
        this.options.output.write(`\r\x1b[2K${fitToWidth(line, this.options.output.columns)}`);
        this.lineShown = true;
      } else {
        this.options.output.write(`${line}\n`);
      }
    } finally {
      this.ticking = false;
    }
  }

  private clearLine(): void {
    if (this.tty && this.lineShown) {
      this.options.output.write('\r\x1b[2K');
      this.lineShown = false;
    }
  }
}
