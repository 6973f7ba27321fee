import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ConfigError, ObjectStoreError } from '../support/errors.js';

export interface PutOptions {
  contentType?: string;
  signal?: AbortSignal;
}

export interface PutResult {
  key: string;
  bytes: number;
  /** `sha256:<hex>` of the body. */
  checksum: string;
  /** `exists`: an identical object was already there, so a retried write is a no-op. */
  outcome: 'created' | 'exists';
}

export interface ObjectInfo {
  key: string;
  bytes: number;
  /** `sha256:<hex>`, or undefined when the store cannot tell without reading the object. */
  checksum: string | undefined;
  lastModified: Date;
}

export interface ListOptions {
  /** Only keys sorting strictly after this one (relative to the store's prefix). */
  startAfter?: string;
  signal?: AbortSignal;
}

/**
 * Where change segments and manifests go. Keys are relative to the destination prefix and use `/`
 * separators. Writes are create-only: a published object is never replaced, because a sealed
 * manifest may already point at it.
 */
export interface ObjectStore {
  /** The destination, e.g. `s3://bucket/prefix` or `file:///dir`. */
  readonly url: string;
  /**
   * Writes `body` at `key` unless something is there. Identical content already there resolves
   * to `exists`; different content throws ObjectConflictError and leaves the old object alone.
   */
  putIfAbsent(key: string, body: Uint8Array, options?: PutOptions): Promise<PutResult>;
  /** The object's bytes, or undefined when there is none. */
  get(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined>;
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined>;
  /** Objects whose key starts with `prefix`, in ascending (UTF-8 byte) key order. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Deletes the keys; keys with no object are not an error. */
  delete(keys: readonly string[], signal?: AbortSignal): Promise<void>;
  close?(): void;
}

export type Destination = { kind: 's3'; bucket: string; prefix: string } | { kind: 'file'; dir: string };

const CHECKSUM_PREFIX = 'sha256:';

/** `sha256:<hex>` of `body`: the checksum every store records and compares. */
export function sha256Checksum(body: Uint8Array): string {
  return CHECKSUM_PREFIX + createHash('sha256').update(body).digest('hex');
}

/** The hex digest of a `sha256:<hex>` checksum. */
export function checksumHex(checksum: string): string {
  return checksum.slice(CHECKSUM_PREFIX.length);
}

const ALLOWED_DESTINATIONS = 's3://<bucket>[/<prefix>] or file:///<absolute directory>';

// General purpose bucket naming rules; dots allowed, but not an IP address or `..`.
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IP_ADDRESS = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Splits a destination URL into the store it names. Throws ConfigError naming the bad value. */
export function parseDestination(url: string): Destination {
  const invalid = (why: string) =>
    new ConfigError([`destination "${url}" ${why}; expected ${ALLOWED_DESTINATIONS}`]);

  if (/^s3:\/\//i.test(url)) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const prefix = slash === -1 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    if (!BUCKET_NAME.test(bucket) || bucket.includes('..') || IP_ADDRESS.test(bucket)) {
      throw invalid(
        `has an invalid bucket name "${bucket}" (3-63 characters: lowercase letters, digits, dots and hyphens)`,
      );
    }
    const problem = prefix === '' ? undefined : keyProblem(prefix);
    if (problem !== undefined) throw invalid(`has an invalid prefix "${prefix}" (${problem})`);
    return { kind: 's3', bucket, prefix };
  }

  if (/^file:/i.test(url)) {
    // `file:./out` and `file://out/x` parse as /out and host "out"; both are almost surely mistakes.
    if (!/^file:\/\/\//i.test(url)) {
      throw invalid('is not an absolute file URL (it must start with file:/// and name an absolute path)');
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid('is not a valid URL');
    }
    if (parsed.search !== '' || parsed.hash !== '') throw invalid('must not have a query or fragment');
    const dir = fileURLToPath(parsed).replace(/(?<=.)\/+$/, '');
    return { kind: 'file', dir };
  }

  throw invalid('has an unsupported scheme');
}

/** Why `key` is not a valid relative object key, or undefined when it is. */
function keyProblem(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (key.startsWith('/')) return 'it must be relative, not start with /';
  if (key.includes('\\')) return 'it must use / as the separator, not \\';
  if (key.includes('\0')) return 'it must not contain NUL';
  for (const segment of key.split('/')) {
    if (segment === '') return 'it must not contain empty segments (//) or end with /';
    if (segment === '.' || segment === '..') return 'it must not contain . or .. segments';
  }
  return undefined;
}

/**
 * Rejects keys that are not plain relative paths. Enforced by every store so that a key accepted by
 * the local store is accepted by S3 and the other way round, and so a key can never escape the root.
 */
export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) {
    throw new ObjectStoreError(`invalid object key "${key}": ${problem}`, { key, retriable: false });
  }
}

/** A list prefix is a key, or a key followed by `/`, or empty for everything. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  const problem = keyProblem(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  if (problem !== undefined) {
    throw new ObjectStoreError(`invalid list prefix "${prefix}": ${problem}`, {
      key: prefix,
      retriable: false,
    });
  }
}

/** `prefix/key`, or just `key` at the root. Prefixes are stored without leading or trailing `/`. */
export function joinKey(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}/${key}`;
}

/** Orders keys the way S3 lists them: by their UTF-8 bytes, not by UTF-16 code units. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
