import { manifestPrefix, manifestStartAfter, parseManifestKey } from '../changelog/layout.js';
import { type Manifest, parseManifest } from '../changelog/manifest.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import { ChangelogError } from '../support/errors.js';

export interface ManifestListing {
  key: string;
  windowStartMs: number;
}

export interface ListManifestsOptions {
  /** Windows starting at or after this time. */
  sinceMs: number;
  /** Windows starting before this time; open-ended when absent. */
  untilMs?: number;
  signal?: AbortSignal;
}

/**
 * The manifest keys of sealed windows starting in [sinceMs, untilMs), oldest first. Manifest keys
 * sort by time, so this is one LIST from the first window on, stopped at the first key past the end.
 * Objects under the manifest prefix that are not manifest keys are skipped.
 */
export async function* listManifests(
  store: ObjectStore,
  table: string,
  options: ListManifestsOptions,
): AsyncGenerator<ManifestListing> {
  const { sinceMs, untilMs, signal } = options;
  // Keys carry whole seconds: start the listing at the second holding sinceMs, filter the rest.
  const startAfter = manifestStartAfter(table, Math.floor(sinceMs / 1000) * 1000);
  for await (const info of store.list(manifestPrefix(table), { startAfter, signal })) {
    const windowStartMs = parseManifestKey(table, info.key);
    if (windowStartMs === undefined) continue;
    if (untilMs !== undefined && windowStartMs >= untilMs) return;
    if (windowStartMs < sinceMs) continue;
    yield { key: info.key, windowStartMs };
  }
}

/** Reads and validates one manifest. A missing object is an error naming the key. */
export async function readManifest(store: ObjectStore, key: string, signal?: AbortSignal): Promise<Manifest> {
  const bytes = await store.get(key, signal);
  if (bytes === undefined) {
    throw new ChangelogError(`manifest ${key} does not exist in ${store.url}`, { key, retriable: false });
  }
  return parseManifest(bytes, key);
}
