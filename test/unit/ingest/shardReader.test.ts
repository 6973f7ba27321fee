import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  LimitExceededException,
  ResourceNotFoundException,
  TrimmedDataAccessException,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import {
  decodePage,
  type FetchedPage,
  ShardReader,
  type ShardReaderOptions,
  type StreamGap,
} from '../../../src/ingest/shardReader.js';
import { type CannedStreamsServer, startCannedStreamsServer } from '../../helpers/cannedStreamsServer.js';
import { sdkDeserializeGetRecords } from '../../helpers/sdkGetRecords.js';
import { generateRecords, getRecordsResponse, type WireRecord } from '../../helpers/streamRecords.js';

const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000';
const SHARD = 'shardId-00000001700000000000-aaaa0001';
const schema = parseKeySchema('pk:S,sk:N');
const fastRetry = { baseDelayMs: 0, maxDelayMs: 0, retries: 3 };

const streams = new DynamoDBStreamsClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
});
const mock = mockClient(streams);
afterEach(() => mock.reset());

/** Three pages of 50 records with increasing sequence numbers; SDK-shaped, as the mock returns them. */
const wirePages: WireRecord[][] = [0, 1, 2].map((p) =>
  generateRecords({ records: 50, seed: 40 + p, startSequence: 10n ** 20n + BigInt(p) * 10n ** 8n }),
);
async function sdkPage(records: WireRecord[], next: string | undefined): Promise<GetRecordsCommandOutput> {
  return sdkDeserializeGetRecords(getRecordsResponse(records, next));
}
const seqs = (records: WireRecord[]) => records.map((r) => r.dynamodb.SequenceNumber);

function reader(overrides: Partial<ShardReaderOptions> = {}) {
  const buffer = new ChangeBuffer(schema);
  const delivered: string[] = [];
  const gaps: StreamGap[] = [];
  const r = new ShardReader({
    streamArn: STREAM,
    shardId: SHARD,
    streams,
    consume: async (page: FetchedPage) => {
      const mark = buffer.rowCount;
      const summary = decodePage(page, buffer);
      for (let row = mark; row < buffer.rowCount; row++) {
        delivered.push(Buffer.from(buffer.sequenceNumber.value(row)).toString());
      }
      return summary;
    },
    onGap: (gap) => {
      gaps.push(gap);
    },
    idleMinMs: 1,
    idleMaxMs: 2,
    retry: fastRetry,
    ...overrides,
  });
  return { r, delivered, gaps, buffer };
}

describe('ShardReader', () => {
  it('reads from TRIM_HORIZON to the end of a closed shard, delivering every record once in order', async () => {
    mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
    mock.on(GetRecordsCommand, { ShardIterator: 'it-0' }).resolves(await sdkPage(wirePages[0]!, 'it-1'));
    mock.on(GetRecordsCommand, { ShardIterator: 'it-1' }).resolves(await sdkPage([], 'it-2'));
    mock.on(GetRecordsCommand, { ShardIterator: 'it-2' }).resolves(await sdkPage(wirePages[1]!, 'it-3'));
    mock.on(GetRecordsCommand, { ShardIterator: 'it-3' }).resolves(await sdkPage(wirePages[2]!, undefined));
    const { r, delivered } = reader();
    const result = await r.run(new AbortController().signal);
    expect(result).toMatchObject({ outcome: 'shard-end', records: 150, pages: 4, gaps: 0 });
    expect(delivered).toEqual([...seqs(wirePages[0]!), ...seqs(wirePages[1]!), ...seqs(wirePages[2]!)]);
    expect(result.lastSequenceNumber).toBe(wirePages[2]!.at(-1)!.dynamodb.SequenceNumber);
    expect(mock.commandCalls(GetShardIteratorCommand)[0]!.args[0].input).toMatchObject({
      ShardIteratorType: 'TRIM_HORIZON',
      ShardId: SHARD,
      StreamArn: STREAM,
    });
  });

  it('resumes AFTER the checkpoint', async () => {
    mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
    mock.on(GetRecordsCommand).resolves(await sdkPage(wirePages[1]!, undefined));
    const { r } = reader({ afterSequenceNumber: '12345678901234567890' });
    await r.run(new AbortController().signal);
    expect(mock.commandCalls(GetShardIteratorCommand)[0]!.args[0].input).toMatchObject({
      ShardIteratorType: 'AFTER_SEQUENCE_NUMBER',
      SequenceNumber: '12345678901234567890',
    });
  });

  it('renews an expired iterator AFTER the last record read: no gap, no repeat', async () => {
    const last0 = wirePages[0]!.at(-1)!.dynamodb.SequenceNumber;
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
      .resolves({ ShardIterator: 'it-0' });
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: last0 })
      .resolves({ ShardIterator: 'fresh' });
    mock.on(GetRecordsCommand, { ShardIterator: 'it-0' }).resolves(await sdkPage(wirePages[0]!, 'stale'));
    mock
      .on(GetRecordsCommand, { ShardIterator: 'stale' })
      .rejects(new ExpiredIteratorException({ message: 'expired', $metadata: {} }));
    mock.on(GetRecordsCommand, { ShardIterator: 'fresh' }).resolves(await sdkPage(wirePages[1]!, undefined));
    const { r, delivered, gaps } = reader();
    const result = await r.run(new AbortController().signal);
    expect(delivered).toEqual([...seqs(wirePages[0]!), ...seqs(wirePages[1]!)]);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect(gaps).toEqual([]);
    expect(result.iteratorRenewals).toBe(1);
  });

  it('backs off and retries throttling, then goes on', async () => {
    mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
    mock
      .on(GetRecordsCommand)
      .rejectsOnce(new LimitExceededException({ message: 'slow down', $metadata: {} }))
      .rejectsOnce(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .resolves(await sdkPage(wirePages[0]!, undefined));
    const { r, delivered } = reader();
    await r.run(new AbortController().signal);
    expect(delivered).toEqual(seqs(wirePages[0]!));
    expect(mock.commandCalls(GetRecordsCommand)).toHaveLength(3);
  });

  it('records a gap for trimmed data, then continues from TRIM_HORIZON', async () => {
    const last0 = wirePages[0]!.at(-1)!.dynamodb.SequenceNumber;
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
      .resolvesOnce({ ShardIterator: 'it-0' })
      .resolves({
        ShardIterator: 'horizon',
      });
    mock.on(GetRecordsCommand, { ShardIterator: 'it-0' }).resolves(await sdkPage(wirePages[0]!, 'it-1'));
    mock
      .on(GetRecordsCommand, { ShardIterator: 'it-1' })
      .rejects(new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} }));
    mock
      .on(GetRecordsCommand, { ShardIterator: 'horizon' })
      .resolves(await sdkPage(wirePages[2]!, undefined));
    const errors: string[] = [];
    const { r, delivered, gaps } = reader({
      logger: { error: (_d, m) => errors.push(m), warn: () => {} },
    });
    const result = await r.run(new AbortController().signal);
    expect(gaps).toEqual([
      {
        shardId: SHARD,
        afterSequenceNumber: last0,
        reason: 'TrimmedDataAccessException',
        detectedAt: undefined,
      },
    ]);
    expect(errors.some((m) => m.includes('trimmed'))).toBe(true);
    expect(delivered).toEqual([...seqs(wirePages[0]!), ...seqs(wirePages[2]!)]);
    expect(result.gaps).toBe(1);
  });

  it('turns a trimmed checkpoint (older than the retention) into a gap at start', async () => {
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER' })
      .rejects(new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} }));
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
      .resolves({ ShardIterator: 'horizon' });
    mock.on(GetRecordsCommand).resolves(await sdkPage(wirePages[0]!, undefined));
    const { r, gaps } = reader({ afterSequenceNumber: '5' });
    await r.run(new AbortController().signal);
    expect(gaps).toHaveLength(1);
    expect(gaps[0]!.afterSequenceNumber).toBe('5');
  });

  describe('a shard with no checkpoint starts where its lease says', () => {
    const FIRST = wirePages[0]![0]!.dynamodb.SequenceNumber;
    const trimmed = () => new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} });
    const notFound = () => new ResourceNotFoundException({ message: 'Shard does not exist', $metadata: {} });
    const iteratorTypes = () =>
      mock.commandCalls(GetShardIteratorCommand).map((c) => {
        const { ShardIteratorType, SequenceNumber } = c.args[0].input;
        return SequenceNumber === undefined ? ShardIteratorType : `${ShardIteratorType} ${SequenceNumber}`;
      });

    it('a later shard whose first records were trimmed: AT_SEQUENCE_NUMBER, a gap, then TRIM_HORIZON', async () => {
      mock
        .on(GetShardIteratorCommand, { ShardIteratorType: 'AT_SEQUENCE_NUMBER' })
        .rejects(trimmed())
        .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
        .resolves({ ShardIterator: 'horizon' });
      mock
        .on(GetRecordsCommand, { ShardIterator: 'horizon' })
        .resolves(await sdkPage(wirePages[1]!, undefined));
      const errors: string[] = [];
      const { r, delivered, gaps } = reader({
        startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST },
        logger: { error: (_d, m) => errors.push(m), warn: () => {} },
      });
      const result = await r.run(new AbortController().signal);
      expect(iteratorTypes()).toEqual([`AT_SEQUENCE_NUMBER ${FIRST}`, 'TRIM_HORIZON']);
      expect(gaps).toEqual([
        {
          shardId: SHARD,
          afterSequenceNumber: undefined,
          reason: 'TrimmedDataAccessException',
          detectedAt: undefined,
        },
      ]);
      expect(errors.some((m) => m.includes('trimmed'))).toBe(true);
      expect(delivered).toEqual(seqs(wirePages[1]!));
      expect(result).toMatchObject({ outcome: 'shard-end', gaps: 1, records: 50 });
    });

    it('a later shard read in time: from its first record, no gap', async () => {
      mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'first' });
      mock
        .on(GetRecordsCommand, { ShardIterator: 'first' })
        .resolves(await sdkPage(wirePages[0]!, undefined));
      const { r, delivered, gaps } = reader({
        startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST },
      });
      await r.run(new AbortController().signal);
      expect(iteratorTypes()).toEqual([`AT_SEQUENCE_NUMBER ${FIRST}`]);
      expect(gaps).toEqual([]);
      expect(delivered).toEqual(seqs(wirePages[0]!));
    });

    it('a trim met on the first GetRecords at AT_SEQUENCE_NUMBER is a gap too', async () => {
      mock
        .on(GetShardIteratorCommand, { ShardIteratorType: 'AT_SEQUENCE_NUMBER' })
        .resolves({ ShardIterator: 'first' })
        .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
        .resolves({ ShardIterator: 'horizon' });
      mock.on(GetRecordsCommand, { ShardIterator: 'first' }).rejects(trimmed());
      mock
        .on(GetRecordsCommand, { ShardIterator: 'horizon' })
        .resolves(await sdkPage(wirePages[1]!, undefined));
      const { r, gaps, delivered } = reader({
        startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST },
      });
      await r.run(new AbortController().signal);
      expect(gaps.map((g) => g.afterSequenceNumber)).toEqual([undefined]);
      expect(delivered).toEqual(seqs(wirePages[1]!));
    });

    it('a shard of the changelog start: TRIM_HORIZON, and no gap', async () => {
      mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'horizon' });
      mock.on(GetRecordsCommand).resolves(await sdkPage(wirePages[0]!, undefined));
      const { r, gaps, delivered } = reader({ startAt: { type: 'TRIM_HORIZON' } });
      await r.run(new AbortController().signal);
      expect(iteratorTypes()).toEqual(['TRIM_HORIZON']);
      expect(gaps).toEqual([]);
      expect(delivered).toEqual(seqs(wirePages[0]!));
    });

    it('a vanished shard: a gap for the whole shard, then shard-end without reading', async () => {
      mock.on(GetShardIteratorCommand).rejects(notFound());
      const { r, gaps } = reader({ startAt: { type: 'VANISHED' } });
      const result = await r.run(new AbortController().signal);
      expect(result).toMatchObject({ outcome: 'shard-end', records: 0, pages: 0, gaps: 1 });
      expect(gaps).toEqual([
        {
          shardId: SHARD,
          afterSequenceNumber: undefined,
          reason: 'TrimmedDataAccessException',
          detectedAt: undefined,
        },
      ]);
      expect(mock.commandCalls(GetRecordsCommand)).toHaveLength(0);
    });

    it('a "vanished" shard that DescribeStream does list after all is read from its first record', async () => {
      mock
        .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
        .resolves({ ShardIterator: 'horizon' })
        .on(GetShardIteratorCommand, { ShardIteratorType: 'AT_SEQUENCE_NUMBER' })
        .resolves({ ShardIterator: 'first' });
      mock.on(DescribeStreamCommand).resolves({
        StreamDescription: {
          StreamArn: STREAM,
          Shards: [{ ShardId: SHARD, SequenceNumberRange: { StartingSequenceNumber: FIRST } }],
        },
      });
      mock
        .on(GetRecordsCommand, { ShardIterator: 'first' })
        .resolves(await sdkPage(wirePages[0]!, undefined));
      const { r, gaps, delivered } = reader({ startAt: { type: 'VANISHED' } });
      await r.run(new AbortController().signal);
      expect(iteratorTypes()).toEqual(['TRIM_HORIZON', `AT_SEQUENCE_NUMBER ${FIRST}`]);
      expect(gaps).toEqual([]);
      expect(delivered).toEqual(seqs(wirePages[0]!));
    });

    it('a shard no listing shows but GetShardIterator finds: a gap (its start is unknown), then read', async () => {
      mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'horizon' });
      mock.on(DescribeStreamCommand).resolves({ StreamDescription: { StreamArn: STREAM, Shards: [] } });
      mock
        .on(GetRecordsCommand, { ShardIterator: 'horizon' })
        .resolves(await sdkPage(wirePages[0]!, undefined));
      const { r, gaps, delivered } = reader({ startAt: { type: 'VANISHED' } });
      await r.run(new AbortController().signal);
      expect(gaps.map((g) => g.afterSequenceNumber)).toEqual([undefined]);
      expect(delivered).toEqual(seqs(wirePages[0]!));
    });

    it('a later shard trimmed away entirely before it was read: a gap, then shard-end', async () => {
      mock.on(GetShardIteratorCommand).rejects(notFound());
      mock.on(DescribeStreamCommand).resolves({ StreamDescription: { StreamArn: STREAM, Shards: [] } });
      const { r, gaps } = reader({ startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST } });
      await expect(r.run(new AbortController().signal)).resolves.toMatchObject({ outcome: 'shard-end' });
      expect(gaps.map((g) => g.afterSequenceNumber)).toEqual([undefined]);
    });

    it('GetShardIterator ResourceNotFound for a shard DescribeStream still lists is an error, not an end', async () => {
      mock.on(GetShardIteratorCommand).rejects(notFound());
      mock.on(DescribeStreamCommand).resolves({
        StreamDescription: {
          StreamArn: STREAM,
          Shards: [{ ShardId: SHARD, SequenceNumberRange: { StartingSequenceNumber: FIRST } }],
        },
      });
      const { r, gaps } = reader({ startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST } });
      await expect(r.run(new AbortController().signal)).rejects.toThrow(/Shard does not exist/);
      expect(gaps).toEqual([]);
    });

    it('an iterator that expires before any record is read reopens AT_SEQUENCE_NUMBER, not TRIM_HORIZON', async () => {
      mock
        .on(GetShardIteratorCommand, { ShardIteratorType: 'AT_SEQUENCE_NUMBER' })
        .resolvesOnce({ ShardIterator: 'first' })
        .resolves({ ShardIterator: 'fresh' });
      mock
        .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
        .resolves({ ShardIterator: 'horizon' });
      mock.on(GetRecordsCommand, { ShardIterator: 'first' }).resolves(await sdkPage([], 'stale'));
      mock
        .on(GetRecordsCommand, { ShardIterator: 'stale' })
        .rejects(new ExpiredIteratorException({ message: 'expired', $metadata: {} }));
      mock
        .on(GetRecordsCommand, { ShardIterator: 'fresh' })
        .resolves(await sdkPage(wirePages[0]!, undefined));
      const { r, gaps, delivered } = reader({
        startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST },
      });
      const result = await r.run(new AbortController().signal);
      expect(iteratorTypes()).toEqual([`AT_SEQUENCE_NUMBER ${FIRST}`, `AT_SEQUENCE_NUMBER ${FIRST}`]);
      expect(result.iteratorRenewals).toBe(1);
      expect(gaps).toEqual([]);
      expect(delivered).toEqual(seqs(wirePages[0]!));
    });

    it('the checkpoint wins over the start position', async () => {
      mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
      mock.on(GetRecordsCommand).resolves(await sdkPage(wirePages[1]!, undefined));
      const { r } = reader({
        afterSequenceNumber: '12345678901234567890',
        startAt: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: FIRST },
      });
      await r.run(new AbortController().signal);
      expect(iteratorTypes()).toEqual(['AFTER_SEQUENCE_NUMBER 12345678901234567890']);
    });
  });

  it('reports a trimmed checkpoint once: an iterator expiring before a record is read reopens at TRIM_HORIZON', async () => {
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER' })
      .rejects(new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} }));
    mock
      .on(GetShardIteratorCommand, { ShardIteratorType: 'TRIM_HORIZON' })
      .resolvesOnce({ ShardIterator: 'horizon' })
      .resolves({ ShardIterator: 'fresh' });
    mock
      .on(GetRecordsCommand, { ShardIterator: 'horizon' })
      .rejects(new ExpiredIteratorException({ message: 'expired', $metadata: {} }));
    mock.on(GetRecordsCommand, { ShardIterator: 'fresh' }).resolves(await sdkPage(wirePages[0]!, undefined));
    const { r, gaps, delivered } = reader({ afterSequenceNumber: '5' });
    await r.run(new AbortController().signal);
    expect(gaps.map((g) => g.afterSequenceNumber)).toEqual(['5']);
    expect(delivered).toEqual(seqs(wirePages[0]!));
  });

  it.each([
    [
      true,
      'closed',
      { ShardId: SHARD, SequenceNumberRange: { StartingSequenceNumber: '1', EndingSequenceNumber: '9' } },
    ],
    [true, 'gone', { ShardId: 'shardId-other', SequenceNumberRange: { StartingSequenceNumber: '1' } }],
    [false, 'open', { ShardId: SHARD, SequenceNumberRange: { StartingSequenceNumber: '1' } }],
  ])(
    'on ResourceNotFound asks DescribeStream: ended=%s when the shard is %s',
    async (ended, _state, shard) => {
      mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
      mock
        .on(GetRecordsCommand)
        .rejects(new ResourceNotFoundException({ message: 'no shard', $metadata: {} }));
      mock.on(DescribeStreamCommand).resolves({ StreamDescription: { StreamArn: STREAM, Shards: [shard] } });
      const { r } = reader();
      if (ended) {
        await expect(r.run(new AbortController().signal)).resolves.toMatchObject({ outcome: 'shard-end' });
      } else {
        await expect(r.run(new AbortController().signal)).rejects.toThrow(/still lists it open/);
      }
      expect(mock.commandCalls(DescribeStreamCommand).length).toBeGreaterThan(0);
    },
  );

  it('waits for the consumer before fetching again (backpressure)', async () => {
    mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
    mock.on(GetRecordsCommand, { ShardIterator: 'it-0' }).resolves(await sdkPage(wirePages[0]!, 'it-1'));
    mock.on(GetRecordsCommand, { ShardIterator: 'it-1' }).resolves(await sdkPage(wirePages[1]!, undefined));
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let consumed = 0;
    const buffer = new ChangeBuffer(schema);
    const { r } = reader({
      consume: async (page) => {
        const summary = decodePage(page, buffer);
        if (consumed++ === 0) await held;
        return summary;
      },
    });
    const running = r.run(new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(mock.commandCalls(GetRecordsCommand)).toHaveLength(1);
    release();
    await running;
    expect(mock.commandCalls(GetRecordsCommand)).toHaveLength(2);
    expect(buffer.rowCount).toBe(100);
  });

  it('stops promptly when aborted while the shard is idle', async () => {
    mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'it-0' });
    mock.on(GetRecordsCommand).resolves(await sdkPage([], 'it-0'));
    const controller = new AbortController();
    const { r } = reader({ idleMinMs: 5, idleMaxMs: 60_000 });
    const running = r.run(controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort(new Error('lease lost'));
    await expect(running).resolves.toMatchObject({ outcome: 'aborted', records: 0 });
  });
});

describe('ShardReader on the fast path', () => {
  let server: CannedStreamsServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('reads raw pages over HTTP, renews an expired iterator, and ends at the closed shard', async () => {
    const bodies = new Map<string, { status?: number; body: Uint8Array }>([
      ['it-0', { body: getRecordsResponse(wirePages[0]!, 'it-1') }],
      [
        'it-1',
        { status: 400, body: Buffer.from('{"__type":"x#ExpiredIteratorException","message":"expired"}') },
      ],
      ['fresh', { body: getRecordsResponse(wirePages[1]!, undefined) }],
    ]);
    server = await startCannedStreamsServer((request) => {
      const input = JSON.parse(request.body.toString()) as {
        ShardIterator?: string;
        ShardIteratorType?: string;
      };
      if (String(request.headers['x-amz-target']).endsWith('GetShardIterator')) {
        return {
          body: Buffer.from(
            JSON.stringify({ ShardIterator: input.ShardIteratorType === 'TRIM_HORIZON' ? 'it-0' : 'fresh' }),
          ),
        };
      }
      return bodies.get(input.ShardIterator!)!;
    });
    const sdk = new DynamoDBStreamsClient({
      region: 'us-east-1',
      endpoint: server.endpoint,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      maxAttempts: 1,
    });
    const raw = new RawGetRecordsClient(sdk);
    try {
      const { r, delivered } = reader({ streams: sdk, raw });
      const result = await r.run(new AbortController().signal);
      expect(result).toMatchObject({ outcome: 'shard-end', records: 100, iteratorRenewals: 1 });
      expect(delivered).toEqual([...seqs(wirePages[0]!), ...seqs(wirePages[1]!)]);
    } finally {
      raw.destroy();
      sdk.destroy();
    }
  });
});
