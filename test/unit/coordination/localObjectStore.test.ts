import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import { type ObjectInfo, sha256Checksum } from '../../../src/coordination/objectStore.js';
import { openObjectStore } from '../../../src/coordination/openObjectStore.js';
import { ObjectConflictError, ObjectStoreError } from '../../../src/support/errors.js';

const encode = (text: string) => new TextEncoder().encode(text);

async function collect(items: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function keys(items: AsyncIterable<ObjectInfo>): Promise<string[]> {
  return (await collect(items)).map((info) => info.key);
}

/** Every file under `dir`, relative, including dot files. */
async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

describe('LocalObjectStore', () => {
  let root: string;
  let dir: string;
  let store: LocalObjectStore;

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'local-store-'));
    dir = path.join(root, 'out');
    store = new LocalObjectStore({ dir });
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('has a file:// url for its directory', () => {
    expect(store.url).toBe(pathToFileURL(dir).href);
  });

  it('creates an object, creating parent directories, and reads it back', async () => {
    const body = encode('{"manifest":1}');
    const result = await store.putIfAbsent('manifests/2024/0001.json', body);
    expect(result).toEqual({
      key: 'manifests/2024/0001.json',
      bytes: body.byteLength,
      checksum: sha256Checksum(body),
      outcome: 'created',
    });
    expect(await readFile(path.join(dir, 'manifests/2024/0001.json'), 'utf8')).toBe('{"manifest":1}');
    const read = await store.get('manifests/2024/0001.json');
    expect(read).toBeInstanceOf(Uint8Array);
    expect(read).toEqual(body);
    expect(await store.head('manifests/2024/0001.json')).toMatchObject({
      key: 'manifests/2024/0001.json',
      bytes: body.byteLength,
      checksum: sha256Checksum(body),
    });
  });

  it('treats a retried write of the same content as exists', async () => {
    const body = encode('same');
    await store.putIfAbsent('a.parquet', body);
    expect(await store.putIfAbsent('a.parquet', body)).toMatchObject({
      outcome: 'exists',
      checksum: sha256Checksum(body),
    });
  });

  it('refuses different content and keeps the original', async () => {
    await store.putIfAbsent('a.parquet', encode('original'));
    const error = await store.putIfAbsent('a.parquet', encode('different')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObjectConflictError);
    expect(error).toMatchObject({
      existingChecksum: sha256Checksum(encode('original')),
      newChecksum: sha256Checksum(encode('different')),
      context: { key: `${store.url}/a.parquet` },
    });
    expect(await readFile(path.join(dir, 'a.parquet'), 'utf8')).toBe('original');
  });

  it('settles concurrent writes of one key into one created and the rest exists or conflict', async () => {
    const bodies = Array.from({ length: 8 }, (_, i) => encode(i % 2 === 0 ? 'even' : `odd-${i}`));
    const results = await Promise.allSettled(bodies.map((body) => store.putIfAbsent('race', body)));
    const created = results.filter((r) => r.status === 'fulfilled' && r.value.outcome === 'created');
    expect(created).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ObjectConflictError);
    }
    expect(await allFiles(dir)).toEqual(['race']);
  });

  it('leaves no temp files behind, after success or conflict', async () => {
    await store.putIfAbsent('segments/1.parquet', encode('one'));
    await store.putIfAbsent('segments/1.parquet', encode('one'));
    await store.putIfAbsent('segments/1.parquet', encode('two')).catch(() => undefined);
    expect(await allFiles(dir)).toEqual(['segments/1.parquet']);
  });

  it('lists keys sorted by UTF-8 bytes, skipping temp files, with prefix and startAfter', async () => {
    const written = [
      'segments/b/2',
      'segments/a/1',
      'manifests/m',
      'segments/a/10',
      'segmentsX',
      'z\u{1F600}',
      'z\uFFFD',
    ];
    for (const key of written) await store.putIfAbsent(key, encode(key));
    // An in-flight write of another process.
    await writeFile(path.join(dir, 'segments/a/.3.0123456789ab.tmp'), 'partial');

    expect(await keys(store.list(''))).toEqual([
      'manifests/m',
      'segments/a/1',
      'segments/a/10',
      'segments/b/2',
      'segmentsX',
      // S3 order: U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80), unlike UTF-16 order.
      'z\uFFFD',
      'z\u{1F600}',
    ]);
    expect(await keys(store.list('segments/'))).toEqual(['segments/a/1', 'segments/a/10', 'segments/b/2']);
    expect(await keys(store.list('segments'))).toEqual([
      'segments/a/1',
      'segments/a/10',
      'segments/b/2',
      'segmentsX',
    ]);
    expect(await keys(store.list('segments/a/1'))).toEqual(['segments/a/1', 'segments/a/10']);
    expect(await keys(store.list('segments/', { startAfter: 'segments/a/1' }))).toEqual([
      'segments/a/10',
      'segments/b/2',
    ]);
    expect(await keys(store.list('', { startAfter: 'segmentsX' }))).toEqual(['z\uFFFD', 'z\u{1F600}']);
    expect(await keys(store.list('nothing/'))).toEqual([]);

    const [info] = await collect(store.list('manifests/'));
    expect(info).toMatchObject({ key: 'manifests/m', bytes: 'manifests/m'.length, checksum: undefined });
    expect(info?.lastModified).toBeInstanceOf(Date);
  });

  it('lists nothing when the directory does not exist yet', async () => {
    expect(await keys(store.list(''))).toEqual([]);
  });

  it('does not follow symlinks out of the root', async () => {
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret'), 'x');
    await mkdir(dir);
    await symlink(outside, path.join(dir, 'link'));
    expect(await keys(store.list(''))).toEqual([]);
  });

  it('rejects keys that escape the root or are not plain relative paths', async () => {
    for (const key of ['../escape', 'a/../../escape', '/etc/passwd', 'a//b', './a', 'a/', '', 'a\\b']) {
      const error = await store.putIfAbsent(key, encode('x')).catch((e: unknown) => e);
      expect(error, key).toBeInstanceOf(ObjectStoreError);
      expect((error as Error).message, key).toMatch(/invalid object key/);
    }
    await expect(store.get('../escape')).rejects.toThrow(/invalid object key/);
    await expect(store.delete(['ok', '../escape'])).rejects.toThrow(/invalid object key/);
    await expect(keys(store.list('../'))).rejects.toThrow(/invalid list prefix/);
    await expect(store.putIfAbsent('a/.b.0123456789ab.tmp', encode('x'))).rejects.toThrow(/reserved/);
    expect(await readdir(root)).toEqual([]);
  });

  it('deletes objects, ignoring missing keys', async () => {
    await store.putIfAbsent('a', encode('a'));
    await store.putIfAbsent('dir/b', encode('b'));
    await store.putIfAbsent('c', encode('c'));
    await store.delete(['a', 'dir/b', 'missing', 'missing/deeper', 'dir']);
    expect(await store.get('a')).toBeUndefined();
    expect(await store.head('dir/b')).toBeUndefined();
    expect(await keys(store.list(''))).toEqual(['c']);
  });

  it('returns undefined for missing objects and for directories', async () => {
    await store.putIfAbsent('dir/file', encode('x'));
    expect(await store.get('missing')).toBeUndefined();
    expect(await store.get('dir')).toBeUndefined();
    expect(await store.get('dir/file/below')).toBeUndefined();
    expect(await store.head('missing')).toBeUndefined();
    expect(await store.head('dir')).toBeUndefined();
  });

  it('honours an aborted signal', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(store.putIfAbsent('a', encode('a'), { signal: controller.signal })).rejects.toBe(reason);
    expect(await store.get('a')).toBeUndefined();
  });

  it('is what openObjectStore returns for a file:// destination', async () => {
    const opened = openObjectStore(pathToFileURL(dir).href);
    expect(opened).toBeInstanceOf(LocalObjectStore);
    await opened.putIfAbsent('k', encode('v'));
    expect(await store.get('k')).toEqual(encode('v'));
  });
});
