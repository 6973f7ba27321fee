import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import {
  createRng,
  type ProducedWrite,
  readStreamChanges,
  runProducer,
  type StreamedChange,
} from '../../helpers/chaosProducer.js';
import { createStreamTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * The producer's log is the chaos test's reference, so it must be exactly what the stream delivers:
 * checked here against the real DynamoDB Local, also when writes fail without an answer.
 */

const local = useDynamoDbLocal();

/** Per pk, the (op, v) sequence: from the log in confirmation order, from the stream in sequence order. */
function perKey(
  entries: readonly { pk: string; op: string; v: number | undefined }[],
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of entries) {
    const list = out.get(e.pk) ?? [];
    list.push(`${e.op}:${e.v}`);
    out.set(e.pk, list);
  }
  return out;
}

function inStreamOrder(changes: StreamedChange[]): StreamedChange[] {
  return [...changes].sort((a, b) => {
    const x = BigInt(a.sequenceNumber);
    const y = BigInt(b.sequenceNumber);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Runs the producer for `count` writes (a count, not a duration: a loaded machine writes fewer per second). */
async function produce(
  count: number,
  table: string,
  client: DynamoDBClient,
  keys: number,
): Promise<{ writes: ProducedWrite[]; changes: StreamedChange[] }> {
  const streamArn = await createStreamTable(local().client, table);
  const signal = new AbortController().signal;
  const result = await runProducer({ client, table, keys, signal, seed: 7, maxWrites: count });
  expect(result.notWritten).toEqual([]);
  const changes = await readStreamChanges({
    endpoint: local().endpoint,
    streamArn,
    expectAtLeast: result.writes.length,
  });
  return { writes: result.writes, changes };
}

describe('chaosProducer', () => {
  it('createRng repeats its sequence for a seed', () => {
    const a = createRng(42);
    const b = createRng(42);
    const xs = Array.from({ length: 5 }, a);
    expect(Array.from({ length: 5 }, b)).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Array.from({ length: 5 }, createRng(43))).not.toEqual(xs);
  });

  it('logs exactly the records the stream delivers, in per-key order', async () => {
    const table = 'producer-plain';
    const { writes, changes } = await produce(120, table, local().client, 30);

    expect(writes).toHaveLength(120);
    expect(new Set(writes.map((w) => w.op))).toEqual(new Set(['INSERT', 'MODIFY', 'REMOVE']));
    expect(changes).toHaveLength(writes.length);
    expect(new Set(changes.map((c) => c.eventId)).size).toBe(changes.length);
    expect(perKey(inStreamOrder(changes))).toEqual(perKey(writes));
    // Versions count every write of a key, deletes included: 1, 2, 3, ...
    for (const sequence of perKey(writes).values()) {
      expect(sequence.map((s) => Number(s.split(':')[1]))).toEqual(sequence.map((_, i) => i + 1));
    }

    // The table ends as the log says: an item for every key whose last write was not a delete.
    const last = new Map(writes.map((w) => [w.pk, w]));
    const scanned = await local().client.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
    const present = new Map((scanned.Items ?? []).map((i) => [i['pk']!.S!, Number(i['v']!.N)]));
    const expected = new Map([...last.values()].filter((w) => w.op !== 'REMOVE').map((w) => [w.pk, w.v]));
    expect(present).toEqual(expected);
  });

  it('applies each write once when attempts fail before or after reaching DynamoDB', async () => {
    const client = new DynamoDBClient({
      endpoint: local().endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    const rng = createRng(99);
    let lostBefore = 0;
    let lostAfter = 0;
    // Fail a third of the writes: half never sent (like throttling), half applied but unanswered.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (!/^(PutItem|UpdateItem|DeleteItem)Command$/.test(context.commandName ?? '')) return next(args);
        const r = rng();
        if (r < 1 / 6) {
          lostBefore++;
          throw Object.assign(new Error('injected: throttled'), { name: 'ThrottlingException' });
        }
        const output = await next(args);
        if (r < 1 / 3) {
          lostAfter++;
          throw Object.assign(new Error('injected: socket hang up'), { name: 'TimeoutError' });
        }
        return output;
      },
      { step: 'initialize', name: 'injectFailures' },
    );
    try {
      const { writes, changes } = await produce(120, 'producer-uncertain', client, 20);
      expect(lostBefore).toBeGreaterThan(0);
      expect(lostAfter).toBeGreaterThan(0);
      expect(changes).toHaveLength(writes.length);
      expect(perKey(inStreamOrder(changes))).toEqual(perKey(writes));
    } finally {
      client.destroy();
    }
  });
});
