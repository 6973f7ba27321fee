import { PassThrough } from 'node:stream';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { runChanges } from '../../src/app/changes.js';
import { type ChangesOptionsInput, parseChangesConfig } from '../../src/app/changesConfig.js';
import { isoTime, manifestObjectKey } from '../../src/changelog/layout.js';
import { type ManifestGap, serializeManifest } from '../../src/changelog/manifest.js';
import { createLeaseTable } from '../../src/coordination/leaseTable.js';
import type { ObjectStore } from '../../src/coordination/objectStore.js';
import { RegistryStore } from '../../src/coordination/registryStore.js';
import {
  buildManifest,
  buildSegment,
  FIRST_WINDOW_MS,
  SHARD_A,
  STREAM_ARN,
  TABLE,
  WINDOW_MS,
  writeSymlink,
} from './changelogFixtures.js';
import { changeRecord } from './sampleChangelog.js';

/*
 * A sealed changelog for replay tests, as the daemon leaves it: the registry state in a lease
 * table (every window sealed, the first manifest's window recorded) and, in any ObjectStore (in
 * memory, or S3ObjectStore on s3rver), windows 0..7 of table `orders`, one stream segment each
 * (shard A, chained), items `s-<w>` changed in window w and `shared` in every window, version 1
 * manifests and their symlink manifests. Window 5 lists a gap: the stream trimmed records between
 * its two segments' ranges. Deterministic: two calls write the same bytes (symlink manifests
 * differ only by the store's URL).
 */

export const REPLAY_WINDOWS = 8;
/** The window whose manifest lists a gap of shard A. */
export const GAP_WINDOW = 5;
/** The start of window `i`. */
export const W = (i: number): number => FIRST_WINDOW_MS + i * WINDOW_MS;

export interface SealedChangelogOptions {
  /** A client of the DynamoDB Local (or DynamoDB) the lease table is created in. */
  client: DynamoDBClient;
  /** Created here. */
  leaseTable: string;
  store: ObjectStore;
}

/** Creates the lease table with the registry state and writes the windows; returns window 5's gap. */
export async function writeSealedChangelog(options: SealedChangelogOptions): Promise<{ gap: ManifestGap }> {
  const { client, leaseTable, store } = options;
  await createLeaseTable(client, leaseTable);
  const registry = new RegistryStore({ client, tableName: leaseTable, table: TABLE });
  await registry.initState({
    windowMs: WINDOW_MS,
    streamArn: STREAM_ARN,
    closedThroughMs: W(REPLAY_WINDOWS),
    sealedThroughMs: W(REPLAY_WINDOWS),
    closedAtMs: W(REPLAY_WINDOWS),
    firstManifestMs: W(0),
  });
  let sequence = 100_000_000_000_000_000_000n;
  let after = 'TRIM_HORIZON';
  let gap: ManifestGap | undefined;
  for (let w = 0; w < REPLAY_WINDOWS; w++) {
    const record = (pk: string, op: 'INSERT' | 'MODIFY' | 'REMOVE', at: number) =>
      changeRecord({ keys: { pk: { S: pk }, sk: { N: '1' } }, sequenceNumber: sequence++, timeMs: at, op });
    // Records are made as each segment is built: the gap skips sequence numbers in between.
    const parts = [
      () => [
        record(`s-${w}`, 'INSERT', W(w) + 1000),
        record('shared', w === 0 ? 'INSERT' : 'MODIFY', W(w) + 2000),
      ],
    ];
    if (w === GAP_WINDOW) parts.push(() => [record(`s-${w}-late`, 'INSERT', W(w) + 40_000)]);
    const segments = parts.map((records, n) => {
      const built = buildSegment(W(w), [
        { shardId: SHARD_A, records: records(), afterSequenceNumber: after },
      ]);
      const last = built.entry.shards[0]!.lastSequenceNumber;
      if (w === GAP_WINDOW && n === 0) {
        // The records after `last` were trimmed: the next segment starts further on.
        gap = {
          shardId: SHARD_A,
          afterSequenceNumber: last,
          resumedAtSequenceNumber: String(sequence + 10n),
          fromTime: isoTime(W(w) + 2000),
          toTime: isoTime(W(w) + 30_000),
          reason: 'TrimmedDataAccessException',
        };
        sequence += 10n;
        after = String(sequence - 1n);
      } else after = last;
      return built;
    });
    for (const s of segments) await store.putIfAbsent(s.key, s.bytes);
    const manifest = buildManifest(
      W(w),
      segments.map((s) => s.entry),
      w === GAP_WINDOW ? { gaps: [gap!] } : {},
    );
    await store.putIfAbsent(manifestObjectKey(TABLE, W(w)), serializeManifest(manifest));
    await writeSymlink(store, TABLE, W(w), manifest);
  }
  return { gap: gap! };
}

/** A row of `changes --format json`, as far as the replay tests look. */
export interface JsonChangeRow {
  event_id: string;
  op: string;
  pk: string;
}

/** Runs `changes --format json` over the changelog in `store` from `sinceMs` on; its rows. */
async function changesJson(
  store: ObjectStore,
  flags: ChangesOptionsInput,
  sinceMs: number,
  nowMs: number,
): Promise<JsonChangeRow[]> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const config = parseChangesConfig(
    {
      destination: 's3://bucket/changelog',
      table: TABLE,
      since: new Date(sinceMs).toISOString(),
      format: 'json',
      ...flags,
    },
    nowMs,
  );
  await runChanges(config, { stdout, stderr: new PassThrough(), openStore: () => store, now: () => nowMs });
  return Buffer.concat(chunks)
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as JsonChangeRow);
}

/** `changes --latest`: each item's latest op by its `pk` (items deleted last are absent). */
export async function latestOpByKey(
  store: ObjectStore,
  sinceMs: number,
  nowMs: number,
): Promise<Map<string, string>> {
  const rows = await changesJson(store, { latest: true }, sinceMs, nowMs);
  return new Map(rows.map((row) => [row.pk, row.op]));
}

/** One incremental load, `changes --cursor <file>` (from `sinceMs` on the first run): the rows it delivered. */
export function cursorBatch(
  store: ObjectStore,
  cursorFile: string,
  sinceMs: number,
  nowMs: number,
): Promise<JsonChangeRow[]> {
  return changesJson(store, { cursor: cursorFile }, sinceMs, nowMs);
}
