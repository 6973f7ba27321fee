import { parseRevisionKey, revisionPrefix, revisionStartAfter } from '../changelog/revision.js';
import type { ObjectStore } from '../coordination/objectStore.js';

export interface RevisionListing {
  key: string;
  publishedAtMs: number;
  windowStartMs: number;
  version: number;
}

/**
 * The revision-log entries (manifest versions >= 2 of rewritten windows) published at or after
 * `sinceMs`, in publish order: one LIST from there. The key holds everything a reader needs, so no
 * entry is read. Objects under the prefix that are not revision keys are skipped.
 */
export async function* listRevisions(
  store: ObjectStore,
  table: string,
  options: { sinceMs: number; signal?: AbortSignal | undefined },
): AsyncGenerator<RevisionListing> {
  const startAfter = revisionStartAfter(table, Math.max(0, options.sinceMs));
  for await (const info of store.list(revisionPrefix(table), { startAfter, signal: options.signal })) {
    const parsed = parseRevisionKey(table, info.key);
    if (parsed !== undefined) yield { key: info.key, ...parsed };
  }
}
