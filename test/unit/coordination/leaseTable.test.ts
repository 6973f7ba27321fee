import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { startPositionOf } from '../../../src/coordination/lease.js';
import { createLeaseTable, leaseFromItem, newLeaseItem } from '../../../src/coordination/leaseTable.js';
import { ChangelogError } from '../../../src/support/errors.js';

const KEY_SCHEMA = [
  { AttributeName: 'streamArn', KeyType: 'HASH' as const },
  { AttributeName: 'leaseKey', KeyType: 'RANGE' as const },
];
const table = (TableStatus: 'CREATING' | 'ACTIVE') => ({ Table: { TableStatus, KeySchema: KEY_SCHEMA } });
const notFound = () => new ResourceNotFoundException({ message: 'no table', $metadata: {} });

describe('createLeaseTable (mocked client)', () => {
  let client: DynamoDBClient;
  let ddb: ReturnType<typeof mockClient>;

  beforeEach(() => {
    client = new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    ddb = mockClient(client);
  });

  it('creates an on-demand table with the lease key schema and waits until ACTIVE', async () => {
    ddb
      .on(DescribeTableCommand)
      .rejectsOnce(notFound())
      .rejectsOnce(notFound()) // not yet visible right after CreateTable
      .resolvesOnce(table('CREATING'))
      .resolves(table('ACTIVE'));
    ddb.on(CreateTableCommand).resolves({});
    await createLeaseTable(client, 'leases', { pollIntervalMs: 1 });
    expect(ddb.commandCalls(CreateTableCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'leases',
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: KEY_SCHEMA,
    });
    expect(ddb.commandCalls(DescribeTableCommand)).toHaveLength(4);
  });

  it('does not call CreateTable when the table exists', async () => {
    ddb.on(DescribeTableCommand).resolves(table('ACTIVE'));
    await createLeaseTable(client, 'leases');
    expect(ddb.commandCalls(CreateTableCommand)).toHaveLength(0);
  });

  it('accepts a concurrent creator (ResourceInUseException)', async () => {
    ddb.on(DescribeTableCommand).rejectsOnce(notFound()).resolves(table('ACTIVE'));
    ddb.on(CreateTableCommand).rejects(new ResourceInUseException({ message: 'exists', $metadata: {} }));
    await expect(createLeaseTable(client, 'leases', { pollIntervalMs: 1 })).resolves.toBeUndefined();
  });

  it('gives up after the bounded wait', async () => {
    ddb.on(DescribeTableCommand).resolves(table('CREATING'));
    const error = await createLeaseTable(client, 'leases', { pollIntervalMs: 5, timeoutMs: 20 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ChangelogError);
    expect((error as Error).message).toMatch(/not ACTIVE after 20 ms \(status CREATING\)/);
  });

  it('stops waiting when its signal aborts', async () => {
    ddb.on(DescribeTableCommand).resolves(table('CREATING'));
    const controller = new AbortController();
    const waiting = createLeaseTable(client, 'leases', { pollIntervalMs: 5, signal: controller.signal });
    controller.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');
  });
});

describe('lease items: where a shard starts reading', () => {
  const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000';

  it('round-trips startAt and startingSequenceNumber', () => {
    const item = newLeaseItem(STREAM, {
      shardId: 'child',
      parentShardIds: ['parent'],
      startAt: 'AT_SEQUENCE_NUMBER',
      startingSequenceNumber: '100000000000000000001',
    });
    expect(item['startAt']).toEqual({ S: 'AT_SEQUENCE_NUMBER' });
    expect(leaseFromItem(item)).toEqual({
      shardId: 'child',
      owner: undefined,
      leaseCounter: 0,
      leaseEpoch: 0,
      checkpoint: 'TRIM_HORIZON',
      parentShardIds: ['parent'],
      startAt: 'AT_SEQUENCE_NUMBER',
      startingSequenceNumber: '100000000000000000001',
    });
  });

  it('reads an item written before the attributes existed, without them', () => {
    const lease = leaseFromItem(newLeaseItem(STREAM, { shardId: 'old', parentShardIds: [] }));
    expect(lease).not.toHaveProperty('startAt');
    expect(lease).not.toHaveProperty('startingSequenceNumber');
    expect(startPositionOf(lease)).toEqual({ type: 'TRIM_HORIZON' });
  });

  it('refuses an unknown startAt or a startingSequenceNumber that is not one', () => {
    const item = newLeaseItem(STREAM, { shardId: 's', parentShardIds: [] });
    expect(() => leaseFromItem({ ...item, startAt: { S: 'LATEST' } })).toThrow(/startAt/);
    expect(() => leaseFromItem({ ...item, startingSequenceNumber: { S: 'x1' } })).toThrow(
      /startingSequenceNumber/,
    );
  });
});
