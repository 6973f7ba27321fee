import { sealRefusal, sealViolations } from '../changelog/invariants.js';
import {
  DAY_MS,
  dataPrefix,
  dtOf,
  isoTime,
  isReplaySegmentKey,
  manifestObjectKey,
  parseWindowId,
  symlinkObjectKey,
  windowDataPrefix,
  windowId,
  windowStartOf,
} from '../changelog/layout.js';
import { buildManifest, type Manifest, parseManifest, serializeManifest } from '../changelog/manifest.js';
import { symlinkManifestBody } from '../changelog/symlinkManifest.js';
import {
  DEFAULTS,
  type LeaseConfig,
  type OrphanConfig,
  type StreamConfig,
  type WindowConfig,
} from '../coordination/config.js';
import type { HeldLease, Lease } from '../coordination/lease.js';
import { LeaseExpiryTracker } from '../coordination/leaseExpiry.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import type { PipelineObserver, WindowSealed } from '../coordination/pipelineObserver.js';
import {
  type RegistryStore,
  type SealerLeaseItem,
  type WindowState,
  windowSizeMismatch,
} from '../coordination/registryStore.js';
import { ChangelogError } from '../support/errors.js';
import { type Logger, silentLogger } from '../support/logger.js';
import { sleep } from '../support/retry.js';
import { computeWatermark } from './watermark.js';

export interface SealerOptions {
  workerId: string;
  table: string;
  streamArn: string;
  registry: RegistryStore;
  /** The stream's shard leases (the watermark comes from them). */
  listLeases: (signal?: AbortSignal) => Promise<Lease[]>;
  store: ObjectStore;
  window: WindowConfig;
  /** Orphan collection; default DEFAULTS.orphans. */
  orphans?: OrphanConfig | undefined;
  /** Sealer lease failover (renewals every third of it); default DEFAULTS.lease. */
  lease?: LeaseConfig | undefined;
  /** Pause between cycles. Default 1 s. */
  intervalMs?: number;
  logger?: Logger;
  /** Told of seals, the watermark, orphans deleted and where sealing stands (metrics). */
  observer?: PipelineObserver;
  /** Monotonic clock for lease expiry. */
  now?: () => number;
  /** Wall clock: closedAt stamps, orphan ages, the initial window. */
  wallNow?: () => number;
  /** The stream's retention (default DEFAULTS.stream): the window state starts one window before it. */
  stream?: StreamConfig | undefined;
}

/**
 * Seals windows. One worker at a time holds the sealer lease (an item beside the shard leases);
 * every state change it makes is a transaction conditional on that lease's owner + epoch.
 *
 * A cycle: compute the watermark from the shard leases; CLOSE every window whose end + allowed
 * lateness is at or below it (one conditional write of `closedThroughMs`; from then on, commits
 * to those windows fail their ConditionCheck); SEAL closed windows in order: read their registry
 * items, check per-shard contiguity, write the symlink manifest, then the manifest (create-only,
 * deterministic bytes: a retry writes the same objects), then advance `sealedThroughMs`; DELETE
 * orphan objects of sealed windows (not in the manifest, older than the grace period), a bounded
 * batch per cycle.
 */
export class Sealer {
  private readonly o: SealerOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private held: HeldLease<SealerLeaseItem> | undefined;
  /** When the sealer lease, held by another worker, stood still for the failover time. */
  private readonly expiry: LeaseExpiryTracker<SealerLeaseItem>;
  private lastRenew = Number.NEGATIVE_INFINITY;
  private publishedWatermark: number | undefined;

  constructor(options: SealerOptions) {
    this.o = options;
    this.log = options.logger ?? silentLogger;
    this.now = options.now ?? (() => performance.now());
    this.wallNow = options.wallNow ?? (() => Date.now());
    this.expiry = new LeaseExpiryTracker({
      failoverMs: (options.lease ?? DEFAULTS.lease).failoverMs,
      now: this.now,
      idOf: () => 'sealer',
    });
  }

  get isLeader(): boolean {
    return this.held !== undefined;
  }

  async run(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        try {
          await this.manageLease(signal);
          if (this.held) await this.cycle(signal);
          else {
            this.o.observer?.sealerState?.({
              leader: false,
              sealedThroughMs: undefined,
              windowMs: this.o.window.windowMs,
            });
          }
        } catch (error) {
          if (signal.aborted) break;
          this.log.error({ error: String(error) }, 'sealer cycle failed; trying again');
          this.o.observer?.cycleFailed?.('sealer-cycle', error);
        }
        await sleep(this.o.intervalMs ?? 1000, signal).catch(() => undefined);
      }
    } finally {
      if (this.held) {
        const held = this.held;
        this.held = undefined;
        await this.o.registry.releaseSealerLease(held).catch((error: unknown) => {
          this.log.warn({ error: String(error) }, 'could not release the sealer lease');
        });
      }
    }
  }

  /** Renews the sealer lease every third of the failover time, or takes it once free or expired. */
  private async manageLease(signal: AbortSignal): Promise<void> {
    const now = this.now();
    const held = this.held;
    if (held) {
      if (now - this.lastRenew < this.expiry.failoverMs / 3) return;
      this.held = await this.o.registry.renewSealerLease(held, signal);
      if (this.held) this.lastRenew = now;
      else this.log.warn({ leaseEpoch: held.leaseEpoch }, 'sealer lease lost');
      return;
    }
    const current = await this.o.registry.getSealerLease(signal);
    this.expiry.observe(current === undefined ? [] : [current], now);
    if (current !== undefined && !this.expiry.isExpired(current, now)) return;
    this.held = await this.o.registry.takeSealerLease(current, this.o.workerId, signal);
    if (this.held) {
      this.lastRenew = now;
      this.log.info({ leaseEpoch: this.held.leaseEpoch, from: current?.owner ?? null }, 'sealer lease taken');
    }
  }

  /** One pass: watermark, close, seal, collect orphans. */
  async cycle(signal?: AbortSignal): Promise<void> {
    const held = this.held;
    if (!held) return;
    const leases = await this.o.listLeases(signal);
    const watermark = computeWatermark(leases);
    if (watermark !== undefined && watermark !== this.publishedWatermark) {
      await this.o.registry.putWatermark(watermark, signal);
      this.publishedWatermark = watermark;
      this.o.observer?.watermark?.(watermark);
    }
    let state = await this.state(watermark, signal);
    if (state.windowMs !== this.o.window.windowMs) {
      throw windowSizeMismatch(this.o.table, state.windowMs, this.o.window.windowMs);
    }
    if (state.sealedThroughMs < state.closedThroughMs) {
      state = await this.sealClosed(state, held, signal);
    } else if (watermark !== undefined) {
      const closeThrough = windowStartOf(watermark - this.o.window.allowedLatenessMs, this.o.window.windowMs);
      if (closeThrough > state.closedThroughMs) {
        const next: WindowState = { ...state, closedThroughMs: closeThrough, closedAtMs: this.wallNow() };
        if (await this.o.registry.updateState(state, next, held, signal)) {
          this.log.info(
            {
              from: windowId(state.closedThroughMs),
              through: windowId(closeThrough),
              watermark: isoTime(watermark),
            },
            'windows closed',
          );
          state = await this.sealClosed(next, held, signal);
        }
      }
    }
    this.o.observer?.sealerState?.({
      leader: true,
      sealedThroughMs: state.sealedThroughMs,
      windowMs: this.o.window.windowMs,
    });
    await this.collectOrphans(state, held, signal);
  }

  private async state(watermark: number | undefined, signal?: AbortSignal): Promise<WindowState> {
    const existing = await this.o.registry.getState(signal);
    if (existing) return existing;
    // Nothing older than the stream's retention can arrive: start one window before it.
    const base = Math.min(this.wallNow(), watermark ?? Number.POSITIVE_INFINITY);
    const start =
      windowStartOf(base - (this.o.stream ?? DEFAULTS.stream).streamRetentionMs, this.o.window.windowMs) -
      this.o.window.windowMs;
    return this.o.registry.initState(
      {
        windowMs: this.o.window.windowMs,
        streamArn: this.o.streamArn,
        closedThroughMs: start,
        sealedThroughMs: start,
        closedAtMs: this.wallNow(),
        gcThroughMs: start,
      },
      signal,
    );
  }

  /** Writes the manifests of the closed, unsealed windows, in order. */
  private async sealClosed(
    state: WindowState,
    held: HeldLease<SealerLeaseItem>,
    signal?: AbortSignal,
  ): Promise<WindowState> {
    const w = this.o.window.windowMs;
    const { segments, gaps } = await this.o.registry.queryRange(
      state.sealedThroughMs,
      state.closedThroughMs,
      signal,
    );
    const segmentsByWindow = groupBy(segments, (s) => s.windowStartMs);
    const gapsByWindow = groupBy(gaps, (g) => g.windowStartMs);
    let current = state;
    for (let start = state.sealedThroughMs; start < state.closedThroughMs; start += w) {
      signal?.throwIfAborted();
      const windowSegments = segmentsByWindow.get(start) ?? [];
      const windowGaps = gapsByWindow.get(start) ?? [];
      const hasData = windowSegments.length > 0 || windowGaps.length > 0;
      // Empty windows before the first manifest are before the changelog began: no manifest.
      if (current.firstManifestMs === undefined && !hasData) continue;
      const key = manifestObjectKey(this.o.table, start);
      const manifest = buildManifest({
        table: this.o.table,
        windowStartMs: start,
        windowMs: w,
        sealedAtMs: current.closedAtMs,
        // The sealer writes a window's first manifest; rewrites of a window publish later versions.
        version: 1,
        // From the registry, not this worker's config, so every sealer writes the same bytes.
        streamArn: current.streamArn,
        segments: windowSegments,
        gaps: windowGaps,
      });
      checkSealable(manifest, key, start);
      const manifestBytes = serializeManifest(manifest);
      // The symlink manifest (Athena/Glue) goes first, so a visible manifest always has one. It
      // lists the segments in the published manifest's (canonical) order; its bytes are a function
      // of the manifest and the destination, so a repeated seal gets 'exists'.
      const symlinkKey = symlinkObjectKey(this.o.table, start);
      const symlinkBody = symlinkManifestBody(parseManifest(manifestBytes, key), this.o.store.url);
      await this.o.store.putIfAbsent(symlinkKey, symlinkBody, { contentType: 'text/plain', signal });
      await this.o.store.putIfAbsent(key, manifestBytes, {
        contentType: 'application/json',
        signal,
      });
      const next: WindowState = {
        ...current,
        sealedThroughMs: start + w,
        firstManifestMs: current.firstManifestMs ?? start,
      };
      if (!(await this.o.registry.updateState(current, next, held, signal))) {
        throw new ChangelogError('window state changed under the sealer (lease lost?)', { retriable: true });
      }
      current = next;
      const event: WindowSealed = {
        windowStartMs: start,
        key,
        records: manifest.recordCount,
        segments: manifest.segments.length,
        gaps: manifest.gaps.length,
        lateRecords: manifest.lateRecordCount,
        complete: manifest.complete,
      };
      this.log.info({ window: windowId(start), ...event, symlink: symlinkKey }, 'window sealed');
      if (!manifest.complete) {
        this.log.error(
          { window: windowId(start), gaps: manifest.gaps },
          'window sealed INCOMPLETE: it lists trimmed-data gaps',
        );
      }
      this.o.observer?.windowSealed?.(event);
    }
    if (current.sealedThroughMs < state.closedThroughMs) {
      const next = { ...current, sealedThroughMs: state.closedThroughMs };
      if (!(await this.o.registry.updateState(current, next, held, signal))) {
        throw new ChangelogError('window state changed under the sealer (lease lost?)', { retriable: true });
      }
      current = next;
    }
    return current;
  }

  /**
   * Deletes objects under sealed windows that their manifest does not list and that are older
   * than the grace period, at most `orphanBatch` per cycle. `gcThroughMs` advances past windows
   * left clean; a window holding a young orphan is looked at again later.
   */
  private async collectOrphans(
    state: WindowState,
    held: HeldLease<SealerLeaseItem>,
    signal?: AbortSignal,
  ): Promise<void> {
    const from = state.gcThroughMs ?? state.sealedThroughMs;
    if (from >= state.sealedThroughMs) return;
    const grace = (this.o.orphans ?? DEFAULTS.orphans).orphanGraceMs;
    const batch = (this.o.orphans ?? DEFAULTS.orphans).orphanBatch;
    const cutoff = this.wallNow() - grace;
    const referenced = new Map<number, Set<string>>();
    const toDelete: string[] = [];
    let blockedAt: number | undefined;
    let scannedThrough = state.sealedThroughMs;
    // One listing per day prefix, from the first unswept window on.
    outer: for (let day = windowStartOf(from, DAY_MS); day < state.sealedThroughMs; day += DAY_MS) {
      const dayPrefix = `${dataPrefix(this.o.table)}dt=${dtOf(day)}/`;
      const startAfter =
        day === windowStartOf(from, DAY_MS) ? windowDataPrefix(this.o.table, from).slice(0, -1) : undefined;
      for await (const object of this.o.store.list(dayPrefix, { startAfter, signal })) {
        const windowMatch = /\/window=(\d{8}T\d{6}Z)\//.exec(object.key);
        const start = windowMatch ? parseWindowId(windowMatch[1]!) : undefined;
        if (start === undefined) continue; // not ours
        if (start < from) continue;
        if (start >= state.sealedThroughMs) break outer;
        let keys = referenced.get(start);
        if (keys === undefined) {
          keys = await this.manifestKeys(start, state, signal);
          referenced.set(start, keys);
        }
        if (keys.has(object.key)) continue;
        // A replay writes its segments (replay-<id>-...) before it publishes them, which for a
        // large bootstrap takes longer than the grace period: they are never collected here.
        if (isReplaySegmentKey(object.key)) continue;
        if (object.lastModified.getTime() > cutoff) {
          blockedAt ??= start;
          continue;
        }
        if (toDelete.length >= batch) {
          scannedThrough = start;
          break outer;
        }
        toDelete.push(object.key);
      }
    }
    if (toDelete.length > 0) {
      await this.o.store.delete(toDelete, signal);
      this.log.info({ count: toDelete.length, first: toDelete[0] }, 'orphans deleted');
      this.o.observer?.orphansDeleted?.(toDelete.length);
    }
    const gcThrough = Math.min(scannedThrough, blockedAt ?? Number.POSITIVE_INFINITY);
    if (gcThrough > from) {
      await this.o.registry.updateState(state, { ...state, gcThroughMs: gcThrough }, held, signal);
    }
  }

  private async manifestKeys(start: number, state: WindowState, signal?: AbortSignal): Promise<Set<string>> {
    if (state.firstManifestMs === undefined || start < state.firstManifestMs) return new Set();
    const key = manifestObjectKey(this.o.table, start);
    const bytes = await this.o.store.get(key, signal);
    if (bytes === undefined) {
      throw new ChangelogError(`sealed window ${windowId(start)} has no manifest at ${key}`, {
        key,
        retriable: false,
      });
    }
    // A replay or compaction may have published later versions (v2, v3, ...) beside v1: every
    // version's segments are referenced (superseded files are deleted after their own grace).
    const keys = new Set(parseManifest(bytes, key).segments.map((s) => s.key));
    for (let version = 2; ; version++) {
      const versionKey = manifestObjectKey(this.o.table, start, version);
      const later = await this.o.store.get(versionKey, signal);
      if (later === undefined) return keys;
      for (const segment of parseManifest(later, versionKey).segments) keys.add(segment.key);
    }
  }
}

/**
 * Refuses to publish a manifest that breaks an invariant (changelog/invariants.ts, the checks
 * `verify` reports): counts that do not add up, a shard whose segments do not chain inside the
 * window. Not retriable: the registry holds what it holds, and an operator must look.
 */
export function checkSealable(manifest: Manifest, key: string, windowStartMs: number): void {
  const violations = sealViolations(manifest, key);
  if (violations.length === 0) return;
  throw new ChangelogError(sealRefusal(windowStartMs, violations), {
    key,
    ...(violations[0]!.shardId !== undefined && { shardId: violations[0]!.shardId }),
    retriable: false,
  });
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => number): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}
