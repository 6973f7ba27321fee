import { describe, expect, it } from 'vitest';
import { ChangelogMetrics } from '../../../src/app/metrics.js';

const P = 'dynamodb_changelog_';

async function text(metrics: ChangelogMetrics): Promise<string> {
  return (await metrics.exposition()).body;
}

function sample(body: string, name: string, labels = ''): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${P}${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('ChangelogMetrics', () => {
  it('counts reads, GetRecords outcomes and errors by kind', async () => {
    const metrics = new ChangelogMetrics({ defaultMetrics: false });
    metrics.getRecords('shard-1', 'ok', 0.02);
    metrics.getRecords('shard-1', 'ProvisionedThroughputExceededException', 0.01);
    metrics.pageConsumed({
      shardId: 'shard-1',
      records: 1000,
      bytes: 512_000,
      lastEventTimeMs: Date.now() - 30_000,
      caughtUp: false,
    });
    const body = await text(metrics);
    expect(sample(body, 'records_read_total')).toBe(1000);
    expect(sample(body, 'read_bytes_total')).toBe(512_000);
    expect(sample(body, 'getrecords_calls_total', '{outcome="ok"}')).toBe(1);
    expect(sample(body, 'getrecords_calls_total', '{outcome="ProvisionedThroughputExceededException"}')).toBe(
      1,
    );
    expect(sample(body, 'errors_total', '{kind="ProvisionedThroughputExceededException"}')).toBe(1);
    expect(sample(body, 'getrecords_duration_seconds_count')).toBe(2);
    const age = sample(body, 'shard_iterator_age_seconds', '{shard_id="shard-1"}');
    expect(age).toBeGreaterThanOrEqual(29);
    expect(age).toBeLessThan(120);
  });

  it('reports 0 behind at the tip, and drops per-shard series when the shard leaves', async () => {
    const metrics = new ChangelogMetrics({ defaultMetrics: false });
    metrics.pageConsumed({
      shardId: 'shard-1',
      records: 0,
      bytes: 10,
      lastEventTimeMs: undefined,
      caughtUp: true,
    });
    metrics.pageConsumed({
      shardId: 'shard-2',
      records: 0,
      bytes: 10,
      lastEventTimeMs: undefined,
      caughtUp: true,
    });
    let body = await text(metrics);
    expect(sample(body, 'shard_iterator_age_seconds', '{shard_id="shard-1"}')).toBe(0);
    metrics.leaseChanged('shard-1', 'released');
    metrics.leaseCycle({ held: [], readableUnowned: ['shard-3'] });
    body = await text(metrics);
    expect(body).not.toContain('shard_id="shard-1"');
    expect(body).not.toContain('shard_id="shard-2"');
    expect(sample(body, 'lease_changes_total', '{change="released"}')).toBe(1);
    expect(sample(body, 'leases_held')).toBe(0);
    expect(sample(body, 'leases_available')).toBe(1);
  });

  it('counts commits, conflicts, seals, gaps and orphans, and reads live values at scrape time', async () => {
    const metrics = new ChangelogMetrics({ defaultMetrics: false });
    let buffered = 1234;
    metrics.bind({
      bufferedBytes: () => buffered,
      bufferedWindows: () => 2,
      stalledShards: () => [{ shardId: 'shard-9', reason: 'no-progress' }],
    });
    metrics.segmentCommitted({
      windowStartMs: 0,
      key: 'orders/data/dt=1970-01-01/window=19700101T000000Z/s.parquet',
      records: 10,
      bytes: 900,
      lateRecords: 1,
      gaps: 0,
      shards: [
        {
          shardId: 'shard-1',
          afterSequenceNumber: 'TRIM_HORIZON',
          firstSequenceNumber: '1',
          lastSequenceNumber: '10',
          records: 10,
        },
      ],
      put: 'created',
      seconds: 0.3,
    });
    metrics.commitFailed('conflict');
    metrics.commitFailed('refused');
    metrics.gapRecorded();
    metrics.windowSealed({
      windowStartMs: 0,
      key: 'orders/manifests/dt=1970-01-01/19700101T000000Z.json',
      records: 10,
      segments: 1,
      gaps: 1,
      lateRecords: 0,
      complete: false,
    });
    metrics.orphansDeleted(3);
    metrics.cycleFailed('sealer-cycle');
    metrics.watermark(1_700_000_000_000);
    let body = await text(metrics);
    expect(sample(body, 'records_written_total')).toBe(10);
    expect(sample(body, 'written_bytes_total')).toBe(900);
    expect(sample(body, 'segments_committed_total')).toBe(1);
    expect(sample(body, 'late_records_total')).toBe(1);
    expect(sample(body, 'commit_failures_total', '{kind="conflict"}')).toBe(1);
    expect(sample(body, 'commit_failures_total', '{kind="refused"}')).toBe(1);
    expect(sample(body, 'gaps_total')).toBe(1);
    expect(sample(body, 'windows_sealed_total')).toBe(1);
    expect(sample(body, 'windows_sealed_incomplete_total')).toBe(1);
    expect(sample(body, 'orphans_deleted_total')).toBe(3);
    expect(sample(body, 'errors_total', '{kind="sealer-cycle"}')).toBe(1);
    expect(sample(body, 'watermark_seconds')).toBe(1_700_000_000);
    expect(sample(body, 'buffered_bytes')).toBe(1234);
    expect(sample(body, 'buffered_windows')).toBe(2);
    expect(sample(body, 'stalled_shards')).toBe(1);
    expect(sample(body, 'shard_stalled', '{shard_id="shard-9",reason="no-progress"}')).toBe(1);
    buffered = 0;
    body = await text(metrics);
    expect(sample(body, 'buffered_bytes')).toBe(0);
    const snapshot = await metrics.snapshot();
    expect(snapshot).toMatchObject({ recordsWritten: 10, segmentsCommitted: 1, windowsSealed: 1, gaps: 1 });
  });

  it('reports the age of the oldest unsealed window on the sealer leader only', async () => {
    const metrics = new ChangelogMetrics({ defaultMetrics: false });
    const windowMs = 60_000;
    metrics.sealerState({ leader: true, sealedThroughMs: Date.now() - 10 * windowMs, windowMs });
    let body = await text(metrics);
    expect(sample(body, 'sealer_leader')).toBe(1);
    const age = sample(body, 'oldest_unsealed_window_age_seconds')!;
    expect(age).toBeGreaterThanOrEqual(540);
    expect(age).toBeLessThan(600);
    metrics.sealerState({ leader: false, sealedThroughMs: undefined, windowMs });
    body = await text(metrics);
    expect(sample(body, 'sealer_leader')).toBe(0);
    expect(sample(body, 'oldest_unsealed_window_age_seconds')).toBe(0);
  });

  it('includes the process metrics by default', async () => {
    const body = await text(new ChangelogMetrics());
    expect(body).toContain(`${P}process_resident_memory_bytes`);
  });
});
