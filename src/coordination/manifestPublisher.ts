import { manifestViolations } from '../changelog/invariants.js';
import { isoTime, manifestObjectKey } from '../changelog/layout.js';
import { type Manifest, serializeManifest } from '../changelog/manifest.js';
import { type Revision, revisionObjectKey, serializeRevision } from '../changelog/revision.js';
import { ChangelogError } from '../support/errors.js';
import type { ObjectStore } from './objectStore.js';

export interface PublishManifestVersionOptions {
  reason: Revision['reason'];
  /** The publish time written in the revision log (default now). */
  publishedAtMs?: number;
  signal?: AbortSignal;
}

/**
 * Publishes version n >= 2 of an already sealed window (a replay or a compaction rewrote it): the
 * manifest beside the older versions (never over them), then its revision-log entry, so a listed
 * revision always names a manifest that exists. Both writes are create-only: repeating a publish
 * of the same manifest is a no-op (a retry after a crash writes identical bytes); another manifest
 * under the same version is refused (ObjectConflictError), which is what fences two rewriters.
 */
export async function publishManifestVersion(
  store: ObjectStore,
  manifest: Manifest,
  options: PublishManifestVersionOptions,
): Promise<{ manifestKey: string; revisionKey: string }> {
  const windowStartMs = Date.parse(manifest.window.start);
  if (manifest.version < 2) {
    throw new ChangelogError(
      `publishManifestVersion publishes versions >= 2; window ${manifest.window.start} has version ${manifest.version} (the sealer writes version 1)`,
      { retriable: false },
    );
  }
  const manifestKey = manifestObjectKey(manifest.table, windowStartMs, manifest.version);
  const violations = manifestViolations(manifest, manifestKey);
  if (violations.length > 0) {
    throw new ChangelogError(
      `refusing to publish version ${manifest.version} of window ${manifest.window.start}: ${violations.map((v) => v.message).join('; ')}`,
      { retriable: false },
    );
  }
  await store.putIfAbsent(manifestKey, serializeManifest(manifest), {
    contentType: 'application/json',
    signal: options.signal,
  });
  const revision: Revision = {
    formatVersion: 1,
    table: manifest.table,
    window: manifest.window.start,
    version: manifest.version,
    manifestKey,
    publishedAt: isoTime(options.publishedAtMs ?? Date.now()),
    reason: options.reason,
  };
  const revisionKey = revisionObjectKey(revision);
  await store.putIfAbsent(revisionKey, serializeRevision(revision), {
    contentType: 'application/json',
    signal: options.signal,
  });
  return { manifestKey, revisionKey };
}
