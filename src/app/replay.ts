import { createHash } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { AttributeMap } from '../changelog/attributeValueJson.js';
import { keySchemaFromTable } from '../changelog/keySchema.js';
import { isoTime, symlinkObjectKey, windowId, windowStartOf } from '../changelog/layout.js';
import {
  isSnapshotSegment,
  type Manifest,
  type ManifestGap,
  type SegmentSource,
} from '../changelog/manifest.js';
import { TRIM_HORIZON } from '../changelog/sequenceNumber.js';
import type { SnapshotRow } from '../changelog/snapshotRows.js';
import { symlinkManifestBody } from '../changelog/symlinkManifest.js';
import { DEFAULTS } from '../coordination/config.js';
import { type DynamoExport, openExport, readExportFileChunks } from '../coordination/dynamoExport.js';
import { startExport } from '../coordination/exportStarter.js';
import { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { publishManifestVersion } from '../coordination/manifestPublisher.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import { openObjectStore } from '../coordination/openObjectStore.js';
import { RegistryStore, type WindowState } from '../coordination/registryStore.js';
import { ReplayStateStore } from '../coordination/replayStateStore.js';
import { describeTableStream } from '../coordination/shardDiscovery.js';
import {
  estimateScan,
  parseScanProgress,
  scanTable,
  serializeScanProgress,
} from '../coordination/tableScan.js';
import {
  type GapFillOf,
  type ReplaySegment,
  ReplaySegmentWriter,
  replayedManifest,
} from '../ingest/replayWriter.js';
import { listWindows, readManifest } from '../read/manifestReader.js';
import { ChangelogError, ConfigError } from '../support/errors.js';
import { sleep } from '../support/retry.js';
import type { ReplayConfig, ReplayResult } from './replayConfig.js';

export type { ReplayResult };

import { ReplayProgressReporter } from './replayProgress.js';
import { runRebuild } from './replayRebuild.js';

export interface ReplayIo {
  stdout: NodeJS.WritableStream;
  /** Progress lines and what the replay did. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Opens an object store (the destination, an export's bucket); tests pass in-memory ones. */
  openStore?: (url: string) => ObjectStore;
  dynamodb?: DynamoDBClient;
  /** rebuild: the stream's client (GetShardIterator; GetRecords goes through RawGetRecordsClient). */
  streams?: DynamoDBStreamsClient;
  now?: () => number;
  signal?: AbortSignal;
  /** How often the sealed state is looked at again while waiting for a window to be sealed. */
  sealPollMs?: number;
}

/**
 * A replay's progress, saved in the lease table (coordination/replayStateStore.ts) after every
 * segment it writes, so the same command continues where a crash or Ctrl-C stopped it and
 * writes the same segments: segment keys are numbered parts, and what a part holds follows from
 * the saved reading position (the scan's progress, or the export file and line).
 */
interface ReplayState {
  formatVersion: 1;
  replayId: string;
  mode: ReplayConfig['mode'];
  source: ReplayConfig['source'];
  table: string;
  /** The time the rows say: the scan's start less a margin, the export's time or period end. Fixed at the start. */
  snapshotTimeMs: number;
  /** A scan's start (the provenance the manifest records). */
  scanStartedAtMs?: number | undefined;
  /** When the replay began: the time its gap fills say (`filledAt`). */
  startedAtMs: number;
  /** The window the rows go into. */
  windowStartMs: number;
  /** fill-gaps: the windows whose gaps the replay marks filled, with the gaps. */
  fills: { windowStartMs: number; gaps: Pick<ManifestGap, 'shardId' | 'afterSequenceNumber'>[] }[];
  exportUrl?: string | undefined;
  exportArn?: string | undefined;
  scanProgress?: string | undefined;
  /** Export: the data file and the lines of it consumed by the segments written. */
  file: number;
  line: number;
  readDone: boolean;
  nextPart: number;
  segments: ReplaySegment[];
  published: { windowStartMs: number; version: number }[];
  done: boolean;
}

const EXPORT_MARKER = '/AWSDynamoDB/';

/**
 * `dynamodb-changelog replay`: writes SNAPSHOT or NET rows (changelog/snapshotRows.ts) read from a
 * scan of the table or a DynamoDB export into sealed windows, as a new manifest version of each
 * window it touches (publishManifestVersion: beside the old versions, never over them), under the
 * table's rewriter lease. See README "Backfill and repair".
 */
export async function runReplay(config: ReplayConfig, io: ReplayIo): Promise<ReplayResult> {
  const now = io.now ?? Date.now;
  const signal = io.signal;
  const open =
    io.openStore ??
    ((url: string) => openObjectStore(url, { s3: { forcePathStyle: config.destination.s3ForcePathStyle } }));
  const store = open(config.destination.url);
  const dynamodb = io.dynamodb ?? new DynamoDBClient({ maxAttempts: 1 });
  const say = (line: string) => io.stderr.write(`${line}\n`);
  if (config.source === 'stream' && config.mode !== 'rebuild') {
    throw new ConfigError([
      `--source stream with --mode ${config.mode}: a gap is what the stream trimmed before it was read, so the stream cannot fill it; use --source export (an incremental export of the gap's period)`,
    ]);
  }
  const registry = new RegistryStore({ client: dynamodb, tableName: config.leaseTable, table: config.table });
  const windows = await registry.getState(signal);
  if (windows === undefined) {
    throw new ChangelogError(
      `replay: table ${config.table} has no changelog in lease table ${config.leaseTable}: \`run\` has not started (or another lease table was meant); start the daemon, let it seal a window, then replay`,
      { retriable: false },
    );
  }
  const described = await describeTableStream(dynamodb, config.table, { signal });
  const keySchema = keySchemaFromTable(described.description ?? {});
  if (config.mode === 'rebuild') {
    const streams = io.streams ?? new DynamoDBStreamsClient({ maxAttempts: 1 });
    const raw = new RawGetRecordsClient(streams);
    try {
      return await runRebuild({
        config,
        store,
        registry,
        windows,
        keySchema,
        streams,
        raw,
        say,
        now,
        signal,
        replaceSymlink: (manifest, windowStartMs) =>
          replaceSymlink(store, config, manifest, windowStartMs, signal),
      });
    } finally {
      raw.destroy();
    }
  }
  const exportSource = config.source === 'export' ? await exportOf(config, open, signal) : undefined;

  if (config.dryRun) {
    await printPlan(config, { windows, dynamodb, exp: exportSource?.exp, store, now, say, signal });
    return {
      replayId: config.replayId,
      rows: 0,
      segments: 0,
      published: [],
      alreadyDone: false,
      dryRun: true,
    };
  }

  const stateStore = new ReplayStateStore({ registry, replayId: config.replayId });
  let held = await stateStore.acquire(signal);
  const stop = new AbortController();
  const run = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
  let heartbeatError: unknown;
  // The heartbeat keeps the lease alive between saves (a long scan page, a wait for sealing).
  const heartbeat = setInterval(() => {
    stateStore.renew(held, run).then(
      (renewed) => {
        held = renewed;
      },
      (error: unknown) => {
        heartbeatError = error;
        stop.abort(error);
      },
    );
  }, DEFAULTS.lease.failoverMs / 3);
  try {
    const saved = await stateStore.load(run);
    let state = saved === undefined ? undefined : parseState(saved, config);
    if (state?.done) {
      say(
        `replay ${config.replayId}: already done (published ${state.published.map((p) => `window ${isoTime(p.windowStartMs)} version ${p.version}`).join(', ')}); nothing to do`,
      );
      return result(config, state, true);
    }
    const save = async (next: ReplayState) => {
      held = await stateStore.save(held, JSON.stringify(next), run);
      state = next;
    };
    if (state === undefined) {
      state = await startState(config, {
        windows,
        dynamodb,
        open,
        exp: exportSource?.exp,
        store,
        now,
        say,
        signal: run,
      });
      await save(state);
      say(
        `replay ${config.replayId}: ${config.mode} from ${config.source}${state.exportArn ? ` ${state.exportArn}` : ''}: rows at ${isoTime(state.snapshotTimeMs)} into window ${isoTime(state.windowStartMs)}`,
      );
    } else {
      say(
        `replay ${config.replayId}: resuming (${state.segments.length} segment(s), ${sum(state.segments)} row(s) written so far)`,
      );
    }
    const reporter = new ReplayProgressReporter({
      replayId: config.replayId,
      mode: config.progress,
      out: io.stderr,
      now,
      rows: sum(state.segments),
    });
    const writer = new ReplaySegmentWriter({
      store,
      table: config.table,
      keySchema,
      replayId: config.replayId,
      windowStartMs: state.windowStartMs,
      flushBytes: config.maxSegmentBytes,
      nextPart: state.nextPart,
    });
    const flushed = async (position: Partial<ReplayState>) => {
      const segment = await writer.flush(run);
      const current = state!;
      const next: ReplayState = {
        ...current,
        ...position,
        nextPart: writer.nextPart,
        segments: segment === undefined ? current.segments : [...current.segments, segment],
      };
      await save(next);
      if (segment) reporter.segment(segment.bytes);
    };
    if (!state.readDone) {
      if (config.source === 'scan') {
        const resume = state.scanProgress === undefined ? undefined : parseScanProgress(state.scanProgress);
        const estimate = await estimateScan(dynamodb, config.table, { signal: run }).catch(() => undefined);
        reporter.expect(estimate?.itemCount);
        const pages = scanTable(dynamodb, {
          table: config.table,
          segments: config.segments,
          ...(config.maxRcuPerSecond !== undefined && { maxRcuPerSecond: config.maxRcuPerSecond }),
          ...(resume !== undefined && { resume }),
          signal: run,
        });
        const time = state.snapshotTimeMs;
        for await (const page of pages) {
          // The SDK's AttributeValue type also admits an unknown member; the encoder refuses one.
          const items = page.items as AttributeMap[];
          writer.append(
            items.map((item): SnapshotRow => ({ op: 'SNAPSHOT', newImage: item, eventTimeMs: time })),
          );
          reporter.rows(page.items.length);
          if (writer.full) await flushed({ scanProgress: serializeScanProgress(page.progress) });
        }
        await flushed({ readDone: true, scanProgress: undefined });
      } else {
        // --start-export: the export this replay started (its URL is in the state, also on resume).
        const source = exportSource ?? (await openExportAt(state.exportUrl!, config, open, run));
        const exp = source.exp;
        reporter.expect(exp.totalItems);
        const time = state.snapshotTimeMs;
        const kind = exp.summary.exportType === 'INCREMENTAL_EXPORT' ? 'incremental' : 'full';
        for (let file = state.file; file < exp.files.length; file++) {
          const data = exp.files[file]!;
          const skipLines = file === state.file ? state.line : 0;
          let line = skipLines;
          for await (const batch of readExportFileChunks(source.store, exp, data, {
            signal: run,
            skipLines,
          })) {
            let at = 0;
            while (at < batch.bytes.length) {
              // Stops after the line that fills the writer: flushes fall on the same lines as
              // appending one line at a time, so a resumed replay writes the same segments.
              const appended = writer.appendExportLines(batch.bytes, at, batch.bytes.length, kind, time, {
                file: data.key,
                firstLine: line + 1,
              });
              at = appended.end;
              line += appended.lines;
              reporter.rows(appended.lines);
              if (writer.full) await flushed({ file, line });
            }
          }
        }
        await flushed({ readDone: true, file: exp.files.length, line: 0 });
      }
    }
    reporter.finish();
    state = await publish(config, state!, {
      registry,
      store,
      say,
      now,
      signal: run,
      save,
      pollMs: io.sealPollMs ?? 5_000,
    });
    say(
      `replay ${config.replayId}: done: ${sum(state.segments)} row(s) in ${state.segments.length} segment(s); published ${state.published.map((p) => `window ${isoTime(p.windowStartMs)} version ${p.version}`).join(', ')}`,
    );
    return result(config, state, false);
  } catch (error) {
    throw heartbeatError ?? error;
  } finally {
    clearInterval(heartbeat);
    await stateStore.release(held).catch(() => undefined);
  }
}

function result(config: ReplayConfig, state: ReplayState, alreadyDone: boolean): ReplayResult {
  return {
    replayId: config.replayId,
    rows: sum(state.segments),
    segments: state.segments.length,
    published: state.published,
    alreadyDone,
    dryRun: false,
  };
}

function sum(segments: readonly ReplaySegment[]): number {
  return segments.reduce((n, s) => n + s.records, 0);
}

/** The export to read: `--export`, or where `--start-export` put it (opened later). */
async function exportOf(
  config: ReplayConfig,
  open: (url: string) => ObjectStore,
  signal: AbortSignal | undefined,
): Promise<{ store: ObjectStore; exp: DynamoExport } | undefined> {
  if (config.exportUrl === undefined) return undefined;
  return openExportAt(config.exportUrl, config, open, signal);
}

async function openExportAt(
  url: string,
  config: ReplayConfig,
  open: (url: string) => ObjectStore,
  signal: AbortSignal | undefined,
): Promise<{ store: ObjectStore; exp: DynamoExport }> {
  // The store is rooted above AWSDynamoDB/: an incremental export's data files are in a folder
  // beside the export's own (AWSDynamoDB/data/).
  const at = url.lastIndexOf(EXPORT_MARKER);
  const base = at < 0 ? url : url.slice(0, at);
  const prefix = at < 0 ? '' : url.slice(at + 1);
  const store = open(base);
  const exp = await openExport(store, prefix, { table: config.table, signal });
  const wanted = config.mode === 'bootstrap' ? 'FULL_EXPORT' : 'INCREMENTAL_EXPORT';
  if (exp.summary.exportType !== wanted) {
    throw new ConfigError([
      `--export ${url}: a ${exp.summary.exportType}; --mode ${config.mode} reads a ${wanted} (${config.mode === 'bootstrap' ? 'the table at a point in time' : 'the changes of a period'})`,
    ]);
  }
  return { store, exp };
}

interface PlanContext {
  windows: WindowState;
  dynamodb: DynamoDBClient;
  exp: DynamoExport | undefined;
  store: ObjectStore;
  now: () => number;
  say: (line: string) => void;
  signal: AbortSignal | undefined;
}

/** The first state of a new replay: its snapshot time, its window, the gaps it fills. */
async function startState(
  config: ReplayConfig,
  ctx: PlanContext & { open: (url: string) => ObjectStore },
): Promise<ReplayState> {
  let exp = ctx.exp;
  let exportUrl = config.exportUrl;
  if (config.startExport !== undefined) {
    const s = config.startExport;
    const to = s.toUrl.replace(/^s3:\/\//, '');
    const slash = to.indexOf('/');
    const bucket = slash < 0 ? to : to.slice(0, slash);
    const prefix = slash < 0 ? '' : to.slice(slash + 1).replace(/\/+$/, '');
    const described = await describeTableStream(ctx.dynamodb, config.table, { signal: ctx.signal });
    const tableArn = described.description?.TableArn;
    if (tableArn === undefined) throw new ChangelogError(`DescribeTable ${config.table} gave no TableArn`);
    ctx.say(`replay ${config.replayId}: starting a ${s.exportType} of ${config.table} to ${s.toUrl}`);
    const started = await startExport(
      ctx.dynamodb,
      {
        tableArn,
        s3Bucket: bucket,
        ...(prefix !== '' && { s3Prefix: prefix }),
        exportType: s.exportType,
        ...(s.exportType === 'FULL_EXPORT' && { exportTimeMs: s.toMs ?? ctx.now() }),
        ...(s.fromMs !== undefined && { fromMs: s.fromMs }),
        ...(s.toMs !== undefined && s.exportType === 'INCREMENTAL_EXPORT' && { toMs: s.toMs }),
        // The same replay asks for the same export: a retry or a second run does not start another.
        clientToken: createHash('sha256')
          .update(`replay ${config.table} ${config.replayId}`)
          .digest('hex')
          .slice(0, 36),
      },
      {
        signal: ctx.signal,
        onProgress: (p) => ctx.say(`replay ${config.replayId}: export ${p.exportArn ?? ''} ${p.status}`),
      },
    );
    exportUrl = started.exportPrefix;
    exp = (await openExportAt(exportUrl, config, ctx.open, ctx.signal)).exp;
  }
  const windowMs = ctx.windows.windowMs;
  const base = {
    formatVersion: 1 as const,
    startedAtMs: ctx.now(),
    replayId: config.replayId,
    mode: config.mode,
    source: config.source,
    table: config.table,
    exportUrl,
    exportArn: exp?.summary.exportArn,
    file: 0,
    line: 0,
    readDone: false,
    nextPart: 0,
    segments: [],
    published: [],
    done: false,
  };
  if (config.mode === 'bootstrap') {
    // An export's rows say its point in time; a scan's a margin before its start (DEFAULTS.replay).
    const scanStartedAtMs = exp === undefined ? ctx.now() : undefined;
    const snapshotTimeMs =
      exp?.summary.exportTimeMs ?? scanStartedAtMs! - DEFAULTS.replay.scanSnapshotMarginMs;
    const windowStartMs = windowStartOf(snapshotTimeMs, windowMs);
    const start = await changelogStart(config, ctx);
    if (start === undefined || snapshotTimeMs < start) {
      throw new ChangelogError(
        `replay ${config.replayId}: the snapshot is of ${isoTime(snapshotTimeMs)}, before the changelog's first record (${start === undefined ? 'no window sealed yet' : isoTime(start)}): the stream's changes after the snapshot must be in the changelog, so bootstrap from a snapshot taken after the daemon committed its first record`,
        { retriable: false },
      );
    }
    return { ...base, snapshotTimeMs, scanStartedAtMs, windowStartMs, fills: [] };
  }
  // fill-gaps: the windows of the range with unfilled gaps, all covered by the export's period.
  const summary = exp!.summary;
  const from = summary.fromTimeMs ?? 0;
  const to = summary.toTimeMs ?? summary.exportTimeMs;
  const gapped = await unfilledGaps(config, ctx);
  if (gapped.length === 0) {
    throw new ChangelogError(
      `replay ${config.replayId}: no window in [${isoTime(config.sinceMs ?? 0)}, ${config.untilMs === undefined ? 'sealed' : isoTime(config.untilMs)}) lists an unfilled gap: nothing to fill`,
      { retriable: false },
    );
  }
  const uncovered: string[] = [];
  for (const { manifest, gaps } of gapped) {
    const start = Date.parse(manifest.window.start);
    for (const gap of gaps) {
      const gapFrom =
        gap.fromTime === undefined ? await gapStartBound(config, ctx, gap, start) : Date.parse(gap.fromTime);
      const gapTo = gap.toTime === undefined ? Date.parse(manifest.window.end) : Date.parse(gap.toTime);
      if (gapFrom < from || gapTo > to) {
        uncovered.push(
          `window ${manifest.window.start} shard ${gap.shardId} (records ${isoTime(gapFrom)}..${isoTime(gapTo)})`,
        );
      }
    }
  }
  if (uncovered.length > 0) {
    throw new ChangelogError(
      `replay ${config.replayId}: export ${summary.exportArn} covers ${isoTime(from)}..${isoTime(to)}, which does not cover the gap(s) of ${uncovered.join('; ')}: export a period that does (--export-from/--export-until)`,
      { retriable: false },
    );
  }
  // Every changed item's final state goes into the last window with a gap (one row per item: a
  // row in two windows would be the same change twice); the earlier gaps point at it.
  const last = gapped[gapped.length - 1]!;
  return {
    ...base,
    snapshotTimeMs: to,
    windowStartMs: Date.parse(last.manifest.window.start),
    fills: gapped.map(({ manifest, gaps }) => ({
      windowStartMs: Date.parse(manifest.window.start),
      gaps: gaps.map((g) => ({ shardId: g.shardId, afterSequenceNumber: g.afterSequenceNumber })),
    })),
  };
}

/**
 * Where the changelog's stream records start: the earliest event time of a stream segment in its
 * first window (the daemon reads every shard from there on, contiguously). Undefined while no
 * window is sealed.
 */
async function changelogStart(config: ReplayConfig, ctx: PlanContext): Promise<number | undefined> {
  const first = ctx.windows.firstManifestMs;
  if (first === undefined) return undefined;
  const listing = await latestListing(ctx.store, config.table, first, ctx.signal);
  if (listing === undefined) return undefined;
  const manifest = await readManifest(ctx.store, listing.key, { signal: ctx.signal });
  const times = manifest.segments.filter((s) => !isSnapshotSegment(s)).map((s) => Date.parse(s.minEventTime));
  return times.length === 0 ? first : Math.min(...times);
}

/**
 * A time no later than a gap's first trimmed record, when the gap does not say (`fromTime` is the
 * last committed record's time, unknown when nothing of the shard was committed yet): the earliest
 * event time of the segment whose shard range ends where the gap starts (records of a shard come
 * in time order), looked for over the stream's retention before the gap's window; failing that,
 * the start of that retention. Never the gap's own window start: the gap may begin windows before.
 */
async function gapStartBound(
  config: ReplayConfig,
  ctx: PlanContext,
  gap: ManifestGap,
  gapWindowStartMs: number,
): Promise<number> {
  const earliest = gapWindowStartMs - DEFAULTS.stream.streamRetentionMs;
  if (gap.afterSequenceNumber === TRIM_HORIZON) return earliest;
  let bound = earliest;
  for await (const listing of listWindows(ctx.store, config.table, {
    sinceMs: earliest,
    untilMs: gapWindowStartMs + ctx.windows.windowMs,
    signal: ctx.signal,
  })) {
    const manifest = await readManifest(ctx.store, listing.key, { signal: ctx.signal });
    for (const segment of manifest.segments) {
      if (
        segment.shards.some(
          (s) => s.shardId === gap.shardId && s.lastSequenceNumber === gap.afterSequenceNumber,
        )
      ) {
        bound = Date.parse(segment.minEventTime);
      }
    }
  }
  return bound;
}

/** The sealed windows of the range whose latest manifest lists a gap no replay filled. */
async function unfilledGaps(
  config: ReplayConfig,
  ctx: PlanContext,
): Promise<{ manifest: Manifest; gaps: ManifestGap[] }[]> {
  const untilMs = Math.min(config.untilMs ?? Number.POSITIVE_INFINITY, ctx.windows.sealedThroughMs);
  const out: { manifest: Manifest; gaps: ManifestGap[] }[] = [];
  for await (const listing of listWindows(ctx.store, config.table, {
    sinceMs: windowStartOf(config.sinceMs ?? 0, ctx.windows.windowMs),
    untilMs,
    signal: ctx.signal,
  })) {
    const manifest = await readManifest(ctx.store, listing.key, { signal: ctx.signal });
    const gaps = manifest.gaps.filter((g) => g.filledBy === undefined);
    if (gaps.length > 0) out.push({ manifest, gaps });
  }
  return out;
}

/** The windows a replay publishes to: the target window, and for fill-gaps every gapped one. */
function targetWindows(state: ReplayState): number[] {
  const set = new Set([state.windowStartMs, ...state.fills.map((f) => f.windowStartMs)]);
  return [...set].sort((a, b) => a - b);
}

interface PublishContext {
  registry: RegistryStore;
  store: ObjectStore;
  say: (line: string) => void;
  now: () => number;
  signal: AbortSignal | undefined;
  save: (state: ReplayState) => Promise<void>;
  pollMs: number;
}

/**
 * Publishes version n+1 of each window the replay touches, once they are all sealed (waiting up
 * to --wait-for-seal), then its symlink manifest. A window whose latest version already lists the
 * replay's segments was published by an earlier run that stopped before it saved: it is kept.
 */
async function publish(config: ReplayConfig, state: ReplayState, ctx: PublishContext): Promise<ReplayState> {
  const targets = targetWindows(state);
  const last = targets[targets.length - 1]!;
  const deadline = ctx.now() + config.waitForSealMs;
  for (;;) {
    const windows = await ctx.registry.getState(ctx.signal);
    if (windows !== undefined && last < windows.sealedThroughMs) break;
    const unsealed = targets.filter((w) => windows === undefined || w >= windows.sealedThroughMs);
    if (ctx.now() >= deadline) {
      throw new ChangelogError(
        `replay ${config.replayId}: window(s) ${unsealed.map((w) => isoTime(w)).join(', ')} not sealed yet (sealed through ${windows === undefined ? 'nothing' : isoTime(windows.sealedThroughMs)}): its segments are written and its progress saved; run the same command again once they are sealed, or give --wait-for-seal`,
        { retriable: true },
      );
    }
    ctx.say(
      `replay ${config.replayId}: waiting for window(s) ${unsealed.map((w) => windowId(w)).join(', ')} to be sealed`,
    );
    await sleep(ctx.pollMs, ctx.signal);
  }
  const source: SegmentSource = {
    kind: config.source === 'scan' ? 'scan' : 'export',
    replayId: config.replayId,
    mode: config.mode,
    ...(state.scanStartedAtMs !== undefined && { scanStartedAt: isoTime(state.scanStartedAtMs) }),
    ...(state.exportArn !== undefined && { exportArn: state.exportArn }),
  };
  let current = state;
  // When the replay began (saved in its state): a resumed run writes the manifest it would have.
  const filledAt = isoTime(state.startedAtMs);
  for (const windowStartMs of targets) {
    if (current.published.some((p) => p.windowStartMs === windowStartMs)) continue;
    const listing = await latestListing(ctx.store, config.table, windowStartMs, ctx.signal);
    if (listing === undefined) {
      throw new ChangelogError(
        `replay ${config.replayId}: window ${isoTime(windowStartMs)} is sealed but has no manifest (it is before the changelog's first window, or empty there); nothing was published`,
        { retriable: false },
      );
    }
    const previous = await readManifest(ctx.store, listing.key, { signal: ctx.signal });
    const added = current.segments.filter((s) => s.windowStartMs === windowStartMs);
    const ours = new Set(added.map((s) => s.key));
    let manifest: Manifest;
    if (added.length > 0 && previous.segments.some((s) => ours.has(s.key))) {
      manifest = previous; // published by an earlier run of this replay
    } else {
      const rows = added.reduce((n, s) => n + s.records, 0);
      const fills: GapFillOf[] = (
        current.fills.find((f) => f.windowStartMs === windowStartMs)?.gaps ?? []
      ).map((gap) => ({
        gap,
        fill: {
          replayId: config.replayId,
          kind: source.kind,
          ...(source.exportArn !== undefined && { exportArn: source.exportArn }),
          ...(source.scanStartedAt !== undefined && { scanStartedAt: source.scanStartedAt }),
          records: rows,
          filledAt,
        },
      }));
      manifest = replayedManifest(previous, added, source, fills);
      await publishManifestVersion(ctx.store, manifest, {
        reason: 'replay',
        publishedAtMs: ctx.now(),
        signal: ctx.signal,
      });
    }
    await replaceSymlink(ctx.store, config, manifest, windowStartMs, ctx.signal);
    current = { ...current, published: [...current.published, { windowStartMs, version: manifest.version }] };
    await ctx.save(current);
    ctx.say(
      `replay ${config.replayId}: published window ${isoTime(windowStartMs)} version ${manifest.version}`,
    );
  }
  current = { ...current, done: true };
  await ctx.save(current);
  return current;
}

async function latestListing(store: ObjectStore, table: string, windowStartMs: number, signal?: AbortSignal) {
  for await (const listing of listWindows(store, table, {
    sinceMs: windowStartMs,
    untilMs: windowStartMs + 1,
    signal,
  })) {
    return listing;
  }
  return undefined;
}

/**
 * The window's symlink manifest lists the new version's segments. Create-only stores cannot
 * overwrite: the old file is deleted, then the new one written (Athena reading the window in that
 * instant sees it empty, never doubled); a run stopped in between writes it on the next run.
 */
async function replaceSymlink(
  store: ObjectStore,
  config: ReplayConfig,
  manifest: Manifest,
  windowStartMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const key = symlinkObjectKey(config.table, windowStartMs);
  // The store's URL, as the sealer writes them (normalised: `S3://b/p/` and `s3://b/p` are one).
  const body = symlinkManifestBody(manifest, store.url);
  const existing = await store.get(key, signal);
  if (existing !== undefined && Buffer.from(existing).equals(Buffer.from(body))) return;
  if (existing !== undefined) await store.delete([key], signal);
  await store.putIfAbsent(key, body, { contentType: 'text/plain', signal });
}

function parseState(text: string, config: ReplayConfig): ReplayState {
  let state: ReplayState;
  try {
    state = JSON.parse(text) as ReplayState;
  } catch (error) {
    throw new ChangelogError(`replay ${config.replayId}: its saved progress is not JSON`, {
      cause: error,
      retriable: false,
    });
  }
  if (
    state.formatVersion !== 1 ||
    state.mode !== config.mode ||
    state.source !== config.source ||
    state.table !== config.table
  ) {
    throw new ChangelogError(
      `replay ${config.replayId}: its saved progress is of ${state.mode} from ${state.source} of table ${state.table}, not of this command (${config.mode} from ${config.source} of ${config.table}); give another --replay-id`,
      { retriable: false },
    );
  }
  return state;
}

/** --dry-run: what the replay would read, write and cost; nothing is written or held. */
async function printPlan(config: ReplayConfig, ctx: PlanContext): Promise<void> {
  const lines: string[] = [
    `replay ${config.replayId} (dry run): ${config.mode} of table ${config.table} from ${config.source}`,
  ];
  const windowMs = ctx.windows.windowMs;
  if (config.source === 'scan') {
    const e = await estimateScan(ctx.dynamodb, config.table, { signal: ctx.signal });
    const t = ctx.now();
    lines.push(
      `  window: ${isoTime(windowStartOf(t, windowMs))} (the scan's start, now), published as its next version once sealed`,
      `  read: a parallel Scan in ${config.segments} segment(s): about ${e.itemCount} items, ${e.tableSizeBytes} bytes (DynamoDB refreshes these about every 6 hours)`,
      `  cost: about ${e.eventuallyConsistentRcu} read capacity units (eventually consistent)${
        config.maxRcuPerSecond === undefined
          ? ', no rate limit (--max-rcu-per-second)'
          : `, at most ${config.maxRcuPerSecond}/s: at least ${Math.ceil(e.eventuallyConsistentRcu / config.maxRcuPerSecond)} s`
      }`,
      `  rows: about ${e.itemCount} SNAPSHOT rows, about ${Math.ceil(e.tableSizeBytes / DEFAULTS.buffer.maxSegmentBytes)} segment(s)`,
    );
  } else if (config.startExport !== undefined) {
    const described = await describeTableStream(ctx.dynamodb, config.table, { signal: ctx.signal });
    const size = described.description?.TableSizeBytes ?? 0;
    lines.push(
      `  export: would start a ${config.startExport.exportType} to ${config.startExport.toUrl} (no read capacity used; billed per GB of table data, about ${(size / 1e9).toFixed(3)} GB)`,
    );
  } else if (ctx.exp !== undefined) {
    const s = ctx.exp.summary;
    lines.push(
      `  export: ${s.exportArn} (${s.exportType}, ${s.exportType === 'FULL_EXPORT' ? `at ${isoTime(s.exportTimeMs)}` : `${isoTime(s.fromTimeMs ?? 0)}..${isoTime(s.toTimeMs ?? s.exportTimeMs)}`}): ${ctx.exp.files.length} data file(s), ${ctx.exp.totalItems} item(s)`,
      `  rows: ${ctx.exp.totalItems} ${s.exportType === 'FULL_EXPORT' ? 'SNAPSHOT' : 'NET'} rows`,
    );
    if (config.mode === 'bootstrap') {
      lines.push(
        `  window: ${isoTime(windowStartOf(s.exportTimeMs, windowMs))}, published as its next version`,
      );
    } else {
      const gapped = await unfilledGaps(config, ctx);
      lines.push(
        gapped.length === 0
          ? '  windows: none in the range lists an unfilled gap: nothing to fill'
          : `  windows: ${gapped.map((g) => `${g.manifest.window.start} (${g.gaps.length} gap(s))`).join(', ')}; rows go into the last`,
      );
    }
  }
  lines.push(`  sealed through ${isoTime(ctx.windows.sealedThroughMs)}; nothing was written`);
  for (const line of lines) ctx.say(line);
}
