import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ReplayConfig } from '../../../src/app/replayConfig.js';
import { main } from '../../../src/cli/main.js';

// Only the flags' way to the config is tested here: runReplay is replaced by a recorder.
const runReplay = vi.hoisted(() => vi.fn(async (config: ReplayConfig) => ({ replayId: config.replayId })));
vi.mock('../../../src/app/replay.js', () => ({ runReplay }));

describe('dynamodb-changelog replay', () => {
  let stderr: string;

  beforeEach(() => {
    stderr = '';
    runReplay.mockClear();
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr += String(chunk);
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    vi.stubEnv('CHANGELOG_DESTINATION', undefined);
    vi.stubEnv('CHANGELOG_TABLE', undefined);
    vi.stubEnv('CHANGELOG_LEASE_TABLE', undefined);
  });

  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  const run = (...args: string[]) => main(['node', 'dynamodb-changelog', 'replay', ...args]);

  it('hands every flag to the config', async () => {
    vi.stubEnv('CHANGELOG_LEASE_TABLE', 'orders-leases');
    const code = await run(
      '--destination',
      's3://changelog-bucket/cl',
      '--table',
      'orders',
      '--mode',
      'fill-gaps',
      '--source',
      'export',
      '--since',
      '2026-11-22T06:00:00Z',
      '--until',
      '2026-11-22T09:00:00Z',
      '--start-export',
      '--export-to',
      's3://exports-bucket/ddb',
      '--export-from',
      '2026-11-22T06:00:00Z',
      '--export-until',
      '2026-11-22T09:00:00Z',
      '--replay-id',
      'fill-1',
      '--dry-run',
      '--wait-for-seal',
      '10m',
      '--progress',
      'none',
      '--s3-force-path-style',
    );
    expect(code).toBe(0);
    expect(runReplay).toHaveBeenCalledTimes(1);
    expect(runReplay.mock.calls[0]![0]).toMatchObject({
      destination: { url: 's3://changelog-bucket/cl', s3ForcePathStyle: true },
      table: 'orders',
      leaseTable: 'orders-leases',
      mode: 'fill-gaps',
      source: 'export',
      sinceMs: Date.UTC(2026, 10, 22, 6),
      untilMs: Date.UTC(2026, 10, 22, 9),
      startExport: {
        exportType: 'INCREMENTAL_EXPORT',
        fromMs: Date.UTC(2026, 10, 22, 6),
        toMs: Date.UTC(2026, 10, 22, 9),
        toUrl: 's3://exports-bucket/ddb/',
      },
      replayId: 'fill-1',
      dryRun: true,
      waitForSealMs: 600_000,
      progress: 'none',
    });

    await run(
      ...['--destination', 'file:///tmp/cl', '--table', 'orders', '--mode', 'bootstrap', '--source', 'scan'],
      ...['--segments', '16', '--max-rcu-per-second', '500'],
    );
    expect(runReplay.mock.calls[1]![0]).toMatchObject({ segments: 16, maxRcuPerSecond: 500 });
  });

  it('reports all flag problems at once with exit code 2, before replaying anything', async () => {
    expect(await run('--table', 'orders', '--mode', 'rebuild', '--source', 'scan')).toBe(2);
    expect(runReplay).not.toHaveBeenCalled();
    expect(stderr).toContain('--destination: missing');
    expect(stderr).toContain('--lease-table: missing');
    expect(stderr).toContain('--mode rebuild with --source scan: not a replay');
    expect(stderr).toContain('--since: missing');
  });

  it('refuses a mode, source or progress outside its choices', async () => {
    for (const [flag, value] of [
      ['--mode', 'backfill'],
      ['--source', 'ftp'],
      ['--progress', 'bar'],
    ]) {
      expect(await run(flag!, value!)).not.toBe(0);
      expect(stderr).toContain(`'${value}' is invalid`);
    }
    expect(runReplay).not.toHaveBeenCalled();
  });
});
