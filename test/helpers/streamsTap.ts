import { startForwardingProxy } from './forwardingProxy.js';

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

const STREAMS_PREFIX = 'DynamoDBStreams_20120810.';
const NEXT = '"NextShardIterator":';

export async function startStreamsTap(target: string): Promise<StreamsTap> {
  const counts: StreamsTapCounts = { requests: 0, getRecords: 0, unknownIterators: 0 };
  const shardOfIterator = new Map<string, string>();
  const firstGetRecords = new Map<string, number>();
  const endServed = new Map<string, number>();

  const proxy = await startForwardingProxy({
    target,
    name: 'streams tap',
    maxSockets: 64,
    handle({ req, body = Buffer.alloc(0), forward }) {
      counts.requests++;
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
      // The answer is read as text: ask for it uncompressed.
      forward({
        identityEncoding: true,
        onAnswer(answer) {
          try {
            observe(answer.status, answer.body.toString('utf8'));
          } catch {
            // An answer the tap cannot read is still relayed as is.
          }
          return answer;
        },
      });

      function observe(status: number, text: string): void {
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
      }
    },
  });

  return {
    endpoint: proxy.endpoint,
    firstGetRecords,
    endServed,
    counts,
    stop: () => proxy.stop(),
  };
}
