import { DeleteItemCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { decodePage } from '../../../src/ingest/shardReader.js';
import { type CheckpointEvent, StreamWorker } from '../../../src/ingest/streamWorker.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * Three workers in one process share one table's stream on the real DynamoDB Local, with short
 * lease timings (failover 1.5 s, renew 0.3 s). Timings are printed, never asserted.
 */
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const FAILOVER_MS = 1500;
const RENEW_MS = 300;
const schema = parseKeySchema('pk:S,sk:N');

interface Delivery {
  workerId: string;
  shardId: string;
  sequenceNumber: string;
  key: string;
}

let local: DynamoDbLocal;
let dynamodb: DynamoDBClient;
let streams: DynamoDBStreamsClient;

beforeAll(async () => {
  local = await startDynamoDbLocal();
  dynamodb = new DynamoDBClient({ region: 'us-east-1', endpoint: local.endpoint, credentials });
  streams = new DynamoDBStreamsClient({
    region: 'us-east-1',
    endpoint: local.endpoint,
    credentials,
    maxAttempts: 1,
  });
});

afterAll(async () => {
  dynamodb?.destroy();
  streams?.destroy();
  await local?.stop();
});

const existing = new Set<string>();

/**
 * Writes `count` changes over a few keys and returns the keys changed, in order. Only real changes
 * are counted: a delete of a missing item produces no stream record, so it is never issued.
 */
async function writeChanges(table: string, count: number, from: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = from; i < from + count; i++) {
    const pk = `item-${i % 17}`;
    if (i % 11 === 10 && existing.has(pk)) {
      await dynamodb.send(
        new DeleteItemCommand({ TableName: table, Key: { pk: { S: pk }, sk: { N: '1' } } }),
      );
      existing.delete(pk);
    } else {
      await dynamodb.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            pk: { S: pk },
            sk: { N: '1' },
            n: { N: String(i) },
            big: { N: '12345678901234567890123456789012345678' },
          },
        }),
      );
      existing.add(pk);
    }
    keys.push(pk);
  }
  return keys;
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A gate that freezes a worker's lease calls and page handling, like SIGSTOP would. */
class Gate {
  private open: Promise<void> = Promise.resolve();
  private release: (() => void) | undefined;
  pause(): void {
    this.open = new Promise((resolve) => {
      this.release = resolve;
    });
  }
  resume(): void {
    this.release?.();
  }
  wait(): Promise<void> {
    return this.open;
  }
}

function pausable(store: LeaseStore, gate: Gate): LeaseStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await gate.wait();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('StreamWorker fleet on DynamoDB Local', () => {
  it('delivers every change, fails over a crashed worker, and fences a paused one', async () => {
    const table = `orders-${Date.now()}`;
    const leaseTable = `leases-${Date.now()}`;
    const streamArn = await createStreamTable(dynamodb, table);
    await createLeaseTable(dynamodb, leaseTable);
    const written = await writeChanges(table, 120, 0);

    const deliveries: Delivery[] = [];
    const checkpoints: (CheckpointEvent & { at: number })[] = [];
    const gates = new Map<string, Gate>();
    const controllers = new Map<string, AbortController>();
    const workers = new Map<string, StreamWorker>();
    const runs: Promise<void>[] = [];
    const raw = new RawGetRecordsClient(streams);

    // No worker releases its leases on stop: a stopped worker behaves like a killed one.
    const startWorker = (workerId: string) => {
      const gate = new Gate();
      gates.set(workerId, gate);
      const store = new LeaseStore({ client: dynamodb, tableName: leaseTable, streamArn, workerId });
      const buffer = new ChangeBuffer(schema);
      const worker = new StreamWorker({
        workerId,
        streamArn,
        streams,
        raw,
        leases: pausable(store, gate),
        lease: { failoverMs: FAILOVER_MS },
        renewIntervalMs: RENEW_MS,
        idleMinMs: 20,
        idleMaxMs: 100,
        releaseOnStop: false,
        consume: async (page, shardId) => {
          await gate.wait();
          const mark = buffer.rowCount;
          const summary = decodePage(page, buffer);
          for (let row = mark; row < buffer.rowCount; row++) {
            const keys = JSON.parse(Buffer.from(buffer.keys.value(row)).toString()) as { pk: { S: string } };
            deliveries.push({
              workerId,
              shardId,
              sequenceNumber: Buffer.from(buffer.sequenceNumber.value(row)).toString(),
              key: keys.pk.S,
            });
          }
          return summary;
        },
        onCheckpoint: (event) => checkpoints.push({ ...event, at: performance.now() }),
      });
      const controller = new AbortController();
      controllers.set(workerId, controller);
      workers.set(workerId, worker);
      runs.push(worker.run(controller.signal));
    };

    try {
      for (const id of ['w1', 'w2', 'w3']) startWorker(id);
      const distinct = () => new Set(deliveries.map((d) => d.sequenceNumber)).size;

      // 1. Every written change is delivered, with per-item order kept.
      await until(() => distinct() >= written.length, 'the first 120 changes');
      const firstSeen = new Map<string, Delivery>();
      for (const d of deliveries) if (!firstSeen.has(d.sequenceNumber)) firstSeen.set(d.sequenceNumber, d);
      const byKeyInStreamOrder = [...firstSeen.values()].sort((a, b) =>
        BigInt(a.sequenceNumber) < BigInt(b.sequenceNumber) ? -1 : 1,
      );
      const writtenOrder = written.join(',');
      expect(byKeyInStreamOrder.map((d) => d.key).join(',')).toBe(writtenOrder);

      // 2. Crash the worker holding shards (no release): the others take over after failover.
      const holder = [...workers.entries()].find(([, w]) => w.heldShards.length > 0)!;
      const [crashedId, crashed] = holder;
      const crashedShards = crashed.heldShards;
      gates.get(crashedId)!.pause(); // freeze first, so its in-flight work cannot land either
      const crashedAt = performance.now();
      controllers.get(crashedId)!.abort(new Error('kill -9'));
      gates.get(crashedId)!.resume();
      const more = await writeChanges(table, 40, 120);
      await until(
        () =>
          crashedShards.every((s) =>
            [...workers].some(([id, w]) => id !== crashedId && w.heldShards.includes(s)),
          ),
        'the crashed worker’s shards to move',
      );
      const crashTakeoverAt = performance.now();
      const takeoverMs = crashTakeoverAt - crashedAt;
      await until(() => distinct() >= written.length + more.length, 'the changes written after the crash');
      console.log(
        `failover: ${crashedShards.length} shard(s) of ${crashedId} taken over after ${takeoverMs.toFixed(0)} ms ` +
          `(failover ${FAILOVER_MS} ms + renew ${RENEW_MS} ms)`,
      );

      // 3. Pause the current holder longer than the failover time, let another take over, resume.
      const [pausedId, paused] = [...workers.entries()].find(
        ([id, w]) => id !== crashedId && w.heldShards.length > 0,
      )!;
      const pausedShards = paused.heldShards;
      gates.get(pausedId)!.pause();
      const pausedAt = performance.now();
      const afterPause = await writeChanges(table, 30, 160);
      await until(
        () =>
          pausedShards.every((s) =>
            [...workers].some(([id, w]) => id !== pausedId && id !== crashedId && w.heldShards.includes(s)),
          ),
        'the paused worker’s shards to move',
      );
      await until(
        () => distinct() >= written.length + more.length + afterPause.length,
        'changes after the pause',
      );
      const resumedAt = performance.now();
      gates.get(pausedId)!.resume();
      await until(
        () => paused.heldShards.every((s) => !pausedShards.includes(s)),
        'the paused worker to drop its leases',
      );
      await new Promise((resolve) => setTimeout(resolve, 3 * RENEW_MS));
      console.log(
        `pause: ${pausedId} frozen ${(resumedAt - pausedAt).toFixed(0)} ms, its shards moved meanwhile`,
      );

      console.log(`crashed ${crashedId}, paused ${pausedId}; checkpoint chain:`);
      console.log(checkpoints.map((c) => `  ${c.workerId}@${c.leaseEpoch} ${c.from} -> ${c.to}`).join('\n'));

      // A write already in flight when a worker froze or died may still land (its lease was valid
      // then); nothing may land once another worker holds the lease.
      expect(checkpoints.filter((c) => c.workerId === pausedId && c.at > resumedAt)).toEqual([]);
      expect(checkpoints.filter((c) => c.workerId === crashedId && c.at > crashTakeoverAt)).toEqual([]);

      // 4. Per shard, successful checkpoints form one chain (each starts where the last ended, so no
      //    two holders ever checkpointed overlapping ranges) and epochs never go back (a stale holder
      //    never wrote after a newer one).
      const byShard = new Map<string, CheckpointEvent[]>();
      for (const c of checkpoints) byShard.set(c.shardId, [...(byShard.get(c.shardId) ?? []), c]);
      for (const chain of byShard.values()) {
        for (let i = 1; i < chain.length; i++) {
          expect(chain[i]!.from).toBe(chain[i - 1]!.to);
          expect(chain[i]!.leaseEpoch).toBeGreaterThanOrEqual(chain[i - 1]!.leaseEpoch);
        }
      }
      const epochsPerShard = [...byShard.values()].map(
        (chain) => new Set(chain.map((c) => `${c.workerId}@${c.leaseEpoch}`)).size,
      );
      console.log(
        `checkpoints: ${checkpoints.length} over ${byShard.size} shard(s), holders per shard ${epochsPerShard.join(', ')}; ` +
          `deliveries ${deliveries.length} for ${distinct()} distinct records`,
      );
    } finally {
      for (const controller of controllers.values()) controller.abort(new Error('test over'));
      for (const gate of gates.values()) gate.resume();
      await Promise.all(runs);
      raw.destroy();
    }
  }, 180_000);
});
