import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ResourceInUseException,
  ScanCommand,
  UpdateItemCommand,
  UpdateTableCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DemoProducer,
  ensureDemoTable,
  newOrderItem,
  nextOp,
  type OrderStatus,
} from '../../../../src/app/local/demoProducer.js';
import { seededRandom } from '../../../../src/support/random.js';

const ddb = mockClient(DynamoDBClient);
const client = () =>
  new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });

beforeEach(() => {
  ddb.reset();
  ddb.on(ScanCommand).resolves({ Items: [] });
  ddb.on(PutItemCommand).resolves({});
  ddb.on(UpdateItemCommand).resolves({});
  ddb.on(DeleteItemCommand).resolves({});
});
afterEach(() => ddb.reset());

/** Replays the producer's calls against a model of the table and checks each one was valid. */
function replay(): { ops: string[]; table: Map<string, OrderStatus> } {
  const table = new Map<string, OrderStatus>();
  const ops: string[] = [];
  for (const call of ddb.calls()) {
    const input = call.args[0].input as Record<string, unknown>;
    const key = (input.Key ?? input.Item) as Record<string, AttributeValue> | undefined;
    const id = key?.order_id?.S;
    const values = input.ExpressionAttributeValues as Record<string, AttributeValue> | undefined;
    if (call.args[0] instanceof PutItemCommand) {
      expect(table.has(id!), `insert of an existing ${id}`).toBe(false);
      expect(input.ConditionExpression).toBe('attribute_not_exists(#id)');
      table.set(id!, 'placed');
      ops.push('INSERT');
    } else if (call.args[0] instanceof UpdateItemCommand) {
      expect(table.get(id!), `update of ${id}`).toBe(values![':from']!.S);
      const to = values![':to']!.S as OrderStatus;
      const order: OrderStatus[] = ['placed', 'paid', 'shipped', 'delivered'];
      expect(order.indexOf(to)).toBe(order.indexOf(table.get(id!)!) + 1);
      table.set(id!, to);
      ops.push('MODIFY');
    } else if (call.args[0] instanceof DeleteItemCommand) {
      const status = table.get(id!);
      expect(status, `delete of absent ${id}`).toBe(values![':expected']!.S);
      expect(['placed', 'paid', 'delivered']).toContain(status);
      table.delete(id!);
      ops.push('REMOVE');
    }
  }
  return { ops, table };
}

describe('DemoProducer', () => {
  it('writes a realistic mix of inserts, status updates and deletes, each valid for the order', async () => {
    const producer = new DemoProducer({
      client: client(),
      keys: 40,
      ratePerSecond: 0,
      concurrency: 4,
      random: seededRandom(7),
      maxWrites: 2_000,
    });
    const counts = await producer.run(new AbortController().signal);
    expect(counts.inserts + counts.updates + counts.deletes).toBe(2_000);
    expect(counts).toMatchObject({ conflicts: 0, errors: 0 });
    const { ops } = replay();
    expect(ops).toHaveLength(2_000);
    const share = (op: string) => ops.filter((o) => o === op).length / ops.length;
    // A lifecycle is one insert, up to three status changes and one delete (cancel or archive).
    expect(share('INSERT')).toBeGreaterThan(0.15);
    expect(share('INSERT')).toBeLessThan(0.35);
    expect(share('MODIFY')).toBeGreaterThan(0.4);
    expect(share('REMOVE')).toBeGreaterThan(0.15);
    expect(counts.inserts).toBe(ops.filter((o) => o === 'INSERT').length);
    expect(ddb.commandCalls(ScanCommand)).toHaveLength(1);
  });

  it('continues from the orders a previous run left in the table', async () => {
    ddb.on(ScanCommand).resolves({
      Items: [
        { order_id: { S: 'ord-000000' }, status: { S: 'shipped' } },
        { order_id: { S: 'ord-000007' }, status: { S: 'paid' } }, // outside --keys: ignored
      ],
    });
    const producer = new DemoProducer({
      client: client(),
      keys: 1,
      ratePerSecond: 0,
      concurrency: 1,
      maxWrites: 2,
    });
    const counts = await producer.run(new AbortController().signal);
    expect(counts).toMatchObject({ inserts: 0, updates: 1, deletes: 1 });
    const [deliver, archive] = ddb
      .calls()
      .slice(1)
      .map((c) => c.args[0].input as Record<string, unknown>);
    expect(deliver).toMatchObject({
      ExpressionAttributeValues: { ':from': { S: 'shipped' }, ':to': { S: 'delivered' } },
    });
    expect(archive).toMatchObject({ ExpressionAttributeValues: { ':expected': { S: 'delivered' } } });
  });

  it('re-reads an order whose write was refused, and carries on', async () => {
    ddb
      .on(PutItemCommand)
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'exists', $metadata: {} }));
    ddb.on(GetItemCommand).resolves({ Item: { order_id: { S: 'ord-000000' }, status: { S: 'paid' } } });
    const producer = new DemoProducer({
      client: client(),
      keys: 1,
      ratePerSecond: 0,
      concurrency: 1,
      maxWrites: 2,
    });
    const counts = await producer.run(new AbortController().signal);
    expect(counts).toMatchObject({ conflicts: 1, inserts: 0 });
    const second = ddb.calls().at(-1)!.args[0].input as {
      ExpressionAttributeValues: Record<string, AttributeValue>;
    };
    expect(
      second.ExpressionAttributeValues[':from'] ?? second.ExpressionAttributeValues[':expected'],
    ).toEqual({ S: 'paid' });
  });

  it('counts failed writes and keeps going', async () => {
    ddb.on(PutItemCommand).rejectsOnce(new Error('socket hang up')).resolves({});
    const producer = new DemoProducer({
      client: client(),
      keys: 5,
      ratePerSecond: 0,
      concurrency: 1,
      maxWrites: 3,
    });
    const counts = await producer.run(new AbortController().signal);
    expect(counts.errors).toBe(1);
    expect(counts.inserts + counts.updates + counts.deletes).toBe(2);
  }, 10_000);

  it('keeps to the rate and stops when aborted', async () => {
    const producer = new DemoProducer({ client: client(), keys: 100, ratePerSecond: 50 });
    const controller = new AbortController();
    const started = performance.now();
    const running = producer.run(controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 400));
    controller.abort();
    await running;
    const seconds = (performance.now() - started) / 1000;
    expect(producer.written).toBeGreaterThan(5);
    expect(producer.written).toBeLessThanOrEqual(Math.ceil(seconds * 50) + 1);
  });
});

describe('demo orders', () => {
  it('moves an order placed -> paid -> shipped -> delivered -> archived, cancelling some', () => {
    const random = seededRandom(1);
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      seen.add(`${nextOp(undefined, random)}`);
      seen.add(`placed:${nextOp('placed', random)}`);
      seen.add(`paid:${nextOp('paid', random)}`);
      seen.add(`shipped:${nextOp('shipped', random)}`);
      seen.add(`delivered:${nextOp('delivered', random)}`);
    }
    expect([...seen].sort()).toEqual([
      'delivered:archive',
      'insert',
      'paid:cancel',
      'paid:ship',
      'placed:cancel',
      'placed:pay',
      'shipped:deliver',
    ]);
  });

  it('builds items with nested maps, a list of maps, a string set and decimal amounts', () => {
    const random = seededRandom(3);
    for (let i = 0; i < 50; i++) {
      const item = newOrderItem(`ord-${i}`, random, Date.UTC(2026, 0, 1));
      expect(item.order_id).toEqual({ S: `ord-${i}` });
      expect(item.status).toEqual({ S: 'placed' });
      expect(item.customer?.M?.email?.S).toMatch(/@example\.com$/);
      expect(item.shipping_address?.M?.country?.S).toMatch(/^[A-Z]{2}$/);
      const lines = item.items?.L ?? [];
      expect(lines.length).toBeGreaterThanOrEqual(1);
      let subtotal = 0;
      for (const line of lines) {
        subtotal += Number(line.M?.qty?.N) * Number(line.M?.unit_price?.N);
      }
      expect(item.subtotal?.N).toBe(subtotal.toFixed(2));
      expect(Number(item.total?.N)).toBeCloseTo(Number(item.subtotal?.N) + Number(item.shipping?.N), 2);
      if (item.tags !== undefined) expect(item.tags.SS?.length).toBeGreaterThan(0);
      expect(item.created_at).toEqual({ S: '2026-01-01T00:00:00.000Z' });
    }
  });
});

describe('ensureDemoTable', () => {
  it('creates the table with a NEW_AND_OLD_IMAGES stream', async () => {
    ddb.on(CreateTableCommand).resolves({});
    await ensureDemoTable(client());
    expect(ddb.commandCalls(CreateTableCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'orders',
      KeySchema: [{ AttributeName: 'order_id', KeyType: 'HASH' }],
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    });
  });

  it('keeps the table of an earlier run, enabling its stream if it was turned off', async () => {
    ddb.on(CreateTableCommand).rejects(new ResourceInUseException({ message: 'exists', $metadata: {} }));
    ddb.on(DescribeTableCommand).resolves({ Table: { StreamSpecification: { StreamEnabled: false } } });
    ddb.on(UpdateTableCommand).resolves({});
    await ensureDemoTable(client());
    expect(ddb.commandCalls(UpdateTableCommand)).toHaveLength(1);
    ddb.on(DescribeTableCommand).resolves({ Table: { StreamSpecification: { StreamEnabled: true } } });
    await ensureDemoTable(client());
    expect(ddb.commandCalls(UpdateTableCommand)).toHaveLength(1);
  });
});
