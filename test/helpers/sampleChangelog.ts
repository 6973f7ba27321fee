import { ChangeBuffer } from '../../src/changelog/changeBuffer.js';
import {
  type KeySchema,
  keyAttributes,
  keyColumnName,
  parseKeySchema,
} from '../../src/changelog/keySchema.js';
import { isoTime, manifestObjectKey, segmentId, segmentObjectKey } from '../../src/changelog/layout.js';
import { type Manifest, type ManifestGap, serializeManifest } from '../../src/changelog/manifest.js';
import type { SegmentCompression } from '../../src/changelog/parquetEncoder.js';
import { encodeSegment } from '../../src/changelog/segmentEncoder.js';
import { compareSequenceNumbers } from '../../src/changelog/sequenceNumber.js';
import { decodeGetRecordsResponse } from '../../src/changelog/wireRecordDecoder.js';
import { type ObjectStore, sha256Checksum } from '../../src/coordination/objectStore.js';
import type { ChangeRow } from '../../src/read/changeRow.js';
import { type BuiltSegment, buildManifest, FIRST_WINDOW_MS, TABLE, WINDOW_MS } from './changelogFixtures.js';
import { compareKeyValues } from './dynamoOrder.js';
import { generateRecords, getRecordsResponse, type WireItem, type WireRecord } from './streamRecords.js';

/*
 * Real changelogs for read-side tests: segments encoded by the real encoder from wire records
 * (any key schema, any row-group size), manifests serialized by the real serializer, and the rows
 * a reader must hand out computed independently from the wire records (images as the stream sent
 * them, order by the test oracle in dynamoOrder.ts).
 */

export const SHARD_1 = 'shardId-00000001763800000000-11111111';
export const SHARD_2 = 'shardId-00000001763800000000-22222222';

export interface SegmentPart {
  shardId: string;
  records: WireRecord[];
}

export interface SegmentSpec {
  windowStartMs: number;
  /** Compact key schema, `pk:S` or `pk:S,sk:N` (default `pk:S,sk:N`). */
  keySchema?: string;
  parts: SegmentPart[];
  compression?: SegmentCompression;
  rowGroupRows?: number;
  table?: string;
}

/** A segment as written, with the rows a reader must return for it, in segment order. */
export interface TestSegment extends BuiltSegment {
  rows: ChangeRow[];
}

/** Encodes one real segment and computes its expected rows. */
export function buildTestSegment(spec: SegmentSpec): TestSegment {
  const keySchema = parseKeySchema(spec.keySchema ?? 'pk:S,sk:N');
  const table = spec.table ?? TABLE;
  const compression = spec.compression ?? 'zstd';
  const buffer = new ChangeBuffer(keySchema);
  for (const part of spec.parts)
    decodeGetRecordsResponse(getRecordsResponse(part.records), part.shardId, buffer);
  const encoded = encodeSegment(buffer, {
    compression,
    rowGroupRows: spec.rowGroupRows,
    metadata: { table },
  });
  const key = segmentObjectKey(
    table,
    spec.windowStartMs,
    segmentId({ windowStartMs: spec.windowStartMs, compression, shards: encoded.shards }),
  );
  const all = spec.parts.flatMap((p) => p.records);
  const rows = sortLikeSegment(
    keySchema,
    spec.parts.flatMap((p) =>
      p.records.map((r) =>
        expectedRow(keySchema, r, p.shardId, { segmentKey: key, windowStartMs: spec.windowStartMs }),
      ),
    ),
  );
  return {
    key,
    bytes: encoded.bytes,
    rows,
    entry: {
      key,
      bytes: encoded.bytes.length,
      records: encoded.records,
      checksum: sha256Checksum(encoded.bytes),
      minEventTime: isoTime(encoded.minEventTimeMs),
      maxEventTime: isoTime(encoded.maxEventTimeMs),
      lateRecords: all.filter((r) => r.dynamodb.ApproximateCreationDateTime * 1000 < spec.windowStartMs)
        .length,
      shards: encoded.shards.map((s) => ({
        shardId: s.shardId,
        afterSequenceNumber: 'TRIM_HORIZON',
        firstSequenceNumber: s.firstSequenceNumber,
        lastSequenceNumber: s.lastSequenceNumber,
        records: s.records,
      })),
    },
  };
}

/** The row a reader must return for a wire record, built from the record alone. */
export function expectedRow(
  keySchema: KeySchema,
  record: WireRecord,
  shardId: string,
  where: { segmentKey: string; windowStartMs: number },
): ChangeRow {
  const keyColumns: Record<string, string> = {};
  for (const attribute of keyAttributes(keySchema)) {
    const value = record.dynamodb.Keys[attribute.name] as Record<string, string>;
    keyColumns[keyColumnName(attribute.name)] = value[attribute.type]!;
  }
  const { NewImage, OldImage } = record.dynamodb;
  return {
    eventId: record.eventID,
    op: record.eventName,
    eventTimeMs: record.dynamodb.ApproximateCreationDateTime * 1000,
    sequenceNumber: record.dynamodb.SequenceNumber,
    shardId,
    keys: JSON.stringify(record.dynamodb.Keys),
    newImage: NewImage === undefined ? null : JSON.stringify(NewImage),
    oldImage: OldImage === undefined ? null : JSON.stringify(OldImage),
    sizeBytes: record.dynamodb.SizeBytes,
    ttlDelete:
      record.eventName === 'REMOVE' &&
      record.userIdentity?.PrincipalId === 'dynamodb.amazonaws.com' &&
      record.userIdentity.Type === 'Service',
    keyColumns,
    windowStartMs: where.windowStartMs,
    segmentKey: where.segmentKey,
  };
}

/** Rows in the encoder's order, by the independent oracle: key, then sequence number, then shard. */
export function sortLikeSegment(keySchema: KeySchema, rows: readonly ChangeRow[]): ChangeRow[] {
  const attributes = keyAttributes(keySchema);
  return [...rows].sort((a, b) => {
    for (const attribute of attributes) {
      const column = keyColumnName(attribute.name);
      const c = compareKeyValues(attribute.type, a.keyColumns[column]!, b.keyColumns[column]!);
      if (c !== 0) return c;
    }
    return (
      compareSequenceNumbers(a.sequenceNumber, b.sequenceNumber) ||
      (a.shardId < b.shardId ? -1 : a.shardId > b.shardId ? 1 : 0)
    );
  });
}

export interface RecordSpec {
  keys: WireItem;
  sequenceNumber: string | bigint;
  timeMs: number;
  op?: WireRecord['eventName'];
  ttl?: boolean;
}

/** One wire record of an item, with small images that name it (to tell rows apart). */
export function changeRecord(spec: RecordSpec): WireRecord {
  const op = spec.op ?? 'MODIFY';
  const sequence = String(spec.sequenceNumber);
  const image: WireItem = { ...spec.keys, seq: { N: sequence }, note: { S: `change ${sequence} ✓` } };
  return {
    awsRegion: 'us-east-1',
    dynamodb: {
      ApproximateCreationDateTime: Math.floor(spec.timeMs / 1000),
      Keys: spec.keys,
      ...(op !== 'REMOVE' && { NewImage: image }),
      ...(op !== 'INSERT' && { OldImage: { ...spec.keys, seq: { N: '0' } } }),
      SequenceNumber: sequence,
      SizeBytes: 100 + (Number(BigInt(sequence) % 900n) || 0),
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
    eventID: `ev-${sequence}`,
    eventName: op,
    eventSource: 'aws:dynamodb',
    eventVersion: '1.1',
    ...(spec.ttl && { userIdentity: { PrincipalId: 'dynamodb.amazonaws.com', Type: 'Service' } }),
  };
}

/** One version of a window's manifest as written, with its segments in manifest (key) order. */
export interface SampleVersion {
  version: number;
  manifestKey: string;
  manifest: Manifest;
  segments: TestSegment[];
  /** What a reader of this version returns: each segment's rows, in manifest order. */
  rows: ChangeRow[];
}

export interface SampleWindow {
  startMs: number;
  versions: SampleVersion[];
  /** The version readers take. */
  highest: SampleVersion;
}

export interface SampleChangelog {
  windowMs: number;
  windows: SampleWindow[];
  /** The unsealed window between sealed ones. */
  hole: { startMs: number; endMs: number };
  /** The late records (event time in window 1, committed in window 3). */
  lateEventIds: string[];
}

export const W = (i: number) => FIRST_WINDOW_MS + i * WINDOW_MS;

export const SAMPLE_GAP: ManifestGap = {
  shardId: SHARD_2,
  afterSequenceNumber: '400000000000000000500',
  resumedAtSequenceNumber: '400000000000000000900',
  reason: 'TrimmedDataAccessException',
};

/**
 * Writes a small changelog of 1-minute windows from 2026-11-22T10:00Z (table `orders`, key
 * `pk:S,sk:N`) and returns what a reader must find:
 * - w0: version 1, one segment of two shards;
 * - w1: version 1 with one segment per shard, and version 2 (a "compaction") with one segment of
 *   both: readers take v2;
 * - w2: versions 1, 9 and 10 of the same records in differently compressed segments: readers take
 *   v10 (v10 sorts before v9 as text);
 * - w3: holds late records, whose event time is in w1;
 * - w4: not complete: its manifest lists a gap;
 * - w5: a hole (not sealed), though w6 after it is sealed.
 */
export async function writeSampleChangelog(store: ObjectStore): Promise<SampleChangelog> {
  let seed = 1;
  const records = (windowStartMs: number, sequenceStart: bigint, count = 10): WireRecord[] => {
    const out = generateRecords({
      records: count,
      seed: seed++,
      startSequence: sequenceStart,
      startTimeSeconds: windowStartMs / 1000 + 5,
      keyCount: 4,
      ttlShare: 0.5,
    });
    for (const r of out) r.eventID = `ev-${r.dynamodb.SequenceNumber}`;
    return out;
  };
  const segment = (windowStartMs: number, parts: SegmentPart[], compression?: SegmentCompression) =>
    buildTestSegment({ windowStartMs, parts, compression });
  const version = (windowStartMs: number, n: number, segments: TestSegment[], gaps: ManifestGap[] = []) => {
    const sorted = [...segments].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const manifest: Manifest = {
      ...buildManifest(
        windowStartMs,
        sorted.map((s) => s.entry),
        { gaps },
      ),
      version: n,
    };
    return {
      version: n,
      manifestKey: manifestObjectKey(TABLE, windowStartMs, n),
      manifest,
      segments: sorted,
      rows: sorted.flatMap((s) => s.rows),
    };
  };

  const w0 = [
    version(W(0), 1, [
      segment(W(0), [
        { shardId: SHARD_1, records: records(W(0), 100_000_000_000_000_000_000n) },
        { shardId: SHARD_2, records: records(W(0), 200_000_000_000_000_000_000n) },
      ]),
    ]),
  ];
  const w1a = records(W(1), 100_000_000_000_000_100_000n);
  const w1b = records(W(1), 200_000_000_000_000_100_000n);
  const w1 = [
    version(W(1), 1, [
      segment(W(1), [{ shardId: SHARD_1, records: w1a }]),
      segment(W(1), [{ shardId: SHARD_2, records: w1b }]),
    ]),
    version(W(1), 2, [
      segment(W(1), [
        { shardId: SHARD_1, records: w1a },
        { shardId: SHARD_2, records: w1b },
      ]),
    ]),
  ];
  const w2r = records(W(2), 100_000_000_000_000_200_000n);
  const w2 = [
    version(W(2), 1, [segment(W(2), [{ shardId: SHARD_1, records: w2r }], 'zstd')]),
    version(W(2), 9, [segment(W(2), [{ shardId: SHARD_1, records: w2r }], 'snappy')]),
    version(W(2), 10, [segment(W(2), [{ shardId: SHARD_1, records: w2r }], 'none')]),
  ];
  // Late: dated in w1, read (and committed) in w3.
  const late = records(W(1), 200_000_000_000_000_300_000n, 4);
  const w3 = [
    version(W(3), 1, [
      segment(W(3), [
        { shardId: SHARD_1, records: records(W(3), 100_000_000_000_000_300_000n) },
        { shardId: SHARD_2, records: [...late, ...records(W(3), 200_000_000_000_000_310_000n)] },
      ]),
    ]),
  ];
  const w4 = [
    version(
      W(4),
      1,
      [segment(W(4), [{ shardId: SHARD_1, records: records(W(4), 100_000_000_000_000_400_000n) }])],
      [SAMPLE_GAP],
    ),
  ];
  const w6 = [
    version(W(6), 1, [
      segment(W(6), [{ shardId: SHARD_1, records: records(W(6), 100_000_000_000_000_600_000n) }]),
    ]),
  ];

  const windows = [w0, w1, w2, w3, w4, w6].map((versions) => ({
    startMs: Date.parse(versions[0]!.manifest.window.start),
    versions,
    highest: versions.at(-1)!,
  }));
  for (const window of windows) {
    for (const v of window.versions) {
      for (const s of v.segments) await store.putIfAbsent(s.key, s.bytes);
      await store.putIfAbsent(v.manifestKey, serializeManifest(v.manifest));
    }
  }
  return {
    windowMs: WINDOW_MS,
    windows,
    hole: { startMs: W(5), endMs: W(6) },
    lateEventIds: late.map((r) => r.eventID),
  };
}

/**
 * Writes `windows` sealed 1-minute windows from W(0) of `segmentsPerWindow` segments each (table
 * `orders`, key `pk:S,sk:N`) in which every segment holds the latest change of some items: three
 * items of its own (one deleted last), plus an item every segment changes. Returns the segments in
 * range order (windows, then manifest order).
 */
export async function writeSegmentGrid(
  store: ObjectStore,
  windows: number,
  segmentsPerWindow: number,
): Promise<TestSegment[]> {
  let sequence = 100_000_000_000_000_000_000n;
  const all: TestSegment[] = [];
  for (let w = 0; w < windows; w++) {
    const segments = Array.from({ length: segmentsPerWindow }, (_, s) => {
      const change = (pk: string, op?: WireRecord['eventName']) =>
        changeRecord({
          keys: { pk: { S: pk }, sk: { N: '1' } },
          sequenceNumber: sequence++,
          timeMs: W(w),
          op,
        });
      const own = [0, 1, 2].map((i) => `item-${w}-${s}-${i}`);
      const records = [
        ...own.map((pk) => change(pk, 'INSERT')),
        change('shared'),
        ...own.map((pk, i) => change(pk, i === 2 ? 'REMOVE' : 'MODIFY')),
      ];
      return buildTestSegment({
        windowStartMs: W(w),
        parts: [{ shardId: s % 2 === 0 ? SHARD_1 : SHARD_2, records }],
      });
    });
    segments.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    await putSealedWindow(store, W(w), segments);
    all.push(...segments);
  }
  return all;
}

/** Puts a window's segments and then its v1 manifest listing them (in the order given): a sealed window. */
export async function putSealedWindow(
  store: ObjectStore,
  windowStartMs: number,
  segments: readonly TestSegment[],
): Promise<void> {
  for (const segment of segments) await store.putIfAbsent(segment.key, segment.bytes);
  await store.putIfAbsent(
    manifestObjectKey(TABLE, windowStartMs),
    serializeManifest(
      buildManifest(
        windowStartMs,
        segments.map((segment) => segment.entry),
      ),
    ),
  );
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
