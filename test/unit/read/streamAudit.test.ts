import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isoTime } from '../../../src/changelog/layout.js';
import type { ManifestGap } from '../../../src/changelog/manifest.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import type { StreamAuditOptions } from '../../../src/read/streamAudit.js';
import { type VerifyReport, verifyChangelog } from '../../../src/read/verifier.js';
import { type FakeShard, FakeStream, virtualClock } from '../../helpers/auditStream.js';
import {
  buildChangelogSpec,
  type ChangelogSpec,
  type ChangelogSpecOptions,
  FIRST_WINDOW_MS,
  SHARD_A,
  SHARD_B,
  STREAM_ARN,
  TABLE,
  WINDOW_MS,
  writeChangelog,
} from '../../helpers/changelogFixtures.js';
import { generateRecords, type WireRecord } from '../../helpers/streamRecords.js';

/*
 * `verify --stream` against a mocked stream: shard A (closed) split into C, B open throughout,
 * three sealed 1-minute windows built by the real encoder from the records the stream serves.
 */

const SHARD_C = 'shardId-00000001763800000000-cccccccc';
const SHARD_D = 'shardId-00000001763800000000-dddddddd';
/** Window 0: A+B; window 1: A, B; window 2: B+C (A has ended, C is its child). */
const LAYOUT = [[[SHARD_A, SHARD_B]], [[SHARD_A], [SHARD_B]], [[SHARD_B, SHARD_C]]];
const W = (i: number) => FIRST_WINDOW_MS + i * WINDOW_MS;
const fastRetry = { baseDelayMs: 0, maxDelayMs: 0, retries: 3 };
const seqOf = (r: WireRecord) => r.dynamodb.SequenceNumber;
const kinds = (report: VerifyReport) => report.violations.map((v) => v.kind);
const streamKinds = (report: VerifyReport) => kinds(report).filter((k) => k.startsWith('stream-'));

interface Built {
  spec: ChangelogSpec;
  /** Per shard, every record the parts were generated with, before a test's changes to them. */
  stream: Map<string, WireRecord[]>;
}

/** The fixture changelog, and the stream it was read from (records copied before `override` edits them). */
function build(options: Pick<ChangelogSpecOptions, 'override' | 'gaps'> = {}): Built {
  const stream = new Map<string, WireRecord[]>();
  const spec = buildChangelogSpec({
    layout: LAYOUT,
    ...(options.gaps !== undefined && { gaps: options.gaps }),
    override: (w, shardId, previous) => {
      const o = options.override?.(w, shardId, previous) ?? {};
      return {
        ...o,
        mapRecords: (records) => {
          const list = stream.get(shardId) ?? [];
          stream.set(shardId, list);
          list.push(...records.map((r) => structuredClone(r)));
          o.mapRecords?.(records);
        },
      };
    },
  });
  return { spec, stream };
}

/** B's history before the range (not read: B's chain starts after it) and its unsealed tail. */
const B_BEFORE = generateRecords({
  records: 3,
  seed: 7,
  startSequence: 199_999_999_999_999_990_000n,
  startTimeSeconds: (FIRST_WINDOW_MS - 3_600_000) / 1000,
});
const B_TAIL = generateRecords({
  records: 4,
  seed: 8,
  startSequence: 210_000_000_000_000_000_000n,
  startTimeSeconds: W(3) / 1000 + 30,
});

function fakeShards(built: Built): FakeShard[] {
  const of = (id: string) => built.stream.get(id) ?? [];
  return [
    { shardId: SHARD_A, closed: true, records: [...of(SHARD_A)] },
    { shardId: SHARD_B, closed: false, records: [...B_BEFORE, ...of(SHARD_B), ...B_TAIL] },
    { shardId: SHARD_C, parentShardId: SHARD_A, closed: false, records: [...of(SHARD_C)] },
  ];
}

describe('verify --stream', () => {
  const streamsMock = mockClient(DynamoDBStreamsClient);
  let streams: DynamoDBStreamsClient;
  let dir: string;
  let store: LocalObjectStore;

  beforeEach(async () => {
    streamsMock.reset();
    streams = new DynamoDBStreamsClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-stream-audit-'));
    store = new LocalObjectStore({ dir });
  });

  afterEach(async () => {
    streams.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes the changelog, serves `shards`, runs verify with the stream audit. */
  async function audit(
    built: Built,
    shards: FakeShard[] = fakeShards(built),
    options: Partial<StreamAuditOptions> = {},
  ): Promise<{ report: VerifyReport; fake: FakeStream }> {
    await writeChangelog(store, built.spec);
    const clock = virtualClock();
    const fake = new FakeStream({ streamArn: STREAM_ARN, shards, pageSize: 5, now: clock.now });
    fake.install(streamsMock);
    const report = await verifyChangelog({
      store,
      table: TABLE,
      sinceMs: FIRST_WINDOW_MS,
      stream: { streams, now: clock.now, sleep: clock.sleep, retry: fastRetry, ...options },
    });
    return { report, fake };
  }

  it('(a) passes when every retained record is in exactly one sealed manifest', async () => {
    const { report, fake } = await audit(build());
    expect(report.violations).toEqual([]);
    expect(report.records).toBe(72);
    expect(report.stream).toEqual({
      streamArns: [STREAM_ARN],
      streamsNotFound: [],
      shardsRead: 3,
      getRecordsCalls: fake.calls.length,
      // A 24 and C 12 in full, B from its chain's start: 36 and the 4 unsealed ones after.
      recordsRead: 76,
      recordsChecked: 72,
      recordsMatched: 72,
      recordsMissing: 0,
      recordsDuplicated: 0,
      recordsMismatched: 0,
      recordsInGaps: 0,
      recordsNotChecked: 4,
      rowsNotAuditable: 0,
      rowsUnknown: 0,
    });
    // B is read after its chain's start (the records before it are in earlier windows), the others
    // from TRIM_HORIZON (their first segment has no predecessor).
    expect(
      fake.iteratorRequests.map((r) => [r.ShardId, r.ShardIteratorType, r.SequenceNumber]).sort(),
    ).toEqual(
      [
        [SHARD_A, 'TRIM_HORIZON', undefined],
        [SHARD_B, 'AFTER_SEQUENCE_NUMBER', '199999999999999999000'],
        [SHARD_C, 'TRIM_HORIZON', undefined],
      ].sort(),
    );
  });

  it('(b) finds records a contiguous chain skipped: the silent-loss shape the chain check cannot see', async () => {
    let dropped: WireRecord[] = [];
    let droppedAtStart: WireRecord[] = [];
    const built = build({
      override: (w, shardId) =>
        w === 1 && shardId === SHARD_A
          ? {
              mapRecords: (records) => {
                dropped = records.splice(4, 3);
              },
            }
          : w === 2 && shardId === SHARD_B
            ? // The segment's first record moves on, its afterSequenceNumber stays the old checkpoint.
              {
                mapRecords: (records) => {
                  droppedAtStart = records.splice(0, 2);
                },
              }
            : undefined,
    });
    const { report } = await audit(built);
    // Only the audit sees it: every check of the changelog on its own passes.
    expect(kinds(report)).toEqual(['stream-record-missing', 'stream-record-missing']);
    const [a, b] = [...report.violations].sort((x, y) => (x.shardId! < y.shardId! ? -1 : 1));
    expect(a).toMatchObject({
      kind: 'stream-record-missing',
      shardId: SHARD_A,
      window: isoTime(W(1)),
      firstSequenceNumber: seqOf(dropped[0]!),
      lastSequenceNumber: seqOf(dropped[2]!),
      records: 3,
    });
    expect(a!.message).toContain(`3 stream records from ${seqOf(dropped[0]!)} to ${seqOf(dropped[2]!)}`);
    expect(a!.message).toContain("the shard's segments in the range run from after TRIM_HORIZON to");
    expect(b).toMatchObject({
      shardId: SHARD_B,
      window: isoTime(W(2)),
      firstSequenceNumber: seqOf(droppedAtStart[0]!),
      lastSequenceNumber: seqOf(droppedAtStart[1]!),
      records: 2,
    });
    expect(report.stream).toMatchObject({ recordsMissing: 5, recordsMatched: 67, recordsChecked: 72 });
  });

  it('(c) reports a record held in two windows', async () => {
    let copied: WireRecord | undefined;
    const built = build({
      override: (w, shardId) =>
        w === 1 && shardId === SHARD_B
          ? {
              mapRecords: (records) => {
                copied = structuredClone(records.at(-1)!);
              },
            }
          : w === 2 && shardId === SHARD_B
            ? { mapRecords: (records) => void records.push(copied!) }
            : undefined,
    });
    const { report } = await audit(built);
    expect(kinds(report)).toContain('duplicate-event-id');
    expect(streamKinds(report)).toEqual(['stream-record-duplicated']);
    const v = report.violations.find((x) => x.kind === 'stream-record-duplicated')!;
    expect(v).toMatchObject({
      shardId: SHARD_B,
      firstSequenceNumber: seqOf(copied!),
      lastSequenceNumber: seqOf(copied!),
      records: 1,
    });
    for (const w of [1, 2]) {
      const key = built.spec.windows[w]!.manifest.segments.find((s) =>
        s.shards.some((h) => h.shardId === SHARD_B),
      )!.key;
      expect(v.message).toContain(key);
    }
    expect(report.stream).toMatchObject({ recordsDuplicated: 1, recordsMatched: 71 });
  });

  it('(d) counts records the stream trimmed as not auditable, not as violations', async () => {
    const built = build();
    const shards = fakeShards(built);
    const a = built.stream.get(SHARD_A)!;
    const b = built.stream.get(SHARD_B)!;
    shards[0]!.trimHorizon = BigInt(seqOf(a[4]!)); // A: its first 4 records are gone
    shards[1]!.trimHorizon = BigInt(seqOf(b[2]!)); // B: gone past its chain's start, and 2 records
    const { report, fake } = await audit(built, shards);
    expect(report.violations).toEqual([]);
    expect(report.stream).toMatchObject({ rowsNotAuditable: 6, recordsMatched: 66, recordsMissing: 0 });
    expect(
      fake.iteratorRequests.filter((r) => r.ShardId === SHARD_B).map((r) => r.ShardIteratorType),
    ).toEqual(['AFTER_SEQUENCE_NUMBER', 'TRIM_HORIZON']);
  });

  describe('(e) a listed gap', () => {
    const jump = 1_000_000n;
    let previousLast = '';
    const buildJump = (gaps?: (first: string) => Record<number, ManifestGap[]>): Built => {
      const first = { value: '' };
      const spec = (g?: Record<number, ManifestGap[]>): Built =>
        build({
          override: (w, shardId, previous) => {
            if (shardId !== SHARD_B) return undefined;
            if (w === 1)
              return {
                mapRecords: (records) => {
                  previousLast = seqOf(records.at(-1)!);
                },
              };
            if (w !== 2) return undefined;
            const resume = BigInt(previous!.last) + jump;
            return {
              startSequence: resume,
              afterSequenceNumber: String(resume),
              mapRecords: (records) => {
                first.value = seqOf(records[0]!);
              },
            };
          },
          ...(g !== undefined && { gaps: g }),
        });
      const plain = spec();
      // Built again when a gap needs the first sequence number after the jump (deterministic).
      return gaps === undefined ? plain : spec(gaps(first.value));
    };
    /** Records the manifests skip between window 1's last and the jump: in the stream, in the gap. */
    const inJump = () =>
      generateRecords({
        records: 3,
        seed: 11,
        startSequence: BigInt(previousLast) + 10n,
        startTimeSeconds: W(2) / 1000 + 1,
      }).map((r) => {
        r.eventID = `in-gap-${seqOf(r)}`;
        return r;
      });

    it('covers the records inside it: counted, not a violation', async () => {
      const built = buildJump((first) => ({
        2: [
          {
            shardId: SHARD_B,
            afterSequenceNumber: previousLast,
            resumedAtSequenceNumber: first,
            reason: 'TrimmedDataAccessException',
          },
        ],
      }));
      const shards = fakeShards(built);
      shards[1]!.records.push(...inJump());
      const { report } = await audit(built, shards);
      expect(report.gaps).toHaveLength(1);
      expect(report.violations).toEqual([]);
      expect(report.stream).toMatchObject({ recordsInGaps: 3, recordsMissing: 0, recordsMatched: 72 });
    });

    it('without the gap, the same records are missing', async () => {
      const built = buildJump();
      const shards = fakeShards(built);
      shards[1]!.records.push(...inJump());
      const { report } = await audit(built, shards);
      expect(kinds(report)).toEqual(['sequence-discontinuity', 'stream-record-missing']);
      expect(report.violations[1]).toMatchObject({ shardId: SHARD_B, records: 3 });
    });
  });

  describe('(f) a shard with records in the sealed range but no segment at all', () => {
    const dRecords = () =>
      generateRecords({
        records: 5,
        seed: 9,
        startSequence: 400_000_000_000_000_000_000n,
        startTimeSeconds: W(1) / 1000 + 10,
      });

    it('is missing once its records are older than the last sealed window end minus the grace', async () => {
      const built = build();
      const d = dRecords();
      const shards = [...fakeShards(built), { shardId: SHARD_D, closed: false, records: d }];
      const { report } = await audit(built, shards, { lateGraceMs: 0 });
      expect(kinds(report)).toEqual(['stream-record-missing']);
      expect(report.violations[0]).toMatchObject({
        shardId: SHARD_D,
        window: isoTime(W(1)),
        firstSequenceNumber: seqOf(d[0]!),
        lastSequenceNumber: seqOf(d[4]!),
        records: 5,
      });
      expect(report.violations[0]!.message).toContain('the shard has no segment in the range');
      expect(report.stream).toMatchObject({ shardsRead: 4, timeRuleThrough: isoTime(W(3)) });
    });

    it('is not read while its records are within the grace (they may still be committed late)', async () => {
      const built = build();
      const shards = [...fakeShards(built), { shardId: SHARD_D, closed: false, records: dRecords() }];
      const { report, fake } = await audit(built, shards);
      expect(report.violations).toEqual([]);
      expect(report.stream).toMatchObject({ shardsRead: 3 });
      expect(fake.calls.some((c) => c.shardId === SHARD_D)).toBe(false);
    });

    it('is missing at once for a parent whose child already has segments', async () => {
      const built = build();
      const shards = fakeShards(built);
      const tail = generateRecords({
        records: 2,
        seed: 12,
        startSequence: BigInt(seqOf(built.stream.get(SHARD_A)!.at(-1)!)) + 5n,
        startTimeSeconds: W(1) / 1000 + 50,
      });
      shards[0]!.records.push(...tail);
      const { report } = await audit(built, shards);
      expect(kinds(report)).toEqual(['stream-record-missing']);
      expect(report.violations[0]).toMatchObject({ shardId: SHARD_A, records: 2 });
      expect(report.violations[0]!.message).toContain(`its descendant shard ${SHARD_C} has segments`);
    });
  });

  it('reports a row whose op differs from the stream record', async () => {
    let changed = '';
    const built = build({
      override: (w, shardId) =>
        w === 1 && shardId === SHARD_A
          ? {
              mapRecords: (records) => {
                const r = records[2]!;
                r.eventName = r.eventName === 'INSERT' ? 'MODIFY' : 'INSERT';
                changed = seqOf(r);
              },
            }
          : undefined,
    });
    const { report } = await audit(built);
    expect(kinds(report)).toEqual(['stream-record-mismatch']);
    expect(report.violations[0]).toMatchObject({ shardId: SHARD_A, firstSequenceNumber: changed });
    expect(report.violations[0]!.message).toMatch(/has op (INSERT|MODIFY), the stream (INSERT|MODIFY)/);
    expect(report.stream).toMatchObject({ recordsMismatched: 1, recordsMatched: 71 });
  });

  it('reports a manifest row the stream does not hold where it was read', async () => {
    const built = build();
    const shards = fakeShards(built);
    const [gone] = shards[0]!.records.splice(7, 1);
    const { report } = await audit(built, shards);
    expect(kinds(report)).toEqual(['stream-record-unknown']);
    expect(report.violations[0]).toMatchObject({ shardId: SHARD_A, firstSequenceNumber: seqOf(gone!) });
    expect(report.stream).toMatchObject({ rowsUnknown: 1, rowsNotAuditable: 0 });
  });

  it('counts the rows of a shard the stream no longer lists as not auditable', async () => {
    const built = build();
    const shards = fakeShards(built).filter((s) => s.shardId !== SHARD_A);
    // C's parent is gone from the listing: C is a root now.
    const { report } = await audit(built, shards);
    expect(report.violations).toEqual([]);
    expect(report.stream).toMatchObject({ rowsNotAuditable: 24, shardsRead: 2, recordsMatched: 48 });
  });

  it('reads the stream given instead of the manifests’ one', async () => {
    const other = STREAM_ARN.replace('2026-11-22T00:00:00.000', '2026-11-23T00:00:00.000');
    const { report } = await audit(build(), undefined, { streamArn: other });
    expect(report.stream?.streamArns).toEqual([other]);
  });
});
