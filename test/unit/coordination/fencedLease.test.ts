import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { FencedLease, type LeaseCall } from '../../../src/coordination/fencedLease.js';
import type { HeldLease, LeaseFields } from '../../../src/coordination/lease.js';
import { LeaseExpiryTracker } from '../../../src/coordination/leaseExpiry.js';
import { RegistryStore } from '../../../src/coordination/registryStore.js';
import { ChangelogError, LeaseLostError } from '../../../src/support/errors.js';

/*
 * The one fenced lease mechanism on a lease item that is not a shard's (a role lease such as the
 * compactor's in the registry partition): take, renew, release, get, fencing, and the re-read
 * that decides a failed condition. The shard leases' own tests (leaseStore.test.ts) cover it too.
 */

const KEY = { streamArn: { S: 'table#orders' }, leaseKey: { S: 'compactor' } };
const ME = 'worker-a';
const held: HeldLease<LeaseFields> = { owner: ME, leaseCounter: 7, leaseEpoch: 3 };

function item(lease: Partial<LeaseFields> = {}): Record<string, AttributeValue> {
  const l = { ...held, ...lease };
  return {
    ...KEY,
    leaseCounter: { N: String(l.leaseCounter) },
    leaseEpoch: { N: String(l.leaseEpoch) },
    ...(l.owner !== undefined && { owner: { S: l.owner } }),
  };
}

function parse(stored: Record<string, AttributeValue>): LeaseFields {
  return {
    owner: stored['owner']?.S,
    leaseCounter: Number(stored['leaseCounter']?.N),
    leaseEpoch: Number(stored['leaseEpoch']?.N),
  };
}

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
const validation = () =>
  new DynamoDBServiceException({
    name: 'ValidationException',
    message: 'bad expression',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
  });

describe('FencedLease (mocked client)', () => {
  let client: DynamoDBClient;
  let ddb: ReturnType<typeof mockClient>;
  let operations: string[];
  let lease: FencedLease<LeaseFields>;

  beforeEach(() => {
    client = new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    ddb = mockClient(client);
    operations = [];
    // The store's wrapper: here it only records which operation each call belongs to.
    const call: LeaseCall = (operation, signal, fn) => {
      operations.push(operation);
      return fn(signal);
    };
    lease = new FencedLease({ client, tableName: 'leases', key: KEY, name: 'compactor', parse, call });
  });

  const updateInput = (n = 0) => ddb.commandCalls(UpdateItemCommand)[n]!.args[0].input;

  describe('get', () => {
    it('reads the item consistently; undefined when there is none', async () => {
      ddb.on(GetItemCommand).resolvesOnce({ Item: item() }).resolves({});
      expect(await lease.get()).toEqual(held);
      expect(await lease.get()).toBeUndefined();
      expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({
        TableName: 'leases',
        Key: KEY,
        ConsistentRead: true,
      });
      expect(operations).toEqual(['read', 'read']);
    });
  });

  describe('take', () => {
    it('creates the item when it observed none: owner, counter 1, epoch 1', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 1, leaseEpoch: 1 }) });
      expect(await lease.take(undefined, ME)).toEqual({ owner: ME, leaseCounter: 1, leaseEpoch: 1 });
      const input = updateInput();
      expect(input).toMatchObject({
        TableName: 'leases',
        Key: KEY,
        ConditionExpression: 'attribute_not_exists(#leaseKey)',
        UpdateExpression:
          'SET #owner = :me, #leaseCounter = if_not_exists(#leaseCounter, :zero) + :one, #leaseEpoch = if_not_exists(#leaseEpoch, :zero) + :one REMOVE #pendingOwner',
        ReturnValues: 'ALL_NEW',
      });
      expect(input.ExpressionAttributeNames).toEqual({
        '#owner': 'owner',
        '#leaseCounter': 'leaseCounter',
        '#leaseEpoch': 'leaseEpoch',
        '#pendingOwner': 'pendingOwner',
        '#leaseKey': 'leaseKey',
      });
      expect(input.ExpressionAttributeValues).toEqual({
        ':me': { S: ME },
        ':one': { N: '1' },
        ':zero': { N: '0' },
      });
      expect(operations).toEqual(['take']);
    });

    it('is conditional on the observed counter and the absent owner of a free lease', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 5, leaseEpoch: 3 }) });
      await lease.take({ owner: undefined, leaseCounter: 4, leaseEpoch: 2 }, ME);
      const input = updateInput();
      expect(input.ConditionExpression).toBe(
        '#leaseCounter = :observedCounter AND attribute_not_exists(#owner)',
      );
      expect(input.ExpressionAttributeValues?.[':observedCounter']).toEqual({ N: '4' });
      expect(input.ExpressionAttributeNames?.['#leaseKey']).toBeUndefined();
    });

    it('is conditional on the observed owner when taking an expired lease', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 10, leaseEpoch: 5 }) });
      const taken = await lease.take({ owner: 'worker-b', leaseCounter: 9, leaseEpoch: 4 }, ME);
      expect(taken).toEqual({ owner: ME, leaseCounter: 10, leaseEpoch: 5 });
      const input = updateInput();
      expect(input.ConditionExpression).toBe('#leaseCounter = :observedCounter AND #owner = :observedOwner');
      expect(input.ExpressionAttributeValues?.[':observedOwner']).toEqual({ S: 'worker-b' });
    });

    it('returns undefined when another worker moved first (decided from a consistent re-read)', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-c', leaseCounter: 10, leaseEpoch: 5 }) });
      expect(await lease.take({ owner: 'worker-b', leaseCounter: 9, leaseEpoch: 4 }, ME)).toBeUndefined();
      expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input.ConsistentRead).toBe(true);
      // A race to create the item is lost the same way.
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-c', leaseCounter: 1, leaseEpoch: 1 }) });
      expect(await lease.take(undefined, ME)).toBeUndefined();
    });

    it('returns the lease when the re-read shows its own earlier attempt landed (one epoch more)', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseCounter: 1, leaseEpoch: 1 }) });
      expect(await lease.take(undefined, ME)).toEqual({ owner: ME, leaseCounter: 1, leaseEpoch: 1 });
      // Ours, but not at the epoch this take gives: not this take's doing.
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseCounter: 12, leaseEpoch: 6 }) });
      expect(await lease.take({ owner: 'worker-b', leaseCounter: 9, leaseEpoch: 4 }, ME)).toBeUndefined();
    });

    it('throws any other failure as it comes, without a re-read', async () => {
      ddb.on(UpdateItemCommand).rejects(validation());
      await expect(lease.take(undefined, ME)).rejects.toThrow('bad expression');
      expect(ddb.commandCalls(GetItemCommand)).toHaveLength(0);
    });
  });

  describe('renew', () => {
    it('advances the counter under the owner + epoch of the held lease', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 8 }) });
      expect(await lease.renew(held)).toEqual({ ...held, leaseCounter: 8 });
      const input = updateInput();
      expect(input).toMatchObject({
        UpdateExpression: 'SET #leaseCounter = #leaseCounter + :one',
        ConditionExpression: '#owner = :me AND #leaseEpoch = :epoch',
        ExpressionAttributeNames: {
          '#owner': 'owner',
          '#leaseEpoch': 'leaseEpoch',
          '#leaseCounter': 'leaseCounter',
        },
        ExpressionAttributeValues: { ':me': { S: ME }, ':epoch': { N: '3' }, ':one': { N: '1' } },
        ReturnValues: 'ALL_NEW',
      });
      expect(operations).toEqual(['renew']);
    });

    it('sets what the holder reports with the heartbeat', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 8 }) });
      await lease.renew(held, undefined, {
        set: '#progress = :progress',
        names: { '#progress': 'progress' },
        values: { ':progress': { N: '42' } },
      });
      const input = updateInput();
      expect(input.UpdateExpression).toBe('SET #leaseCounter = #leaseCounter + :one, #progress = :progress');
      expect(input.ExpressionAttributeNames?.['#progress']).toBe('progress');
      expect(input.ExpressionAttributeValues?.[':progress']).toEqual({ N: '42' });
    });

    it('succeeds when the re-read shows its own earlier attempt advanced the counter', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseCounter: 8 }) });
      expect(await lease.renew(held)).toEqual({ ...held, leaseCounter: 8 });
    });

    it('throws LeaseLostError, naming the lease and its holder now, once another worker took it', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-b', leaseEpoch: 4, leaseCounter: 9 }) });
      const error = await lease.renew(held).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LeaseLostError);
      expect((error as LeaseLostError).retriable).toBe(false);
      expect((error as Error).message).toBe(
        'renew failed: worker-a lost the lease of compactor (held at epoch 3; it is now held by worker-b at epoch 4)',
      );
    });

    it('fences out a holder that took the lease back since: another epoch is another holder', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ leaseEpoch: 5, leaseCounter: 20 }) });
      await expect(lease.renew(held)).rejects.toBeInstanceOf(LeaseLostError);
    });

    it('throws LeaseLostError when the item is gone', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({});
      await expect(lease.renew(held)).rejects.toThrow(/its lease item is gone/);
    });
  });

  describe('release', () => {
    it('removes the owner and bumps the counter, fenced', async () => {
      ddb.on(UpdateItemCommand).resolves({ Attributes: item({ owner: undefined, leaseCounter: 8 }) });
      expect(await lease.release(held)).toEqual({ owner: undefined, leaseCounter: 8, leaseEpoch: 3 });
      const input = updateInput();
      expect(input.UpdateExpression).toBe('REMOVE #owner SET #leaseCounter = #leaseCounter + :one');
      expect(input.ConditionExpression).toBe('#owner = :me AND #leaseEpoch = :epoch');
    });

    it('succeeds when the re-read shows its own earlier attempt released it', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: undefined, leaseCounter: 8 }) });
      expect(await lease.release(held)).toEqual({ owner: undefined, leaseCounter: 8, leaseEpoch: 3 });
    });

    it('throws LeaseLostError when another worker holds it, or it is free at another epoch', async () => {
      ddb.on(UpdateItemCommand).rejects(conditionFailed());
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-b', leaseEpoch: 4 }) });
      await expect(lease.release(held)).rejects.toBeInstanceOf(LeaseLostError);
      ddb.on(GetItemCommand).resolves({ Item: item({ owner: undefined, leaseEpoch: 4, leaseCounter: 12 }) });
      await expect(lease.release(held)).rejects.toThrow(/it is now free at epoch 4/);
    });
  });

  describe('fencedUpdate and send', () => {
    it('builds a holder write fenced on owner + epoch, its own condition ANDed after', () => {
      expect(
        lease.fencedUpdate(held, {
          update: 'SET #progress = :to',
          condition: '#progress = :from',
          names: { '#progress': 'progress' },
          values: { ':from': { N: '1' }, ':to': { N: '2' } },
        }),
      ).toEqual({
        TableName: 'leases',
        Key: KEY,
        UpdateExpression: 'SET #progress = :to',
        ConditionExpression: '#owner = :me AND #leaseEpoch = :epoch AND #progress = :from',
        ExpressionAttributeNames: { '#owner': 'owner', '#leaseEpoch': 'leaseEpoch', '#progress': 'progress' },
        ExpressionAttributeValues: {
          ':me': { S: ME },
          ':epoch': { N: '3' },
          ':from': { N: '1' },
          ':to': { N: '2' },
        },
      });
    });

    it('sends an update and returns the lease as written; refuses an answer without the item', async () => {
      ddb
        .on(UpdateItemCommand)
        .resolvesOnce({ Attributes: item({ leaseCounter: 9 }) })
        .resolves({});
      const update = lease.fencedUpdate(held, {
        update: 'SET #leaseCounter = :n',
        values: { ':n': { N: '9' } },
      });
      expect(await lease.send('bump', update)).toEqual({ ...held, leaseCounter: 9 });
      const error = await lease.send('bump', update).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChangelogError);
      expect((error as ChangelogError).retriable).toBe(false);
      expect((error as Error).message).toBe('bump of compactor returned no item');
      expect(operations).toEqual(['bump', 'bump']);
    });
  });
});

describe('LeaseExpiryTracker of a lease that is not a shard’s', () => {
  it('expires it when its counter stood still for failoverMs, keyed by the name it is given', () => {
    const clock = { t: 0 };
    const tracker = new LeaseExpiryTracker<LeaseFields>({
      failoverMs: 1000,
      now: () => clock.t,
      idOf: () => 'sealer',
    });
    const other = { owner: 'worker-b', leaseCounter: 4, leaseEpoch: 2 };
    tracker.observe([other]);
    expect(tracker.isExpired(other)).toBe(false);
    clock.t = 999;
    tracker.observe([other]);
    expect(tracker.isExpired(other)).toBe(false);
    clock.t = 1000;
    expect(tracker.isExpired(other)).toBe(true);
    // It moved: a new wait. Unlisted (no item): forgotten.
    tracker.observe([{ ...other, leaseCounter: 5 }]);
    expect(tracker.isExpired({ ...other, leaseCounter: 5 })).toBe(false);
    tracker.observe([]);
    clock.t = 5000;
    expect(tracker.isExpired({ ...other, leaseCounter: 5 })).toBe(false);
    expect(tracker.isExpired({ ...other, owner: undefined })).toBe(true);
  });
});

describe('RegistryStore leases (the mechanism on registry items)', () => {
  let ddb: ReturnType<typeof mockClient>;
  let registry: RegistryStore;

  beforeEach(() => {
    const client = new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    ddb = mockClient(client);
    registry = new RegistryStore({ client, tableName: 'leases', table: 'orders', retry: { retries: 0 } });
  });

  it('keeps a role lease at its key in the table partition, the sealer lease at `sealer`', async () => {
    ddb.on(UpdateItemCommand).resolves({ Attributes: item({ leaseCounter: 1, leaseEpoch: 1 }) });
    await registry.lease('compactor').take(undefined, ME);
    await registry.takeSealerLease(undefined, ME);
    expect(ddb.commandCalls(UpdateItemCommand).map((c) => c.args[0].input.Key)).toEqual([
      { streamArn: { S: 'table#orders' }, leaseKey: { S: 'compactor' } },
      { streamArn: { S: 'table#orders' }, leaseKey: { S: 'sealer' } },
    ]);
  });

  it('reports a lost sealer lease as undefined (renew) or nothing done (release)', async () => {
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    ddb.on(GetItemCommand).resolves({ Item: item({ owner: 'worker-b', leaseEpoch: 4 }) });
    expect(await registry.renewSealerLease(held)).toBeUndefined();
    await expect(registry.releaseSealerLease(held)).resolves.toBeUndefined();
  });

  it('names the lease in the errors it wraps', async () => {
    ddb.on(UpdateItemCommand).rejects(validation());
    const error = await registry.renewSealerLease(held).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChangelogError);
    expect((error as Error).message).toMatch(/^registry renew sealer lease for table orders failed: /);
  });
});
