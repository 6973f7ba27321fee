import type { DestinationConfig } from './config.js';
import { LocalObjectStore } from './localObjectStore.js';
import { type ObjectStore, parseDestination } from './objectStore.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3ObjectStore.js';

export interface OpenObjectStoreOptions {
  /** Used for `s3://` destinations; bucket and prefix come from the URL. */
  s3?: Omit<S3ObjectStoreOptions, 'bucket' | 'prefix'>;
}

/** The store for a destination URL: `s3://bucket[/prefix]` or `file:///dir`. */
export function openObjectStore(url: string, options: OpenObjectStoreOptions = {}): ObjectStore {
  const destination = parseDestination(url);
  if (destination.kind === 's3') {
    return new S3ObjectStore({ ...options.s3, bucket: destination.bucket, prefix: destination.prefix });
  }
  return new LocalObjectStore({ dir: destination.dir });
}

/** The store for a destination group (`run`'s --destination and S3 settings). */
export function openDestination(destination: DestinationConfig): ObjectStore {
  return openObjectStore(destination.url, {
    s3: {
      forcePathStyle: destination.s3ForcePathStyle,
      expectedBucketOwner: destination.expectedBucketOwner,
      sseKmsKeyId: destination.sseKmsKeyId,
    },
  });
}
