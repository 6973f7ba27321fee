import { describe, expect, it, vi } from 'vitest';
import { manifestObjectKey } from '../../../src/changelog/layout.js';
import { parseManifest } from '../../../src/changelog/manifest.js';
import { parseRevision } from '../../../src/changelog/revision.js';
import { publishManifestVersion } from '../../../src/coordination/manifestPublisher.js';
import { ObjectConflictError } from '../../../src/support/errors.js';
import { buildManifest, TABLE } from '../../helpers/changelogFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';
import { buildTestSegment, SHARD_1, W } from '../../helpers/sampleChangelog.js';
import { generateRecords } from '../../helpers/streamRecords.js';

function manifestV2() {
  const segment = buildTestSegment({
    windowStartMs: W(0),
    parts: [
      { shardId: SHARD_1, records: generateRecords({ records: 3, startTimeSeconds: W(0) / 1000 + 1 }) },
    ],
  });
  return { ...buildManifest(W(0), [{ ...segment.entry, addedInVersion: 2 }]), version: 2 };
}

describe('publishManifestVersion', () => {
  it('writes the manifest beside version 1, then its revision; repeating it is a no-op', async () => {
    const store = new MemoryObjectStore();
    const manifest = manifestV2();
    const put = vi.spyOn(store, 'putIfAbsent');
    const at = Date.UTC(2026, 11, 1, 8, 0, 0);
    const out = await publishManifestVersion(store, manifest, { reason: 'replay', publishedAtMs: at });
    expect(out.manifestKey).toBe(manifestObjectKey(TABLE, W(0), 2));
    expect(put.mock.calls.map((c) => c[0])).toEqual([out.manifestKey, out.revisionKey]);
    expect(parseManifest(store.objects.get(out.manifestKey)!.body, out.manifestKey)).toEqual(manifest);
    expect(parseRevision(store.objects.get(out.revisionKey)!.body, out.revisionKey)).toMatchObject({
      version: 2,
      manifestKey: out.manifestKey,
      reason: 'replay',
      publishedAt: '2026-12-01T08:00:00.000Z',
    });
    await publishManifestVersion(store, manifest, { reason: 'replay', publishedAtMs: at });
    expect(store.objects.size).toBe(2);
  });

  it('refuses version 1, a manifest that breaks an invariant, and another manifest under a taken version', async () => {
    const store = new MemoryObjectStore();
    const manifest = manifestV2();
    await expect(
      publishManifestVersion(store, { ...manifest, version: 1 }, { reason: 'replay' }),
    ).rejects.toThrow(/publishes versions >= 2/);
    await expect(
      publishManifestVersion(
        store,
        { ...manifest, recordCount: manifest.recordCount + 1 },
        { reason: 'replay' },
      ),
    ).rejects.toThrow(/refusing to publish version 2 of window .*recordCount/);
    expect(store.objects.size).toBe(0);
    await publishManifestVersion(store, manifest, { reason: 'replay' });
    await expect(
      publishManifestVersion(
        store,
        { ...manifest, sealedAt: '2026-11-22T11:00:00.000Z' },
        { reason: 'compact' },
      ),
    ).rejects.toBeInstanceOf(ObjectConflictError);
  });
});
