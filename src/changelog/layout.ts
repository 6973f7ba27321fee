import { createHash } from 'node:crypto';
import { ChangelogError } from '../support/errors.js';

/*
 * Object layout under a destination (DESIGN.md). Keys here are relative to the destination prefix;
 * manifests list segment keys in this relative form, so a changelog can be copied elsewhere whole.
 *
 *   <table>/data/dt=YYYY-MM-DD/window=YYYYMMDDTHHMMSSZ/<segment-id>.parquet
 *   <table>/manifests/dt=YYYY-MM-DD/YYYYMMDDTHHMMSSZ.json        a window's manifest, version 1
 *   <table>/manifests/dt=YYYY-MM-DD/YYYYMMDDTHHMMSSZ.v<N>.json   version N >= 2 (replay, compact)
 *   <table>/symlinks/dt=YYYY-MM-DD/YYYYMMDDTHHMMSSZ.txt     (Athena/Glue symlink manifests)
 */

export const DAY_MS = 86_400_000;
export const MIN_WINDOW_MS = 60_000;

/** Why a window size is not allowed, or undefined. Windows tile the day so none spans two `dt=`. */
export function windowSizeProblem(windowMs: number): string | undefined {
  if (!Number.isSafeInteger(windowMs) || windowMs < MIN_WINDOW_MS || windowMs > DAY_MS) {
    return 'must be between 1m and 24h';
  }
  if (DAY_MS % windowMs !== 0) return 'must divide a day evenly (e.g. 1m, 5m, 15m, 1h, 6h, 24h)';
  return undefined;
}

/** Start of the window holding `timeMs`: windows are aligned to the Unix epoch (UTC midnight). */
export function windowStartOf(timeMs: number, windowMs: number): number {
  return Math.floor(timeMs / windowMs) * windowMs;
}

/** `YYYYMMDDTHHMMSSZ` (UTC): the window's id in keys. Sorts as time. */
export function windowId(startMs: number): string {
  const iso = new Date(startMs).toISOString(); // 2026-11-22T10:05:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** Inverse of windowId. */
export function parseWindowId(id: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id);
  if (!m) return undefined;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return windowId(ms) === id ? ms : undefined;
}

/** `YYYY-MM-DD` (UTC) of a time: the Hive `dt=` partition. */
export function dtOf(timeMs: number): string {
  return new Date(timeMs).toISOString().slice(0, 10);
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

function assertTableName(table: string): void {
  // DynamoDB table names: 3-255 of [a-zA-Z0-9_.-]; anything else would make odd keys.
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(table)) {
    throw new ChangelogError(`invalid table name ${JSON.stringify(table)} for object keys`, {
      retriable: false,
    });
  }
}

export function dataPrefix(table: string): string {
  assertTableName(table);
  return `${table}/data/`;
}

/** The prefix holding one window's segment objects. */
export function windowDataPrefix(table: string, windowStartMs: number): string {
  return `${dataPrefix(table)}dt=${dtOf(windowStartMs)}/window=${windowId(windowStartMs)}/`;
}

export function segmentObjectKey(table: string, windowStartMs: number, segmentId: string): string {
  return `${windowDataPrefix(table, windowStartMs)}${segmentId}.parquet`;
}

export function manifestPrefix(table: string): string {
  assertTableName(table);
  return `${table}/manifests/`;
}

/** A manifest key's parts: the window it seals and which version of the window's manifest it is. */
export interface ManifestKeyParts {
  windowStartMs: number;
  /** 1 when the window is sealed; replay and compaction publish n+1 beside it (DESIGN.md). */
  version: number;
}

/**
 * The key of a window's manifest. Version 1 is `<windowId>.json`; version N >= 2 is
 * `<windowId>.v<N>.json`, beside it, because a published manifest is never replaced. All versions
 * of a window sort together, after the window's v1 and before the next window's keys.
 */
export function manifestObjectKey(table: string, windowStartMs: number, version = 1): string {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new ChangelogError(
      `invalid manifest version ${version} for the window ${isoTime(windowStartMs)}: must be an integer >= 1`,
      { retriable: false },
    );
  }
  const suffix = version === 1 ? '' : `.v${version}`;
  return `${manifestPrefix(table)}dt=${dtOf(windowStartMs)}/${windowId(windowStartMs)}${suffix}.json`;
}

/**
 * The window start and version of a manifest key, or undefined when the key is not one. Only the
 * spelling manifestObjectKey writes is accepted (no `.v1`, `.v0` or leading zeros), so each
 * (window, version) has exactly one key.
 */
export function parseManifestKey(table: string, key: string): ManifestKeyParts | undefined {
  const prefix = manifestPrefix(table);
  if (!key.startsWith(prefix)) return undefined;
  const m = /^dt=(\d{4}-\d{2}-\d{2})\/(\d{8}T\d{6}Z)(?:\.v([1-9]\d{0,15}))?\.json$/.exec(
    key.slice(prefix.length),
  );
  if (!m) return undefined;
  const windowStartMs = parseWindowId(m[2]!);
  if (windowStartMs === undefined || dtOf(windowStartMs) !== m[1]) return undefined;
  if (m[3] === undefined) return { windowStartMs, version: 1 };
  const version = Number(m[3]);
  return version >= 2 && Number.isSafeInteger(version) ? { windowStartMs, version } : undefined;
}

/**
 * A list `startAfter` that yields the manifests (every version) of windows starting at or after
 * `startMs`.
 */
export function manifestStartAfter(table: string, startMs: number): string {
  // Strictly after `...Z.jso` is exactly "at or after `...Z.json`" among manifest keys, and the
  // window's other versions (`...Z.v2.json`) sort after that too.
  return manifestObjectKey(table, startMs).slice(0, -1);
}

export function symlinkPrefix(table: string): string {
  assertTableName(table);
  return `${table}/symlinks/`;
}

/**
 * A sealed window's symlink manifest (one segment URL a line, for SymlinkTextInputFormat). Under
 * its own `dt=` folders so a Glue table with partition projection on `dt` reads only those days.
 */
export function symlinkObjectKey(table: string, windowStartMs: number): string {
  return `${symlinkPrefix(table)}dt=${dtOf(windowStartMs)}/${windowId(windowStartMs)}.txt`;
}

export interface SegmentIdInput {
  windowStartMs: number;
  compression: string;
  shards: readonly { shardId: string; firstSequenceNumber: string; lastSequenceNumber: string }[];
}

export const SEGMENT_ID_PREFIX = 's1-';

/**
 * A segment's id: a function of what it holds (window, shard sequence ranges, codec) and the
 * format version (`s1-`). A retried flush of the same records gets the same key, so its write is
 * idempotent; a flush after a re-read with other page boundaries gets another key (an orphan).
 */
export function segmentId(input: SegmentIdInput): string {
  const hash = createHash('sha256');
  hash.update(`v1\n${input.windowStartMs}\n${input.compression}\n`);
  const shards = [...input.shards].sort((a, b) =>
    a.shardId < b.shardId ? -1 : a.shardId > b.shardId ? 1 : 0,
  );
  for (const s of shards) hash.update(`${s.shardId} ${s.firstSequenceNumber} ${s.lastSequenceNumber}\n`);
  return SEGMENT_ID_PREFIX + hash.digest('hex').slice(0, 32);
}

export const REPLAY_SEGMENT_ID_PREFIX = 'replay-';

/**
 * A replay's segment id: its replay id and the segment's place in the window's part of the
 * replay, so a replay resumed after a crash writes the same keys (and identical bytes) again.
 * Replay ids are validated by the replay (letters, digits, `-`, `_`).
 */
export function replaySegmentId(replayId: string, part: number): string {
  return `${REPLAY_SEGMENT_ID_PREFIX}${replayId}-${String(part).padStart(6, '0')}`;
}

/** Whether an object key is a replay's segment (the orphan collector leaves those alone). */
export function isReplaySegmentKey(key: string): boolean {
  return key.slice(key.lastIndexOf('/') + 1).startsWith(REPLAY_SEGMENT_ID_PREFIX);
}

/** The table name in a DynamoDB Stream ARN (`arn:...:table/<name>/stream/<label>`). */
export function tableOfStreamArn(streamArn: string): string | undefined {
  return /:table\/([^/]+)\/stream\//.exec(streamArn)?.[1];
}
