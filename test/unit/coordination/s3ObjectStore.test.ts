import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { checksumHex, sha256Checksum } from '../../../src/coordination/objectStore.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../../src/coordination/s3ObjectStore.js';
import { ConfigError, ObjectConflictError, ObjectStoreError } from '../../../src/support/errors.js';

const MIB = 1024 * 1024;
const body = new TextEncoder().encode('segment bytes');
const hex = checksumHex(sha256Checksum(body));

function awsError(name: string, httpStatusCode: number): S3ServiceException {
  return new S3ServiceException({
    name,
    message: `${name} from the mock`,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode },
  });
}

const preconditionFailed = () => awsError('PreconditionFailed', 412);

describe('S3ObjectStore (mocked client)', () => {
  let client: S3Client;
  let s3mock: ReturnType<typeof mockClient>;

  beforeEach(() => {
    client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    s3mock = mockClient(client);
  });

  function store(options: Partial<S3ObjectStoreOptions> = {}): S3ObjectStore {
    return new S3ObjectStore({
      bucket: 'changelog-bucket',
      prefix: 'tables/orders',
      client,
      conditionalWrites: 'if-none-match',
      retry: { baseDelayMs: 1, retries: 3 },
      ...options,
    });
  }

  describe('if-none-match writes', () => {
    it('sends If-None-Match, the checksum metadata and the SHA-256 digest', async () => {
      s3mock.on(PutObjectCommand).resolves({});
      const result = await store().putIfAbsent('segments/1.parquet', body);
      expect(result).toEqual({
        key: 'segments/1.parquet',
        bytes: body.byteLength,
        checksum: `sha256:${hex}`,
        outcome: 'created',
      });
      const [put] = s3mock.commandCalls(PutObjectCommand);
      expect(put?.args[0].input).toMatchObject({
        Bucket: 'changelog-bucket',
        Key: 'tables/orders/segments/1.parquet',
        IfNoneMatch: '*',
        Metadata: { sha256: hex },
        ChecksumSHA256: Buffer.from(hex, 'hex').toString('base64'),
        ContentType: 'application/octet-stream',
      });
      expect(s3mock.commandCalls(HeadObjectCommand)).toHaveLength(0);
    });

    it('resolves a 412 with matching metadata to exists', async () => {
      s3mock.on(PutObjectCommand).rejects(preconditionFailed());
      s3mock.on(HeadObjectCommand).resolves({ Metadata: { sha256: hex }, ContentLength: body.byteLength });
      expect((await store().putIfAbsent('k', body)).outcome).toBe('exists');
      expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(1);
    });

    it('throws ObjectConflictError on a 412 with different metadata', async () => {
      s3mock.on(PutObjectCommand).rejects(preconditionFailed());
      s3mock.on(HeadObjectCommand).resolves({ Metadata: { sha256: 'ab'.repeat(32) } });
      const error = await store()
        .putIfAbsent('k', body)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ObjectConflictError);
      expect(error).toMatchObject({
        existingChecksum: `sha256:${'ab'.repeat(32)}`,
        newChecksum: `sha256:${hex}`,
        context: { key: 's3://changelog-bucket/tables/orders/k' },
      });
    });

    it('hashes the existing object when it has no checksum metadata', async () => {
      s3mock.on(PutObjectCommand).rejects(preconditionFailed());
      s3mock.on(HeadObjectCommand).resolves({ Metadata: {} });
      // Only the part of the SDK's stream mixin that the store uses.
      const stream = { transformToByteArray: async () => body } as unknown as GetObjectCommandOutput['Body'];
      s3mock.on(GetObjectCommand).resolves({ Body: stream });
      expect((await store().putIfAbsent('k', body)).outcome).toBe('exists');
    });

    it('retries a 503 and then succeeds', async () => {
      s3mock.on(PutObjectCommand).rejectsOnce(awsError('ServiceUnavailable', 503)).resolves({});
      expect((await store().putIfAbsent('k', body)).outcome).toBe('created');
      expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(2);
    });

    it('retries a 409 ConditionalRequestConflict', async () => {
      s3mock.on(PutObjectCommand).rejectsOnce(awsError('ConditionalRequestConflict', 409)).resolves({});
      expect((await store().putIfAbsent('k', body)).outcome).toBe('created');
      expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(2);
    });

    it('does not retry a 403 and reports it as ObjectStoreError with context', async () => {
      const denied = awsError('AccessDenied', 403);
      s3mock.on(PutObjectCommand).rejects(denied);
      const error = await store()
        .putIfAbsent('k', body)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ObjectStoreError);
      expect(error).toMatchObject({
        retriable: false,
        cause: denied,
        context: { key: 's3://changelog-bucket/tables/orders/k' },
      });
      expect((error as Error).message).toContain('AccessDenied (HTTP 403)');
      expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(1);
    });
  });

  it('sends ExpectedBucketOwner everywhere and SSE-KMS on writes', async () => {
    s3mock.on(PutObjectCommand).rejects(preconditionFailed());
    s3mock.on(HeadObjectCommand).resolves({ Metadata: { sha256: hex } });
    s3mock.on(ListObjectsV2Command).resolves({ Contents: [] });
    s3mock.on(DeleteObjectsCommand).resolves({});
    const s3 = store({ expectedBucketOwner: '111122223333', sseKmsKeyId: 'arn:aws:kms:us-east-1:1:key/k' });
    await s3.putIfAbsent('k', body);
    for await (const _ of s3.list('')) {
      // drain
    }
    await s3.delete(['k']);
    expect(s3mock.commandCalls(PutObjectCommand)[0]?.args[0].input).toMatchObject({
      ExpectedBucketOwner: '111122223333',
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: 'arn:aws:kms:us-east-1:1:key/k',
    });
    const owner = { ExpectedBucketOwner: '111122223333' };
    expect(s3mock.commandCalls(HeadObjectCommand)[0]?.args[0].input).toMatchObject(owner);
    expect(s3mock.commandCalls(ListObjectsV2Command)[0]?.args[0].input).toMatchObject(owner);
    expect(s3mock.commandCalls(DeleteObjectsCommand)[0]?.args[0].input).toMatchObject(owner);
  });

  describe('auto mode', () => {
    it('probes once, shared by concurrent callers, and uses If-None-Match when the store refuses', async () => {
      // A store that honours If-None-Match: the second write of the probe key is refused.
      const written = new Set<string>();
      s3mock.on(PutObjectCommand).callsFake(async (input: { Key: string }) => {
        if (written.has(input.Key)) throw preconditionFailed();
        written.add(input.Key);
        return {};
      });
      s3mock.on(DeleteObjectsCommand).resolves({});
      const s3 = store({ conditionalWrites: 'auto' });
      await Promise.all([s3.putIfAbsent('data/a', body), s3.putIfAbsent('data/b', body)]);
      expect(await s3.conditionalWriteMode()).toBe('if-none-match');

      const probeKeys = s3mock
        .commandCalls(PutObjectCommand)
        .map((call) => call.args[0].input.Key ?? '')
        .filter((key) => key.includes('_probe/'));
      expect(probeKeys).toHaveLength(2);
      expect(probeKeys[0]).toBe(probeKeys[1]);
      const deleted = s3mock.commandCalls(DeleteObjectsCommand)[0]?.args[0].input.Delete?.Objects;
      expect(deleted).toEqual([{ Key: probeKeys[0] }]);
      const writes = s3mock
        .commandCalls(PutObjectCommand)
        .filter((c) => c.args[0].input.Key?.includes('data/'));
      expect(writes.map((c) => c.args[0].input.IfNoneMatch)).toEqual(['*', '*']);
    });

    it('falls back to head-compare when the second probe write succeeds', async () => {
      s3mock.on(PutObjectCommand).resolves({});
      s3mock.on(DeleteObjectsCommand).resolves({});
      s3mock.on(HeadObjectCommand).rejects(awsError('NotFound', 404));
      const s3 = store({ conditionalWrites: 'auto' });
      expect((await s3.putIfAbsent('data/a', body)).outcome).toBe('created');
      expect(await s3.conditionalWriteMode()).toBe('head-compare');
      const write = s3mock.commandCalls(PutObjectCommand).at(-1)?.args[0].input;
      expect(write?.Key).toBe('tables/orders/data/a');
      expect(write?.IfNoneMatch).toBeUndefined();
      expect(s3mock.commandCalls(HeadObjectCommand)).toHaveLength(1);
    });

    it('probes again after a failed probe', async () => {
      s3mock.on(PutObjectCommand).rejectsOnce(awsError('AccessDenied', 403)).resolves({});
      s3mock.on(DeleteObjectsCommand).resolves({});
      const s3 = store({ conditionalWrites: 'auto' });
      await expect(s3.conditionalWriteMode()).rejects.toBeInstanceOf(ObjectStoreError);
      expect(await s3.conditionalWriteMode()).toBe('head-compare');
    });
  });

  describe('multipart uploads', () => {
    const big = new Uint8Array(6 * MIB).fill(7);
    const bigHex = checksumHex(sha256Checksum(big));

    function mockMultipart(): void {
      s3mock.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' });
      s3mock.on(UploadPartCommand).resolves({ ETag: '"etag"' });
      s3mock.on(AbortMultipartUploadCommand).resolves({});
    }

    it('completes with If-None-Match and sends metadata and SSE-KMS on create', async () => {
      mockMultipart();
      s3mock.on(CompleteMultipartUploadCommand).resolves({});
      const s3 = store({
        multipartThresholdBytes: 5 * MIB + 1,
        partSizeBytes: 5 * MIB,
        expectedBucketOwner: '111122223333',
        sseKmsKeyId: 'kms-key',
      });
      expect((await s3.putIfAbsent('big', big)).outcome).toBe('created');
      expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(0);
      expect(s3mock.commandCalls(UploadPartCommand)).toHaveLength(2);
      expect(s3mock.commandCalls(CreateMultipartUploadCommand)[0]?.args[0].input).toMatchObject({
        Metadata: { sha256: bigHex },
        ServerSideEncryption: 'aws:kms',
        SSEKMSKeyId: 'kms-key',
        ExpectedBucketOwner: '111122223333',
      });
      expect(s3mock.commandCalls(CompleteMultipartUploadCommand)[0]?.args[0].input).toMatchObject({
        IfNoneMatch: '*',
        ExpectedBucketOwner: '111122223333',
      });
    });

    it('aborts the upload when completion fails', async () => {
      mockMultipart();
      s3mock.on(CompleteMultipartUploadCommand).rejects(awsError('InvalidPart', 400));
      const s3 = store({ multipartThresholdBytes: 5 * MIB + 1, partSizeBytes: 5 * MIB });
      await expect(s3.putIfAbsent('big', big)).rejects.toBeInstanceOf(ObjectStoreError);
      expect(s3mock.commandCalls(AbortMultipartUploadCommand)[0]?.args[0].input).toMatchObject({
        UploadId: 'upload-1',
        Key: 'tables/orders/big',
      });
    });

    it('resolves a 412 on completion by comparing checksums', async () => {
      mockMultipart();
      s3mock.on(CompleteMultipartUploadCommand).rejects(preconditionFailed());
      s3mock.on(HeadObjectCommand).resolves({ Metadata: { sha256: bigHex } });
      const s3 = store({ multipartThresholdBytes: 5 * MIB + 1, partSizeBytes: 5 * MIB });
      expect((await s3.putIfAbsent('big', big)).outcome).toBe('exists');
    });
  });

  it('lists across continuation tokens with keys relative to the prefix', async () => {
    const modified = new Date('2024-01-02T03:04:05Z');
    s3mock
      .on(ListObjectsV2Command)
      .resolvesOnce({
        Contents: [{ Key: 'tables/orders/segments/1', Size: 10, LastModified: modified }],
        IsTruncated: true,
        NextContinuationToken: 'token-1',
      })
      .resolvesOnce({ Contents: [{ Key: 'tables/orders/segments/2', Size: 20, LastModified: modified }] });
    const listed = [];
    for await (const info of store().list('segments/', { startAfter: 'segments/0' })) listed.push(info);
    expect(listed).toEqual([
      { key: 'segments/1', bytes: 10, checksum: undefined, lastModified: modified },
      { key: 'segments/2', bytes: 20, checksum: undefined, lastModified: modified },
    ]);
    const inputs = s3mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input);
    expect(inputs[0]).toMatchObject({
      Prefix: 'tables/orders/segments/',
      StartAfter: 'tables/orders/segments/0',
    });
    expect(inputs[0]?.ContinuationToken).toBeUndefined();
    expect(inputs[1]).toMatchObject({ ContinuationToken: 'token-1' });
  });

  describe('delete', () => {
    it('sends batches of 1000', async () => {
      s3mock.on(DeleteObjectsCommand).resolves({});
      const keys = Array.from({ length: 2500 }, (_, i) => `k/${i}`);
      await store().delete(keys);
      const sizes = s3mock
        .commandCalls(DeleteObjectsCommand)
        .map((c) => c.args[0].input.Delete?.Objects?.length);
      expect(sizes).toEqual([1000, 1000, 500]);
    });

    it('retries only the keys that failed with a transient error', async () => {
      s3mock
        .on(DeleteObjectsCommand)
        .resolvesOnce({ Errors: [{ Key: 'tables/orders/b', Code: 'InternalError', Message: 'try again' }] })
        .resolves({});
      await store().delete(['a', 'b']);
      const calls = s3mock.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input.Delete?.Objects);
      expect(calls).toEqual([
        [{ Key: 'tables/orders/a' }, { Key: 'tables/orders/b' }],
        [{ Key: 'tables/orders/b' }],
      ]);
    });

    it('reports per-key errors as ObjectStoreError', async () => {
      s3mock
        .on(DeleteObjectsCommand)
        .resolves({ Errors: [{ Key: 'tables/orders/b', Code: 'AccessDenied', Message: 'Access Denied' }] });
      const error = await store()
        .delete(['a', 'b'])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ObjectStoreError);
      expect(error).toMatchObject({
        retriable: false,
        context: { key: 's3://changelog-bucket/tables/orders/b' },
      });
      expect((error as Error).message).toContain('b: AccessDenied Access Denied');
      expect(s3mock.commandCalls(DeleteObjectsCommand)).toHaveLength(1);
    });
  });

  it('stops retrying when the signal aborts', async () => {
    s3mock.on(PutObjectCommand).rejects(awsError('ServiceUnavailable', 503));
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const s3 = store({ retry: { baseDelayMs: 50, retries: 10 } });
    const pending = s3.putIfAbsent('k', body, { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 20);
    await expect(pending).rejects.toBe(reason);
  });

  it('rejects invalid options and keys', () => {
    expect(() => store({ partSizeBytes: MIB })).toThrow(ConfigError);
    expect(() => store({ listPageSize: 0 })).toThrow(ConfigError);
    expect(store({ prefix: '/p/' }).url).toBe('s3://changelog-bucket/p');
    expect(store({ prefix: '' }).url).toBe('s3://changelog-bucket');
    return expect(store().putIfAbsent('../k', body)).rejects.toThrow(/invalid object key/);
  });
});
