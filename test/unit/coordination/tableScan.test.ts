import {
  DescribeTableCommand,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  ResourceNotFoundException,
  ScanCommand,
  type ScanCommandInput,
  type ScanCommandOutput,
  ThrottlingException,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  estimateScan,
  isScanComplete,
  parseScanProgress,
  type ScanKey,
  type ScanPage,
  type ScanProgress,
  type ScanSegmentState,
  scanSegmentState,
  scanTable,
  serializeScanProgress,
} from '../../../src/coordination/tableScan.js';
import { ConfigError, TableScanError } from '../../../src/support/errors.js';
import { fakeScanTable, scanItemKey } from '../../helpers/fakeScanTable.js';

const TABLE = 'orders';
const ddb = mockClient(DynamoDBClient);
let client: DynamoDBClient;
const NO_DELAY = { random: () => 0 };

beforeEach(() => {
  ddb.reset();
  client = new DynamoDBClient({ region: 'us-east-1' });
});
afterEach(() => client.destroy());

async function collect(pages: AsyncIterable<ScanPage>): Promise<ScanPage[]> {
  const out: ScanPage[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

const keysOf = (pages: readonly ScanPage[]): string[] =>
  pages.flatMap((p) => p.items.map((i) => i['pk']?.S ?? ''));

/** Lets every pending promise and I/O callback run (no clock involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** What each segment's state must be after `pages` were handed out, folded from the pages alone. */
function expectedStates(
  total: number,
  pages: readonly ScanPage[],
  lastKeys: readonly (ScanKey | undefined)[],
) {
  const states = new Map<number, ScanSegmentState>();
  pages.forEach((page, i) => {
    states.set(page.segment, lastKeys[i] ?? 'done');
  });
  return Array.from({ length: total }, (_, s) => states.get(s) ?? 'pending');
}

const statesOf = (progress: ScanProgress) =>
  Array.from({ length: progress.totalSegments }, (_, s) => scanSegmentState(progress, s));

describe('scanTable', () => {
  it('reads every segment page by page, each request after the previous LastEvaluatedKey', async () => {
    const table = fakeScanTable({ pagesPerSegment: [2, 3, 1, 0] });
    ddb.on(ScanCommand).callsFake((input: ScanCommandInput) => table.answer(input));

    const pages = await collect(
      scanTable(client, { table: TABLE, segments: 4, concurrency: 2, pageLimit: 3 }),
    );

    expect(keysOf(pages).sort()).toEqual(table.allKeys().sort());
    for (const request of table.requests) {
      expect(request).toMatchObject({
        TableName: TABLE,
        TotalSegments: 4,
        ReturnConsumedCapacity: 'TOTAL',
        Limit: 3,
      });
    }
    for (let segment = 0; segment < 4; segment++) {
      const starts = table.requests
        .filter((r) => r.Segment === segment)
        .map((r) => r.ExclusiveStartKey?.['pk']?.S);
      const pagesOfSegment = Math.max(1, [2, 3, 1, 0][segment] as number);
      expect(starts).toEqual(
        Array.from({ length: pagesOfSegment }, (_, p) =>
          p === 0 ? undefined : scanItemKey(segment, p * 3 - 1),
        ),
      );
    }
    expect(pages.every((p) => p.consumedRcu === 2)).toBe(true);
    const last = pages.at(-1)?.progress;
    expect(last && isScanComplete(last)).toBe(true);
    expect(last?.segments).toEqual({});
  });

  it('gives each page the progress of exactly the pages handed out up to it, while segments run concurrently', async () => {
    const table = fakeScanTable({ pagesPerSegment: [4, 2, 5, 3] });
    // Segment s answers after 3*s extra turns of the microtask queue: pages of different segments
    // arrive interleaved and out of segment order, deterministically.
    ddb.on(ScanCommand).callsFake(async (input: ScanCommandInput) => {
      for (let i = 0; i < 3 * (input.Segment ?? 0); i++) await Promise.resolve();
      return table.answer(input);
    });
    const requestsWhenHandedOut: number[] = [];
    const pages: ScanPage[] = [];
    for await (const page of scanTable(client, {
      table: TABLE,
      segments: 4,
      concurrency: 4,
      bufferPages: 4,
    })) {
      pages.push(page);
      requestsWhenHandedOut.push(table.requests.length);
      await settle(); // lets other segments fetch ahead into the buffer before the next page
    }
    const lastKeys = pages.map((p) => {
      const last = p.items.at(-1)?.['pk']?.S;
      const index = Number(last?.split('#')[1]);
      const pagesOfSegment = [4, 2, 5, 3][p.segment] as number;
      return index === pagesOfSegment * 3 - 1 ? undefined : { pk: { S: last as string } };
    });

    // The interleaving really happened, and pages were fetched ahead of the consumer.
    expect(pages.map((p) => p.segment)).not.toEqual([...pages.map((p) => p.segment)].sort());
    expect(requestsWhenHandedOut.some((count, i) => count > i + 1)).toBe(true);
    pages.forEach((page, i) => {
      expect(statesOf(page.progress)).toEqual(
        expectedStates(4, pages.slice(0, i + 1), lastKeys.slice(0, i + 1)),
      );
    });
    expect(keysOf(pages).sort()).toEqual(table.allKeys().sort());
  });

  it('resumes: done segments are skipped, begun ones restart after their key, the others from the start', async () => {
    const table = fakeScanTable({ pagesPerSegment: [2, 2, 2, 3, 2] });
    ddb.on(ScanCommand).callsFake((input: ScanCommandInput) => table.answer(input));
    const resume: ScanProgress = {
      table: TABLE,
      totalSegments: 5,
      doneBelow: 1,
      segments: { 2: 'done', 3: { pk: { S: scanItemKey(3, 2) } } },
    };

    const pages = await collect(scanTable(client, { table: TABLE, segments: 5, resume }));

    expect(table.requests.map((r) => r.Segment)).not.toContain(0);
    expect(table.requests.map((r) => r.Segment)).not.toContain(2);
    const firstOf = (s: number) => table.requests.find((r) => r.Segment === s);
    expect(firstOf(3)?.ExclusiveStartKey).toEqual({ pk: { S: scanItemKey(3, 2) } });
    expect(firstOf(1)?.ExclusiveStartKey).toBeUndefined();
    expect(firstOf(4)?.ExclusiveStartKey).toBeUndefined();
    const rest = table
      .allKeys()
      .filter((k) => /^s[14]#/.test(k) || (k.startsWith('s3#') && Number(k.slice(3)) > 2));
    expect(keysOf(pages).sort()).toEqual(rest.sort());
    expect(pages.at(-1)?.progress).toEqual({ table: TABLE, totalSegments: 5, doneBelow: 5, segments: {} });
  });

  it('stopped after any page and resumed from its serialized progress, reads every item exactly once', async () => {
    const pagesPerSegment = [3, 1, 4, 2];
    for (let stopAfter = 1; stopAfter <= 9; stopAfter += 2) {
      const table = fakeScanTable({ pagesPerSegment });
      ddb.reset();
      ddb.on(ScanCommand).callsFake(async (input: ScanCommandInput) => {
        for (let i = 0; i < 2 * (input.Segment ?? 0); i++) await Promise.resolve();
        return table.answer(input);
      });
      const first: ScanPage[] = [];
      for await (const page of scanTable(client, { table: TABLE, segments: 4, concurrency: 3 })) {
        first.push(page);
        if (first.length === stopAfter) break;
      }
      const saved = serializeScanProgress((first.at(-1) as ScanPage).progress);
      const rest = await collect(
        scanTable(client, { table: TABLE, segments: 4, resume: parseScanProgress(saved) }),
      );
      expect([...keysOf(first), ...keysOf(rest)].sort()).toEqual(table.allKeys().sort());
    }
  });

  it('refuses a resume of another segment count or another table', () => {
    const resume: ScanProgress = { table: TABLE, totalSegments: 4, doneBelow: 0, segments: {} };
    expect(() => scanTable(client, { table: TABLE, segments: 8, resume })).toThrow(/4 segments/);
    expect(() => scanTable(client, { table: TABLE, segments: 8, resume })).toThrow(TableScanError);
    expect(() => scanTable(client, { table: 'other', segments: 4, resume })).toThrow(/table orders/);
  });

  it('validates segments and the other options up front', () => {
    for (const segments of [0, -1, 1.5, 1_000_001, Number.NaN]) {
      expect(() => scanTable(client, { table: TABLE, segments })).toThrow(ConfigError);
    }
    expect(() => scanTable(client, { table: TABLE, segments: 1_000_000 })).not.toThrow();
    expect(() => scanTable(client, { table: TABLE, segments: 2, concurrency: 17 })).toThrow(/concurrency 17/);
    expect(() => scanTable(client, { table: TABLE, segments: 2, maxRcuPerSecond: 0 })).toThrow(
      /maxRcuPerSecond/,
    );
    expect(() => scanTable(client, { table: TABLE, segments: 2, pageLimit: 0 })).toThrow(/pageLimit/);
  });

  it('retries throttling through the one retry layer', async () => {
    const table = fakeScanTable({ pagesPerSegment: [2] });
    ddb
      .on(ScanCommand)
      .rejectsOnce(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }))
      .rejectsOnce(new ThrottlingException({ message: 'slow down', $metadata: {} }))
      .callsFake((input: ScanCommandInput) => table.answer(input));

    const pages = await collect(scanTable(client, { table: TABLE, segments: 1, retry: NO_DELAY }));

    expect(keysOf(pages)).toEqual(table.allKeys());
    expect(ddb.commandCalls(ScanCommand)).toHaveLength(4);
  });

  it('turns ResourceNotFoundException into a non-retriable error naming the table, without retrying', async () => {
    ddb
      .on(ScanCommand)
      .rejects(new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} }));

    const error = await collect(scanTable(client, { table: TABLE, segments: 2, retry: NO_DELAY })).catch(
      (e) => e,
    );

    expect(error).toBeInstanceOf(TableScanError);
    expect(error).toMatchObject({ problem: 'table-not-found', table: TABLE, retriable: false });
    expect(error.message).toContain(`table ${TABLE} was not found`);
    expect(ddb.commandCalls(ScanCommand).length).toBeLessThanOrEqual(2);
  });

  it('holds maxRcuPerSecond over the scan on an injected clock', async () => {
    const rate = 10;
    const rcuPerPage = 5;
    const table = fakeScanTable({ pagesPerSegment: [10, 10], rcuPerPage });
    let now = 0;
    const sentAt: number[] = [];
    ddb.on(ScanCommand).callsFake((input: ScanCommandInput) => {
      sentAt.push(now);
      return table.answer(input);
    });
    const sleep = async (ms: number) => {
      const wake = now + ms;
      await Promise.resolve();
      now = Math.max(now, wake); // concurrent sleepers share the clock: time is not counted twice
    };

    const pages = await collect(
      scanTable(client, { table: TABLE, segments: 2, maxRcuPerSecond: rate, now: () => now, sleep }),
    );

    expect(pages).toHaveLength(20);
    const total = 20 * rcuPerPage;
    const burst = rate; // the bucket starts with one second's worth
    const underestimate = 2 * (rcuPerPage - 1); // each segment's first request is estimated at 1
    // Never more sent by time t than the bucket allowed...
    sentAt.forEach((t, i) => {
      expect((i + 1) * rcuPerPage).toBeLessThanOrEqual(
        burst + (rate * t) / 1000 + underestimate + rcuPerPage,
      );
    });
    // ...and the limit does not hold the scan back much beyond the rate.
    const lastSent = sentAt.at(-1) as number;
    expect(lastSent).toBeGreaterThanOrEqual(((total - rcuPerPage - burst - underestimate) / rate) * 1000);
    expect(lastSent).toBeLessThanOrEqual(((total - rcuPerPage) / rate) * 1000);
  });

  it('keeps a slow consumer at most bufferPages pages ahead (plus one per request in flight)', async () => {
    const table = fakeScanTable({ pagesPerSegment: [20, 20, 20] });
    ddb.on(ScanCommand).callsFake((input: ScanCommandInput) => table.answer(input));
    const pages = scanTable(client, { table: TABLE, segments: 3, concurrency: 3, bufferPages: 2 });

    const first = await pages.next();
    expect(first.done).toBe(false);
    await settle();
    // One page handed out, two buffered, one held by each of the three segments waiting for room.
    expect(table.requests).toHaveLength(1 + 2 + 3);

    const rest = await collect(pages);
    expect(keysOf([first.value as ScanPage, ...rest]).sort()).toEqual(table.allKeys().sort());
  });

  it('stops sending requests, and aborts its waits, when the consumer breaks out', async () => {
    const table = fakeScanTable({ pagesPerSegment: [50, 50], rcuPerPage: 1_000 });
    ddb.on(ScanCommand).callsFake((input: ScanCommandInput) => table.answer(input));
    const waits: AbortSignal[] = [];
    // A wait for read capacity that only an abort ends.
    const sleep = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((_resolve, reject) => {
        if (signal) waits.push(signal);
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    const options = { table: TABLE, segments: 2, maxRcuPerSecond: 1, sleep, now: () => 0 };
    for await (const _page of scanTable(client, options)) break;
    await settle();

    expect(table.requests.length).toBeLessThanOrEqual(2);
    expect(waits.length).toBeGreaterThan(0);
    expect(waits.every((signal) => signal.aborted)).toBe(true);
  });

  it('stops promptly on abort while a request hangs', async () => {
    const table = fakeScanTable({ pagesPerSegment: [5] });
    ddb
      .on(ScanCommand)
      .callsFakeOnce((input: ScanCommandInput) => table.answer(input))
      .callsFake(() => new Promise<ScanCommandOutput>(() => {}));
    const controller = new AbortController();
    const pages = scanTable(client, { table: TABLE, segments: 1, signal: controller.signal });
    expect((await pages.next()).done).toBe(false);

    const next = pages.next();
    controller.abort(new Error('operator stopped the replay'));
    await expect(next).rejects.toThrow('operator stopped the replay');
  });

  it('stops promptly on abort while waiting for read capacity', async () => {
    const table = fakeScanTable({ pagesPerSegment: [5], rcuPerPage: 1_000_000 });
    ddb.on(ScanCommand).callsFake((input: ScanCommandInput) => table.answer(input));
    const controller = new AbortController();
    // The real sleep: the first page's debt is a wait of days, which only the abort can end.
    const pages = scanTable(client, {
      table: TABLE,
      segments: 1,
      maxRcuPerSecond: 1,
      signal: controller.signal,
    });
    expect((await pages.next()).done).toBe(false);

    const next = pages.next();
    await settle();
    controller.abort(new Error('operator stopped the replay'));
    await expect(next).rejects.toThrow('operator stopped the replay');
    expect(table.requests).toHaveLength(1);
  });
});

describe('scan progress serialization', () => {
  const progress: ScanProgress = {
    table: TABLE,
    totalSegments: 8,
    doneBelow: 2,
    segments: {
      3: 'done',
      4: {
        pk: { B: new Uint8Array([0, 255, 7, 128]) },
        sk: { N: '-1.2345678901234567890123456789012345678E+120' },
      },
      6: { pk: { S: 'käse "quoted"' } },
    },
  };

  it('round-trips keys of S, N (all digits) and B (as base64)', () => {
    const text = serializeScanProgress(progress);
    expect(JSON.parse(text).segments['4'].pk).toEqual({ B: 'AP8HgA==' });
    expect(parseScanProgress(text)).toEqual(progress);
    expect(parseScanProgress(text).segments[4]).toMatchObject({ pk: { B: expect.any(Uint8Array) } });
  });

  it('refuses what is not a scan progress, naming each problem', () => {
    const valid = JSON.parse(serializeScanProgress(progress));
    const broken = (patch: Record<string, unknown>) => JSON.stringify({ ...valid, ...patch });
    expect(() => parseScanProgress('{')).toThrow(TableScanError);
    expect(() => parseScanProgress(broken({ format: 'other' }))).toThrow(/format/);
    expect(() => parseScanProgress(broken({ totalSegments: 0 }))).toThrow(/totalSegments 0/);
    expect(() => parseScanProgress(broken({ doneBelow: 9 }))).toThrow(/doneBelow 9/);
    expect(() => parseScanProgress(broken({ segments: { 9: 'done' } }))).toThrow(/segment "9"/);
    expect(() => parseScanProgress(broken({ segments: { 1: 'done' } }))).toThrow(/segment "1"/);
    expect(() => parseScanProgress(broken({ segments: { 5: { pk: { B: 'not base64!' } } } }))).toThrow(/pk/);
    expect(() => parseScanProgress(broken({ segments: { 5: { pk: { N: '12abc' } } } }))).toThrow(/pk/);
    expect(() => parseScanProgress(broken({ segments: { 5: { pk: { M: {} } } } }))).toThrow(/pk/);
    expect(() => parseScanProgress(broken({ segments: { 5: {} } }))).toThrow(/segment 5/);
    try {
      parseScanProgress(broken({ table: TABLE, totalSegments: 0, segments: [] }));
    } catch (error) {
      expect(error).toMatchObject({ problem: 'invalid-progress', table: TABLE });
      expect((error as Error).message).toMatch(/totalSegments[\s\S]*segments must be an object/);
      return;
    }
    expect.unreachable('parseScanProgress accepted an invalid progress');
  });
});

describe('estimateScan', () => {
  it("reports DescribeTable's counts and the RCU of a full scan", async () => {
    ddb
      .on(DescribeTableCommand)
      .resolves({ Table: { TableName: TABLE, ItemCount: 1234, TableSizeBytes: 4096 * 9 + 1 } });
    expect(await estimateScan(client, TABLE)).toEqual({
      table: TABLE,
      itemCount: 1234,
      tableSizeBytes: 4096 * 9 + 1,
      eventuallyConsistentRcu: 5,
      stronglyConsistentRcu: 10,
    });
  });

  it('names a missing table', async () => {
    ddb
      .on(DescribeTableCommand)
      .rejects(new ResourceNotFoundException({ message: 'not found', $metadata: {} }));
    await expect(estimateScan(client, 'missing')).rejects.toMatchObject({
      problem: 'table-not-found',
      table: 'missing',
    });
  });
});
