import type { IncomingMessage, ServerResponse } from 'node:http';
import { startForwardingProxy } from './forwardingProxy.js';

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
  const counts: FaultCounts = { requests: 0, writes: 0, injected503: 0, injectedResponseLost: 0 };
  let faultRate = 0;

  const proxy = await startForwardingProxy({
    target,
    name: 'fault proxy',
    // Object bodies stream through both ways (uploads of many MiB).
    requestBody: 'stream',
    handle({ req, res, forward }) {
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
      if (fault === 'none') {
        forward();
        return;
      }
      counts.injectedResponseLost++;
      // The store finishes (its whole answer is read) before the client is dropped: the write landed.
      forward({ onAnswer: () => 'drop' });
    },
  });

  return {
    endpoint: proxy.endpoint,
    counts,
    get faultRate() {
      return faultRate;
    },
    setFaultRate(p: number) {
      if (!(p >= 0 && p <= 1)) throw new RangeError(`fault rate must be in [0, 1], got ${p}`);
      faultRate = p;
    },
    stop: () => proxy.stop(),
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
