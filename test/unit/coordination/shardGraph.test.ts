import { describe, expect, it } from 'vitest';
import { ShardGraph } from '../../../src/coordination/shardGraph.js';
import { shard } from '../../helpers/shards.js';

const END = '100000000000000000999';
const kinds = (g: ShardGraph) => g.anomalies.map((a) => `${a.kind}:${a.shardId}`);

describe('ShardGraph', () => {
  it('maps lineage: parents, children, roots, closed state, sorted shards', () => {
    const g = ShardGraph.fromShards([
      shard('shard-3', { parent: 'shard-1' }),
      shard('shard-1', { end: END }),
      shard('shard-2', { parent: 'shard-1' }),
      shard('shard-0'),
    ]);
    expect(g.shards().map((s) => s.shardId)).toEqual(['shard-0', 'shard-1', 'shard-2', 'shard-3']);
    expect(g.childrenOf('shard-1')).toEqual(['shard-2', 'shard-3']);
    expect(g.parentsOf('shard-2')).toEqual(['shard-1']);
    expect(g.roots()).toEqual(['shard-0', 'shard-1']);
    expect(g.isClosed('shard-1')).toBe(true);
    expect(g.isClosed('shard-2')).toBe(false);
    expect(g.isClosing('shard-1')).toBe(false);
    expect(g.anomalies).toEqual([]);
    expect(g.needsResync).toBe(false);
  });

  it('split: a child is ready only after its closed parent is finished', () => {
    const g = ShardGraph.fromShards([
      shard('p', { end: END }),
      shard('c1', { parent: 'p' }),
      shard('c2', { parent: 'p' }),
    ]);
    const finished = new Set<string>();
    const isFinished = (id: string) => finished.has(id);
    expect(g.readyToRead('p', isFinished)).toBe(true);
    expect(g.readyToRead('c1', isFinished)).toBe(false);
    expect(g.readyToRead('c2', isFinished)).toBe(false);
    finished.add('p');
    expect(g.readyToRead('c1', isFinished)).toBe(true);
    expect(g.readyToRead('c2', isFinished)).toBe(true);
    expect(g.readyToRead('unknown', isFinished)).toBe(false);
  });

  it('closed leaf without children asks for a resync; the next listing with children clears it', () => {
    const g1 = ShardGraph.fromShards([shard('p', { end: END })]);
    expect(kinds(g1)).toEqual(['closed-leaf-without-children:p']);
    expect(g1.needsResync).toBe(true);

    const g2 = g1.merge([shard('p', { end: END }), shard('c', { parent: 'p' })]);
    expect(g2.needsResync).toBe(false);
    expect(g2.anomalies).toEqual([]);
    expect(g2.childrenOf('p')).toEqual(['c']);
    // Graphs are immutable: the earlier snapshot is unchanged.
    expect(g1.needsResync).toBe(true);
    expect(g1.has('c')).toBe(false);
  });

  it('closed leaves of an ended (disabled) stream are its end, not an anomaly', () => {
    const g = ShardGraph.fromShards([shard('p', { end: END })], { streamEnded: true });
    expect(g.anomalies).toEqual([]);
    expect(g.needsResync).toBe(false);
    expect(g.merge([shard('q', { end: END })]).needsResync).toBe(false);
  });

  it('open parent with children is treated as closing', () => {
    const g = ShardGraph.fromShards([shard('p'), shard('c', { parent: 'p' })]);
    expect(kinds(g)).toEqual(['open-parent-with-children:p']);
    expect(g.isClosed('p')).toBe(false);
    expect(g.isClosing('p')).toBe(true);
    expect(g.isClosing('c')).toBe(false);
    // The child waits for the parent's SHARD_END even though the listing shows it open.
    expect(g.readyToRead('c', () => false)).toBe(false);
    expect(g.readyToRead('c', (id) => id === 'p')).toBe(true);
  });

  it('a shard once seen closed stays closed when a later (stale) listing shows it open', () => {
    const g1 = ShardGraph.fromShards([shard('p', { end: END }), shard('c', { parent: 'p' })]);
    const g2 = g1.merge([shard('p'), shard('c', { parent: 'p' })]);
    expect(g2.isClosed('p')).toBe(true);
    expect(g2.get('p')?.endingSequenceNumber).toBe(END);
    // The same holds for two pages of one listing.
    const g3 = ShardGraph.fromShards([shard('p', { end: END }), shard('c', { parent: 'p' }), shard('p')]);
    expect(g3.isClosed('p')).toBe(true);
  });

  it('parent reference to a trimmed shard: the child is a root and ready', () => {
    const g = ShardGraph.fromShards([shard('c', { parent: 'trimmed' })]);
    expect(kinds(g)).toEqual(['orphan-parent-reference:c']);
    expect(g.anomalies[0]?.detail).toContain('trimmed');
    expect(g.roots()).toEqual(['c']);
    expect(g.parentsOf('c')).toEqual([]);
    expect(g.get('c')?.parentShardId).toBe('trimmed');
    expect(g.readyToRead('c', () => false)).toBe(true);
  });

  it('keeps shards missing from a later listing until forgotten', () => {
    const g1 = ShardGraph.fromShards([shard('p', { end: END }), shard('c', { parent: 'p' })]);
    const g2 = g1.merge([shard('c', { parent: 'p' })]);
    expect(g2.has('p')).toBe(true);
    expect(g2.readyToRead('c', () => false)).toBe(false);
    const g3 = g2.forget(['p']);
    expect(g3.has('p')).toBe(false);
    expect(g3.roots()).toEqual(['c']);
    expect(g3.readyToRead('c', () => false)).toBe(true);
    expect(g3.size).toBe(1);
  });

  it('skips shards without an id', () => {
    const g = ShardGraph.fromShards([{ SequenceNumberRange: {} }, shard('a')]);
    expect(g.shards().map((s) => s.shardId)).toEqual(['a']);
  });
});
