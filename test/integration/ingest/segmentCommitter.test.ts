import { afterEach, describe, expect, it } from 'vitest';
import { segmentObjectKey, windowDataPrefix } from '../../../src/changelog/layout.js';
import { SHARD_END, TRIM_HORIZON } from '../../../src/changelog/sequenceNumber.js';
import { sha256Checksum } from '../../../src/coordination/objectStore.js';
import type { RegistryShardEntry } from '../../../src/coordination/registryStore.js';
import { ChangelogError, LeaseLostError, WindowClosedError } from '../../../src/support/errors.js';
import {
  type CommitEnv,
  createCommitEnv,
  dataKeys,
  FaultyStore,
  lossyClient,
  makeCommitter,
  objectsPage,
  recordRun,
  reopenSession,
  segmentRows,
  seq,
  sessionOf,
  shardName,
  T0,
  takeSession,
  W,
  WINDOW_MS,
} from '../../helpers/commitFixtures.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * The commit protocol of SegmentCommitter on the real DynamoDB Local (transactions, conditions and
 * CancellationReasons are DynamoDB's own), driven through its ShardSink API with hand-made pages.
 * Windows are 1 minute and every record's event time is chosen, so window assignment is exact.
 */

const db = useDynamoDbLocal();
const A = shardName(1);
const B = shardName(2);
const C = shardName(3);

const envs: CommitEnv[] = [];
async function env(shards: string[]): Promise<CommitEnv> {
  const e = await createCommitEnv(db().client, shards);
  envs.push(e);
  return e;
}
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
});

const byShard = (entries: readonly RegistryShardEntry[]) =>
  [...entries].sort((a, b) => (a.shardId < b.shardId ? -1 : 1));

describe('SegmentCommitter on DynamoDB Local', () => {
  it('commits two shards as one segment: one transaction moves both checkpoints and registers it', async () => {
    const e = await env([A, B]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    const sb = await takeSession(leases, B);
    committer.open(sa);
    committer.open(sb);

    const summary = await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 5, (n) => W(0) + n * 1000),
      ),
    );
    expect(summary).toMatchObject({
      records: 5,
      firstSequenceNumber: seq(1, 1),
      lastSequenceNumber: seq(1, 5),
    });
    await committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 1, 3, (n) => W(0) + 10_000 + n * 1000),
      ),
    );
    // Nothing is due yet: no flush by age, size or window close.
    expect(commits).toEqual([]);
    expect(committer.bufferedBytes).toBeGreaterThan(0);
    expect((await leases.getLease(A))?.checkpoint).toBe(TRIM_HORIZON);

    await committer.drain();

    expect(commits).toHaveLength(1);
    const event = commits[0]!;
    expect(event).toMatchObject({
      windowStartMs: W(0),
      records: 8,
      lateRecords: 0,
      gaps: 0,
      put: 'created',
    });
    expect(byShard(event.shards)).toEqual([
      {
        shardId: A,
        afterSequenceNumber: TRIM_HORIZON,
        firstSequenceNumber: seq(1, 1),
        lastSequenceNumber: seq(1, 5),
        records: 5,
      },
      {
        shardId: B,
        afterSequenceNumber: TRIM_HORIZON,
        firstSequenceNumber: seq(2, 1),
        lastSequenceNumber: seq(2, 3),
        records: 3,
      },
    ]);
    expect(event.key.startsWith(windowDataPrefix(e.table, W(0)))).toBe(true);
    expect(committer.bufferedBytes).toBe(0);

    // The registry holds exactly this segment, with the object's real size and checksum.
    const { segments, gaps } = await e.registry.queryRange(W(-5), W(5));
    expect(gaps).toEqual([]);
    expect(segments).toHaveLength(1);
    const registered = segments[0]!;
    const bytes = await e.store.get(event.key);
    expect(bytes).toBeDefined();
    expect(registered).toMatchObject({
      windowStartMs: W(0),
      key: event.key,
      bytes: bytes!.byteLength,
      records: 8,
      checksum: sha256Checksum(bytes!),
      minEventTimeMs: W(0) + 1000,
      maxEventTimeMs: W(0) + 13_000,
      lateRecords: 0,
      streamArn: e.streamArn,
      workerId: 'worker-a',
    });
    expect(segmentObjectKey(e.table, W(0), registered.segmentId)).toBe(event.key);
    expect(byShard(registered.shards)).toEqual(byShard(event.shards));
    expect(event.bytes).toBe(bytes!.byteLength);
    expect((await e.store.head(event.key))?.checksum).toBe(registered.checksum);

    // Both checkpoints moved, with the event time and window of what was committed.
    const leaseA = await leases.getLease(A);
    const leaseB = await leases.getLease(B);
    expect(leaseA).toMatchObject({
      owner: 'worker-a',
      checkpoint: seq(1, 5),
      lastEventTimeMs: W(0) + 5000,
      windowStartMs: W(0),
    });
    expect(leaseB).toMatchObject({
      owner: 'worker-a',
      checkpoint: seq(2, 3),
      lastEventTimeMs: W(0) + 13_000,
      windowStartMs: W(0),
    });

    // The object holds exactly the 8 records.
    const rows = await segmentRows(e.store, event.key);
    expect(rows.map((r) => r.event_id).sort()).toEqual(
      [...recordRun(1, 1, 5, () => 0), ...recordRun(2, 1, 3, () => 0)].map((r) => `ev-${r.seq}`).sort(),
    );
    expect(await dataKeys(e.store, e.table)).toEqual([event.key]);

    // An empty page at the tip with nothing buffered: the shard reports it is caught up.
    expect(committer.progress(A)).toBeUndefined();
    await committer.accept(sa, objectsPage(A, [], { serverTime: new Date(W(1) + 5000) }));
    expect(committer.progress(A)).toEqual({ caughtUpAtMs: W(1) + 5000 });
  });

  it('keeps each shard’s rows when readers of several shards deliver pages at the same time', async () => {
    // Readers run concurrently: with the window state read between decoding a page and copying its
    // rows, another shard's page overwrote the shared scratch buffer (one page lost, one doubled).
    const shards = [A, B, C];
    const e = await env(shards);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sessions = [];
    for (const shardId of shards) {
      const session = await takeSession(leases, shardId);
      committer.open(session);
      sessions.push(session);
    }
    const pages = 4;
    await Promise.all(
      sessions.map(async (session, i) => {
        for (let p = 0; p < pages; p++) {
          const from = p * 10 + 1;
          await committer.accept(
            session,
            objectsPage(
              shards[i]!,
              recordRun(i + 1, from, from + 9, (n) => W(0) + n * 1000),
            ),
          );
        }
      }),
    );
    await committer.drain();
    const rows = (await Promise.all(commits.map((c) => segmentRows(e.store, c.key)))).flat();
    const expected = shards.flatMap((_, i) =>
      recordRun(i + 1, 1, pages * 10, () => 0).map((r) => `ev-${r.seq}`),
    );
    expect(rows.map((r) => r.event_id).sort()).toEqual(expected.sort());
    for (const [i, shardId] of shards.entries()) {
      expect((await leases.getLease(shardId))?.checkpoint).toBe(seq(i + 1, pages * 10));
    }
  });

  it('commits a shard spanning two windows in window order; windows never go back', async () => {
    const e = await env([A]);
    const store = new FaultyStore(e.store);
    // After the first commit, hold the next segment write to look at the lease in between.
    let openGate!: () => void;
    let secondPut!: Promise<void>;
    let markFirst!: () => void;
    const firstCommitted = new Promise<void>((resolve) => {
      markFirst = resolve;
    });
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', {
      store,
      observer: {
        segmentCommitted: () => {
          if (store.gate) return;
          store.gate = new Promise<void>((resolve) => {
            openGate = resolve;
          });
          secondPut = store.nextPutStarted();
          markFirst();
        },
      },
    });
    const sa = await takeSession(leases, A);
    committer.open(sa);

    // 1,2 in window 0; 3 in window 1; 4 is earlier (window 0 time) but follows 3: it stays in
    // window 1 and is late; 6 is earlier than 5 but inside window 1: not late.
    await committer.accept(
      sa,
      objectsPage(A, [
        { seq: seq(1, 1), timeMs: W(0) + 10_000 },
        { seq: seq(1, 2), timeMs: W(0) + 20_000 },
        { seq: seq(1, 3), timeMs: W(1) + 10_000 },
        { seq: seq(1, 4), timeMs: W(0) + 30_000 },
        { seq: seq(1, 5), timeMs: W(1) + 20_000 },
        { seq: seq(1, 6), timeMs: W(1) + 15_000 },
      ]),
    );
    // A later page back in window 0's time: still window 1, late.
    await committer.accept(sa, objectsPage(A, [{ seq: seq(1, 7), timeMs: W(0) + 40_000 }]));
    expect(commits).toEqual([]);

    const draining = committer.drain();
    await firstCommitted;
    await secondPut;
    expect(commits).toHaveLength(1);
    expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 2), windowStartMs: W(0) });
    openGate();
    await draining;

    expect(commits.map((c) => c.windowStartMs)).toEqual([W(0), W(1)]);
    expect(commits[0]).toMatchObject({ records: 2, lateRecords: 0 });
    expect(commits[1]).toMatchObject({ records: 5, lateRecords: 2 });
    expect(commits[0]!.shards).toEqual([
      {
        shardId: A,
        afterSequenceNumber: TRIM_HORIZON,
        firstSequenceNumber: seq(1, 1),
        lastSequenceNumber: seq(1, 2),
        records: 2,
      },
    ]);
    expect(commits[1]!.shards).toEqual([
      {
        shardId: A,
        afterSequenceNumber: commits[0]!.shards[0]!.lastSequenceNumber,
        firstSequenceNumber: seq(1, 3),
        lastSequenceNumber: seq(1, 7),
        records: 5,
      },
    ]);
    expect(await leases.getLease(A)).toMatchObject({
      checkpoint: seq(1, 7),
      windowStartMs: W(1),
      lastEventTimeMs: W(1) + 20_000,
    });
    const rows = await segmentRows(e.store, commits[1]!.key);
    expect(rows.map((r) => r.sequence_number).sort()).toEqual([3, 4, 5, 6, 7].map((n) => seq(1, n)));

    // Another incarnation (a restarted reader, a new committer) keeps the lease's window: a
    // window-0 record read next still goes to window 1, as a late record.
    const next = makeCommitter(e, 'worker-a');
    const again = await reopenSession(next.leases, A);
    next.committer.open(again);
    await next.committer.accept(again, objectsPage(A, [{ seq: seq(1, 8), timeMs: W(0) + 50_000 }]));
    await next.committer.drain();
    expect(next.commits).toHaveLength(1);
    expect(next.commits[0]).toMatchObject({ windowStartMs: W(1), records: 1, lateRecords: 1 });
    expect(next.commits[0]!.shards[0]!.afterSequenceNumber).toBe(seq(1, 7));

    const { segments } = await e.registry.queryRange(W(-5), W(5));
    expect(segments.map((s) => [s.windowStartMs, s.records, s.lateRecords])).toEqual([
      [W(0), 2, 0],
      [W(1), 5, 2],
      [W(1), 1, 1],
    ]);
  });

  it('refuses a commit to a window closed before the flush: orphan object, no checkpoint move, restart, then late rows in the open window', async () => {
    const e = await env([A]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);
    const page = objectsPage(
      A,
      recordRun(1, 1, 3, (n) => W(0) + n * 1000),
    );
    await committer.accept(sa, page);

    // The sealer closes windows through W(1) while the rows sit in the buffer.
    const sealer = await e.registry.takeSealerLease(undefined, 'sealer-1');
    expect(sealer?.owner).toBe('sealer-1');
    const state = await e.registry.initState({
      windowMs: WINDOW_MS,
      streamArn: e.streamArn,
      closedThroughMs: W(-2),
      sealedThroughMs: W(-2),
      closedAtMs: T0,
    });
    const closed = { ...state, closedThroughMs: W(1), closedAtMs: T0 + 1 };
    expect(
      await e.registry.updateState(state, closed, { owner: 'sealer-1', leaseEpoch: sealer!.leaseEpoch }),
    ).toBe(true);

    await committer.drain();

    expect(commits).toEqual([]);
    expect(sa.restarts).toHaveLength(1);
    expect(sa.restarts[0]).toBeInstanceOf(WindowClosedError);
    expect((sa.restarts[0] as WindowClosedError).windowStartMs).toBe(W(0));
    expect(sa.signal.aborted).toBe(true);
    // The object was written, but it is an orphan: nothing in the registry lists it.
    const orphans = await dataKeys(e.store, e.table);
    expect(orphans).toHaveLength(1);
    expect(orphans[0]!.startsWith(windowDataPrefix(e.table, W(0)))).toBe(true);
    expect((await e.registry.queryRange(W(-5), W(5))).segments).toEqual([]);
    expect(await leases.getLease(A)).toMatchObject({ checkpoint: TRIM_HORIZON, owner: 'worker-a' });
    expect(committer.bufferedBytes).toBe(0);
    // The dropped session takes nothing more.
    await expect(committer.accept(sa, page)).rejects.toThrow(/no longer open in this worker/);

    // The reader starts again from the checkpoint: the same rows go to the earliest open window.
    const again = await reopenSession(leases, A);
    committer.open(again);
    await committer.accept(again, page);
    await committer.drain();
    expect(commits).toHaveLength(1);
    expect(commits[0]).toMatchObject({ windowStartMs: W(1), records: 3, lateRecords: 3 });
    expect(commits[0]!.shards[0]).toMatchObject({
      afterSequenceNumber: TRIM_HORIZON,
      firstSequenceNumber: seq(1, 1),
      lastSequenceNumber: seq(1, 3),
    });
    expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 3), windowStartMs: W(1) });
    const { segments } = await e.registry.queryRange(W(-5), W(5));
    expect(segments.map((s) => s.windowStartMs)).toEqual([W(1)]);
    expect(await dataKeys(e.store, e.table)).toHaveLength(2); // the orphan stays until the sealer's GC
  });

  it('fences a worker whose lease was stolen between accept and flush: only that shard is refused, the thief commits its records', async () => {
    const e = await env([A, B]);
    const victim = makeCommitter(e, 'worker-a');
    const sa = await takeSession(victim.leases, A);
    const sb = await takeSession(victim.leases, B);
    victim.committer.open(sa);
    victim.committer.open(sb);
    const pageA = objectsPage(
      A,
      recordRun(1, 1, 4, (n) => W(0) + n * 1000),
    );
    const pageB = objectsPage(
      B,
      recordRun(2, 1, 2, (n) => W(0) + n * 1000),
    );
    await victim.committer.accept(sa, pageA);
    await victim.committer.accept(sb, pageB);

    const thief = makeCommitter(e, 'worker-b');
    const stolen = await takeSession(thief.leases, A);
    expect(stolen.lease.leaseEpoch).toBe(sa.lease.leaseEpoch + 1);

    await victim.committer.drain();

    // Only the lost shard is refused: B is committed at once without A's rows (re-encoded into
    // another object), and only A is read again.
    expect(victim.commits).toHaveLength(1);
    expect(victim.commits[0]!.shards.map((s) => s.shardId)).toEqual([B]);
    expect(sa.restarts).toHaveLength(1);
    expect(sa.restarts[0]).toBeInstanceOf(LeaseLostError);
    expect(sb.restarts).toHaveLength(0);
    expect(await victim.leases.getLease(A)).toMatchObject({ checkpoint: TRIM_HORIZON, owner: 'worker-b' });
    expect(await victim.leases.getLease(B)).toMatchObject({ checkpoint: seq(2, 2), owner: 'worker-a' });
    expect(await dataKeys(e.store, e.table)).toHaveLength(2); // the refused A+B object is an orphan

    // The thief commits A's records.
    thief.committer.open(stolen);
    await thief.committer.accept(stolen, pageA);
    await thief.committer.drain();

    expect(thief.commits).toHaveLength(1);
    expect(thief.commits[0]!.shards.map((s) => s.shardId)).toEqual([A]);
    const { segments } = await e.registry.queryRange(W(-5), W(5));
    expect(segments.map((s) => [s.workerId, s.shards.map((h) => h.shardId)]).sort()).toEqual([
      ['worker-a', [B]],
      ['worker-b', [A]],
    ]);
    expect(await thief.leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 4), owner: 'worker-b' });
    // A fenced-out session cannot be used for anything more.
    await expect(victim.committer.accept(sa, pageA)).rejects.toBeInstanceOf(LeaseLostError);
  });

  it('does not report as its own a segment that a thief committed with the same records first', async () => {
    const e = await env([A]);
    const victim = makeCommitter(e, 'worker-a');
    const sa = await takeSession(victim.leases, A);
    victim.committer.open(sa);
    const pageA = objectsPage(
      A,
      recordRun(1, 1, 4, (n) => W(0) + n * 1000),
    );
    await victim.committer.accept(sa, pageA);

    // The thief reads and commits exactly the same records (same window, same range: same key).
    const thief = makeCommitter(e, 'worker-b');
    const stolen = await takeSession(thief.leases, A);
    thief.committer.open(stolen);
    await thief.committer.accept(stolen, pageA);
    await thief.committer.drain();
    expect(thief.commits).toHaveLength(1);

    await victim.committer.drain();

    // The victim's transaction was refused (fenced); the registry item it then finds is the
    // thief's, so it must not count as its own commit.
    expect((await e.registry.queryRange(W(-5), W(5))).segments.map((s) => s.workerId)).toEqual(['worker-b']);
    expect(victim.commits).toEqual([]);
    expect(sa.restarts.map((r) => r.name)).toEqual(['LeaseLostError']);
  });

  it('regression: a reader stopping while its rows are in flight does not make the commit discard another shard', async () => {
    // Issue 10, bug 1: the emptied in-flight head was spliced out of the queue, and the commit
    // then shifted the next buffer (B's uncommitted rows) away by position. B's checkpoint did not
    // move, so its next segment chained over the hole.
    const e = await env([A, B]);
    const store = new FaultyStore(e.store);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', { store });
    const sa = await takeSession(leases, A);
    const sb = await takeSession(leases, B);
    committer.open(sa);
    committer.open(sb);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, (n) => W(0) + n * 1000),
      ),
    );
    await committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 1, 2, (n) => W(1) + n * 1000),
      ),
    );

    let open!: () => void;
    store.gate = new Promise((resolve) => {
      open = resolve;
    });
    const putStarted = store.nextPutStarted();
    const draining = committer.drain();
    await putStarted; // A's buffer (window 0, the head) is being written
    committer.close(sa, false); // A's reader stops: its lease was lost while renewing, say
    store.gate = undefined;
    open();
    await draining;

    // A's rows were committed by the session that read them (its lease was still valid); B's
    // buffer was not thrown away.
    expect(commits.map((c) => c.shards.map((s) => s.shardId))).toEqual([[A], [B]]);
    expect(await leases.getLease(B)).toMatchObject({ checkpoint: seq(2, 2) });
    await committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 3, 4, (n) => W(1) + n * 1000),
      ),
    );
    await committer.drain();
    const { segments } = await e.registry.queryRange(W(-5), W(5));
    const chainB = segments
      .flatMap((s) => s.shards)
      .filter((h) => h.shardId === B)
      .map((h) => [h.afterSequenceNumber, h.firstSequenceNumber, h.lastSequenceNumber]);
    expect(chainB.sort()).toEqual(
      [
        [TRIM_HORIZON, seq(2, 1), seq(2, 2)],
        [seq(2, 2), seq(2, 3), seq(2, 4)],
      ].sort(),
    );
    expect(sb.restarts).toEqual([]);
  });

  it('self-check: rows that vanished from the buffers are never chained over; the shard is refused and rewound', async () => {
    // Whatever the cause, a segment whose first row is not the first uncommitted row the session
    // accepted must not commit: it would hide a hole behind a contiguous-looking chain.
    const e = await env([A, B]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    const sb = await takeSession(leases, B);
    committer.open(sa);
    committer.open(sb);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, (n) => W(0) + n * 1000),
      ),
    );
    await committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 1, 2, (n) => W(0) + n * 1000),
      ),
    );
    await committer.accept(
      sb,
      objectsPage(
        B,
        recordRun(2, 3, 4, (n) => W(1) + n * 1000),
      ),
    );
    // Simulate the loss: B's window-0 rows disappear from the buffers (as bug 1 did).
    const internals = committer as unknown as {
      queue: { buffer: { shards: readonly string[] } }[];
    };
    expect(internals.queue).toHaveLength(2);
    const [head] = internals.queue.splice(0, 1);
    expect(head!.buffer.shards).toEqual([A, B]);

    await committer.drain().catch(() => undefined);

    // Nothing of B was committed past the hole; B is read again from its checkpoint.
    const { segments } = await e.registry.queryRange(W(-5), W(5));
    expect(segments.flatMap((s) => s.shards).filter((h) => h.shardId === B)).toEqual([]);
    expect(await leases.getLease(B)).toMatchObject({ checkpoint: TRIM_HORIZON });
    expect(sb.restarts).toHaveLength(1);
    expect(sb.restarts[0]!.message).toMatch(/self-check/);
    expect(commits.flatMap((c) => c.shards.map((s) => s.shardId))).not.toContain(B);
  });

  it('a start shard first read longer after the start than the stream keeps records gets a gap before its first row', async () => {
    // TRIM_HORIZON skips trimmed records without a word. For a shard of the changelog's start the
    // committer checks: the oldest record still held is after the start, and the start is older
    // than the retention, so records written after the start may have been trimmed unread.
    const D = shardName(4);
    const e = await env([A, B, C, D]);
    const start = await e.leasesFor('inspector').changelogStart();
    expect([A, B, C, D].every((id) => start?.shardIds.has(id))).toBe(true);
    const startedAt = start!.startedAtMs;
    const afterStart = (n: number) => Math.floor(startedAt / 1000) * 1000 + 10_000 + n * 1000;
    const run = async (
      shardId: string,
      s: number,
      wallClockOffsetMs: number,
      timeOf: (n: number) => number,
      trimmedFirst = false,
    ) => {
      const { committer, leases } = makeCommitter(e, `worker-${shardId}`, {
        streamRetentionMs: 60_000,
        wallClock: () => Date.now() + wallClockOffsetMs,
      });
      const session = await takeSession(leases, shardId);
      committer.open(session);
      // The reader may also have met a TrimmedDataAccessException first: still one gap, not two
      // (two at one position would be two writes of one registry item in a transaction).
      if (trimmedFirst) {
        await committer.gap(session, {
          shardId,
          afterSequenceNumber: undefined,
          reason: 'TrimmedDataAccessException',
          detectedAt: undefined,
        });
      }
      await committer.accept(session, objectsPage(shardId, recordRun(s, 1, 2, timeOf)));
      await committer.drain();
    };
    // A: within the retention, nothing after the start can have been trimmed yet.
    await run(A, 1, 0, afterStart);
    // B: the oldest record held is from before the start, so nothing after it was trimmed.
    await run(B, 2, 10 * 60_000, (n) => W(0) + n * 1000);
    // C: past the retention, with only records after the start left: a gap before its first row.
    await run(C, 3, 10 * 60_000, afterStart);
    // D: the same, after the reader reported a trim itself.
    await run(D, 4, 10 * 60_000, afterStart, true);

    const { segments, gaps } = await e.registry.queryRange(W(-5), afterStart(0) + 10 * WINDOW_MS);
    expect(segments).toHaveLength(4);
    expect(gaps.map((g) => g.shardId).sort()).toEqual([C, D]);
    expect(gaps.find((g) => g.shardId === D)).toMatchObject({
      afterSequenceNumber: TRIM_HORIZON,
      resumedAtSequenceNumber: seq(4, 1),
      fromTimeMs: startedAt,
    });
    expect(gaps.find((g) => g.shardId === C)).toMatchObject({
      shardId: C,
      afterSequenceNumber: TRIM_HORIZON,
      resumedAtSequenceNumber: seq(3, 1),
      fromTimeMs: startedAt,
      reason: 'TrimmedDataAccessException',
    });
  });

  it('keeps data buffered while segment writes fail, then commits it exactly once', async () => {
    const e = await env([A]);
    const store = new FaultyStore(e.store);
    store.failPuts = 2;
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', { store });
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 5, (n) => W(0) + n * 1000),
      ),
    );
    const buffered = committer.bufferedBytes;

    for (let attempt = 0; attempt < 2; attempt++) {
      const failure = await committer.drain().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(ChangelogError);
      expect((failure as ChangelogError).retriable).toBe(true);
      expect(String(failure)).toMatch(/1 buffered segment\(s\) could not be committed/);
      expect(committer.bufferedBytes).toBe(buffered);
      expect(commits).toEqual([]);
      expect(await leases.getLease(A)).toMatchObject({ checkpoint: TRIM_HORIZON });
      expect((await e.registry.queryRange(W(-5), W(5))).segments).toEqual([]);
    }
    expect(sa.restarts).toEqual([]);

    await committer.drain();
    expect(store.puts.map((p) => p.outcome)).toEqual(['failed', 'failed', 'created']);
    expect(commits).toHaveLength(1);
    expect(commits[0]).toMatchObject({ records: 5, put: 'created' });
    expect((await e.registry.queryRange(W(-5), W(5))).segments).toHaveLength(1);
    expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 5) });
    expect(await dataKeys(e.store, e.table)).toEqual([commits[0]!.key]);
    expect(committer.bufferedBytes).toBe(0);
  });

  it('detects a commit whose transaction landed but whose answer was lost, and does not repeat it', async () => {
    const e = await env([A]);
    const lossy = lossyClient(db().endpoint);
    try {
      // No registry-level retry: the committer sees the lost answer itself.
      const registry = e.registryWith(lossy.client, { retries: 0 });
      const { committer, commits, leases } = makeCommitter(e, 'worker-a', { registry });
      const sa = await takeSession(leases, A);
      committer.open(sa);
      await committer.accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 1, 5, (n) => W(0) + n * 1000),
        ),
      );
      lossy.loseAnswers('TransactWriteItemsCommand', 1);
      await committer.drain();

      const transactions = lossy.sent.filter((s) => s.command === 'TransactWriteItemsCommand');
      expect(transactions).toEqual([
        { command: 'TransactWriteItemsCommand', lost: true, sentToServer: true },
      ]);
      expect(commits).toHaveLength(1);
      expect(sa.restarts).toEqual([]);
      expect((await e.registry.queryRange(W(-5), W(5))).segments).toHaveLength(1);
      expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 5) });

      // The committer moved on from the landed commit: the next one chains from it.
      await committer.accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 6, 7, (n) => W(0) + n * 1000),
        ),
      );
      await committer.drain();
      expect(commits).toHaveLength(2);
      expect(commits[1]!.shards[0]).toMatchObject({
        afterSequenceNumber: seq(1, 5),
        firstSequenceNumber: seq(1, 6),
      });
      expect((await e.registry.queryRange(W(-5), W(5))).segments).toHaveLength(2);
      expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 7) });
    } finally {
      lossy.destroy();
    }
  });

  it('retries a lost commit answer with the same request token: DynamoDB applies it once', async () => {
    const e = await env([A]);
    const lossy = lossyClient(db().endpoint);
    try {
      const registry = e.registryWith(lossy.client); // the registry retries transient faults
      const { committer, commits, leases } = makeCommitter(e, 'worker-a', { registry });
      const sa = await takeSession(leases, A);
      committer.open(sa);
      await committer.accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 1, 5, (n) => W(0) + n * 1000),
        ),
      );
      lossy.loseAnswers('TransactWriteItemsCommand', 1);
      await committer.drain();
      expect(lossy.sent.filter((s) => s.command === 'TransactWriteItemsCommand').map((s) => s.lost)).toEqual([
        true,
        false,
      ]);
      expect(commits).toHaveLength(1);
      expect((await e.registry.queryRange(W(-5), W(5))).segments).toHaveLength(1);
      expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 5) });
    } finally {
      lossy.destroy();
    }
  });

  it('keeps the segment buffered when the commit never reached DynamoDB, and commits it once later', async () => {
    const e = await env([A]);
    const lossy = lossyClient(db().endpoint);
    try {
      const registry = e.registryWith(lossy.client, { retries: 0 });
      const { committer, commits, leases } = makeCommitter(e, 'worker-a', { registry });
      const sa = await takeSession(leases, A);
      committer.open(sa);
      await committer.accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 1, 3, (n) => W(0) + n * 1000),
        ),
      );
      lossy.failBeforeSend('TransactWriteItemsCommand', 1);
      await expect(committer.drain()).rejects.toThrow(/could not be committed/);
      expect(commits).toEqual([]);
      expect(sa.restarts).toEqual([]);
      expect(await leases.getLease(A)).toMatchObject({ checkpoint: TRIM_HORIZON });

      await committer.drain();
      expect(commits).toHaveLength(1);
      expect(commits[0]!.put).toBe('exists'); // the retried write found its own object
      expect((await e.registry.queryRange(W(-5), W(5))).segments).toHaveLength(1);
      expect(await leases.getLease(A)).toMatchObject({ checkpoint: seq(1, 3) });
      expect(await dataKeys(e.store, e.table)).toHaveLength(1);
    } finally {
      lossy.destroy();
    }
  });

  it('writes a gap in the same commit as the rows after it, and a trailing gap at SHARD_END', async () => {
    const e = await env([A]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);

    await committer.gap(sa, {
      shardId: A,
      afterSequenceNumber: undefined,
      reason: 'TrimmedDataAccessException',
      detectedAt: new Date(W(0) + 5000),
    });
    expect(committer.progress(A)).toBeUndefined();
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 10, 12, (n) => W(0) + n * 1000),
      ),
    );
    await committer.drain();

    expect(commits).toHaveLength(1);
    expect(commits[0]).toMatchObject({ windowStartMs: W(0), records: 3, gaps: 1 });
    let { gaps } = await e.registry.queryRange(W(-5), W(5));
    expect(gaps).toEqual([
      {
        windowStartMs: W(0),
        shardId: A,
        afterSequenceNumber: TRIM_HORIZON,
        resumedAtSequenceNumber: seq(1, 10),
        fromTimeMs: undefined,
        toTimeMs: W(0) + 10_000,
        detectedAtMs: W(0) + 5000,
        reason: 'TrimmedDataAccessException',
      },
    ]);

    // Trimmed again after the last read, then the shard ends with nothing more.
    await committer.gap(sa, {
      shardId: A,
      afterSequenceNumber: seq(1, 12),
      reason: 'TrimmedDataAccessException',
      detectedAt: new Date(W(1)),
    });
    const ended = await committer.finish(sa);
    expect(ended.checkpoint).toBe(SHARD_END);
    expect(await leases.getLease(A)).toMatchObject({ checkpoint: SHARD_END, windowStartMs: W(0) });
    ({ gaps } = await e.registry.queryRange(W(-5), W(5)));
    expect(gaps).toHaveLength(2);
    expect(gaps.find((g) => g.afterSequenceNumber === seq(1, 12))).toEqual({
      windowStartMs: W(0),
      shardId: A,
      afterSequenceNumber: seq(1, 12),
      resumedAtSequenceNumber: undefined,
      fromTimeMs: W(0) + 12_000,
      toTimeMs: undefined,
      detectedAtMs: W(1),
      reason: 'TrimmedDataAccessException',
    });
    expect(commits).toHaveLength(1);
  });

  it('links a gap to the rows read after it even when a flush commits the rows before it first', async () => {
    const e = await env([A]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, (n) => W(0) + n * 1000),
      ),
    );
    await committer.gap(sa, {
      shardId: A,
      afterSequenceNumber: seq(1, 3),
      reason: 'TrimmedDataAccessException',
      detectedAt: new Date(W(0) + 30_000),
    });
    // A timed flush (committer.run) may commit the buffered rows before the reader resumes.
    await committer.drain();
    // The reader resumes past the trimmed records.
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 50, 52, (n) => W(0) + 40_000 + (n - 50) * 1000),
      ),
    );
    await committer.drain();
    expect(commits.map((c) => c.records)).toEqual([3, 3]);

    const { gaps } = await e.registry.queryRange(W(-5), W(5));
    expect(gaps).toHaveLength(1);
    // The shard did not end at the gap: it resumed at 50.
    expect(gaps[0]).toMatchObject({ afterSequenceNumber: seq(1, 3), resumedAtSequenceNumber: seq(1, 50) });
  });

  it('finish commits what is left of the shard, then marks SHARD_END', async () => {
    const e = await env([A]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 3, (n) => W(2) + n * 1000),
      ),
    );
    const ended = await committer.finish(sa);
    expect(commits).toHaveLength(1);
    expect(ended).toMatchObject({ checkpoint: SHARD_END, owner: 'worker-a' });
    expect(await leases.getLease(A)).toMatchObject({ checkpoint: SHARD_END, windowStartMs: W(2) });
  });

  it('holds accept (backpressure) until flushes bring the buffered bytes under the bound', async () => {
    const e = await env([A]);
    const store = new FaultyStore(e.store);
    const maxBufferBytes = 40_000;
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', { store, maxBufferBytes });
    const sa = await takeSession(leases, A);
    committer.open(sa);
    // Each page: 4 records of ~4 KB in its own window, about 16.5 KB buffered.
    const page = (k: number) =>
      objectsPage(
        A,
        recordRun(1, k * 10 + 1, k * 10 + 4, (n) => W(k) + (n % 10) * 1000, 4000),
      );

    await committer.accept(sa, page(0));
    const pageBytes = committer.bufferedBytes;
    expect(pageBytes).toBeGreaterThan(maxBufferBytes / 3);
    expect(pageBytes).toBeLessThan(maxBufferBytes / 2);
    await committer.accept(sa, page(1));
    expect(commits).toEqual([]);

    // The third page crosses the bound: accept waits for the oldest window's commit.
    let openGate!: () => void;
    store.gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    let accepted = false;
    const putStarted = store.nextPutStarted();
    const accepting = committer.accept(sa, page(2)).then(() => {
      accepted = true;
    });
    await putStarted;
    expect(accepted).toBe(false);
    expect(committer.bufferedBytes).toBeGreaterThanOrEqual(maxBufferBytes);
    openGate();
    store.gate = undefined;
    await accepting;
    expect(commits.map((c) => c.windowStartMs)).toEqual([W(0)]); // only as much as needed
    expect(committer.bufferedBytes).toBeGreaterThan(0);
    expect(committer.bufferedBytes).toBeLessThan(maxBufferBytes);

    for (let k = 3; k < 8; k++) {
      await committer.accept(sa, page(k));
      expect(committer.bufferedBytes).toBeLessThan(maxBufferBytes);
    }
    await committer.drain();

    const { segments } = await e.registry.queryRange(W(-5), W(10));
    expect(segments.map((s) => s.windowStartMs)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(W));
    expect(segments.reduce((n, s) => n + s.records, 0)).toBe(32);
    for (let i = 1; i < segments.length; i++) {
      expect(segments[i]!.shards[0]!.afterSequenceNumber).toBe(
        segments[i - 1]!.shards[0]!.lastSequenceNumber,
      );
    }
  });

  it('puts at most maxShardsPerSegment shards in a segment and commits every row exactly once', async () => {
    const e = await env([A, B, C]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', { maxShardsPerSegment: 2 });
    const shards = [A, B, C];
    const sessions = await Promise.all(shards.map((s) => takeSession(leases, s)));
    sessions.forEach((s) => {
      committer.open(s);
    });
    const expected: string[] = [];
    for (const round of [0, 1, 2]) {
      for (const [i, s] of sessions.entries()) {
        const records = recordRun(i + 1, round * 3 + 1, round * 3 + 3, (n) => W(0) + n * 1000);
        expected.push(...records.map((r) => r.seq));
        await committer.accept(s, objectsPage(s.shardId, records));
      }
    }
    await committer.drain();

    expect(commits.length).toBeGreaterThanOrEqual(2);
    for (const c of commits) expect(c.shards.length).toBeLessThanOrEqual(2);
    const { segments } = await e.registry.queryRange(W(-5), W(5));
    expect(segments).toHaveLength(commits.length);

    // Every row exactly once, across the objects the registry lists.
    const committed: string[] = [];
    for (const s of segments) {
      for (const row of await segmentRows(e.store, s.key)) committed.push(row.sequence_number);
    }
    expect(committed.sort()).toEqual([...expected].sort());

    // Per shard, the registered ranges chain from TRIM_HORIZON to the lease's checkpoint.
    for (const [i, shardId] of shards.entries()) {
      const ranges = commits.flatMap((c) => c.shards.filter((h) => h.shardId === shardId));
      let after = TRIM_HORIZON;
      for (const r of ranges) {
        expect(r.afterSequenceNumber).toBe(after);
        after = r.lastSequenceNumber;
      }
      expect(after).toBe(seq(i + 1, 9));
      expect(ranges.reduce((n, r) => n + r.records, 0)).toBe(9);
      expect((await leases.getLease(shardId))?.checkpoint).toBe(seq(i + 1, 9));
    }
  });

  it('flushes a window about to close without waiting for the flush interval', async () => {
    const e = await env([A]);
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', { flushIntervalMs: 30_000 });
    const sa = await takeSession(leases, A);
    committer.open(sa);
    // The sealer's watermark is within a flush interval of window 0's end.
    await e.registry.putWatermark(W(1) - 10_000);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 2, (n) => W(0) + n * 1000),
      ),
    );
    await committer.idle(); // a due flush runs in the background
    expect(commits.map((c) => c.windowStartMs)).toEqual([W(0)]);
    // Window 2 is far from closing: it waits.
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 3, 4, (n) => W(2) + n * 1000),
      ),
    );
    await committer.idle(); // a due flush runs in the background
    expect(commits).toHaveLength(1);
    expect(committer.bufferedBytes).toBeGreaterThan(0);
  });

  it('flushes a buffer once its oldest row waited the flush interval (monotonic clock)', async () => {
    const e = await env([A]);
    let now = 1_000;
    const { committer, commits, leases } = makeCommitter(e, 'worker-a', {
      flushIntervalMs: 5_000,
      now: () => now,
    });
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 1, 2, () => W(0) + 1000),
      ),
    );
    now += 4_999;
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 3, 3, () => W(0) + 2000),
      ),
    );
    await committer.idle(); // a due flush runs in the background
    expect(commits).toEqual([]);
    now += 1;
    await committer.accept(
      sa,
      objectsPage(
        A,
        recordRun(1, 4, 4, () => W(0) + 3000),
      ),
    );
    await committer.idle(); // a due flush runs in the background
    expect(commits).toHaveLength(1);
    expect(commits[0]!.records).toBe(4);
  });

  it('refuses to run with a window size other than the changelog state says', async () => {
    const e = await env([A]);
    await e.registry.initState({
      windowMs: 5 * WINDOW_MS,
      streamArn: e.streamArn,
      closedThroughMs: W(-5),
      sealedThroughMs: W(-5),
      closedAtMs: T0,
    });
    const { committer, commits, leases } = makeCommitter(e, 'worker-a');
    const sa = await takeSession(leases, A);
    committer.open(sa);
    await expect(
      committer.accept(
        sa,
        objectsPage(
          A,
          recordRun(1, 1, 1, () => W(0)),
        ),
      ),
    ).rejects.toThrow(/uses 300000 ms windows, this worker 60000 ms/);
    expect(committer.bufferedBytes).toBe(0);
    expect(commits).toEqual([]);
  });

  it('refuses pages for a session it does not know', async () => {
    const e = await env([A]);
    const { committer, leases } = makeCommitter(e, 'worker-a');
    const lease = (await leases.getLease(A))!;
    await expect(
      committer.accept(
        sessionOf(lease),
        objectsPage(
          A,
          recordRun(1, 1, 1, () => W(0)),
        ),
      ),
    ).rejects.toBeInstanceOf(LeaseLostError);
  });
});
