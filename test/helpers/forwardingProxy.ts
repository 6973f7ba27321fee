import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import zlib from 'node:zlib';

/*
 * The one HTTP forwarding proxy the test proxies are built on (streamsRewriteProxy, streamsTap,
 * faultProxy, and the DynamoDB half of streamsEmulator). It listens on 127.0.0.1:0 and, per
 * request, lets the proxy's `handle` hook look at it and either answer it itself or `forward` it
 * to the target: same method, path, headers (host included, so a SigV4 signature stays valid for
 * a store that checks it) and body, minus hop-by-hop headers. The answer streams back unchanged,
 * or, with `onAnswer`, is read whole and the hook rewrites it, replaces it or drops the
 * connection. What each proxy does differently (fault choice, rewrites, emulation) stays in its
 * file; no vitest import, so benchmark and chaos processes can use it.
 */

/** An upstream answer, read whole, as `onAnswer` sees it and returns it. */
export interface ProxyAnswer {
  status: number;
  statusMessage?: string | undefined;
  /** Hop-by-hop headers already removed; may be changed in place. */
  headers: http.OutgoingHttpHeaders;
  body: Buffer;
}

export interface ForwardOptions {
  /**
   * Ask the target for an uncompressed answer (drop `accept-encoding`), so `onAnswer` can read its
   * text. Off by default: the request's headers go as the client signed them.
   */
  identityEncoding?: boolean;
  /**
   * Reads the answer whole and returns what the client gets: the answer (changed in place or not),
   * another one, or 'drop' to close the client's connection without an answer (after the target
   * answered, so what it was asked to do is done). A body other than the target's gets its own
   * content-length, and a new `x-amz-crc32` when the answer carried one (the AWS JSON protocols'
   * integrity check). Without it the answer streams through as the target sends it.
   */
  onAnswer?: (answer: ProxyAnswer) => ProxyAnswer | 'drop';
}

/** One request, as the proxy's `handle` hook gets it. */
export interface ProxiedRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The request body read whole (`requestBody: 'buffer'`); undefined when it streams through. */
  readonly body: Buffer | undefined;
  /** Sends the request on to the target and relays its answer as `options` say. Call at most once. */
  forward(options?: ForwardOptions): void;
}

export interface ForwardingProxyOptions {
  /** The target's base URL, e.g. `http://127.0.0.1:8000`. */
  target: string;
  /** Names the proxy in its own error answers (`<name>: upstream failed: ...`). */
  name: string;
  /**
   * 'buffer' (default): each request body is read whole before `handle`, so it can be inspected,
   * and a request that met a keep-alive connection the target had just closed is sent again, once.
   * 'stream': bodies stream through (large uploads), never resent.
   */
  requestBody?: 'buffer' | 'stream';
  /** Connections to the target at the most. Default: no limit. */
  maxSockets?: number;
  /** Decides each request's fate. Default: forward it unchanged. */
  handle?: (request: ProxiedRequest) => void;
  /** Answers a request the target could not be reached for. Default: 502, text naming the proxy. */
  onUpstreamError?: (res: ServerResponse, error: Error) => void;
}

export interface ForwardingProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Stops listening, drops open (keep-alive) connections both ways and resolves once closed. */
  stop(): Promise<void>;
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

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
  }
  return out;
}

export async function startForwardingProxy(options: ForwardingProxyOptions): Promise<ForwardingProxy> {
  const upstream = new URL(options.target);
  const agent = new http.Agent({
    keepAlive: true,
    ...(options.maxSockets ? { maxSockets: options.maxSockets } : {}),
  });
  const buffered = (options.requestBody ?? 'buffer') === 'buffer';
  const handle = options.handle ?? ((request: ProxiedRequest) => request.forward());
  const onUpstreamError =
    options.onUpstreamError ??
    ((res: ServerResponse, error: Error) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`${options.name}: upstream failed: ${error.message}`);
    });

  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer | undefined,
    forwarding: ForwardOptions,
  ) {
    const headers = endToEnd(req.headers);
    if (forwarding.identityEncoding) delete headers['accept-encoding'];
    let outgoing: http.ClientRequest | undefined;
    // The client went away before its answer was complete: stop asking the target.
    res.once('close', () => {
      if (!res.writableFinished) outgoing?.destroy();
    });
    send(false);

    function send(retried: boolean): void {
      const request = http.request({
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
      });
      outgoing = request;
      request.on('response', (answer) => relay(answer));
      request.on('error', (error) => {
        if (request.reusedSocket && body !== undefined && !retried && !res.headersSent) {
          send(true);
          return;
        }
        if (res.headersSent) res.destroy();
        else onUpstreamError(res, error);
      });
      if (body === undefined) req.pipe(request);
      else request.end(body);
    }

    function relay(answer: IncomingMessage): void {
      answer.once('error', () => res.destroy());
      const { onAnswer } = forwarding;
      if (onAnswer === undefined) {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
        answer.pipe(res);
        return;
      }
      const parts: Buffer[] = [];
      answer.on('data', (c: Buffer) => parts.push(c));
      answer.once('end', () => {
        const original = Buffer.concat(parts);
        const decided = onAnswer({
          status: answer.statusCode ?? 502,
          statusMessage: answer.statusMessage,
          headers: endToEnd(answer.headers),
          body: original,
        });
        if (decided === 'drop') {
          req.socket.destroy();
          return;
        }
        const out = decided.headers;
        if (decided.body !== original) {
          delete out['transfer-encoding'];
          out['content-length'] = String(decided.body.length);
          if (out['x-amz-crc32'] !== undefined) out['x-amz-crc32'] = String(zlib.crc32(decided.body) >>> 0);
        }
        res.writeHead(decided.status, decided.statusMessage, out);
        res.end(decided.body);
      });
    }
  }

  const server = http.createServer((req, res) => {
    const start = (body: Buffer | undefined) => {
      let forwarded = false;
      handle({
        req,
        res,
        body,
        forward(forwarding = {}) {
          if (forwarded) throw new Error(`${options.name}: ${req.method} ${req.url} forwarded twice`);
          forwarded = true;
          forward(req, res, body, forwarding);
        },
      });
    };
    if (!buffered) {
      start(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => start(Buffer.concat(chunks)));
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Longer than an idle SDK client keeps a connection, so the proxy rarely closes one under it.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}
