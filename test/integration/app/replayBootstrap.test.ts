import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  DynamoDBClient,
  ScanCommand,
  UpdateTableCommand,
} from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS, localAwsEnvironment } from '../../../src/app/local/localServers.js';
import { isoTime, parseManifestKey } from '../../../src/changelog/layout.js';
import { RegistryStore, type WindowState } from '../../../src/coordination/registryStore.js';
import {
  createRng,
  keyName,
  type ProducerResult,
  randomPayload,
  runProducer,
} from '../../helpers/chaosProducer.js';
import { type CliProcess, type CliRun, type LogRecord, runCli, startCli } from '../../helpers/cliProcess.js';
import { createSourceTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';
import { type StreamsEmulator, startStreamsEmulator } from '../../helpers/streamsEmulator.js';

/*
 * The headline of `replay --mode bootstrap --source scan` (README "Bootstrap a table that already
 * holds data"), end to end with the real CLI: a table holds items before it has a stream (the
 * stream never shows them), the stream is enabled, `run` tails it into s3rver and seals a first
 * window, and while a producer keeps inserting, updating and deleting over keys that overlap the
 * old items and new ones, `replay` scans the table into SNAPSHOT rows of the scan's window. Once
 * everything is sealed, `changes --latest` must equal a consistent Scan of the table value for
 * value, `verify` must pass, and the same replay again must say it is done and publish nothing.
 *
 * Why the streams emulator (test/helpers/streamsEmulator.ts) sits between DynamoDB Local and the
 * daemon: DynamoDB Local floors ApproximateCreationDateTime to the MINUTE (checked with
 * 2026-01-16: a write at 03:51:17 is stamped 03:51:00). THE ordering rule (ARCHITECTURE "Replay":
 * a stream row wins when its event time is at or after the snapshot time truncated to the
 * second) then lets the snapshot win over every write made after the scan read an item in the
 * scan's minute, and `--latest` shows the item's older state: a property of DynamoDB Local, not
 * of DynamoDB (which stamps to the second). The emulator re-stamps DynamoDB Local's records with
 * its clock floored to the second when it pumps them (at or after the write), as DynamoDB does.
 * The table's items and the stream's content are still DynamoDB Local's; the stream is enabled
 * with UpdateTable on the existing table (DynamoDB Local supports it; items written before are
 * not in the stream, as on DynamoDB).
 *
 * The producer (test/helpers/chaosProducer.ts) knows nothing of the old items: its first write
 * to an old key is an INSERT refused by its condition, after which it re-reads the item and
 * carries on with updates and deletes of it. Those refusals are expected (and checked to be
 * only that).
 */

const TABLE = 'bootstrap-source';
const LEASE_TABLE = 'bootstrap-leases';
const BUCKET = 'changelog-bootstrap';
const PREFIX = 'changelog';
const DESTINATION = `s3://${BUCKET}/${PREFIX}`;
/** Items written before the stream exists: keys item-00000 .. item-00299. */
const OLD_ITEMS = 300;
/** The producer's keys: the old items' and as many new ones again (item-00300 ..). */
const KEYS = 500;
const SEED = 13;
const RATE_PER_SECOND = 10;
/** Writes the producer starts after the replay's scan finished, before it is stopped. */
const WRITES_AFTER_SCAN = 80;
const SHARDS = 2;
/** Bounded waits (observable state polled): the daemon's first seal, the last seal, the replay. */
const FIRST_SEAL_TIMEOUT_MS = 150_000;
const LAST_SEAL_TIMEOUT_MS = 150_000;
const SCAN_TIMEOUT_MS = 90_000;
const POLL_MS = 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const msg = (m: string) => (r: LogRecord) => r['msg'] === m;
const keyIndex = (pk: string) => Number(pk.slice('item-'.length));

interface LatestRow {
  op: string;
  pk: string;
  sk: string;
  keys: Record<string, unknown>;
  new_image: Record<string, unknown> | null;
}

describe('replay --mode bootstrap --source scan against the real daemon', () => {
  let dynamo: DynamoDbLocal;
  let s3: S3rverServer;
  let emulator: StreamsEmulator | undefined;
  let ddb: DynamoDBClient;
  let dir: string;
  let env: Record<string, string>;
  let daemon: CliProcess | undefined;
  let replay: CliProcess | undefined;
  const stopProducer = new AbortController();
  /** Before the test: every range starts before it. */
  const sinceAll = new Date(Date.now() - 10 * 60_000).toISOString();

  beforeAll(async () => {
    [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver(BUCKET)]);
    // DynamoDB Local keeps a database per access key: the CLI processes' credentials, so one table.
    ddb = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: 3,
    });
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-bootstrap-'));
  });

  afterAll(async () => {
    stopProducer.abort();
    daemon?.killNow();
    replay?.killNow();
    ddb?.destroy();
    await emulator?.stop();
    await Promise.all([dynamo?.stop(), s3?.stop()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const replayArgs = [
    'replay',
    ...['--mode', 'bootstrap', '--source', 'scan', '--segments', '4'],
    ...['--destination', DESTINATION, '--table', TABLE, '--lease-table', LEASE_TABLE],
    ...['--wait-for-seal', '4m', '--progress', 'json', '--s3-force-path-style'],
  ];
  const cli = (args: readonly string[], name: string): Promise<CliRun> =>
    runCli(args, { env, name, logFile: path.join(dir, 'cli.log'), timeoutMs: 120_000 });
  const ok = (run: CliRun, what: string): CliRun => {
    expect(run.exit, `${what} failed:\n${run.stderr}\n${run.stdout}`).toEqual({ code: 0, signal: null });
    return run;
  };

  it('bootstrap by a scan of a table with a live writer: changes --latest equals a Scan of the table; the replay again publishes nothing', async () => {
    // 1. A table with data and no stream; then the stream.
    await createSourceTable(ddb, TABLE, { stream: false });
    const rng = createRng(SEED + 1);
    await writeItems(
      ddb,
      Array.from({ length: OLD_ITEMS }, (_, i) => oldItem(rng, keyName(i))),
    );
    const enabled = await ddb.send(
      new UpdateTableCommand({
        TableName: TABLE,
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      }),
    );
    expect(enabled.TableDescription?.LatestStreamArn).toBeDefined();
    emulator = await startStreamsEmulator({
      dynamoDbEndpoint: dynamo.endpoint,
      tableName: TABLE,
      accessKeyId: LOCAL_CREDENTIALS.accessKeyId,
      shards: SHARDS,
      seed: SEED,
    });
    const emu = emulator;
    env = localAwsEnvironment({ dynamodb: emu.endpoint, s3: s3.endpoint, streams: emu.endpoint });
    const registry = new RegistryStore({ client: ddb, tableName: LEASE_TABLE, table: TABLE });

    // 2. The daemon and the producer.
    daemon = startCli(
      [
        'run',
        ...['--table', TABLE, '--destination', DESTINATION, '--lease-table', LEASE_TABLE],
        '--create-lease-table',
        ...['--window', '1m', '--allowed-lateness', '5s', '--flush-interval', '1s'],
        ...['--metrics-port', '0', '--s3-force-path-style'],
      ],
      { env, name: 'daemon', logFile: path.join(dir, 'daemon.log') },
    );
    await daemon.waitForLog(msg('lease taken'), 90_000);

    let scanDone = false;
    let started = 0;
    let startedAtScanDone = 0;
    /** Keys the producer wrote (or tried to) after the replay's scan read the whole table. */
    const touchedAfterScan = new Set<string>();
    const producing = runProducer({
      client: ddb,
      table: TABLE,
      keys: KEYS,
      signal: stopProducer.signal,
      seed: SEED,
      ratePerSecond: RATE_PER_SECOND,
      // Called once per write, as it starts.
      payload: (r, pk) => {
        started++;
        if (scanDone) touchedAfterScan.add(pk);
        return randomPayload(r);
      },
    });
    let produced: ProducerResult | undefined;
    let replayRun: CliRun;
    let sealedAfterMs: number;
    try {
      // 3. The first sealed window: a manifest, and the lease table's first-manifest mark (the
      // sealer writes the manifest first; replay reads the mark).
      const manifestPrefix = `${PREFIX}/${TABLE}/manifests/`;
      await pollUntil(
        async () =>
          (await listKeys(s3, manifestPrefix)).length > 0 &&
          (await registry.getState())?.firstManifestMs !== undefined,
        FIRST_SEAL_TIMEOUT_MS,
        () => `the daemon's first sealed window\n${daemon!.tail()}`,
      );

      // 4. The replay, while the producer writes. Its scan is over once it says it waits for the
      // window (or published it): from then on every write is one the scan cannot have seen.
      const r = startCli(replayArgs, { env, name: 'replay', logFile: path.join(dir, 'replay.log') });
      replay = r;
      const scanned = (line: string) => /: waiting for window\(s\) |: published window /.test(line);
      await pollUntil(
        () => r.stderrLines.some(scanned) || r.exited,
        SCAN_TIMEOUT_MS,
        () => `the replay's scan\n${r.tail()}`,
      );
      startedAtScanDone = started;
      scanDone = true;
      await pollUntil(
        () => started >= startedAtScanDone + WRITES_AFTER_SCAN,
        60_000,
        () => `${WRITES_AFTER_SCAN} writes after the scan (${started - startedAtScanDone} started)`,
      );
      stopProducer.abort();
      produced = await producing;
      // Every write is in the emulated stream now, stamped at or before this.
      await emu.waitForPump();
      sealedAfterMs = Date.now();

      // 5. Every window holding a write sealed; the replay published its window.
      let state: WindowState | undefined;
      await pollUntil(
        async () => {
          state = await registry.getState();
          return state !== undefined && state.sealedThroughMs > sealedAfterMs;
        },
        LAST_SEAL_TIMEOUT_MS,
        () =>
          `every window through ${isoTime(sealedAfterMs)} sealed (sealed through ${
            state === undefined ? 'nothing' : isoTime(state.sealedThroughMs)
          })\n${daemon!.tail()}`,
      );
      const exit = await r.waitForExit(LAST_SEAL_TIMEOUT_MS);
      replayRun = { exit, logs: r.logs, stdout: r.stdoutText.join('\n'), stderr: r.stderrLines.join('\n') };
    } finally {
      stopProducer.abort();
      await producing.catch(() => undefined);
    }
    ok(replayRun, 'replay');
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });

    // The producer's only refusals: its first write to an old key (an INSERT of a present item).
    expect(produced.notWritten.filter((w) => w.op !== 'INSERT' || keyIndex(w.pk) >= OLD_ITEMS)).toEqual([]);
    const refusedKeys = produced.notWritten.map((w) => w.pk);
    expect(new Set(refusedKeys).size).toBe(refusedKeys.length);

    // The replay: SNAPSHOT rows of the scan's window, published as that window's version 2.
    const announced = /rows at (\S+) into window (\S+)/.exec(replayRun.stderr);
    expect(announced, replayRun.stderr).not.toBeNull();
    const windowStartMs = Date.parse(announced![2]!);
    expect(replayRun.stderr).toContain(`published window ${isoTime(windowStartMs)} version 2`);
    const progress = replayRun.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { event?: string; rows?: number })
      .filter((p) => p.event === 'replay-progress');
    expect(progress.at(-1)?.rows).toBeGreaterThan(0);
    const objects = await listKeys(s3, `${PREFIX}/`);
    const replayed = objects
      .map((key) => parseManifestKey(TABLE, key.slice(PREFIX.length + 1)))
      .filter((m) => m !== undefined && m.version > 1);
    expect(replayed).toEqual([{ windowStartMs, version: 2 }]);

    // `changes --latest` against a consistent Scan: the same keys, each image equal to the item.
    const scan = await scanTable(ddb);
    const latestFile = path.join(dir, 'latest.ndjson');
    const latest = ok(
      await cli(
        [
          'changes',
          ...['--destination', DESTINATION, '--table', TABLE, '--s3-force-path-style'],
          ...['--since', sinceAll, '--latest', '--format', 'ndjson', '--output', latestFile],
        ],
        'changes-latest',
      ),
      'changes --latest',
    );
    expect(latest.stderr).toContain('complete through');
    expect(latest.stderr).toContain('no gap in the answer');
    const rows = (await readFile(latestFile, 'utf8'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as LatestRow);
    expect(rows.map((r) => r.pk).sort()).toEqual([...scan.keys()].sort());
    for (const row of rows) {
      const item = scan.get(row.pk)!;
      expect(row.keys, row.pk).toEqual({ pk: { S: row.pk }, sk: { N: '0' } });
      expect(sortSets(row.new_image), row.pk).toEqual(sortSets(dynamoJsonItem(item)));
    }

    // What the comparison covered: old items only the snapshot knows, items the stream changed
    // after the snapshot (a write started after the scan had read the whole table), new items.
    const opOf = new Map(rows.map((r) => [r.pk, r.op]));
    const oldKeys = Array.from({ length: OLD_ITEMS }, (_, i) => keyName(i));
    const snapshotOnly = oldKeys.filter((pk) => opOf.get(pk) === 'SNAPSHOT');
    const changedAfterScan = oldKeys.filter((pk) => touchedAfterScan.has(pk) && opOf.get(pk) !== 'SNAPSHOT');
    const newKeys = rows.filter((r) => keyIndex(r.pk) >= OLD_ITEMS);
    console.log(
      `replay bootstrap e2e: ${produced.writes.length} writes (${produced.notWritten.length} refused), ` +
        `${started - startedAtScanDone} started after the scan; latest: ${rows.length} items, ` +
        `${snapshotOnly.length} old ones from the snapshot only, ${changedAfterScan.length} old ones ` +
        `changed after the scan, ${newKeys.length} new; replay: ${progress.at(-1)?.rows} rows`,
    );
    expect(snapshotOnly.length).toBeGreaterThan(0);
    expect(changedAfterScan.length).toBeGreaterThan(0);
    expect(newKeys.length).toBeGreaterThan(0);

    ok(
      await cli(
        [
          'verify',
          ...['--destination', DESTINATION, '--table', TABLE, '--since', sinceAll, '--s3-force-path-style'],
        ],
        'verify',
      ),
      'verify',
    );

    // 6. The same replay again: done already, nothing written.
    const again = ok(await cli(replayArgs, 'replay-again'), 'replay again');
    expect(again.stderr).toContain('already done');
    expect(await listKeys(s3, `${PREFIX}/`)).toEqual(objects);
  }, 480_000);
});

/** An item of the table before the changelog: values of many types, `v` 1 (the producer's counter). */
function oldItem(rng: () => number, pk: string): Record<string, AttributeValue> {
  const word = () => Math.floor(rng() * 36 ** 5).toString(36);
  const digits = (n: number) => {
    let s = String(1 + Math.floor(rng() * 9));
    while (s.length < n) s += String(Math.floor(rng() * 10));
    return s;
  };
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
  return {
    pk: { S: pk },
    sk: { N: '0' },
    v: { N: '1' },
    decimal: { N: `-${digits(20)}.${digits(17)}1` },
    integer: { N: digits(38) },
    text: { S: `grüße 世界 🙂 "quoted" \\ ${word()}\n\t` },
    empty: { S: '' },
    flag: { BOOL: rng() < 0.5 },
    nothing: { NULL: true },
    blob: { B: bytes(1 + Math.floor(rng() * 30)) },
    blobs: { BS: [bytes(3), Uint8Array.of(1, 2, 3, Math.floor(rng() * 256))] },
    numbers: { NS: [digits(30), `-${digits(5)}`, '0'] },
    words: { SS: [...new Set(['é', '🙂', 'Z', word()])] },
    nested: { M: { list: { L: [{ S: word() }, { N: '0' }, { L: [] }, { M: { inner: { SS: ['x'] } } }] } } },
  };
}

async function writeItems(client: DynamoDBClient, items: Record<string, AttributeValue>[]): Promise<void> {
  for (let i = 0; i < items.length; i += 25) {
    let requests: Record<string, { PutRequest: { Item: Record<string, AttributeValue> } }[]> = {
      [TABLE]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })),
    };
    for (let attempt = 1; Object.keys(requests).length > 0; attempt++) {
      if (attempt > 10) throw new Error('BatchWriteItem kept leaving items unprocessed');
      const out = await client.send(new BatchWriteItemCommand({ RequestItems: requests }));
      requests = (out.UnprocessedItems ?? {}) as typeof requests;
    }
  }
}

/** Polls `check` until it says true; fails with `what` after `timeoutMs`. */
async function pollUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: () => string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`no ${what()} within ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
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

/** An SDK item as DynamoDB JSON (what the stream and the changelog hold): binary as base64. */
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
