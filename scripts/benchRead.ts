/**
 * Read benchmark: GetRecords over HTTP from a local server that serves canned pages.
 *
 *   npm run bench:read [-- --records 50000 --page-size 1000 --repeat 3]
 *
 * The server runs in a child process pinned to core 1 and answers GetRecords for iterator
 * `page-N` with the N-th cached page (~3 KB NEW_AND_OLD_IMAGES records, as in bench:encode).
 * Each case runs in its own child pinned to core 0 and reads every page once, one request in
 * flight (like one shard's reader):
 *   a  fast path: RawGetRecordsClient (SigV4-signed keep-alive HTTP) + decodeGetRecordsResponse
 *      into a ChangeBuffer
 *   b  SDK path: DynamoDBStreamsClient GetRecordsCommand + appendStreamRecords into a ChangeBuffer
 *   c  fast path transport only: RawGetRecordsClient, bytes not decoded
 *   d  SDK transport + deserialisation only: GetRecordsCommand, objects not used
 * The buffer is cleared at 64 MiB (where the daemon would flush a segment), so memory stays flat.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { DynamoDBStreamsClient, GetRecordsCommand } from '@aws-sdk/client-dynamodb-streams';
import { ChangeBuffer } from '../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../src/changelog/keySchema.js';
import { appendStreamRecords, type StreamRecordObject } from '../src/changelog/sdkRecordDecoder.js';
import { decodeGetRecordsResponse } from '../src/changelog/wireRecordDecoder.js';
import { RawGetRecordsClient } from '../src/coordination/getRecordsClient.js';
import { startCannedStreamsServer } from '../test/helpers/cannedStreamsServer.js';
import {
  type CaseResult,
  cachedPages,
  parseArgs,
  peakRssMiB,
  pinTo,
  runCase,
  runInterleaved,
} from './benchHarness.js';

const args = parseArgs();
const RECORDS = Number(args.get('records') ?? 50_000);
const PAGE = Number(args.get('page-size') ?? 1000);
const REPEAT = Number(args.get('repeat') ?? 3);
const FLUSH_BYTES = 64 * 1024 * 1024;
const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');
const SHARD = 'shardId-00000001700000000000-0123abcd';
const credentials = { accessKeyId: 'AKIDBENCH', secretAccessKey: 'bench-secret' };

const LABELS: Record<string, string> = {
  a: '(a) fast path: raw HTTP + wire decoder',
  b: '(b) AWS SDK GetRecords + its objects',
  c: '(c) fast path transport only',
  d: '(d) AWS SDK GetRecords only',
};

/** Server mode: serve the pages until stdin closes. */
async function serve(): Promise<void> {
  const bodies = cachedPages(RECORDS, PAGE).map((f) => readFileSync(f));
  const server = await startCannedStreamsServer(
    (request) => {
      const { ShardIterator } = JSON.parse(request.body.toString('utf8')) as { ShardIterator: string };
      const index = Number(ShardIterator.slice('page-'.length));
      const body = bodies[index];
      if (body === undefined) {
        return {
          status: 400,
          body: Buffer.from('{"__type":"#ExpiredIteratorException","message":"no such page"}'),
        };
      }
      return { body };
    },
    { keepRequests: false },
  );
  process.stdout.write(`ENDPOINT ${server.endpoint}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void server.stop().then(() => process.exit(0)));
}

async function runReads(
  name: string,
  pages: number,
  read: (iterator: string) => Promise<number>,
  detail?: () => string,
): Promise<CaseResult> {
  let inputBytes = 0;
  const start = performance.now();
  for (let p = 0; p < pages; p++) inputBytes += await read(`page-${p}`);
  const seconds = (performance.now() - start) / 1000;
  return { name, seconds, records: RECORDS, inputBytes, peakRssMiB: peakRssMiB(), detail: detail?.() };
}

async function runClientCase(name: string, endpoint: string): Promise<CaseResult> {
  const pages = Math.ceil(RECORDS / PAGE);
  const sdk = new DynamoDBStreamsClient({ region: 'us-east-1', endpoint, credentials, maxAttempts: 1 });
  const raw = new RawGetRecordsClient(sdk);
  const buffer = new ChangeBuffer(KEY_SCHEMA);
  const maybeClear = () => {
    if (buffer.byteSize >= FLUSH_BYTES) buffer.clear();
  };
  try {
    if (name === 'a' || name === 'c') {
      return await runReads(name, pages, async (iterator) => {
        const response = await raw.getRecords({ ShardIterator: iterator });
        if (name === 'a') {
          decodeGetRecordsResponse(response.body, SHARD, buffer);
          maybeClear();
        }
        return response.body.length;
      });
    }
    // The SDK gives no byte count: charge it the same input bytes the server sent.
    const sizes = cachedPages(RECORDS, PAGE).map((f) => statSync(f).size);
    return await runReads(name, pages, async (iterator) => {
      const output = await sdk.send(new GetRecordsCommand({ ShardIterator: iterator }));
      if (name === 'b') {
        appendStreamRecords((output.Records ?? []) as StreamRecordObject[], SHARD, buffer);
        maybeClear();
      }
      return sizes[Number(iterator.slice('page-'.length))]!;
    });
  } finally {
    raw.destroy();
    sdk.destroy();
  }
}

async function startServerChild(): Promise<{ endpoint: string; child: ChildProcess }> {
  const cmd = [
    ...pinTo(1),
    process.execPath,
    '--import',
    'tsx',
    'scripts/benchRead.ts',
    ...caseArgs(),
    '--serve',
    '1',
  ];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.startsWith('ENDPOINT ')) return { endpoint: line.slice('ENDPOINT '.length), child };
  }
  throw new Error('the canned GetRecords server did not start');
}

function caseArgs(): string[] {
  return ['--records', String(RECORDS), '--page-size', String(PAGE)];
}

async function main(): Promise<void> {
  if (args.has('serve')) return serve();
  const only = args.get('case');
  if (only) {
    const result = await runClientCase(only, args.get('endpoint')!);
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const files = cachedPages(RECORDS, PAGE);
  const inputMiB = files.reduce((sum, f) => sum + statSync(f).size, 0) / 2 ** 20;
  console.log(
    `read benchmark: ${RECORDS} records in ${files.length} GetRecords pages (${inputMiB.toFixed(1)} MiB), ` +
      'server on core 1, each client case in its own process on core 0\n',
  );
  const { endpoint, child } = await startServerChild();
  try {
    runInterleaved(
      LABELS,
      REPEAT,
      (name) => runCase('scripts/benchRead.ts', name, [...caseArgs(), '--endpoint', endpoint], RECORDS),
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
    );
  } finally {
    child.stdin?.end();
  }
}

await main();
