import { z } from 'zod';
import { parseJsonDocument } from './jsonDocument.js';
import { isoTime, parseWindowId, windowId } from './layout.js';

/*
 * The revision log: one small object per manifest version >= 2 (a replay or a compaction rewrote
 * an already sealed window), under keys that sort by publish time:
 *
 *   <table>/revisions/<YYYYMMDDTHHMMSSmmmZ publishedAt>-<windowId>-v<N>.json
 *
 * An incremental reader (read/cursor.ts) lists it from where it stopped to learn which windows it
 * already delivered have new rows, instead of re-listing every manifest of the table's history.
 * The publisher writes the manifest first and the revision after it, so a listed revision always
 * names a manifest that exists.
 */

export const REVISION_FORMAT_VERSION = 1;

const isoDateTime = z.iso.datetime({ offset: false });

export const revisionSchema = z.strictObject({
  formatVersion: z.literal(REVISION_FORMAT_VERSION),
  table: z.string().min(1),
  /** The rewritten window's start (ISO-8601 UTC). */
  window: isoDateTime,
  /** The manifest version published (>= 2). */
  version: z.number().int().min(2),
  /** The manifest's key, relative to the destination. */
  manifestKey: z.string().min(1),
  publishedAt: isoDateTime,
  /** What rewrote the window. */
  reason: z.enum(['replay', 'compact']),
});

export type Revision = z.infer<typeof revisionSchema>;

export function revisionPrefix(table: string): string {
  return `${table}/revisions/`;
}

/** `YYYYMMDDTHHMMSSmmmZ`: a publish time in keys, sorting as time. */
function publishStamp(ms: number): string {
  const iso = isoTime(ms);
  return `${windowId(ms).slice(0, -1)}${iso.slice(20, 23)}Z`;
}

export function revisionObjectKey(
  revision: Pick<Revision, 'table' | 'window' | 'version' | 'publishedAt'>,
): string {
  const windowStartMs = Date.parse(revision.window);
  return `${revisionPrefix(revision.table)}${publishStamp(Date.parse(revision.publishedAt))}-${windowId(windowStartMs)}-v${revision.version}.json`;
}

/** A list `startAfter` that yields the revisions published at or after `publishedAtMs`. */
export function revisionStartAfter(table: string, publishedAtMs: number): string {
  // Every revision key continues with "-" after the stamp; "," sorts just before it.
  return `${revisionPrefix(table)}${publishStamp(publishedAtMs)},`;
}

/** The publish time and window of a revision key, or undefined when the key is not one. */
export function parseRevisionKey(
  table: string,
  key: string,
): { publishedAtMs: number; windowStartMs: number; version: number } | undefined {
  const prefix = revisionPrefix(table);
  if (!key.startsWith(prefix)) return undefined;
  const m = /^(\d{8}T\d{6})(\d{3})Z-(\d{8}T\d{6}Z)-v([1-9]\d*)\.json$/.exec(key.slice(prefix.length));
  if (!m) return undefined;
  const second = parseWindowId(`${m[1]}Z`);
  const windowStartMs = parseWindowId(m[3]!);
  const version = Number(m[4]);
  if (second === undefined || windowStartMs === undefined || version < 2) return undefined;
  return { publishedAtMs: second + Number(m[2]), windowStartMs, version };
}

export function serializeRevision(revision: Revision): Uint8Array {
  const r = revisionSchema.parse(revision);
  const canonical: Revision = {
    formatVersion: r.formatVersion,
    table: r.table,
    window: r.window,
    version: r.version,
    manifestKey: r.manifestKey,
    publishedAt: r.publishedAt,
    reason: r.reason,
  };
  return new TextEncoder().encode(`${JSON.stringify(canonical, null, 2)}\n`);
}

/** Parses a revision object; a bad one names its key and every problem. */
export function parseRevision(bytes: Uint8Array, key: string): Revision {
  return parseJsonDocument(bytes, revisionSchema, 'revision', key);
}
