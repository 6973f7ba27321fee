import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  parseScanProgress,
  type ScanPage,
  scanTable,
  serializeScanProgress,
} from '../../../src/coordination/tableScan.js';
import { createRng } from '../../helpers/chaosProducer.js';
import { createSourceTable, useDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';

/*
 * scanTable against DynamoDB Local: every item of the table exactly once, in 1 or 4 segments, and
 * a scan resumed from a mid-scan progress (B and N keys, through its JSON form) reads exactly the rest.
 */

const local = useDynamoDbLocal();
const TABLE = 'scan-source';
const ITEMS = 2000;

type Item = Record<string, AttributeValue>;

/** One item of every kind of value the changelog must keep (invariant 7). */
function item(i: number, rng: () => number): Item {
  const digits = Array.from({ length: 38 }, (_, d) => String((i * 7 + d) % 10)).join('');
  const bytes = Uint8Array.from({ length: 1 + (i % 40) }, () => Math.floor(rng() * 256));
  return {
    pk: { B: Uint8Array.from([i % 251, (i * 31) % 256, 0, 255]) },
    sk: { N: `${i % 2 === 0 ? '-' : ''}${i}.${i % 1000}` },
    big: { N: `${digits.replace(/^0+/, '') || '0'}` },
    tiny: { N: `1E-${100 + (i % 29)}` },
    name: { S: `item ${i} ✓ "quoted"` },
    tags: { SS: [`t${i % 3}`, `t${(i % 3) + 1}`] },
    counts: { NS: [String(i), String(i + 0.5)] },
    blob: { B: bytes },
    blobs: { BS: [bytes, Uint8Array.from([i % 256])] },
    flag: i % 5 === 0 ? { NULL: true } : { BOOL: i % 2 === 0 },
    nested: { M: { level: { M: { deep: { L: [{ N: String(i) }, { S: '' }, { M: {} }] } } } } },
  };
}

/** The item as text with attribute names sorted at every level and binaries as base64. */
function canonical(value: unknown): string {
  const walk = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, walk((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(walk(value));
}

async function plainScan(client: DynamoDBClient): Promise<string[]> {
  const out: string[] = [];
  let start: Item | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: TABLE, ExclusiveStartKey: start }));
    for (const i of page.Items ?? []) out.push(canonical(i));
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return out.sort();
}

const itemsOf = (pages: readonly ScanPage[]): string[] => pages.flatMap((p) => p.items.map(canonical)).sort();

async function collect(pages: AsyncIterable<ScanPage>): Promise<ScanPage[]> {
  const out: ScanPage[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

describe('scanTable on DynamoDB Local', () => {
  let expected: string[];

  beforeAll(async () => {
    const { client } = local();
    await createSourceTable(client, TABLE, { stream: false, partitionKeyType: 'B' });
    const rng = createRng(13);
    const items = Array.from({ length: ITEMS }, (_, i) => item(i, rng));
    for (let i = 0; i < items.length; i += 25) {
      let requests: Record<string, { PutRequest: { Item: Item } }[]> | undefined = {
        [TABLE]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })),
      };
      while (requests !== undefined && Object.keys(requests).length > 0) {
        const out = await client.send(new BatchWriteItemCommand({ RequestItems: requests }));
        requests = out.UnprocessedItems as typeof requests;
      }
    }
    expected = await plainScan(client);
    expect(expected).toHaveLength(ITEMS);
    expect(new Set(expected).size).toBe(ITEMS);
  });

  for (const segments of [1, 4]) {
    it(`reads every item exactly once in ${segments} segment(s)`, async () => {
      const pages = await collect(scanTable(local().client, { table: TABLE, segments, pageLimit: 97 }));
      expect(itemsOf(pages)).toEqual(expected);
      expect(pages.at(-1)?.progress).toMatchObject({ doneBelow: segments, segments: {} });
      expect(new Set(pages.filter((p) => p.items.length > 0).map((p) => p.segment)).size).toBe(segments);
      expect(pages.every((p) => p.consumedRcu > 0)).toBe(true);
    });
  }

  it('resumed from a mid-scan progress, reads exactly the rest', async () => {
    const first: ScanPage[] = [];
    for await (const page of scanTable(local().client, { table: TABLE, segments: 4, pageLimit: 61 })) {
      first.push(page);
      if (first.length === 13) break;
    }
    const saved = serializeScanProgress((first.at(-1) as ScanPage).progress);
    // The progress holds B and N keys of begun segments: they must survive the JSON round trip.
    expect(Object.keys(JSON.parse(saved).segments).length).toBeGreaterThan(0);

    const rest = await collect(
      scanTable(local().client, {
        table: TABLE,
        segments: 4,
        pageLimit: 61,
        resume: parseScanProgress(saved),
      }),
    );

    expect([...itemsOf(first), ...itemsOf(rest)].sort()).toEqual(expected);
    expect(itemsOf(rest).length).toBe(ITEMS - itemsOf(first).length);
  });
});
