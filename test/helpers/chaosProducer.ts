import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { seededRandom } from '../../src/support/random.js';

/*
 * The chaos test's producer: inserts, updates and deletes over a fixed key space, with a log of
 * every write that DynamoDB applied. Every write is chosen so it yields exactly one stream record
 * (a conditional insert of an absent item, an update that always changes `v`, a delete of a present
 * item), so the log is exactly what the stream must deliver.
 *
 * Items live in the table createStreamTable makes (pk S + sk N): one item per pk, sk fixed at 0.
 *
 * Every item carries `v` (N), the key's write counter: each write of a key takes the next value,
 * re-inserts after a delete included, and a delete takes one too (it is not stored, since a delete
 * writes nothing, but the REMOVE record's old image holds the value before it). From the images of
 * any record, the write's version is therefore: INSERT/MODIFY -> NewImage.v, REMOVE -> OldImage.v + 1,
 * and one key's records in stream order must show 1, 2, 3, ... with no gap and no repeat.
 */

export type WriteOp = 'INSERT' | 'MODIFY' | 'REMOVE';

export interface ProducedWrite {
  pk: string;
  op: WriteOp;
  /** The key's write counter for this write (see above). */
  v: number;
}

export interface NotWritten extends ProducedWrite {
  reason: string;
}

export interface ProducerResult {
  /** Every write DynamoDB applied, in the order they were confirmed. */
  writes: ProducedWrite[];
  /** Writes refused by their condition: the local view of the table was wrong (a harness bug). */
  notWritten: NotWritten[];
  /** Attempts that failed without an answer (throttling, network) and were resolved by a re-read. */
  uncertainAttempts: number;
}

export interface ProducerOptions {
  client: DynamoDBClient;
  table: string;
  /** Size of the key space: pks are `item-00000` ... */
  keys: number;
  /** Stops the producer: no write starts after it fires; writes in flight complete. */
  signal: AbortSignal;
  /** Seed for the choice of keys, operations and payloads. */
  seed: number;
  /** Upper bound on writes per second over all lanes. Default: unbounded. */
  ratePerSecond?: number;
  /** Writes in flight at once, never two on the same key. Default 4. */
  concurrency?: number;
  /** Share of writes to present keys that are deletes (the rest are updates). Default 0.25. */
  deleteShare?: number;
  /**
   * The attributes an insert or update writes besides the key and `v` (an update SETs each one).
   * Default randomPayload.
   */
  payload?: (rng: () => number, pk: string) => Record<string, AttributeValue>;
  /** While this says true, no write starts (bursts with quiet moments in between). Default never. */
  paused?: () => boolean;
  /** No write starts once this many have started (tests stop by count, not by clock). Default: no limit. */
  maxWrites?: number;
}

/** mulberry32 (the demo producer's): a seeded PRNG, so a chaos run's choices can be replayed from its seed. */
export const createRng: (seed: number) => () => number = seededRandom;

export function keyName(index: number): string {
  return `item-${String(index).padStart(5, '0')}`;
}

export const SORT_KEY: AttributeValue = { N: '0' };

const MAX_ATTEMPTS = 30;
// Errors that say the request itself is wrong: retrying cannot help, and looping would hide a bug.
const PERMANENT_ERRORS = new Set([
  'ValidationException',
  'ResourceNotFoundException',
  'SerializationException',
  'UnrecognizedClientException',
]);

export async function runProducer(options: ProducerOptions): Promise<ProducerResult> {
  const { client, table, keys, signal } = options;
  const rng = createRng(options.seed);
  const concurrency = options.concurrency ?? 4;
  const deleteShare = options.deleteShare ?? 0.25;
  const payload = options.payload ?? randomPayload;
  const intervalMs = options.ratePerSecond ? 1000 / options.ratePerSecond : 0;

  const version = new Array<number>(keys).fill(0);
  const exists = new Array<boolean>(keys).fill(false);
  const busy = new Set<number>();
  const result: ProducerResult = { writes: [], notWritten: [], uncertainAttempts: 0 };
  const startedAt = performance.now();
  let slots = 0;
  let started = 0;
  const maxWrites = options.maxWrites ?? Number.POSITIVE_INFINITY;

  const pickKey = (): number => {
    // Lanes never write the same key at once, so one key's writes are applied in log order.
    for (;;) {
      const k = Math.floor(rng() * keys);
      if (!busy.has(k)) return k;
    }
  };

  const lane = async () => {
    while (!signal.aborted && started < maxWrites) {
      if (intervalMs > 0) {
        const due = startedAt + slots++ * intervalMs;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        if (signal.aborted) break;
      }
      while (options.paused?.() && !signal.aborted) await sleep(50);
      if (signal.aborted || started >= maxWrites) break;
      started++;
      const k = pickKey();
      busy.add(k);
      try {
        const op: WriteOp = !exists[k] ? 'INSERT' : rng() < deleteShare ? 'REMOVE' : 'MODIFY';
        const write: ProducedWrite = { pk: keyName(k), op, v: version[k]! + 1 };
        const outcome = await applyWrite(client, table, write, payload(rng, write.pk), result);
        if (outcome === 'written') {
          result.writes.push(write);
          version[k] = write.v;
          exists[k] = op !== 'REMOVE';
        } else {
          result.notWritten.push({ ...write, reason: outcome.refused });
          // Re-sync with the table so the next choice for this key is valid again.
          const item = await readItemRetrying(client, table, write.pk);
          exists[k] = item !== undefined;
          if (item !== undefined) version[k] = Number(item['v']?.N ?? version[k]);
        }
      } finally {
        busy.delete(k);
      }
    }
  };

  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, keys)) }, lane));
  return result;
}

type Outcome = 'written' | { refused: string };

/**
 * Applies one write exactly once. An attempt that ends without an answer (throttled, timed out,
 * connection lost) may or may not have been applied; the item is re-read to tell (this producer is
 * the only writer, and `v` says which write the item reflects), and the write is sent again only
 * when it was not.
 */
async function applyWrite(
  client: DynamoDBClient,
  table: string,
  write: ProducedWrite,
  payload: Record<string, AttributeValue>,
  result: ProducerResult,
): Promise<Outcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      await send(client, table, write, payload);
      return 'written';
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        // On a first attempt the local view was wrong. After an uncertain attempt the re-read below
        // already said "not applied", so a refusal now is just as much a real refusal.
        return { refused: `ConditionalCheckFailed on attempt ${attempt}` };
      }
      const name = error instanceof Error ? error.name : '';
      if (PERMANENT_ERRORS.has(name) || attempt >= MAX_ATTEMPTS) throw error;
      result.uncertainAttempts++;
      await sleep(Math.min(1000, 20 * 2 ** Math.min(attempt, 6)));
      if (await wasApplied(client, table, write)) return 'written';
    }
  }
}

async function wasApplied(client: DynamoDBClient, table: string, write: ProducedWrite): Promise<boolean> {
  const item = await readItemRetrying(client, table, write.pk);
  if (write.op === 'REMOVE') return item === undefined;
  return item !== undefined && Number(item['v']?.N) === write.v;
}

async function send(
  client: DynamoDBClient,
  table: string,
  write: ProducedWrite,
  payload: Record<string, AttributeValue>,
): Promise<void> {
  const Key = { pk: { S: write.pk }, sk: SORT_KEY };
  switch (write.op) {
    case 'INSERT':
      await client.send(
        new PutItemCommand({
          TableName: table,
          Item: { ...Key, v: { N: String(write.v) }, ...payload },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return;
    case 'MODIFY': {
      const names: Record<string, string> = {};
      const values: Record<string, AttributeValue> = {
        ':one': { N: '1' },
        ':prev': { N: String(write.v - 1) },
      };
      const sets = ['v = v + :one'];
      for (const [i, [name, value]] of Object.entries(payload).entries()) {
        names[`#a${i}`] = name;
        values[`:a${i}`] = value;
        sets.push(`#a${i} = :a${i}`);
      }
      await client.send(
        new UpdateItemCommand({
          TableName: table,
          Key,
          UpdateExpression: `SET ${sets.join(', ')}`,
          // v = :prev on top of attribute_exists: a divergence between log and table is refused
          // (and reported) instead of silently shifting every later version of the key.
          ConditionExpression: 'attribute_exists(pk) AND v = :prev',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return;
    }
    case 'REMOVE':
      await client.send(
        new DeleteItemCommand({
          TableName: table,
          Key,
          ConditionExpression: 'attribute_exists(pk) AND v = :prev',
          ExpressionAttributeValues: { ':prev': { N: String(write.v - 1) } },
        }),
      );
      return;
  }
}

async function readItem(
  client: DynamoDBClient,
  table: string,
  pk: string,
): Promise<Record<string, AttributeValue> | undefined> {
  const got = await client.send(
    new GetItemCommand({ TableName: table, Key: { pk: { S: pk }, sk: SORT_KEY }, ConsistentRead: true }),
  );
  return got.Item;
}

async function readItemRetrying(
  client: DynamoDBClient,
  table: string,
  pk: string,
): Promise<Record<string, AttributeValue> | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readItem(client, table, pk);
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS) throw error;
      await sleep(Math.min(1000, 20 * 2 ** Math.min(attempt, 6)));
    }
  }
}

/**
 * Attributes a real item might carry, in the shapes that stress a lossless changelog: a nested
 * map, a 38-digit number, a string set. No empty maps: DynamoDB Local sends them as `{}` in stream
 * images (see test/integration/stream/dynamoDbLocalStreams.test.ts), which is not what this tests.
 */
export function randomPayload(rng: () => number): Record<string, AttributeValue> {
  const digits = (n: number) => {
    let s = String(1 + Math.floor(rng() * 9));
    while (s.length < n) s += String(Math.floor(rng() * 10));
    return s;
  };
  const word = () => Math.floor(rng() * 36 ** 6).toString(36);
  const tags = new Set(Array.from({ length: 1 + Math.floor(rng() * 4) }, word));
  return {
    amount: { N: `${digits(20)}.${digits(18)}` },
    tags: { SS: [...tags] },
    profile: {
      M: {
        name: { S: `name ${word()}` },
        address: {
          M: {
            city: { S: word() },
            zip: { N: digits(5) },
            lines: { L: [{ S: word() }, { S: '' }, { BOOL: rng() < 0.5 }] },
          },
        },
        score: { N: (rng() * 1000).toFixed(3) },
      },
    },
  };
}

/** Image attribute value as DynamoDB JSON: `{ "v": { "N": "3" }, ... }`. */
type ImageJson = Record<string, { N?: string } | Record<string, unknown>> | null | undefined;

/**
 * The producer's write version of one change, from its images (see the top of this file), or
 * undefined when the images do not carry it. Works on SDK stream records and on parsed changelog
 * columns alike, since both use DynamoDB JSON shapes for `v`.
 */
export function writeVersion(op: string, newImage: ImageJson, oldImage: ImageJson): number | undefined {
  const v = (image: ImageJson) => {
    const n = (image?.['v'] as { N?: string } | undefined)?.N;
    return n === undefined ? undefined : Number(n);
  };
  if (op === 'REMOVE') {
    const old = v(oldImage);
    return old === undefined ? undefined : old + 1;
  }
  return v(newImage);
}

/** One record as the stream delivered it, reduced to what the chaos checks compare. */
export interface StreamedChange {
  eventId: string;
  op: WriteOp;
  pk: string;
  sequenceNumber: string;
  shardId: string;
  /** writeVersion() of the record. */
  v: number | undefined;
  /** ApproximateCreationDateTime in ms. */
  eventTimeMs: number;
}

export interface ReadStreamOptions {
  /** DynamoDB Local's endpoint (its Streams API shares it). */
  endpoint: string;
  /**
   * DynamoDB Local keeps one database per access key (and region) unless started with -sharedDb,
   * so these must be the writers' credentials. Default: the `local` ones of dynamoDbLocal.ts.
   */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  streamArn: string;
  /** Keep reading until at least this many records arrived (or the deadline passes). */
  expectAtLeast?: number;
  /** Consecutive empty pages per shard taken as "caught up" on an open shard. Default 2. */
  emptyPagesToStop?: number;
  deadlineMs?: number;
}

/**
 * Reads a whole stream from TRIM_HORIZON with the AWS SDK, independently of src/: the ground truth
 * of what the changelog must hold. DynamoDB Local keeps one open shard per table, so a shard counts
 * as read after `emptyPagesToStop` empty pages in a row, not at a SHARD_END that never comes.
 */
export async function readStreamChanges(options: ReadStreamOptions): Promise<StreamedChange[]> {
  const client = new DynamoDBStreamsClient({
    endpoint: options.endpoint,
    region: 'us-east-1',
    credentials: options.credentials ?? { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 5,
  });
  const emptyPagesToStop = options.emptyPagesToStop ?? 2;
  const deadline = performance.now() + (options.deadlineMs ?? 60_000);
  const changes: StreamedChange[] = [];
  try {
    for (;;) {
      changes.length = 0;
      const shards: Shard[] = [];
      let exclusiveStartShardId: string | undefined;
      do {
        const page = await client.send(
          new DescribeStreamCommand({
            StreamArn: options.streamArn,
            ExclusiveStartShardId: exclusiveStartShardId,
          }),
        );
        shards.push(...(page.StreamDescription?.Shards ?? []));
        exclusiveStartShardId = page.StreamDescription?.LastEvaluatedShardId;
      } while (exclusiveStartShardId !== undefined);

      for (const shard of shards) {
        const shardId = shard.ShardId!;
        let iterator = (
          await client.send(
            new GetShardIteratorCommand({
              StreamArn: options.streamArn,
              ShardId: shardId,
              ShardIteratorType: 'TRIM_HORIZON',
            }),
          )
        ).ShardIterator;
        let empty = 0;
        while (iterator !== undefined && empty < emptyPagesToStop) {
          const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
          const records = page.Records ?? [];
          empty = records.length === 0 ? empty + 1 : 0;
          for (const r of records) {
            const d = r.dynamodb!;
            changes.push({
              eventId: r.eventID!,
              op: r.eventName as WriteOp,
              pk: d.Keys?.['pk']?.S ?? '',
              sequenceNumber: d.SequenceNumber!,
              shardId,
              v: writeVersion(r.eventName!, d.NewImage as ImageJson, d.OldImage as ImageJson),
              eventTimeMs: d.ApproximateCreationDateTime?.getTime() ?? 0,
            });
          }
          iterator = page.NextShardIterator;
        }
      }
      if (changes.length >= (options.expectAtLeast ?? 0) || performance.now() > deadline) return changes;
      await sleep(500);
    }
  } finally {
    client.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
