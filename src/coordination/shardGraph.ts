import type { Shard } from '@aws-sdk/client-dynamodb-streams';

/** One shard as the graph keeps it: the fields of a DescribeStream `Shard` that lineage needs. */
export interface ShardInfo {
  readonly shardId: string;
  readonly parentShardId?: string;
  readonly startingSequenceNumber?: string;
  /** Present once the shard is closed: no record will be added after it. */
  readonly endingSequenceNumber?: string;
}

export type ShardAnomalyKind =
  | 'closed-leaf-without-children'
  | 'open-parent-with-children'
  | 'orphan-parent-reference';

export interface ShardAnomaly {
  readonly kind: ShardAnomalyKind;
  readonly shardId: string;
  readonly detail: string;
}

export interface ShardGraphOptions {
  /**
   * The stream is disabled or replaced by a newer one: its closed shards get no children, so a
   * closed leaf is its end, not a listing that is a moment behind. Once ended, a graph stays ended.
   */
  streamEnded?: boolean;
}

/**
 * The lineage of a stream's shards, built from DescribeStream listings. Immutable: `merge` and
 * `forget` return new graphs, so a snapshot handed to a scheduler never changes under it.
 *
 * DescribeStream is eventually consistent and paginated, so one listing can be stale or
 * incomplete. The graph unions every listing it has seen and reports what looks wrong as
 * `anomalies` instead of trusting the latest page.
 */
export class ShardGraph {
  readonly anomalies: readonly ShardAnomaly[];
  /** A closed shard has no children yet: DynamoDB adds them a moment later, so list again soon. */
  readonly needsResync: boolean;
  readonly streamEnded: boolean;
  private readonly byId: ReadonlyMap<string, ShardInfo>;
  private readonly children: ReadonlyMap<string, readonly string[]>;

  private constructor(byId: Map<string, ShardInfo>, streamEnded: boolean) {
    this.byId = byId;
    this.streamEnded = streamEnded;
    const children = new Map<string, string[]>();
    for (const id of [...byId.keys()].sort()) {
      const parent = byId.get(id)?.parentShardId;
      if (parent === undefined || !byId.has(parent)) continue;
      const list = children.get(parent);
      if (list) list.push(id);
      else children.set(parent, [id]);
    }
    this.children = children;
    this.anomalies = this.findAnomalies();
    this.needsResync = this.anomalies.some((a) => a.kind === 'closed-leaf-without-children');
  }

  static empty(options: ShardGraphOptions = {}): ShardGraph {
    return new ShardGraph(new Map(), options.streamEnded === true);
  }

  static fromShards(shards: readonly Shard[], options: ShardGraphOptions = {}): ShardGraph {
    return ShardGraph.empty(options).merge(shards);
  }

  /**
   * The union of this graph and a newer listing. A shard seen closed stays closed (a page showing
   * it open is stale: shards never reopen), and a shard missing from the listing is kept, because
   * DynamoDB trims shards after 24 h while their children may still wait on them; the owner drops
   * them with `forget` once they are finished.
   */
  merge(newShards: readonly Shard[], options: ShardGraphOptions = {}): ShardGraph {
    const byId = new Map(this.byId);
    for (const shard of newShards) {
      const shardId = shard.ShardId;
      if (!shardId) continue;
      const known = byId.get(shardId);
      const parentShardId = known?.parentShardId ?? (shard.ParentShardId || undefined);
      const startingSequenceNumber =
        known?.startingSequenceNumber ?? shard.SequenceNumberRange?.StartingSequenceNumber;
      const endingSequenceNumber =
        known?.endingSequenceNumber ?? shard.SequenceNumberRange?.EndingSequenceNumber;
      byId.set(shardId, {
        shardId,
        ...(parentShardId !== undefined && { parentShardId }),
        ...(startingSequenceNumber !== undefined && { startingSequenceNumber }),
        ...(endingSequenceNumber !== undefined && { endingSequenceNumber }),
      });
    }
    return new ShardGraph(byId, this.streamEnded || options.streamEnded === true);
  }

  /**
   * Drops shards the owner no longer needs (finished and trimmed). A later listing that still
   * holds one brings it back, so forget only shards the stream no longer lists.
   */
  forget(ids: Iterable<string>): ShardGraph {
    const byId = new Map(this.byId);
    for (const id of ids) byId.delete(id);
    return new ShardGraph(byId, this.streamEnded);
  }

  get size(): number {
    return this.byId.size;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get(id: string): ShardInfo | undefined {
    return this.byId.get(id);
  }

  /** Every known shard, sorted by shard id. */
  shards(): ShardInfo[] {
    return [...this.byId.values()].sort((a, b) =>
      a.shardId < b.shardId ? -1 : a.shardId > b.shardId ? 1 : 0,
    );
  }

  /**
   * The parents of `id` present in the graph. A parent that was trimmed (or forgotten) is not
   * listed: nothing is left to read from it, so it cannot hold the child back.
   */
  parentsOf(id: string): string[] {
    const parent = this.byId.get(id)?.parentShardId;
    return parent !== undefined && this.byId.has(parent) ? [parent] : [];
  }

  childrenOf(id: string): string[] {
    return [...(this.children.get(id) ?? [])];
  }

  isClosed(id: string): boolean {
    return this.byId.get(id)?.endingSequenceNumber !== undefined;
  }

  /**
   * Open in the listing but already split: DynamoDB closes it any moment. Its reader keeps reading
   * until SHARD_END and its children wait for that.
   */
  isClosing(id: string): boolean {
    return this.byId.has(id) && !this.isClosed(id) && this.children.has(id);
  }

  /** Shards with no parent in the graph, including children of trimmed parents; sorted. */
  roots(): string[] {
    return this.shards()
      .filter((s) => this.parentsOf(s.shardId).length === 0)
      .map((s) => s.shardId);
  }

  /**
   * True when `id` may be read: every parent in the graph is finished (its SHARD_END committed,
   * as `isFinished` says). Parents missing from the graph count as finished. An unknown shard is
   * never ready: a scheduler should not start what discovery has not listed.
   */
  readyToRead(id: string, isFinished: (shardId: string) => boolean): boolean {
    if (!this.byId.has(id)) return false;
    return this.parentsOf(id).every((parent) => isFinished(parent));
  }

  private findAnomalies(): ShardAnomaly[] {
    const anomalies: ShardAnomaly[] = [];
    for (const shard of this.shards()) {
      const id = shard.shardId;
      const parent = shard.parentShardId;
      if (parent !== undefined && !this.byId.has(parent)) {
        anomalies.push({
          kind: 'orphan-parent-reference',
          shardId: id,
          detail: `parent ${parent} is not listed (trimmed after 24 h); ${id} is scheduled as a root`,
        });
      }
      const hasChildren = this.children.has(id);
      if (shard.endingSequenceNumber !== undefined && !hasChildren && !this.streamEnded) {
        anomalies.push({
          kind: 'closed-leaf-without-children',
          shardId: id,
          detail: `${id} is closed but no child is listed yet; DynamoDB creates children shortly after, resync needed`,
        });
      }
      if (shard.endingSequenceNumber === undefined && hasChildren) {
        anomalies.push({
          kind: 'open-parent-with-children',
          shardId: id,
          detail: `${id} is listed open but has children ${this.childrenOf(id).join(', ')}; treated as closing: read it to SHARD_END before its children`,
        });
      }
    }
    return anomalies;
  }
}
