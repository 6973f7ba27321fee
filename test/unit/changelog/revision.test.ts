import { describe, expect, it } from 'vitest';
import {
  parseRevision,
  parseRevisionKey,
  type Revision,
  revisionObjectKey,
  revisionStartAfter,
  serializeRevision,
} from '../../../src/changelog/revision.js';

const revision: Revision = {
  formatVersion: 1,
  table: 'orders',
  window: '2026-11-22T10:05:00.000Z',
  version: 2,
  manifestKey: 'orders/manifests/dt=2026-11-22/20261122T100500Z.v2.json',
  publishedAt: '2026-12-01T08:30:15.250Z',
  reason: 'replay',
};

describe('the revision log', () => {
  it('keys sort by publish time and parse back', () => {
    const key = revisionObjectKey(revision);
    expect(key).toBe('orders/revisions/20261201T083015250Z-20261122T100500Z-v2.json');
    expect(parseRevisionKey('orders', key)).toEqual({
      publishedAtMs: Date.parse(revision.publishedAt),
      windowStartMs: Date.parse(revision.window),
      version: 2,
    });
    const later = revisionObjectKey({
      ...revision,
      publishedAt: '2026-12-01T08:30:15.251Z',
      window: '2026-01-01T00:00:00.000Z',
    });
    expect(later > key).toBe(true);
  });

  it('starts a listing at a publish time, that millisecond included', () => {
    const key = revisionObjectKey(revision);
    const at = Date.parse(revision.publishedAt);
    expect(revisionStartAfter('orders', at) < key).toBe(true);
    expect(revisionStartAfter('orders', at + 1) > key).toBe(true);
  });

  it('refuses keys that are not revisions', () => {
    for (const key of [
      'orders/revisions/20261201T083015250Z-20261122T100500Z-v1.json',
      'orders/revisions/20261201T083015250Z-20261122T100500Z-v02.json',
      'orders/revisions/20261301T083015250Z-20261122T100500Z-v2.json',
      'orders/revisions/20261201T083015Z-20261122T100500Z-v2.json',
      'other/revisions/20261201T083015250Z-20261122T100500Z-v2.json',
    ])
      expect(parseRevisionKey('orders', key), key).toBeUndefined();
  });

  it('round-trips its JSON and names the key and field of a bad one', () => {
    expect(parseRevision(serializeRevision(revision), 'k')).toEqual(revision);
    const bad = new TextEncoder().encode(JSON.stringify({ ...revision, version: 1 }));
    expect(() => parseRevision(bad, 'k')).toThrow(/revision k does not match the schema: version/);
  });
});
