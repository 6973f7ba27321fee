import { describe, expect, it } from 'vitest';
import { SHARD_END, TRIM_HORIZON } from '../../../src/changelog/sequenceNumber.js';
import type { Lease } from '../../../src/coordination/lease.js';
import { planLeaseTakes } from '../../../src/coordination/leaseBalancer.js';
import { type LeaseExpiry, LeaseExpiryTracker } from '../../../src/coordination/leaseExpiry.js';

const ME = 'worker-a';

function lease(shardId: string, owner?: string, extra: Partial<Lease> = {}): Lease {
  return {
    shardId,
    owner,
    leaseCounter: 1,
    leaseEpoch: owner === undefined ? 0 : 1,
    checkpoint: TRIM_HORIZON,
    parentShardIds: [],
    ...extra,
  };
}

const shardIds = (leases: readonly Lease[] | undefined) => (leases ?? []).map((l) => l.shardId);
const nothingExpires: LeaseExpiry = { isExpired: (l) => l.owner === undefined };
const expiredOwners = (...owners: string[]): LeaseExpiry => ({
  isExpired: (l) => l.owner === undefined || owners.includes(l.owner),
});

function plan(leases: Lease[], expiry: LeaseExpiry = nothingExpires, workerId = ME) {
  return planLeaseTakes({ leases, workerId, expiry, now: 0 });
}

describe('planLeaseTakes', () => {
  it('takes free leases up to its share, in shardId order', () => {
    const leases = ['s3', 's1', 's4', 's2'].map((id) => lease(id));
    leases.push(lease('s5', 'worker-b'));
    // workers a, b; 5 readable shards -> target 3
    expect(shardIds(plan(leases).take)).toEqual(['s1', 's2', 's3']);
    expect(plan(leases).steal).toBeUndefined();
  });

  it('takes expired leases like free ones and does not count their owner as a worker', () => {
    const leases = [lease('s1', 'worker-dead'), lease('s2', 'worker-dead'), lease('s3', 'worker-b')];
    // live workers a, b; target ceil(3/2) = 2
    expect(shardIds(plan(leases, expiredOwners('worker-dead')).take)).toEqual(['s1', 's2']);
  });

  it('never takes its own lease, even when the tracker calls it expired', () => {
    const leases = [lease('s1', ME), lease('s2')];
    expect(shardIds(plan(leases, expiredOwners(ME)).take)).toEqual(['s2']);
  });

  it('takes nothing at or above target', () => {
    const leases = [lease('s1', ME), lease('s2', ME), lease('s3', 'worker-b'), lease('s4')];
    // s4 is free but ours to leave: worker-b is below target and takes it. It is still listed as
    // waiting (stall detection watches how long a readable shard stays unowned).
    expect(plan(leases)).toEqual({ take: [], available: [leases[3]] });
  });

  it('does not count SHARD_END leases as work', () => {
    const leases = [
      lease('s1', ME),
      lease('s2', ME, { checkpoint: SHARD_END }),
      lease('s3', ME, { checkpoint: SHARD_END }),
      lease('s4'),
    ];
    // 2 readable shards (s1, s4), one worker -> target 2, we hold 1
    expect(shardIds(plan(leases).take)).toEqual(['s4']);
  });

  it('does not steal while free or expired leases remain', () => {
    const leases = [lease('s1', 'worker-b'), lease('s2', 'worker-b'), lease('s3', 'worker-b'), lease('s4')];
    const result = plan(leases);
    expect(shardIds(result.take)).toEqual(['s4']);
    expect(result.steal).toBeUndefined();
  });

  it('steals at most one lease, from the most loaded worker', () => {
    const leases = [
      ...['b1', 'b2', 'b3', 'b4', 'b5'].map((id) => lease(id, 'worker-b')),
      ...['c1', 'c2', 'c3', 'c4', 'c5', 'c6'].map((id) => lease(id, 'worker-c')),
    ];
    // 11 shards over a, b, c -> target 4; c is the most loaded
    expect(plan(leases)).toEqual({ take: [], steal: leases[5], available: [] });
  });

  it('breaks load ties by owner id', () => {
    const leases = [
      ...['c1', 'c2', 'c3'].map((id) => lease(id, 'worker-c')),
      ...['b1', 'b2', 'b3'].map((id) => lease(id, 'worker-b')),
    ];
    expect(plan(leases).steal?.shardId).toBe('b1');
  });

  it('does not steal from a worker at target that is only one ahead', () => {
    const leases = [lease('s1', 'worker-b'), lease('s2', 'worker-b'), lease('s3', ME)];
    // target ceil(3/2) = 2; b holds 2, we hold 1
    expect(plan(leases)).toEqual({ take: [], available: [] });
  });

  it('balances 10 shards over 3 workers to 4/3/3, stealing at most one per worker and cycle', () => {
    const workers = ['worker-a', 'worker-b', 'worker-c'];
    let leases = Array.from({ length: 10 }, (_, i) => lease(`shard-${String(i).padStart(2, '0')}`));
    const apply = (taken: Lease, owner: string) => {
      leases = leases.map((l) =>
        l.shardId === taken.shardId
          ? { ...l, owner, leaseCounter: l.leaseCounter + 1, leaseEpoch: l.leaseEpoch + 1 }
          : l,
      );
    };
    const counts = () => workers.map((w) => leases.filter((l) => l.owner === w).length);

    // worker-a starts alone and takes everything; the others join later and steal their share.
    const first = plan(leases, nothingExpires, 'worker-a');
    expect(first.take).toHaveLength(10);
    for (const l of first.take) apply(l, 'worker-a');

    for (let cycle = 0; cycle < 10; cycle++) {
      for (const worker of workers) {
        const result = plan(leases, nothingExpires, worker);
        expect(result.take).toEqual([]);
        if (result.steal !== undefined) apply(result.steal, worker);
      }
    }
    expect(counts().sort()).toEqual([3, 3, 4]);
    // Stable: nobody wants to move anything any more.
    for (const worker of workers)
      expect(plan(leases, nothingExpires, worker)).toEqual({ take: [], available: [] });
  });

  it('takes over a dead worker’s leases once the tracker sees its counters stand still', () => {
    const clock = { t: 0 };
    const expiry = new LeaseExpiryTracker({ failoverMs: 10_000, now: () => clock.t });
    const leases = [lease('s1', 'worker-b'), lease('s2', 'worker-b'), lease('s3', ME)];
    expiry.observe(leases);
    expect(planLeaseTakes({ leases, workerId: ME, expiry, now: clock.t })).toEqual({
      take: [],
      available: [],
    });
    clock.t += 10_000;
    expiry.observe(leases);
    const result = planLeaseTakes({ leases, workerId: ME, expiry, now: clock.t });
    // worker-b no longer counts: one worker, 3 shards, target 3
    expect(shardIds(result.take)).toEqual(['s1', 's2']);
  });

  describe('lineage', () => {
    it('keeps a child until every parent lease is at SHARD_END', () => {
      const leases = [
        lease('p1', undefined, { checkpoint: SHARD_END }),
        lease('p2', 'worker-b', { checkpoint: '12345' }),
        lease('child', undefined, { parentShardIds: ['p1', 'p2'] }),
      ];
      expect(shardIds(plan(leases).take)).toEqual([]);
      leases[1] = { ...leases[1]!, checkpoint: SHARD_END };
      expect(shardIds(plan(leases).take)).toEqual(['child']);
    });

    it('treats a parent without a lease item as finished', () => {
      const leases = [lease('child', undefined, { parentShardIds: ['trimmed-parent'] })];
      expect(shardIds(plan(leases).take)).toEqual(['child']);
    });

    it('sizes the target by readable shards only, so waiting children do not skew it', () => {
      const parents = ['p1', 'p2', 'p3', 'p4'].map((id) => lease(id, 'worker-b'));
      const children = ['c1', 'c2', 'c3', 'c4'].map((id, i) =>
        lease(id, undefined, { parentShardIds: [`p${i + 1}`] }),
      );
      // 4 readable parents over a and b -> target 2: steal one now rather than wait for the children.
      expect(plan([...parents, ...children])).toEqual({ take: [], steal: parents[0], available: [] });
    });
  });
});
