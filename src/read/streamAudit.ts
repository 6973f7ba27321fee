import type { Violation } from '../changelog/invariants.js';
import { isoTime, windowStartOf } from '../changelog/layout.js';
import type { Manifest, ManifestGap } from '../changelog/manifest.js';
import {
  compareSequenceNumbers,
  normalizeSequenceNumber,
  TRIM_HORIZON,
} from '../changelog/sequenceNumber.js';
import type { ShardGraph } from '../coordination/shardGraph.js';
import { formatDuration } from '../support/duration.js';
import {
  type AuditRecord,
  canonicalKeys,
  type ReadSpan,
  type ShardReadPlan,
  StreamAuditReader,
  type StreamAuditReaderOptions,
} from './streamAuditReader.js';

/*
 * `verify --stream`: re-reads what the stream still retains and proves that the sealed manifests
 * of the checked range hold it exactly once. The verifier feeds this class every row of every
 * segment it reads (event_id, sequence number, op, keys), every shard entry and every gap; then
 * `run` reads the stream (streamAuditReader.ts) and matches record by record.
 *
 * WHICH RECORDS MUST BE IN A SEALED MANIFEST OF THE RANGE. Let L be the last sealed window in the
 * range, E its end, G the lateness grace (default 15 min), and for each shard its chain: the
 * shard's segment entries in the range, from the afterSequenceNumber of the first (the chain's
 * start) to the lastSequenceNumber of the last (the chain's end). A retained record (sequence s,
 * event time t) of shard S must be in exactly one sealed manifest of the range, unless a gap
 * listed in a manifest of the range covers it, when ANY of these holds:
 *
 *   (1) chain:  start < s <= end of S's chain. A shard's segments are committed in sequence order,
 *       each starting after the checkpoint the previous one left, and a shard's windows never go
 *       backwards, so everything between the chain's ends was committed into the range.
 *   (2) parent: s is after S's chain (or S has no segment in the range and t >= the range's first
 *       window start), and a descendant of S (child, grandchild, ...) has a segment in the range.
 *       A child is read only after its parents' SHARD_END is committed, so all of S was committed
 *       before the child's first segment, into windows no later than it.
 *   (3) time:   s is after S's chain (or S has no segment in the range), and the range's first
 *       window start <= t <= E - G. A record is routed to its own event-time window or a later
 *       one; the sealer closes L only once every read shard is past E (plus the allowed
 *       lateness), so a record older than E - G is in the range unless the pipeline never read
 *       its shard (the silent loss this rule is for) or took longer than G to commit it (a late
 *       record of a shard that was not yet leased; raise --late-grace if that is expected).
 *
 * Records before the chain's start are in earlier windows; records after the chain's end that
 * none of the rules covers (newer than E - G, or before the range) may be buffered, in a later
 * window, or in an earlier one: they are counted as "not checked". Records whose own window's
 * manifest could not be read, or inside a segment whose file could not be read, are not checked
 * either (the verifier already reports those). Event times are taken as non-decreasing within a
 * shard, as the watermark does: a shard is read until its chain's end and, for rule (3), until a
 * record newer than E - G.
 *
 * The other direction: a manifest row of shard S whose sequence number lies in a stretch the
 * audit read (from its start position, or from the trim horizon, to where it stopped, or to the
 * shard's end) but that the stream does not hold is `stream-record-unknown`. Rows before the
 * stream's trim horizon (or of shards the stream no longer lists) are "not auditable".
 */

/** The reader's options (rates, concurrency, clients), plus what the audit itself needs. */
export interface StreamAuditOptions extends StreamAuditReaderOptions {
  /** Read this stream instead of the ones the manifests name. */
  streamArn?: string;
  /** G above: records newer than the last sealed window's end minus this are not held to rule (3). */
  lateGraceMs?: number;
}

export const DEFAULT_LATE_GRACE_MS = 15 * 60_000;

/** What `verify --stream` read and matched. */
export interface StreamAuditReport {
  /** The streams read (from the manifests, or --stream-arn). */
  streamArns: string[];
  /** Streams that no longer exist: nothing of theirs could be audited. */
  streamsNotFound: string[];
  shardsRead: number;
  getRecordsCalls: number;
  /** Stream records read. */
  recordsRead: number;
  /** Records the rules say must be in the range (see streamAudit.ts). */
  recordsChecked: number;
  /** Records found in exactly one sealed manifest row with the same event_id, op and keys. */
  recordsMatched: number;
  recordsMissing: number;
  recordsDuplicated: number;
  recordsMismatched: number;
  /** Records a listed gap covers (and no manifest holds). */
  recordsInGaps: number;
  /** Records read that no rule covers and no manifest of the range holds (e.g. after the range). */
  recordsNotChecked: number;
  /** Manifest rows the stream no longer holds (trimmed, or their shard is gone). */
  rowsNotAuditable: number;
  /** Manifest rows the stream does not hold where the audit read it. */
  rowsUnknown: number;
  /** E - G: records up to this event time were held to rule (3). */
  timeRuleThrough?: string;
}

interface RowRef {
  eventId: string;
  op: string;
  keys: string;
  segment: number;
}

interface Chain {
  /** The first entry's afterSequenceNumber (TRIM_HORIZON or digits). */
  start: string;
  first: string;
  end: string;
}

export interface SegmentRow {
  shardId: string;
  sequenceNumber: string;
  eventId: string;
  op: string;
  keys: string;
}

interface ShardEntryInfo {
  after: string;
  first: string;
  last: string;
}

const MAX_LISTED = 20;
const cmp = compareSequenceNumbers;

interface Run {
  kind: 'stream-record-missing' | 'stream-record-duplicated' | 'stream-record-unknown';
  /** Records of one run share it (the reason, or the segments). */
  tag: string;
  first: string;
  last: string;
  count: number;
  firstTimeMs: number | undefined;
  lastTimeMs: number | undefined;
  describe: (range: string) => string;
}

export class StreamAudit {
  private readonly rows = new Map<string, Map<string, RowRef | RowRef[]>>();
  private readonly segments: { key: string; window: string }[] = [];
  private readonly entries = new Map<string, ShardEntryInfo[]>();
  private readonly gaps = new Map<string, ManifestGap[]>();
  private readonly unreadable = new Map<string, { first: string; last: string }[]>();
  private readonly invalidWindows = new Set<number>();
  private readonly streamArns = new Set<string>();
  private windowMs: number | undefined;
  private firstStartMs = Number.POSITIVE_INFINITY;
  private lastEndMs = Number.NEGATIVE_INFINITY;
  private readonly violations: Violation[] = [];
  private report!: StreamAuditReport;

  constructor(private readonly options: StreamAuditOptions) {}

  /** A valid manifest of the range (its window and stream). */
  addManifest(manifest: Manifest): void {
    const start = Date.parse(manifest.window.start);
    const end = Date.parse(manifest.window.end);
    this.windowMs ??= end - start;
    this.firstStartMs = Math.min(this.firstStartMs, start);
    this.lastEndMs = Math.max(this.lastEndMs, end);
    this.streamArns.add(manifest.streamArn);
    for (const segment of manifest.segments)
      if (segment.streamArn !== undefined) this.streamArns.add(segment.streamArn);
    for (const gap of manifest.gaps) {
      const list = this.gaps.get(gap.shardId) ?? [];
      this.gaps.set(gap.shardId, list);
      list.push(gap);
    }
    for (const segment of manifest.segments) {
      for (const s of segment.shards) {
        const list = this.entries.get(s.shardId) ?? [];
        this.entries.set(s.shardId, list);
        list.push({ after: s.afterSequenceNumber, first: s.firstSequenceNumber, last: s.lastSequenceNumber });
      }
    }
  }

  /** A window whose manifest could not be read: its records are not checked. */
  addInvalidWindow(windowStartMs: number): void {
    this.invalidWindows.add(windowStartMs);
  }

  /** A listed segment whose rows could not be read: records in its shard ranges are not checked. */
  addUnreadableSegment(
    shards: readonly { shardId: string; firstSequenceNumber: string; lastSequenceNumber: string }[],
  ) {
    for (const s of shards) {
      const list = this.unreadable.get(s.shardId) ?? [];
      this.unreadable.set(s.shardId, list);
      list.push({ first: s.firstSequenceNumber, last: s.lastSequenceNumber });
    }
  }

  /** The rows of a segment read in full. */
  addSegmentRows(key: string, window: string, rows: readonly SegmentRow[]): void {
    const segment = this.segments.push({ key, window }) - 1;
    for (const row of rows) {
      let shard = this.rows.get(row.shardId);
      if (shard === undefined) {
        shard = new Map();
        this.rows.set(row.shardId, shard);
      }
      const seq = normalizeSequenceNumber(row.sequenceNumber);
      const ref: RowRef = { eventId: row.eventId, op: row.op, keys: row.keys, segment };
      const existing = shard.get(seq);
      if (existing === undefined) shard.set(seq, ref);
      else if (Array.isArray(existing)) existing.push(ref);
      else shard.set(seq, [existing, ref]);
    }
  }

  private chains(): Map<string, Chain> {
    const chains = new Map<string, Chain>();
    for (const [shardId, list] of this.entries) {
      let chain: Chain | undefined;
      for (const e of list) {
        if (chain === undefined) chain = { start: e.after, first: e.first, end: e.last };
        else {
          if (cmp(e.first, chain.first) < 0) chain = { ...chain, start: e.after, first: e.first };
          if (cmp(e.last, chain.end) > 0) chain.end = e.last;
        }
      }
      if (chain) chains.set(shardId, chain);
    }
    return chains;
  }

  /** Reads the stream(s) and matches; returns the report and the violations found. */
  async run(signal?: AbortSignal): Promise<{ report: StreamAuditReport; violations: Violation[] }> {
    const o = this.options;
    const grace = o.lateGraceMs ?? DEFAULT_LATE_GRACE_MS;
    const arns = o.streamArn !== undefined ? [o.streamArn] : [...this.streamArns].sort();
    const haveRange = this.windowMs !== undefined;
    const timeThrough = this.lastEndMs - grace;
    this.report = {
      streamArns: arns,
      streamsNotFound: [],
      shardsRead: 0,
      getRecordsCalls: 0,
      recordsRead: 0,
      recordsChecked: 0,
      recordsMatched: 0,
      recordsMissing: 0,
      recordsDuplicated: 0,
      recordsMismatched: 0,
      recordsInGaps: 0,
      recordsNotChecked: 0,
      rowsNotAuditable: 0,
      rowsUnknown: 0,
      ...(haveRange && timeThrough >= this.firstStartMs && { timeRuleThrough: isoTime(timeThrough) }),
    };
    if (!haveRange) return { report: this.report, violations: this.violations };

    const reader = new StreamAuditReader(o);
    const chains = this.chains();
    const audited = new Set<string>();
    for (const arn of arns) {
      const graph = await reader.listShards(arn, signal);
      if (graph === undefined) {
        this.report.streamsNotFound.push(arn);
        continue;
      }
      const shards = new Map<string, ShardCheck>();
      for (const info of graph.shards()) {
        const id = info.shardId;
        if (audited.has(id)) continue;
        const chain = chains.get(id);
        const child = this.descendantWithChain(graph, id, chains);
        // Without a chain or a descendant in the range, only rule (3) can ask for records.
        if (chain === undefined && child === undefined && timeThrough < this.firstStartMs) continue;
        audited.add(id);
        shards.set(id, new ShardCheck(this, id, chain, child, timeThrough, grace));
      }
      const plans: ShardReadPlan[] = [...shards.values()].map((check) => ({
        shardId: check.shardId,
        closed: graph.isClosed(check.shardId) || graph.isClosing(check.shardId),
        ...(check.chain !== undefined &&
          check.chain.start !== TRIM_HORIZON && { afterSequenceNumber: check.chain.start }),
        onPage: (records) => check.page(records),
        needsMore: () => check.needsMore(),
      }));
      const outcomes = await reader.readShards(arn, plans, signal);
      for (const outcome of outcomes) {
        this.report.shardsRead++;
        shards.get(outcome.shardId)!.finish(outcome.spans);
      }
    }
    // Rows of shards no stream lists any more (or that were not read): trimmed.
    for (const [shardId, rows] of this.rows) {
      if (audited.has(shardId)) continue;
      for (const refs of rows.values()) this.report.rowsNotAuditable += Array.isArray(refs) ? refs.length : 1;
    }
    this.report.getRecordsCalls = reader.getRecordsCalls;
    // Shards are read concurrently: order the findings by shard and position for a stable report.
    const order = (v: Violation) => v.firstSequenceNumber;
    this.violations.sort(
      (a, b) =>
        compareText(a.shardId ?? '', b.shardId ?? '') ||
        (order(a) === undefined ? 1 : 0) - (order(b) === undefined ? 1 : 0) ||
        (order(a) !== undefined && order(b) !== undefined ? cmp(order(a)!, order(b)!) : 0),
    );
    return { report: this.report, violations: this.violations };
  }

  /** A descendant of `id` with segments in the range, if any (breadth first). */
  private descendantWithChain(graph: ShardGraph, id: string, chains: Map<string, Chain>): string | undefined {
    const queue = graph.childrenOf(id);
    const seen = new Set<string>();
    while (queue.length > 0) {
      const next = queue.shift()!;
      if (seen.has(next)) continue;
      seen.add(next);
      if (chains.has(next)) return next;
      queue.push(...graph.childrenOf(next));
    }
    return undefined;
  }

  // --- used by ShardCheck ---------------------------------------------------------------------

  get counts(): StreamAuditReport {
    return this.report;
  }

  get rangeFirstStartMs(): number {
    return this.firstStartMs;
  }

  get rangeLastEndMs(): number {
    return this.lastEndMs;
  }

  takeRows(shardId: string, sequenceNumber: string): RowRef[] | undefined {
    const shard = this.rows.get(shardId);
    if (shard === undefined) return undefined;
    const seq = normalizeSequenceNumber(sequenceNumber);
    const refs = shard.get(seq);
    if (refs === undefined) return undefined;
    shard.delete(seq);
    return Array.isArray(refs) ? refs : [refs];
  }

  remainingRows(shardId: string): [string, RowRef[]][] {
    const shard = this.rows.get(shardId);
    if (shard === undefined) return [];
    const out = [...shard].map(([seq, refs]): [string, RowRef[]] => [
      seq,
      Array.isArray(refs) ? refs : [refs],
    ]);
    this.rows.delete(shardId);
    return out.sort((a, b) => cmp(a[0], b[0]));
  }

  segment(index: number): { key: string; window: string } {
    return this.segments[index]!;
  }

  inGap(shardId: string, sequenceNumber: string): boolean {
    for (const gap of this.gaps.get(shardId) ?? []) {
      const afterOk =
        gap.afterSequenceNumber === TRIM_HORIZON || cmp(sequenceNumber, gap.afterSequenceNumber) > 0;
      const beforeOk =
        gap.resumedAtSequenceNumber === undefined || cmp(sequenceNumber, gap.resumedAtSequenceNumber) < 0;
      if (afterOk && beforeOk) return true;
    }
    return false;
  }

  notCheckable(shardId: string, sequenceNumber: string, eventTimeMs: number): boolean {
    if (this.invalidWindows.has(windowStartOf(eventTimeMs, this.windowMs!))) return true;
    for (const r of this.unreadable.get(shardId) ?? []) {
      if (cmp(sequenceNumber, r.first) >= 0 && cmp(sequenceNumber, r.last) <= 0) return true;
    }
    return false;
  }

  windowOf(eventTimeMs: number | undefined): string | undefined {
    return eventTimeMs === undefined ? undefined : isoTime(windowStartOf(eventTimeMs, this.windowMs!));
  }

  push(violation: Violation): void {
    this.violations.push(violation);
  }
}

type Reason = 'chain' | 'parent' | 'time';

/** The audit of one shard: fed page by page, finished with the spans the reader covered. */
class ShardCheck {
  private lastSeq: string | undefined;
  private lastTimeMs: number | undefined;
  private run: Run | undefined;
  private mismatches = 0;

  constructor(
    private readonly audit: StreamAudit,
    readonly shardId: string,
    readonly chain: Chain | undefined,
    private readonly child: string | undefined,
    private readonly timeThrough: number,
    private readonly graceMs: number,
  ) {}

  needsMore(): boolean {
    return this.chain !== undefined && (this.lastSeq === undefined || cmp(this.lastSeq, this.chain.end) < 0);
  }

  /** Matches one answer's records; false once nothing further can be required. */
  page(records: AuditRecord[]): boolean {
    for (const record of records) this.record(record);
    if (records.length > 0) {
      this.lastSeq = records.at(-1)!.sequenceNumber;
      this.lastTimeMs = records.at(-1)!.eventTimeMs;
    }
    if (this.child !== undefined || this.needsMore()) return true;
    return this.lastTimeMs === undefined || this.lastTimeMs <= this.timeThrough;
  }

  private reason(record: AuditRecord): Reason | undefined {
    const s = record.sequenceNumber;
    const chain = this.chain;
    if (chain !== undefined) {
      if (chain.start !== TRIM_HORIZON && cmp(s, chain.start) <= 0) return undefined;
      if (cmp(s, chain.end) <= 0) return 'chain';
    }
    const t = record.eventTimeMs;
    if (this.child !== undefined && (chain !== undefined || t >= this.audit.rangeFirstStartMs))
      return 'parent';
    if (t >= this.audit.rangeFirstStartMs && t <= this.timeThrough) return 'time';
    return undefined;
  }

  private record(record: AuditRecord): void {
    const c = this.audit.counts;
    c.recordsRead++;
    const refs = this.audit.takeRows(this.shardId, record.sequenceNumber);
    const checkable = !this.audit.notCheckable(this.shardId, record.sequenceNumber, record.eventTimeMs);
    const reason = checkable ? this.reason(record) : undefined;
    if (reason !== undefined) c.recordsChecked++;
    if (refs === undefined) {
      if (reason === undefined) {
        this.flush();
        c.recordsNotChecked++;
      } else if (this.audit.inGap(this.shardId, record.sequenceNumber)) {
        this.flush();
        c.recordsInGaps++;
      } else {
        c.recordsMissing++;
        this.extend('stream-record-missing', reason, record.sequenceNumber, record.eventTimeMs, (range) =>
          this.missingMessage(reason, range),
        );
      }
      return;
    }
    const differing = refs.filter((ref) => differs(ref, record) !== undefined);
    if (differing.length > 0) {
      c.recordsMismatched++;
      this.mismatch(record, differing);
    }
    if (refs.length > 1) {
      c.recordsDuplicated++;
      const where = refs.map((r) => this.audit.segment(r.segment));
      const tag = refs.map((r) => r.segment).join(',');
      this.extend(
        'stream-record-duplicated',
        tag,
        record.sequenceNumber,
        record.eventTimeMs,
        (range) =>
          `shard ${this.shardId}: ${range} each in ${refs.length} sealed segment rows: ${where
            .map((w) => `${w.key} (window ${w.window})`)
            .join(', ')}`,
      );
      return;
    }
    this.flush();
    if (differing.length === 0) c.recordsMatched++;
  }

  private missingMessage(reason: Reason, range: string): string {
    const chain = this.chain;
    const why =
      reason === 'chain'
        ? `though the shard's segments in the range run from after ${chain!.start} to ${chain!.end}`
        : reason === 'parent'
          ? `though its descendant shard ${this.child} has segments in the range (a child is read only after its parent is committed to its end)`
          : `though every record of the range older than ${isoTime(this.timeThrough)} (the last sealed window's end ${isoTime(this.audit.rangeLastEndMs)} minus the ${formatDuration(this.graceMs)} lateness grace) must be in a sealed manifest${chain === undefined ? '; the shard has no segment in the range' : `; the shard's segments in the range end at ${chain.end}`}`;
    return `shard ${this.shardId}: ${range} in no sealed manifest and in no listed gap, ${why}`;
  }

  private mismatch(record: AuditRecord, differing: RowRef[]): void {
    this.mismatches++;
    if (this.mismatches > MAX_LISTED) return;
    for (const ref of differing) {
      const at = this.audit.segment(ref.segment);
      const base = {
        kind: 'stream-record-mismatch' as const,
        shardId: this.shardId,
        key: at.key,
        window: at.window,
        firstSequenceNumber: record.sequenceNumber,
        lastSequenceNumber: record.sequenceNumber,
        records: 1,
      };
      this.audit.push({
        ...base,
        message: `shard ${this.shardId}, record ${record.sequenceNumber}: segment ${at.key} (window ${at.window}) has ${differs(ref, record)}`,
      });
    }
  }

  /** Adds a record to the current run of `kind`/`tag`, or starts a new run. */
  private extend(
    kind: Run['kind'],
    tag: string,
    sequenceNumber: string,
    timeMs: number | undefined,
    describe: (range: string) => string,
  ): void {
    const run = this.run;
    if (run !== undefined && run.kind === kind && run.tag === tag) {
      run.last = sequenceNumber;
      run.count++;
      run.lastTimeMs = timeMs;
      return;
    }
    this.flush();
    this.run = {
      kind,
      tag,
      first: sequenceNumber,
      last: sequenceNumber,
      count: 1,
      firstTimeMs: timeMs,
      lastTimeMs: timeMs,
      describe,
    };
  }

  private flush(): void {
    const run = this.run;
    if (run === undefined) return;
    this.run = undefined;
    const noun = run.kind === 'stream-record-unknown' ? 'manifest row' : 'stream record';
    const times =
      run.firstTimeMs === undefined
        ? ''
        : run.count === 1 || run.firstTimeMs === run.lastTimeMs
          ? `, event time ${isoTime(run.firstTimeMs)}`
          : `, event times ${isoTime(run.firstTimeMs)} .. ${isoTime(run.lastTimeMs!)}`;
    const range =
      run.count === 1
        ? `${noun} ${run.first}${times}, is`
        : `${run.count} ${noun}s from ${run.first} to ${run.last}${times}, are`;
    const window = this.audit.windowOf(run.firstTimeMs);
    this.audit.push({
      kind: run.kind,
      message: run.describe(range),
      shardId: this.shardId,
      ...(window !== undefined && { window }),
      firstSequenceNumber: run.first,
      lastSequenceNumber: run.last,
      records: run.count,
    });
  }

  /** After the shard was read: the rows it did not match, unknown where read, else not auditable. */
  finish(spans: ReadSpan[]): void {
    this.flush();
    const c = this.audit.counts;
    if (this.mismatches > MAX_LISTED) {
      this.audit.push({
        kind: 'stream-record-mismatch',
        shardId: this.shardId,
        message: `shard ${this.shardId}: ${this.mismatches - MAX_LISTED} more record(s) differ from their manifest rows`,
        records: this.mismatches - MAX_LISTED,
      });
    }
    for (const [seq, refs] of this.audit.remainingRows(this.shardId)) {
      if (!spans.some((span) => covers(span, seq))) {
        c.rowsNotAuditable += refs.length;
        this.flush();
        continue;
      }
      c.rowsUnknown += refs.length;
      const where = refs.map((r) => this.audit.segment(r.segment));
      this.extend('stream-record-unknown', '', seq, undefined, (range) => {
        const segments = [...new Set(where.map((w) => `${w.key} (window ${w.window})`))].join(', ');
        return `shard ${this.shardId}: ${range} not in the stream, though the audit read that part of the shard (e.g. in ${segments})`;
      });
    }
    this.flush();
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether a span covers a sequence number (see ReadSpan). */
function covers(span: ReadSpan, seq: string): boolean {
  if (span.afterSequenceNumber !== undefined) {
    if (cmp(seq, span.afterSequenceNumber) <= 0) return false;
  } else if (span.firstSequenceNumber === undefined || cmp(seq, span.firstSequenceNumber) < 0) {
    return false;
  }
  if (span.toEnd) return true;
  return span.lastSequenceNumber !== undefined && cmp(seq, span.lastSequenceNumber) <= 0;
}

/** What differs between a manifest row and the stream record, or undefined when nothing does. */
function differs(ref: RowRef, record: AuditRecord): string | undefined {
  const parts: string[] = [];
  if (ref.eventId !== record.eventId) parts.push(`event_id ${ref.eventId}, the stream ${record.eventId}`);
  if (ref.op !== record.op) parts.push(`op ${ref.op}, the stream ${record.op}`);
  if (ref.keys !== record.keys && !sameKeys(ref.keys, record.keys)) {
    parts.push(`keys ${ref.keys}, the stream ${record.keys}`);
  }
  return parts.length === 0 ? undefined : parts.join('; ');
}

function sameKeys(a: string, b: string): boolean {
  try {
    return canonicalKeys(a) === canonicalKeys(b);
  } catch {
    return false;
  }
}
