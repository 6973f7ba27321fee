import { PassThrough } from 'node:stream';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReplay } from '../../../src/app/replay.js';
import type { ReplayConfig } from '../../../src/app/replayConfig.js';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import {
  isoTime,
  manifestObjectKey,
  segmentId,
  segmentObjectKey,
  windowStartOf,
} from '../../../src/changelog/layout.js';
import { type ManifestSegment, parseManifest } from '../../../src/changelog/manifest.js';
import { encodeSegment, streamSegmentMetadata } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { sha256Checksum } from '../../../src/coordination/objectStore.js';
import { RegistryStore } from '../../../src/coordination/registryStore.js';
import { getShardIterator } from '../../../src/coordination/shardIterator.js';
import { decodeSegmentRows } from '../../../src/read/segmentRows.js';
import { verifyChangelog } from '../../../src/read/verifier.js';
import { buildManifest, FIRST_WINDOW_MS, WINDOW_MS, writeManifest } from '../../helpers/changelogFixtures.js';
import { createStreamTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import { type StreamsEmulator, startStreamsEmulator } from '../../helpers/streamsEmulator.js';

/*
 * `replay --mode rebuild --source stream` on the many-shard Streams emulator (shards split while
 * records arrive, GetRecords throttled now and then). The changelog is built from the stream's own
 * records with the daemon's encoding (one segment per window and shard, chained), then segment
 * objects are deleted or damaged; the rebuild must restore them byte-identical from the stream,
 * and report (not guess) what the stream no longer holds.
 */

const TABLE = 'orders';
const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');
const W = (i: number) => FIRST_WINDOW_MS + i * WINDOW_MS;
const WINDOWS = 4;
const local = useDynamoDbLocal();
let emulator: StreamsEmulator;
let streams: DynamoDBStreamsClient;
let clock = W(0);

beforeAll(async () => {
  await createStreamTable(local().client, TABLE);
  emulator = await startStreamsEmulator({
    dynamoDbEndpoint: local().endpoint,
    tableName: TABLE,
    shards: 3,
    pump: false,
    now: () => clock,
    throttleRate: 0.1,
  });
  streams = new DynamoDBStreamsClient({
    endpoint: emulator.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  for (let w = 0; w < WINDOWS; w++) {
    clock = W(w) + 5_000;
    emulator.append(
      Array.from({ length: 40 }, (_, i) => ({
        eventName: w === 0 ? ('INSERT' as const) : ('MODIFY' as const),
        keys: { pk: { S: `k-${i}` }, sk: { N: '1' } },
        newImage: { pk: { S: `k-${i}` }, sk: { N: '1' }, v: { N: String(w) }, note: { S: `window ${w} ✓` } },
      })),
    );
    if (w === 1) emulator.split();
    if (w === 2) emulator.split();
  }
}, 120_000);

afterAll(async () => {
  streams?.destroy();
  await emulator?.stop();
});

/** Every record of every shard, decoded as the daemon decodes it, routed into (window, shard) buffers. */
async function changelogFromStream(
  store: MemoryObjectStore,
  compression: 'zstd' | 'snappy' = 'zstd',
): Promise<Map<string, Uint8Array>> {
  const raw = new RawGetRecordsClient(streams);
  const buffers = new Map<number, Map<string, ChangeBuffer>>();
  const signal = new AbortController().signal;
  try {
    for (const shard of emulator.shards()) {
      let iterator: string | undefined = await getShardIterator(
        streams,
        { streamArn: emulator.streamArn, shardId: shard.shardId, type: 'TRIM_HORIZON' },
        { retries: 20, baseDelayMs: 1 },
        signal,
      );
      for (let empty = 0; iterator !== undefined && empty < 3; ) {
        let body: Uint8Array;
        try {
          body = (await raw.getRecords({ ShardIterator: iterator })).body;
        } catch {
          continue; // throttled: ask again
        }
        const page = new ChangeBuffer(KEY_SCHEMA);
        iterator = decodeGetRecordsResponse(body, shard.shardId, page).nextShardIterator;
        empty = page.rowCount === 0 ? empty + 1 : 0;
        for (let r = 0; r < page.rowCount; r++) {
          const w = windowStartOf(page.eventTimeMs(r), WINDOW_MS);
          const byShard = buffers.get(w) ?? new Map<string, ChangeBuffer>();
          buffers.set(w, byShard);
          const buffer = byShard.get(shard.shardId) ?? new ChangeBuffer(KEY_SCHEMA);
          byShard.set(shard.shardId, buffer);
          buffer.appendRowFrom(page, r);
        }
      }
    }
  } finally {
    raw.destroy();
  }
  const after = new Map<string, string>();
  const objects = new Map<string, Uint8Array>();
  for (let w = 0; w < WINDOWS; w++) {
    const entries: ManifestSegment[] = [];
    for (const [shardId, buffer] of [...(buffers.get(W(w)) ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const encoded = encodeSegment(buffer, {
        compression,
        metadata: streamSegmentMetadata(TABLE, emulator.streamArn),
      });
      const key = segmentObjectKey(
        TABLE,
        W(w),
        segmentId({ windowStartMs: W(w), compression, shards: encoded.shards }),
      );
      await store.putIfAbsent(key, encoded.bytes);
      objects.set(key, encoded.bytes);
      const range = encoded.shards[0]!;
      entries.push({
        key,
        bytes: encoded.bytes.length,
        records: encoded.records,
        checksum: sha256Checksum(encoded.bytes),
        minEventTime: isoTime(encoded.minEventTimeMs),
        maxEventTime: isoTime(encoded.maxEventTimeMs),
        lateRecords: 0,
        shards: [{ ...range, afterSequenceNumber: after.get(shardId) ?? 'TRIM_HORIZON' }],
      });
      after.set(shardId, range.lastSequenceNumber);
    }
    const manifest = { ...buildManifest(W(w), entries, { table: TABLE }), streamArn: emulator.streamArn };
    await writeManifest(store, manifest); // and its symlink manifest, as the sealer writes them
  }
  return objects;
}

async function setup(compression: 'zstd' | 'snappy' = 'zstd') {
  const store = new MemoryObjectStore();
  const objects = await changelogFromStream(store, compression);
  const leaseTable = `rebuild-leases-${Math.random().toString(36).slice(2, 8)}`;
  await createLeaseTable(local().client, leaseTable);
  await new RegistryStore({ client: local().client, tableName: leaseTable, table: TABLE }).initState({
    windowMs: WINDOW_MS,
    streamArn: emulator.streamArn,
    closedThroughMs: W(WINDOWS),
    sealedThroughMs: W(WINDOWS),
    closedAtMs: W(WINDOWS),
    firstManifestMs: W(0),
  });
  const config: ReplayConfig = {
    destination: { url: store.url, s3ForcePathStyle: false },
    table: TABLE,
    leaseTable,
    mode: 'rebuild',
    source: 'stream',
    sinceMs: W(0),
    untilMs: undefined,
    exportUrl: undefined,
    startExport: undefined,
    segments: 1,
    maxRcuPerSecond: undefined,
    replayId: 'rebuild-1',
    dryRun: false,
    waitForSealMs: 0,
    progress: 'none',
    maxSegmentBytes: 64 * 1024 * 1024,
  };
  const err: string[] = [];
  const stderr = new PassThrough();
  stderr.on('data', (c: Buffer) => err.push(c.toString('utf8')));
  const io = {
    stdout: new PassThrough(),
    stderr,
    openStore: () => store,
    dynamodb: local().client,
    streams,
    now: () => clock,
  };
  return { store, objects, config, io, err };
}

const eventIds = (bytes: Uint8Array) =>
  [...decodeSegmentRows(bytes, { segmentKey: 'x', windowStartMs: 0 })].map((r) => r.eventId).sort();

describe('replay --mode rebuild --source stream (many-shard emulator)', () => {
  it('restores deleted and damaged segments byte-identical from the stream; verify accepts the range', async () => {
    const { store, objects, config, io } = await setup();
    expect(emulator.shards().length).toBeGreaterThan(3);
    const keys = [...objects.keys()];
    expect(keys.length).toBeGreaterThanOrEqual(8);
    // Two objects deleted (in different windows), one damaged in place (same size, other bytes).
    const [lost1, lost2, damaged] = [keys[1]!, keys[keys.length - 2]!, keys[3]!];
    await store.delete([lost1, lost2, damaged]);
    const garbage = Uint8Array.from(objects.get(damaged)!, (b) => b ^ 0x5a);
    await store.putIfAbsent(damaged, garbage);
    expect(
      (await verifyChangelog({ store, table: TABLE, sinceMs: W(0) })).violations.map((v) => v.kind).sort(),
    ).toEqual(['object-checksum', 'object-missing', 'object-missing']);

    const result = await runReplay(config, io);
    expect(result.segments).toBe(3);
    expect(result.published).toEqual([]); // restored in place: the manifests did not change
    for (const key of [lost1, lost2, damaged]) {
      const restored = store.objects.get(key)!.body;
      expect(Buffer.from(restored).equals(Buffer.from(objects.get(key)!))).toBe(true);
      expect(eventIds(restored)).toEqual(eventIds(objects.get(key)!));
    }
    expect((await verifyChangelog({ store, table: TABLE, sinceMs: W(0) })).violations).toEqual([]);

    // Intact now: a second run finds nothing to do.
    const again = await runReplay(config, io);
    expect(again.segments).toBe(0);
  });

  it('publishes version n+1 with the rebuilt segment in place when the stream gives other bytes (another codec): the same records', async () => {
    const { store, objects, config, io } = await setup('snappy');
    const key = [...objects.keys()][2]!;
    await store.delete([key]);
    const result = await runReplay({ ...config, replayId: 'rebuild-3' }, io);
    expect(result.published).toHaveLength(1);
    const { windowStartMs, version } = result.published[0]!;
    expect(version).toBe(2);
    const v2 = parseManifest(store.objects.get(manifestObjectKey(TABLE, windowStartMs, 2))!.body, 'v2');
    const rebuilt = v2.segments.find((s) => s.source?.kind === 'stream')!;
    expect(rebuilt.key).toMatch(/replay-rebuild-3-000000\.parquet$/);
    expect(v2.segments.some((s) => s.key === key)).toBe(false);
    expect(eventIds(store.objects.get(rebuilt.key)!.body)).toEqual(eventIds(objects.get(key)!));
    expect(rebuilt.addedInVersion).toBeUndefined(); // the same records: readers already had them
    expect((await verifyChangelog({ store, table: TABLE, sinceMs: W(0) })).violations).toEqual([]);
  });

  // Last: it moves the emulator's clock past retention, which trims the stream for good.
  it('reports a segment whose records the stream no longer holds, and writes nothing for it', async () => {
    const { store, objects, config, io } = await setup();
    const key = [...objects.keys()][0]!;
    await store.delete([key]);
    const saved = clock;
    clock = W(WINDOWS) + 25 * 3_600_000; // past the 24 h retention: the emulator trims
    try {
      await expect(runReplay({ ...config, replayId: 'rebuild-2' }, io)).rejects.toThrow(
        new RegExp(
          `cannot rebuild 1 segment\\(s\\): ${key.replace(/[.]/g, '\\.')} \\(window ${isoTime(W(0)).replace(/[.]/g, '\\.')}\\): the stream no longer holds its records`,
        ),
      );
    } finally {
      clock = saved;
    }
    expect(store.objects.has(key)).toBe(false);
    expect([...store.objects.keys()].some((k) => k.includes('.v2.json'))).toBe(false);
  });
});
