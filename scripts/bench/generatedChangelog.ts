/**
 * A generated changelog for bench:changes: real segments (the segment encoder, from wire records of
 * test/helpers/streamRecords.ts) and manifests built and serialized as the sealer does
 * (changelog/manifest.ts buildManifest, serializeManifest, layout keys), in a `file:///` store.
 * Written once per shape under .bench-cache/ (a `done` marker), so repeated runs read the same files.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ChangeBuffer } from '../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../src/changelog/keySchema.js';
import { manifestObjectKey, segmentId, segmentObjectKey } from '../../src/changelog/layout.js';
import { buildManifest, type SegmentFacts, serializeManifest } from '../../src/changelog/manifest.js';
import { encodeSegment } from '../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../src/changelog/wireRecordDecoder.js';
import { LocalObjectStore } from '../../src/coordination/localObjectStore.js';
import { sha256Checksum } from '../../src/coordination/objectStore.js';
import { generateRecords, getRecordsResponse, type WireRecord } from '../../test/helpers/streamRecords.js';

export const BENCH_TABLE = 'orders';
export const BENCH_KEY_SCHEMA = 'pk:S,sk:N';
const STREAM_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T00:00:00.000';
const WINDOW_MS = 60_000;
/** 2026-11-22T00:00:00Z */
const FIRST_WINDOW_MS = Date.UTC(2026, 10, 22);
const SHARDS = ['a', 'b', 'c', 'd'].map((s) => `shardId-00000001763800000000-${s.repeat(8)}`);

export interface ChangelogShape {
  changes: number;
  /** Distinct item keys the changes are spread over (generateRecords' keyCount). */
  keys: number;
  windows: number;
  segmentsPerWindow: number;
}

export interface GeneratedChangelog extends ChangelogShape {
  /** The store's directory; the destination is its file:// URL. */
  dir: string;
  destination: string;
  table: string;
  sinceMs: number;
  untilMs: number;
  /** The segment files in manifest order (windows in order, each window's segments by key). */
  segmentFiles: string[];
  parquetBytes: number;
  /** An item with several changes, for the key lookup: its key attribute values. */
  sampleKey: { pk: string; sk: string };
}

/** The changelog of `shape`, generated on first use (about 15 s per 200,000 changes on one core). */
export async function generatedChangelog(shape: ChangelogShape): Promise<GeneratedChangelog> {
  const name = `changes-v1-${shape.changes}-${shape.keys}-${shape.windows}x${shape.segmentsPerWindow}`;
  const dir = resolve('.bench-cache', name);
  const indexFile = join(dir, 'index.json');
  if (!existsSync(join(dir, 'done'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const generated = await writeChangelog(dir, shape);
    writeFileSync(indexFile, JSON.stringify(generated));
    writeFileSync(join(dir, 'done'), '');
  }
  return JSON.parse(readFileSync(indexFile, 'utf8')) as GeneratedChangelog;
}

async function writeChangelog(dir: string, shape: ChangelogShape): Promise<GeneratedChangelog> {
  const store = new LocalObjectStore({ dir: join(dir, 'store') });
  const keySchema = parseKeySchema(BENCH_KEY_SCHEMA);
  const versions = new Map<number, number>();
  const lastSequence = new Map<string, string>();
  const counts = new Map<string, number>();
  const segmentFiles: string[] = [];
  let parquetBytes = 0;
  let sequence = 100_000_000_000_000_000_000n;
  const perWindow = Math.ceil(shape.changes / shape.windows);
  for (let w = 0; w < shape.windows; w++) {
    const windowStartMs = FIRST_WINDOW_MS + w * WINDOW_MS;
    const count = Math.min(perWindow, shape.changes - w * perWindow);
    if (count <= 0) break;
    const records = generateRecords({
      seed: w + 1,
      records: count,
      startSequence: sequence,
      keyCount: shape.keys,
      versions,
    });
    sequence = BigInt(records.at(-1)!.dynamodb.SequenceNumber);
    // Spread over the window's minute (second precision, as the stream stamps them).
    records.forEach((r, i) => {
      r.dynamodb.ApproximateCreationDateTime = windowStartMs / 1000 + Math.floor((i * 60) / count);
      const pk = (r.dynamodb.Keys.pk as { S: string }).S;
      counts.set(pk, (counts.get(pk) ?? 0) + 1);
    });
    // Each flush holds the next run of records, from every shard (records go round the shards).
    const facts: SegmentFacts[] = [];
    const per = Math.ceil(count / shape.segmentsPerWindow);
    for (let s = 0; s * per < count; s++) {
      const slice = records.slice(s * per, (s + 1) * per);
      const buffer = new ChangeBuffer(keySchema);
      const byShard = new Map<string, WireRecord[]>();
      slice.forEach((r, i) => {
        const shard = SHARDS[(s * per + i) % SHARDS.length]!;
        const part = byShard.get(shard);
        if (part === undefined) byShard.set(shard, [r]);
        else part.push(r);
      });
      for (const [shard, part] of byShard) decodeGetRecordsResponse(getRecordsResponse(part), shard, buffer);
      const encoded = encodeSegment(buffer, { metadata: { table: BENCH_TABLE } });
      const key = segmentObjectKey(
        BENCH_TABLE,
        windowStartMs,
        segmentId({ windowStartMs, compression: 'zstd', shards: encoded.shards }),
      );
      await store.putIfAbsent(key, encoded.bytes);
      parquetBytes += encoded.bytes.length;
      facts.push({
        key,
        streamArn: STREAM_ARN,
        bytes: encoded.bytes.length,
        records: encoded.records,
        checksum: sha256Checksum(encoded.bytes),
        minEventTimeMs: encoded.minEventTimeMs,
        maxEventTimeMs: encoded.maxEventTimeMs,
        lateRecords: 0,
        shards: encoded.shards.map((h) => {
          const after = lastSequence.get(h.shardId) ?? 'TRIM_HORIZON';
          lastSequence.set(h.shardId, h.lastSequenceNumber);
          return { ...h, afterSequenceNumber: after };
        }),
      });
    }
    const manifest = buildManifest({
      table: BENCH_TABLE,
      windowStartMs,
      windowMs: WINDOW_MS,
      sealedAtMs: windowStartMs + WINDOW_MS + 30_000,
      version: 1,
      streamArn: STREAM_ARN,
      segments: facts,
      gaps: [],
    });
    await store.putIfAbsent(manifestObjectKey(BENCH_TABLE, windowStartMs), serializeManifest(manifest), {
      contentType: 'application/json',
    });
    // Readers take segments in the serialized manifest's order: by key.
    for (const f of [...facts].sort((a, b) => (a.key < b.key ? -1 : 1)))
      segmentFiles.push(join(store.dir, f.key));
    if ((w + 1) % 20 === 0 || w + 1 === shape.windows)
      process.stderr.write(
        `  generating the changelog of ${shape.keys} keys: ${w + 1}/${shape.windows} windows\n`,
      );
  }
  // The item with the most changes (pk holds the item's number; sk is derived from it).
  const [busiest] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]!;
  const k = Number(busiest.slice(busiest.indexOf('#object-') + '#object-'.length));
  return {
    ...shape,
    dir,
    destination: store.url,
    table: BENCH_TABLE,
    sinceMs: FIRST_WINDOW_MS,
    untilMs: FIRST_WINDOW_MS + shape.windows * WINDOW_MS,
    segmentFiles,
    parquetBytes,
    sampleKey: { pk: busiest, sk: String(k % 13) },
  };
}
