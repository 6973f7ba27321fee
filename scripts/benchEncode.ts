/**
 * Encode benchmark: raw GetRecords response pages -> Parquet change segments.
 *
 *   npm run bench:encode [-- --records 200000 --page-size 1000]
 *
 * Cases, each in its own child process pinned to one core (taskset) so peak RSS and CPU are its own:
 *   a   ours: raw response bytes -> wire decoder -> Arrow -> Parquet (ZSTD)
 *   b   baseline: DuckDB (SET threads=1) reads the same pages' JSON and COPYs Parquet (ZSTD), same
 *       columns and row order
 *   c   naive: the AWS SDK's own GetRecords deserialisation of the same bytes, then its objects
 *       through the same encoder (the time is split into SDK and encoder parts)
 * Pages are generated once (seeded) into .bench-cache/ and read from disk page by page in every
 * case. Segments are flushed at 64 MiB of buffered rows, the daemon's default.
 * Runs are interleaved and reported as medians with paired ratios (scripts/benchHarness.ts).
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ChangeBuffer } from '../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../src/changelog/keySchema.js';
import { appendStreamRecords, type StreamRecordObject } from '../src/changelog/sdkRecordDecoder.js';
import { encodeSegment } from '../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../src/changelog/wireRecordDecoder.js';
import { sdkGetRecordsClient } from '../test/helpers/sdkGetRecords.js';
import {
  type CaseResult,
  cachedPages,
  parseArgs,
  peakRssMiB,
  runCase,
  runInterleaved,
} from './benchHarness.js';

const args = parseArgs();
const RECORDS = Number(args.get('records') ?? 200_000);
const PAGE = Number(args.get('page-size') ?? 1000);
const REPEAT = Number(args.get('repeat') ?? 3);
const SEGMENT_BYTES = 64 * 1024 * 1024;
const KEY_SCHEMA = parseKeySchema('pk:S,sk:N');
const SHARD = 'shardId-00000001700000000000-0123abcd';

/**
 * Runs `add` for each page into one buffer, recycled after each flush as the daemon does, and
 * flushes a segment whenever the buffer reaches the daemon's default segment size.
 */
async function encodePages(
  files: string[],
  add: (body: Buffer, buffer: ChangeBuffer) => void | Promise<void>,
): Promise<Omit<CaseResult, 'name' | 'peakRssMiB'>> {
  const buffer = new ChangeBuffer(KEY_SCHEMA);
  let inputBytes = 0;
  let outputBytes = 0;
  let segments = 0;
  let records = 0;
  const flush = () => {
    const segment = encodeSegment(buffer);
    outputBytes += segment.bytes.length;
    records += segment.records;
    segments++;
    buffer.clear();
  };
  const start = performance.now();
  for (const file of files) {
    const body = readFileSync(file);
    inputBytes += body.length;
    await add(body, buffer);
    if (buffer.byteSize >= SEGMENT_BYTES) flush();
  }
  if (buffer.rowCount > 0) flush();
  const seconds = (performance.now() - start) / 1000;
  return { seconds, records, inputBytes, outputBytes, segments };
}

async function caseA(files: string[]): Promise<CaseResult> {
  const result = await encodePages(files, (body, buffer) => {
    decodeGetRecordsResponse(body, SHARD, buffer);
  });
  return { name: 'a', ...result, peakRssMiB: peakRssMiB() };
}

async function caseC(files: string[]): Promise<CaseResult> {
  let current: Uint8Array = new Uint8Array();
  const client = sdkGetRecordsClient(() => current);
  const { GetRecordsCommand } = await import('@aws-sdk/client-dynamodb-streams');
  let sdkSeconds = 0;
  const result = await encodePages(files, async (body, buffer) => {
    current = body;
    const t = performance.now();
    const out = await client.send(new GetRecordsCommand({ ShardIterator: 'iterator' }));
    sdkSeconds += (performance.now() - t) / 1000;
    appendStreamRecords((out.Records ?? []) as StreamRecordObject[], SHARD, buffer);
  });
  const { seconds, records } = result;
  client.destroy();
  return {
    name: 'c',
    ...result,
    peakRssMiB: peakRssMiB(),
    detail: `SDK deserialisation ${sdkSeconds.toFixed(1)} s (${Math.round(records / sdkSeconds)} rec/s), encoder ${(seconds - sdkSeconds).toFixed(1)} s (${Math.round(records / (seconds - sdkSeconds))} rec/s)`,
  };
}

async function caseB(files: string[]): Promise<CaseResult> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run('SET threads=1');
  await connection.run('SET preserve_insertion_order=false');
  const cacheDir = join(files[0]!, '..');
  const out = join(cacheDir, '..', `duckdb-out-${process.pid}.parquet`);
  const inputBytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
  const glob = join(cacheDir, 'page-*.json').replaceAll("'", "''");
  // Same columns as a change segment, images kept as DynamoDB JSON text, same row order.
  const sql = `
    COPY (
      SELECT (r->>'$.eventID') AS event_id,
             (r->>'$.eventName') AS op,
             make_timestamp(CAST(CAST(r->>'$.dynamodb.ApproximateCreationDateTime' AS DOUBLE) * 1000000 AS BIGINT)) AS event_time,
             r->>'$.dynamodb.SequenceNumber' AS sequence_number,
             '${SHARD}' AS shard_id,
             CAST(r->'$.dynamodb.Keys' AS VARCHAR) AS keys,
             CAST(r->'$.dynamodb.NewImage' AS VARCHAR) AS new_image,
             CAST(r->'$.dynamodb.OldImage' AS VARCHAR) AS old_image,
             r->>'$.dynamodb.Keys.pk.S' AS pk,
             r->>'$.dynamodb.Keys.sk.N' AS sk,
             CAST(r->>'$.dynamodb.SizeBytes' AS INTEGER) AS size_bytes,
             coalesce((r->>'$.eventName') = 'REMOVE' AND (r->>'$.userIdentity.PrincipalId') = 'dynamodb.amazonaws.com', false) AS ttl_delete
      FROM (SELECT unnest(Records) AS r
            FROM read_json('${glob}', columns = {NextShardIterator: 'VARCHAR', Records: 'JSON[]'},
                           maximum_object_size = 67108864))
      ORDER BY pk, CAST(sk AS DECIMAL(38, 0)), CAST(sequence_number AS HUGEINT)
    ) TO '${out}' (FORMAT parquet, COMPRESSION zstd)`;
  const start = performance.now();
  await connection.run(sql);
  const seconds = (performance.now() - start) / 1000;
  const outputBytes = statSync(out).size;
  const count = await connection.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${out}')`);
  const records = Number(count.getRowObjects()[0]!.n);
  rmSync(out, { force: true });
  connection.closeSync();
  return { name: 'b', seconds, records, inputBytes, outputBytes, segments: 1, peakRssMiB: peakRssMiB() };
}

const LABELS: Record<string, string> = {
  a: '(a) ours: raw bytes -> Parquet',
  b: '(b) DuckDB threads=1 JSON -> Parquet',
  c: '(c) AWS SDK objects -> same encoder',
};

async function main(): Promise<void> {
  const only = args.get('case');
  const files = cachedPages(RECORDS, PAGE);
  if (only) {
    const result = only === 'a' ? await caseA(files) : only === 'b' ? await caseB(files) : await caseC(files);
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const inputMiB = files.reduce((sum, f) => sum + statSync(f).size, 0) / 2 ** 20;
  console.log(
    `encode benchmark: ${RECORDS} records in ${files.length} pages, ${inputMiB.toFixed(1)} MiB of GetRecords JSON`,
  );
  console.log(
    `(${((inputMiB * 2 ** 20) / RECORDS).toFixed(0)} bytes/record), each case in its own process on one core\n`,
  );
  const caseArgs = ['--records', String(RECORDS), '--page-size', String(PAGE)];
  runInterleaved(LABELS, REPEAT, (name) => runCase('scripts/benchEncode.ts', name, caseArgs, RECORDS), [
    ['a', 'b'],
    ['a', 'c'],
  ]);
}

await main();
