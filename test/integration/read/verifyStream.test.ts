import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { isoTime, windowStartOf } from '../../../src/changelog/layout.js';
import { main } from '../../../src/cli/main.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import type { VerifyReport } from '../../../src/read/verifier.js';
import { buildManifest, buildSegment, writeManifest } from '../../helpers/changelogFixtures.js';
import { createStreamTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import type { WireRecord } from '../../helpers/streamRecords.js';

/*
 * The real CLI's `verify --stream` against DynamoDB Local (one open shard). The changelog is
 * built from the records the stream holds, by the real segment encoder (from the raw GetRecords
 * bytes, as the daemon decodes them) and the real manifest serializer, one segment per 1-minute
 * window, chained as the pipeline chains them. No existing integration test leaves a pipeline
 * changelog with windows `verify` accepts (the worker test seals 1 s windows), and a real
 * pipeline with 1-minute windows would wait up to a minute for its first seal.
 */

const TABLE = 'verify-stream-it';
const WINDOW_MS = 60_000;
const local = useDynamoDbLocal();
let streams: DynamoDBStreamsClient;
let streamArn: string;
let shardId: string;
let stream: WireRecord[];

beforeAll(async () => {
  const { client, endpoint } = local();
  streamArn = await createStreamTable(client, TABLE);
  for (let i = 0; i < 30; i++) {
    const pk = { S: `item-${i % 12}` };
    if (i < 12) {
      await client.send(
        new PutItemCommand({ TableName: TABLE, Item: { pk, sk: { N: '1' }, v: { N: '0' } } }),
      );
    } else {
      await client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: { pk, sk: { N: '1' } },
          UpdateExpression: 'SET v = v + :one',
          ExpressionAttributeValues: { ':one': { N: '1' } },
        }),
      );
    }
  }
  streams = new DynamoDBStreamsClient({
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  // The stream's records as the service sent them (raw GetRecords bodies).
  const described = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  shardId = described.StreamDescription!.Shards![0]!.ShardId!;
  const raw = new RawGetRecordsClient(streams);
  let iterator = (
    await streams.send(
      new GetShardIteratorCommand({
        StreamArn: streamArn,
        ShardId: shardId,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    )
  ).ShardIterator;
  stream = [];
  for (let empty = 0; iterator && empty < 3; ) {
    const body = JSON.parse(
      Buffer.from((await raw.getRecords({ ShardIterator: iterator })).body).toString('utf8'),
    ) as { Records: WireRecord[]; NextShardIterator?: string };
    stream.push(...body.Records);
    empty = body.Records.length === 0 ? empty + 1 : 0;
    iterator = body.NextShardIterator;
  }
  raw.destroy();
  expect(stream).toHaveLength(30);
});

afterAll(() => streams?.destroy());

/**
 * Writes a changelog of `records` (one segment per window, chained; every window from the first
 * to the last gets a manifest); returns the first window's start.
 */
async function writeChangelogOf(store: LocalObjectStore, records: WireRecord[]): Promise<number> {
  const byWindow = new Map<number, WireRecord[]>();
  for (const r of records) {
    const w = windowStartOf(r.dynamodb.ApproximateCreationDateTime * 1000, WINDOW_MS);
    byWindow.set(w, [...(byWindow.get(w) ?? []), r]);
  }
  const starts = [...byWindow.keys()].sort((a, b) => a - b);
  let after = 'TRIM_HORIZON';
  for (let w = starts[0]!; w <= starts.at(-1)!; w += WINDOW_MS) {
    const part = byWindow.get(w);
    const segments = [];
    if (part !== undefined) {
      const built = buildSegment(w, [{ shardId, records: part, afterSequenceNumber: after }], TABLE);
      await store.putIfAbsent(built.key, built.bytes);
      segments.push(built.entry);
      after = built.entry.shards[0]!.lastSequenceNumber;
    }
    await writeManifest(store, { ...buildManifest(w, segments, { table: TABLE }), streamArn });
  }
  return starts[0]!;
}

describe('verify --stream on DynamoDB Local', () => {
  let dir: string;
  let stdout: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'verify-stream-it-'));
    stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    // The CLI builds its Streams client from the SDK's environment conventions.
    vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB_STREAMS', local().endpoint);
    vi.stubEnv('AWS_REGION', 'us-east-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'local');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'local');
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    await rm(dir, { recursive: true, force: true });
  });

  const verify = (sinceMs: number) =>
    main([
      'node',
      'dynamodb-changelog',
      'verify',
      '--destination',
      pathToFileURL(dir).href,
      '--table',
      TABLE,
      '--since',
      isoTime(sinceMs),
      '--stream',
      '--json',
    ]);

  it('proves a changelog that holds every record once', async () => {
    const since = await writeChangelogOf(new LocalObjectStore({ dir }), stream);
    expect(await verify(since)).toBe(0);
    const report = JSON.parse(stdout) as VerifyReport;
    expect(report.violations).toEqual([]);
    expect(report.stream).toMatchObject({
      streamArns: [streamArn],
      shardsRead: 1,
      recordsRead: 30,
      recordsChecked: 30,
      recordsMatched: 30,
      rowsNotAuditable: 0,
    });
  });

  it('finds the records a segment skipped while its chain stayed contiguous', async () => {
    const lossy = stream.filter((_, i) => i < 10 || i > 12);
    const since = await writeChangelogOf(new LocalObjectStore({ dir }), lossy);
    expect(await verify(since)).toBe(1);
    const report = JSON.parse(stdout) as VerifyReport;
    expect(report.violations).toEqual([
      expect.objectContaining({
        kind: 'stream-record-missing',
        shardId,
        firstSequenceNumber: stream[10]!.dynamodb.SequenceNumber,
        lastSequenceNumber: stream[12]!.dynamodb.SequenceNumber,
        records: 3,
      }),
    ]);
    expect(report.stream).toMatchObject({ recordsMatched: 27, recordsMissing: 3 });
  });
});
