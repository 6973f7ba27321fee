/** The S3 object store on the benchmark's s3rver, as the daemon would open it (path-style). */
import { S3ObjectStore } from '../../src/coordination/s3ObjectStore.js';
import { s3rverClient } from '../../test/helpers/s3rverServer.js';

export interface S3Target {
  endpoint: string;
  bucket: string;
}

export function openS3rverStore(target: S3Target, prefix: string): { store: S3ObjectStore; close(): void } {
  // s3rver accepts only its own fixed credentials; SDK retries off, as the daemon's store does.
  const client = s3rverClient(target.endpoint);
  const store = new S3ObjectStore({ bucket: target.bucket, prefix, client, forcePathStyle: true });
  return { store, close: () => client.destroy() };
}
