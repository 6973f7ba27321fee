import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { ChangeBuffer } from '../changelog/changeBuffer.js';
import type { KeySchema } from '../changelog/keySchema.js';
import { isoTime, replaySegmentId, segmentObjectKey, windowStartOf } from '../changelog/layout.js';
import {
  isSnapshotSegment,
  type Manifest,
  type ManifestSegment,
  type SegmentSource,
} from '../changelog/manifest.js';
import { encodeSegment, streamSegmentMetadata } from '../changelog/segmentEncoder.js';
import type { RawGetRecordsClient } from '../coordination/getRecordsClient.js';
import { publishManifestVersion } from '../coordination/manifestPublisher.js';
import { type ObjectStore, sha256Checksum } from '../coordination/objectStore.js';
import type { RegistryStore, WindowState } from '../coordination/registryStore.js';
import { ReplayStateStore } from '../coordination/replayStateStore.js';
import { readShardRange } from '../coordination/shardRangeReader.js';
import { type ReplaySegment, rebuiltManifest } from '../ingest/replayWriter.js';
import { listWindows, readManifest } from '../read/manifestReader.js';
import { ChangelogError } from '../support/errors.js';
import type { ReplayConfig, ReplayResult } from './replayConfig.js';

export interface RebuildContext {
  config: ReplayConfig;
  store: ObjectStore;
  registry: RegistryStore;
  windows: WindowState;
  keySchema: KeySchema;
  streams: DynamoDBStreamsClient;
  raw: RawGetRecordsClient;
  say: (line: string) => void;
  now: () => number;
  signal: AbortSignal | undefined;
  /** Replaces a window's symlink manifest with the one of `manifest` (replay.ts). */
  replaceSymlink: (manifest: Manifest, windowStartMs: number) => Promise<void>;
}

interface Damaged {
  manifest: Manifest;
  segment: ManifestSegment;
  /** What is wrong with the object: missing, or its size or sha256. */
  problem: string;
  /** The object exists (with other bytes): it must be deleted before the right one is written. */
  exists: boolean;
}

/**
 * `replay --mode rebuild --source stream`: finds the segments of sealed windows in the range whose
 * objects are missing or fail their size or sha256, and re-reads exactly their records from the
 * stream (each manifest shard range, `readShardRange`). The records re-encoded as the daemon
 * encodes them give the same bytes, so the object is restored under its own key and the manifest
 * stays as it is; if they give other bytes (a segment written with another codec), the window
 * gets version n+1 with the rebuilt segment in its place (same shard ranges, same
 * addedInVersion). A segment whose records the stream no longer holds (older than 24 h) or that
 * holds replay rows (scan, export) is reported, never guessed: the command then fails, after
 * restoring what it could.
 */
export async function runRebuild(ctx: RebuildContext): Promise<ReplayResult> {
  const { config, store, say, signal } = ctx;
  if (config.sinceMs === undefined)
    throw new ChangelogError('replay --mode rebuild needs --since', { retriable: false });
  const sealedThrough = ctx.windows.sealedThroughMs;
  const untilMs = Math.min(config.untilMs ?? Number.POSITIVE_INFINITY, sealedThrough);
  if (config.untilMs !== undefined && config.untilMs > sealedThrough) {
    say(
      `replay ${config.replayId}: windows from ${isoTime(sealedThrough)} on are not sealed yet: not looked at`,
    );
  }
  const damaged: Damaged[] = [];
  let checked = 0;
  for await (const listing of listWindows(store, config.table, {
    sinceMs: windowStartOf(config.sinceMs, ctx.windows.windowMs),
    untilMs,
    signal,
  })) {
    const manifest = await readManifest(store, listing.key, { signal });
    for (const segment of manifest.segments) {
      checked++;
      const bytes = await store.get(segment.key, signal);
      if (bytes === undefined) damaged.push({ manifest, segment, problem: 'missing', exists: false });
      else if (bytes.length !== segment.bytes) {
        damaged.push({
          manifest,
          segment,
          problem: `${bytes.length} bytes, listed ${segment.bytes}`,
          exists: true,
        });
      } else if (sha256Checksum(bytes) !== segment.checksum) {
        damaged.push({
          manifest,
          segment,
          problem: `checksum ${sha256Checksum(bytes)}, listed ${segment.checksum}`,
          exists: true,
        });
      }
    }
  }
  const empty = {
    replayId: config.replayId,
    rows: 0,
    segments: 0,
    published: [],
    alreadyDone: false,
    dryRun: config.dryRun,
  };
  if (damaged.length === 0) {
    say(`replay ${config.replayId}: all ${checked} segment(s) of the range are intact: nothing to rebuild`);
    return empty;
  }
  for (const d of damaged) {
    say(
      `replay ${config.replayId}: window ${d.manifest.window.start}: ${d.segment.key} ${d.problem}; ${d.segment.records} record(s) in ${d.segment.shards.map((s) => `${s.shardId} ${s.firstSequenceNumber}..${s.lastSequenceNumber}`).join(', ') || 'no shard (replay rows)'}`,
    );
  }
  if (config.dryRun) {
    say(
      `replay ${config.replayId} (dry run): would re-read ${damaged.length} segment(s) from the stream; nothing was written`,
    );
    return empty;
  }

  const stateStore = new ReplayStateStore({ registry: ctx.registry, replayId: config.replayId });
  const held = await stateStore.acquire(signal);
  const source: SegmentSource = { kind: 'stream', replayId: config.replayId, mode: 'rebuild' };
  const unrebuildable: string[] = [];
  const published: { windowStartMs: number; version: number }[] = [];
  let rows = 0;
  let restored = 0;
  let part = 0;
  try {
    const byWindow = new Map<string, Damaged[]>();
    for (const d of damaged)
      byWindow.set(d.manifest.window.start, [...(byWindow.get(d.manifest.window.start) ?? []), d]);
    for (const [window, list] of byWindow) {
      const manifest = list[0]!.manifest;
      const windowStartMs = Date.parse(window);
      const replacements = new Map<string, ReplaySegment>();
      for (const d of list) {
        if (isSnapshotSegment(d.segment)) {
          unrebuildable.push(
            `${d.segment.key} (window ${window}) holds replay ${d.segment.source!.replayId}'s ${d.segment.source!.kind} rows: run that replay again`,
          );
          continue;
        }
        const streamArn = d.segment.streamArn ?? manifest.streamArn;
        const buffer = new ChangeBuffer(ctx.keySchema);
        let gone: string | undefined;
        for (const shard of d.segment.shards) {
          const read = await readShardRange(
            { streamArn, ...shard },
            buffer,
            { streams: ctx.streams, raw: ctx.raw },
            signal ?? new AbortController().signal,
          );
          if (read.kind === 'gone') {
            gone = `shard ${shard.shardId} ${shard.firstSequenceNumber}..${shard.lastSequenceNumber}: ${read.reason}`;
            break;
          }
        }
        if (gone !== undefined) {
          unrebuildable.push(
            `${d.segment.key} (window ${window}): the stream no longer holds its records (${gone})`,
          );
          continue;
        }
        const encoded = encodeSegment(buffer, { metadata: streamSegmentMetadata(config.table, streamArn) });
        rows += encoded.records;
        if (sha256Checksum(encoded.bytes) === d.segment.checksum) {
          // The same bytes as the lost object: restored in place, no manifest change.
          if (d.exists) await store.delete([d.segment.key], signal);
          await store.putIfAbsent(d.segment.key, encoded.bytes, { signal });
          restored++;
          say(
            `replay ${config.replayId}: restored ${d.segment.key} (byte-identical, ${encoded.records} record(s))`,
          );
          continue;
        }
        const key = segmentObjectKey(config.table, windowStartMs, replaySegmentId(config.replayId, part++));
        await store.putIfAbsent(key, encoded.bytes, { signal });
        replacements.set(d.segment.key, {
          windowStartMs,
          key,
          bytes: encoded.bytes.length,
          records: encoded.records,
          checksum: sha256Checksum(encoded.bytes),
          minEventTimeMs: encoded.minEventTimeMs,
          maxEventTimeMs: encoded.maxEventTimeMs,
          lateRecords: d.segment.lateRecords,
        });
      }
      if (replacements.size > 0) {
        const next = rebuiltManifest(manifest, replacements, source);
        await publishManifestVersion(store, next, { reason: 'replay', publishedAtMs: ctx.now(), signal });
        await ctx.replaceSymlink(next, windowStartMs);
        published.push({ windowStartMs, version: next.version });
        say(
          `replay ${config.replayId}: window ${window}: version ${next.version} lists ${replacements.size} rebuilt segment(s) in place of the lost ones`,
        );
      }
    }
  } finally {
    await stateStore.release(held).catch(() => undefined);
  }
  if (unrebuildable.length > 0) {
    throw new ChangelogError(
      `replay ${config.replayId}: ${restored + published.length > 0 ? `restored what it could; ` : ''}cannot rebuild ${unrebuildable.length} segment(s): ${unrebuildable.join('; ')}`,
      { retriable: false },
    );
  }
  say(
    `replay ${config.replayId}: done: ${restored} segment(s) restored byte-identical, ${rows} record(s) re-read from the stream`,
  );
  return {
    replayId: config.replayId,
    rows,
    segments: damaged.length,
    published,
    alreadyDone: false,
    dryRun: false,
  };
}
