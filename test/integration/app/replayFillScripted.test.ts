import { PassThrough } from 'node:stream';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  TrimmedDataAccessException,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { runReplay } from '../../../src/app/replay.js';
import type { ReplayConfig } from '../../../src/app/replayConfig.js';
import type { AttributeMap } from '../../../src/changelog/attributeValueJson.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { isoTime, manifestObjectKey, windowStartOf } from '../../../src/changelog/layout.js';
import { type Manifest, parseManifest } from '../../../src/changelog/manifest.js';
import { pipelineConfig } from '../../../src/coordination/config.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import type { CommittedSegment } from '../../../src/coordination/pipelineObserver.js';
import { ChangelogWorker } from '../../../src/ingest/changelogWorker.js';
import { verifyChangelog } from '../../../src/read/verifier.js';
import { createStreamTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { writeExport } from '../../helpers/exportFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import { latestOpByKey } from '../../helpers/replayFixture.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import { getRecordsResponse, type WireItem, type WireRecord } from '../../helpers/streamRecords.js';

/*
 * Issue 13 end to end: the daemon itself records a gap, and an incremental export fills it.
 *
 * The real ChangelogWorker runs in-process: leases and registry on DynamoDB Local, segments and
 * manifests in memory, and a Streams API scripted with aws-sdk-client-mock the way DynamoDB
 * answers (as streamWorkerTrim.test.ts). The stream holds ONE closed shard whose records carry
 * fixed event times over 1-minute windows W(0)..W(4). While the worker commits the first records
 * of W(1), the trim horizon moves past four unread records: the iterator it holds raises
 * TrimmedDataAccessException, as does AT/AFTER_SEQUENCE_NUMBER into them; TRIM_HORIZON resumes
 * after them. The sealer seals W(0)..W(3) (W(4) holds the last record, which is the watermark of
 * a finished stream: its window cannot close), W(1)'s manifest lists the gap. Then `replay
 * --mode fill-gaps` reads an incremental export of the trimmed period.
 *
 * Event times are a couple of hours old, not a fixed date: the sealer starts the window state at
 * the stream's retention (24 h) before the wall clock, so records older than that would go to the
 * first open window as late rows.
 */
const local = useDynamoDbLocal();
const TABLE = 'orders';
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}`;
const STREAM = `${TABLE_ARN}/stream/2026-01-01T00:00:00.000`;
const SHARD = 'shardId-00000001700000000000-closed01';
const WINDOW_MS = 60_000;
const NOW = Date.now();
const FIRST = windowStartOf(NOW - 2 * 3_600_000, WINDOW_MS);
const W = (i: number) => FIRST + i * WINDOW_MS;
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

const image = (pk: string, v: number): WireItem => ({ pk: { S: pk }, sk: { N: '1' }, v: { N: String(v) } });

/** The shard's records, in stream order: [window, seconds into it, op, item, version]. */
const SCRIPT: [number, number, WireRecord['eventName'], string, number][] = [
  [0, 5, 'INSERT', 'a-0', 1],
  [0, 10, 'INSERT', 'a-1', 1],
  [0, 15, 'INSERT', 'keep', 1],
  [0, 20, 'INSERT', 'doomed', 1],
  [0, 30, 'MODIFY', 'a-0', 2],
  [1, 5, 'MODIFY', 'a-1', 2],
  [1, 10, 'MODIFY', 'keep', 2], // index 6: the last record read before the trim
  [1, 20, 'INSERT', 'lost-1', 1], // 7..10: trimmed before they were read
  [1, 25, 'REMOVE', 'doomed', 1],
  [1, 30, 'MODIFY', 'lost-1', 2],
  [1, 35, 'INSERT', 'lost-2', 1],
  [1, 45, 'INSERT', 'a-2', 1], // index 11: where reading resumes
  [1, 50, 'MODIFY', 'a-0', 3],
  [2, 10, 'INSERT', 'b-0', 1],
  [2, 20, 'MODIFY', 'a-2', 2],
  [2, 40, 'MODIFY', 'a-1', 3],
  [3, 10, 'INSERT', 'b-1', 1],
  [3, 30, 'REMOVE', 'b-0', 1],
  [3, 50, 'MODIFY', 'keep', 3],
  [4, 30, 'INSERT', 'tail', 1], // the last record: the finished stream's watermark
];
const TRIM_FROM = 7;
const TRIM_TO = 11;

const RECORDS: WireRecord[] = SCRIPT.map(([w, s, op, pk, v], i) => {
  const seq = 10n ** 20n + BigInt(i) * 1000n + 7n;
  return {
    awsRegion: 'us-east-1',
    dynamodb: {
      ApproximateCreationDateTime: (W(w) + s * 1000) / 1000,
      Keys: { pk: { S: pk }, sk: { N: '1' } },
      ...(op !== 'INSERT' && { OldImage: image(pk, op === 'REMOVE' ? v : v - 1) }),
      ...(op !== 'REMOVE' && { NewImage: image(pk, v) }),
      SequenceNumber: String(seq),
      SizeBytes: 60,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
    eventID: `${(i + 1).toString(16).padStart(8, '0')}${'e'.repeat(24)}`,
    eventName: op,
    eventSource: 'aws:dynamodb',
    eventVersion: '1.1',
  };
});
const seq = (i: number) => RECORDS[i]!.dynamodb.SequenceNumber;
const at = (i: number) => RECORDS[i]!.dynamodb.ApproximateCreationDateTime * 1000;

/** DynamoDB Streams for one closed shard whose trim horizon moves past TRIM_FROM..TRIM_TO-1 mid-read. */
function scriptedStreams(commits: readonly CommittedSegment[]) {
  const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
  const mock = mockClient(streams);
  const calls = { trimmed: 0, iterators: [] as string[] };
  /** Records before this index are trimmed. */
  let horizon = 0;
  const trimmed = () => {
    calls.trimmed++;
    return new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} });
  };
  mock.on(DescribeStreamCommand).resolves({
    StreamDescription: {
      StreamArn: STREAM,
      StreamStatus: 'ENABLED',
      Shards: [
        {
          ShardId: SHARD,
          SequenceNumberRange: {
            StartingSequenceNumber: seq(0),
            EndingSequenceNumber: seq(RECORDS.length - 1),
          },
        },
      ],
    },
  });
  mock
    .on(GetShardIteratorCommand)
    .callsFake(async (input: { ShardId: string; ShardIteratorType: string; SequenceNumber?: string }) => {
      calls.iterators.push(`${input.ShardIteratorType} ${input.SequenceNumber ?? ''}`.trim());
      if (input.ShardId !== SHARD) throw new Error(`no shard ${input.ShardId}`);
      if (input.ShardIteratorType === 'TRIM_HORIZON') return { ShardIterator: `${SHARD}#${horizon}` };
      const target = BigInt(input.SequenceNumber!);
      const after = input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER';
      let index = RECORDS.findIndex((r) => {
        const s = BigInt(r.dynamodb.SequenceNumber);
        return after ? s > target : s >= target;
      });
      if (index < 0) index = RECORDS.length;
      if (index < horizon) throw trimmed();
      return { ShardIterator: `${SHARD}#${index}` };
    });
  mock.on(GetRecordsCommand).callsFake(async (input: { ShardIterator: string }) => {
    const from = Number(input.ShardIterator.split('#')[1]);
    if (from >= TRIM_FROM && from < TRIM_TO && horizon < TRIM_TO) {
      // The trim lands while the worker commits what it read: the next read finds it.
      await waitFor(
        () => commits.some((c) => c.shards.some((s) => s.lastSequenceNumber === seq(TRIM_FROM - 1))),
        30_000,
      );
      horizon = TRIM_TO;
    }
    if (from < horizon) throw trimmed();
    // Pages of up to 3 records; one ends right before the records the trim takes.
    const end = Math.min(from + 3, RECORDS.length, from < TRIM_FROM ? TRIM_FROM : RECORDS.length);
    const next = end >= RECORDS.length ? undefined : `${SHARD}#${end}`;
    return sdkDeserializeGetRecords(getRecordsResponse(RECORDS.slice(from, end), next));
  });
  return { streams, calls };
}

const item = (pk: string, v: number): AttributeMap => ({
  pk: { S: pk },
  sk: { N: '1' },
  v: { N: String(v) },
});

const latest = (store: MemoryObjectStore) => latestOpByKey(store, W(0), NOW);

const manifestOf = (store: MemoryObjectStore, w: number, version = 1): Manifest | undefined => {
  const key = manifestObjectKey(TABLE, W(w), version);
  const object = store.objects.get(key);
  return object === undefined ? undefined : parseManifest(object.body, key);
};

describe('replay fill-gaps of a gap the daemon recorded from a trimming stream', () => {
  it('the worker seals the trim as a gap; an incremental export fills it with NET rows', async () => {
    const client = local().client;
    const leaseTable = 'fill-leases';
    await createLeaseTable(client, leaseTable);
    // replay reads the key schema from the table.
    await createStreamTable(client, TABLE);
    const store = new MemoryObjectStore();
    const commits: CommittedSegment[] = [];
    const { streams, calls } = scriptedStreams(commits);
    const worker = new ChangelogWorker({
      workerId: 'w1',
      table: TABLE,
      streamArn: STREAM,
      keySchema: parseKeySchema('pk:S,sk:N'),
      dynamodb: client,
      streams,
      leaseTableName: leaseTable,
      store,
      config: pipelineConfig({
        window: { windowMs: WINDOW_MS, allowedLatenessMs: 10_000 },
        buffer: { flushIntervalMs: 200 },
        lease: { failoverMs: 3000 },
      }),
      idleMinMs: 10,
      idleMaxMs: 50,
      observer: { segmentCommitted: (e) => commits.push(e) },
    });

    // 1. The worker reads the shard to its end and the sealer seals W(0)..W(3).
    const controller = new AbortController();
    const running = worker.run(controller.signal);
    try {
      await waitFor(async () => {
        const state = await worker.registry.getState();
        return state !== undefined && state.sealedThroughMs >= W(4);
      }, 60_000);
    } finally {
      controller.abort(new Error('test over'));
      await running;
      streams.destroy();
    }
    expect(calls.trimmed).toBeGreaterThan(0);
    expect(calls.iterators[0]).toBe('TRIM_HORIZON');
    const sealed = [0, 1, 2, 3].map((w) => manifestOf(store, w));
    expect(sealed.every((m) => m !== undefined)).toBe(true);
    expect(manifestOf(store, 4)).toBeUndefined();
    // Every record read is in a sealed window once; none of the trimmed ones.
    expect(sealed.reduce((n, m) => n + m!.recordCount, 0)).toBe(RECORDS.length - 1 - (TRIM_TO - TRIM_FROM));
    for (const w of [0, 2, 3]) {
      expect(sealed[w]!.complete).toBe(true);
      expect(sealed[w]!.gaps).toEqual([]);
    }
    const v1 = sealed[1]!;
    expect(v1.complete).toBe(false);
    const gap = {
      shardId: SHARD,
      afterSequenceNumber: seq(TRIM_FROM - 1),
      resumedAtSequenceNumber: seq(TRIM_TO),
      fromTime: isoTime(at(TRIM_FROM - 1)),
      toTime: isoTime(at(TRIM_TO)),
      reason: 'TrimmedDataAccessException',
    };
    expect(v1.gaps).toEqual([gap]);
    // The window's two segments break the chain exactly where the gap is.
    const ranges = v1.segments
      .flatMap((s) => s.shards)
      .map((s) => [s.afterSequenceNumber, s.firstSequenceNumber]);
    expect(ranges).toContainEqual([seq(TRIM_FROM - 1), seq(TRIM_TO)]);

    // 2. An incremental export of the trimmed period: the final states of what changed in it.
    const exports = new MemoryObjectStore();
    (exports as { url: string }).url = 'memory://exports';
    const micros = (i: number) => BigInt(at(i)) * 1000n;
    const written = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000013-fill',
      tableArn: TABLE_ARN,
      type: 'incremental',
      changes: [
        {
          keys: { pk: { S: 'lost-1' }, sk: { N: '1' } },
          newImage: item('lost-1', 2),
          writeTimestampMicros: micros(9),
        },
        { keys: { pk: { S: 'doomed' }, sk: { N: '1' } }, writeTimestampMicros: micros(8) },
        {
          keys: { pk: { S: 'lost-2' }, sk: { N: '1' } },
          newImage: item('lost-2', 1),
          writeTimestampMicros: micros(10),
        },
      ],
      fromMs: at(TRIM_FROM - 1),
      toMs: at(TRIM_TO),
      exportTimeMs: W(4) + 20 * 60_000,
    });
    const config: ReplayConfig = {
      destination: { url: store.url, s3ForcePathStyle: false },
      table: TABLE,
      leaseTable,
      mode: 'fill-gaps',
      source: 'export',
      sinceMs: W(0),
      untilMs: undefined,
      exportUrl: `memory://exports/${written.exportPrefix}`,
      startExport: undefined,
      segments: 2,
      maxRcuPerSecond: undefined,
      replayId: 'fill-13',
      dryRun: false,
      waitForSealMs: 0,
      progress: 'none',
      maxSegmentBytes: 2_000,
    };
    const result = await runReplay(config, {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      openStore: (url) => (url.startsWith('memory://exports') ? exports : store),
      dynamodb: client,
      now: () => NOW,
    });

    // 3. Version 2 of the gap's window: complete, the gap filled by this replay.
    expect(result.published).toEqual([{ windowStartMs: W(1), version: 2 }]);
    expect(result.rows).toBe(3);
    const v2 = manifestOf(store, 1, 2)!;
    expect(v2.complete).toBe(true);
    expect(v2.gaps).toEqual([
      {
        ...gap,
        filledBy: {
          replayId: 'fill-13',
          kind: 'export',
          exportArn: written.exportArn,
          records: 3,
          filledAt: isoTime(NOW),
        },
      },
    ]);
    const report = await verifyChangelog({ store, table: TABLE, sinceMs: W(0) });
    expect(report.violations).toEqual([]);
    expect(report.gaps.map((g) => g.filledBy?.replayId)).toEqual(['fill-13']);
    // Latest: NET rows for the trimmed items (the deleted one gone), stream rows for the rest.
    const state = await latest(store);
    expect(Object.fromEntries([...state].sort())).toEqual({
      'a-0': 'MODIFY',
      'a-1': 'MODIFY',
      'a-2': 'MODIFY',
      'b-1': 'INSERT',
      keep: 'MODIFY',
      'lost-1': 'NET',
      'lost-2': 'NET',
    });
  }, 120_000);
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
