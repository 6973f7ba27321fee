/** The S3 object store on the benchmark's s3rver, as the daemon would open it (path-style). */
import { S3Client } from '@aws-sdk/client-s3';
import { S3ObjectStore } from '../../src/coordination/s3ObjectStore.js';
import { REGION } from './localStack.js';

export interface S3Target {
  endpoint: string;
  bucket: string;
}

export function openS3rverStore(target: S3Target, prefix: string): { store: S3ObjectStore; close(): void } {
  // s3rver accepts only its own fixed credentials; SDK retries off, as the daemon's store does.
  const client = new S3Client({
    endpoint: target.endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    maxAttempts: 1,
  });
  const store = new S3ObjectStore({ bucket: target.bucket, prefix, client, forcePathStyle: true });
  return { store, close: () => client.destroy() };
}
