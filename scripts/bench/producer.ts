/**
 * The end-to-end benchmark's producer: BatchWriteItem batches of 25 puts and deletes into a
 * DynamoDB Local table (pk S + sk N) as fast as it accepts them, from `writers` concurrent lanes
 * over `keys` keys (each lane owns the keys k with k % writers == lane, so no key is ever written
 * by two requests at once and a batch never names a key twice).
 *
 * Every write yields exactly one stream record: a put of an absent key (INSERT), a put of a
 * present key (MODIFY: its `v` and `written_at` always change) or a delete of a present key
 * (REMOVE). Each key's writes are numbered v = 1, 2, 3...; items carry `v` and
 * `written_at` = Date.now() when the request was built. A delete's number is its old image's
 * v + 1. The log (one line per acknowledged write: key, v, op, written_at) is what the stream
 * must hold, so it is what the changelog must hold, exactly once.
 */
import { createWriteStream } from 'node:fs';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import {
  realisticItem,
  rng,
  type WireAttributeValue,
  type WireItem,
} from '../../test/helpers/streamRecords.js';

export interface ProducerOptions {
  client: DynamoDBClient;
  table: string;
  seconds: number;
  writers: number;
  keys: number;
  /** Where the log goes (`k v op written_at` lines); none: counts only. */
  logFile?: string;
  seed?: number;
}

export interface ProducerResult {
  writes: number;
  seconds: number;
  /** Acknowledged writes in each second of the run. */
  perSecond: number[];
  batches: number;
  /** Requests the service left unprocessed and that were sent again. */
  unprocessedRetries: number;
  /** Batches that failed without an answer and were sent again (should be 0 on loopback). */
  failedBatches: number;
  ops: Record<'INSERT' | 'MODIFY' | 'REMOVE', number>;
  startedAtMs: number;
  endedAtMs: number;
}

export const keyOf = (k: number) => ({ pk: `tenant-${k % 97}#object-${k}`, sk: String(k % 13) });
/** The key index back from a pk. */
export const keyIndex = (pk: string) => Number(pk.slice(pk.lastIndexOf('-') + 1));

function toSdk(value: WireAttributeValue): AttributeValue {
  if ('B' in value) return { B: Buffer.from(value.B, 'base64') };
  if ('BS' in value) return { BS: value.BS.map((b) => Buffer.from(b, 'base64')) };
  if ('M' in value) return { M: Object.fromEntries(Object.entries(value.M).map(([k, v]) => [k, toSdk(v)])) };
  if ('L' in value) return { L: value.L.map(toSdk) };
  return value as AttributeValue;
}

function toSdkItem(item: WireItem): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, toSdk(v)]));
}

/** The tests' source table: pk (S) + sk (N) with a NEW_AND_OLD_IMAGES stream; returns the stream ARN. */
export { createStreamTable as createSourceTable } from '../../test/helpers/dynamoDbLocalServer.js';

export async function runProducer(o: ProducerOptions): Promise<ProducerResult> {
  const random = rng(o.seed ?? 7);
  // ~900-byte realistic items; each write takes one and changes its key, v, written_at and a few
  // high-entropy values, so images differ as real ones do.
  const pool = Array.from({ length: 256 }, (_, i) => toSdkItem(realisticItem(random, 'x', '0', i)));
  const version = new Int32Array(o.keys);
  const exists = new Uint8Array(o.keys);
  const log = o.logFile ? createWriteStream(o.logFile) : undefined;
  const result: ProducerResult = {
    writes: 0,
    seconds: 0,
    perSecond: [],
    batches: 0,
    unprocessedRetries: 0,
    failedBatches: 0,
    ops: { INSERT: 0, MODIFY: 0, REMOVE: 0 },
    startedAtMs: Date.now(),
    endedAtMs: 0,
  };
  const started = performance.now();
  const deadline = started + o.seconds * 1000;

  const lane = async (w: number) => {
    const owned = Math.ceil((o.keys - w) / o.writers);
    while (performance.now() < deadline) {
      const picked = new Set<number>();
      while (picked.size < Math.min(25, owned)) picked.add(w + o.writers * Math.floor(random() * owned));
      const writes = [...picked].map((k) => {
        const op: 'INSERT' | 'MODIFY' | 'REMOVE' = !exists[k]
          ? 'INSERT'
          : random() < 0.2
            ? 'REMOVE'
            : 'MODIFY';
        const v = version[k]! + 1;
        const writtenAt = Date.now();
        const { pk, sk } = keyOf(k);
        const request: WriteRequest =
          op === 'REMOVE'
            ? { DeleteRequest: { Key: { pk: { S: pk }, sk: { N: sk } } } }
            : {
                PutRequest: {
                  Item: {
                    ...pool[Math.floor(random() * pool.length)]!,
                    pk: { S: pk },
                    sk: { N: sk },
                    v: { N: String(v) },
                    version: { N: String(v) },
                    written_at: { N: String(writtenAt) },
                    bigCounter: { N: String(Math.floor(random() * 1e15)) + String(writtenAt) },
                    checksum: { B: Buffer.from(String(random()).repeat(2)) },
                  },
                },
              };
        return { k, v, op, writtenAt, request };
      });
      let pending = writes.map((x) => x.request);
      while (pending.length > 0) {
        try {
          const out = await o.client.send(
            new BatchWriteItemCommand({ RequestItems: { [o.table]: pending } }),
          );
          result.batches++;
          pending = out.UnprocessedItems?.[o.table] ?? [];
          result.unprocessedRetries += pending.length;
        } catch {
          // No answer: send the same requests again. A put that landed is repeated with the same
          // content (no new stream record); a delete that landed finds nothing (none either).
          result.failedBatches++;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const second = Math.floor((performance.now() - started) / 1000);
      while (result.perSecond.length <= second) result.perSecond.push(0);
      result.perSecond[second]! += writes.length;
      for (const x of writes) {
        version[x.k] = x.v;
        exists[x.k] = x.op === 'REMOVE' ? 0 : 1;
        result.ops[x.op]++;
        log?.write(`${x.k} ${x.v} ${x.op} ${x.writtenAt}\n`);
      }
      result.writes += writes.length;
    }
  };
  await Promise.all(Array.from({ length: o.writers }, (_, w) => lane(w)));
  result.seconds = (performance.now() - started) / 1000;
  result.endedAtMs = Date.now();
  if (log)
    await new Promise<void>((resolve, reject) => log.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return result;
}
