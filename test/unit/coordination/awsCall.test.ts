import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  DescribeTableCommand,
  DynamoDBClient,
  ThrottlingException,
  TransactionCanceledException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBStreamsClient,
  GetShardIteratorCommand,
  LimitExceededException,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awsCall,
  cancellationReasons,
  isConditionFailure,
  isTransactionConflict,
  isTransientAwsError,
  isTransientServiceError,
} from '../../../src/coordination/awsCall.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { RegistryStore } from '../../../src/coordination/registryStore.js';
import { describeTableStream } from '../../../src/coordination/shardDiscovery.js';
import { getShardIterator } from '../../../src/coordination/shardIterator.js';
import { ChangelogError, StreamError } from '../../../src/support/errors.js';

const FAST = { baseDelayMs: 0 };
const throttled = () => new ThrottlingException({ message: 'slow down', $metadata: { httpStatusCode: 400 } });
const canceled = (...codes: (string | undefined)[]) =>
  new TransactionCanceledException({
    message: `Transaction cancelled [${codes.join(', ')}]`,
    $metadata: { httpStatusCode: 400 },
    CancellationReasons: codes.map((Code) => (Code === undefined ? {} : { Code })),
  });

const credentials = { accessKeyId: 'a', secretAccessKey: 'b' };
let dynamodb: DynamoDBClient;
let ddb: ReturnType<typeof mockClient>;

beforeEach(() => {
  dynamodb = new DynamoDBClient({ region: 'us-east-1', credentials, maxAttempts: 1 });
  ddb = mockClient(dynamodb);
});

afterEach(() => {
  ddb.restore();
  dynamodb.destroy();
});

describe('awsCall: the one retry layer', () => {
  it('retries one transient fault once, then returns', async () => {
    let attempts = 0;
    const retried: number[] = [];
    const result = await awsCall(
      async () => {
        attempts++;
        if (attempts === 1) throw throttled();
        return 'ok';
      },
      { retry: { ...FAST, onRetry: (_e, attempt) => retried.push(attempt) } },
    );
    expect(result).toBe('ok');
    expect(attempts).toBe(2);
    expect(retried).toEqual([1]);
  });

  it('stops after retries + 1 attempts and wraps the last failure as a retriable domain error', async () => {
    let attempts = 0;
    const error = await awsCall(
      async () => {
        attempts++;
        throw throttled();
      },
      {
        retry: { ...FAST, retries: 2 },
        wrap: (cause, description, retriable) =>
          new ChangelogError(`call failed: ${description}`, { cause, retriable }),
      },
    ).catch((e: unknown) => e);
    expect(attempts).toBe(3);
    expect(error).toBeInstanceOf(ChangelogError);
    expect((error as ChangelogError).retriable).toBe(true);
    expect((error as Error).message).toBe('call failed: ThrottlingException (HTTP 400): slow down');
  });

  it('passes failed conditions through untouched and never retries them', async () => {
    let attempts = 0;
    const failure = canceled('ConditionalCheckFailed');
    const error = await awsCall(
      async () => {
        attempts++;
        throw failure;
      },
      { retry: FAST, wrap: () => new Error('must not wrap') },
    ).catch((e: unknown) => e);
    expect(error).toBe(failure);
    expect(attempts).toBe(1);
  });

  it('throws the abort reason, not a wrapped error, once the signal aborts', async () => {
    const controller = new AbortController();
    const error = await awsCall(
      async () => {
        controller.abort(new Error('stopping'));
        throw throttled();
      },
      { signal: controller.signal, retry: FAST, wrap: () => new Error('must not wrap') },
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe('stopping');
  });
});

describe('one transient fault is retried by exactly one layer', () => {
  it('describeTableStream (the daemon calls it bare): retries + 1 DescribeTable calls, no more', async () => {
    ddb.on(DescribeTableCommand).rejects(throttled());
    const error = await describeTableStream(dynamodb, 'orders', { retry: { ...FAST, retries: 2 } }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).retriable).toBe(true);
    expect(ddb.commandCalls(DescribeTableCommand)).toHaveLength(3);
  });

  it('describeTableStream: one throttled answer costs exactly one more call', async () => {
    ddb
      .on(DescribeTableCommand)
      .rejectsOnce(throttled())
      .resolves({ Table: { TableName: 'orders', StreamSpecification: { StreamEnabled: false } } });
    const table = await describeTableStream(dynamodb, 'orders', { retry: FAST });
    expect(table.streamEnabled).toBe(false);
    expect(ddb.commandCalls(DescribeTableCommand)).toHaveLength(2);
  });

  it('createLeaseTable (the daemon calls it bare): retries + 1 DescribeTable calls, no more', async () => {
    ddb.on(DescribeTableCommand).rejects(throttled());
    await expect(createLeaseTable(dynamodb, 'leases', { retry: { ...FAST, retries: 2 } })).rejects.toThrow(
      /slow down/,
    );
    expect(ddb.commandCalls(DescribeTableCommand)).toHaveLength(3);
  });

  it('getShardIterator: retries + 1 calls, the SDK error thrown as it is', async () => {
    const streams = new DynamoDBStreamsClient({ region: 'us-east-1', credentials, maxAttempts: 1 });
    const streamsMock = mockClient(streams);
    try {
      streamsMock
        .on(GetShardIteratorCommand)
        .rejects(
          new LimitExceededException({ message: 'rate exceeded', $metadata: { httpStatusCode: 400 } }),
        );
      const at = { streamArn: 'arn', shardId: 's', type: 'TRIM_HORIZON' as const };
      const error = await getShardIterator(
        streams,
        at,
        { ...FAST, retries: 2 },
        new AbortController().signal,
      ).catch((e: unknown) => e);
      expect((error as Error).name).toBe('LimitExceededException');
      expect(streamsMock.commandCalls(GetShardIteratorCommand)).toHaveLength(3);
    } finally {
      streamsMock.restore();
      streams.destroy();
    }
  });

  it('a commit transaction: conflicts and throttling share one retry budget (not one layer inside another)', async () => {
    const registry = new RegistryStore({
      client: dynamodb,
      tableName: 'leases',
      table: 'orders',
      retry: { ...FAST, retries: 3 },
    });
    // Alternating faults, each of a kind that one of two nested layers would have retried afresh.
    ddb
      .on(TransactWriteItemsCommand)
      .rejectsOnce(canceled('None', 'TransactionConflict'))
      .rejectsOnce(throttled())
      .rejectsOnce(canceled('TransactionConflict', 'None'))
      .rejects(throttled());
    const retried: unknown[] = [];
    const error = await registry
      .transact([], undefined, { retryConflicts: true, onRetry: (e) => retried.push(e) })
      .catch((e: unknown) => e);
    expect(ddb.commandCalls(TransactWriteItemsCommand)).toHaveLength(4);
    expect(retried.map(isTransactionConflict)).toEqual([true, false, true]);
    expect(error).toBeInstanceOf(ChangelogError);
    expect((error as ChangelogError).retriable).toBe(true);
  });

  it('a transaction without retryConflicts hands a conflict to the caller at once', async () => {
    const registry = new RegistryStore({
      client: dynamodb,
      tableName: 'leases',
      table: 'orders',
      retry: FAST,
    });
    const conflict = canceled('TransactionConflict');
    ddb.on(TransactWriteItemsCommand).rejects(conflict);
    await expect(registry.transact([])).rejects.toMatchObject({ name: 'TransactionCanceledException' });
    expect(ddb.commandCalls(TransactWriteItemsCommand)).toHaveLength(1);
  });

  it('no coordination module but awsCall.ts runs retry(), and app/ runs none', () => {
    const src = path.join(import.meta.dirname, '..', '..', '..', 'src');
    const importsRetry = (file: string) =>
      /import\s*\{[^}]*\bretry\b[^}]*\}\s*from\s*'[./]*\/?support\/retry\.js'/.test(
        readFileSync(file, 'utf8'),
      );
    const coordination = filesUnder(path.join(src, 'coordination')).filter(importsRetry);
    expect(coordination.map((f) => path.relative(src, f))).toEqual([path.join('coordination', 'awsCall.ts')]);
    expect(filesUnder(path.join(src, 'app')).filter(importsRetry)).toEqual([]);
  });
});

describe('AWS error predicates', () => {
  it('reads cancellation reasons by item index, a missing code as None', () => {
    expect(cancellationReasons(canceled('None', 'ConditionalCheckFailed', undefined))).toEqual([
      'None',
      'ConditionalCheckFailed',
      'None',
    ]);
    expect(cancellationReasons(throttled())).toBeUndefined();
    expect(cancellationReasons(new Error('boom'))).toBeUndefined();
  });

  it('a transaction conflict is a cancellation for conflicts only, or TransactionConflictException', () => {
    expect(isTransactionConflict(canceled('None', 'TransactionConflict'))).toBe(true);
    expect(isTransactionConflict(canceled('TransactionConflict', 'ConditionalCheckFailed'))).toBe(false);
    expect(isTransactionConflict(canceled('None', 'None'))).toBe(false);
    expect(
      isTransactionConflict(Object.assign(new Error('x'), { name: 'TransactionConflictException' })),
    ).toBe(true);
    expect(isTransactionConflict(throttled())).toBe(false);
  });

  it('CancellationReasons are read in one place: coordination/awsCall.ts', () => {
    const src = path.join(import.meta.dirname, '..', '..', '..', 'src');
    const readers = filesUnder(src).filter((f) => readFileSync(f, 'utf8').includes('CancellationReasons'));
    expect(readers.map((f) => path.relative(src, f))).toEqual([path.join('coordination', 'awsCall.ts')]);
  });

  it('tells transient faults from failed conditions', () => {
    expect(isTransientAwsError(throttled())).toBe(true);
    expect(isTransientAwsError(Object.assign(new Error('x'), { name: 'TransactionConflictException' }))).toBe(
      true,
    );
    expect(
      isTransientAwsError(
        Object.assign(new Error('x'), {
          name: 'ConditionalRequestConflict',
          $metadata: { httpStatusCode: 409 },
        }),
      ),
    ).toBe(true);
    expect(isTransientAwsError(canceled('TransactionConflict'))).toBe(false);
    expect(isConditionFailure(canceled('ConditionalCheckFailed'))).toBe(true);
    expect(
      isConditionFailure(Object.assign(new Error('x'), { name: 'ConditionalCheckFailedException' })),
    ).toBe(true);
    expect(isConditionFailure(throttled())).toBe(false);
    expect(isTransientServiceError('ProvisionedThroughputExceededException', 400)).toBe(true);
    expect(isTransientServiceError('ExpiredIteratorException', 400)).toBe(false);
    expect(isTransientServiceError('Http502', 502)).toBe(true);
  });
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
}
