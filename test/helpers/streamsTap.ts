import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/*
 * A pass-through proxy in front of a DynamoDB Streams endpoint (the many-shard emulator) that
 * watches, per shard, when readers first asked for its records and when its last page was served.
 * The chaos scenario measures with it how long a child shard waits after its parent ended (the
 * "child start latency"), and checks invariant 4 from the outside: no GetRecords on a child before
 * its parent's final page (the answer without NextShardIterator) was served.
 *
 * Shards are known from the protocol alone, never from the iterator's (opaque) text: a
 * GetShardIterator request names its shard and its answer the iterator; each GetRecords answer's
 * NextShardIterator belongs to the shard of the iterator that was asked for.
 *
 * Requests and answers are relayed whole (Streams requests are small, answers at most ~1 MB), with
 * the same status, headers and bytes. Times are Date.now() of this process.
 */

export interface StreamsTapCounts {
  requests: number;
  getRecords: number;
  /** GetRecords calls whose iterator the tap never saw issued (should stay 0). */
  unknownIterators: number;
}

export interface StreamsTap {
  /** `http://127.0.0.1:<port>`: give it as AWS_ENDPOINT_URL_DYNAMODB_STREAMS. */
  readonly endpoint: string;
  /** Per shard: when the first GetRecords for it arrived (whatever its answer). */
  readonly firstGetRecords: ReadonlyMap<string, number>;
  /** Per shard: when an answer without NextShardIterator (the shard's end) was first served. */
  readonly endServed: ReadonlyMap<string, number>;
  readonly counts: StreamsTapCounts;
  stop(): Promise<void>;
}

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
const STREAMS_PREFIX = 'DynamoDBStreams_20120810.';
const NEXT = '"NextShardIterator":';

export async function startStreamsTap(target: string): Promise<StreamsTap> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const counts: StreamsTapCounts = { requests: 0, getRecords: 0, unknownIterators: 0 };
  const shardOfIterator = new Map<string, string>();
  const firstGetRecords = new Map<string, number>();
  const endServed = new Map<string, number>();
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    counts.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => {
      const body = Buffer.concat(chunks);
      const targetHeader = String(req.headers['x-amz-target'] ?? '');
      const operation = targetHeader.startsWith(STREAMS_PREFIX)
        ? targetHeader.slice(STREAMS_PREFIX.length)
        : undefined;
      let shardId: string | undefined;
      try {
        if (operation === 'GetShardIterator') {
          shardId = (JSON.parse(body.toString('utf8')) as { ShardId?: string }).ShardId;
        } else if (operation === 'GetRecords') {
          counts.getRecords++;
          const iterator = (JSON.parse(body.toString('utf8')) as { ShardIterator?: string }).ShardIterator;
          shardId = iterator === undefined ? undefined : shardOfIterator.get(iterator);
          if (shardId === undefined) counts.unknownIterators++;
          else if (!firstGetRecords.has(shardId)) firstGetRecords.set(shardId, Date.now());
        }
      } catch {
        // Not JSON: the upstream answers it (with an error); nothing to watch.
      }
      send(body, false, (status, text) => {
        if (status !== 200 || shardId === undefined) return;
        if (operation === 'GetShardIterator') {
          const iterator = (JSON.parse(text) as { ShardIterator?: string }).ShardIterator;
          if (iterator !== undefined) shardOfIterator.set(iterator, shardId);
        } else if (operation === 'GetRecords') {
          // The iterator is the answer's last member (`{"Records":[...],"NextShardIterator":"..."}`);
          // parse it alone rather than a whole 1 MB page.
          const at = text.lastIndexOf(NEXT);
          if (at < 0) {
            if (!endServed.has(shardId)) endServed.set(shardId, Date.now());
          } else {
            const rest = text.slice(at + NEXT.length, text.lastIndexOf('}'));
            shardOfIterator.set(JSON.parse(rest) as string, shardId);
          }
        }
      });
    });

    function send(body: Buffer, retried: boolean, observe: (status: number, text: string) => void): void {
      const headers: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
      }
      // The answer is read as text: ask for it uncompressed.
      delete headers['accept-encoding'];
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
        const parts: Buffer[] = [];
        answer.on('data', (c: Buffer) => parts.push(c));
        answer.once('error', () => res.destroy());
        answer.once('end', () => {
          const bytes = Buffer.concat(parts);
          const responseHeaders: http.OutgoingHttpHeaders = {};
          for (const [name, value] of Object.entries(answer.headers)) {
            if (!HOP_BY_HOP.has(name) && value !== undefined) responseHeaders[name] = value;
          }
          try {
            observe(answer.statusCode ?? 0, bytes.toString('utf8'));
          } catch {
            // An answer the tap cannot read is still relayed as is.
          }
          res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders);
          res.end(bytes);
        });
      });
      outgoing.on('error', (error) => {
        // A keep-alive connection the upstream had just closed: send again, once (as the emulator's
        // own forwarding does).
        if (outgoing.reusedSocket && !retried && !res.headersSent) {
          send(body, true, observe);
          return;
        }
        if (res.headersSent) {
          res.destroy();
          return;
        }
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`streams tap: upstream failed: ${error.message}`);
      });
      res.once('close', () => {
        if (!res.writableFinished) outgoing.destroy();
      });
      outgoing.end(body);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    firstGetRecords,
    endServed,
    counts,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}
