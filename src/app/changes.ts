import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { type KeySchema, keyAttributes, keyColumnName } from '../changelog/keySchema.js';
import { isoTime, manifestPrefix } from '../changelog/layout.js';
import { readSegmentMetadata } from '../changelog/parquetDecoder.js';
import { objectUrl } from '../changelog/symlinkManifest.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import { openObjectStore } from '../coordination/openObjectStore.js';
import { columnProblems } from '../read/changeColumns.js';
import {
  type Changelog,
  type ChangelogSegment,
  openChangelog,
  SEGMENT_READ_AHEAD,
  type SealedWindow,
} from '../read/changelog.js';
import { type BatchPlan, batchWindows, planBatch } from '../read/cursor.js';
import { readCursorFile, writeCursorFile } from '../read/cursorFile.js';
import { duckdbScript } from '../read/duckdbScript.js';
import { rowsForKey } from '../read/keyLookup.js';
import { latestPerKey } from '../read/latestMerge.js';
import { redshiftLoadSql, redshiftManifest } from '../read/redshift.js';
import { openRowWriter, type RowWriter } from '../read/rowWriters.js';
import {
  DecodedRow,
  type DecodedRowGroup,
  decodeSegmentRowGroups,
  segmentKeySchema,
} from '../read/segmentRows.js';
import { ChangelogError, ConfigError } from '../support/errors.js';
import { readAhead } from '../support/readAhead.js';
import { combineSignals } from '../support/retry.js';
import type { ChangesConfig } from './changesConfig.js';

export interface ChangesIo {
  /** Where rows go without --output. */
  stdout: NodeJS.WritableStream;
  /** Where the command says what it answered (range, completeness, gaps, cursor). */
  stderr: NodeJS.WritableStream;
  /** Opens the destination (tests pass an in-memory store). */
  openStore?: (config: ChangesConfig) => ObjectStore;
  now?: () => number;
  signal?: AbortSignal;
}

export interface ChangesResult {
  /** The windows answered: [fromMs, throughMs). */
  fromMs: number | undefined;
  throughMs: number | undefined;
  windows: number;
  segments: number;
  /** Rows written (row output) or files listed (--emit). */
  items: number;
  completeThroughMs: number | undefined;
  /** Windows in the answer whose manifest lists a gap. */
  incomplete: number;
  /** The cursor's batch number, when --cursor advanced it. */
  batch: number | undefined;
}

/**
 * What `dynamodb-changelog changes` does (composition root of the read side): picks the windows
 * (a range, or the next batch after a cursor), hands out their rows or files, and only after the
 * output is complete advances the cursor.
 */
export async function runChanges(config: ChangesConfig, io: ChangesIo): Promise<ChangesResult> {
  const store =
    io.openStore?.(config) ??
    openObjectStore(config.destination.url, { s3: { forcePathStyle: config.destination.s3ForcePathStyle } });
  const signal = io.signal;
  try {
    const changelog = openChangelog({ store, table: config.table });
    const cursor = config.cursorFile === undefined ? undefined : await readCursorFile(config.cursorFile);
    if (!(await hasChangelog(store, config.table, signal))) {
      // A loader deployed with the daemon runs before the first seal: an empty first batch, not an
      // error (no cursor is written, so the next run starts from the same place). Anywhere else a
      // table with no manifest at all is a mistake (a typo, another prefix).
      if (config.cursorFile === undefined || cursor !== undefined) {
        throw new ChangelogError(
          `no changelog of table ${config.table} at ${config.destination.url}: nothing under ${manifestPrefix(config.table)} (check --table and --destination)`,
          { retriable: false },
        );
      }
      io.stderr.write(
        `changes: no window of table ${config.table} is sealed at ${config.destination.url} yet: nothing delivered, cursor not written (if this lasts, check --table and --destination)\n`,
      );
      return {
        fromMs: undefined,
        throughMs: undefined,
        windows: 0,
        segments: 0,
        items: 0,
        completeThroughMs: undefined,
        incomplete: 0,
        batch: undefined,
      };
    }
    let plan: BatchPlan | undefined;
    let windows: SealedWindow[];
    let completeThroughMs: number | undefined;
    let fromMs: number | undefined;
    let throughMs: number | undefined;
    if (config.cursorFile !== undefined) {
      plan = await planBatch(changelog, cursor, {
        destination: config.destination.url,
        sinceMs: config.sinceMs,
        untilMs: config.untilMs,
        nowMs: io.now?.(),
        signal,
      });
      windows = batchWindows(plan);
      completeThroughMs = plan.completeThroughMs;
      fromMs = plan.fromMs;
      throughMs = plan.throughMs;
    } else {
      const sinceMs = config.sinceMs!;
      const status = await changelog.status({ sinceMs, untilMs: config.untilMs, signal });
      completeThroughMs = status.completeThroughMs;
      // Without --until the answer stops where the changelog is complete: never a window that
      // could still gain rows from an earlier unsealed one.
      const untilMs = config.untilMs ?? completeThroughMs;
      windows = [];
      if (untilMs !== undefined) {
        for await (const window of changelog.windows({ sinceMs, untilMs, signal })) windows.push(window);
      }
      fromMs = windows[0]?.windowStartMs;
      throughMs = windows.at(-1)?.windowEndMs;
    }

    const segments: ChangelogSegment[] = [];
    for await (const segment of changelog.segmentsOf({ sinceMs: 0, windows, signal })) segments.push(segment);
    const result: ChangesResult = {
      fromMs,
      throughMs,
      windows: windows.length,
      segments: segments.length,
      items: 0,
      completeThroughMs,
      incomplete: windows.filter((w) => !w.manifest.complete).length,
      batch: plan?.next?.batch,
    };

    await writeOutput(config, io, async (output) => {
      result.items = await answer(config, changelog, windows, segments, output, signal);
    });
    // The output is complete and flushed (or renamed into place): only now may the cursor move.
    if (config.cursorFile !== undefined && plan?.next !== undefined)
      await writeCursorFile(config.cursorFile, plan.next);
    report(io.stderr, config, result, windows, plan);
    return result;
  } finally {
    store.close?.();
  }
}

/** Writes the answer, to stdout or through a temporary file renamed over --output at the end. */
async function writeOutput(
  config: ChangesConfig,
  io: ChangesIo,
  write: (output: NodeJS.WritableStream) => Promise<void>,
): Promise<void> {
  if (config.output === undefined) {
    await write(io.stdout);
    return;
  }
  const target = path.resolve(config.output);
  const temporary = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${randomBytes(6).toString('hex')}.partial`,
  );
  const stream = createWriteStream(temporary, { flags: 'wx' });
  try {
    await write(stream);
    if (!stream.writableFinished) {
      stream.end();
      await finished(stream);
    }
    await rename(temporary, target);
  } catch (error) {
    // The file is opened asynchronously: wait until the stream has closed (and so has created the
    // file, if it was going to) before removing it, or the removal can come first and leave it.
    if (!stream.closed) {
      const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      stream.destroy();
      await closed;
    }
    await rm(temporary, { force: true });
    throw error;
  }
}

async function answer(
  config: ChangesConfig,
  changelog: Changelog,
  windows: readonly SealedWindow[],
  segments: readonly ChangelogSegment[],
  output: NodeJS.WritableStream,
  signal: AbortSignal | undefined,
): Promise<number> {
  const destination = config.destination.url;
  switch (config.emit) {
    case 'files':
      return writeText(
        output,
        segments.map((s) => `${objectUrl(destination, s.key)}\n`).join(''),
        segments.length,
      );
    case 'redshift-manifest':
      return writeText(
        output,
        redshiftManifest(segments.map((s) => ({ url: objectUrl(destination, s.key), bytes: s.bytes }))),
        segments.length,
      );
    case 'redshift-sql': {
      const keySchema = await firstKeySchema(changelog, segments, signal);
      if (keySchema === undefined) return writeText(output, '', 0);
      const { targetTable, iamRole, manifestUrl, region } = config.redshift;
      return writeText(
        output,
        redshiftLoadSql({
          targetTable: targetTable!,
          iamRole: iamRole!,
          manifestUrl: manifestUrl!,
          keySchema,
          ...(region !== undefined && { region }),
        }),
        segments.length,
      );
    }
    case 'duckdb-sql': {
      const keySchema = await firstKeySchema(changelog, segments, signal);
      if (keySchema === undefined) return writeText(output, '', 0);
      return writeText(
        output,
        duckdbScript({
          urls: segments.map((s) => objectUrl(destination, s.key)),
          keyColumns: keyColumnsOf(keySchema),
        }),
        segments.length,
      );
    }
    case 'rows':
      return writeRows(config, changelog, windows, segments, output, signal);
  }
}

/**
 * Writes the range's rows. The writer needs the table's key schema (the key columns, and their
 * types for parquet), which only a segment's footer holds: each mode opens the writer with the
 * first segment it loads anyway, so no segment is fetched (and checksummed) for the schema alone.
 */
async function writeRows(
  config: ChangesConfig,
  changelog: Changelog,
  windows: readonly SealedWindow[],
  segments: readonly ChangelogSegment[],
  output: NodeJS.WritableStream,
  signal: AbortSignal | undefined,
): Promise<number> {
  if (segments.length === 0) {
    // No segment, so no schema for a Parquet file: nothing is written (stderr says 0 rows).
    if (config.format === 'parquet') return 0;
    await openWriter(config, output, undefined).end();
    return 0;
  }
  let writer: RowWriter | undefined;
  const open = (keySchema: KeySchema): RowWriter => {
    writer ??= openWriter(config, output, keySchema);
    return writer;
  };
  let count = 0;
  if (config.key !== undefined) {
    const lookup = rowsForKey(changelog, { sinceMs: 0, windows, signal }, config.key, { onKeySchema: open });
    for await (const row of lookup) {
      await writer!.write(row);
      count++;
    }
  } else if (config.latest) {
    count = await writeLatest(config, changelog, segments, open, signal);
  } else {
    // Every row of the range, a row group at a time: the writer copies bytes where it can (ndjson).
    for await (const { segment, bytes } of changelog.loadedSegments({ sinceMs: 0, windows, signal })) {
      const out = writer ?? open(keySchemaOf(bytes, segment));
      const source = { segmentKey: segment.key, windowStartMs: segment.windowStartMs };
      for (const group of decodeSegmentRowGroups(bytes, source, { signal })) {
        for (let i = 0; i < group.length; i++) await out.writeDecoded(group, i);
        count += group.length;
      }
    }
  }
  // Every mode loads the range's first segment, so the writer is open by now.
  await writer!.end();
  return count;
}

/** The row writer for the table's key schema (undefined: a range without segments). */
function openWriter(
  config: ChangesConfig,
  output: NodeJS.WritableStream,
  keySchema: KeySchema | undefined,
): RowWriter {
  const keyColumns = keySchema === undefined ? [] : keyColumnsOf(keySchema);
  if (config.columns !== undefined && keySchema !== undefined) {
    const problems = columnProblems(config.columns, keyColumns);
    if (problems.length > 0) throw new ConfigError(problems.map((p) => `--columns: ${p}`));
  }
  return openRowWriter(config.format, output, {
    ...(config.columns !== undefined && { columns: config.columns }),
    keyColumns,
    ...(keySchema !== undefined && { keySchema }),
  });
}

/**
 * `--latest` in two passes, so memory stays flat however many items win. Pass 1 is the k-way
 * merge over every segment of the range, reading only each row's key, sequence number and op
 * (images are never decompressed), and marks the winners: one bit per row. Pass 2 writes each
 * segment's winners, one segment at a time, expanding its images only then. Rows therefore come
 * out by segment (window, then segment key), each segment's in key order, not in one global key
 * order. The merge orders keys by the table's key schema, so the first segment is fetched first,
 * for its footer, and handed to the merge as it is.
 *
 * Between the passes only `config.read.latestKeepBytes` of segment bytes are kept (in range
 * order, by their manifest sizes), so what outlives the merge does not grow with the range. The
 * others are fetched again in pass 2 through loadSegment, which checks length and sha256 against
 * the manifest again: a segment that changed since pass 1 is refused, never written by marks
 * that were set on other rows.
 */
async function writeLatest(
  config: ChangesConfig,
  changelog: Changelog,
  segments: readonly ChangelogSegment[],
  open: (keySchema: KeySchema) => RowWriter,
  signal: AbortSignal | undefined,
): Promise<number> {
  let first: Uint8Array | undefined = await changelog.loadSegment(segments[0]!, signal);
  const keySchema = keySchemaOf(first, segments[0]!);
  const writer = open(keySchema);
  let budget = config.read.latestKeepBytes;
  const keep = segments.map((s) => {
    if (s.bytes > budget) return false;
    budget -= s.bytes;
    return true;
  });
  const kept: (Uint8Array | undefined)[] = segments.map(() => undefined);
  const winners = segments.map((s) => new Uint8Array(Math.ceil(s.records / 8)));
  const sources = segments.map((segment, at) => async () => {
    let bytes: Uint8Array;
    if (at === 0 && first !== undefined) {
      bytes = first;
      first = undefined;
    } else bytes = await changelog.loadSegment(segment, signal);
    if (keep[at]) kept[at] = bytes;
    return markedRows(bytes, segment, at, signal);
  });
  let count = 0;
  for await (const row of latestPerKey(sources, {
    keySchema,
    includeDeletes: config.includeDeletes,
    signal,
  })) {
    const { segment, ordinal } = row as MarkedRow;
    winners[segment]![ordinal >> 3]! |= 1 << (ordinal & 7);
    count++;
  }
  const withWinners: number[] = [];
  for (let at = 0; at < segments.length; at++) {
    if (winners[at]!.some((b) => b !== 0)) withWinners.push(at);
    else kept[at] = undefined;
  }
  // Re-fetches overlap with writing, as in a plain read: at most SEGMENT_READ_AHEAD ahead.
  const pending = (async function* () {
    yield* withWinners;
  })();
  const loaded = readAhead(pending, SEGMENT_READ_AHEAD, async (at, stop) => ({
    at,
    bytes: kept[at] ?? (await changelog.loadSegment(segments[at]!, combineSignals(signal, stop))),
  }));
  for await (const { at, bytes } of loaded) {
    kept[at] = undefined;
    const segment = segments[at]!;
    const marks = winners[at]!;
    let ordinal = 0;
    for (const group of decodeSegmentRowGroups(
      bytes,
      { segmentKey: segment.key, windowStartMs: segment.windowStartMs },
      { signal },
    )) {
      for (let i = 0; i < group.length; i++, ordinal++) {
        if ((marks[ordinal >> 3]! & (1 << (ordinal & 7))) !== 0) await writer.writeDecoded(group, i);
      }
    }
  }
  return count;
}

/** A merge row that knows where it sits: its segment (index in the range) and its row number in it. */
class MarkedRow extends DecodedRow {
  constructor(
    group: DecodedRowGroup,
    index: number,
    readonly segment: number,
    readonly ordinal: number,
  ) {
    super(group, index);
  }
}

function* markedRows(
  bytes: Uint8Array,
  segment: ChangelogSegment,
  at: number,
  signal: AbortSignal | undefined,
): Generator<MarkedRow, void, undefined> {
  let ordinal = 0;
  const source = { segmentKey: segment.key, windowStartMs: segment.windowStartMs };
  for (const group of decodeSegmentRowGroups(bytes, source, { signal })) {
    if (ordinal + group.length > segment.records) {
      throw new ChangelogError(
        `segment ${segment.key} holds more rows than the ${segment.records} its manifest lists (${segment.manifestKey})`,
        { key: segment.key, retriable: false },
      );
    }
    for (let i = 0; i < group.length; i++) yield new MarkedRow(group, i, at, ordinal++);
  }
}

async function writeText(output: NodeJS.WritableStream, text: string, items: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    output.write(text, (error) => (error ? reject(error) : resolve()));
  });
  return items;
}

/** The table's key schema, from a segment's footer (the key schema it was written with). */
function keySchemaOf(bytes: Uint8Array, segment: ChangelogSegment): KeySchema {
  return segmentKeySchema(readSegmentMetadata(bytes, segment.key), segment.key);
}

/**
 * The key schema for the hand-offs that need it (redshift-sql, duckdb-sql): they read no segment
 * otherwise, so the first one is fetched once, for its footer. Undefined when the range is empty.
 */
async function firstKeySchema(
  changelog: Changelog,
  segments: readonly ChangelogSegment[],
  signal: AbortSignal | undefined,
): Promise<KeySchema | undefined> {
  const first = segments[0];
  return first === undefined ? undefined : keySchemaOf(await changelog.loadSegment(first, signal), first);
}

function keyColumnsOf(schema: KeySchema): string[] {
  return keyAttributes(schema).map((a) => keyColumnName(a.name));
}

/** Whether the table has any manifest (any sealed window) at the destination. */
async function hasChangelog(
  store: ObjectStore,
  table: string,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  for await (const _ of store.list(manifestPrefix(table), { signal })) return true;
  return false;
}

/** Says on stderr what the answer covers, whether it is complete, and where the cursor stands. */
function report(
  stderr: NodeJS.WritableStream,
  config: ChangesConfig,
  result: ChangesResult,
  windows: readonly SealedWindow[],
  plan: BatchPlan | undefined,
): void {
  const lines: string[] = [];
  const what = config.emit === 'rows' ? `${result.items} row(s)` : `${result.items} file(s)`;
  const range =
    result.fromMs === undefined || result.throughMs === undefined || result.windows === 0
      ? 'no sealed window'
      : `windows ${isoTime(result.fromMs)} to ${isoTime(result.throughMs)}`;
  lines.push(`changes: ${what} from ${result.segments} segment(s) of ${result.windows} window(s): ${range}`);
  lines.push(
    result.completeThroughMs === undefined
      ? 'changes: nothing is sealed in the range yet'
      : `changes: complete through ${isoTime(result.completeThroughMs)} (every window before it is sealed)`,
  );
  if (
    config.untilMs !== undefined &&
    result.completeThroughMs !== undefined &&
    config.untilMs > result.completeThroughMs
  ) {
    lines.push(
      `changes: --until ${isoTime(config.untilMs)} is after what is complete: windows from ${isoTime(result.completeThroughMs)} on may still change`,
    );
  }
  const incomplete = windows.filter((w) => !w.manifest.complete);
  if (incomplete.length === 0) lines.push('changes: no gap in the answer');
  else {
    for (const w of incomplete) {
      lines.push(
        `changes: GAP: window ${isoTime(w.windowStartMs)} lists ${w.manifest.gaps.filter((g) => g.filledBy === undefined).length} unfilled gap(s) (records the stream trimmed before they were read; replay --mode fill-gaps can fill them; see ${w.manifestKey})`,
      );
    }
  }
  if (plan?.stoppedAtHole !== undefined) {
    lines.push(
      `changes: stopped at ${isoTime(plan.stoppedAtHole.startMs)}: that window is not sealed although a later one is`,
    );
  }
  if (plan !== undefined) {
    const rewritten = plan.parts.filter((p) => p.reason === 'rewritten').length;
    if (rewritten > 0) lines.push(`changes: ${rewritten} rewritten window(s) delivered their added rows`);
    lines.push(
      plan.next === undefined
        ? 'changes: cursor not written (nothing sealed yet)'
        : `changes: cursor ${config.cursorFile} at batch ${plan.next.batch}, delivered through ${plan.next.deliveredThrough}`,
    );
  }
  stderr.write(`${lines.join('\n')}\n`);
}
