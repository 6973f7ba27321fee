import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangelogReader, readChangelog } from '../../helpers/changelogReader.js';
import { REPO_ROOT } from '../../helpers/cliProcess.js';
import { readWithDuckDB } from '../../helpers/parquetReaders.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';

/*
 * The independent changelog reader over a hand-made changelog in s3rver: the golden segments as
 * data objects, manifests written as plain JSON. It must return every listed row once per listing,
 * count unlisted data objects as orphans, and report objects that disagree with their manifest.
 */

const TABLE = 'orders';
const fixture = (name: string) =>
  readFileSync(path.join(REPO_ROOT, 'test/fixtures/segments', `${name}.parquet`));
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('changelogReader', () => {
  let s3: S3rverServer;

  beforeAll(async () => {
    s3 = await startS3rver('changelog-reader-test');
  });

  afterAll(async () => {
    await s3?.stop();
  });

  async function put(key: string, body: Buffer | string): Promise<void> {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
  }

  function segmentEntry(key: string, bytes: Buffer, records: number) {
    return { key, bytes: bytes.byteLength, records, checksum: sha256(bytes) };
  }

  function manifest(start: string, end: string, segments: ReturnType<typeof segmentEntry>[]) {
    return JSON.stringify({
      formatVersion: 1,
      table: TABLE,
      window: { start, end },
      version: 1,
      complete: true,
      recordCount: segments.reduce((n, s) => n + s.records, 0),
      segments,
      gaps: [],
    });
  }

  it('reads every listed segment with DuckDB and finds the orphans', async () => {
    const prefix = 'good';
    const orders = fixture('orders-s-n-zstd');
    const keysOnly = fixture('keys-only-s-n-snappy');
    const ordersKey = `${TABLE}/data/dt=2026-01-01/window=20260101T000000Z/s1-a.parquet`;
    const keysOnlyKey = `${TABLE}/data/dt=2026-01-01/window=20260101T000100Z/s1-b.parquet`;
    const orphanKey = `${TABLE}/data/dt=2026-01-01/window=20260101T000100Z/s1-orphan.parquet`;
    const ordersRows = await readWithDuckDB(orders);
    const keysOnlyRows = await readWithDuckDB(keysOnly);

    await put(`${prefix}/${ordersKey}`, orders);
    await put(`${prefix}/${keysOnlyKey}`, keysOnly);
    await put(`${prefix}/${orphanKey}`, orders);
    await put(
      `${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000000Z.json`,
      manifest('2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', [
        segmentEntry(ordersKey, orders, ordersRows.length),
      ]),
    );
    await put(
      `${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000100Z.json`,
      manifest('2026-01-01T00:01:00.000Z', '2026-01-01T00:02:00.000Z', [
        segmentEntry(keysOnlyKey, keysOnly, keysOnlyRows.length),
      ]),
    );

    const reader = new ChangelogReader({ client: s3.client, bucket: s3.bucket, prefix, table: TABLE });
    try {
      const snapshot = await reader.read();
      expect(snapshot.problems).toEqual([]);
      expect(snapshot.manifests.map((m) => [m.windowStart, m.segmentKeys])).toEqual([
        ['2026-01-01T00:00:00.000Z', [ordersKey]],
        ['2026-01-01T00:01:00.000Z', [keysOnlyKey]],
      ]);
      expect(snapshot.dataObjects).toEqual([ordersKey, orphanKey, keysOnlyKey].sort());
      expect(snapshot.orphans).toEqual([orphanKey]);

      const project = (r: object) => {
        const o = r as Record<string, unknown>;
        return {
          event_id: o['event_id'],
          op: o['op'],
          sequence_number: o['sequence_number'],
          shard_id: o['shard_id'],
          keys: o['keys'],
          new_image: o['new_image'] ?? null,
          old_image: o['old_image'] ?? null,
          event_time: o['event_time'],
        };
      };
      const bySegment = (key: string) =>
        snapshot.rows
          .filter((r) => r.segmentKey === key)
          .map(project)
          .sort((a, b) => String(a.event_id).localeCompare(String(b.event_id)));
      const sorted = (rows: Record<string, unknown>[]) =>
        rows.map(project).sort((a, b) => String(a.event_id).localeCompare(String(b.event_id)));
      expect(bySegment(ordersKey)).toEqual(sorted(ordersRows));
      expect(bySegment(keysOnlyKey)).toEqual(sorted(keysOnlyRows));
      expect(snapshot.rows.filter((r) => r.segmentKey === ordersKey)[0]?.manifestKey).toBe(
        `${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000000Z.json`,
      );

      // A later read sees a newly sealed window and still returns the earlier rows (cached files).
      const newImage = fixture('new-image-uncompressed');
      const newImageKey = `${TABLE}/data/dt=2026-01-01/window=20260101T000200Z/s1-c.parquet`;
      const newImageRows = await readWithDuckDB(newImage);
      await put(`${prefix}/${newImageKey}`, newImage);
      await put(
        `${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000200Z.json`,
        manifest('2026-01-01T00:02:00.000Z', '2026-01-01T00:03:00.000Z', [
          segmentEntry(newImageKey, newImage, newImageRows.length),
        ]),
      );
      const later = await reader.read();
      expect(later.problems).toEqual([]);
      expect(later.rows).toHaveLength(ordersRows.length + keysOnlyRows.length + newImageRows.length);
    } finally {
      await reader.close();
    }
  });

  it('returns a segment listed by two manifests twice, and reports objects that contradict them', async () => {
    const prefix = 'bad';
    const orders = fixture('orders-s-n-zstd');
    const rows = (await readWithDuckDB(orders)).length;
    const key = `${TABLE}/data/dt=2026-01-01/window=20260101T000000Z/s1-a.parquet`;
    const missing = `${TABLE}/data/dt=2026-01-01/window=20260101T000100Z/s1-missing.parquet`;
    await put(`${prefix}/${key}`, orders);
    await put(
      `${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000000Z.json`,
      manifest('2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', [segmentEntry(key, orders, rows)]),
    );
    const wrong = { ...segmentEntry(key, orders, rows + 1), checksum: sha256(Buffer.from('other')) };
    await put(
      `${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000100Z.json`,
      manifest('2026-01-01T00:01:00.000Z', '2026-01-01T00:02:00.000Z', [
        wrong,
        segmentEntry(missing, orders, rows),
      ]),
    );
    await put(`${prefix}/${TABLE}/manifests/dt=2026-01-01/20260101T000200Z.json`, '{ not json');

    const snapshot = await readChangelog({ client: s3.client, bucket: s3.bucket, prefix, table: TABLE });
    expect(snapshot.rows).toHaveLength(2 * rows);
    expect(new Set(snapshot.rows.map((r) => r.event_id)).size).toBe(rows);
    expect(snapshot.orphans).toEqual([]);
    const problems = snapshot.problems.join('\n');
    expect(problems).toMatch(/20260101T000200Z\.json is not JSON/);
    expect(problems).toMatch(/s1-missing\.parquet, which does not exist/);
    expect(problems).toMatch(/s1-a\.parquet: checksum sha256:[0-9a-f]+, manifest .* says sha256:/);
    expect(problems).toMatch(new RegExp(`s1-a\\.parquet: ${rows} rows, manifest .* says ${rows + 1}`));
    expect(problems).toMatch(/recordCount \d+, its segments hold \d+/);
  });
});
