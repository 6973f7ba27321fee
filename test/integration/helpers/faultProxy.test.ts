import { randomBytes } from 'node:crypto';
import {
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, isObjectWrite, startFaultProxy } from '../../helpers/faultProxy.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';

/*
 * The fault proxy against a real s3rver: it must be invisible at rate 0 and produce exactly the two
 * documented faults otherwise, because the chaos test's claims rest on what it injects.
 */

describe('faultProxy', () => {
  let s3rver: S3rverServer;
  let proxy: FaultProxy;
  let viaProxy: S3Client;
  /** Decides the next fault draws: a test sets the values the proxy's random() returns. */
  let draws: number[] = [];

  beforeAll(async () => {
    s3rver = await startS3rver('fault-proxy-test');
    proxy = await startFaultProxy(s3rver.endpoint, { random: () => draws.shift() ?? 0.99 });
    viaProxy = new S3Client({
      endpoint: proxy.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      maxAttempts: 1,
    });
  });

  afterEach(() => {
    proxy.setFaultRate(0);
    draws = [];
  });

  afterAll(async () => {
    viaProxy?.destroy();
    await proxy?.stop();
    await s3rver?.stop();
  });

  const bucket = () => s3rver.bucket;

  async function storedBody(key: string): Promise<Buffer | undefined> {
    try {
      const got = await s3rver.client.send(new GetObjectCommand({ Bucket: bucket(), Key: key }));
      return Buffer.from(await got.Body!.transformToByteArray());
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) return undefined;
      throw error;
    }
  }

  it('passes every request through unchanged at rate 0, large streamed bodies included', async () => {
    const small = Buffer.from('hello through the proxy');
    // Above the SDK's Expect: 100-continue threshold, so that handshake goes through the proxy too.
    const large = randomBytes(3 * 1024 * 1024);
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket(), Key: 'pass/small', Body: small }));
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket(), Key: 'pass/large', Body: large }));

    expect(await storedBody('pass/small')).toEqual(small);
    // Buffer.equals, not toEqual: a deep compare of 3 MiB blocks the loop for seconds, long enough
    // for idle keep-alive sockets to be closed under the next request.
    expect((await storedBody('pass/large'))?.equals(large)).toBe(true);
    const got = await viaProxy.send(new GetObjectCommand({ Bucket: bucket(), Key: 'pass/large' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(large)).toBe(true);
    const head = await viaProxy.send(new HeadObjectCommand({ Bucket: bucket(), Key: 'pass/small' }));
    expect(head.ContentLength).toBe(small.length);
    const listed = await viaProxy.send(new ListObjectsV2Command({ Bucket: bucket(), Prefix: 'pass/' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['pass/large', 'pass/small']);
    expect(proxy.counts.injected503 + proxy.counts.injectedResponseLost).toBe(0);
  });

  it('answers 503 SlowDown without forwarding the write', async () => {
    proxy.setFaultRate(1);
    draws = [0.1]; // below rate/2: the 503 kind
    const before = { ...proxy.counts };
    const error = await viaProxy
      .send(new PutObjectCommand({ Bucket: bucket(), Key: 'fault/503', Body: 'never stored' }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(S3ServiceException);
    expect((error as S3ServiceException).name).toBe('SlowDown');
    expect((error as S3ServiceException).$metadata.httpStatusCode).toBe(503);
    expect(await storedBody('fault/503')).toBeUndefined();
    expect(proxy.counts.injected503).toBe(before.injected503 + 1);
    expect(proxy.counts.injectedResponseLost).toBe(before.injectedResponseLost);
  });

  it('stores the write, then drops the connection before the response', async () => {
    proxy.setFaultRate(1);
    draws = [0.9]; // between rate/2 and rate: the response-lost kind
    const before = { ...proxy.counts };
    const body = Buffer.from('stored, but the writer never hears so');
    const error = await viaProxy
      .send(new PutObjectCommand({ Bucket: bucket(), Key: 'fault/lost', Body: body }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(Error);
    // A transport error, not an S3 answer: the writer cannot know whether the write landed.
    expect(error).not.toBeInstanceOf(S3ServiceException);
    expect(await storedBody('fault/lost')).toEqual(body);
    expect(proxy.counts.injectedResponseLost).toBe(before.injectedResponseLost + 1);
    expect(proxy.counts.injected503).toBe(before.injected503);
  });

  it('faults multipart POSTs but never reads, lists or DeleteObjects', async () => {
    await s3rver.client.send(new PutObjectCommand({ Bucket: bucket(), Key: 'reads/a', Body: 'a' }));
    proxy.setFaultRate(1);
    draws = [0.1];
    await expect(
      viaProxy.send(new CreateMultipartUploadCommand({ Bucket: bucket(), Key: 'fault/multipart' })),
    ).rejects.toMatchObject({ name: 'SlowDown' });

    const before = { ...proxy.counts };
    draws = [0.1, 0.1, 0.1, 0.1];
    await viaProxy.send(new GetObjectCommand({ Bucket: bucket(), Key: 'reads/a' }));
    await viaProxy.send(new HeadObjectCommand({ Bucket: bucket(), Key: 'reads/a' }));
    await viaProxy.send(new ListObjectsV2Command({ Bucket: bucket(), Prefix: 'reads/' }));
    await viaProxy.send(
      new DeleteObjectsCommand({ Bucket: bucket(), Delete: { Objects: [{ Key: 'reads/a' }] } }),
    );
    expect(proxy.counts.requests).toBe(before.requests + 4);
    expect(proxy.counts.injected503).toBe(before.injected503);
    expect(proxy.counts.injectedResponseLost).toBe(before.injectedResponseLost);
    expect(await storedBody('reads/a')).toBeUndefined();
  });

  it('classifies object writes by method and query', () => {
    expect(isObjectWrite('PUT', '/b/k')).toBe(true);
    expect(isObjectWrite('PUT', '/b/k?partNumber=1&uploadId=x')).toBe(true);
    expect(isObjectWrite('POST', '/b/k?uploads')).toBe(true);
    expect(isObjectWrite('POST', '/b/k?uploadId=x')).toBe(true);
    expect(isObjectWrite('POST', '/b?delete')).toBe(false);
    expect(isObjectWrite('GET', '/b/k')).toBe(false);
    expect(isObjectWrite('HEAD', '/b/k')).toBe(false);
    expect(isObjectWrite('DELETE', '/b/k')).toBe(false);
  });
});
