import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonResult, runDaemon } from '../../../src/app/daemon.js';
import type { RunConfig } from '../../../src/app/runConfig.js';
import { windowStartOf } from '../../../src/changelog/layout.js';
import { pipelineConfig } from '../../../src/coordination/config.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import type { Logger } from '../../../src/support/logger.js';
import { ChangelogReader, type ChangelogRow } from '../../helpers/changelogReader.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';
import {
  type EmulatedRecord,
  type StreamsEmulator,
  startStreamsEmulator,
} from '../../helpers/streamsEmulator.js';

/*
 * `run` with only --table follows the table across a stream disable and re-enable. Two daemons
 * (in-process runDaemon, so windows can be 2 s instead of the CLI's 1 m minimum) read a 4-shard
 * emulated stream (test/helpers/streamsEmulator.ts, over DynamoDB Local) into s3rver. Items are
 * written, the stream is disabled (writes then are not streamed, as on AWS), enabled again (a new
 * stream, new shards), and the same items are updated. Every record of both streams must be in
 * exactly one sealed manifest, and per item the sealed changes must keep their order across the
 * two streams: by window, then stream, then sequence number.
 *
 * The old stream's records are stamped SKEW_MS ahead of the new stream's (the emulator's clock is
 * moved back at the re-enable), so its shards commit to windows later than where the new stream's
 * records of the same items would go by their own event time, while those windows are still open
 * (the allowed lateness is longer than the skew). Only the window floor the new stream starts
 * with (the old leases' latest window) keeps those records from landing in earlier windows.
 */

const TABLE = 'follow-source';
const LEASE_TABLE = 'follow-leases';
const BUCKET = 'changelog-follow';
const PREFIX = 'changelog';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const WINDOW_MS = 2_000;
const LATENESS_MS = 8_000;
const SKEW_MS = 6_000;
const ITEMS = 30;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

function captureLogger(name: string, lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (details: Record<string, unknown>, msg: string): void => {
      lines.push({ ...details, level, msg, worker: name });
    };
  return { debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') };
}

describe('run follows the table across a stream disable and re-enable', () => {
  let dynamo: DynamoDbLocal;
  let s3: S3rverServer;
  let ddb: DynamoDBClient;
  let emulator: StreamsEmulator | undefined;
  const env: Record<string, string | undefined> = {};

  beforeAll(async () => {
    [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver(BUCKET)]);
    ddb = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: CREDENTIALS,
      maxAttempts: 3,
    });
  });

  afterAll(async () => {
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    ddb?.destroy();
    await emulator?.stop();
    await Promise.all([dynamo?.stop(), s3?.stop()]);
  });

  it('drains the old stream, moves to the new one, and seals both exactly once in per-item order', async () => {
    await createStreamTable(ddb, TABLE);
    let skewMs = 0;
    const emu = await startStreamsEmulator({
      dynamoDbEndpoint: dynamo.endpoint,
      tableName: TABLE,
      accessKeyId: CREDENTIALS.accessKeyId,
      shards: 4,
      pumpIntervalMs: 50,
      seed: 10,
      now: () => Date.now() + skewMs,
    });
    emulator = emu;
    // The daemons find DynamoDB (DescribeTable of the source, the lease table) and Streams at the
    // emulator, S3 at s3rver, through the AWS SDK's own environment variables.
    const vars = {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: emu.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS: emu.endpoint,
      AWS_ENDPOINT_URL_S3: s3.endpoint,
    };
    for (const [name, value] of Object.entries(vars)) {
      env[name] = process.env[name];
      process.env[name] = value;
    }

    const logs: LogLine[] = [];
    const config = (workerId: string): RunConfig => ({
      source: {
        table: TABLE,
        streamArn: undefined,
        leaseTable: LEASE_TABLE,
        createLeaseTable: true,
        workerId,
      },
      destination: {
        url: `s3://${BUCKET}/${PREFIX}`,
        s3ForcePathStyle: true,
        expectedBucketOwner: undefined,
        sseKmsKeyId: undefined,
      },
      pipeline: pipelineConfig({
        window: { windowMs: WINDOW_MS, allowedLatenessMs: LATENESS_MS },
        buffer: { flushIntervalMs: 500 },
        lease: { failoverMs: 3_000 },
      }),
      operations: { metricsPort: 0, shutdownTimeoutMs: 20_000, stallTimeoutMs: 300_000, logLevel: 'info' },
    });
    const stop = new AbortController();
    const daemons: Promise<DaemonResult>[] = ['follow-a', 'follow-b'].map((workerId) =>
      runDaemon(config(workerId), captureLogger(workerId, logs), {
        signal: stop.signal,
        handleSignals: false,
        metricsHost: '127.0.0.1',
        streamPollIntervalMs: 500,
      }),
    );
    const reader = new ChangelogReader({ client: s3.client, bucket: BUCKET, prefix: PREFIX, table: TABLE });
    try {
      const oldArn = emu.streamArn;
      // Both workers run and the first stream's four shards are taken.
      await waitFor(
        () => new Set(logs.filter((l) => l.msg === 'lease taken').map((l) => l['shardId'])).size === 4,
        30_000,
        'the first stream’s shards were not taken',
      );

      const put = (i: number) =>
        ddb.send(
          new PutItemCommand({
            TableName: TABLE,
            Item: { pk: { S: `item-${i}` }, sk: { N: '1' }, v: { N: '0' } },
          }),
        );
      const update = (i: number) =>
        ddb.send(
          new UpdateItemCommand({
            TableName: TABLE,
            Key: { pk: { S: `item-${i}` }, sk: { N: '1' } },
            UpdateExpression: 'SET v = v + :one',
            ExpressionAttributeValues: { ':one': { N: '1' } },
          }),
        );
      const each = async (from: number, to: number, write: (i: number) => Promise<unknown>) => {
        for (let i = from; i < to; i++) await write(i);
      };

      skewMs = SKEW_MS;
      await each(0, ITEMS, put);
      await each(0, ITEMS / 2, update);
      await emu.waitForPump();
      emu.disableStream();
      await each(0, 10, update); // not streamed: the stream is disabled
      await emu.waitForPump();
      skewMs = 0;
      const newArn = emu.enableStream();
      await each(0, ITEMS, update);
      await each(ITEMS, ITEMS + 5, put);
      await emu.waitForPump();
      // More changes once the workers moved to the new stream.
      await waitFor(
        () => logs.some((l) => l.msg === 'stream drained, moving to the next stream'),
        30_000,
        'no worker moved to the new stream',
      );
      await each(0, ITEMS + 5, update);
      await emu.waitForPump();
      expect(emu.counts.dropped).toBe(10);

      const expected = emu.records();
      const streamRank = new Map<string, number>();
      for (const [rank, arn] of [oldArn, newArn].entries()) {
        for (const shard of emu.shards(arn)) streamRank.set(shard.shardId, rank);
      }
      expect(expected.filter((r) => r.streamArn === oldArn)).toHaveLength(ITEMS + ITEMS / 2);
      expect(expected.filter((r) => r.streamArn === newArn)).toHaveLength(2 * (ITEMS + 5));
      expect(expected.every((r) => !r.trimmed)).toBe(true);

      // Wait until every record of both streams is in a sealed manifest.
      const want = new Set(expected.map((r) => r.eventId));
      let snapshot = await reader.read();
      await waitFor(
        async () => {
          snapshot = await reader.read();
          const sealed = new Set(snapshot.rows.map((r) => r.event_id));
          return [...want].every((id) => sealed.has(id));
        },
        40_000,
        'not every record was sealed',
      );

      // Exactly once: each record in one sealed manifest, once; nothing else.
      expect(snapshot.problems).toEqual([]);
      const counts = new Map<string, number>();
      for (const row of snapshot.rows) counts.set(row.event_id, (counts.get(row.event_id) ?? 0) + 1);
      expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
      expect([...counts.keys()].filter((id) => !want.has(id))).toEqual([]);

      // Per item: the sealed changes ordered by (window, stream, sequence number) are the true
      // order of the item's changes (the emulator's placement order: old stream, then new). So an
      // item's new-stream records never sit in an earlier window than its old-stream records.
      const rowOf = new Map(snapshot.rows.map((r) => [r.event_id, r]));
      const sealedOrder = (rows: ChangelogRow[]) =>
        [...rows]
          .sort(
            (a, b) =>
              Date.parse(a.windowStart) - Date.parse(b.windowStart) ||
              streamRank.get(a.shard_id)! - streamRank.get(b.shard_id)! ||
              compareBig(a.sequence_number, b.sequence_number),
          )
          .map((r) => r.event_id);
      const byItem = groupBy(expected, (r: EmulatedRecord) => String(r.keys['pk']?.['S']));
      let crossing = 0;
      for (const [item, records] of byItem) {
        const truth = records.map((r) => r.eventId);
        expect({ item, order: sealedOrder(records.map((r) => rowOf.get(r.eventId)!)) }).toEqual({
          item,
          order: truth,
        });
        if (new Set(records.map((r) => r.streamArn)).size === 2) crossing++;
      }
      expect(crossing).toBe(ITEMS);

      // The new stream started with a window floor: the latest window the old stream's leases
      // committed to. None of its records is in an earlier window.
      const oldLeases = await new LeaseStore({
        client: ddb,
        tableName: LEASE_TABLE,
        streamArn: oldArn,
        workerId: 'inspector',
      }).listLeases();
      expect(oldLeases.map((l) => l.checkpoint)).toEqual([
        'SHARD_END',
        'SHARD_END',
        'SHARD_END',
        'SHARD_END',
      ]);
      const floor = Math.max(...oldLeases.map((l) => l.windowStartMs ?? 0));
      const newRows = snapshot.rows.filter((r) => streamRank.get(r.shard_id) === 1);
      expect(Math.min(...newRows.map((r) => Date.parse(r.windowStart)))).toBeGreaterThanOrEqual(floor);
      // The floor mattered: by their own event time, some of them belonged to earlier windows.
      const heldBack = newRows.filter((r) => windowStartOf(r.event_time, WINDOW_MS) < floor);
      expect(heldBack.length).toBeGreaterThan(0);
      const following = logs.filter((l) => l.msg === 'following stream' && l['streamArn'] === newArn);
      expect(following.length).toBeGreaterThanOrEqual(1);
      for (const line of following) {
        expect(line).toMatchObject({ continuesFrom: oldArn, windowFloor: new Date(floor).toISOString() });
      }

      // The workers logged the move with both streams.
      const moves = logs.filter((l) => l.msg === 'stream drained, moving to the next stream');
      expect(moves.length).toBeGreaterThanOrEqual(1);
      for (const move of moves) expect(move).toMatchObject({ streamArn: oldArn, nextStreamArn: newArn });

      // A window holding both streams' segments is sealed like any other, naming the old stream.
      const windowsOf = (rank: number) =>
        new Set(snapshot.rows.filter((r) => streamRank.get(r.shard_id) === rank).map((r) => r.manifestKey));
      const oldWindows = windowsOf(0);
      const mixed = [...windowsOf(1)].filter((key) => oldWindows.has(key));
      for (const key of mixed) {
        const object = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        const manifest = JSON.parse(await object.Body!.transformToString()) as {
          streamArn: string;
          segments: { key: string; streamArn?: string }[];
        };
        expect(manifest.streamArn).toBe(oldArn);
        // Segments of the new stream name it, so verify --stream audits that stream too.
        const newKeys = new Set(
          snapshot.rows.filter((r) => streamRank.get(r.shard_id) === 1).map((r) => r.segmentKey),
        );
        for (const segment of manifest.segments) {
          expect(segment.streamArn).toBe(newKeys.has(segment.key) ? newArn : undefined);
        }
      }
      console.log(
        `run follows the table: ${expected.length} records (${oldLeases.length} old shards, ` +
          `${emu.shards(newArn).length} new), ${snapshot.manifests.length} manifests, ` +
          `${mixed.length} holding both streams, window floor ${new Date(floor).toISOString()}, ` +
          `${heldBack.length} new-stream records held back by it, ${moves.length} worker(s) logged the move`,
      );
    } finally {
      stop.abort(new Error('test over'));
      const results = await Promise.all(daemons);
      await reader.close();
      expect(results.map((r) => r.exitCode)).toEqual([0, 0]);
    }
    const problems = logs.filter((l) => l.level === 'error');
    expect(problems).toEqual([]);
  }, 120_000);
});

function compareBig(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(keyOf(item));
    if (list) list.push(item);
    else out.set(keyOf(item), [item]);
  }
  return out;
}

async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await sleep(250);
  }
}
