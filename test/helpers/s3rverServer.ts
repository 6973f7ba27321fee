import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  type LocalServer,
  startS3rver as startLocalS3rver,
} from '../../src/app/local/localServers.js';

export interface S3rverServer {
  endpoint: string;
  bucket: string;
  /** Path-style client with dummy credentials and no SDK retries (the stores retry themselves). */
  client: S3Client;
  stop(): Promise<void>;
}

/*
 * The same s3rver starter as `dynamodb-changelog local` (src/app/local/localServers.ts): in a child
 * process, because its ListObjectsV2 continuation tokens are DES-encrypted and OpenSSL 3 only
 * offers DES with --openssl-legacy-provider (in-process, every truncated listing fails with a 500,
 * jamhall/s3rver#818). The child exits when its stdin closes, so it does not outlive a crashed
 * test worker.
 */

/** A path-style client of the s3rver at `endpoint`: its fixed credentials, no SDK retries. */
export function s3rverClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: LOCAL_REGION,
    forcePathStyle: true,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
}

/** Starts s3rver on a free port over a fresh temp directory, with `bucket` created. */
export async function startS3rver(bucket = 'changelog-test'): Promise<S3rverServer> {
  const directory = await mkdtemp(path.join(tmpdir(), 's3rver-'));
  let server: LocalServer;
  try {
    server = await startLocalS3rver({
      module: createRequire(import.meta.url).resolve('s3rver'),
      directory,
      bucket,
    });
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const client = s3rverClient(server.endpoint);
  return {
    endpoint: server.endpoint,
    bucket,
    client,
    async stop() {
      client.destroy();
      await server.stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
