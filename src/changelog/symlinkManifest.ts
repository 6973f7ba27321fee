import type { Manifest } from './manifest.js';

/*
 * A sealed window's symlink manifest: the text file Athena/Glue (SymlinkTextInputFormat) and
 * Redshift Spectrum read instead of listing data/, so they see exactly the segments the window's
 * manifest lists, each once. Stored at layout.ts `symlinkObjectKey`.
 *
 * Format: one absolute URL a line, in the manifest's segment order, `\n` after every line
 * (an empty window gives an empty file). A function of the manifest and the destination only, so
 * every sealer, and every retry, writes the same bytes and the create-only put answers `exists`.
 */

// A URL's scheme and authority marker: `s3://`, `file://`, `memory://`.
const URL_BASE = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*?)\/*$/;

/**
 * The absolute URL of an object: the destination URL (`s3://bucket/prefix`, `file:///dir`) joined
 * with a key relative to it, as the object stores name their objects. Layout keys need no escaping
 * (table names, `dt=`, window ids and segment ids are plain ASCII).
 */
export function objectUrl(destinationUrl: string, key: string): string {
  const m = URL_BASE.exec(destinationUrl);
  // Trailing slashes go, but not the `//` of the scheme: `file:///` + key is `file:///<key>`.
  const base = m ? `${m[1]}${m[2]}` : destinationUrl.replace(/\/+$/, '');
  return `${base}/${key}`;
}

/** The URLs a window's symlink manifest lists: the manifest's segments, in its order, each once. */
export function symlinkManifestUrls(manifest: Manifest, destinationUrl: string): string[] {
  // A segment listed twice (verify reports it) must still be read once.
  return [...new Set(manifest.segments.map((s) => objectUrl(destinationUrl, s.key)))];
}

/** The symlink manifest's bytes for a sealed window's manifest. */
export function symlinkManifestBody(manifest: Manifest, destinationUrl: string): Uint8Array {
  const text = symlinkManifestUrls(manifest, destinationUrl)
    .map((url) => `${url}\n`)
    .join('');
  return new TextEncoder().encode(text);
}
