import {
  compareKeys,
  type ListOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutResult,
  sha256Checksum,
} from '../../src/coordination/objectStore.js';
import { ObjectConflictError, ObjectStoreError } from '../../src/support/errors.js';

export interface MemoryObject {
  body: Uint8Array;
  /** Set on create; tests may change it (an object's age, for orphan collection). */
  lastModified: Date;
}

export interface MemoryObjectStoreOptions {
  /** The clock that stamps new objects' lastModified (default Date.now). */
  now?: () => number;
}

/**
 * The tests' in-memory ObjectStore: create-only like the real ones (identical content again is
 * `exists`, different content an ObjectConflictError), listing in key order. Faults are injected
 * into writes with `failing`; `puts` counts every putIfAbsent call, failed ones included, and
 * `gets` every get by key.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly url = 'memory://';
  readonly objects = new Map<string, MemoryObject>();
  /** putIfAbsent calls so far, failed ones included. */
  puts = 0;
  /** While true, every put throws a retriable ObjectStoreError (503 SlowDown) before writing. */
  failing = false;
  /** Called at the start of every put, before the failure injection. */
  onPut: (() => void) | undefined;
  /** get calls so far, by key (missing objects included). */
  readonly gets = new Map<string, number>();
  /** Called at the start of every get, after it is counted (a test may replace the object). */
  onGet: ((key: string) => void) | undefined;
  private readonly now: () => number;

  constructor(options: MemoryObjectStoreOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  async putIfAbsent(key: string, body: Uint8Array): Promise<PutResult> {
    this.puts++;
    this.onPut?.();
    if (this.failing) throw new ObjectStoreError(`PUT ${key}: 503 SlowDown`, { key, retriable: true });
    const checksum = sha256Checksum(body);
    const existing = this.objects.get(key);
    if (existing) {
      const old = sha256Checksum(existing.body);
      if (old !== checksum) throw new ObjectConflictError(key, checksum, old);
      return { key, bytes: body.byteLength, checksum, outcome: 'exists' };
    }
    this.objects.set(key, { body, lastModified: new Date(this.now()) });
    return { key, bytes: body.byteLength, checksum, outcome: 'created' };
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.gets.set(key, (this.gets.get(key) ?? 0) + 1);
    this.onGet?.(key);
    return this.objects.get(key)?.body;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const o = this.objects.get(key);
    return (
      o && { key, bytes: o.body.byteLength, checksum: sha256Checksum(o.body), lastModified: o.lastModified }
    );
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const keys = [...this.objects.keys()]
      .filter(
        (k) =>
          k.startsWith(prefix) &&
          (options.startAfter === undefined || compareKeys(k, options.startAfter) > 0),
      )
      .sort(compareKeys);
    for (const key of keys) {
      const o = this.objects.get(key);
      if (o) yield { key, bytes: o.body.byteLength, checksum: undefined, lastModified: o.lastModified };
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.objects.delete(k);
  }
}
