import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type AttributeValue, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS, localAwsEnvironment } from '../../../src/app/local/localServers.js';
import { ChangelogReader, type ChangelogSnapshot } from '../../helpers/changelogReader.js';
import {
  type ProducerResult,
  readStreamChanges,
  runProducer,
  type StreamedChange,
  writeVersion,
} from '../../helpers/chaosProducer.js';
import { type CliProcess, type CliRun, type LogRecord, runCli, startCli } from '../../helpers/cliProcess.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { type Row, readWithDuckDB, readWithHyparquet } from '../../helpers/parquetReaders.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';
import { type StreamsRewriteProxy, startStreamsRewriteProxy } from '../../helpers/streamsRewriteProxy.js';

/*
 * `dynamodb-changelog changes` end to end, as a user runs it: two `run` workers (child processes)
 * tail DynamoDB Local's stream into s3rver while a producer writes values of every lossless shape,
 * a cron-style loader runs `changes --cursor` every couple of seconds, one worker is killed (-9)
 * mid-run, and records are forced late. Then the CLI's answers are compared with what the table
 * and the stream hold, read independently (a Scan, the stream read with the SDK, the manifests and
 * segments read with DuckDB by test/helpers/changelogReader.ts).
 *
 * Before the first window is sealed there is no manifest, and `changes` refuses the table ("no
 * changelog of table ...", exit 2: a typo is likelier than a changelog not begun); the loader's
 * runs before the first seal are counted, not failed.
 *
 * What DynamoDB Local cannot do is added by a proxy in front of its Streams API
 * (test/helpers/streamsRewriteProxy.ts):
 * - TTL deletes: items of every TTL_EVERY-th key carry an expired `expiresAt`, and their REMOVEs
 *   (ordinary DeleteItems: DynamoDB Local never expires items) are given the TTL service's
 *   identity, so ttl_delete is true on exactly those rows.
 * - Late records: DynamoDB Local stamps records to the minute and a worker only reports "caught
 *   up" while nothing is uncommitted, so windows never close before their records are read. The
 *   proxy moves GetRecords' Date header ahead from the second burst on, one more window with each
 *   burst: in each quiet moment of the producer the watermark jumps past the window being
 *   written, it closes early, and the records read after land in the next window as late records,
 *   as on DynamoDB when a record becomes readable after the reader was caught up. So a window is
 *   sealed per burst (the loader sees several batches in a run shorter than two windows), and
 *   after the producer stopped one more jump closes every window holding a record at once.
 */

const TABLE = 'changes-source';
const LEASE_TABLE = 'changes-leases';
const BUCKET = 'changelog-changes';
const PREFIX = 'changelog';
const DESTINATION = `s3://${BUCKET}/${PREFIX}`;
const SEED = 12;
const KEYS = 120;
const RATE_PER_SECOND = 30;
/** The producer writes in bursts with quiet moments in between: only then can a worker report caught up. */
const BURST_MS = 5_000;
const QUIET_MS = 3_000;
const CYCLES = 6;
const SKEW_FROM_CYCLE = 1;
const KILL_AT_CYCLE = 3;
/**
 * How far GetRecords' Date runs ahead in burst SKEW_FROM_CYCLE (the window being written closes in
 * the quiet moment after it: its end + 5 s lateness is at most 65 s ahead), and how much further
 * with each later burst (one more window).
 */
const SKEW_MS = 65_000;
const SKEW_STEP_MS = 60_000;
/** Longest wait, after the producer stopped, for the loader to have received every change. */
const SEAL_TIMEOUT_MS = 90_000;
const LOADER_PAUSE_MS = 2_000;
/** Every TTL_EVERY-th key carries an expired TTL attribute; its deletes are presented as TTL deletes. */
const TTL_EVERY = 4;
const TTL_ATTRIBUTE = 'expiresAt';
/** An expiry in the past (2023-11-14), fixed so payloads do not depend on the clock. */
const EXPIRED_AT = '1700000000';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const msg = (m: string) => (r: LogRecord) => r['msg'] === m;
const isTtlKey = (pk: string) => Number(pk.slice('item-'.length)) % TTL_EVERY === 0;
const bySequence = (a: { sequence_number: string }, b: { sequence_number: string }) =>
  BigInt(a.sequence_number) < BigInt(b.sequence_number) ? -1 : 1;

/** One line of `changes --format ndjson|json` output: the row, and the line as written. */
interface OutputRow {
  line: string;
  row: {
    event_id: string;
    op: string;
    event_time: string;
    sequence_number: string;
    shard_id: string;
    keys: Record<string, unknown>;
    new_image: Record<string, unknown> | null;
    old_image: Record<string, unknown> | null;
    pk: string;
    sk: string;
    size_bytes: number;
    ttl_delete: boolean;
  };
}

/** What the pipeline run (beforeAll) left for the tests to check. */
interface PipelineRun {
  produced: ProducerResult;
  /** The stream as DynamoDB Local holds it, read with the SDK (no TTL identities, no skew). */
  stream: StreamedChange[];
  /** The changelog as an outside reader sees it after everything was sealed and the workers stopped. */
  snapshot: ChangelogSnapshot;
  /** Every loader run, in order: its output file's rows and its cursor file afterwards. */
  batches: { file: string; rows: OutputRow[]; cursor: Buffer | undefined }[];
  /** Loader runs that failed before the first window was sealed (no manifest yet). */
  beforeFirstSeal: number;
  killed: { worker: string; exit: unknown };
  takenOverBy: LogRecord | undefined;
}

describe('changes against the real daemon', () => {
  let dynamo: DynamoDbLocal;
  let s3: S3rverServer;
  let proxy: StreamsRewriteProxy;
  let ddb: DynamoDBClient;
  let dir: string;
  let env: Record<string, string>;
  let pipeline: PipelineRun;
  const workers: CliProcess[] = [];
  /** Start of the test: every `changes` range starts before it. */
  const sinceAll = new Date(Date.now() - 10 * 60_000).toISOString();

  const changes = (args: readonly string[], name = 'changes'): Promise<CliRun> =>
    runCli(['changes', '--destination', DESTINATION, '--s3-force-path-style', ...args], {
      env,
      name,
      logFile: path.join(dir, 'cli.log'),
      timeoutMs: 90_000,
    });
  const ok = (run: CliRun): CliRun => {
    expect(run.exit, `changes failed:\n${run.stderr}`).toEqual({ code: 0, signal: null });
    return run;
  };

  beforeAll(async () => {
    [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver(BUCKET)]);
    proxy = await startStreamsRewriteProxy(dynamo.endpoint, {
      isTtlDelete: (record) => record.dynamodb?.OldImage?.[TTL_ATTRIBUTE] !== undefined,
    });
    // DynamoDB Local keeps a database per access key: the workers' credentials, so one table.
    ddb = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: 1,
    });
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-changes-'));
    env = localAwsEnvironment({ dynamodb: dynamo.endpoint, s3: s3.endpoint, streams: proxy.endpoint });
    pipeline = await runPipeline();
  }, 300_000);

  afterAll(async () => {
    for (const w of workers) w.killNow();
    ddb?.destroy();
    await Promise.all([dynamo?.stop(), s3?.stop(), proxy?.stop()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function runPipeline(): Promise<PipelineRun> {
    const streamArn = await createStreamTable(ddb, TABLE);
    const runArgs = [
      'run',
      ...['--table', TABLE, '--destination', DESTINATION, '--lease-table', LEASE_TABLE],
      '--create-lease-table',
      ...['--window', '1m', '--allowed-lateness', '5s', '--flush-interval', '1s'],
      ...['--failover', '3s', '--metrics-port', '0', '--s3-force-path-style'],
    ];
    const start = (name: string) => {
      const cli = startCli(runArgs, { env, name, logFile: path.join(dir, `${name}.log`) });
      workers.push(cli);
      return cli;
    };
    const a = start('worker-a');
    await a.waitForLog(msg('lease taken'), 90_000);
    const b = start('worker-b');
    await b.waitForLog(msg('worker starting'), 90_000);

    let paused = false;
    const stopProducer = new AbortController();
    const producing = runProducer({
      client: ddb,
      table: TABLE,
      keys: KEYS,
      signal: stopProducer.signal,
      seed: SEED,
      ratePerSecond: RATE_PER_SECOND,
      payload: losslessPayload,
      paused: () => paused,
    });

    // The cron loader: `changes --cursor` into a new file every couple of seconds until it has
    // received everything the stream holds (known once the producer stopped).
    const loaderDir = path.join(dir, 'loader');
    await mkdir(loaderDir);
    const cursorFile = path.join(loaderDir, 'cursor.json');
    const batches: PipelineRun['batches'] = [];
    const received = new Set<string>();
    let stream: StreamedChange[] | undefined;
    let beforeFirstSeal = 0;
    let loaderDeadline = Number.POSITIVE_INFINITY;
    const loaderRun = async () => {
      const file = path.join(loaderDir, `batch-${batches.length + 1}.ndjson`);
      const run = await changes(
        ['--table', TABLE, '--cursor', cursorFile, '--output', file],
        `loader-${batches.length + 1}`,
      );
      ok(run);
      // Before the first seal: an empty batch, no output file, no cursor.
      if (batches.length === 0 && run.stderr.includes(`no window of table ${TABLE} is sealed`)) {
        expect(existsSync(file)).toBe(false);
        expect(existsSync(cursorFile)).toBe(false);
        beforeFirstSeal++;
        return;
      }
      const rows = await readOutput(file);
      for (const r of rows) received.add(r.row.event_id);
      batches.push({ file, rows, cursor: existsSync(cursorFile) ? await readFile(cursorFile) : undefined });
    };
    // Settles with the loader's error, if any, rather than rejecting while nobody awaits it yet.
    const loading = (async () => {
      for (;;) {
        await loaderRun();
        if (stream?.every((c) => received.has(c.eventId))) return;
        if (performance.now() > loaderDeadline) return;
        await sleep(LOADER_PAUSE_MS);
      }
    })().then(
      () => undefined,
      (error: unknown) => error,
    );

    let killed: PipelineRun['killed'] | undefined;
    let produced: ProducerResult;
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        if (cycle >= SKEW_FROM_CYCLE)
          proxy.setClockOffset(SKEW_MS + SKEW_STEP_MS * (cycle - SKEW_FROM_CYCLE));
        if (cycle === KILL_AT_CYCLE) {
          // A holds the shard (it took it first, and nothing moves a single lease to an idle peer).
          expect(a.logs.some(msg('lease taken')) && !b.logs.some(msg('lease taken'))).toBe(true);
          a.kill('SIGKILL');
          killed = { worker: a.name, exit: await a.waitForExit(10_000) };
        }
        await sleep(BURST_MS);
        paused = true;
        await sleep(QUIET_MS);
        paused = false;
      }
      stopProducer.abort();
      produced = await producing;
      stream = await readStreamChanges({
        endpoint: dynamo.endpoint,
        credentials: LOCAL_CREDENTIALS,
        streamArn,
        expectAtLeast: produced.writes.length,
      });
      // Every window a record can be in closes (and a few empty ones after it).
      proxy.setClockOffset(SKEW_MS + SKEW_STEP_MS * (CYCLES - SKEW_FROM_CYCLE + 2));
      loaderDeadline = performance.now() + SEAL_TIMEOUT_MS;
    } finally {
      // Also when the run failed half-way: nothing keeps writing or loading after it.
      stopProducer.abort();
      if (stream === undefined) loaderDeadline = Number.NEGATIVE_INFINITY;
    }
    const loaderError = await loading;
    if (loaderError !== undefined) throw loaderError;
    // One more run once everything is sealed: it must deliver nothing twice.
    await loaderRun();

    const takenOverBy = b.logs.find(msg('lease taken'));
    await b.stop();
    const reader = new ChangelogReader({ client: s3.client, bucket: BUCKET, prefix: PREFIX, table: TABLE });
    let snapshot: ChangelogSnapshot;
    try {
      snapshot = await reader.read();
    } finally {
      await reader.close();
    }
    const late = snapshot.rows.filter((r) => r.event_time < Date.parse(r.windowStart)).length;
    console.log(
      `changes e2e: ${stream.length} changes, ${snapshot.manifests.length} sealed windows ` +
        `(${snapshot.manifests.filter((m) => m.recordCount > 0).length} with rows), ${late} late rows; ` +
        `loader runs: ${batches.map((b) => b.rows.length).join(' ')} rows ` +
        `(${beforeFirstSeal} before the first seal); ${proxy.counts.ttlDeletes} TTL identities given`,
    );
    return { produced, stream, snapshot, batches, beforeFirstSeal, killed: killed!, takenOverBy };
  }

  it('--latest equals a Scan of the table, value for value (ndjson: DynamoDB JSON; json: plain JSON)', async () => {
    expect(pipeline.produced.notWritten).toEqual([]);
    const scan = await scanTable(ddb);
    expect(scan.size).toBeGreaterThan(KEYS / 4);
    const [ndjson, json] = await Promise.all(
      (['ndjson', 'json'] as const).map(async (format) => {
        const file = path.join(dir, `latest.${format}`);
        const run = ok(
          await changes([
            '--table',
            TABLE,
            '--since',
            sinceAll,
            '--latest',
            '--format',
            format,
            '--output',
            file,
          ]),
        );
        expect(run.stderr).toContain('complete through');
        expect(run.stderr).toContain('no gap in the answer');
        return readOutput(file);
      }),
    );

    for (const rows of [ndjson!, json!]) {
      expect(rows.map((r) => r.row.pk).sort()).toEqual([...scan.keys()].sort());
      for (const { row } of rows) {
        expect(['INSERT', 'MODIFY']).toContain(row.op);
        expect(row.sk).toBe('0');
        expect(row.ttl_delete).toBe(false);
      }
    }
    for (const { row } of ndjson!) {
      const item = scan.get(row.pk)!;
      expect(row.keys).toEqual({ pk: { S: row.pk }, sk: { N: '0' } });
      expect(sortSets(row.new_image)).toEqual(sortSets(dynamoJsonItem(item)));
    }
    for (const { row } of json!) {
      expect(row.keys).toEqual({ pk: row.pk, sk: '0' });
      expect(row.new_image).toEqual(plainItem(scan.get(row.pk)!));
    }
  });

  it("--since T hands out every window from T's on: a suffix of the stream, the producer's writes in per-item order", async () => {
    const { snapshot, stream, produced } = pipeline;
    expect(snapshot.problems).toEqual([]);
    // T in the middle of the run, inside a window (the range starts at that window's start).
    const sealed = [...snapshot.rows].sort(bySequence);
    const windowStartMs = Date.parse(sealed[Math.floor(sealed.length / 2)]!.windowStart);
    const since = new Date(windowStartMs + 30_000).toISOString();
    const file = path.join(dir, 'since.ndjson');
    const run = ok(await changes(['--table', TABLE, '--since', since, '--output', file]));
    expect(run.stderr).toContain(`windows ${new Date(windowStartMs).toISOString()} to`);
    const rows = (await readOutput(file)).map((r) => r.row);

    // Exactly the rows of the sealed windows from T's window on, each once.
    const expected = snapshot.rows.filter((r) => Date.parse(r.windowStart) >= windowStartMs);
    const ids = rows.map((r) => r.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(expected.map((r) => r.event_id).sort());
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(snapshot.rows.length);

    // One shard, whose windows never go backwards: the answer is the stream from some record on.
    const streamOrder = [...stream].sort((x, y) =>
      bySequence({ sequence_number: x.sequenceNumber }, { sequence_number: y.sequenceNumber }),
    );
    const suffix = streamOrder.slice(streamOrder.length - rows.length);
    expect([...rows].sort(bySequence).map((r) => [r.event_id, r.op, r.pk])).toEqual(
      suffix.map((c) => [c.eventId, c.op, c.pk]),
    );
    // Nothing at or after T's window is left out; what comes from before it came late.
    const answered = new Set(ids);
    expect(stream.filter((c) => c.eventTimeMs >= windowStartMs && !answered.has(c.eventId))).toEqual([]);

    // Per item, the rows in sequence-number order are the producer's last writes of it, in order.
    const writesOf = groupBy(produced.writes, (w) => w.pk);
    for (const [pk, itemRows] of groupBy(rows, (r) => r.pk)) {
      const got = itemRows
        .sort(bySequence)
        .map((r) => [r.op, writeVersion(r.op, r.new_image as never, r.old_image as never)]);
      const writes = writesOf.get(pk) ?? [];
      expect(got, pk).toEqual(writes.slice(writes.length - got.length).map((w) => [w.op, w.v]));
      for (const r of itemRows) expect(r.ttl_delete, r.event_id).toBe(r.op === 'REMOVE' && isTtlKey(pk));
    }
  });

  it('a cron loader with --cursor receives every change of the stream exactly once, through a kill -9 and late records', () => {
    const { batches, stream, snapshot, killed, takenOverBy } = pipeline;
    expect(killed.exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect(takenOverBy).toBeDefined();
    expect(proxy.counts.errors).toEqual([]);

    const counts = new Map<string, number>();
    for (const batch of batches)
      for (const r of batch.rows) counts.set(r.row.event_id, (counts.get(r.row.event_id) ?? 0) + 1);
    const streamed = new Set(stream.map((c) => c.eventId));
    const missing = [...streamed].filter((id) => !counts.has(id));
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    const extra = [...counts.keys()].filter((id) => !streamed.has(id));
    expect({ missing, duplicated, extra }).toEqual({ missing: [], duplicated: [], extra: [] });

    // Incremental: several runs delivered rows, the last one (all sealed before it) nothing new.
    expect(batches.filter((b) => b.rows.length > 0).length).toBeGreaterThanOrEqual(2);
    expect(batches.at(-1)!.rows).toEqual([]);
    // Late records were among them: rows committed in a window that starts after their event time.
    const windowOf = new Map(snapshot.rows.map((r) => [r.event_id, Date.parse(r.windowStart)]));
    const late = batches
      .flatMap((b) => b.rows)
      .filter((r) => Date.parse(r.row.event_time) < windowOf.get(r.row.event_id)!);
    expect(late.length).toBeGreaterThan(0);
    expect(snapshot.manifests.reduce((n, m) => n + (m.recordCount > 0 ? 1 : 0), 0)).toBeGreaterThanOrEqual(3);
    // TTL deletes came through the daemon as such, and nothing else did.
    const opOf = new Map(stream.map((c) => [c.eventId, c]));
    const ttl = batches.flatMap((b) => b.rows).filter((r) => r.row.ttl_delete);
    expect(ttl.length).toBeGreaterThan(0);
    for (const { row } of batches.flatMap((b) => b.rows)) {
      const change = opOf.get(row.event_id)!;
      expect([row.op, row.pk]).toEqual([change.op, change.pk]);
      expect(row.ttl_delete, row.event_id).toBe(row.op === 'REMOVE' && isTtlKey(row.pk));
    }
  });

  it("parquet output read by DuckDB and hyparquet equals the NDJSON; --emit files and the symlink manifests list exactly the manifests' segments", async () => {
    const { snapshot, stream } = pipeline;
    const ndjsonFile = path.join(dir, 'all.ndjson');
    const parquetFile = path.join(dir, 'all.parquet');
    const filesFile = path.join(dir, 'files.txt');
    await Promise.all([
      changes(['--table', TABLE, '--since', sinceAll, '--output', ndjsonFile]).then(ok),
      changes(['--table', TABLE, '--since', sinceAll, '--format', 'parquet', '--output', parquetFile]).then(
        ok,
      ),
      changes(['--table', TABLE, '--since', sinceAll, '--emit', 'files', '--output', filesFile]).then(ok),
    ]);
    const ndjson = await readOutput(ndjsonFile);
    expect(ndjson.map((r) => r.row.event_id).sort()).toEqual(stream.map((c) => c.eventId).sort());
    const parquet = await readFile(parquetFile);
    for (const [reader, rows] of [
      ['duckdb', await readWithDuckDB(parquet)],
      ['hyparquet', await readWithHyparquet(parquet)],
    ] as const) {
      expect(rows.length, reader).toBe(ndjson.length);
      for (const [i, row] of rows.entries()) expectSameRow(row, ndjson[i]!, reader);
    }

    // The files of the sealed windows, in window order, each manifest's segments in its order.
    const manifests = [...snapshot.manifests].sort((x, y) => x.windowStart.localeCompare(y.windowStart));
    const urls = manifests.flatMap((m) => m.segmentKeys.map((k) => `${DESTINATION}/${k}\n`));
    expect(urls.length).toBeGreaterThan(1);
    expect(await readFile(filesFile, 'utf8')).toBe(urls.join(''));

    // One symlink manifest per manifest, listing exactly its segments.
    const symlinkPrefix = `${PREFIX}/${TABLE}/symlinks/`;
    const symlinks = await listKeys(s3, symlinkPrefix);
    const expectedSymlinks = manifests.map((m) =>
      m.key.replace('/manifests/', '/symlinks/').replace(/\.json$/, '.txt'),
    );
    expect(symlinks).toEqual([...expectedSymlinks].sort());
    for (const [i, m] of manifests.entries()) {
      const body = await getObject(s3, expectedSymlinks[i]!);
      expect(body?.toString('utf8'), m.key).toBe(m.segmentKeys.map((k) => `${DESTINATION}/${k}\n`).join(''));
    }
  });

  it('bad input: a clear error naming the thing, exit 2, the cursor byte-identical and no output file', async () => {
    const { snapshot, batches } = pipeline;
    // The last window with rows is damaged; a cursor that stopped before it must read it.
    const target = [...snapshot.manifests]
      .filter((m) => m.segmentKeys.length > 0)
      .sort((x, y) => x.windowStart.localeCompare(y.windowStart))
      .at(-1)!;
    const cursor = batches.find(
      (b) =>
        b.cursor !== undefined &&
        Date.parse(JSON.parse(b.cursor.toString('utf8')).deliveredThrough) <= Date.parse(target.windowStart),
    )?.cursor;
    expect(cursor).toBeDefined();

    const refused = async (args: readonly string[], says: readonly string[]) => {
      const caseDir = await mkdtemp(path.join(dir, 'refused-'));
      const cursorFile = path.join(caseDir, 'cursor.json');
      await writeFile(cursorFile, cursor!);
      const output = path.join(caseDir, 'out.ndjson');
      const run = await changes([...args, '--cursor', cursorFile, '--output', output]);
      expect(run.exit, run.stderr).toEqual({ code: 2, signal: null });
      for (const text of says) expect(run.stderr).toContain(text);
      expect(await readFile(cursorFile)).toEqual(cursor);
      expect(await readdir(caseDir)).toEqual(['cursor.json']);
      return run;
    };

    await refused(['--table', 'no-such-table'], ['no changelog of table no-such-table', DESTINATION]);
    await refused(
      ['--table', TABLE, '--since', '2026-01-02T10:05:00Z', '--until', '2026-01-02T10:00:00Z'],
      ['--until', 'must be after --since'],
    );

    const manifestKey = target.key.slice(PREFIX.length + 1);
    const original = (await getObject(s3, target.key))!;
    await putObject(
      s3,
      target.key,
      JSON.stringify({ ...JSON.parse(original.toString('utf8')), recordCount: 'many' }),
    );
    try {
      await refused(['--table', TABLE], [manifestKey, 'recordCount']);
      const run = await changes(['--table', TABLE, '--since', sinceAll]);
      expect(run.exit, run.stderr).toEqual({ code: 2, signal: null });
      expect(run.stderr).toContain(manifestKey);
    } finally {
      await putObject(s3, target.key, original);
    }

    // A segment of the last window: the rows of the windows before it are written first, then
    // dropped with the unfinished output.
    const segmentKey = target.segmentKeys.at(-1)!;
    const segment = (await getObject(s3, `${PREFIX}/${segmentKey}`))!;
    await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/${segmentKey}` }));
    try {
      await refused(['--table', TABLE], [segmentKey, 'does not exist', manifestKey]);
    } finally {
      await putObject(s3, `${PREFIX}/${segmentKey}`, segment);
    }
  });
});

/** Item values in every shape the changelog must keep exactly (DESIGN.md invariant 7). */
function losslessPayload(rng: () => number, pk: string): Record<string, AttributeValue> {
  const digits = (n: number) => {
    let s = String(1 + Math.floor(rng() * 9));
    while (s.length < n) s += String(Math.floor(rng() * 10));
    return s;
  };
  const bytes = (n: number) =>
    Uint8Array.from({ length: n }, (_, i) => (i === 0 ? 0 : i === 1 ? 255 : Math.floor(rng() * 256)));
  const word = () => Math.floor(rng() * 36 ** 5).toString(36);
  let deep: AttributeValue = { S: `bottom ${word()}` };
  for (let level = 0; level < 30; level++) deep = { M: { [`level${level}`]: deep } };
  const payload: Record<string, AttributeValue> = {
    // 38 significant digits (a last digit of 1: DynamoDB drops trailing zeros), and the extremes.
    decimal: { N: `-${digits(20)}.${digits(17)}1` },
    integer: { N: digits(38) },
    huge: { N: `9.${'9'.repeat(37)}E+125` },
    tiny: { N: '1E-130' },
    text: { S: `grüße 世界 🙂 "quoted" \\ ${word()}\n\t\u0001` },
    empty: { S: '' },
    flag: { BOOL: rng() < 0.5 },
    nothing: { NULL: true },
    blob: { B: bytes(2 + Math.floor(rng() * 40)) },
    blobs: { BS: [bytes(3), Uint8Array.of(1, 2, 3, Math.floor(rng() * 256))] },
    numbers: { NS: [digits(38), `-${digits(5)}`, '0'] },
    words: { SS: [...new Set(['é', '🙂', 'Z', 'a', word()])] },
    'ünï cødé 🙂': { S: word() },
    'dotted.name with space': { L: [{ S: '' }, { N: '0' }, { L: [] }, { M: { inner: { SS: ['x'] } } }] },
    deep,
  };
  if (isTtlKey(pk)) payload[TTL_ATTRIBUTE] = { N: EXPIRED_AT };
  return payload;
}

async function scanTable(client: DynamoDBClient): Promise<Map<string, Record<string, AttributeValue>>> {
  const items = new Map<string, Record<string, AttributeValue>>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: TABLE, ConsistentRead: true, ExclusiveStartKey: start }),
    );
    for (const item of page.Items ?? []) items.set(item['pk']!.S!, item);
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}

/** An SDK item as DynamoDB JSON (what the stream sends): binary as base64. */
function dynamoJsonItem(item: Record<string, AttributeValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item).map(([name, value]) => [name, dynamoJson(value)]));
}

function dynamoJson(v: AttributeValue): unknown {
  if (v.S !== undefined) return { S: v.S };
  if (v.N !== undefined) return { N: v.N };
  if (v.B !== undefined) return { B: Buffer.from(v.B).toString('base64') };
  if (v.BOOL !== undefined) return { BOOL: v.BOOL };
  if (v.NULL !== undefined) return { NULL: v.NULL };
  if (v.M !== undefined) return { M: dynamoJsonItem(v.M) };
  if (v.L !== undefined) return { L: v.L.map(dynamoJson) };
  if (v.SS !== undefined) return { SS: v.SS };
  if (v.NS !== undefined) return { NS: v.NS };
  if (v.BS !== undefined) return { BS: v.BS.map((b) => Buffer.from(b).toString('base64')) };
  throw new Error(`unknown AttributeValue ${JSON.stringify(v)}`);
}

/** DynamoDB JSON with set members sorted: sets have no order to compare. */
function sortSets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortSets);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  if (entries.length === 1 && ['SS', 'NS', 'BS'].includes(entries[0]![0])) {
    return { [entries[0]![0]]: [...(entries[0]![1] as string[])].sort() };
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, sortSets(v)]));
}

/**
 * An SDK item as `--format json` writes images (ARCHITECTURE "Output formats"): numbers as their
 * exact text, binary as base64, sets as arrays sorted by UTF-8 bytes / numeric value / bytes.
 */
function plainItem(item: Record<string, AttributeValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item).map(([name, value]) => [name, plain(value)]));
}

function plain(v: AttributeValue): unknown {
  if (v.S !== undefined) return v.S;
  if (v.N !== undefined) return v.N;
  if (v.B !== undefined) return Buffer.from(v.B).toString('base64');
  if (v.BOOL !== undefined) return v.BOOL;
  if (v.NULL !== undefined) return null;
  if (v.M !== undefined) return plainItem(v.M);
  if (v.L !== undefined) return v.L.map(plain);
  if (v.SS !== undefined) return [...v.SS].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  // The payload's number sets hold integers only, so BigInt orders them as numbers.
  if (v.NS !== undefined) return [...v.NS].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1));
  if (v.BS !== undefined) {
    return v.BS.map((b) => Buffer.from(b))
      .sort(Buffer.compare)
      .map((b) => b.toString('base64'));
  }
  throw new Error(`unknown AttributeValue ${JSON.stringify(v)}`);
}

async function readOutput(file: string): Promise<OutputRow[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => ({ line, row: JSON.parse(line) as OutputRow['row'] }));
}

/** A Parquet row (normalised by parquetReaders.ts) against the NDJSON line of the same row. */
function expectSameRow(row: Row, ndjson: OutputRow, reader: string): void {
  const { row: expected, line } = ndjson;
  const where = `${reader}: ${expected.event_id}`;
  expect(
    {
      event_id: row['event_id'],
      op: row['op'],
      event_time: row['event_time'],
      sequence_number: row['sequence_number'],
      shard_id: row['shard_id'],
      pk: row['pk'],
      sk: row['sk'],
      size_bytes: row['size_bytes'],
      ttl_delete: row['ttl_delete'],
    },
    where,
  ).toEqual({
    event_id: expected.event_id,
    op: expected.op,
    event_time: Date.parse(expected.event_time),
    sequence_number: expected.sequence_number,
    shard_id: expected.shard_id,
    pk: expected.pk,
    sk: expected.sk,
    size_bytes: expected.size_bytes,
    ttl_delete: expected.ttl_delete,
  });
  // NDJSON embeds the stored DynamoDB JSON byte for byte: the Parquet text must appear verbatim.
  for (const column of ['keys', 'new_image', 'old_image'] as const) {
    const text = row[column];
    expect(line, `${where} ${column}`).toContain(`"${column}":${text === null ? 'null' : String(text)}`);
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [item]);
    else group.push(item);
  }
  return groups;
}

async function listKeys(s3: S3rverServer, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.client.send(
      new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

async function getObject(s3: S3rverServer, key: string): Promise<Buffer | undefined> {
  const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

async function putObject(s3: S3rverServer, key: string, body: string | Buffer): Promise<void> {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
}
