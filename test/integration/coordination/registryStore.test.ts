import { afterEach, describe, expect, it } from 'vitest';
import type { GapRecord, SegmentRecord, WindowState } from '../../../src/coordination/registryStore.js';
import { ChangelogError } from '../../../src/support/errors.js';
import {
  type CommitEnv,
  createCommitEnv,
  lossyClient,
  seq,
  T0,
  W,
  WINDOW_MS,
} from '../../helpers/commitFixtures.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * The segment registry and window state on DynamoDB Local: the conditions that make commits and
 * seals exactly-once (create-only segment items, the window-open check, fenced state moves, the
 * sealer lease) and the range queries the sealer reads.
 */

const db = useDynamoDbLocal();
const envs: CommitEnv[] = [];
async function env(): Promise<CommitEnv> {
  const e = await createCommitEnv(db().client, []);
  envs.push(e);
  return e;
}
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
});

function segment(
  e: CommitEnv,
  windowStartMs: number,
  id: string,
  over: Partial<SegmentRecord> = {},
): SegmentRecord {
  return {
    windowStartMs,
    segmentId: id,
    commitId: `commit-${id}`,
    key: `${e.table}/data/x/${id}.parquet`,
    bytes: 1234,
    records: 3,
    checksum: `sha256:${'a'.repeat(64)}`,
    minEventTimeMs: windowStartMs + 1000,
    maxEventTimeMs: windowStartMs + 3000,
    lateRecords: 0,
    shards: [
      {
        shardId: 'shard-1',
        afterSequenceNumber: 'TRIM_HORIZON',
        firstSequenceNumber: seq(1, 1),
        lastSequenceNumber: seq(1, 3),
        records: 3,
      },
    ],
    streamArn: e.streamArn,
    workerId: 'worker-a',
    ...over,
  };
}

function gap(windowStartMs: number, after: string): GapRecord {
  return {
    windowStartMs,
    shardId: 'shard-1',
    afterSequenceNumber: after,
    resumedAtSequenceNumber: seq(1, 90),
    fromTimeMs: windowStartMs + 10,
    toTimeMs: windowStartMs + 20,
    detectedAtMs: windowStartMs + 30,
    reason: 'TrimmedDataAccessException',
  };
}

function initial(e: CommitEnv, closedThroughMs = W(-2)): WindowState {
  return {
    windowMs: WINDOW_MS,
    streamArn: e.streamArn,
    closedThroughMs,
    sealedThroughMs: closedThroughMs,
    closedAtMs: T0,
    gcThroughMs: closedThroughMs,
  };
}

async function cancellation(p: Promise<unknown>): Promise<string[] | undefined> {
  try {
    await p;
    return undefined;
  } catch (error) {
    expect((error as Error).name).toBe('TransactionCanceledException');
    return ((error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? []).map(
      (r) => r.Code ?? '',
    );
  }
}

describe('RegistryStore on DynamoDB Local', () => {
  it('writes a segment item once: it reads back whole, and a second put of it is refused', async () => {
    const e = await env();
    const r = e.registry;
    const s = segment(e, W(0), 's1-aaa');
    await r.transact([r.segmentPut(s)]);
    expect(await r.getSegment(W(0), 's1-aaa')).toEqual(s);
    expect(await r.getSegment(W(1), 's1-aaa')).toBeUndefined();
    expect(await cancellation(r.transact([r.segmentPut({ ...s, workerId: 'worker-b' })]))).toEqual([
      'ConditionalCheckFailed',
    ]);
    expect((await r.getSegment(W(0), 's1-aaa'))?.workerId).toBe('worker-a');
  });

  it('queries segments and gaps of a window range [from, to) in key order', async () => {
    const e = await env();
    const r = e.registry;
    for (const [n, id] of [
      [0, 's1-b'],
      [0, 's1-a'],
      [1, 's1-c'],
      [2, 's1-d'],
    ] as const) {
      await r.transact([r.segmentPut(segment(e, W(n), id))]);
    }
    await r.transact([r.gapPut(gap(W(1), seq(1, 5))), r.gapPut(gap(W(3), 'TRIM_HORIZON'))]);

    const all = await r.queryRange(W(0), W(4));
    expect(all.segments.map((s) => [s.windowStartMs, s.segmentId])).toEqual([
      [W(0), 's1-a'],
      [W(0), 's1-b'],
      [W(1), 's1-c'],
      [W(2), 's1-d'],
    ]);
    expect(all.gaps).toEqual([gap(W(1), seq(1, 5)), gap(W(3), 'TRIM_HORIZON')]);
    const one = await r.queryRange(W(1), W(2));
    expect(one.segments.map((s) => s.segmentId)).toEqual(['s1-c']);
    expect(one.gaps.map((g) => g.windowStartMs)).toEqual([W(1)]);
    expect(await r.queryRange(W(2), W(2))).toEqual({ segments: [], gaps: [] });
    expect(await r.queryRange(W(3), W(1))).toEqual({ segments: [], gaps: [] });

    // Rewriting a gap is harmless.
    await r.transact([r.gapPut(gap(W(1), seq(1, 5)))]);
    expect((await r.queryRange(W(1), W(2))).gaps).toHaveLength(1);
  });

  it('checks in a transaction that the window is open: no state, or closedThroughMs at or before it', async () => {
    const e = await env();
    const r = e.registry;
    // No state yet: every window is open.
    await r.transact([r.windowOpenCheck(W(0)), r.segmentPut(segment(e, W(0), 's1-0'))]);
    await r.initState(initial(e, W(1)));
    await r.transact([r.windowOpenCheck(W(1)), r.segmentPut(segment(e, W(1), 's1-1'))]);
    expect(
      await cancellation(r.transact([r.segmentPut(segment(e, W(0), 's1-late')), r.windowOpenCheck(W(0))])),
    ).toEqual(['None', 'ConditionalCheckFailed']);
    expect(await r.getSegment(W(0), 's1-late')).toBeUndefined();
  });

  it('creates the window state once; later creations return the stored one', async () => {
    const e = await env();
    const r = e.registry;
    expect(await r.getState()).toBeUndefined();
    const first = await r.initState(initial(e));
    expect(first).toEqual({ ...initial(e), firstManifestMs: undefined });
    const second = await r.initState({ ...initial(e, W(5)), windowMs: 5 * WINDOW_MS });
    expect(second).toEqual(first);
  });

  it('moves the state only from the expected state and under the held sealer lease at its epoch', async () => {
    const e = await env();
    const r = e.registry;
    const held = (await r.takeSealerLease(undefined, 'sealer-1'))!;
    expect(held).toEqual({ owner: 'sealer-1', leaseCounter: 1, leaseEpoch: 1 });
    const s0 = await r.initState(initial(e));
    const s1: WindowState = { ...s0, closedThroughMs: W(1), closedAtMs: T0 + 5 };
    const sealer = { owner: 'sealer-1', leaseEpoch: held.leaseEpoch };

    expect(await r.updateState(s0, s1, { owner: 'sealer-2', leaseEpoch: 1 })).toBe(false);
    expect(await r.updateState(s0, s1, { owner: 'sealer-1', leaseEpoch: 2 })).toBe(false);
    expect(await r.getState()).toEqual(s0);
    expect(await r.updateState(s0, s1, sealer)).toBe(true);
    expect(await r.getState()).toEqual(s1);
    // From a stale expected state: refused (unless it already is the target).
    expect(await r.updateState(s0, { ...s1, closedThroughMs: W(2) }, sealer)).toBe(false);
    expect(await r.getState()).toEqual(s1);
  });

  it('reports success when a state move landed but its answer was lost', async () => {
    const e = await env();
    const lossy = lossyClient(db().endpoint);
    try {
      const r = e.registryWith(lossy.client, { retries: 0 });
      const held = (await r.takeSealerLease(undefined, 's'))!;
      const s0 = await r.initState(initial(e));
      const s1: WindowState = { ...s0, closedThroughMs: W(1), closedAtMs: T0 + 5 };
      lossy.loseAnswers('TransactWriteItemsCommand', 1);
      const lost = await r.updateState(s0, s1, { owner: 's', leaseEpoch: held.leaseEpoch }).catch((x) => x);
      expect(lost).toBeInstanceOf(ChangelogError);
      expect((lost as ChangelogError).retriable).toBe(true);
      expect(await r.getState()).toEqual(s1);
      // The caller tries the same move again: it is reported as done.
      expect(await r.updateState(s0, s1, { owner: 's', leaseEpoch: held.leaseEpoch })).toBe(true);
      // And with the registry's own retries, a lost answer is invisible.
      const retrying = e.registryWith(lossy.client);
      const s2: WindowState = { ...s1, sealedThroughMs: W(1) };
      lossy.loseAnswers('TransactWriteItemsCommand', 1);
      expect(await retrying.updateState(s1, s2, { owner: 's', leaseEpoch: held.leaseEpoch })).toBe(true);
      expect(await r.getState()).toEqual(s2);
    } finally {
      lossy.destroy();
    }
  });

  it('lets the same sealer make successive state moves (each needs its own request token)', async () => {
    const e = await env();
    const r = e.registry;
    const held = (await r.takeSealerLease(undefined, 'sealer-1'))!;
    const sealer = { owner: 'sealer-1', leaseEpoch: held.leaseEpoch };
    const s0 = await r.initState(initial(e, W(0)));
    // Close two windows, then seal them one at a time, then record the orphan sweep: what the
    // sealer does in one cycle. Regression: the token was cut to 36 characters, so these moves
    // shared one and DynamoDB refused the second (IdempotentParameterMismatchException).
    const closed: WindowState = { ...s0, closedThroughMs: W(2), closedAtMs: T0 + 1 };
    const sealed1: WindowState = { ...closed, sealedThroughMs: W(1), firstManifestMs: W(0) };
    const sealed2: WindowState = { ...sealed1, sealedThroughMs: W(2) };
    const swept: WindowState = { ...sealed2, gcThroughMs: W(2) };
    const outcomes: string[] = [];
    let from = s0;
    for (const to of [closed, sealed1, sealed2, swept]) {
      try {
        outcomes.push(String(await r.updateState(from, to, sealer)));
      } catch (error) {
        outcomes.push(`${(error as Error).name} (cause: ${(error as { cause?: Error }).cause?.name})`);
        break;
      }
      from = to;
    }
    expect(outcomes).toEqual(['true', 'true', 'true', 'true']);
    expect(await r.getState()).toEqual(swept);
  });

  it('keeps one sealer lease: take, renew, release; a stale holder is fenced out', async () => {
    const e = await env();
    const r = e.registry;
    expect(await r.getSealerLease()).toBeUndefined();
    const a = (await r.takeSealerLease(undefined, 'sealer-a'))!;
    expect(a).toEqual({ owner: 'sealer-a', leaseCounter: 1, leaseEpoch: 1 });
    // A second taker that observed "no item" loses the race.
    expect(await r.takeSealerLease(undefined, 'sealer-b')).toBeUndefined();
    const renewed = (await r.renewSealerLease({ ...a, owner: 'sealer-a' }))!;
    expect(renewed).toEqual({ owner: 'sealer-a', leaseCounter: 2, leaseEpoch: 1 });
    // Taking with a stale observation fails; with the current one (expired holder) succeeds.
    expect(await r.takeSealerLease(a, 'sealer-b')).toBeUndefined();
    const b = (await r.takeSealerLease(renewed, 'sealer-b'))!;
    expect(b).toEqual({ owner: 'sealer-b', leaseCounter: 3, leaseEpoch: 2 });
    expect(await r.renewSealerLease({ ...renewed, owner: 'sealer-a' })).toBeUndefined();
    await r.releaseSealerLease({ ...renewed, owner: 'sealer-a' }); // fenced: no effect
    expect(await r.getSealerLease()).toEqual(b);
    await r.releaseSealerLease({ ...b, owner: 'sealer-b' });
    const free = (await r.getSealerLease())!;
    expect(free).toEqual({ owner: undefined, leaseCounter: 4, leaseEpoch: 2 });
    expect(await r.takeSealerLease(free, 'sealer-a')).toEqual({
      owner: 'sealer-a',
      leaseCounter: 5,
      leaseEpoch: 3,
    });
  });

  it('stores the advisory watermark', async () => {
    const e = await env();
    expect(await e.registry.getWatermark()).toBeUndefined();
    await e.registry.putWatermark(W(3) + 17);
    expect(await e.registry.getWatermark()).toBe(W(3) + 17);
  });
});
