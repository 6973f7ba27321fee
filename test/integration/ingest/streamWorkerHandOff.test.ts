import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { LeaseStore } from '../../../src/coordination/leaseStore.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import type { LeaseChange } from '../../../src/coordination/pipelineObserver.js';
import { StreamWorker } from '../../../src/ingest/streamWorker.js';
import { useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import { getRecordsResponse } from '../../helpers/streamRecords.js';

/*
 * Balancing is a hand-off, not a refusal: when a second worker joins, the first one is asked to
 * hand leases over (it commits what it read, then transfers the lease), so no lease is lost and
 * nothing is stolen in a fleet without failures. Stream scripted, lease table on DynamoDB Local.
 */
const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const SHARDS = [1, 2, 3, 4].map((n) => `shardId-00000001700000000000-0000000${n}`);
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const local = useDynamoDbLocal();

function openShardsStream(): DynamoDBStreamsClient {
  const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials });
  const mock = mockClient(streams);
  mock.on(DescribeStreamCommand).resolves({
    StreamDescription: {
      StreamArn: STREAM,
      StreamStatus: 'ENABLED',
      Shards: SHARDS.map((ShardId) => ({ ShardId, SequenceNumberRange: { StartingSequenceNumber: '1' } })),
    },
  });
  mock
    .on(GetShardIteratorCommand)
    .callsFake((input: { ShardId: string }) => ({ ShardIterator: input.ShardId }));
  // Open shards at their tip: empty pages, always with a next iterator.
  mock
    .on(GetRecordsCommand)
    .callsFake(async (input: { ShardIterator: string }) =>
      sdkDeserializeGetRecords(getRecordsResponse([], input.ShardIterator)),
    );
  return streams;
}

describe('StreamWorker balancing', () => {
  it('hands leases to a joining worker without losing or stealing any', async () => {
    const streams = openShardsStream();
    const leaseTable = `handoff-leases-${Date.now()}`;
    await createLeaseTable(local().client, leaseTable);
    const changes: { workerId: string; shardId: string; change: LeaseChange }[] = [];
    const workers = new Map<string, StreamWorker>();
    const start = (workerId: string) => {
      const leases = new LeaseStore({
        client: local().client,
        tableName: leaseTable,
        streamArn: STREAM,
        workerId,
      });
      const worker = new StreamWorker({
        workerId,
        streamArn: STREAM,
        streams,
        leases,
        // A holder gets a failover period to answer a hand-off request before the lease is taken
        // the hard way: long enough here that a loaded CI machine never gets there.
        lease: { failoverMs: 8_000 },
        renewIntervalMs: 200,
        idleMinMs: 20,
        idleMaxMs: 50,
        consume: async () => ({ records: 0, nextShardIterator: 'x' }) as never,
        observer: { leaseChanged: (shardId, change) => changes.push({ workerId, shardId, change }) },
      });
      workers.set(workerId, worker);
      const controller = new AbortController();
      return { controller, running: worker.run(controller.signal) };
    };
    const waitFor = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    const w1 = start('w1');
    const w2 = { controller: new AbortController(), running: Promise.resolve() };
    try {
      await waitFor('w1 to hold every shard', () => workers.get('w1')!.heldShards.length === SHARDS.length);
      Object.assign(w2, start('w2'));
      await waitFor(
        'a 2/2 split',
        () => workers.get('w1')!.heldShards.length === 2 && workers.get('w2')!.heldShards.length === 2,
      );
      // Stays balanced: no more moves over a few cycles.
      const moves = changes.length;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(changes.length).toBe(moves);
    } finally {
      w1.controller.abort(new Error('test over'));
      w2.controller.abort(new Error('test over'));
      await Promise.all([w1.running, w2.running]);
      streams.destroy();
    }
    const during = changes.filter((c) => c.change !== 'released');
    expect(during.filter((c) => c.change === 'lost' || c.change === 'stolen')).toEqual([]);
    expect(during.filter((c) => c.workerId === 'w1' && c.change === 'handed-off')).toHaveLength(2);
    expect(during.filter((c) => c.workerId === 'w2' && c.change === 'taken')).toHaveLength(2);
    expect(new Set(workers.get('w2')!.heldShards)).toEqual(new Set());
  }, 90_000);
});
