import { randomBytes, randomUUID } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Checksum } from '../../../src/coordination/objectStore.js';
import { openObjectStore } from '../../../src/coordination/openObjectStore.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../../src/coordination/s3ObjectStore.js';
import { ObjectConflictError } from '../../../src/support/errors.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';

const MIB = 1024 * 1024;
const encode = (text: string) => new TextEncoder().encode(text);

describe('S3ObjectStore against s3rver', () => {
  let server: S3rverServer;

  beforeAll(async () => {
    server = await startS3rver();
  });

  afterAll(async () => {
    await server?.stop();
  });

  /** A store under a fresh prefix, so tests do not see each other's objects. */
  function store(options: Partial<S3ObjectStoreOptions> = {}): S3ObjectStore {
    return new S3ObjectStore({
      bucket: server.bucket,
      prefix: `run-${randomUUID()}`,
      client: server.client,
      retry: { retries: 2, baseDelayMs: 10 },
      ...options,
    });
  }

  /** Records the names of the commands the shared client sends while `fn` runs. */
  async function recordCommands(fn: () => Promise<void>): Promise<string[]> {
    const commands: string[] = [];
    const name = `recorder-${randomUUID()}`;
    server.client.middlewareStack.add(
      (next, context) => async (args) => {
        commands.push(context.commandName ?? 'unknown');
        return next(args);
      },
      { step: 'initialize', name },
    );
    try {
      await fn();
    } finally {
      server.client.middlewareStack.remove(name);
    }
    return commands;
  }

  it('creates an object and reads it back', async () => {
    const s3 = store();
    const body = encode('{"segment":1}');
    const result = await s3.putIfAbsent('manifests/0001.json', body, { contentType: 'application/json' });
    expect(result).toEqual({
      key: 'manifests/0001.json',
      bytes: body.byteLength,
      checksum: sha256Checksum(body),
      outcome: 'created',
    });
    expect(await s3.get('manifests/0001.json')).toEqual(body);
    const info = await s3.head('manifests/0001.json');
    expect(info).toMatchObject({
      key: 'manifests/0001.json',
      bytes: body.byteLength,
      checksum: result.checksum,
    });
    expect(info?.lastModified).toBeInstanceOf(Date);
  });

  it('treats a retried write of the same content as exists', async () => {
    const s3 = store();
    const body = encode('same bytes');
    expect((await s3.putIfAbsent('a.parquet', body)).outcome).toBe('created');
    expect(await s3.putIfAbsent('a.parquet', body)).toMatchObject({
      outcome: 'exists',
      checksum: sha256Checksum(body),
    });
  });

  it('refuses different content at an existing key and keeps the original', async () => {
    const s3 = store();
    const original = encode('original');
    await s3.putIfAbsent('a.parquet', original);
    const error = await s3.putIfAbsent('a.parquet', encode('different')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObjectConflictError);
    expect(error).toMatchObject({
      existingChecksum: sha256Checksum(original),
      newChecksum: sha256Checksum(encode('different')),
      retriable: false,
    });
    expect(await s3.get('a.parquet')).toEqual(original);
  });

  it('compares by content when the existing object has no sha256 metadata', async () => {
    const s3 = store();
    const body = encode('written by another tool');
    await server.client.send(
      new PutObjectCommand({ Bucket: server.bucket, Key: `${s3.prefix}/x`, Body: body }),
    );
    expect((await s3.head('x'))?.checksum).toBeUndefined();
    expect((await s3.putIfAbsent('x', body)).outcome).toBe('exists');
    await expect(s3.putIfAbsent('x', encode('other'))).rejects.toBeInstanceOf(ObjectConflictError);
  });

  it('uploads large bodies in parts and keeps the checksum', async () => {
    const s3 = store({ multipartThresholdBytes: 5 * MIB + 1, partSizeBytes: 5 * MIB });
    const body = new Uint8Array(randomBytes(11 * MIB));
    let result: Awaited<ReturnType<S3ObjectStore['putIfAbsent']>> | undefined;
    const commands = await recordCommands(async () => {
      result = await s3.putIfAbsent('segments/big.parquet', body);
    });
    expect(commands).toContain('CreateMultipartUploadCommand');
    expect(commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(3);
    expect(commands).toContain('CompleteMultipartUploadCommand');
    expect(result).toMatchObject({
      outcome: 'created',
      bytes: body.byteLength,
      checksum: sha256Checksum(body),
    });

    const info = await s3.head('segments/big.parquet');
    expect(info).toMatchObject({ bytes: body.byteLength, checksum: sha256Checksum(body) });
    const read = await s3.get('segments/big.parquet');
    expect(read && Buffer.compare(read, body)).toBe(0);
    expect((await s3.putIfAbsent('segments/big.parquet', body)).outcome).toBe('exists');
  });

  it('probes once and picks head-compare, since s3rver ignores If-None-Match', async () => {
    const s3 = store();
    const commands = await recordCommands(async () => {
      const modes = await Promise.all([s3.conditionalWriteMode(), s3.conditionalWriteMode()]);
      expect(modes).toEqual(['head-compare', 'head-compare']);
      expect(await s3.conditionalWriteMode()).toBe('head-compare');
    });
    expect(commands).toEqual(['PutObjectCommand', 'PutObjectCommand', 'DeleteObjectsCommand']);
    expect(await collectKeys(s3.list(''))).toEqual([]);
  });

  it('lists keys relative to the prefix, sorted, across pages, with startAfter', async () => {
    const prefix = `run-${randomUUID()}`;
    const s3 = store({ prefix, listPageSize: 2, conditionalWrites: 'head-compare' });
    // A sibling prefix that merely starts with the same characters must not show up.
    const sibling = store({ prefix: `${prefix}-archive`, conditionalWrites: 'head-compare' });
    await sibling.putIfAbsent('segments/zzz', encode('sibling'));
    const keys = [
      'segments/003',
      'segments/001',
      'manifests/m1',
      'segments/005',
      'segments/002',
      'segments/004',
    ];
    for (const key of keys) await s3.putIfAbsent(key, encode(key));

    let listed: string[] = [];
    const commands = await recordCommands(async () => {
      listed = await collectKeys(s3.list('segments/'));
    });
    expect(listed).toEqual(['segments/001', 'segments/002', 'segments/003', 'segments/004', 'segments/005']);
    expect(commands.filter((c) => c === 'ListObjectsV2Command').length).toBeGreaterThanOrEqual(3);

    expect(await collectKeys(s3.list('', { startAfter: 'segments/002' }))).toEqual([
      'segments/003',
      'segments/004',
      'segments/005',
    ]);
    expect(await collectKeys(s3.list(''))).toEqual([...keys].sort());
    const [first] = await collect(s3.list('segments/001'));
    expect(first).toMatchObject({ key: 'segments/001', bytes: 'segments/001'.length, checksum: undefined });
  });

  it('deletes objects, ignoring missing keys', async () => {
    const s3 = store({ conditionalWrites: 'head-compare' });
    await s3.putIfAbsent('a', encode('a'));
    await s3.putIfAbsent('b', encode('b'));
    await s3.putIfAbsent('c', encode('c'));
    await s3.delete(['a', 'c', 'never-written']);
    expect(await s3.get('a')).toBeUndefined();
    expect(await collectKeys(s3.list(''))).toEqual(['b']);
    await s3.delete([]);
  });

  it('returns undefined for missing objects', async () => {
    const s3 = store();
    expect(await s3.get('missing')).toBeUndefined();
    expect(await s3.head('missing')).toBeUndefined();
  });

  it('is what openObjectStore returns for an s3:// destination', async () => {
    const s3 = openObjectStore(`s3://${server.bucket}/opened-${randomUUID()}/`, {
      s3: { client: server.client, conditionalWrites: 'head-compare' },
    });
    expect(s3).toBeInstanceOf(S3ObjectStore);
    expect(s3.url).toMatch(new RegExp(`^s3://${server.bucket}/opened-[0-9a-f-]+$`));
    expect((await s3.putIfAbsent('k', encode('v'))).outcome).toBe('created');
    expect(await s3.get('k')).toEqual(encode('v'));
  });
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function collectKeys(items: AsyncIterable<{ key: string }>): Promise<string[]> {
  return (await collect(items)).map((item) => item.key);
}
