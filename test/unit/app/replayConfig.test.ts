import { describe, expect, it } from 'vitest';
import { parseReplayConfig, type ReplayOptionsInput } from '../../../src/app/replayConfig.js';
import { ConfigError } from '../../../src/support/errors.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const HOUR = 3_600_000;
const base = { destination: 's3://bucket/changelog', table: 'orders', leaseTable: 'orders-leases' };

function problems(input: ReplayOptionsInput): readonly string[] {
  try {
    parseReplayConfig(input, NOW);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

const replayId = (input: ReplayOptionsInput, now = NOW) => parseReplayConfig(input, now).replayId;

describe('parseReplayConfig', () => {
  it('reads a bootstrap from a scan with the defaults', () => {
    expect(parseReplayConfig({ ...base, mode: 'bootstrap', source: 'scan' }, NOW)).toEqual({
      destination: { url: 's3://bucket/changelog', s3ForcePathStyle: false },
      table: 'orders',
      leaseTable: 'orders-leases',
      mode: 'bootstrap',
      source: 'scan',
      sinceMs: undefined,
      untilMs: undefined,
      exportUrl: undefined,
      startExport: undefined,
      segments: 4,
      maxRcuPerSecond: undefined,
      replayId: expect.stringMatching(/^bootstrap-scan-[0-9a-f]{12}$/),
      dryRun: false,
      waitForSealMs: 0,
      maxSegmentBytes: 64 * 1024 * 1024,
      progress: 'json',
    });
  });

  it('reads every allowed mode and source pair', () => {
    const scan = parseReplayConfig(
      {
        ...base,
        mode: 'bootstrap',
        source: 'scan',
        segments: '64',
        maxRcuPerSecond: '2500.5',
        dryRun: true,
        waitForSeal: '10m',
        isTty: true,
        s3ForcePathStyle: true,
      },
      NOW,
    );
    expect(scan).toMatchObject({
      segments: 64,
      maxRcuPerSecond: 2500.5,
      dryRun: true,
      waitForSealMs: 600_000,
      progress: 'tty',
      destination: { s3ForcePathStyle: true },
    });

    expect(
      parseReplayConfig({ ...base, mode: 'bootstrap', source: 'export', startExport: true }, NOW),
    ).toMatchObject({
      exportUrl: undefined,
      startExport: {
        exportType: 'FULL_EXPORT',
        fromMs: undefined,
        toMs: undefined,
        toUrl: 's3://bucket/changelog/orders/exports/',
      },
    });
    expect(
      parseReplayConfig(
        { ...base, mode: 'bootstrap', source: 'export', startExport: true, exportUntil: '-1h' },
        NOW,
      ).startExport,
    ).toMatchObject({ exportType: 'FULL_EXPORT', toMs: NOW - HOUR });

    expect(
      parseReplayConfig(
        {
          ...base,
          mode: 'fill-gaps',
          source: 'export',
          since: '2026-11-22T06:00:00Z',
          until: '2026-11-22T09:00:00Z',
          startExport: true,
          exportFrom: '2026-11-22T06:00:00Z',
          exportUntil: '2026-11-22T09:00:00Z',
          exportTo: 's3://exports-bucket/ddb',
        },
        NOW,
      ),
    ).toMatchObject({
      sinceMs: Date.UTC(2026, 10, 22, 6),
      untilMs: Date.UTC(2026, 10, 22, 9),
      startExport: {
        exportType: 'INCREMENTAL_EXPORT',
        fromMs: Date.UTC(2026, 10, 22, 6),
        toMs: Date.UTC(2026, 10, 22, 9),
        toUrl: 's3://exports-bucket/ddb/',
      },
    });

    expect(
      parseReplayConfig(
        {
          ...base,
          mode: 'fill-gaps',
          source: 'export',
          since: '-6h',
          export: 's3://exports-bucket/ddb/AWSDynamoDB/01234567890123-a1b2c3d4',
        },
        NOW,
      ),
    ).toMatchObject({
      sinceMs: NOW - 6 * HOUR,
      untilMs: undefined,
      exportUrl: 's3://exports-bucket/ddb/AWSDynamoDB/01234567890123-a1b2c3d4/',
      startExport: undefined,
    });

    expect(
      parseReplayConfig({ ...base, mode: 'rebuild', source: 'stream', since: '-6h' }, NOW),
    ).toMatchObject({ mode: 'rebuild', source: 'stream', sinceMs: NOW - 6 * HOUR });
    expect(
      parseReplayConfig(
        { ...base, mode: 'rebuild', source: 'stream', since: '-6h', until: '-1h', progress: 'none' },
        NOW,
      ),
    ).toMatchObject({ sinceMs: NOW - 6 * HOUR, untilMs: NOW - HOUR, progress: 'none' });
  });

  it("takes --max-segment-bytes as a byte size of at least 1 MiB, the daemon's default otherwise", () => {
    const scan = { ...base, mode: 'bootstrap', source: 'scan' };
    expect(parseReplayConfig(scan, NOW).maxSegmentBytes).toBe(64 * 1024 * 1024);
    expect(parseReplayConfig({ ...scan, maxSegmentBytes: '8MiB' }, NOW).maxSegmentBytes).toBe(
      8 * 1024 * 1024,
    );
    expect(problems({ ...scan, maxSegmentBytes: '512KiB' })).toEqual([
      '--max-segment-bytes: "512KiB" is not a byte size of at least 1MiB, such as 64MiB or 100MB',
    ]);
    expect(problems({ ...scan, maxSegmentBytes: 'lots' })).toEqual([
      '--max-segment-bytes: "lots" is not a byte size of at least 1MiB, such as 64MiB or 100MB',
    ]);
  });

  it('normalises an --export URL to end in exactly one /', () => {
    const exportUrl = (url: string) =>
      parseReplayConfig({ ...base, mode: 'bootstrap', source: 'export', export: url }, NOW).exportUrl;
    expect(exportUrl('s3://exports-b/x/AWSDynamoDB/01234567890123-a1b2c3d4')).toBe(
      's3://exports-b/x/AWSDynamoDB/01234567890123-a1b2c3d4/',
    );
    expect(exportUrl('s3://exports-b/x/AWSDynamoDB/01234567890123-a1b2c3d4//')).toBe(
      's3://exports-b/x/AWSDynamoDB/01234567890123-a1b2c3d4/',
    );
    expect(exportUrl('file:///tmp/exports/AWSDynamoDB/e1')).toBe('file:///tmp/exports/AWSDynamoDB/e1/');
  });

  it('reports every problem at once, naming flag, value and what is allowed', () => {
    expect(
      problems({
        destination: 'http://x',
        table: 'a',
        mode: 'backfill',
        source: 'scan',
        since: 'yesterday',
        segments: '0',
        maxRcuPerSecond: '-5',
        replayId: 'has space',
        waitForSeal: 'soon',
        progress: 'bar',
      }),
    ).toEqual([
      expect.stringMatching(/^--destination: destination "http:\/\/x" has an unsupported scheme/),
      '--table: "a" is not a DynamoDB table name (3-255 of letters, digits, _ . -)',
      '--lease-table: missing; give the lease table of the daemon (`run --lease-table`) that writes this changelog (or set CHANGELOG_LEASE_TABLE)',
      '--mode: "backfill" is not one of bootstrap, fill-gaps, rebuild',
      expect.stringMatching(/^--since: "yesterday" is not an ISO-8601 time/),
      '--segments: "0" is not a whole number from 1 to 1000000 (the parallel scan\'s TotalSegments)',
      '--max-rcu-per-second: "-5" is not a number above 0 (read capacity units a second)',
      '--replay-id: "has space" is not 1-64 of letters, digits, - and _',
      '--wait-for-seal: "soon" is not a duration such as 0, 30s, 10m or 1h',
      '--progress: "bar" is not one of tty, json, none',
    ]);
    expect(problems({})).toEqual([
      '--destination: missing; give s3://bucket/prefix or file:///dir (or set CHANGELOG_DESTINATION)',
      '--table: missing; give the DynamoDB table name (or set CHANGELOG_TABLE)',
      expect.stringMatching(/^--lease-table: missing; .*\(or set CHANGELOG_LEASE_TABLE\)$/),
      '--mode: missing; give one of bootstrap, fill-gaps, rebuild',
      '--source: missing; give one of scan, export, stream',
    ]);
  });

  it('refuses a mode with a source it cannot read, listing the pairs', () => {
    const pairs = 'the pairs are bootstrap with scan or export; fill-gaps with export; rebuild with stream';
    expect(problems({ ...base, mode: 'bootstrap', source: 'stream' })).toEqual([
      `--mode bootstrap with --source stream: not a replay; ${pairs}`,
    ]);
    expect(problems({ ...base, mode: 'rebuild', source: 'scan', since: '-1h' })).toEqual([
      `--mode rebuild with --source scan: not a replay; ${pairs}`,
    ]);
    expect(problems({ ...base, mode: 'fill-gaps', source: 'scan', since: '-1h' })).toEqual([
      `--mode fill-gaps with --source scan: not a replay; ${pairs}`,
    ]);
  });

  it('takes a range for fill-gaps and rebuild (--since required, before --until), none for bootstrap', () => {
    expect(problems({ ...base, mode: 'rebuild', source: 'stream' })).toEqual([
      expect.stringMatching(/^--since: missing; --mode rebuild looks at the windows from --since on: an ISO/),
    ]);
    expect(
      problems({
        ...base,
        mode: 'rebuild',
        source: 'stream',
        since: '2026-11-22T10:00:00Z',
        until: '2026-11-22T09:00:00Z',
      }),
    ).toEqual([
      '--until: "2026-11-22T09:00:00Z" (2026-11-22T09:00:00.000Z) must be after --since "2026-11-22T10:00:00Z" (2026-11-22T10:00:00.000Z)',
    ]);
    expect(problems({ ...base, mode: 'bootstrap', source: 'scan', since: '-1h', until: '-1m' })).toEqual([
      '--since: only with --mode fill-gaps or rebuild (a bootstrap replays the whole table)',
      '--until: only with --mode fill-gaps or rebuild (a bootstrap replays the whole table)',
    ]);
  });

  it('needs exactly one of --export and --start-export with --source export', () => {
    const exportBase = { ...base, mode: 'bootstrap', source: 'export' };
    expect(problems(exportBase)).toEqual([
      "--source export: give --export <url> (an export's folder) or --start-export (have DynamoDB export the table first)",
    ]);
    expect(problems({ ...exportBase, export: 's3://exports-b/e/', startExport: true })).toEqual([
      '--export and --start-export cannot be used together: read an export, or start one',
    ]);
    expect(problems({ ...exportBase, export: 'https://b/e/' })).toEqual([
      expect.stringMatching(/^--export: "https:\/\/b\/e\/" is not the URL of an export's folder, e\.g\. s3:/),
    ]);
    expect(
      problems({
        ...exportBase,
        export: 's3://exports-b/e/',
        exportTo: 's3://exports-b/x',
        exportFrom: '-1h',
      }),
    ).toEqual(['--export-to: only with --start-export', '--export-from: only with --start-export']);
    expect(
      problems({
        ...base,
        mode: 'rebuild',
        source: 'stream',
        since: '-1h',
        export: 's3://exports-b/e/',
        segments: '8',
      }),
    ).toEqual(['--export: only with --source export', '--segments: only with --source scan']);
  });

  it('checks the export --start-export asks DynamoDB for', () => {
    const start = { ...base, mode: 'fill-gaps', source: 'export', since: '-6h', startExport: true };
    expect(problems(start)).toEqual([
      expect.stringMatching(
        /^--export-from: missing; --start-export with --mode fill-gaps starts an incremental/,
      ),
      expect.stringMatching(
        /^--export-until: missing; --start-export with --mode fill-gaps starts an incremental/,
      ),
    ]);
    expect(problems({ ...start, exportFrom: '-6h', exportUntil: '-5h50m' })).toEqual([
      '--export-from "-6h" to --export-until "-5h50m" is 10m: DynamoDB takes an incremental export period of at least 15 minutes and at most 24 hours',
    ]);
    expect(problems({ ...start, exportFrom: '-30h', exportUntil: '-5h' })).toEqual([
      '--export-from "-30h" to --export-until "-5h" is 1d1h: DynamoDB takes an incremental export period of at least 15 minutes and at most 24 hours',
    ]);
    expect(problems({ ...start, exportFrom: '-5h', exportUntil: '-6h' })).toEqual([
      expect.stringMatching(/^--export-until: "-6h" \(.*\) must be after --export-from "-5h"/),
    ]);
    expect(problems({ ...start, exportFrom: '-6h', exportUntil: '2026-11-23T00:00:00Z' })).toEqual([
      '--export-until: "2026-11-23T00:00:00Z" (2026-11-23T00:00:00.000Z) is in the future; DynamoDB exports only the past',
    ]);
    // Exactly the limits are allowed.
    expect(problems({ ...start, exportFrom: '-6h', exportUntil: '-5h45m' })).toEqual([]);
    expect(problems({ ...start, exportFrom: '-25h', exportUntil: '-1h' })).toEqual([]);

    const full = { ...base, mode: 'bootstrap', source: 'export', startExport: true };
    expect(problems({ ...full, exportFrom: '-2h' })).toEqual([
      '--export-from: only with --mode fill-gaps (a full export is of one point in time: --export-until, default now)',
    ]);
    expect(problems({ ...full, destination: 'file:///tmp/changelog' })).toEqual([
      '--export-to: missing; a file:// destination cannot receive a DynamoDB export: give the s3://bucket/prefix to export to',
    ]);
    expect(problems({ ...full, exportTo: 'file:///tmp/exports' })).toEqual([
      '--export-to: "file:///tmp/exports" is not an s3:// URL; DynamoDB exports only to S3',
    ]);
    expect(
      parseReplayConfig(
        { ...full, destination: 'file:///tmp/changelog', exportTo: 's3://exports-e/x//' },
        NOW,
      ).startExport?.toUrl,
    ).toBe('s3://exports-e/x/');
    expect(parseReplayConfig({ ...full, destination: 's3://bucket' }, NOW).startExport?.toUrl).toBe(
      's3://bucket/orders/exports/',
    );
  });

  it('derives a stable replay id from what is replayed, unless --replay-id names one', () => {
    const fill = { ...base, mode: 'rebuild', source: 'stream', since: '2026-11-22T06:00:00Z' };
    const id = replayId(fill);
    expect(id).toMatch(/^rebuild-stream-[0-9a-f]{12}$/);
    // The same flags again (later, and with what does not change what is replayed): the same id.
    expect(replayId({ ...fill, dryRun: true, waitForSeal: '5m', progress: 'none' }, NOW + HOUR)).toBe(id);
    expect(replayId({ ...fill, since: '1795327200000' })).toBe(id);
    // Another range, table or source: another replay.
    expect(replayId({ ...fill, since: '2026-11-22T07:00:00Z' })).not.toBe(id);
    expect(replayId({ ...fill, until: '2026-11-22T09:00:00Z' })).not.toBe(id);
    expect(replayId({ ...fill, table: 'orders2' })).not.toBe(id);
    expect(replayId({ ...fill, mode: 'rebuild' })).toMatch(/^rebuild-stream-/);

    const scan = { ...base, mode: 'bootstrap', source: 'scan' };
    expect(replayId({ ...scan, maxRcuPerSecond: '100' })).toBe(replayId(scan));
    expect(replayId({ ...scan, segments: '8' })).not.toBe(replayId(scan));
    const exported = { ...base, mode: 'bootstrap', source: 'export' };
    expect(replayId({ ...exported, export: 's3://exports-b/e1' })).toBe(
      replayId({ ...exported, export: 's3://exports-b/e1/' }),
    );
    expect(replayId({ ...exported, export: 's3://exports-b/e1' })).not.toBe(
      replayId({ ...exported, export: 's3://exports-b/e2' }),
    );
    expect(replayId({ ...exported, startExport: true })).toBe(replayId({ ...exported, startExport: true }));

    expect(replayId({ ...fill, replayId: 'gap_fill-2026-11-22' })).toBe('gap_fill-2026-11-22');
    expect(problems({ ...fill, replayId: 'x'.repeat(65) })).toEqual([
      `--replay-id: "${'x'.repeat(65)}" is not 1-64 of letters, digits, - and _`,
    ]);
  });
});
