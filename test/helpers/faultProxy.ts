import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/*
 * A reverse proxy in front of an S3 endpoint (s3rver) that makes a share of object writes fail the
 * two ways a real S3 write fails from the writer's point of view:
 *
 * - `503 SlowDown`: the write never reached the store (S3 throttling). The request body is read to
 *   the end first, as S3 does, so the client sees a clean error response instead of a broken pipe.
 * - response lost: the write reached the store and was stored, then the connection dropped before
 *   the writer saw the answer. This is the case that makes a retried write meet its own object.
 *
 * Everything else passes through byte for byte: headers (host included, so a SigV4 signature stays
 * valid for stores that check it), streamed bodies both ways, status codes.
 */

export interface FaultCounts {
  /** Every request the proxy received. */
  requests: number;
  /** Requests that could have been faulted (object writes). */
  writes: number;
  injected503: number;
  injectedResponseLost: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: point the S3 client (AWS_ENDPOINT_URL_S3) here. */
  endpoint: string;
  /** Probability in [0, 1] that an object write is faulted; half of the faults are of each kind. */
  setFaultRate(p: number): void;
  readonly faultRate: number;
  /** Live counters (the same object is updated in place). */
  readonly counts: FaultCounts;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Uniform [0, 1) source for fault decisions; a seeded one makes the fault pattern repeatable. */
  random?: () => number;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message; a proxy drops them.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
]);

/**
 * Object writes: PUT (PutObject, UploadPart, CopyObject) and the multipart POSTs
 * (CreateMultipartUpload `?uploads`, CompleteMultipartUpload `?uploadId=`). Other POSTs such as
 * DeleteObjects (`?delete`) are not writes of an object and pass untouched.
 */
export function isObjectWrite(method: string | undefined, url: string | undefined): boolean {
  if (method === 'PUT') return true;
  if (method !== 'POST') return false;
  const query = new URL(url ?? '/', 'http://proxy').searchParams;
  return query.has('uploads') || query.has('uploadId');
}

export async function startFaultProxy(target: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const random = options.random ?? Math.random;
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const counts: FaultCounts = { requests: 0, writes: 0, injected503: 0, injectedResponseLost: 0 };
  let faultRate = 0;
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    counts.requests++;
    let fault: 'none' | '503' | 'lost' = 'none';
    if (isObjectWrite(req.method, req.url)) {
      counts.writes++;
      // One draw decides both whether and which, so the two kinds split the rate evenly.
      const r = random();
      if (r < faultRate / 2) fault = '503';
      else if (r < faultRate) fault = 'lost';
    }
    if (fault === '503') {
      counts.injected503++;
      replySlowDown(req, res, counts.injected503);
      return;
    }
    if (fault === 'lost') counts.injectedResponseLost++;
    forward(req, res, fault === 'lost');
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  function forward(req: IncomingMessage, res: ServerResponse, loseResponse: boolean): void {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    }
    const outgoing = http.request({
      protocol: upstream.protocol,
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
      agent,
    });
    outgoing.on('response', (answer) => {
      if (loseResponse) {
        // Let the store finish (read its whole answer) before dropping the client: the write landed.
        answer.resume();
        answer.once('end', () => req.socket.destroy());
        answer.once('error', () => req.socket.destroy());
        return;
      }
      const responseHeaders: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) responseHeaders[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders);
      answer.pipe(res);
      answer.once('error', () => res.destroy());
    });
    outgoing.on('error', (error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault proxy: upstream failed: ${error.message}`);
    });
    req.once('aborted', () => outgoing.destroy());
    req.pipe(outgoing);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    get faultRate() {
      return faultRate;
    },
    setFaultRate(p: number) {
      if (!(p >= 0 && p <= 1)) throw new RangeError(`fault rate must be in [0, 1], got ${p}`);
      faultRate = p;
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}

function replySlowDown(req: IncomingMessage, res: ServerResponse, n: number): void {
  const resource = new URL(req.url ?? '/', 'http://proxy').pathname;
  const requestId = `FAULTPROXY${String(n).padStart(6, '0')}`;
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>` +
    `<Resource>${escapeXml(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`;
  // Read the body to its end first, as S3 does, so the client is not cut off mid-upload.
  req.resume();
  req.once('end', () => {
    res.writeHead(503, {
      'content-type': 'application/xml',
      'content-length': Buffer.byteLength(body),
      'x-amz-request-id': requestId,
    });
    res.end(body);
  });
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
