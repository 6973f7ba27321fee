import type { ManifestShard } from '../changelog/manifest.js';

/** A committed segment: what the registry recorded of it. */
export interface CommittedSegment {
  windowStartMs: number;
  /** The segment object's key (relative to the destination). */
  key: string;
  records: number;
  bytes: number;
  lateRecords: number;
  /** Per shard: the checkpoint it continued from and the sequence range it holds. */
  shards: readonly ManifestShard[];
  /** Gaps committed with it. */
  gaps: number;
  /** `exists`: the object was already there (a retried flush). */
  put: 'created' | 'exists';
  /** Encode + write + commit, wall seconds. */
  seconds: number;
}

/** A sealed window: its manifest was published. */
export interface WindowSealed {
  windowStartMs: number;
  /** The manifest object's key. */
  key: string;
  records: number;
  segments: number;
  gaps: number;
  lateRecords: number;
  complete: boolean;
}

/**
 * Why a commit did not go through: a lost race (retried), refused (its shards are read again),
 * the object write failed, a transient error, or the commit self-check found rows that do not
 * account (the shard is refused and read again; never committed).
 */
export type CommitFailureKind = 'conflict' | 'refused' | 'write-failed' | 'transient' | 'self-check';

/** Where a lease change came from. */
/** `handed-off`: given to the worker that asked for it (balancing), after committing what was read. */
export type LeaseChange = 'taken' | 'stolen' | 'lost' | 'released' | 'ended' | 'handed-off';

/**
 * THE event channel: what the pipeline does, reported once, in one shape. Metrics, stall
 * detection, the local stack's summary, benchmarks and tests all listen here (combineObservers
 * fans out to several); log lines say the same for people. Every method is optional and must be
 * cheap and must not throw (it runs on the reading path).
 */
export interface PipelineObserver {
  /** One GetRecords call: `outcome` is 'ok' or the error's code. */
  getRecords?(shardId: string, outcome: string, seconds: number): void;
  /**
   * A page was handed to the next stage and taken (the reader made progress). `records` 0 with
   * `caughtUp` means the reader is at the tip of an open shard.
   */
  pageConsumed?(page: {
    shardId: string;
    records: number;
    bytes: number;
    lastEventTimeMs: number | undefined;
    caughtUp: boolean;
  }): void;
  /** A reader failed (it is restarted on the next lease cycle). */
  readerFailed?(shardId: string, error: unknown): void;
  leaseChanged?(shardId: string, change: LeaseChange): void;
  /**
   * After each lease cycle: the shards this worker holds, and the readable shards (not at
   * SHARD_END, parents finished) that no live worker holds.
   */
  leaseCycle?(cycle: { held: readonly string[]; readableUnowned: readonly string[] }): void;
  segmentCommitted?(segment: CommittedSegment): void;
  /** A commit transaction lost a race (retried) or was refused (its shards are read again). */
  commitFailed?(kind: CommitFailureKind): void;
  gapRecorded?(shardId: string): void;
  windowSealed?(window: WindowSealed): void;
  watermark?(watermarkMs: number): void;
  /** The sealer leader's view: where sealing stands (undefined when this worker is not leader). */
  sealerState?(state: { leader: boolean; sealedThroughMs: number | undefined; windowMs: number }): void;
  orphansDeleted?(count: number): void;
  /** A background cycle failed and will be tried again: `lease-cycle`, `sealer-cycle`, `discovery`. */
  cycleFailed?(kind: string, error: unknown): void;
}

/** Fans every event out to each observer. */
export function combineObservers(...observers: (PipelineObserver | undefined)[]): PipelineObserver {
  const list = observers.filter((o): o is PipelineObserver => o !== undefined);
  const fan =
    <K extends keyof PipelineObserver>(key: K) =>
    (...args: unknown[]) => {
      for (const o of list) (o[key] as ((...a: unknown[]) => void) | undefined)?.apply(o, args);
    };
  const keys: (keyof PipelineObserver)[] = [
    'getRecords',
    'pageConsumed',
    'readerFailed',
    'leaseChanged',
    'leaseCycle',
    'segmentCommitted',
    'commitFailed',
    'gapRecorded',
    'windowSealed',
    'watermark',
    'sealerState',
    'orphansDeleted',
    'cycleFailed',
  ];
  return Object.fromEntries(keys.map((k) => [k, fan(k)])) as PipelineObserver;
}
