import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { SignatureV4 } from '@smithy/signature-v4';
import { StreamError } from '../support/errors.js';
import { isTransientServiceError } from './awsCall.js';

/**
 * GetRecords without the AWS SDK's deserialiser. The SDK turns every record into objects at about
 * 300 us per record (~3,400 records/s per core); the change-segment decoder wants the response
 * bytes anyway. So this sends GetRecords itself: the same endpoint, region and credentials as the
 * SDK client it is given, signed with the SDK's own SigV4 signer, over keep-alive HTTP, and hands
 * back the raw body. Every other Streams call keeps using the SDK client.
 */

export interface RawGetRecordsResponse {
  /** The response body: a GetRecords JSON document, for `decodeGetRecordsResponse`. */
  body: Uint8Array;
  /** The service's `Date` header: "now" on DynamoDB's clock (used as "caught up at" time). */
  serverTime: Date | undefined;
  requestId: string | undefined;
}

export interface GetRecordsInput {
  ShardIterator: string;
  /** At most 1000 (the service's limit). */
  Limit?: number;
}

interface Target {
  url: URL;
  signer: SignatureV4;
  agent: http.Agent;
}

const TARGET = 'DynamoDBStreams_20120810.GetRecords';

/**
 * SHA-256 in the `Checksum` shape the SigV4 signer constructs (`new Sha256(secret?)`; a secret
 * means HMAC), on Node's native crypto.
 */
class NodeSha256 {
  private hash: Hash | Hmac;

  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.create();
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBytes(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }

  reset(): void {
    this.hash = this.create();
  }

  private create(): Hash | Hmac {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(this.secret));
  }
}

function toBytes(data: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export class RawGetRecordsClient {
  private target: Promise<Target> | undefined;

  constructor(private readonly sdk: DynamoDBStreamsClient) {}

  /**
   * Sends GetRecords once and returns the raw response body. Service errors become StreamError,
   * `retriable` by awsCall's predicate; the reader's own retry() is the one layer that retries it.
   */
  async getRecords(input: GetRecordsInput, signal?: AbortSignal): Promise<RawGetRecordsResponse> {
    const target = await this.resolveTarget();
    const body = Buffer.from(
      JSON.stringify({ ShardIterator: input.ShardIterator, Limit: input.Limit ?? 1000 }),
    );
    const { url, signer, agent } = target;
    const signed = await signer.sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      path: url.pathname,
      query: {},
      headers: {
        host: url.host,
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': TARGET,
        'content-length': String(body.length),
      },
      body,
    });
    const response = await send(url, agent, signed.headers, body, signal);
    return checkResponse(response);
  }

  /** Destroys the keep-alive connections. */
  destroy(): void {
    void this.target?.then((t) => t.agent.destroy());
  }

  private resolveTarget(): Promise<Target> {
    this.target ??= resolveTarget(this.sdk).catch((error: unknown) => {
      this.target = undefined;
      throw error;
    });
    return this.target;
  }
}

/** Endpoint and signer exactly as the SDK client resolves them (explicit, env var, or regional). */
async function resolveTarget(sdk: DynamoDBStreamsClient): Promise<Target> {
  const config = sdk.config as unknown as {
    region: () => Promise<string>;
    credentials: ConstructorParameters<typeof SignatureV4>[0]['credentials'];
    endpoint?: () => Promise<{ protocol: string; hostname: string; port?: number; path: string }>;
    serviceConfiguredEndpoint?: () => Promise<string | undefined>;
    useFipsEndpoint: () => Promise<boolean>;
    useDualstackEndpoint: () => Promise<boolean>;
    endpointProvider: (params: Record<string, unknown>) => { url: URL };
  };
  const region = await config.region();
  let url: URL;
  const explicit = config.endpoint ? await config.endpoint() : undefined;
  const fromEnv = config.serviceConfiguredEndpoint ? await config.serviceConfiguredEndpoint() : undefined;
  if (explicit) {
    const port = explicit.port ? `:${explicit.port}` : '';
    url = new URL(`${explicit.protocol}//${explicit.hostname}${port}${explicit.path || '/'}`);
  } else if (fromEnv) {
    url = new URL(fromEnv);
  } else {
    url = config.endpointProvider({
      Region: region,
      UseFIPS: await config.useFipsEndpoint(),
      UseDualStack: await config.useDualstackEndpoint(),
    }).url;
  }
  const signer = new SignatureV4({
    credentials: config.credentials,
    region,
    // DynamoDB Streams requests are signed for the "dynamodb" service.
    service: 'dynamodb',
    sha256: NodeSha256 as never,
  });
  const Agent = url.protocol === 'https:' ? https.Agent : http.Agent;
  return { url, signer, agent: new Agent({ keepAlive: true, maxSockets: 64 }) };
}

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function send(
  url: URL,
  agent: http.Agent,
  headers: Record<string, string>,
  body: Buffer,
  signal: AbortSignal | undefined,
): Promise<HttpResult> {
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<HttpResult>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, agent, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      reject(
        new StreamError('NetworkError', `GetRecords to ${url.host} failed: ${error.message}`, {
          cause: error,
          retriable: true,
        }),
      );
    });
    req.end(body);
  });
}

function checkResponse(response: HttpResult): RawGetRecordsResponse {
  const requestId = header(response.headers, 'x-amzn-requestid');
  const dateHeader = header(response.headers, 'date');
  const serverTime = dateHeader ? new Date(dateHeader) : undefined;
  if (response.status !== 200) throw serviceError(response, requestId);
  // DynamoDB sends a CRC32 of the body; a mismatch means the bytes were damaged in transit.
  const expected = header(response.headers, 'x-amz-crc32');
  if (expected !== undefined) {
    const actual = zlib.crc32(response.body) >>> 0;
    if (actual !== Number(expected)) {
      throw new StreamError(
        'Crc32Mismatch',
        `GetRecords response CRC32 ${actual} does not match x-amz-crc32 ${expected}`,
        {
          retriable: true,
        },
      );
    }
  }
  return {
    body: response.body,
    serverTime: serverTime && !Number.isNaN(serverTime.getTime()) ? serverTime : undefined,
    requestId,
  };
}

/** Turns an AWS JSON error response into a StreamError carrying the service's error code. */
function serviceError(response: HttpResult, requestId: string | undefined): StreamError {
  let code = `Http${response.status}`;
  let message = response.body.toString('utf8').slice(0, 500);
  try {
    const parsed = JSON.parse(response.body.toString('utf8')) as {
      __type?: string;
      message?: string;
      Message?: string;
    };
    if (parsed.__type) code = parsed.__type.slice(parsed.__type.lastIndexOf('#') + 1);
    message = parsed.message ?? parsed.Message ?? message;
  } catch {
    // Not JSON (a proxy's error page): keep the status and the start of the body.
  }
  const headerCode = header(response.headers, 'x-amzn-errortype');
  if (code.startsWith('Http') && headerCode) code = headerCode.split(':')[0]!;
  return new StreamError(
    code,
    `GetRecords failed: ${code}: ${message}${requestId ? ` (request ${requestId})` : ''}`,
    {
      retriable: isTransientServiceError(code, response.status),
    },
  );
}

function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
