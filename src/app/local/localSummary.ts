import path from 'node:path';
import { isoTime } from '../../changelog/layout.js';
import type { ObjectStore } from '../../coordination/objectStore.js';
import type { WindowSealed } from '../../coordination/pipelineObserver.js';
import { latestRowsSql, sqlIdentifier, sqlString } from '../../read/latestStateSql.js';
import { listWindows, readManifest } from '../../read/manifestReader.js';
import type { MetricsSnapshot } from '../metrics.js';
import type { ProducerCounts } from './demoProducer.js';
import { formatCount, formatElapsed, formatMegabytes } from './statusView.js';

/*
 * What the local stack prints when it stops: the counts, where everything is, and a DuckDB query
 * over the files on disk. The servers are gone by then, so the query reads s3rver's directory,
 * where each object is a plain file `<directory>/<bucket>/<key>._S3rver_object` (s3rver's
 * FilesystemStore; its metadata sits next to it in `._S3rver_metadata.json`).
 */

const S3RVER_OBJECT_SUFFIX = '._S3rver_object';

/** The file s3rver keeps an object in. `key` is relative to the destination prefix. */
export function s3rverObjectPath(s3Directory: string, bucket: string, prefix: string, key: string): string {
  const parts = [...prefix.split('/'), ...key.split('/')].filter((p) => p !== '');
  const name = parts.pop() ?? '';
  return path.join(s3Directory, bucket, ...parts, `${name}${S3RVER_OBJECT_SUFFIX}`);
}

/** The directory holding a table's objects (data/ and manifests/) under s3rver's directory. */
export function s3rverTableDirectory(
  s3Directory: string,
  bucket: string,
  prefix: string,
  table: string,
): string {
  return path.join(s3Directory, bucket, ...prefix.split('/').filter((p) => p !== ''), table);
}

export interface ChangesQueryOptions {
  /** Absolute paths of the Parquet files. */
  files: readonly string[];
  /** The typed key column(s) of the table (see keyColumnName). */
  keyColumns: readonly string[];
  /** First comment line: what the files are. */
  label: string;
}

/**
 * A DuckDB script over change segments: a `changes` view over exactly these files, the changes per
 * operation, and the latest state of every item (its last change in stream order: sequence numbers
 * compare as integers, so they are zero-padded to DynamoDB's 40 digits before comparing).
 */
export function buildChangesQuery(options: ChangesQueryOptions): string {
  const files = options.files.map((f) => `  ${sqlString(f)}`).join(',\n');
  const partition = options.keyColumns.map(sqlIdentifier).join(', ');
  const latest = latestRowsSql('changes', options.keyColumns);
  return [
    `-- ${options.label}`,
    'CREATE OR REPLACE VIEW changes AS',
    'SELECT * FROM read_parquet([',
    files,
    '], hive_partitioning = false);',
    '',
    '-- changes per operation',
    'SELECT op, count(*) AS changes FROM changes GROUP BY ALL ORDER BY op;',
    '',
    '-- the latest state of every item: its status now, or deleted',
    "SELECT coalesce(new_image->>'$.status.S', 'deleted') AS status, count(*) AS items",
    `FROM (${latest})`,
    'GROUP BY ALL ORDER BY items DESC;',
    '',
    '-- a few items as they are now',
    `SELECT ${partition}, op, event_time, new_image->>'$.status.S' AS status, new_image->>'$.total.N' AS total`,
    `FROM (${latest})`,
    `ORDER BY ${partition} LIMIT 5;`,
    '',
  ].join('\n');
}

/** Splits a script from buildChangesQuery into statements (for running it from code, e.g. tests). */
export function splitStatements(script: string): string[] {
  return script
    .split(/;\s*\n/)
    .map((s) =>
      s
        .split('\n')
        .filter((line) => !line.startsWith('--'))
        .join('\n')
        .trim(),
    )
    .filter((s) => s !== '')
    .map((s) => (s.endsWith(';') ? s.slice(0, -1) : s));
}

export interface SealedWindowOnDisk {
  manifestKey: string;
  windowStartMs: number;
  records: number;
  segmentKeys: string[];
}

/** Every sealed window of the table (this run's and earlier runs'), oldest first. */
export async function readSealedWindows(
  store: ObjectStore,
  table: string,
  signal?: AbortSignal,
): Promise<SealedWindowOnDisk[]> {
  const out: SealedWindowOnDisk[] = [];
  for await (const listing of listWindows(store, table, { sinceMs: 0, signal })) {
    const manifest = await readManifest(store, listing.key, { signal });
    out.push({
      manifestKey: listing.key,
      windowStartMs: listing.windowStartMs,
      records: manifest.recordCount,
      segmentKeys: manifest.segments.map((s) => s.key),
    });
  }
  return out;
}

export interface LocalSummaryInput {
  stoppedBecause: string;
  elapsedMs: number;
  produced: ProducerCounts;
  metrics: MetricsSnapshot;
  /** Windows sealed by this run, as the sealer reported them. */
  sealedThisRun: readonly WindowSealed[];
  /** Every sealed window on disk; undefined when the manifests could not be read. */
  sealedOnDisk: readonly SealedWindowOnDisk[] | undefined;
  /** Segment keys this run committed. */
  committedThisRun: readonly string[];
  s3Directory: string;
  bucket: string;
  prefix: string;
  table: string;
  keyColumns: readonly string[];
  dataDirectory: string;
  logFile: string;
  queryFile: string;
}

export interface LocalSummary {
  text: string;
  /** The DuckDB script, when there is anything to query. */
  query: string | undefined;
}

const MAX_LISTED_MANIFESTS = 8;

/** `1 window`, `2 windows`. */
export function plural(n: number, word: string): string {
  return `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;
}

export function buildLocalSummary(input: LocalSummaryInput): LocalSummary {
  const { produced, metrics } = input;
  const written = produced.inserts + produced.updates + produced.deletes;
  const lines: string[] = [];
  lines.push(`Stopped after ${formatElapsed(input.elapsedMs)} (${input.stoppedBecause}).`);
  lines.push('');
  const producerExtras = [
    produced.conflicts > 0 ? `${formatCount(produced.conflicts)} refused` : '',
    produced.errors > 0 ? `${formatCount(produced.errors)} failed` : '',
  ].filter(Boolean);
  lines.push(
    `  produced      ${formatCount(written)} writes: ${formatCount(produced.inserts)} inserts, ${formatCount(
      produced.updates,
    )} updates, ${formatCount(produced.deletes)} deletes${producerExtras.length ? ` (${producerExtras.join(', ')})` : ''}`,
  );
  lines.push(`  read          ${formatCount(metrics.recordsRead)} stream records`);
  lines.push(
    `  committed     ${formatCount(metrics.recordsWritten)} records in ${formatCount(
      metrics.segmentsCommitted,
    )} segments (${formatMegabytes(metrics.bytesWritten)} of Parquet)`,
  );
  const onDisk = input.sealedOnDisk;
  const onDiskText =
    onDisk === undefined
      ? 'the manifests could not be read'
      : `${formatCount(onDisk.length)} sealed on disk in all, ${formatCount(
          onDisk.reduce((n, w) => n + w.records, 0),
        )} records`;
  lines.push(`  sealed        ${plural(input.sealedThisRun.length, 'window')} this run (${onDiskText})`);
  if (metrics.gaps > 0) lines.push(`  GAPS          ${metrics.gaps} (records trimmed before they were read)`);
  // Empty windows get a manifest too (once the changelog has begun): list the ones with data.
  const withData = input.sealedThisRun.filter((seal) => seal.records > 0);
  const empty = input.sealedThisRun.length - withData.length;
  const listed = withData.slice(0, MAX_LISTED_MANIFESTS);
  for (const [i, seal] of listed.entries()) {
    lines.push(
      `  ${i === 0 ? 'manifests   ' : '            '}  ${seal.key}  (${formatCount(seal.records)} records, ${plural(
        seal.segments,
        'segment',
      )})`,
    );
  }
  const more = [
    withData.length > listed.length ? `${withData.length - listed.length} more` : '',
    empty > 0 ? `${plural(empty, 'empty window')}` : '',
  ].filter(Boolean);
  if (more.length > 0)
    lines.push(`  ${listed.length === 0 ? 'manifests   ' : '            '}  and ${more.join(' and ')}`);
  const tableDir = s3rverTableDirectory(input.s3Directory, input.bucket, input.prefix, input.table);
  lines.push(
    `  data          ${tableDir}${path.sep}  (s3rver keeps each object as <key>${S3RVER_OBJECT_SUFFIX})`,
  );
  lines.push(`  daemon log    ${input.logFile}`);
  lines.push(`  next run      resumes from the leases in ${input.dataDirectory} (--fresh starts over)`);
  lines.push('');

  const toFile = (key: string) => s3rverObjectPath(input.s3Directory, input.bucket, input.prefix, key);
  const sealedFiles = (onDisk ?? []).flatMap((w) => w.segmentKeys).map(toFile);
  let query: string | undefined;
  if (sealedFiles.length > 0) {
    const windows = (onDisk ?? []).filter((w) => w.segmentKeys.length > 0);
    query = buildChangesQuery({
      files: sealedFiles,
      keyColumns: input.keyColumns,
      label: `${plural(windows.length, 'sealed window')} with data (${windowSpan(windows)}): ${plural(
        sealedFiles.length,
        'Parquet file',
      )}`,
    });
    lines.push(
      `Query the sealed windows with DuckDB (paste it into \`duckdb\`; also in ${input.queryFile}):`,
    );
  } else if (input.committedThisRun.length > 0) {
    query = buildChangesQuery({
      files: input.committedThisRun.map(toFile),
      keyColumns: input.keyColumns,
      label: `NOT SEALED YET: ${plural(input.committedThisRun.length, 'segment')} this run committed (a window's manifest lists them once it seals)`,
    });
    lines.push(
      'No window is sealed yet: windows are 1 minute, and DynamoDB Local stamps records to the minute, so the',
      'first seals within about 2 minutes (run longer, e.g. --duration 3m, or start again: it resumes).',
      `Meanwhile, the segments this run committed, with DuckDB (paste it into \`duckdb\`; also in ${input.queryFile}):`,
    );
  } else {
    lines.push('Nothing was committed, so there is nothing to query yet.');
  }
  if (query !== undefined) {
    lines.push('', query);
  }
  return { text: `${lines.join('\n')}\n`, query };
}

/** `starting 10:05`, or `starting 10:05 to 10:15` for several windows (their start times). */
function windowSpan(windows: readonly SealedWindowOnDisk[]): string {
  const first = isoTime(windows[0]!.windowStartMs);
  const last = isoTime(windows.at(-1)!.windowStartMs);
  return first === last ? `starting ${first}` : `starting ${first} to ${last}`;
}
