import { isoTime, manifestPrefix, manifestStartAfter, parseManifestKey } from '../changelog/layout.js';
import { type Manifest, parseManifest } from '../changelog/manifest.js';
import type { ObjectStore } from '../coordination/objectStore.js';
import { ChangelogError } from '../support/errors.js';

export interface ManifestListing {
  key: string;
  windowStartMs: number;
  /** The manifest's version (1 when sealed, n+1 per replay or compaction rewrite). */
  version: number;
}

export interface ListManifestsOptions {
  /** Windows starting at or after this time. */
  sinceMs: number;
  /** Windows starting before this time; open-ended when absent. */
  untilMs?: number;
  signal?: AbortSignal;
}

/**
 * Every manifest object (each version of each window) of sealed windows starting in
 * [sinceMs, untilMs), in key order: oldest window first, a window's versions together (v1 first,
 * the others in key order, so v10 before v9). Manifest keys sort by time, so this is one LIST from
 * the first window on, stopped at the first key past the end. Objects under the manifest prefix
 * that are not manifest keys are skipped. Readers want listWindows (the highest version of each
 * window); this is for whatever must see superseded versions too.
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
    const parts = parseManifestKey(table, info.key);
    if (parts === undefined) continue;
    if (untilMs !== undefined && parts.windowStartMs >= untilMs) return;
    if (parts.windowStartMs < sinceMs) continue;
    yield { key: info.key, ...parts };
  }
}

/**
 * The sealed windows starting in [sinceMs, untilMs), oldest first, each once with the key of its
 * highest manifest version: a window's manifest is immutable, so replay and compaction publish
 * version n+1 beside it, and the newest one is the window's content. A window's versions are
 * adjacent in the listing; versions compare as numbers (v10 > v9), not as key text.
 */
export async function* listWindows(
  store: ObjectStore,
  table: string,
  options: ListManifestsOptions,
): AsyncGenerator<ManifestListing> {
  let current: ManifestListing | undefined;
  for await (const listing of listManifests(store, table, options)) {
    if (current !== undefined && listing.windowStartMs !== current.windowStartMs) {
      yield current;
      current = undefined;
    }
    if (current === undefined || listing.version > current.version) current = listing;
  }
  if (current !== undefined) yield current;
}

/** What a manifest must say about itself to be the one its key names. */
export interface ManifestIdentity {
  table: string;
  windowStartMs: number;
  version: number;
}

export interface ReadManifestOptions {
  /**
   * The table, window and version the manifest must have. Default: what its key says (the table
   * before `/manifests/`, the window and version from parseManifestKey); a key that is no
   * manifest key is then only checked against the schema.
   */
  expect?: ManifestIdentity;
  signal?: AbortSignal;
}

/**
 * Reads and validates one manifest: the schema, then that its table, window.start and version
 * are those of its key (a manifest copied under another window's key would otherwise hand out
 * that window's rows as this one's). A missing object or a mismatch is an error naming the key.
 */
export async function readManifest(
  store: ObjectStore,
  key: string,
  options: ReadManifestOptions = {},
): Promise<Manifest> {
  const bytes = await store.get(key, options.signal);
  if (bytes === undefined) {
    throw new ChangelogError(`manifest ${key} does not exist in ${store.url}`, { key, retriable: false });
  }
  const manifest = parseManifest(bytes, key);
  const expect = options.expect ?? identityOfKey(key);
  if (expect !== undefined) {
    const problems: string[] = [];
    if (manifest.table !== expect.table) {
      problems.push(`table ${JSON.stringify(manifest.table)} (the key's is ${JSON.stringify(expect.table)})`);
    }
    if (Date.parse(manifest.window.start) !== expect.windowStartMs) {
      problems.push(`window.start ${manifest.window.start} (the key's is ${isoTime(expect.windowStartMs)})`);
    }
    if (manifest.version !== expect.version) {
      problems.push(`version ${manifest.version} (the key's is ${expect.version})`);
    }
    if (problems.length > 0) {
      throw new ChangelogError(
        `manifest ${key} is not the manifest its key names: it has ${problems.join(', ')}`,
        {
          key,
          retriable: false,
        },
      );
    }
  }
  return manifest;
}

/** The identity a manifest key names, or undefined when the key is no manifest key. */
function identityOfKey(key: string): ManifestIdentity | undefined {
  const at = key.indexOf('/manifests/');
  if (at <= 0) return undefined;
  const table = key.slice(0, at);
  let parts: ReturnType<typeof parseManifestKey>;
  try {
    parts = parseManifestKey(table, key);
  } catch {
    return undefined; // not a valid table name: not a key the layout writes
  }
  return parts && { table, ...parts };
}
