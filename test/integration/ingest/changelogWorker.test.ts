import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { manifestPrefix } from '../../../src/changelog/layout.js';
import { parseManifest } from '../../../src/changelog/manifest.js';
import { pipelineConfig } from '../../../src/coordination/config.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import type { CommittedSegment } from '../../../src/coordination/pipelineObserver.js';
import { ChangelogWorker } from '../../../src/ingest/changelogWorker.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { readWithDuckDB } from '../../helpers/parquetReaders.js';

/*
 * Two in-process workers on the real DynamoDB Local commit segments to a local directory and
 * seal windows. Windows are 1 s here (the CLI allows 1 m and up; the classes take any size) so
 * sealing does not wait for a minute to pass; DynamoDB Local rounds event times to the minute,
 * so a minute's records share one window and the rest stay empty.
 */
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const schema = parseKeySchema('pk:S,sk:N');

let local: DynamoDbLocal;
let dynamodb: DynamoDBClient;
let streams: DynamoDBStreamsClient;
let dir: string;

beforeAll(async () => {
  local = await startDynamoDbLocal();
  dynamodb = new DynamoDBClient({
    region: 'us-east-1',
    endpoint: local.endpoint,
    credentials,
    maxAttempts: 1,
  });
  streams = new DynamoDBStreamsClient({
    region: 'us-east-1',
    endpoint: local.endpoint,
    credentials,
    maxAttempts: 1,
  });
  dir = await mkdtemp(path.join(tmpdir(), 'changelog-worker-'));
});

afterAll(async () => {
  dynamodb?.destroy();
  streams?.destroy();
  await local?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every event id the stream holds (DynamoDB Local: one shard per table). */
async function streamEventIds(streamArn: string): Promise<string[]> {
  const described = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  const ids: string[] = [];
  for (const shard of described.StreamDescription?.Shards ?? []) {
    let iterator = (
      await streams.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shard.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    for (let empty = 0; iterator && empty < 2; ) {
      const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
      for (const r of page.Records ?? []) ids.push(r.eventID!);
      empty = (page.Records ?? []).length === 0 ? empty + 1 : 0;
      iterator = page.NextShardIterator;
    }
  }
  return ids;
}

async function sealedRows(store: LocalObjectStore, table: string) {
  const rows: { event_id: string; sequence_number: string; pk: string }[] = [];
  let manifests = 0;
  for await (const object of store.list(manifestPrefix(table))) {
    const manifest = parseManifest((await store.get(object.key))!, object.key);
    manifests++;
    for (const segment of manifest.segments) {
      const bytes = (await store.get(segment.key))!;
      for (const row of await readWithDuckDB(bytes)) {
        rows.push({
          event_id: String(row.event_id),
          sequence_number: String(row.sequence_number),
          pk: String(row.pk),
        });
      }
    }
  }
  return { rows, manifests };
}

describe('ChangelogWorker on DynamoDB Local', () => {
  it('commits every change exactly once into sealed windows, across a worker crash', async () => {
    const table = 'orders';
    const leaseTable = 'changelog-leases';
    const streamArn = await createStreamTable(dynamodb, table);
    await createLeaseTable(dynamodb, leaseTable);
    const store = new LocalObjectStore({ dir });
    const commits: CommittedSegment[] = [];
    const makeWorker = (workerId: string) =>
      new ChangelogWorker({
        workerId,
        table,
        streamArn,
        keySchema: schema,
        dynamodb,
        streams,
        raw: new RawGetRecordsClient(streams),
        leaseTableName: leaseTable,
        store,
        config: pipelineConfig({
          window: { windowMs: 1000, allowedLatenessMs: 500 },
          buffer: { flushIntervalMs: 300 },
          lease: { failoverMs: 1500 },
          orphans: { orphanGraceMs: 0 },
        }),
        idleMinMs: 50,
        idleMaxMs: 200,
        observer: { segmentCommitted: (e) => commits.push(e) },
      });

    const write = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const pk = `item-${i % 40}`;
        if (i < 40) {
          await dynamodb.send(
            new PutItemCommand({ TableName: table, Item: { pk: { S: pk }, sk: { N: '1' }, v: { N: '0' } } }),
          );
        } else {
          await dynamodb.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { pk: { S: pk }, sk: { N: '1' } },
              UpdateExpression: 'SET v = v + :one',
              ExpressionAttributeValues: { ':one': { N: '1' } },
            }),
          );
        }
      }
    };

    // Worker a reads and commits, then "crashes" (no release, no drain); b takes over.
    const a = new AbortController();
    const workerA = makeWorker('worker-a');
    const runA = workerA.run(a.signal);
    await write(0, 150);
    await waitFor(() => commits.length > 0, 30_000);
    workerA.streamWorker['o'].releaseOnStop = false;
    a.abort();
    await runA;

    const b = new AbortController();
    const runB = makeWorker('worker-b').run(b.signal);
    await write(150, 300);

    const expected = await streamEventIds(streamArn);
    expect(expected.length).toBe(300);
    let sealed = await sealedRows(store, table);
    await waitFor(async () => {
      sealed = await sealedRows(store, table);
      return sealed.rows.length >= expected.length;
    }, 60_000);
    b.abort();
    await runB;

    const ids = sealed.rows.map((r) => r.event_id);
    expect(new Set(ids).size).toBe(ids.length); // no duplicates
    expect([...ids].sort()).toEqual([...expected].sort()); // nothing missing, nothing extra
    expect(sealed.manifests).toBeGreaterThan(0);
    // Per item, stream order: sequence numbers increase.
    const byKey = new Map<string, bigint[]>();
    for (const r of sealed.rows) byKey.set(r.pk, [...(byKey.get(r.pk) ?? []), BigInt(r.sequence_number)]);
    for (const seqs of byKey.values()) {
      const sorted = [...seqs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(sorted.length).toBe(seqs.length);
    }
  }, 180_000);
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
