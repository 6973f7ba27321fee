import { DynamoDBStreamsClient, GetRecordsCommand } from '@aws-sdk/client-dynamodb-streams';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterEach, describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { appendStreamRecords, type StreamRecordObject } from '../../../src/changelog/sdkRecordDecoder.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { StreamError } from '../../../src/support/errors.js';
import { type CannedStreamsServer, startCannedStreamsServer } from '../../helpers/cannedStreamsServer.js';
import { Sha256 } from '../../helpers/sha256.js';
import { generateRecords, getRecordsResponse } from '../../helpers/streamRecords.js';

const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret-test-key' };
const schema = parseKeySchema('pk:S,sk:N');
let server: CannedStreamsServer | undefined;
const clients: { destroy(): void }[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await server?.stop();
  server = undefined;
});

function sdkClient(endpoint: string): DynamoDBStreamsClient {
  const client = new DynamoDBStreamsClient({ region: 'eu-west-1', endpoint, credentials, maxAttempts: 1 });
  clients.push(client);
  return client;
}

function rawClient(sdk: DynamoDBStreamsClient): RawGetRecordsClient {
  const raw = new RawGetRecordsClient(sdk);
  clients.push(raw);
  return raw;
}

describe('RawGetRecordsClient', () => {
  it('sends a correctly SigV4-signed GetRecords and returns the raw body', async () => {
    const page = getRecordsResponse(generateRecords({ records: 20, seed: 3 }), 'next-iterator');
    server = await startCannedStreamsServer(() => ({ body: page }));
    const raw = rawClient(sdkClient(server.endpoint));
    const response = await raw.getRecords({ ShardIterator: 'iter-1', Limit: 500 });

    expect(Buffer.from(response.body).equals(Buffer.from(page))).toBe(true);
    expect(response.requestId).toBe('req-1');
    expect(response.serverTime).toBeInstanceOf(Date);
    const request = server.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.headers['x-amz-target']).toBe('DynamoDBStreams_20120810.GetRecords');
    expect(request.headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(JSON.parse(request.body.toString())).toEqual({ ShardIterator: 'iter-1', Limit: 500 });

    // Re-sign what the server received with the same key and date: the signatures must match,
    // so host, port, path, headers and body were canonicalised exactly as sent.
    const authorization = request.headers.authorization!;
    expect(authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/dynamodb\/aws4_request/,
    );
    const amzDate = request.headers['x-amz-date'] as string;
    const signingDate = new Date(
      `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
    );
    const verifier = new SignatureV4({
      credentials,
      region: 'eu-west-1',
      service: 'dynamodb',
      sha256: Sha256,
    });
    const url = new URL(server.endpoint);
    const resigned = await verifier.sign(
      {
        method: 'POST',
        protocol: url.protocol,
        hostname: url.hostname,
        port: Number(url.port),
        path: '/',
        query: {},
        headers: {
          host: request.headers.host!,
          'content-type': request.headers['content-type']!,
          'x-amz-target': request.headers['x-amz-target'] as string,
          'content-length': request.headers['content-length']!,
        },
        body: request.body,
      },
      { signingDate },
    );
    expect(resigned.headers.authorization).toBe(authorization);
  });

  it('returns the same records as the AWS SDK for the same responses', async () => {
    const pages = [1, 2, 3].map((p) =>
      getRecordsResponse(
        generateRecords({ records: 200, seed: p, startSequence: BigInt(p) * 10n ** 21n }),
        `it-${p}`,
      ),
    );
    let served = 0;
    server = await startCannedStreamsServer(() => ({ body: pages[served++ % pages.length]! }));
    const sdk = sdkClient(server.endpoint);
    const raw = rawClient(sdk);

    const viaRaw = new ChangeBuffer(schema);
    for (let p = 0; p < pages.length; p++) {
      const response = await raw.getRecords({ ShardIterator: `it-${p}` });
      decodeGetRecordsResponse(response.body, 'shardId-1', viaRaw);
    }
    const viaSdk = new ChangeBuffer(schema);
    for (let p = 0; p < pages.length; p++) {
      const output = await sdk.send(new GetRecordsCommand({ ShardIterator: `it-${p}` }));
      appendStreamRecords(output.Records as StreamRecordObject[], 'shardId-1', viaSdk);
    }
    expect(viaRaw.rowCount).toBe(600);
    expect(Buffer.from(encodeSegment(viaRaw).bytes).equals(Buffer.from(encodeSegment(viaSdk).bytes))).toBe(
      true,
    );
  });

  it('uses AWS_ENDPOINT_URL_DYNAMODB_STREAMS like the SDK does', async () => {
    server = await startCannedStreamsServer(() => ({ body: Buffer.from('{"Records":[]}') }));
    const previous = process.env.AWS_ENDPOINT_URL_DYNAMODB_STREAMS;
    process.env.AWS_ENDPOINT_URL_DYNAMODB_STREAMS = server.endpoint;
    try {
      const sdk = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
      clients.push(sdk);
      await rawClient(sdk).getRecords({ ShardIterator: 'x' });
      expect(server.requests).toHaveLength(1);
    } finally {
      if (previous === undefined) delete process.env.AWS_ENDPOINT_URL_DYNAMODB_STREAMS;
      else process.env.AWS_ENDPOINT_URL_DYNAMODB_STREAMS = previous;
    }
  });

  it.each([
    [400, 'ExpiredIteratorException', false],
    [400, 'TrimmedDataAccessException', false],
    [400, 'ResourceNotFoundException', false],
    [400, 'LimitExceededException', true],
    [400, 'ThrottlingException', true],
    [500, 'InternalServerError', true],
  ])('maps HTTP %i %s to a StreamError with the code (retriable: %s)', async (status, code, retriable) => {
    server = await startCannedStreamsServer(() => ({
      status,
      body: Buffer.from(
        JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${code}`, message: 'nope' }),
      ),
    }));
    const error = await rawClient(sdkClient(server.endpoint))
      .getRecords({ ShardIterator: 'x' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).code).toBe(code);
    expect((error as StreamError).retriable).toBe(retriable);
    expect((error as StreamError).message).toContain('nope');
  });

  it('rejects a body whose CRC32 does not match x-amz-crc32, as retriable', async () => {
    server = await startCannedStreamsServer(() => ({ body: Buffer.from('{"Records":[]}'), crc32: 12345 }));
    const error = await rawClient(sdkClient(server.endpoint))
      .getRecords({ ShardIterator: 'x' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).code).toBe('Crc32Mismatch');
    expect((error as StreamError).retriable).toBe(true);
  });

  it('reports a refused connection as a retriable network error, and honours abort', async () => {
    const dead = sdkClient('http://127.0.0.1:1');
    const error = await rawClient(dead)
      .getRecords({ ShardIterator: 'x' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).retriable).toBe(true);

    server = await startCannedStreamsServer(() => ({ body: Buffer.from('{"Records":[]}') }));
    const reason = new Error('shutdown');
    await expect(
      rawClient(sdkClient(server.endpoint)).getRecords({ ShardIterator: 'x' }, AbortSignal.abort(reason)),
    ).rejects.toBeDefined();
  });
});
