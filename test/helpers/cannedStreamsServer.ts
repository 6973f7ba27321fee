import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';

/**
 * A local HTTP server that answers DynamoDB Streams GetRecords with canned responses, on loopback.
 * `respond` decides each answer; the server adds x-amz-crc32 (as DynamoDB does) unless told not to.
 */
export interface CannedRequest {
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  method: string;
  url: string;
}

export interface CannedResponse {
  status?: number;
  body: Uint8Array;
  headers?: Record<string, string>;
  /** Send this CRC32 instead of the body's real one (to simulate damage in transit). */
  crc32?: number;
}

export interface CannedStreamsServer {
  endpoint: string;
  requests: CannedRequest[];
  stop(): Promise<void>;
}

export async function startCannedStreamsServer(
  respond: (request: CannedRequest) => CannedResponse,
  options: { keepRequests?: boolean } = {},
): Promise<CannedStreamsServer> {
  const requests: CannedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = {
        headers: req.headers,
        body: Buffer.concat(chunks),
        method: req.method ?? '',
        url: req.url ?? '',
      };
      if (options.keepRequests !== false) requests.push(request);
      const answer = respond(request);
      const body = Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength);
      res.writeHead(answer.status ?? 200, {
        'content-type': 'application/x-amz-json-1.0',
        'content-length': String(body.length),
        'x-amzn-requestid': `req-${requests.length}`,
        'x-amz-crc32': String(answer.crc32 ?? zlib.crc32(body) >>> 0),
        date: new Date().toUTCString(),
        ...answer.headers,
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
