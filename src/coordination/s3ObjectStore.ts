import { randomBytes } from 'node:crypto';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ConfigError, ObjectConflictError, ObjectStoreError } from '../support/errors.js';
import type { RetryOptions } from '../support/retry.js';
import { awsCall, isNotFound, isPreconditionFailed } from './awsCall.js';
import {
  assertValidKey,
  assertValidPrefix,
  checksumHex,
  joinKey,
  type ListOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
  sha256Checksum,
} from './objectStore.js';

/**
 * How create-only writes are enforced.
 * - `if-none-match`: `If-None-Match: *` on the PUT (or CompleteMultipartUpload); the store refuses
 *   atomically when the key exists. AWS S3 supports this.
 * - `head-compare`: HEAD, then PUT when nothing is there, for stores that ignore the header.
 * - `auto`: probe the store once and pick one of the above.
 */
export type ConditionalWriteMode = 'auto' | 'if-none-match' | 'head-compare';

export interface S3ObjectStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/`. */
  prefix?: string;
  /** Injected client; the store then leaves closing it to the caller. */
  client?: S3Client;
  forcePathStyle?: boolean;
  /** Sent as ExpectedBucketOwner on every call, so a bucket that changed hands is refused. */
  expectedBucketOwner?: string;
  /** Encrypt new objects with this KMS key (SSE-KMS). */
  sseKmsKeyId?: string;
  /** Bodies larger than this go through a multipart upload. Default 16 MiB. */
  multipartThresholdBytes?: number;
  /** Multipart part size; S3 requires at least 5 MiB. Default 8 MiB. */
  partSizeBytes?: number;
  conditionalWrites?: ConditionalWriteMode;
  /** Back-off for every call. A signal here aborts all calls, alongside each call's own signal. */
  retry?: RetryOptions;
  /** ListObjectsV2 page size (MaxKeys). S3 caps it at 1000; tests lower it to exercise paging. */
  listPageSize?: number;
}

const MIB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MIB;
const DELETE_BATCH = 1000;
// Per-key DeleteObjects error codes that say the same request may succeed later.
const RETRIABLE_DELETE_CODES = new Set([
  'InternalError',
  'SlowDown',
  'ServiceUnavailable',
  'OperationAborted',
]);

type WriteOutcome = 'written' | 'precondition-failed';

/** An ObjectStore on S3 or an S3-compatible service. */
export class S3ObjectStore implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly ownsClient: boolean;
  private readonly expectedBucketOwner: string | undefined;
  private readonly sseKmsKeyId: string | undefined;
  private readonly multipartThresholdBytes: number;
  private readonly partSizeBytes: number;
  private readonly configuredMode: ConditionalWriteMode;
  private readonly retryOptions: RetryOptions;
  private readonly listPageSize: number;
  private probe: Promise<'if-none-match' | 'head-compare'> | undefined;

  constructor(options: S3ObjectStoreOptions) {
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    const multipartThresholdBytes = options.multipartThresholdBytes ?? 16 * MIB;
    const partSizeBytes = options.partSizeBytes ?? 8 * MIB;
    const listPageSize = options.listPageSize ?? 1000;
    const issues: string[] = [];
    if (options.bucket === '') issues.push('S3 bucket must not be empty');
    if (prefix !== '') {
      try {
        assertValidKey(prefix);
      } catch (error) {
        issues.push(`S3 prefix "${prefix}" is invalid: ${(error as Error).message}`);
      }
    }
    if (!Number.isInteger(multipartThresholdBytes) || multipartThresholdBytes < 1) {
      issues.push(`multipartThresholdBytes must be a positive integer, got ${multipartThresholdBytes}`);
    }
    if (!Number.isInteger(partSizeBytes) || partSizeBytes < MIN_PART_SIZE) {
      issues.push(
        `partSizeBytes must be an integer of at least ${MIN_PART_SIZE} (5 MiB), got ${partSizeBytes}`,
      );
    }
    if (!Number.isInteger(listPageSize) || listPageSize < 1 || listPageSize > 1000) {
      issues.push(`listPageSize must be an integer from 1 to 1000, got ${listPageSize}`);
    }
    if (issues.length > 0) throw new ConfigError(issues);

    this.bucket = options.bucket;
    this.prefix = prefix;
    this.url = prefix === '' ? `s3://${options.bucket}` : `s3://${options.bucket}/${prefix}`;
    this.ownsClient = options.client === undefined;
    // The SDK's own retries would multiply with retry() below; one retry policy is easier to reason about.
    this.client = options.client ?? new S3Client({ forcePathStyle: options.forcePathStyle, maxAttempts: 1 });
    this.expectedBucketOwner = options.expectedBucketOwner;
    this.sseKmsKeyId = options.sseKmsKeyId;
    this.multipartThresholdBytes = multipartThresholdBytes;
    this.partSizeBytes = partSizeBytes;
    this.configuredMode = options.conditionalWrites ?? 'auto';
    this.retryOptions = options.retry ?? {};
    this.listPageSize = listPageSize;
  }

  async putIfAbsent(key: string, body: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    assertValidKey(key);
    const { signal } = options;
    const checksum = sha256Checksum(body);
    const created: PutResult = { key, bytes: body.byteLength, checksum, outcome: 'created' };
    const mode = await this.conditionalWriteMode(signal);

    if (mode === 'head-compare') {
      // Race window: another writer can create the key between our HEAD and PUT, and the later PUT
      // then replaces it. Only used for stores that ignore If-None-Match (local fakes such as s3rver),
      // where a single writer per destination is the norm.
      const existing = await this.compareExisting(key, checksum, body.byteLength, signal);
      if (existing !== undefined) return existing;
      await this.write(key, body, checksum, options, false);
      return created;
    }

    if ((await this.write(key, body, checksum, options, true)) === 'written') return created;
    // 412: something is at the key, maybe our own earlier attempt whose response was lost.
    const existing = await this.compareExisting(key, checksum, body.byteLength, signal);
    if (existing !== undefined) return existing;
    throw new ObjectStoreError(
      `PUT ${this.location(key)} was refused because the object exists, but it was gone when checked; try again`,
      { key: this.location(key), retriable: true },
    );
  }

  /**
   * The create-only strategy in effect. With `auto` the first call probes the store: it writes a
   * probe object twice with `If-None-Match: *`; a 412 on the second write means the store honours
   * the header. One probe per store instance; concurrent callers share it.
   */
  async conditionalWriteMode(signal?: AbortSignal): Promise<'if-none-match' | 'head-compare'> {
    if (this.configuredMode !== 'auto') return this.configuredMode;
    if (this.probe === undefined) {
      // Not tied to the first caller's signal: its abort must not fail everyone sharing the probe.
      this.probe = this.probeConditionalWrites().catch((error: unknown) => {
        this.probe = undefined;
        throw error;
      });
    }
    return abortable(this.probe, signal);
  }

  async get(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    assertValidKey(key);
    return this.call('GET', key, signal, async (s) => {
      let response: GetObjectCommandOutput;
      try {
        response = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), ...this.ownerParams() }),
          { abortSignal: s },
        );
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
      const bytes = (await response.Body?.transformToByteArray()) ?? new Uint8Array(0);
      const expected = response.Metadata?.['sha256'];
      const actual = checksumHex(sha256Checksum(bytes));
      if (expected !== undefined && expected !== actual) {
        // Retriable: most likely corrupted in transit; a corrupt stored object fails every attempt.
        throw new ObjectStoreError(
          `GET ${this.location(key)} returned content with sha256 ${actual}, but the object records ${expected}`,
          { key: this.location(key), retriable: true },
        );
      }
      return bytes;
    });
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    return this.call('HEAD', key, signal, async (s) => {
      try {
        const response = await this.client.send(
          new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), ...this.ownerParams() }),
          { abortSignal: s },
        );
        const hex = response.Metadata?.['sha256'];
        return {
          key,
          bytes: response.ContentLength ?? 0,
          checksum: hex === undefined ? undefined : `sha256:${hex}`,
          lastModified: response.LastModified ?? new Date(0),
        };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    assertValidPrefix(prefix);
    const { startAfter, signal } = options;
    // With an empty list prefix this is `prefix/`, so a sibling `prefix2/...` is not listed.
    const fullPrefix = this.prefix === '' ? prefix : `${this.prefix}/${prefix}`;
    const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
    let continuationToken: string | undefined;
    do {
      const page = await this.call('LIST', prefix, signal, (s) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: fullPrefix === '' ? undefined : fullPrefix,
            StartAfter: startAfter ? this.fullKey(startAfter) : undefined,
            ContinuationToken: continuationToken,
            MaxKeys: this.listPageSize,
            ...this.ownerParams(),
          }),
          { abortSignal: s },
        ),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          key: object.Key.slice(strip),
          bytes: object.Size ?? 0,
          checksum: undefined,
          lastModified: object.LastModified ?? new Date(0),
        };
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && continuationToken === undefined) {
        throw new ObjectStoreError(
          `LIST ${this.location(prefix)} was truncated without a continuation token`,
          {
            key: this.location(prefix),
            retriable: false,
          },
        );
      }
    } while (continuationToken !== undefined);
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    for (const key of keys) assertValidKey(key);
    const unique = [...new Set(keys)];
    for (let start = 0; start < unique.length; start += DELETE_BATCH) {
      await this.deleteBatch(unique.slice(start, start + DELETE_BATCH), signal);
    }
  }

  close(): void {
    if (this.ownsClient) this.client.destroy();
  }

  private async deleteBatch(batch: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    // Each attempt re-sends only the keys that failed in the previous one.
    let pending = batch;
    await this.call('DELETE', batch[0] ?? '', signal, async (s) => {
      const response = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: pending.map((key) => ({ Key: this.fullKey(key) })), Quiet: true },
          ...this.ownerParams(),
        }),
        { abortSignal: s },
      );
      const errors = (response.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length === 0) return;
      const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
      const failed = errors.map((e) => (e.Key ?? '').slice(strip));
      pending = failed.filter((key) => key !== '');
      const details = errors
        .slice(0, 5)
        .map((e, i) => `${failed[i]}: ${e.Code ?? 'Unknown'} ${e.Message ?? ''}`.trim())
        .join('; ');
      throw new ObjectStoreError(
        `DELETE of ${errors.length} of ${batch.length} objects in ${this.url} failed: ${details}`,
        {
          key: this.location(failed[0] ?? ''),
          retriable: pending.length > 0 && errors.some((e) => RETRIABLE_DELETE_CODES.has(e.Code ?? '')),
        },
      );
    });
  }

  /** `exists` when an identical object is at `key`, undefined when none; throws on different content. */
  private async compareExisting(
    key: string,
    checksum: string,
    bytes: number,
    signal: AbortSignal | undefined,
  ): Promise<PutResult | undefined> {
    const info = await this.head(key, signal);
    if (info === undefined) return undefined;
    let existing = info.checksum;
    if (existing === undefined) {
      // Written by something other than this store: no sha256 metadata, so hash the content.
      const content = await this.get(key, signal);
      if (content === undefined) return undefined;
      existing = sha256Checksum(content);
    }
    if (existing !== checksum) throw new ObjectConflictError(this.location(key), checksum, existing);
    return { key, bytes, checksum, outcome: 'exists' };
  }

  /** One PUT (or multipart upload); with `ifNoneMatch`, a 412 is an outcome rather than an error. */
  private write(
    key: string,
    body: Uint8Array,
    checksum: string,
    options: PutOptions,
    ifNoneMatch: boolean,
  ): Promise<WriteOutcome> {
    const params: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: this.fullKey(key),
      Body: body,
      ContentType: options.contentType ?? 'application/octet-stream',
      // Recorded so HEAD can compare content without downloading it.
      Metadata: { sha256: checksumHex(checksum) },
      ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      ...this.ownerParams(),
      ...(this.sseKmsKeyId === undefined
        ? {}
        : { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: this.sseKmsKeyId }),
    };
    return this.call('PUT', key, options.signal, async (s) => {
      try {
        if (body.byteLength > this.multipartThresholdBytes) {
          await this.multipartUpload(params, s);
        } else {
          // S3 verifies this digest and rejects a body damaged in transit. Not on multipart: lib-storage
          // spreads params into every UploadPart, where a whole-object digest would be wrong.
          const digest = Buffer.from(checksumHex(checksum), 'hex').toString('base64');
          await this.client.send(new PutObjectCommand({ ...params, ChecksumSHA256: digest }), {
            abortSignal: s,
          });
        }
        return 'written';
      } catch (error) {
        if (ifNoneMatch && isPreconditionFailed(error)) return 'precondition-failed';
        throw error;
      }
    });
  }

  private async multipartUpload(
    params: PutObjectCommandInput,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const abortController = new AbortController();
    const onAbort = () => abortController.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // lib-storage spreads params into CompleteMultipartUpload, so IfNoneMatch makes the completion
      // create-only; leavePartsOnError false makes it abort the upload (and free the parts) on failure.
      await new Upload({
        client: this.client,
        params,
        partSize: this.partSizeBytes,
        queueSize: 4,
        leavePartsOnError: false,
        abortController,
      }).done();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private async probeConditionalWrites(): Promise<'if-none-match' | 'head-compare'> {
    const key = `_probe/${randomBytes(8).toString('hex')}`;
    const body = new TextEncoder().encode('dynamodb-changelog conditional write probe\n');
    const checksum = sha256Checksum(body);
    await this.write(key, body, checksum, {}, true);
    const second = await this.write(key, body, checksum, {}, true);
    try {
      await this.delete([key]);
    } catch {
      // A leftover probe object is a few bytes under _probe/ and harms nothing; the answer stands.
    }
    return second === 'precondition-failed' ? 'if-none-match' : 'head-compare';
  }

  /**
   * Runs one S3 call through awsCall (transient faults and 409 conflicts retried there), failures
   * translated into ObjectStoreError; ours already carry context and pass as they are.
   */
  private call<T>(
    operation: string,
    key: string,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    return awsCall(fn, {
      retry: this.retryOptions,
      signal,
      wrap: (error, description, retriable) => {
        const location = this.location(key);
        return new ObjectStoreError(`${operation} ${location} failed: ${description}`, {
          key: location,
          cause: error,
          retriable,
        });
      },
    });
  }

  private fullKey(key: string): string {
    return joinKey(this.prefix, key);
  }

  private location(key: string): string {
    return key === '' ? this.url : `${this.url}/${key}`;
  }

  private ownerParams(): { ExpectedBucketOwner?: string } {
    return this.expectedBucketOwner === undefined ? {} : { ExpectedBucketOwner: this.expectedBucketOwner };
  }
}

/** `promise`, or a rejection with the signal's reason as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
