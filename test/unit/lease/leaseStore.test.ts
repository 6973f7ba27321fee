import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ChangelogError, LeaseLostError } from '../../../src/errors.js';
import { type Lease, SHARD_END, TRIM_HORIZON } from '../../../src/lease/lease.js';
import { LeaseStore } from '../../../src/lease/leaseStore.js';
import { newLeaseItem } from '../../../src/lease/leaseTable.js';

const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000';
const ME = 'worker-a';
const SHARD = 'shardId-00000001700000000000-aaaaaaaa';

const held: Lease = {
  shardId: SHARD,
  owner: ME,
  leaseCounter: 7,
  leaseEpoch: 3,
  checkpoint: '100',
  parentShardIds: [],
};

/** The lease item as DynamoDB would return it. */
function item(lease: Partial<Lease> = {}): Record<string, AttributeValue> {
  const l = { ...held, ...lease };
  const out: Record<string, AttributeValue> = {
    ...newLeaseItem(STREAM, l),
    leaseCounter: { N: String(l.leaseCounter) },
    leaseEpoch: { N: String(l.leaseEpoch) },
    checkpoint: { S: l.checkpoint },
  };
  if (l.owner !== undefined) out['owner'] = { S: l.owner };
  if (l.lastEventTimeMs !== undefined) out['lastEventTimeMs'] = { N: String(l.lastEventTimeMs) };
  return out;
}

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
const throttled = () =>
  new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: { httpStatusCode: 400 } });
const serverError = () =>
  new DynamoDBServiceException({
    name: 'InternalServerError',
    message: 'boom',
    $fault: 'server',
    $metadata: { httpStatusCode: 500 },
  });

describe('LeaseStore (mocked client)', () => {
  let client: DynamoDBClient;
  let ddb: ReturnType<typeof mockClient>;
  let store: LeaseStore;

  beforeEach(() => {
    client = new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    ddb = mockClient(client);
    store = new LeaseStore({
      client,
      tableName: 'leases',
      streamArn: STREAM,
      workerId: ME,
      retry: { baseDelayMs: 1, retries: 3 },
    });
  });

  describe('renew', () => {
    it('advances the counter under the owner + epoch condition', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 8 }) });
      const renewed = await store.renew(held);
      expect(renewed.leaseCounter).toBe(8);
      const input = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
      expect(input.ConditionExpression).toBe('#owner = :me AND #leaseEpoch = :epoch');
      expect(input.ExpressionAttributeValues).toMatchObject({ ':me': { S: ME }, ':epoch': { N: '3' } });
    });

    it('succeeds when the condition fails but the re-read shows our counter already advanced', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseCounter: 8 }) });
      const renewed = await store.renew(held);
      expect(renewed).toMatchObject({ owner: ME, leaseEpoch: 3, leaseCounter: 8 });
      expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input.ConsistentRead).toBe(true);
    });

    it('throws LeaseLostError when the re-read shows another owner', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-b', leaseEpoch: 4, leaseCounter: 9 }) });
      const error = await store.renew(held).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LeaseLostError);
      expect((error as LeaseLostError).context.shardId).toBe(SHARD);
      expect((error as LeaseLostError).retriable).toBe(false);
      expect((error as Error).message).toContain('worker-b');
    });

    it('throws LeaseLostError when the re-read shows our id at another epoch', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseEpoch: 5, leaseCounter: 20 }) });
      await expect(store.renew(held)).rejects.toBeInstanceOf(LeaseLostError);
    });

    it('retries throttling, then succeeds', async () => {
      ddb
        .on(UpdateItemCommand)
        .rejectsOnce(throttled())
        .rejectsOnce(serverError())
        .resolves({ Attributes: item({ leaseCounter: 8 }) });
      const renewed = await store.renew(held);
      expect(renewed.leaseCounter).toBe(8);
      expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(3);
    });

    it('refuses a lease this worker does not hold, without calling DynamoDB', async () => {
      await expect(store.renew({ ...held, owner: 'worker-b' })).rejects.toThrow(/held by worker-b/);
      expect(ddb.calls()).toHaveLength(0);
    });
  });

  describe('take', () => {
    it('is conditional on the observed counter and absent owner for a free lease', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 1, leaseEpoch: 1 }) });
      const free: Lease = { ...held, owner: undefined, leaseCounter: 0, leaseEpoch: 0 };
      const taken = await store.take(free);
      expect(taken).toMatchObject({ owner: ME, leaseEpoch: 1 });
      const input = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
      expect(input.ConditionExpression).toBe(
        '#leaseCounter = :observedCounter AND attribute_not_exists(#owner)',
      );
      expect(input.ExpressionAttributeValues?.[':observedCounter']).toEqual({ N: '0' });
    });

    it('is conditional on the observed owner when stealing', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 10, leaseEpoch: 5 }) });
      await store.take({ ...held, owner: 'worker-b', leaseCounter: 9, leaseEpoch: 4 });
      const input = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
      expect(input.ConditionExpression).toBe('#leaseCounter = :observedCounter AND #owner = :observedOwner');
      expect(input.ExpressionAttributeValues?.[':observedOwner']).toEqual({ S: 'worker-b' });
    });

    it('returns undefined when another worker moved first', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-c', leaseEpoch: 5, leaseCounter: 10 }) });
      await expect(store.take({ ...held, owner: 'worker-b', leaseCounter: 9, leaseEpoch: 4 })).resolves.toBe(
        undefined,
      );
    });

    it('returns the lease when a retried take finds its own earlier attempt landed', async () => {
      ddb.on(UpdateItemCommand).rejectsOnce(serverError()).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseEpoch: 5, leaseCounter: 10 }) });
      const taken = await store.take({ ...held, owner: 'worker-b', leaseCounter: 9, leaseEpoch: 4 });
      expect(taken).toMatchObject({ owner: ME, leaseEpoch: 5 });
    });
  });

  describe('release', () => {
    it('removes the owner and bumps the counter', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ owner: undefined, leaseCounter: 8 }) });
      const released = await store.release(held);
      expect(released.owner).toBeUndefined();
      const input = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
      expect(input.UpdateExpression).toBe('REMOVE #owner SET #leaseCounter = #leaseCounter + :one');
    });

    it('succeeds when the re-read shows our earlier attempt released it', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: undefined, leaseCounter: 8 }) });
      await expect(store.release(held)).resolves.toMatchObject({ owner: undefined, leaseEpoch: 3 });
    });

    it('throws LeaseLostError when someone else holds it', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-b', leaseEpoch: 4 }) });
      await expect(store.release(held)).rejects.toBeInstanceOf(LeaseLostError);
    });
  });

  describe('checkpointUpdate', () => {
    it('is a TransactWriteItems Update fenced on owner, epoch and the previous checkpoint', async () => {
      const update = store.checkpointUpdate(held, {
        from: '100',
        to: '200',
        lastEventTimeMs: 1_700_000_000_000,
      });
      expect(update).toEqual({
        TableName: 'leases',
        Key: { streamArn: { S: STREAM }, leaseKey: { S: `shard#${SHARD}` } },
        UpdateExpression: 'SET #checkpoint = :to, #lastEventTimeMs = :lastEventTimeMs',
        ConditionExpression: '#owner = :me AND #leaseEpoch = :epoch AND #checkpoint = :from',
        ExpressionAttributeNames: {
          '#owner': 'owner',
          '#leaseEpoch': 'leaseEpoch',
          '#checkpoint': 'checkpoint',
          '#lastEventTimeMs': 'lastEventTimeMs',
        },
        ExpressionAttributeValues: {
          ':me': { S: ME },
          ':epoch': { N: '3' },
          ':from': { S: '100' },
          ':to': { S: '200' },
          ':lastEventTimeMs': { N: '1700000000000' },
        },
      });
      // It type-checks and serialises as a transaction element.
      ddb.on(TransactWriteItemsCommand).resolves({});
      await client.send(new TransactWriteItemsCommand({ TransactItems: [{ Update: update }] }));
      expect(ddb.commandCalls(TransactWriteItemsCommand)[0]!.args[0].input.TransactItems?.[0]?.Update).toBe(
        update,
      );
    });

    it('names only the attributes the expressions use', () => {
      const update = store.checkpointUpdate(held, { from: TRIM_HORIZON, to: '5' });
      expect(Object.keys(update.ExpressionAttributeNames ?? {}).sort()).toEqual([
        '#checkpoint',
        '#leaseEpoch',
        '#owner',
      ]);
      expect(update.UpdateExpression).toBe('SET #checkpoint = :to');
    });

    it.each([
      ['100', '100'],
      ['200', '100'],
      ['100', '99'],
      ['100', TRIM_HORIZON],
      [SHARD_END, '100'],
      [SHARD_END, SHARD_END],
    ])('rejects a move from %s to %s as not forward', (from, to) => {
      const error = (() => {
        try {
          store.checkpointUpdate(held, { from, to });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ChangelogError);
      expect(error).not.toBeInstanceOf(LeaseLostError);
      expect((error as ChangelogError).retriable).toBe(false);
    });

    it.each([
      [TRIM_HORIZON, '1'],
      ['99', '100'],
      ['000123', '124'],
      ['49999999999999999999999999999999999999', '50000000000000000000000000000000000000'],
      ['100', SHARD_END],
      [TRIM_HORIZON, SHARD_END],
    ])('accepts a move from %s to %s', (from, to) => {
      expect(() => store.checkpointUpdate(held, { from, to })).not.toThrow();
    });

    it('rejects a value that is neither a sequence number nor a literal', () => {
      expect(() => store.checkpointUpdate(held, { from: '100', to: 'LATEST' })).toThrow(ChangelogError);
    });
  });

  describe('checkpoint', () => {
    it('sends the fenced update alone and returns the lease as written', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ checkpoint: '200' }) });
      const after = await store.checkpoint(held, { from: '100', to: '200' });
      expect(after.checkpoint).toBe('200');
      const input = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
      expect(input.ConditionExpression).toBe('#owner = :me AND #leaseEpoch = :epoch AND #checkpoint = :from');
      expect(input.ReturnValues).toBe('ALL_NEW');
    });

    it('is idempotent: a retry whose earlier attempt landed succeeds', async () => {
      ddb.on(UpdateItemCommand).rejectsOnce(serverError()).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ checkpoint: '200' }) });
      const after = await store.checkpoint(held, { from: '100', to: '200' });
      expect(after.checkpoint).toBe('200');
      expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(2);
    });

    it('throws LeaseLostError with the shard and target sequence number after the lease was lost', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-b', leaseEpoch: 4 }) });
      const error = await store.checkpoint(held, { from: '100', to: '200' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LeaseLostError);
      expect((error as LeaseLostError).context).toEqual({ shardId: SHARD, sequenceNumber: '200' });
    });

    it('throws LeaseLostError when the lease item is gone', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({});
      await expect(store.checkpoint(held, { from: '100', to: '200' })).rejects.toBeInstanceOf(LeaseLostError);
    });

    it('throws a non-retriable ChangelogError when the checkpoint moved under its holder', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ checkpoint: '150' }) });
      const error = await store.checkpoint(held, { from: '100', to: '200' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChangelogError);
      expect(error).not.toBeInstanceOf(LeaseLostError);
      expect((error as ChangelogError).retriable).toBe(false);
      expect((error as Error).message).toMatch(/moved unexpectedly/);
    });

    it('rejects a backwards move without calling DynamoDB', async () => {
      await expect(store.checkpoint(held, { from: '200', to: '100' })).rejects.toThrow(/must move forward/);
      expect(ddb.calls()).toHaveLength(0);
    });

    it('wraps a non-retriable AWS error with the shard and does not retry it', async () => {
      ddb.on(UpdateItemCommand).rejects(
        new DynamoDBServiceException({
          name: 'ValidationException',
          message: 'bad expression',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
        }),
      );
      const error = await store.checkpoint(held, { from: '100', to: '200' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChangelogError);
      expect((error as ChangelogError).context.shardId).toBe(SHARD);
      expect((error as ChangelogError).retriable).toBe(false);
      expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(1);
    });

    it('retries TransactionConflictException (a commit transaction holds the item)', async () => {
      ddb
        .on(UpdateItemCommand)
        .rejectsOnce(
          new DynamoDBServiceException({
            name: 'TransactionConflictException',
            message: 'conflict',
            $fault: 'client',
            $metadata: { httpStatusCode: 400 },
          }),
        )
        .resolves({ Attributes: item({ checkpoint: '200' }) });
      await expect(store.checkpoint(held, { from: '100', to: '200' })).resolves.toMatchObject({
        checkpoint: '200',
      });
    });

    it('stops retrying when its signal aborts', async () => {
      ddb.on(UpdateItemCommand).rejects(throttled());
      const controller = new AbortController();
      controller.abort(new Error('shutting down'));
      await expect(store.checkpoint(held, { from: '100', to: '200' }, controller.signal)).rejects.toThrow(
        'shutting down',
      );
      expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(0);
    });
  });

  describe('ensureLeases and listLeases', () => {
    it('writes parents before children, so no child lease exists without its parent', async () => {
      const events: string[] = [];
      ddb.on(PutItemCommand).callsFake(async (input: { Item: { shardId: { S: string } } }) => {
        const id = input.Item.shardId.S;
        events.push(`start ${id}`);
        // The parents are slow: with plain concurrency the children would be written first.
        await new Promise((resolve) => setTimeout(resolve, id.startsWith('parent') ? 20 : 0));
        events.push(`done ${id}`);
        return {};
      });
      const created = await store.ensureLeases([
        { shardId: 'child-1', parentShardIds: ['parent-a'] },
        { shardId: 'grandchild', parentShardIds: ['child-1', 'child-2'] },
        { shardId: 'child-2', parentShardIds: ['parent-a', 'parent-b'] },
        { shardId: 'orphan', parentShardIds: ['trimmed-long-ago'] },
        { shardId: 'parent-a', parentShardIds: [] },
        { shardId: 'parent-b', parentShardIds: [] },
      ]);
      expect(created).toBe(6);
      const at = (e: string) => events.indexOf(e);
      for (const [child, parents] of [
        ['child-1', ['parent-a']],
        ['child-2', ['parent-a', 'parent-b']],
        ['grandchild', ['child-1', 'child-2']],
      ] as const) {
        for (const parent of parents) expect(at(`start ${child}`)).toBeGreaterThan(at(`done ${parent}`));
      }
    });

    it('creates missing leases only, and counts them', async () => {
      ddb
        .on(PutItemCommand, { Item: { shardId: { S: 'shard-1' } } }, false)
        .rejects(conditionFailed())
        .on(PutItemCommand, { Item: { shardId: { S: 'shard-2' } } }, false)
        .resolves({});
      const created = await store.ensureLeases([
        { shardId: 'shard-1', parentShardIds: [] },
        { shardId: 'shard-2', parentShardIds: ['shard-1'] },
      ]);
      expect(created).toBe(1);
      const put = ddb
        .commandCalls(PutItemCommand)
        .find((c) => c.args[0].input.Item?.['shardId']?.S === 'shard-2')!;
      expect(put.args[0].input).toMatchObject({
        ConditionExpression: 'attribute_not_exists(#sortKey)',
        Item: {
          streamArn: { S: STREAM },
          leaseKey: { S: 'shard#shard-2' },
          checkpoint: { S: TRIM_HORIZON },
          leaseEpoch: { N: '0' },
          leaseCounter: { N: '0' },
          parentShardIds: { L: [{ S: 'shard-1' }] },
        },
      });
      expect(put.args[0].input.Item?.['owner']).toBeUndefined();
    });

    it('queries the stream partition for shard# keys, page by page', async () => {
      const lastKey = { streamArn: { S: STREAM }, leaseKey: { S: 'shard#a' } };
      ddb
        .on(QueryCommand)
        .resolvesOnce({ Items: [item({ shardId: 'a' })], LastEvaluatedKey: lastKey })
        .resolvesOnce({ Items: [item({ shardId: 'b', owner: undefined, lastEventTimeMs: 42 })] });
      const leases = await store.listLeases();
      expect(leases).toEqual([
        { ...held, shardId: 'a' },
        { ...held, shardId: 'b', owner: undefined, lastEventTimeMs: 42 },
      ]);
      const calls = ddb.commandCalls(QueryCommand);
      expect(calls).toHaveLength(2);
      expect(calls[0]!.args[0].input).toMatchObject({
        KeyConditionExpression: '#pk = :streamArn AND begins_with(#sk, :prefix)',
        ExpressionAttributeValues: { ':streamArn': { S: STREAM }, ':prefix': { S: 'shard#' } },
        ConsistentRead: true,
      });
      expect(calls[1]!.args[0].input.ExclusiveStartKey).toEqual(lastKey);
    });

    it('refuses a malformed lease item', async () => {
      const bad = item();
      delete bad['leaseEpoch'];
      ddb.on(QueryCommand).resolves({ Items: [bad] });
      await expect(store.listLeases()).rejects.toThrow(/leaseEpoch/);
    });
  });
});
