/**
 * Samples process memory and the committer's buffered bytes every `intervalMs` (a timer), and on
 * demand (`observe`, called right after rows enter the buffers, so the buffered peak is exact even
 * while the event loop is busy encoding and timers are late).
 *
 * Peak RSS is also read from the kernel's high-water mark (getrusage maxrss), which sees peaks
 * between samples; the sampled maxima of heapUsed / external / arrayBuffers say what it was made of.
 */
export interface MemoryPeaks {
  samples: number;
  /** Kernel high-water mark of RSS since process start (bytes). */
  maxRssBytes: number;
  /** Largest sampled RSS. */
  sampledRssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  bufferedBytes: number;
  /** Largest gap between timer samples: how long the event loop was blocked at worst. */
  maxSampleGapMs: number;
  /** Timer samples, one per second: [seconds since start, rss, buffered]. */
  timeline: [number, number, number][];
}

export class MemorySampler {
  private readonly peaks: Omit<MemoryPeaks, 'maxRssBytes'> = {
    samples: 0,
    sampledRssBytes: 0,
    heapUsedBytes: 0,
    externalBytes: 0,
    arrayBuffersBytes: 0,
    bufferedBytes: 0,
    maxSampleGapMs: 0,
    timeline: [],
  };
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private readonly startedAt = performance.now();
  private nextTimelineAt = 0;

  constructor(
    private readonly buffered: () => number,
    private readonly intervalMs = 20,
  ) {}

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): MemoryPeaks {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    return { ...this.peaks, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
  }

  /** Cheap: buffered bytes and RSS only. */
  observe(): void {
    const b = this.buffered();
    if (b > this.peaks.bufferedBytes) this.peaks.bufferedBytes = b;
    const rss = process.memoryUsage.rss();
    if (rss > this.peaks.sampledRssBytes) this.peaks.sampledRssBytes = rss;
  }

  private sample(): void {
    const now = performance.now();
    this.peaks.maxSampleGapMs = Math.max(this.peaks.maxSampleGapMs, now - this.last);
    this.last = now;
    const m = process.memoryUsage();
    const p = this.peaks;
    p.samples++;
    p.sampledRssBytes = Math.max(p.sampledRssBytes, m.rss);
    p.heapUsedBytes = Math.max(p.heapUsedBytes, m.heapUsed);
    p.externalBytes = Math.max(p.externalBytes, m.external);
    p.arrayBuffersBytes = Math.max(p.arrayBuffersBytes, m.arrayBuffers);
    const b = this.buffered();
    p.bufferedBytes = Math.max(p.bufferedBytes, b);
    const t = (now - this.startedAt) / 1000;
    if (t >= this.nextTimelineAt) {
      p.timeline.push([Math.round(t), m.rss, b]);
      this.nextTimelineAt = Math.floor(t) + 1;
    }
  }
}
