import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  DynamoDBClient,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ReplayIo, type ReplayResult, runReplay } from '../../../src/app/replay.js';
import type { ReplayConfig } from '../../../src/app/replayConfig.js';
import type { AttributeMap } from '../../../src/changelog/attributeValueJson.js';
import { isoTime, manifestObjectKey, symlinkObjectKey } from '../../../src/changelog/layout.js';
import { type ManifestGap, parseManifest } from '../../../src/changelog/manifest.js';
import { publishManifestVersion } from '../../../src/coordination/manifestPublisher.js';
import { verifyChangelog } from '../../../src/read/verifier.js';
import { TABLE } from '../../helpers/changelogFixtures.js';
import { createStreamTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { writeExport } from '../../helpers/exportFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import {
  cursorBatch,
  GAP_WINDOW,
  latestOpByKey,
  REPLAY_WINDOWS,
  W,
  writeSealedChangelog,
} from '../../helpers/replayFixture.js';

/*
 * replay against DynamoDB Local (the source table, the lease table: registry, rewriter lease,
 * progress) with an in-memory destination holding a sealed changelog written like the sealer
 * writes it, and export fixtures in AWS's layout.
 */

const local = useDynamoDbLocal();
/** Window GAP_WINDOW lists a gap of shard A: records trimmed between its two segments' ranges. */
const WINDOWS = REPLAY_WINDOWS;
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}`;
const NOW = W(WINDOWS) + 30 * 60_000;
let leaseTableNumber = 0;

/** Item `pk` as the stream and the exports hold it. */
const item = (pk: string, v: number): AttributeMap => ({
  pk: { S: pk },
  sk: { N: '1' },
  v: { N: String(v) },
  tags: { SS: ['a', `t${v}`] },
  big: { N: '12345678901234567890123456789012345678' },
});

interface Fixture {
  store: MemoryObjectStore;
  leaseTable: string;
  client: DynamoDBClient;
  gap: ManifestGap;
}

/** The sealed changelog of test/helpers/replayFixture.ts in memory, under a fresh lease table. */
async function fixture(): Promise<Fixture> {
  const client = local().client;
  const leaseTable = `replay-leases-${++leaseTableNumber}`;
  const store = new MemoryObjectStore();
  const { gap } = await writeSealedChangelog({ client, leaseTable, store });
  return { store, leaseTable, client, gap };
}

function config(f: Fixture, over: Partial<ReplayConfig>): ReplayConfig {
  return {
    destination: { url: f.store.url, s3ForcePathStyle: false },
    table: TABLE,
    leaseTable: f.leaseTable,
    mode: 'bootstrap',
    source: 'export',
    sinceMs: undefined,
    untilMs: undefined,
    exportUrl: undefined,
    startExport: undefined,
    segments: 2,
    maxRcuPerSecond: undefined,
    replayId: 'r1',
    dryRun: false,
    waitForSealMs: 0,
    progress: 'json',
    // Small segments: a replay of a few dozen items writes several.
    maxSegmentBytes: 2_000,
    ...over,
  };
}

function io(f: Fixture, exports: MemoryObjectStore, over: Partial<ReplayIo> = {}) {
  const err: string[] = [];
  const stderr = new PassThrough();
  stderr.on('data', (c: Buffer) => err.push(c.toString('utf8')));
  const value: ReplayIo = {
    stdout: new PassThrough(),
    stderr,
    openStore: (url) => (url.startsWith('memory://exports') ? exports : f.store),
    dynamodb: f.client,
    now: () => NOW,
    ...over,
  };
  return { io: value, err };
}

const latest = (store: MemoryObjectStore) => latestOpByKey(store, W(0), NOW);

async function verified(store: MemoryObjectStore) {
  const report = await verifyChangelog({ store, table: TABLE, sinceMs: W(0) });
  expect(report.violations).toEqual([]);
  return report;
}

/** An in-memory export store whose URL names it (io above routes by URL). */
function exportStore(): MemoryObjectStore {
  const store = new MemoryObjectStore();
  (store as { url: string }).url = 'memory://exports';
  return store;
}

describe('replay', () => {
  beforeAll(async () => {
    await createStreamTable(local().client, TABLE);
  });

  it('bootstrap from a full export: a new version of the export time window, SNAPSHOT rows the stream overrides after them', async () => {
    const f = await fixture();
    const exports = exportStore();
    // The table at W(3)+30s: old items the stream never saw, and `shared` as it was then.
    const items = [...Array.from({ length: 40 }, (_, i) => item(`old-${i}`, i)), item('shared', 3)];
    const written = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000001-bootstrap',
      tableArn: TABLE_ARN,
      type: 'full',
      items,
      filesCount: 2,
      exportTimeMs: W(3) + 30_000,
    });
    // An incremental loader had everything before the replay.
    const cursor = path.join(await mkdtemp(path.join(tmpdir(), 'replay-cursor-')), 'cursor.json');
    const loaded = await cursorBatch(f.store, cursor, W(0), NOW);
    expect(loaded.length).toBeGreaterThan(0);
    const { io: replayIo, err } = io(f, exports);
    const result = await runReplay(
      config(f, { exportUrl: `memory://exports/${written.exportPrefix}` }),
      replayIo,
    );
    expect(result.published).toEqual([{ windowStartMs: W(3), version: 2 }]);
    expect(result.rows).toBe(41);
    expect(result.segments).toBeGreaterThan(1);
    const v2 = parseManifest(f.store.objects.get(manifestObjectKey(TABLE, W(3), 2))!.body, 'v2');
    const added = v2.segments.filter((s) => s.addedInVersion === 2);
    expect(added.every((s) => s.source?.kind === 'export' && s.source.exportArn === written.exportArn)).toBe(
      true,
    );
    expect(added.reduce((n, s) => n + s.records, 0)).toBe(41);
    // The symlink manifest now lists version 2's segments; verify accepts the whole changelog.
    const symlink = Buffer.from(f.store.objects.get(symlinkObjectKey(TABLE, W(3)))!.body).toString('utf8');
    expect(symlink.trim().split('\n')).toHaveLength(v2.segments.length);
    await verified(f.store);
    // Latest: the old items from the snapshot; `shared` from the stream's later changes (windows 4..7).
    const state = await latest(f.store);
    for (let i = 0; i < 40; i++) expect(state.get(`old-${i}`)).toBe('SNAPSHOT');
    expect(state.get('shared')).toBe('MODIFY');
    expect(err.join('')).toContain('"event":"replay-progress"');
    // Its next run gets exactly the replay's rows, once; the one after, nothing.
    const delivered = await cursorBatch(f.store, cursor, W(0), NOW);
    expect(delivered.map((r) => r.op)).toEqual(Array.from({ length: 41 }, () => 'SNAPSHOT'));
    expect(new Set(delivered.map((r) => r.event_id)).size).toBe(41);
    expect(await cursorBatch(f.store, cursor, W(0), NOW)).toEqual([]);

    // The same command again: already done, nothing written.
    const before = f.store.objects.size;
    const again = await runReplay(
      config(f, { exportUrl: `memory://exports/${written.exportPrefix}` }),
      replayIo,
    );
    expect(again.alreadyDone).toBe(true);
    expect(f.store.objects.size).toBe(before);
  });

  it('bootstrap --start-export: DynamoDB exports the table (ClientToken from the replay id), then the replay reads that export', async () => {
    const f = await fixture();
    const exports = exportStore();
    const items = Array.from({ length: 12 }, (_, i) => item(`exported-${i}`, i));
    // DynamoDB Local has no exports: a client of the same database answers the two export calls
    // as DynamoDB does, writing the export where the request said (s3://export-bucket/landing).
    const client = new DynamoDBClient({
      endpoint: local().endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    const requests: Record<string, unknown>[] = [];
    const exportId = '01700000000009-started';
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'ExportTableToPointInTimeCommand') return next(args);
        const input = args.input as Record<string, unknown>;
        requests.push(input);
        const written = await writeExport(exports, {
          prefix: '',
          s3Prefix: String(input['S3Prefix']),
          exportId,
          tableArn: String(input['TableArn']),
          type: 'full',
          items,
          exportTimeMs: (input['ExportTime'] as Date).getTime(),
        });
        const description = {
          ExportArn: written.exportArn,
          ExportStatus: 'COMPLETED',
          S3Bucket: input['S3Bucket'],
          S3Prefix: input['S3Prefix'],
          ItemCount: items.length,
          BilledSizeBytes: 1234,
        };
        return { output: { ExportDescription: description, $metadata: {} }, response: {} } as never;
      },
      { step: 'initialize', name: 'fakeExport' },
    );
    try {
      const exportAt = W(3) + 30_000;
      const result = await runReplay(
        config(f, {
          startExport: {
            exportType: 'FULL_EXPORT',
            fromMs: undefined,
            toMs: exportAt,
            toUrl: 's3://export-bucket/landing/',
          },
          replayId: 'started-1',
        }),
        io(f, exports, {
          dynamodb: client,
          openStore: (url) => (url.startsWith('s3://export-bucket') ? exports : f.store),
        }).io,
      );
      expect(requests).toHaveLength(1);
      expect(requests[0]).toMatchObject({
        S3Bucket: 'export-bucket',
        S3Prefix: 'landing',
        ExportFormat: 'DYNAMODB_JSON',
        ExportType: 'FULL_EXPORT',
        ExportTime: new Date(exportAt),
        ClientToken: expect.stringMatching(/^[0-9a-f]{36}$/),
      });
      expect(result.published).toEqual([{ windowStartMs: W(3), version: 2 }]);
      expect(result.rows).toBe(items.length);
      const v2 = parseManifest(f.store.objects.get(manifestObjectKey(TABLE, W(3), 2))!.body, 'v2');
      expect(
        v2.segments.filter((s) => s.source?.exportArn?.endsWith(`/export/${exportId}`)),
      ).not.toHaveLength(0);
      await verified(f.store);
    } finally {
      client.destroy();
    }
  });

  it('resumes after a crash mid-replay and ends byte-identical to an uninterrupted run', async () => {
    const items = Array.from({ length: 60 }, (_, i) => item(`old-${i}`, i));
    const run = async (crashAfterPuts: number | undefined) => {
      const f = await fixture();
      const exports = exportStore();
      const written = await writeExport(exports, {
        prefix: '',
        exportId: '01700000000002-resume',
        tableArn: TABLE_ARN,
        type: 'full',
        items,
        filesCount: 3,
        exportTimeMs: W(2) + 10_000,
      });
      const cfg = config(f, { exportUrl: `memory://exports/${written.exportPrefix}`, replayId: 'resume-1' });
      if (crashAfterPuts !== undefined) {
        let puts = 0;
        f.store.onPut = () => {
          if (++puts > crashAfterPuts) throw new Error('kill -9');
        };
        await expect(runReplay(cfg, io(f, exports).io)).rejects.toThrow('kill -9');
        f.store.onPut = undefined;
      }
      const result = await runReplay(cfg, io(f, exports).io);
      return { f, result };
    };
    const whole = await run(undefined);
    const resumed = await run(3);
    expect(resumed.result).toEqual(whole.result);
    const objects = (s: MemoryObjectStore) =>
      [...s.objects.entries()]
        .filter(([k]) => !k.includes('/revisions/'))
        .map(([k, o]) => [k, Buffer.from(o.body).toString('base64')]);
    expect(objects(resumed.f.store)).toEqual(objects(whole.f.store));
    await verified(resumed.f.store);
  });

  it('fill-gaps from an incremental export: the gap window gets NET rows, the gap is marked filled, complete', async () => {
    const f = await fixture();
    const exports = exportStore();
    const micros = (ms: number) => BigInt(ms) * 1000n;
    const written = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000003-fill',
      tableArn: TABLE_ARN,
      type: 'incremental',
      changes: [
        // Written in the trimmed range: only the export has them.
        {
          keys: { pk: { S: 'lost-1' }, sk: { N: '1' } },
          newImage: item('lost-1', 1),
          writeTimestampMicros: micros(W(GAP_WINDOW) + 10_000),
        },
        {
          keys: { pk: { S: 'lost-2' }, sk: { N: '1' } },
          writeTimestampMicros: micros(W(GAP_WINDOW) + 20_000),
        },
        { keys: { pk: { S: 's-1' }, sk: { N: '1' } }, writeTimestampMicros: micros(W(GAP_WINDOW) + 25_000) },
      ],
      exportTimeMs: W(GAP_WINDOW) + 20 * 60_000,
      fromMs: W(GAP_WINDOW),
      toMs: W(GAP_WINDOW) + 15 * 60_000,
    });
    const result = await runReplay(
      config(f, {
        mode: 'fill-gaps',
        sinceMs: W(0),
        exportUrl: `memory://exports/${written.exportPrefix}`,
        replayId: 'fill-1',
      }),
      io(f, exports).io,
    );
    expect(result.published).toEqual([{ windowStartMs: W(GAP_WINDOW), version: 2 }]);
    const v2 = parseManifest(f.store.objects.get(manifestObjectKey(TABLE, W(GAP_WINDOW), 2))!.body, 'v2');
    expect(v2.complete).toBe(true);
    expect(v2.gaps).toEqual([
      {
        ...f.gap,
        filledBy: {
          replayId: 'fill-1',
          kind: 'export',
          exportArn: written.exportArn,
          records: 3,
          filledAt: isoTime(NOW),
        },
      },
    ]);
    const report = await verified(f.store);
    expect(report.gaps[0]!.filledBy?.replayId).toBe('fill-1');
    const state = await latest(f.store);
    expect(state.get('lost-1')).toBe('NET');
    // A NET tombstone after the stream's INSERT of s-1 (window 1): the item is gone.
    expect(state.has('lost-2')).toBe(false);
    expect(state.has('s-1')).toBe(false);
  });

  it('fill-gaps: a gap that does not say when it began is bounded by the segment it follows, in an earlier window', async () => {
    const f = await fixture();
    const exports = exportStore();
    // As if the shard's records were trimmed right after window 4's segment, before anything of
    // window 5 was read: the gap says only where it starts (its record's time is unknown).
    const w4 = parseManifest(f.store.objects.get(manifestObjectKey(TABLE, W(4)))!.body, 'w4');
    const before = w4.segments[0]!;
    const v1 = parseManifest(f.store.objects.get(manifestObjectKey(TABLE, W(GAP_WINDOW)))!.body, 'w5');
    const { fromTime: _known, ...gap } = {
      ...v1.gaps[0]!,
      afterSequenceNumber: before.shards[0]!.lastSequenceNumber,
    };
    await publishManifestVersion(
      f.store,
      { ...v1, version: 2, gaps: [gap] },
      { reason: 'replay', publishedAtMs: NOW },
    );
    const written = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000007-late',
      tableArn: TABLE_ARN,
      type: 'incremental',
      changes: [
        {
          keys: { pk: { S: 'lost-1' }, sk: { N: '1' } },
          writeTimestampMicros: BigInt(W(GAP_WINDOW)) * 1000n,
        },
      ],
      exportTimeMs: W(GAP_WINDOW) + 20 * 60_000,
      fromMs: W(GAP_WINDOW),
      toMs: W(GAP_WINDOW) + 15 * 60_000,
    });
    // The export starts at the gap's window, after the segment the gap follows began: refused.
    await expect(
      runReplay(
        config(f, {
          mode: 'fill-gaps',
          sinceMs: W(0),
          exportUrl: `memory://exports/${written.exportPrefix}`,
          replayId: 'bound',
        }),
        io(f, exports).io,
      ),
    ).rejects.toThrow(`(records ${before.minEventTime}..${gap.toTime})`);
  });

  it('bootstrap by a parallel scan of the table: SNAPSHOT rows at the scan start, latest equals the table', async () => {
    const f = await fixture();
    const client = f.client;
    const rows = Array.from({ length: 75 }, (_, i) => item(`scan-${i}`, i));
    for (let i = 0; i < rows.length; i += 25) {
      await client.send(
        new BatchWriteItemCommand({
          RequestItems: {
            [TABLE]: rows
              .slice(i, i + 25)
              .map((Item) => ({ PutRequest: { Item: Item as Record<string, AttributeValue> } })),
          },
        }),
      );
    }
    const scanAt = W(6) + 15_000;
    const result = await runReplay(
      config(f, { source: 'scan', segments: 3, replayId: 'scan-1' }),
      io(f, exportStore(), { now: () => scanAt }).io,
    );
    expect(result.published).toEqual([{ windowStartMs: W(6), version: 2 }]);
    const v2 = parseManifest(f.store.objects.get(manifestObjectKey(TABLE, W(6), 2))!.body, 'v2');
    const added = v2.segments.filter((s) => s.addedInVersion === 2);
    expect(added.every((s) => s.source?.kind === 'scan' && s.source.scanStartedAt === isoTime(scanAt))).toBe(
      true,
    );
    await verified(f.store);
    const scanned = await client.send(new ScanCommand({ TableName: TABLE, ConsistentRead: true }));
    const state = await latest(f.store);
    for (const it of scanned.Items ?? []) {
      // Items the stream changed after the scan's start keep their stream row (shared, s-7).
      const pk = it['pk']!.S!;
      expect(state.get(pk)).toBe('SNAPSHOT');
    }
    expect(state.get('shared')).toBe('MODIFY');
  });

  it('refuses bad input with a clear error and changes nothing', async () => {
    const f = await fixture();
    const exports = exportStore();
    const other = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000004-other',
      tableArn: 'arn:aws:dynamodb:us-east-1:000000000000:table/not-orders',
      type: 'full',
      items: [item('x', 1)],
      exportTimeMs: W(3),
    });
    const full = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000005-full',
      tableArn: TABLE_ARN,
      type: 'full',
      items: [item('x', 1)],
      exportTimeMs: W(WINDOWS) + 5 * 60_000,
    });
    const before = new Map([...f.store.objects].map(([k, o]) => [k, Buffer.from(o.body).toString('base64')]));
    const attempt = (over: Partial<ReplayConfig>): Promise<ReplayResult> =>
      runReplay(config(f, over), io(f, exports).io);
    await expect(attempt({ exportUrl: `memory://exports/${other.exportPrefix}` })).rejects.toThrow(
      /not-orders/,
    );
    await expect(attempt({ exportUrl: 'memory://exports/nowhere/AWSDynamoDB/01/' })).rejects.toThrow(
      /manifest-summary\.json/,
    );
    // A snapshot older than the changelog's first record (W(0) + 1 s): the stream before it is not in the changelog.
    const early = await writeExport(exports, {
      prefix: '',
      exportId: '01700000000006-early',
      tableArn: TABLE_ARN,
      type: 'full',
      items: [item('x', 1)],
      exportTimeMs: W(0) + 500,
    });
    await expect(
      attempt({ exportUrl: `memory://exports/${early.exportPrefix}`, replayId: 'early' }),
    ).rejects.toThrow(
      `the snapshot is of ${isoTime(W(0) + 500)}, before the changelog's first record (${isoTime(W(0) + 1000)})`,
    );
    // A full export is not a period's changes.
    await expect(
      attempt({ mode: 'fill-gaps', sinceMs: W(0), exportUrl: `memory://exports/${full.exportPrefix}` }),
    ).rejects.toThrow(/a FULL_EXPORT; --mode fill-gaps reads a INCREMENTAL_EXPORT/);
    // The export's time is in a window not sealed yet: segments written, nothing published.
    await expect(
      attempt({ exportUrl: `memory://exports/${full.exportPrefix}`, replayId: 'unsealed' }),
    ).rejects.toThrow(
      new RegExp(`window\\(s\\) ${isoTime(W(WINDOWS) + 5 * 60_000).replace(/[.]/g, '\\.')} not sealed yet`),
    );
    const manifests = (m: Map<string, string>) =>
      [...m.keys()].filter((k) => k.includes('/manifests/') || k.includes('/symlinks/'));
    const after = new Map([...f.store.objects].map(([k, o]) => [k, Buffer.from(o.body).toString('base64')]));
    expect(manifests(after)).toEqual(manifests(before));
    for (const k of manifests(before)) expect(after.get(k)).toBe(before.get(k));
  });
});
