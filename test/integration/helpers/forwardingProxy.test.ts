import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ForwardingProxy,
  type ForwardingProxyOptions,
  startForwardingProxy,
} from '../../helpers/forwardingProxy.js';

/*
 * The forwarding proxy every test proxy is built on (test/helpers/forwardingProxy.ts), against a
 * plain HTTP server on loopback that records what reached it: what it relays, rewrites and drops
 * is what the fault, tap, rewrite and emulator proxies promise their callers.
 */

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Upstream {
  url: string;
  seen: Seen[];
  stop(): Promise<void>;
}

type Answer = (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void;

const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function startUpstream(answer: Answer = defaultAnswer): Promise<Upstream> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => {
      const one = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(one);
      answer(req, res, one);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const url = await listen(server);
  const upstream = {
    url,
    seen,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
  stops.push(upstream.stop);
  return upstream;
}

function defaultAnswer(_req: http.IncomingMessage, res: http.ServerResponse, seen: Seen): void {
  const body = Buffer.from(`got ${seen.method} ${seen.url}: ${seen.body}`);
  res.writeHead(201, 'Made', {
    'content-type': 'text/plain',
    'x-amz-crc32': String(zlib.crc32(body) >>> 0),
    'x-upstream': 'yes',
  });
  res.end(body);
}

async function startProxy(
  target: string,
  options: Omit<ForwardingProxyOptions, 'target' | 'name'> = {},
): Promise<ForwardingProxy> {
  const proxy = await startForwardingProxy({ target, name: 'test proxy', ...options });
  stops.push(() => proxy.stop());
  return proxy;
}

interface Received {
  status: number;
  statusMessage: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(
  endpoint: string,
  request: {
    method?: string;
    path?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string;
    agent?: http.Agent;
  },
): Promise<Received> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${endpoint}${request.path ?? '/'}`, {
      method: request.method ?? 'POST',
      headers: request.headers ?? {},
      agent: request.agent ?? false,
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.once('error', reject);
    req.end(request.body ?? '');
  });
}

describe('forwardingProxy', () => {
  it.each(['buffer', 'stream'] as const)(
    'relays method, path, end-to-end headers and body both ways (request body: %s)',
    async (requestBody) => {
      const upstream = await startUpstream();
      const proxy = await startProxy(upstream.url, { requestBody });

      const got = await send(proxy.endpoint, {
        method: 'PUT',
        path: '/bucket/key?x=1',
        headers: { 'x-custom': 'kept', 'proxy-authorization': 'dropped', 'accept-encoding': 'gzip' },
        body: 'payload',
      });

      expect(got).toMatchObject({
        status: 201,
        statusMessage: 'Made',
        body: 'got PUT /bucket/key?x=1: payload',
      });
      expect(got.headers['x-upstream']).toBe('yes');
      const [seen] = upstream.seen;
      expect(seen?.headers['x-custom']).toBe('kept');
      // The client's host header goes on, so a signature made for the proxy's host stays valid.
      expect(seen?.headers.host).toBe(new URL(proxy.endpoint).host);
      expect(seen?.headers['accept-encoding']).toBe('gzip');
      expect(seen?.headers['proxy-authorization']).toBeUndefined();
    },
  );

  it('gives the hook the buffered body and lets it answer without the target', async () => {
    const upstream = await startUpstream();
    const bodies: (string | undefined)[] = [];
    const proxy = await startProxy(upstream.url, {
      handle({ req, res, body, forward }) {
        bodies.push(body?.toString());
        if (req.url === '/local') res.end('answered here');
        else forward();
      },
    });

    expect((await send(proxy.endpoint, { path: '/local', body: 'one' })).body).toBe('answered here');
    expect((await send(proxy.endpoint, { path: '/remote', body: 'two' })).body).toBe('got POST /remote: two');
    expect(bodies).toEqual(['one', 'two']);
    expect(upstream.seen.map((s) => s.url)).toEqual(['/remote']);
  });

  it('asks for identity encoding only when told', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy(upstream.url, {
      handle: ({ req, forward }) => forward({ identityEncoding: req.url === '/plain' }),
    });
    await send(proxy.endpoint, { path: '/plain', headers: { 'accept-encoding': 'gzip' } });
    await send(proxy.endpoint, { path: '/as-sent', headers: { 'accept-encoding': 'gzip' } });
    expect(upstream.seen.map((s) => s.headers['accept-encoding'])).toEqual([undefined, 'gzip']);
  });

  it('gives a rewritten answer its own content-length and x-amz-crc32, and leaves an unchanged one as sent', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy(upstream.url, {
      handle: ({ req, forward }) =>
        forward({
          onAnswer(answer) {
            if (req.url === '/rewrite') answer.body = Buffer.from(`${answer.body.toString()} (rewritten)`);
            if (req.url === '/replace')
              return { status: 500, headers: { 'content-type': 'text/plain' }, body: Buffer.from('no') };
            return answer;
          },
        }),
    });

    const rewritten = await send(proxy.endpoint, { path: '/rewrite', body: 'a' });
    expect(rewritten.body).toBe('got POST /rewrite: a (rewritten)');
    expect(rewritten.headers['content-length']).toBe(String(Buffer.byteLength(rewritten.body)));
    expect(rewritten.headers['x-amz-crc32']).toBe(String(zlib.crc32(rewritten.body) >>> 0));
    expect(rewritten.headers['x-upstream']).toBe('yes');

    const unchanged = await send(proxy.endpoint, { path: '/same', body: 'b' });
    expect(unchanged.body).toBe('got POST /same: b');
    expect(unchanged.headers['x-amz-crc32']).toBe(String(zlib.crc32(unchanged.body) >>> 0));

    const replaced = await send(proxy.endpoint, { path: '/replace' });
    expect(replaced).toMatchObject({ status: 500, body: 'no' });
    expect(replaced.headers['x-amz-crc32']).toBeUndefined();
    expect(replaced.headers['x-upstream']).toBeUndefined();
  });

  it("drops the client's connection after the target has answered", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy(upstream.url, {
      requestBody: 'stream',
      handle: ({ forward }) => forward({ onAnswer: () => 'drop' }),
    });
    await expect(send(proxy.endpoint, { method: 'PUT', path: '/k', body: 'stored' })).rejects.toThrow();
    expect(upstream.seen.map((s) => s.body)).toEqual(['stored']);
  });

  it.each([
    ['buffer', 200],
    ['stream', 502],
  ] as const)(
    'meets a keep-alive connection the target closed (request body: %s): resent once only when buffered',
    async (requestBody, status) => {
      // The target closes a connection as its second request arrives: the race a pooled
      // connection meets when the target's idle timeout fires just as it is reused.
      let closed = 0;
      const perSocket = new Map<Socket, number>();
      const upstream = await startUpstream((req, res, seen) => {
        const n = (perSocket.get(req.socket) ?? 0) + 1;
        perSocket.set(req.socket, n);
        if (n === 2 && closed === 0) {
          closed++;
          req.socket.destroy();
          return;
        }
        defaultAnswer(req, res, seen);
      });
      const proxy = await startProxy(upstream.url, { requestBody });

      expect((await send(proxy.endpoint, { body: 'first' })).status).toBe(201);
      const second = await send(proxy.endpoint, { body: 'second' });
      expect(closed).toBe(1);
      expect(second.status).toBe(status === 200 ? 201 : 502);
      if (status === 502) expect(second.body).toMatch(/^test proxy: upstream failed: /);
      else expect(second.body).toBe('got POST /: second');
    },
  );

  it('answers 502 naming the proxy when the target is unreachable, or as onUpstreamError says', async () => {
    const gone = http.createServer();
    const target = await listen(gone);
    await new Promise<void>((resolve) => gone.close(() => resolve()));

    const plain = await startProxy(target);
    const got = await send(plain.endpoint, {});
    expect(got.status).toBe(502);
    expect(got.body).toMatch(/^test proxy: upstream failed: connect ECONNREFUSED/);

    const custom = await startProxy(target, {
      onUpstreamError: (res, error) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ failed: error.message.split(' ')[0] }));
      },
    });
    expect(await send(custom.endpoint, {})).toMatchObject({ status: 500, body: '{"failed":"connect"}' });
  });

  it('refuses to forward one request twice', async () => {
    const upstream = await startUpstream();
    const errors: string[] = [];
    const proxy = await startProxy(upstream.url, {
      handle({ forward }) {
        forward();
        try {
          forward();
        } catch (error) {
          errors.push(String(error));
        }
      },
    });
    expect((await send(proxy.endpoint, { path: '/once' })).status).toBe(201);
    expect(errors).toEqual(['Error: test proxy: POST /once forwarded twice']);
    expect(upstream.seen).toHaveLength(1);
  });

  it('stops with a request in flight and idle keep-alive connections open', async () => {
    let arrived: () => void = () => undefined;
    const hangArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    // The target never answers /hang: the proxy has a request in flight when it stops.
    const upstream = await startUpstream((req, res, seen) => {
      if (req.url === '/hang') arrived();
      else defaultAnswer(req, res, seen);
    });
    const proxy = await startForwardingProxy({ target: upstream.url, name: 'test proxy' });
    const agent = new http.Agent({ keepAlive: true });
    stops.push(async () => agent.destroy());

    expect((await send(proxy.endpoint, { agent })).status).toBe(201);
    const hanging = send(proxy.endpoint, { path: '/hang', agent });
    await hangArrived;

    await proxy.stop();
    await expect(hanging).rejects.toThrow();
    await expect(send(proxy.endpoint, {})).rejects.toThrow(/ECONNREFUSED/);
  });
});
