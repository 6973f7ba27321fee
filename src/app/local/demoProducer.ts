import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ResourceInUseException,
  ScanCommand,
  UpdateItemCommand,
  UpdateTableCommand,
} from '@aws-sdk/client-dynamodb';
import type { Logger } from '../../support/logger.js';
import { sleep } from '../../support/retry.js';

/*
 * The local stack's demo producer: an "orders" table written like a small shop would. Each order
 * goes through placed -> paid -> shipped -> delivered; some are cancelled (deleted) while placed or
 * paid, and delivered ones are eventually archived (deleted). The key space is bounded, so an order
 * id is reused after its order was deleted. Every write yields exactly one stream record:
 *
 *   INSERT  a new order (PutItem, only if absent)
 *   MODIFY  a status change (UpdateItem, only from the expected status)
 *   REMOVE  a cancellation or an archive (DeleteItem, only from the expected status)
 */

export const DEMO_TABLE = 'orders';
export const DEMO_KEY = 'order_id';

export type OrderStatus = 'placed' | 'paid' | 'shipped' | 'delivered';
export type DemoOp = 'insert' | 'pay' | 'ship' | 'deliver' | 'cancel' | 'archive';

export const STATUS_AFTER: Record<'pay' | 'ship' | 'deliver', OrderStatus> = {
  pay: 'paid',
  ship: 'shipped',
  deliver: 'delivered',
};

/** Creates the demo table with a NEW_AND_OLD_IMAGES stream, or checks the one a previous run made. */
export async function ensureDemoTable(client: DynamoDBClient, table = DEMO_TABLE): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: DEMO_KEY, KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: DEMO_KEY, AttributeType: 'S' }],
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
    const described = await client.send(new DescribeTableCommand({ TableName: table }));
    if (described.Table?.StreamSpecification?.StreamEnabled !== true) {
      await client.send(
        new UpdateTableCommand({
          TableName: table,
          StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
        }),
      );
    }
  }
}

export function orderId(index: number): string {
  return `ord-${String(index).padStart(6, '0')}`;
}

/** The next write for an order, from its current status (undefined: the order does not exist). */
export function nextOp(status: OrderStatus | undefined, random: () => number): DemoOp {
  switch (status) {
    case undefined:
      return 'insert';
    case 'placed':
      return random() < 0.15 ? 'cancel' : 'pay';
    case 'paid':
      return random() < 0.1 ? 'cancel' : 'ship';
    case 'shipped':
      return 'deliver';
    case 'delivered':
      return 'archive';
  }
}

const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Tim'];
const LAST_NAMES = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Dijkstra',
  'Liskov',
  'Knuth',
  'Allen',
  'Thompson',
  'Perlman',
];
const CITIES: [string, string, string][] = [
  ['Lisbon', '1100-148', 'PT'],
  ['Berlin', '10115', 'DE'],
  ['Lyon', '69002', 'FR'],
  ['Utrecht', '3511 AB', 'NL'],
  ['Turin', '10121', 'IT'],
  ['Seattle', '98101', 'US'],
  ['Osaka', '530-0001', 'JP'],
];
const STREETS = ['Main St', 'Rua Augusta', 'Oak Avenue', 'Station Road', 'Via Roma', 'Kanalstraat'];
const PRODUCTS: [string, string, number][] = [
  ['SKU-KB-001', 'Mechanical keyboard', 89.9],
  ['SKU-MS-002', 'Wireless mouse', 24.5],
  ['SKU-MN-003', '27" monitor', 219],
  ['SKU-CB-004', 'USB-C cable', 9.99],
  ['SKU-HD-005', 'Noise-cancelling headphones', 149],
  ['SKU-DK-006', 'Standing desk', 399],
  ['SKU-LP-007', 'Laptop stand', 34.95],
  ['SKU-WC-008', 'Webcam', 59],
];
const TAGS = ['gift', 'express', 'fragile', 'b2b', 'first-order', 'newsletter'];
const CARRIERS = ['DHL', 'UPS', 'PostNL', 'La Poste', 'CTT'];
const PAYMENT_METHODS = ['card', 'paypal', 'sepa', 'apple-pay'];

const pick = <T>(list: readonly T[], random: () => number): T => list[Math.floor(random() * list.length)]!;
const money = (value: number): AttributeValue => ({ N: value.toFixed(2) });
const str = (value: string): AttributeValue => ({ S: value });

/** A new order's item: nested maps, a list of maps, a string set, decimal amounts. */
export function newOrderItem(
  id: string,
  random: () => number,
  nowMs: number,
): Record<string, AttributeValue> {
  const lines = 1 + Math.floor(random() * 4);
  const items: AttributeValue[] = [];
  let subtotal = 0;
  for (let i = 0; i < lines; i++) {
    const [sku, name, price] = pick(PRODUCTS, random);
    const qty = 1 + Math.floor(random() * 3);
    subtotal += price * qty;
    items.push({ M: { sku: str(sku), name: str(name), qty: { N: String(qty) }, unit_price: money(price) } });
  }
  const shipping = subtotal >= 100 ? 0 : 4.95;
  const customer = Math.floor(random() * 5000);
  const first = pick(FIRST_NAMES, random);
  const last = pick(LAST_NAMES, random);
  const [city, postcode, country] = pick(CITIES, random);
  const now = new Date(nowMs).toISOString();
  const item: Record<string, AttributeValue> = {
    [DEMO_KEY]: str(id),
    status: str('placed'),
    customer: {
      M: {
        id: str(`cus-${String(customer).padStart(5, '0')}`),
        name: str(`${first} ${last}`),
        email: str(`${first}.${last}.${customer}@example.com`.toLowerCase()),
      },
    },
    items: { L: items },
    subtotal: money(subtotal),
    shipping: money(shipping),
    total: money(subtotal + shipping),
    currency: str(country === 'US' ? 'USD' : country === 'JP' ? 'JPY' : 'EUR'),
    shipping_address: {
      M: {
        line1: str(`${1 + Math.floor(random() * 200)} ${pick(STREETS, random)}`),
        city: str(city),
        postcode: str(postcode),
        country: str(country),
      },
    },
    created_at: str(now),
    updated_at: str(now),
    version: { N: '1' },
  };
  const tags = TAGS.filter(() => random() < 0.2);
  if (tags.length > 0) item.tags = { SS: tags }; // a string set cannot be empty
  return item;
}

export interface ProducerCounts {
  inserts: number;
  updates: number;
  deletes: number;
  /** Writes refused by their condition (the producer's view of an order was stale; re-read). */
  conflicts: number;
  /** Writes that failed (throttling, network, DynamoDB Local gone). */
  errors: number;
}

export interface DemoProducerOptions {
  client: DynamoDBClient;
  table?: string;
  /** Order ids `ord-000000` ... `ord-<keys-1>`. */
  keys: number;
  /** Writes per second over all lanes; 0 for as fast as DynamoDB answers. */
  ratePerSecond: number;
  /** Writes in flight at once (never two on one order). Default: about one lane per 25 writes/s, 1-16. */
  concurrency?: number;
  random?: () => number;
  now?: () => number;
  /** Stop after this many writes (tests). */
  maxWrites?: number;
  logger?: Logger;
}

const TOTAL = (c: ProducerCounts) => c.inserts + c.updates + c.deletes;

/**
 * Writes orders until `signal` aborts: no write starts after that, writes in flight complete.
 * `counts` is live, for the status line.
 */
export class DemoProducer {
  readonly counts: ProducerCounts = { inserts: 0, updates: 0, deletes: 0, conflicts: 0, errors: 0 };
  private readonly table: string;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly status = new Map<number, OrderStatus>();
  private readonly busy = new Set<number>();
  private started = 0;

  constructor(private readonly options: DemoProducerOptions) {
    if (!Number.isInteger(options.keys) || options.keys < 1) throw new RangeError('keys must be >= 1');
    this.table = options.table ?? DEMO_TABLE;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  get written(): number {
    return TOTAL(this.counts);
  }

  async run(signal: AbortSignal): Promise<ProducerCounts> {
    await this.loadExisting(signal);
    const { ratePerSecond } = this.options;
    const lanes = Math.min(
      this.options.concurrency ?? Math.max(1, Math.min(16, Math.ceil(ratePerSecond / 25))),
      this.options.keys,
    );
    const intervalMs = ratePerSecond > 0 ? 1000 / ratePerSecond : 0;
    let nextSlot = performance.now();
    const takeSlot = async (): Promise<boolean> => {
      if (signal.aborted) return false;
      if (this.options.maxWrites !== undefined && this.started >= this.options.maxWrites) return false;
      this.started++;
      if (intervalMs === 0) return true;
      const now = performance.now();
      // After a stall (DynamoDB slow), do not burst to catch up more than a second's worth.
      if (nextSlot < now - 1000) nextSlot = now - 1000;
      const slot = nextSlot;
      nextSlot += intervalMs;
      if (slot > now) {
        try {
          await sleep(slot - now, signal);
        } catch {
          return false;
        }
      }
      return !signal.aborted;
    };
    const lane = async () => {
      while (await takeSlot()) {
        const key = this.pickKey();
        this.busy.add(key);
        try {
          await this.write(key, signal);
        } finally {
          this.busy.delete(key);
        }
      }
    };
    await Promise.all(Array.from({ length: lanes }, lane));
    return this.counts;
  }

  /** Orders a previous run left in the table (the key space is small: one Scan). */
  private async loadExisting(signal: AbortSignal): Promise<void> {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.options.client.send(
        new ScanCommand({
          TableName: this.table,
          ProjectionExpression: '#id, #status',
          ExpressionAttributeNames: { '#id': DEMO_KEY, '#status': 'status' },
          ExclusiveStartKey: startKey,
        }),
        { abortSignal: signal },
      );
      for (const item of page.Items ?? []) {
        const index = indexOf(item[DEMO_KEY]?.S);
        const status = item.status?.S as OrderStatus | undefined;
        if (index !== undefined && index < this.options.keys && status !== undefined) {
          this.status.set(index, status);
        }
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined && !signal.aborted);
  }

  private pickKey(): number {
    for (;;) {
      const key = Math.floor(this.random() * this.options.keys);
      if (!this.busy.has(key)) return key;
    }
  }

  private async write(key: number, signal: AbortSignal): Promise<void> {
    const id = orderId(key);
    const status = this.status.get(key);
    const op = nextOp(status, this.random);
    const nowMs = this.now();
    const now = new Date(nowMs).toISOString();
    const Key = { [DEMO_KEY]: str(id) };
    try {
      if (op === 'insert') {
        await this.options.client.send(
          new PutItemCommand({
            TableName: this.table,
            Item: newOrderItem(id, this.random, nowMs),
            ConditionExpression: 'attribute_not_exists(#id)',
            ExpressionAttributeNames: { '#id': DEMO_KEY },
          }),
        );
        this.status.set(key, 'placed');
        this.counts.inserts++;
      } else if (op === 'cancel' || op === 'archive') {
        await this.options.client.send(
          new DeleteItemCommand({
            TableName: this.table,
            Key,
            ConditionExpression: '#status = :expected',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':expected': str(status!) },
          }),
        );
        this.status.delete(key);
        this.counts.deletes++;
      } else {
        await this.options.client.send(new UpdateItemCommand(this.updateFor(op, id, status!, now)));
        this.status.set(key, STATUS_AFTER[op]);
        this.counts.updates++;
      }
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        this.counts.conflicts++;
        await this.reread(key, signal);
        return;
      }
      this.counts.errors++;
      this.options.logger?.warn(
        { order: id, op, error: error instanceof Error ? error.message : String(error) },
        'demo producer: write failed',
      );
      // Back off a little, so a server that went away is not hammered.
      await sleep(500, signal).catch(() => {});
    }
  }

  private updateFor(op: 'pay' | 'ship' | 'deliver', id: string, from: OrderStatus, now: string) {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, AttributeValue> = {
      ':from': str(from),
      ':to': str(STATUS_AFTER[op]),
      ':now': str(now),
      ':one': { N: '1' },
    };
    let set = '#status = :to, updated_at = :now, version = version + :one';
    let add = '';
    if (op === 'pay') {
      set += ', payment = :payment';
      values[':payment'] = {
        M: {
          method: str(pick(PAYMENT_METHODS, this.random)),
          paid_at: str(now),
          reference: str(`pay_${Math.floor(this.random() * 1e12).toString(36)}`),
        },
      };
    } else if (op === 'ship') {
      set += ', shipment = :shipment';
      values[':shipment'] = {
        M: {
          carrier: str(pick(CARRIERS, this.random)),
          tracking: str(`TRK${Math.floor(this.random() * 1e10)}`),
          shipped_at: str(now),
        },
      };
      add = ' ADD tags :tracked';
      values[':tracked'] = { SS: ['tracked'] };
    } else {
      set += ', delivered_at = :now';
    }
    return {
      TableName: this.table,
      Key: { [DEMO_KEY]: str(id) },
      UpdateExpression: `SET ${set}${add}`,
      ConditionExpression: '#status = :from',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    };
  }

  /** After a refused write: learn the order's real status. */
  private async reread(key: number, signal: AbortSignal): Promise<void> {
    try {
      const got = await this.options.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { [DEMO_KEY]: str(orderId(key)) },
          ConsistentRead: true,
        }),
        { abortSignal: signal },
      );
      const status = got.Item?.status?.S as OrderStatus | undefined;
      if (status === undefined) this.status.delete(key);
      else this.status.set(key, status);
    } catch {
      this.status.delete(key);
    }
  }
}

function indexOf(id: string | undefined): number | undefined {
  const match = id === undefined ? null : /^ord-(\d+)$/.exec(id);
  return match ? Number(match[1]) : undefined;
}
