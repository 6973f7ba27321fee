import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { ChangelogError, isRetriable, ObjectConflictError, ObjectStoreError } from '../support/errors.js';
import {
  assertValidKey,
  assertValidPrefix,
  compareKeys,
  type ListOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
  sha256Checksum,
} from './objectStore.js';

export interface LocalObjectStoreOptions {
  /** Root directory; created on the first write. */
  dir: string;
}

// `.<name>.<12 hex>.tmp`: in-flight writes. Never listed, and refused as keys so nothing real hides.
const TEMP_FILE = /^\..+\.[0-9a-f]{12}\.tmp$/;
// link(2) errors meaning the filesystem has no hard links at all, rather than a failure of this write.
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/**
 * An ObjectStore in a local directory (`file:///dir`), for development and single-host setups.
 * A write goes to a temp file that is fsynced and then published with link(2), which fails when the
 * target exists (rename would silently replace it), so publishing is atomic and create-only.
 */
export class LocalObjectStore implements ObjectStore {
  readonly url: string;
  readonly dir: string;

  constructor(options: LocalObjectStoreOptions) {
    this.dir = path.resolve(options.dir);
    this.url = pathToFileURL(this.dir).href.replace(/\/$/, '');
  }

  async putIfAbsent(key: string, body: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    const file = this.pathFor(key);
    const { signal } = options;
    const checksum = sha256Checksum(body);
    const parent = path.dirname(file);
    const temp = path.join(parent, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      signal?.throwIfAborted();
      const firstCreatedDir = await mkdir(parent, { recursive: true });
      try {
        // `wx`: never write into a file someone else created.
        const handle = await open(temp, 'wx', 0o644);
        try {
          await handle.writeFile(body);
          await handle.sync();
        } finally {
          await handle.close();
        }
        signal?.throwIfAborted();
        try {
          await link(temp, file);
        } catch (error) {
          if (errorCode(error) === 'EEXIST') return await this.compareExisting(key, file, checksum, body);
          if (NO_HARD_LINKS.has(errorCode(error) ?? '')) {
            throw new ObjectStoreError(
              `PUT ${this.location(key)} failed: the filesystem at ${this.dir} does not support hard links, which create-only publishing needs (${errorCode(error)})`,
              { key: this.location(key), cause: error, retriable: false },
            );
          }
          throw error;
        }
      } finally {
        await rm(temp, { force: true });
      }
      // Make the new name (and any directories created for it) survive a crash.
      for (const dir of directoriesToSync(firstCreatedDir, parent)) await fsyncDirectory(dir);
      return { key, bytes: body.byteLength, checksum, outcome: 'created' };
    } catch (error) {
      throw this.toStoreError('PUT', key, error, signal);
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    const file = this.pathFor(key);
    try {
      const content = await readFile(file, { signal });
      return new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
    } catch (error) {
      // EISDIR: the key names a "directory", a prefix of other keys, not an object.
      if (isMissing(error) || errorCode(error) === 'EISDIR') return undefined;
      throw this.toStoreError('GET', key, error, signal);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    const file = this.pathFor(key);
    try {
      signal?.throwIfAborted();
      const info = await stat(file);
      if (!info.isFile()) return undefined;
      return { key, bytes: info.size, checksum: await hashFile(file, signal), lastModified: info.mtime };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.toStoreError('HEAD', key, error, signal);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    assertValidPrefix(prefix);
    const { startAfter, signal } = options;
    // Start the walk at the deepest directory the prefix fully names.
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    let keys: string[];
    try {
      keys = await this.walk(base, prefix, signal);
    } catch (error) {
      throw this.toStoreError('LIST', prefix, error, signal);
    }
    const after = startAfter ? Buffer.from(startAfter, 'utf8') : undefined;
    const selected = keys
      .filter((key) => key.startsWith(prefix))
      .filter((key) => after === undefined || Buffer.compare(Buffer.from(key, 'utf8'), after) > 0)
      .sort(compareKeys);
    for (const key of selected) {
      let info: Awaited<ReturnType<typeof stat>>;
      try {
        signal?.throwIfAborted();
        info = await stat(path.join(this.dir, ...key.split('/')));
      } catch (error) {
        // Deleted since the walk: S3 listings are not snapshots either.
        if (isMissing(error)) continue;
        throw this.toStoreError('LIST', key, error, signal);
      }
      yield { key, bytes: info.size, checksum: undefined, lastModified: info.mtime };
    }
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    const files = keys.map((key) => [key, this.pathFor(key)] as const);
    for (const [key, file] of files) {
      try {
        signal?.throwIfAborted();
        // Empty directories are left in place: removing them races with a concurrent write's mkdir.
        await unlink(file);
      } catch (error) {
        // EISDIR: a "directory" key is a prefix, not an object, so there is nothing to delete.
        if (isMissing(error) || errorCode(error) === 'EISDIR') continue;
        throw this.toStoreError('DELETE', key, error, signal);
      }
    }
  }

  /** Relative keys of regular files under `base`, pruned to directories that can match `prefix`. */
  private async walk(base: string, prefix: string, signal: AbortSignal | undefined): Promise<string[]> {
    const keys: string[] = [];
    const visit = async (relative: string): Promise<void> => {
      signal?.throwIfAborted();
      let entries: Dirent[];
      try {
        entries = await readdir(relative === '' ? this.dir : path.join(this.dir, ...relative.split('/')), {
          withFileTypes: true,
        });
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      for (const entry of entries) {
        const key = relative === '' ? entry.name : `${relative}/${entry.name}`;
        // Symlinks are skipped: they could point outside the root or form cycles.
        if (entry.isDirectory()) {
          const asPrefix = `${key}/`;
          if (asPrefix.startsWith(prefix) || prefix.startsWith(asPrefix)) await visit(key);
        } else if (entry.isFile() && !TEMP_FILE.test(entry.name)) {
          keys.push(key);
        }
      }
    };
    await visit(base);
    return keys;
  }

  private async compareExisting(
    key: string,
    file: string,
    checksum: string,
    body: Uint8Array,
  ): Promise<PutResult> {
    const existing = await hashFile(file, undefined);
    if (existing !== checksum) throw new ObjectConflictError(this.location(key), checksum, existing);
    return { key, bytes: body.byteLength, checksum, outcome: 'exists' };
  }

  /** The file for `key`; rejects keys that are not plain relative paths, so none escapes the root. */
  private pathFor(key: string): string {
    assertValidKey(key);
    const name = key.slice(key.lastIndexOf('/') + 1);
    if (TEMP_FILE.test(name)) {
      throw new ObjectStoreError(`invalid object key "${key}": the name is reserved for temp files`, {
        key,
        retriable: false,
      });
    }
    const file = path.join(this.dir, ...key.split('/'));
    if (!file.startsWith(this.dir + path.sep) && !(this.dir === path.sep && file.startsWith(path.sep))) {
      throw new ObjectStoreError(`invalid object key "${key}": it resolves outside ${this.dir}`, {
        key,
        retriable: false,
      });
    }
    return file;
  }

  private location(key: string): string {
    return `${this.url}/${key}`;
  }

  private toStoreError(
    operation: string,
    key: string,
    error: unknown,
    signal: AbortSignal | undefined,
  ): unknown {
    if (error instanceof ChangelogError) return error;
    if (signal?.aborted) return signal.reason;
    const location = this.location(key);
    const detail = error instanceof Error ? error.message : String(error);
    return new ObjectStoreError(`${operation} ${location} failed: ${detail}`, {
      key: location,
      cause: error,
      retriable: isRetriable(error),
    });
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

/** ENOTDIR: a path component is a file, so the key cannot exist either. */
function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function hashFile(file: string, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash, { signal });
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Directories whose entries changed: `parent` (new file) and, when mkdir created directories, each
 * one from the parent of the first created down to `parent`.
 */
function directoriesToSync(firstCreated: string | undefined, parent: string): string[] {
  if (firstCreated === undefined) return [parent];
  const dirs = [path.dirname(firstCreated)];
  for (let dir = parent; dir !== path.dirname(firstCreated); dir = path.dirname(dir)) dirs.push(dir);
  return dirs;
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
