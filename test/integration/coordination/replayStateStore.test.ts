import { describe, expect, it } from 'vitest';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { RegistryStore } from '../../../src/coordination/registryStore.js';
import { ReplayStateStore } from '../../../src/coordination/replayStateStore.js';
import { LeaseLostError } from '../../../src/support/errors.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * The rewriter lease and a replay's saved progress, on DynamoDB Local's lease table: one rewriter
 * at a time per table, a dead one taken over after failover, a run of the same replay taking over
 * at once, and saves fenced by the lease.
 */

const local = useDynamoDbLocal();
let tables = 0;

async function registry(): Promise<RegistryStore> {
  const tableName = `rewriter-leases-${++tables}`;
  await createLeaseTable(local().client, tableName);
  return new RegistryStore({ client: local().client, tableName, table: 'orders' });
}

describe('ReplayStateStore', () => {
  it('saves and loads a replay’s progress under its lease; a new replay has none', async () => {
    const r = await registry();
    const store = new ReplayStateStore({ registry: r, replayId: 'a' });
    expect(await store.load()).toBeUndefined();
    let held = await store.acquire();
    held = await store.save(held, '{"part":1}');
    held = await store.save(held, '{"part":2}');
    expect(await store.load()).toBe('{"part":2}');
    await store.release(held);
    expect(await new ReplayStateStore({ registry: r, replayId: 'b' }).load()).toBeUndefined();
  });

  it('refuses while another live rewriter holds the lease, takes it once that one stopped renewing', async () => {
    const r = await registry();
    const first = new ReplayStateStore({ registry: r, replayId: 'first' });
    let held = await first.acquire();
    // The other replay waits at most 300 ms for a lease whose counter must stand still 150 ms.
    const waitingSleep = async (ms: number) => {
      held = await first.renew(held);
      await new Promise((resolve) => setTimeout(resolve, ms));
    };
    const second = new ReplayStateStore({
      registry: r,
      replayId: 'second',
      failoverMs: 150,
      maxWaitMs: 300,
      sleep: waitingSleep,
    });
    await expect(second.acquire()).rejects.toThrow(
      /replay:first holds the rewriter lease of table orders .* and is alive; a replay or compaction rewrites windows one at a time/,
    );
    // `first` dies: its counter stands still, and `second` takes over after the failover time.
    const patient = new ReplayStateStore({
      registry: r,
      replayId: 'second',
      failoverMs: 150,
      maxWaitMs: 2_000,
    });
    const taken = await patient.acquire();
    expect(taken.owner).toBe('replay:second');
    // The dead holder's late save is fenced out.
    await expect(first.save(held, '{"late":true}')).rejects.toBeInstanceOf(LeaseLostError);
    expect(await first.load()).toBeUndefined();
  });

  it('a run of the same replay takes its own lease over at once (after kill -9), fencing the earlier run', async () => {
    const r = await registry();
    const earlier = new ReplayStateStore({ registry: r, replayId: 'same' });
    const held = await earlier.acquire();
    const again = new ReplayStateStore({ registry: r, replayId: 'same', maxWaitMs: 0 });
    const taken = await again.acquire();
    expect(taken.leaseEpoch).toBe(held.leaseEpoch + 1);
    await expect(earlier.save(held, '{}')).rejects.toBeInstanceOf(LeaseLostError);
    await again.save(taken, '{"resumed":true}');
    expect(await again.load()).toBe('{"resumed":true}');
  });
});
