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
import { SHARD_END, TRIM_HORIZON } from '../../../src/changelog/sequenceNumber.js';
import { type Lease, startPositionOf } from '../../../src/coordination/lease.js';
import {
  type ChangelogStart,
  changelogStartMessage,
  LeaseStore,
  planNewLeases,
} from '../../../src/coordination/leaseStore.js';
import { newLeaseItem } from '../../../src/coordination/leaseTable.js';
import { ChangelogError, LeaseLostError } from '../../../src/support/errors.js';

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
    /** The stream's changelog start item as stored, listing `shardIds`. */
    const startItem = (shardIds: string[]) => ({
      Item: {
        streamArn: { S: STREAM },
        leaseKey: { S: 'changelog-start' },
        startId: { S: 'abc' },
        startedAtMs: { N: '1700000000000' },
        startedBy: { S: 'worker-z' },
        shardCount: { N: String(shardIds.length) },
        shardIds: { L: shardIds.map((id) => ({ S: id })) },
      },
    });
    const noLeases = () => ddb.on(QueryCommand).resolves({ Items: [] });

    it('writes parents before children, so no child lease exists without its parent', async () => {
      noLeases();
      ddb
        .on(GetItemCommand)
        .resolves(startItem(['child-1', 'grandchild', 'child-2', 'orphan', 'parent-a', 'parent-b']));
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
      noLeases();
      ddb.on(GetItemCommand).resolves(startItem(['shard-1', 'shard-2']));
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
          startAt: { S: 'TRIM_HORIZON' },
        },
      });
      expect(put.args[0].input.Item?.['owner']).toBeUndefined();
    });

    it('skips shards whose lease is listed, writing nothing for them', async () => {
      ddb.on(QueryCommand).resolves({ Items: [item({ shardId: 'shard-1', owner: undefined })] });
      ddb.on(GetItemCommand).resolves(startItem(['shard-1']));
      ddb.on(PutItemCommand).resolves({});
      expect(await store.ensureLeases([{ shardId: 'shard-1', parentShardIds: [] }])).toBe(0);
      expect(ddb.commandCalls(PutItemCommand)).toHaveLength(0);
    });

    it('writes the changelog start once, conditionally, from the first listing', async () => {
      noLeases();
      ddb.on(GetItemCommand).resolves({});
      ddb.on(PutItemCommand).resolves({});
      const started: string[] = [];
      const timed = new LeaseStore({
        client,
        tableName: 'leases',
        streamArn: STREAM,
        workerId: ME,
        retry: { baseDelayMs: 1, retries: 3 },
        wallClock: () => Date.UTC(2026, 0, 2, 3, 4, 5),
      });
      const onChangelogStart = (start: ChangelogStart, existing: number) =>
        started.push(changelogStartMessage(start, existing));
      await timed.ensureLeases(
        [
          { shardId: 'b', parentShardIds: [], startingSequenceNumber: '200' },
          { shardId: 'a', parentShardIds: [], startingSequenceNumber: '100' },
        ],
        undefined,
        { onChangelogStart },
      );
      const puts = ddb.commandCalls(PutItemCommand).map((c) => c.args[0].input);
      const header = puts.find((p) => p.Item?.['leaseKey']?.S === 'changelog-start')!;
      expect(header).toMatchObject({
        ConditionExpression: 'attribute_not_exists(#sortKey)',
        Item: {
          streamArn: { S: STREAM },
          startedAtMs: { N: String(Date.UTC(2026, 0, 2, 3, 4, 5)) },
          startedBy: { S: ME },
          shardCount: { N: '2' },
          shardIds: { L: [{ S: 'a' }, { S: 'b' }] },
        },
      });
      // The start is written before any lease, and the listed shards start at TRIM_HORIZON.
      expect(puts[0]).toBe(header);
      expect(puts.filter((p) => p.Item?.['startAt']?.S === 'TRIM_HORIZON')).toHaveLength(2);
      expect(started).toEqual([
        'changelog starts at 2026-01-02T03:04:05.000Z with 2 shards from TRIM_HORIZON',
      ]);

      // Kept: a later call reads nothing again and writes no second start.
      ddb.resetHistory();
      ddb.on(QueryCommand).resolves({ Items: [item({ shardId: 'a', owner: undefined })] });
      await timed.ensureLeases(
        [
          { shardId: 'a', parentShardIds: [], startingSequenceNumber: '100' },
          { shardId: 'c', parentShardIds: ['a'], startingSequenceNumber: '300' },
        ],
        undefined,
        { onChangelogStart },
      );
      expect(ddb.commandCalls(GetItemCommand)).toHaveLength(0);
      expect(ddb.commandCalls(PutItemCommand).map((c) => c.args[0].input.Item?.['startAt'])).toEqual([
        { S: 'AT_SEQUENCE_NUMBER' },
      ]);
      expect(started).toHaveLength(1);
    });

    it('adopts the start another worker wrote first, and does not log it', async () => {
      noLeases();
      ddb
        .on(GetItemCommand)
        .resolvesOnce({})
        .resolves(startItem(['a']));
      ddb
        .on(PutItemCommand, { Item: { leaseKey: { S: 'changelog-start' } } }, false)
        .rejects(conditionFailed())
        .on(PutItemCommand, { Item: { shardId: { S: 'a' } } }, false)
        .resolves({})
        .on(PutItemCommand, { Item: { shardId: { S: 'b' } } }, false)
        .resolves({});
      const started: unknown[] = [];
      await store.ensureLeases(
        [
          { shardId: 'a', parentShardIds: [], startingSequenceNumber: '100' },
          { shardId: 'b', parentShardIds: [], startingSequenceNumber: '200' },
        ],
        undefined,
        { onChangelogStart: (start) => started.push(start) },
      );
      const startAt = (id: string) =>
        ddb.commandCalls(PutItemCommand).find((c) => c.args[0].input.Item?.['shardId']?.S === id)!.args[0]
          .input.Item;
      // The stored start holds only `a`: `b` was not listed when the changelog began.
      expect(startAt('a')).toMatchObject({ startAt: { S: 'TRIM_HORIZON' } });
      expect(startAt('b')).toMatchObject({
        startAt: { S: 'AT_SEQUENCE_NUMBER' },
        startingSequenceNumber: { S: '200' },
      });
      expect(started).toEqual([]);
      expect(await store.changelogStart()).toMatchObject({ startId: 'abc', shardIds: new Set(['a']) });
    });

    it('splits a start of many shards into chunk items written before the header, and reads them back', async () => {
      noLeases();
      ddb.on(GetItemCommand).resolves({});
      const written: Record<string, AttributeValue>[] = [];
      ddb.on(PutItemCommand).callsFake(async (input: { Item: Record<string, AttributeValue> }) => {
        written.push(input.Item);
        return {};
      });
      const shards = Array.from({ length: 4500 }, (_, i) => ({
        shardId: `shard-${String(i).padStart(5, '0')}`,
        parentShardIds: [],
      }));
      await store.ensureLeases(shards);
      const headerAt = written.findIndex((i) => i['leaseKey']?.S === 'changelog-start');
      const chunks = written.filter((i) => i['leaseKey']?.S?.startsWith('changelog-start#'));
      expect(chunks.map((c) => c['shardIds']?.L?.length)).toEqual([2000, 2000, 500]);
      expect(written.slice(0, headerAt)).toEqual(chunks);
      const header = written[headerAt]!;
      expect(header['shardIds']).toBeUndefined();
      expect(header).toMatchObject({ shardCount: { N: '4500' }, chunkCount: { N: '3' } });

      const reader = new LeaseStore({ client, tableName: 'leases', streamArn: STREAM, workerId: 'worker-b' });
      ddb.on(GetItemCommand).resolves({ Item: header });
      ddb.on(QueryCommand).resolves({ Items: chunks });
      const start = await reader.changelogStart();
      expect(start?.shardIds.size).toBe(4500);
      const query = ddb.commandCalls(QueryCommand).at(-1)!.args[0].input;
      expect(query.ExpressionAttributeValues?.[':prefix']).toEqual({
        S: `changelog-start#${header['startId']?.S}#`,
      });
    });

    it('refuses a changelog start whose chunks are missing', async () => {
      ddb.on(GetItemCommand).resolves({
        Item: {
          ...startItem([]).Item,
          shardIds: undefined,
          shardCount: { N: '4000' },
          chunkCount: { N: '2' },
        },
      } as never);
      ddb.on(QueryCommand).resolves({ Items: [] });
      await expect(store.changelogStart()).rejects.toThrow(/0 of its 2 chunk items/);
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

describe('planNewLeases (where each new lease starts reading)', () => {
  const lineage = (shardId: string, parent?: string, startingSequenceNumber?: string) => ({
    shardId,
    parentShardIds: parent === undefined ? [] : [parent],
    ...(startingSequenceNumber !== undefined && { startingSequenceNumber }),
  });

  it('starts the start set and its ancestors at TRIM_HORIZON, every later shard at its first sequence number', () => {
    const plan = planNewLeases(
      [
        lineage('grandparent', undefined, '1'),
        lineage('parent', 'grandparent', '2'),
        lineage('start', 'parent', '3'),
        lineage('child', 'start', '4'),
        lineage('later-root', undefined, '5'),
      ],
      new Set(),
      new Set(['start']),
    );
    expect(Object.fromEntries(plan.map((l) => [l.shardId, [l.startAt, l.startingSequenceNumber]]))).toEqual({
      grandparent: ['TRIM_HORIZON', undefined],
      parent: ['TRIM_HORIZON', undefined],
      start: ['TRIM_HORIZON', undefined],
      child: ['AT_SEQUENCE_NUMBER', '4'],
      'later-root': ['AT_SEQUENCE_NUMBER', '5'],
    });
  });

  it('adds a VANISHED lease for an unlisted, unleased parent of a later shard, not of a start shard', () => {
    const plan = planNewLeases(
      [lineage('start', 'trimmed-before-start', '1'), lineage('child', 'trimmed-unread', '2')],
      new Set(),
      new Set(['start']),
    );
    expect(plan).toEqual([
      { shardId: 'start', parentShardIds: ['trimmed-before-start'], startAt: 'TRIM_HORIZON' },
      { shardId: 'trimmed-unread', parentShardIds: [], startAt: 'VANISHED' },
      {
        shardId: 'child',
        parentShardIds: ['trimmed-unread'],
        startAt: 'AT_SEQUENCE_NUMBER',
        startingSequenceNumber: '2',
      },
    ]);
  });

  it('leaves leased shards and the parents of leased children alone', () => {
    const plan = planNewLeases(
      [lineage('read-child', 'trimmed-after-read', '1'), lineage('new-child', 'leased-parent', '2')],
      new Set(['read-child', 'leased-parent']),
      new Set(),
    );
    expect(plan.map((l) => l.shardId)).toEqual(['new-child']);
  });

  it('maps a lease to its reader start, old items (no startAt) keeping TRIM_HORIZON', () => {
    expect(startPositionOf({})).toEqual({ type: 'TRIM_HORIZON' });
    expect(startPositionOf({ startAt: 'TRIM_HORIZON', startingSequenceNumber: '7' })).toEqual({
      type: 'TRIM_HORIZON',
    });
    expect(startPositionOf({ startAt: 'AT_SEQUENCE_NUMBER', startingSequenceNumber: '7' })).toEqual({
      type: 'AT_SEQUENCE_NUMBER',
      sequenceNumber: '7',
    });
    expect(startPositionOf({ startAt: 'AT_SEQUENCE_NUMBER' })).toEqual({ type: 'VANISHED' });
    expect(startPositionOf({ startAt: 'VANISHED' })).toEqual({ type: 'VANISHED' });
  });
});
