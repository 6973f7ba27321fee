import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS, localAwsEnvironment } from '../../../src/app/local/localServers.js';
import type { AttributeMap } from '../../../src/changelog/attributeValueJson.js';
import { isoTime, isReplaySegmentKey, manifestObjectKey } from '../../../src/changelog/layout.js';
import { parseManifest } from '../../../src/changelog/manifest.js';
import type { ObjectStore } from '../../../src/coordination/objectStore.js';
import { openObjectStore } from '../../../src/coordination/openObjectStore.js';
import { TABLE } from '../../helpers/changelogFixtures.js';
import { type CliProcess, type CliRun, runCli, startCli } from '../../helpers/cliProcess.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { writeExport } from '../../helpers/exportFixtures.js';
import { W, writeSealedChangelog } from '../../helpers/replayFixture.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';

/*
 * Issue 13: `replay` killed with SIGKILL mid-way, then the same command again, ends with exactly
 * the objects an uninterrupted run writes. The real CLI (child processes) replays a full export in
 * s3rver into the sealed changelog of test/helpers/replayFixture.ts, written twice into s3rver
 * under two prefixes with two lease tables in DynamoDB Local: one destination for the run that is
 * killed and run again, one for an uninterrupted reference run. The kill comes once at least two of
 * the replay's segments are visible in the destination (a bounded poll of its listing); the test
 * checks that it really interrupted the replay (killed by the signal, nothing published yet, fewer
 * segments than the finished replay has) and that the second run said it resumed. Then every
 * object under data/, manifests/ and symlinks/ is compared byte for byte between the two
 * destinations (symlink manifests hold absolute URLs: compared with the destination replaced),
 * the revision logs by count (their keys and bodies carry the publish time), and `verify` must
 * pass on the resumed one.
 */

const BUCKET = 'changelog-replay-kill';
const REPLAY_ID = 'kill-1';
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}`;
/** ~600 bytes each: at --max-segment-bytes 1MiB the replay writes about 8 segments. */
const ITEMS = 12_000;
const PAYLOAD_CHARS = 560;
const EXPORT_FILES = 4;
/** Inside window 3, sealed (the fixture seals windows 0..7). */
const EXPORT_TIME_MS = W(3) + 30_000;
/** The replay's segments visible in the destination before the kill. */
const KILL_AFTER_SEGMENTS = 2;
const KILL_WAIT_MS = 90_000;
const POLL_MS = 50;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Item i of the export: a deterministic, incompressible-ish payload (hex of a hash chain). */
function exportItem(i: number): AttributeMap {
  let payload = '';
  let h = `item ${i}`;
  while (payload.length < PAYLOAD_CHARS) {
    h = createHash('sha256').update(h).digest('hex');
    payload += h;
  }
  return {
    pk: { S: `item-${String(i).padStart(5, '0')}` },
    sk: { N: String(i % 3) },
    payload: { S: payload.slice(0, PAYLOAD_CHARS) },
    n: { N: String(i * 7919) },
  };
}

interface Destination {
  url: string;
  store: ObjectStore;
  leaseTable: string;
}

describe('replay killed with SIGKILL mid-way, then the same command again', () => {
  let dynamo: DynamoDbLocal;
  let s3: S3rverServer;
  let ddb: DynamoDBClient;
  let dir: string;
  let env: Record<string, string>;
  let killed: CliProcess | undefined;

  beforeAll(async () => {
    [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver(BUCKET)]);
    // DynamoDB Local keeps a database per access key: the CLI processes' credentials, so one table.
    ddb = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: 3,
    });
    await createStreamTable(ddb, TABLE);
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-replay-kill-'));
    env = localAwsEnvironment({ dynamodb: dynamo.endpoint, s3: s3.endpoint });
  });

  afterAll(async () => {
    killed?.killNow();
    ddb?.destroy();
    await Promise.all([dynamo?.stop(), s3?.stop()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** The sealed changelog under `s3://BUCKET/<prefix>`, its registry in a lease table of its own. */
  async function destination(prefix: string): Promise<Destination> {
    const url = `s3://${BUCKET}/${prefix}`;
    const store = openObjectStore(url, { s3: { client: s3.client } });
    const leaseTable = `${prefix}-leases`;
    await writeSealedChangelog({ client: ddb, leaseTable, store });
    return { url, store, leaseTable };
  }

  async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
    const out: string[] = [];
    for await (const o of store.list(prefix)) out.push(o.key);
    return out;
  }

  const replaySegments = async (d: Destination) =>
    (await keys(d.store, `${TABLE}/data/`)).filter(
      (k) => isReplaySegmentKey(k) && k.includes(`/replay-${REPLAY_ID}-`),
    );

  /**
   * Every object under data/, manifests/ and symlinks/, key (relative to the destination) to its
   * sha256; symlink manifests with the destination's URL replaced by `<destination>`.
   */
  async function objects(d: Destination): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const folder of ['data', 'manifests', 'symlinks']) {
      for (const key of await keys(d.store, `${TABLE}/${folder}/`)) {
        const body = await d.store.get(key);
        if (body === undefined) throw new Error(`${d.url}/${key} vanished while listed`);
        out.set(
          key,
          folder === 'symlinks'
            ? Buffer.from(body).toString('utf8').replaceAll(`${d.url}/`, '<destination>/')
            : sha256(body),
        );
      }
    }
    return out;
  }

  it('ends with the objects of an uninterrupted run, byte for byte, and verify passes', async () => {
    const interrupted = await destination('interrupted');
    const reference = await destination('reference');
    const exportStore = openObjectStore(`s3://${BUCKET}/exports`, { s3: { client: s3.client } });
    const written = await writeExport(exportStore, {
      prefix: '',
      s3Prefix: 'exports',
      exportId: '01700000000013-killtest',
      tableArn: TABLE_ARN,
      type: 'full',
      items: Array.from({ length: ITEMS }, (_, i) => exportItem(i)),
      filesCount: EXPORT_FILES,
      exportTimeMs: EXPORT_TIME_MS,
    });
    const replayArgs = (d: Destination) => [
      'replay',
      ...['--mode', 'bootstrap', '--source', 'export'],
      ...['--export', `s3://${BUCKET}/exports/${written.exportPrefix}`],
      ...['--destination', d.url, '--table', TABLE, '--lease-table', d.leaseTable],
      ...['--max-segment-bytes', '1MiB', '--replay-id', REPLAY_ID, '--progress', 'none'],
      '--s3-force-path-style',
    ];
    const logFile = path.join(dir, 'cli.log');
    const ok = (run: CliRun, what: string): CliRun => {
      expect(run.exit, `${what} failed:\n${run.stderr}`).toEqual({ code: 0, signal: null });
      return run;
    };

    // 1. Killed (-9) once at least two of its segments are in the destination.
    killed = startCli(replayArgs(interrupted), { env, name: 'replay-killed', logFile });
    const deadline = performance.now() + KILL_WAIT_MS;
    let before: string[] = [];
    while (!killed.exited && before.length < KILL_AFTER_SEGMENTS) {
      if (performance.now() > deadline)
        throw new Error(
          `no ${KILL_AFTER_SEGMENTS} replay segments within ${KILL_WAIT_MS} ms\n${killed.tail()}`,
        );
      await sleep(POLL_MS);
      before = await replaySegments(interrupted);
    }
    killed.killNow();
    const exit = await killed.waitForExit(10_000);
    // Exited on its own: it finished (or failed) before the kill, and nothing was interrupted.
    expect(exit, `the replay was not interrupted:\n${killed.tail()}`).toEqual({
      code: null,
      signal: 'SIGKILL',
    });
    const atKill = await replaySegments(interrupted);
    expect(atKill.length).toBeGreaterThanOrEqual(KILL_AFTER_SEGMENTS);
    // Nothing published: no version 2 of any window, the symlink manifests as the sealer wrote them.
    expect(
      (await keys(interrupted.store, `${TABLE}/manifests/`)).filter((k) => /\.v\d+\.json$/.test(k)),
    ).toEqual([]);
    expect(await keys(interrupted.store, `${TABLE}/revisions/`)).toEqual([]);

    // 2. The same command again: resumes from its saved progress and finishes.
    const resumed = ok(
      await runCli(replayArgs(interrupted), { env, name: 'replay-resumed', logFile }),
      'the resumed replay',
    );
    const resuming = new RegExp(
      `replay ${REPLAY_ID}: resuming \\((\\d+) segment\\(s\\), (\\d+) row\\(s\\)`,
    ).exec(resumed.stderr);
    expect(resuming, resumed.stderr).not.toBeNull();
    const savedSegments = Number(resuming![1]);
    expect(savedSegments).toBeGreaterThanOrEqual(1);

    // 3. The reference: the same flags on the other destination, never interrupted.
    const whole = ok(
      await runCli(replayArgs(reference), { env, name: 'replay-reference', logFile }),
      'the reference',
    );
    expect(whole.stderr).not.toContain('resuming');

    // The replay wrote at least 5 segments of the export's rows into window 3's version 2, and the
    // kill came before the last of them was written (and before the last was saved).
    const v2Key = manifestObjectKey(TABLE, W(3), 2);
    const v2 = parseManifest((await interrupted.store.get(v2Key))!, v2Key);
    const added = v2.segments.filter((s) => s.addedInVersion === 2);
    expect(added.length).toBeGreaterThanOrEqual(5);
    expect(added.reduce((n, s) => n + s.records, 0)).toBe(ITEMS);
    expect(atKill.length).toBeLessThan(added.length);
    expect(savedSegments).toBeLessThan(added.length);
    expect(added.map((s) => s.key).sort()).toEqual(await replaySegments(interrupted));

    // 4. Byte-identical: segments, every manifest version, symlink manifests.
    const [mine, theirs] = await Promise.all([objects(interrupted), objects(reference)]);
    expect([...mine.keys()]).toEqual([...theirs.keys()]);
    for (const [key, value] of mine) expect(value, key).toBe(theirs.get(key));
    // One revision log entry each (its key and body carry the publish time).
    const revisions = await Promise.all(
      [interrupted, reference].map((d) => keys(d.store, `${TABLE}/revisions/`)),
    );
    expect(revisions.map((r) => r.length)).toEqual([1, 1]);

    console.log(
      `replay kill: ${atKill.length} of ${added.length} segments written at the kill, ${savedSegments} ` +
        `in the saved progress; ${mine.size} objects compared`,
    );

    // 5. verify accepts the resumed changelog.
    ok(
      await runCli(
        [
          'verify',
          '--destination',
          interrupted.url,
          '--table',
          TABLE,
          '--since',
          isoTime(W(0)),
          '--s3-force-path-style',
        ],
        { env, name: 'verify', logFile },
      ),
      'verify',
    );
  }, 300_000);
});
