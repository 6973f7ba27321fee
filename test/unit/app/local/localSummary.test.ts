import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProducerCounts } from '../../../../src/app/local/demoProducer.js';
import {
  buildChangesQuery,
  buildLocalSummary,
  type LocalSummaryInput,
  s3rverObjectPath,
  splitStatements,
} from '../../../../src/app/local/localSummary.js';
import type { MetricsSnapshot } from '../../../../src/app/metrics.js';
import { latestRowsSql } from '../../../../src/read/latestStateSql.js';

describe('s3rverObjectPath', () => {
  it("is <dir>/<bucket>/<prefix>/<key>._S3rver_object, as s3rver's filesystem store keeps it", () => {
    expect(
      s3rverObjectPath(
        '/d/s3',
        'changelog',
        'demo',
        'orders/data/dt=2026-01-01/window=20260101T000000Z/s1-ab.parquet',
      ),
    ).toBe(
      path.join(
        '/d/s3',
        'changelog',
        'demo',
        'orders',
        'data',
        'dt=2026-01-01',
        'window=20260101T000000Z',
        's1-ab.parquet._S3rver_object',
      ),
    );
    expect(s3rverObjectPath('/d', 'b', '', 'k.json')).toBe(path.join('/d', 'b', 'k.json._S3rver_object'));
    expect(s3rverObjectPath('/d', 'b', 'a/b/', 'k')).toBe(path.join('/d', 'b', 'a', 'b', 'k._S3rver_object'));
  });
});

describe('SQL text', () => {
  it('builds a view over exactly the given files and the queries over it', () => {
    const query = buildChangesQuery({
      files: ['/a/1.parquet._S3rver_object', "/b/it's.parquet._S3rver_object"],
      keyColumns: ['order_id'],
      label: 'two files',
    });
    expect(query).toContain(
      "SELECT * FROM read_parquet([\n  '/a/1.parquet._S3rver_object',\n  '/b/it''s.parquet._S3rver_object'\n], hive_partitioning = false);",
    );
    expect(query.startsWith('-- two files\nCREATE OR REPLACE VIEW changes AS\n')).toBe(true);
    expect(query).toContain('SELECT op, count(*) AS changes FROM changes GROUP BY ALL ORDER BY op;');
    expect(query).toContain(`FROM (${latestRowsSql('changes', ['order_id'])})`);
    const statements = splitStatements(query);
    expect(statements).toHaveLength(4);
    expect(statements[0]).toMatch(/^CREATE OR REPLACE VIEW changes AS/);
    expect(statements.every((s) => !s.endsWith(';') && !s.startsWith('--'))).toBe(true);
  });

  it('partitions by every key column', () => {
    const query = buildChangesQuery({ files: ['/f'], keyColumns: ['pk', 'sk'], label: 'x' });
    expect(query).toContain('PARTITION BY pk, sk ORDER BY');
  });
});

const produced: ProducerCounts = { inserts: 1_200, updates: 1_700, deletes: 380, conflicts: 0, errors: 0 };
const metrics: MetricsSnapshot = {
  recordsRead: 3_280,
  bytesRead: 4_000_000,
  recordsWritten: 3_280,
  bytesWritten: 512_000,
  segmentsCommitted: 5,
  windowsSealed: 1,
  leasesHeld: 0,
  bufferedBytes: 0,
  bufferedWindows: 0,
  maxBehindSeconds: 0,
  watermarkMs: undefined,
  gaps: 0,
  stalledShards: 0,
};
const W = Date.UTC(2026, 10, 22, 18, 17);
const input = (over: Partial<LocalSummaryInput> = {}): LocalSummaryInput => ({
  stoppedBecause: 'Ctrl-C',
  elapsedMs: 100_000,
  produced,
  metrics,
  sealedThisRun: [],
  sealedOnDisk: [],
  committedThisRun: [],
  s3Directory: '/data/s3',
  bucket: 'changelog',
  prefix: 'demo',
  table: 'orders',
  keyColumns: ['order_id'],
  dataDirectory: '/data',
  logFile: '/data/daemon.log',
  queryFile: '/data/query.sql',
  ...over,
});

describe('buildLocalSummary', () => {
  it('queries the sealed windows when there are any', () => {
    const key = 'orders/data/dt=2026-11-22/window=20261122T181700Z/s1-a.parquet';
    const summary = buildLocalSummary(
      input({
        sealedThisRun: [
          {
            windowStartMs: W,
            key: 'orders/manifests/dt=2026-11-22/20261122T181700Z.json',
            records: 1_817,
            segments: 1,
            gaps: 0,
            lateRecords: 0,
            complete: true,
          },
          {
            windowStartMs: W + 60_000,
            key: 'orders/manifests/dt=2026-11-22/20261122T181800Z.json',
            records: 0,
            segments: 0,
            gaps: 0,
            lateRecords: 0,
            complete: true,
          },
        ],
        sealedOnDisk: [
          { manifestKey: 'm1', windowStartMs: W, records: 1_817, segmentKeys: [key] },
          { manifestKey: 'm2', windowStartMs: W + 60_000, records: 0, segmentKeys: [] },
        ],
        committedThisRun: [key, 'orders/data/dt=2026-11-22/window=20261122T181900Z/s1-b.parquet'],
      }),
    );
    expect(summary.text).toContain('Stopped after 1m40s (Ctrl-C).');
    expect(summary.text).toContain(
      '  produced      3,280 writes: 1,200 inserts, 1,700 updates, 380 deletes\n',
    );
    expect(summary.text).toContain('  committed     3,280 records in 5 segments (0.5 MB of Parquet)\n');
    expect(summary.text).toContain(
      '  sealed        2 windows this run (2 sealed on disk in all, 1,817 records)\n',
    );
    expect(summary.text).toContain(
      '  manifests     orders/manifests/dt=2026-11-22/20261122T181700Z.json  (1,817 records, 1 segment)\n                and 1 empty window\n',
    );
    expect(summary.text).toContain(
      `  data          ${path.join('/data/s3', 'changelog', 'demo', 'orders')}${path.sep}`,
    );
    expect(summary.text).toContain('Query the sealed windows with DuckDB');
    expect(summary.query).toContain(
      '-- 1 sealed window with data (starting 2026-11-22T18:17:00.000Z): 1 Parquet file',
    );
    expect(summary.query).toContain(`'${s3rverObjectPath('/data/s3', 'changelog', 'demo', key)}'`);
    expect(summary.query).not.toContain('s1-b.parquet'); // committed, but not in a sealed window
    expect(summary.text.endsWith(`${summary.query}\n`)).toBe(true);
  });

  it("says nothing is sealed yet and queries this run's committed segments instead", () => {
    const summary = buildLocalSummary(
      input({
        committedThisRun: ['orders/data/dt=2026-11-22/window=20261122T181700Z/s1-a.parquet'],
        sealedOnDisk: [],
      }),
    );
    expect(summary.text).toContain('No window is sealed yet');
    expect(summary.text).toContain('run longer, e.g. --duration 3m');
    expect(summary.query).toMatch(/^-- NOT SEALED YET: 1 segment this run committed/);
  });

  it('has no query when nothing was committed', () => {
    const summary = buildLocalSummary(input({ sealedOnDisk: undefined }));
    expect(summary.query).toBeUndefined();
    expect(summary.text).toContain('the manifests could not be read');
    expect(summary.text).toContain('Nothing was committed, so there is nothing to query yet.');
  });

  it('mentions producer failures and gaps', () => {
    const summary = buildLocalSummary(
      input({ produced: { ...produced, conflicts: 2, errors: 5 }, metrics: { ...metrics, gaps: 1 } }),
    );
    expect(summary.text).toContain('380 deletes (2 refused, 5 failed)');
    expect(summary.text).toContain('  GAPS          1');
  });
});
