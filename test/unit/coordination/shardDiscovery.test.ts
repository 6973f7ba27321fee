import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  type DescribeStreamCommandInput,
  type DescribeStreamCommandOutput,
  DynamoDBStreamsClient,
  LimitExceededException,
  ListStreamsCommand,
  ResourceNotFoundException,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  describeAllShards,
  describeChildShards,
  listTableStreams,
  resolveStreamArn,
  ShardDiscovery,
} from '../../../src/coordination/shardDiscovery.js';
import type { ShardGraph } from '../../../src/coordination/shardGraph.js';
import { ConfigError, StreamError } from '../../../src/support/errors.js';
import { shard } from '../../helpers/shards.js';

const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000';
const ARN2 = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-03-01T00:00:00.000';
const END = '100000000000000000999';

function page(shards: Shard[], last?: string, status = 'ENABLED'): DescribeStreamCommandOutput {
  return {
    $metadata: {},
    StreamDescription: {
      StreamArn: ARN,
      StreamStatus: status as 'ENABLED',
      TableName: 'orders',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      Shards: shards,
      ...(last !== undefined && { LastEvaluatedShardId: last }),
    },
  };
}

const sdkError = (name: string, message = name) => Object.assign(new Error(message), { name, $metadata: {} });
const noSleep = async () => {};
/** A clock that moves a second per reading, so the 100 ms pacer never has to wait. */
const fastClock = () => {
  let t = 0;
  return () => (t += 1_000);
};
const idOf = (i: number) => `shardId-${String(i).padStart(5, '0')}`;

const streamsMock = mockClient(DynamoDBStreamsClient);
const dynamoMock = mockClient(DynamoDBClient);
let streams: DynamoDBStreamsClient;
let dynamodb: DynamoDBClient;

beforeEach(() => {
  streamsMock.reset();
  dynamoMock.reset();
  // A fresh client per test: the ShardFilter fallback is remembered per client.
  streams = new DynamoDBStreamsClient({ region: 'us-east-1' });
  dynamodb = new DynamoDBClient({ region: 'us-east-1' });
});

afterEach(() => {
  streams.destroy();
  dynamodb.destroy();
});

const describeInputs = () =>
  streamsMock.commandCalls(DescribeStreamCommand).map((c) => c.args[0].input as DescribeStreamCommandInput);

describe('describeAllShards', () => {
  it('pages through 150 shards in two calls, paced 100 ms apart', async () => {
    const all = Array.from({ length: 150 }, (_, i) => shard(idOf(i)));
    streamsMock
      .on(DescribeStreamCommand)
      .resolvesOnce(page(all.slice(0, 100), idOf(99)))
      .resolvesOnce(page(all.slice(100)));
    const sleeps: number[] = [];
    const result = await describeAllShards(streams, ARN, {
      now: () => 0,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    expect(result.shards).toHaveLength(150);
    expect(new Set(result.shards.map((s) => s.ShardId)).size).toBe(150);
    expect(result).toMatchObject({
      streamArn: ARN,
      streamStatus: 'ENABLED',
      tableName: 'orders',
      keySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    });
    const inputs = describeInputs();
    expect(inputs).toHaveLength(2);
    expect(inputs[0]).toEqual({ StreamArn: ARN, Limit: 100 });
    expect(inputs[1]).toEqual({ StreamArn: ARN, Limit: 100, ExclusiveStartShardId: idOf(99) });
    // The injected clock stands still, so the second page waits the full pacing interval.
    expect(sleeps).toEqual([100]);
  });

  it('keeps paging past an empty page that has a LastEvaluatedShardId', async () => {
    streamsMock
      .on(DescribeStreamCommand)
      .resolvesOnce(page([shard('a')], 'a'))
      .resolvesOnce(page([], 'a2'))
      .resolvesOnce(page([shard('b')]));
    const result = await describeAllShards(streams, ARN, { sleep: noSleep, pageLimit: 1 });
    expect(result.shards.map((s) => s.ShardId)).toEqual(['a', 'b']);
    expect(describeInputs().map((i) => i.ExclusiveStartShardId)).toEqual([undefined, 'a', 'a2']);
    expect(describeInputs()[0]?.Limit).toBe(1);
  });

  it('stops with a StreamError when LastEvaluatedShardId does not advance', async () => {
    streamsMock.on(DescribeStreamCommand).resolves(page([shard('a')], 'a'));
    const error = await describeAllShards(streams, ARN, { sleep: noSleep }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).code).toBe('PaginationNotAdvancing');
    expect(describeInputs()).toHaveLength(2);
  });

  it('retries LimitExceededException, then succeeds', async () => {
    streamsMock
      .on(DescribeStreamCommand)
      .rejectsOnce(new LimitExceededException({ message: 'rate exceeded', $metadata: {} }))
      .resolvesOnce(page([shard('a')]));
    const retries: number[] = [];
    const result = await describeAllShards(streams, ARN, {
      sleep: noSleep,
      retry: { baseDelayMs: 0, onRetry: (_e, attempt) => retries.push(attempt) },
    });
    expect(result.shards.map((s) => s.ShardId)).toEqual(['a']);
    expect(retries).toEqual([1]);
    expect(describeInputs()).toHaveLength(2);
  });

  it('turns a non-retriable service error into a StreamError with its code', async () => {
    streamsMock
      .on(DescribeStreamCommand)
      .rejects(new ResourceNotFoundException({ message: 'no such stream', $metadata: {} }));
    const error = await describeAllShards(streams, ARN, { sleep: noSleep }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect(error).toMatchObject({ code: 'ResourceNotFoundException', retriable: false });
    expect(describeInputs()).toHaveLength(1);
  });
});

describe('describeChildShards', () => {
  it('asks with ShardFilter CHILD_SHARDS', async () => {
    streamsMock
      .on(DescribeStreamCommand)
      .resolves(page([shard('c1', { parent: 'p' }), shard('c2', { parent: 'p' })]));
    const children = await describeChildShards(streams, ARN, 'p', { sleep: noSleep });
    expect(children.map((s) => s.ShardId)).toEqual(['c1', 'c2']);
    expect(describeInputs()).toEqual([
      { StreamArn: ARN, Limit: 100, ShardFilter: { Type: 'CHILD_SHARDS', ShardId: 'p' } },
    ]);
  });

  it('falls back to the full listing when ShardFilter is rejected, once per client', async () => {
    streamsMock.on(DescribeStreamCommand).callsFake((input: DescribeStreamCommandInput) => {
      if (input.ShardFilter) throw sdkError('ValidationException', 'Unknown parameter ShardFilter');
      return page([shard('p', { end: END }), shard('c1', { parent: 'p' }), shard('x')]);
    });
    const first = await describeChildShards(streams, ARN, 'p', { sleep: noSleep });
    const second = await describeChildShards(streams, ARN, 'p', { sleep: noSleep });
    expect(first.map((s) => s.ShardId)).toEqual(['c1']);
    expect(second.map((s) => s.ShardId)).toEqual(['c1']);
    const withFilter = () => describeInputs().filter((i) => i.ShardFilter !== undefined);
    expect(withFilter()).toHaveLength(1);
    expect(describeInputs()).toHaveLength(3);

    // Another client has not been rejected yet and still tries the filter.
    const other = new DynamoDBStreamsClient({ region: 'us-east-1' });
    await describeChildShards(other, ARN, 'p', { sleep: noSleep });
    expect(withFilter()).toHaveLength(2);
    other.destroy();
  });

  it('does not fall back on other errors', async () => {
    streamsMock
      .on(DescribeStreamCommand)
      .rejects(new ResourceNotFoundException({ message: 'gone', $metadata: {} }));
    await expect(describeChildShards(streams, ARN, 'p', { sleep: noSleep })).rejects.toMatchObject({
      code: 'ResourceNotFoundException',
    });
    expect(describeInputs()).toHaveLength(1);
  });
});

describe('resolveStreamArn', () => {
  it('returns the latest stream ARN of a table with an enabled stream', async () => {
    dynamoMock.on(DescribeTableCommand, { TableName: 'orders' }).resolves({
      Table: {
        TableName: 'orders',
        LatestStreamArn: ARN,
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      },
    });
    await expect(resolveStreamArn(dynamodb, 'orders')).resolves.toBe(ARN);
  });

  it('fails with StreamNotEnabled naming the table and how to enable it', async () => {
    dynamoMock.on(DescribeTableCommand).resolves({ Table: { TableName: 'orders' } });
    const error = await resolveStreamArn(dynamodb, 'orders').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).code).toBe('StreamNotEnabled');
    expect((error as Error).message).toContain('orders');
    expect((error as Error).message).toContain('NEW_AND_OLD_IMAGES');

    // A disabled stream still has a LatestStreamArn, but there is nothing to tail.
    dynamoMock.on(DescribeTableCommand).resolves({
      Table: { TableName: 'orders', LatestStreamArn: ARN, StreamSpecification: { StreamEnabled: false } },
    });
    await expect(resolveStreamArn(dynamodb, 'orders')).rejects.toMatchObject({ code: 'StreamNotEnabled' });
  });
});

describe('listTableStreams', () => {
  it('follows pagination and returns the ARNs oldest first', async () => {
    const a = 'arn:aws:dynamodb:us-east-1:1:table/orders/stream/2024-05-01T00:00:00.000';
    const b = 'arn:aws:dynamodb:us-east-1:1:table/orders/stream/2023-12-31T23:59:59.999';
    const c = 'arn:aws:dynamodb:us-east-1:1:table/orders/stream/2024-02-10T08:00:00.000';
    streamsMock
      .on(ListStreamsCommand)
      .resolvesOnce({ Streams: [{ StreamArn: a }, { StreamArn: b }], LastEvaluatedStreamArn: b })
      .resolvesOnce({ Streams: [{ StreamArn: c }] });
    await expect(listTableStreams(streams, 'orders')).resolves.toEqual([b, c, a]);
    const inputs = streamsMock.commandCalls(ListStreamsCommand).map((call) => call.args[0].input);
    expect(inputs).toEqual([{ TableName: 'orders' }, { TableName: 'orders', ExclusiveStartStreamArn: b }]);
  });

  it('stops with a StreamError when LastEvaluatedStreamArn does not advance', async () => {
    streamsMock
      .on(ListStreamsCommand)
      .resolves({ Streams: [{ StreamArn: ARN }], LastEvaluatedStreamArn: ARN });
    await expect(listTableStreams(streams, 'orders')).rejects.toMatchObject({
      code: 'PaginationNotAdvancing',
    });
    expect(streamsMock.commandCalls(ListStreamsCommand)).toHaveLength(2);
  });
});

describe('ShardDiscovery', () => {
  it('rejects a configuration without a stream source', () => {
    expect(() => new ShardDiscovery({ streamsClient: streams } as never)).toThrow(ConfigError);
    expect(() => new ShardDiscovery({ streamsClient: streams, tableName: 'orders' })).toThrow(ConfigError);
  });

  it('merges refreshes: stale open listings, closed leaves awaiting children, trimmed parents', async () => {
    const listings: Shard[][] = [
      // Closed leaf without children, and an open parent that already has a child.
      [shard('a', { end: END }), shard('b'), shard('b1', { parent: 'b' })],
      // A stale listing: 'a' open again; 'a' children appear.
      [shard('a'), shard('a1', { parent: 'a' }), shard('b'), shard('b1', { parent: 'b' })],
      // 'a' and 'b' trimmed; a new child of the trimmed 'z'.
      [shard('a1', { parent: 'a' }), shard('b1', { parent: 'b' }), shard('z1', { parent: 'z' })],
    ];
    streamsMock.on(DescribeStreamCommand).callsFake(() => page(listings.shift() ?? []));
    const discovery = new ShardDiscovery({ streamsClient: streams, streamArn: ARN, now: fastClock() });

    const g1 = await discovery.refresh();
    expect(g1.needsResync).toBe(true);
    expect(g1.anomalies.map((a) => a.kind)).toEqual([
      'closed-leaf-without-children',
      'open-parent-with-children',
    ]);
    expect(g1.isClosing('b')).toBe(true);

    const g2 = await discovery.refresh();
    expect(g2.needsResync).toBe(false);
    expect(g2.isClosed('a')).toBe(true);
    expect(g2.childrenOf('a')).toEqual(['a1']);

    const g3 = await discovery.refresh();
    expect(g3.has('a')).toBe(true);
    expect(g3.roots()).toEqual(['a', 'b', 'z1']);
    expect(g3.readyToRead('z1', () => false)).toBe(true);
    expect(g3.readyToRead('a1', () => false)).toBe(false);

    discovery.forget(['a']);
    expect(discovery.graph.has('a')).toBe(false);
    expect(discovery.graph.readyToRead('a1', () => false)).toBe(true);
    expect(discovery.streams).toEqual([{ arn: ARN, state: 'current', graph: discovery.graph }]);
  });

  it('by table: a re-enabled stream becomes current; the old one drains until all its shards are closed', async () => {
    let latest = ARN;
    let oldShards: Shard[] = [shard('old-1', { end: END }), shard('old-2')];
    let oldStatus = 'ENABLED';
    dynamoMock.on(DescribeTableCommand).callsFake(() => ({
      Table: { TableName: 'orders', LatestStreamArn: latest, StreamSpecification: { StreamEnabled: true } },
    }));
    streamsMock.on(DescribeStreamCommand).callsFake((input: DescribeStreamCommandInput) => {
      if (input.StreamArn === ARN) return page(oldShards, undefined, oldStatus);
      return page([shard('new-1')]);
    });
    const discovery = new ShardDiscovery({
      streamsClient: streams,
      dynamodbClient: dynamodb,
      tableName: 'orders',
      now: fastClock(),
    });
    const states = () => discovery.streams.map((s) => [s.arn, s.state]);

    await discovery.refresh();
    expect(states()).toEqual([[ARN, 'current']]);

    // Disabled and re-enabled: the old stream is disabling, one shard still open.
    latest = ARN2;
    oldStatus = 'DISABLING';
    const current = await discovery.refresh();
    expect(current.shards().map((s) => s.shardId)).toEqual(['new-1']);
    expect(states()).toEqual([
      [ARN, 'draining'],
      [ARN2, 'current'],
    ]);
    // A replaced stream's closed leaves are its end, not a reason to resync.
    expect(discovery.streams[0]?.graph.needsResync).toBe(false);

    // Still open: still draining and still listed.
    await discovery.refresh();
    expect(states()).toEqual([
      [ARN, 'draining'],
      [ARN2, 'current'],
    ]);

    // All closed: reported once more with the final graph, then dropped.
    oldShards = [shard('old-1', { end: END }), shard('old-2', { end: END })];
    oldStatus = 'DISABLED';
    await discovery.refresh();
    expect(states()).toEqual([
      [ARN, 'draining'],
      [ARN2, 'current'],
    ]);
    expect(discovery.streams[0]?.graph.shards().every((s) => s.endingSequenceNumber)).toBe(true);
    const oldCalls = () => describeInputs().filter((i) => i.StreamArn === ARN).length;
    const before = oldCalls();

    await discovery.refresh();
    expect(states()).toEqual([[ARN2, 'current']]);
    expect(oldCalls()).toBe(before);
  });

  it('by table: a table without a stream fails with StreamNotEnabled', async () => {
    dynamoMock.on(DescribeTableCommand).resolves({ Table: { TableName: 'orders' } });
    const discovery = new ShardDiscovery({
      streamsClient: streams,
      dynamodbClient: dynamodb,
      tableName: 'orders',
    });
    await expect(discovery.refresh()).rejects.toMatchObject({ code: 'StreamNotEnabled' });
  });

  it('start: resyncs soon while children are missing, at once on requestResync, and stops on abort', async () => {
    const listings: Shard[][] = [
      [shard('a', { end: END })],
      [shard('a', { end: END }), shard('a1', { parent: 'a' })],
      [shard('a', { end: END }), shard('a1', { parent: 'a', end: END }), shard('a2', { parent: 'a1' })],
    ];
    streamsMock
      .on(DescribeStreamCommand)
      .callsFake(() => page(listings.length > 1 ? listings.shift()! : listings[0]!));
    const waits: number[] = [];
    // Short waits (the child resync) pass at once; the long interval only ends by abort or wake-up.
    const sleep = (ms: number, signal?: AbortSignal) => {
      waits.push(ms);
      if (ms < 60_000) return Promise.resolve();
      return new Promise<void>((_, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    };
    const discovery = new ShardDiscovery({
      streamsClient: streams,
      streamArn: ARN,
      now: fastClock(),
      sleep,
      childResyncDelayMs: 1_000,
    });
    const changes: ShardGraph[] = [];
    const controller = new AbortController();
    const running = discovery.start(controller.signal, async (graph) => {
      changes.push(graph);
    });

    await vi.waitFor(() => expect(changes).toHaveLength(2));
    expect(changes[0]?.needsResync).toBe(true);
    await expect(discovery.start(controller.signal, () => {})).rejects.toThrow('already running');
    expect(changes[1]?.childrenOf('a')).toEqual(['a1']);
    await vi.waitFor(() => expect(waits).toEqual([1_000, 60_000]));
    expect(describeInputs()).toHaveLength(2);

    discovery.requestResync();
    await vi.waitFor(() => expect(changes).toHaveLength(3));
    expect(changes[2]?.childrenOf('a1')).toEqual(['a2']);
    await vi.waitFor(() => expect(waits).toEqual([1_000, 60_000, 60_000]));

    // Unchanged listings do not call onChange again.
    discovery.requestResync();
    await vi.waitFor(() => expect(waits).toHaveLength(4));
    expect(describeInputs()).toHaveLength(4);
    expect(changes).toHaveLength(3);

    controller.abort();
    await expect(running).resolves.toBeUndefined();
    expect(describeInputs()).toHaveLength(4);
  });

  it('start: reports refresh failures to onError and keeps going; without onError it rejects', async () => {
    streamsMock
      .on(DescribeStreamCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: 'not yet', $metadata: {} }))
      .resolves(page([shard('a')]));
    const errors: unknown[] = [];
    const discovery = new ShardDiscovery({
      streamsClient: streams,
      streamArn: ARN,
      now: fastClock(),
      sleep: noSleep,
      resyncIntervalMs: 5,
      onError: (e) => errors.push(e),
    });
    const controller = new AbortController();
    const running = discovery.start(controller.signal, () => controller.abort());
    await running;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ResourceNotFoundException' });
    expect(discovery.graph.has('a')).toBe(true);

    streamsMock.reset();
    streamsMock
      .on(DescribeStreamCommand)
      .rejects(new ResourceNotFoundException({ message: 'gone', $metadata: {} }));
    const strict = new ShardDiscovery({ streamsClient: streams, streamArn: ARN, sleep: noSleep });
    await expect(strict.start(new AbortController().signal, () => {})).rejects.toBeInstanceOf(StreamError);
  });
});
