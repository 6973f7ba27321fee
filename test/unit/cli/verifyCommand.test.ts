import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { Command, CommanderError } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isoTime } from '../../../src/changelog/layout.js';
import { main } from '../../../src/cli/main.js';
import { registerVerifyCommand } from '../../../src/cli/verifyCommand.js';
import { LocalObjectStore } from '../../../src/coordination/localObjectStore.js';
import type { VerifyReport } from '../../../src/read/verifier.js';
import { FakeStream } from '../../helpers/auditStream.js';
import {
  buildChangelogSpec,
  type ChangelogSpec,
  FIRST_WINDOW_MS,
  SHARD_A,
  SHARD_B,
  STREAM_ARN,
  TABLE,
  writeChangelog,
} from '../../helpers/changelogFixtures.js';
import type { WireRecord } from '../../helpers/streamRecords.js';

describe('dynamodb-changelog verify', () => {
  let dir: string;
  let destination: string;
  let spec: ChangelogSpec;
  let stdout: string;
  let stderr: string;
  const since = isoTime(FIRST_WINDOW_MS);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-verify-cli-'));
    destination = pathToFileURL(dir).href;
    spec = buildChangelogSpec();
    await writeChangelog(new LocalObjectStore({ dir }), spec);
    stdout = '';
    stderr = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr += String(chunk);
      return true;
    });
    vi.stubEnv('CHANGELOG_DESTINATION', undefined);
    vi.stubEnv('CHANGELOG_TABLE', undefined);
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    await rm(dir, { recursive: true, force: true });
  });

  const run = (...args: string[]) => main(['node', 'dynamodb-changelog', 'verify', ...args]);

  it('prints a summary and exits 0 for a clean changelog', async () => {
    expect(await run('--destination', destination, '--table', TABLE, '--since', since)).toBe(0);
    expect(stdout).toContain(`verify ${TABLE} at ${destination}, windows from ${since}\n`);
    expect(stdout).toContain(`windows:      3 (${since} .. ${isoTime(FIRST_WINDOW_MS + 120_000)})\n`);
    expect(stdout).toContain('segments:     4\n');
    expect(stdout).toContain('records:      72\n');
    expect(stdout).toContain('gaps:         0\n');
    expect(stdout).toContain('late records: 0\n');
    expect(stdout).toContain('violations:   0\n');
    expect(stdout.endsWith('OK\n')).toBe(true);
    expect(stderr).toBe('');
  });

  it('lists every violation and exits 1', async () => {
    const store = new LocalObjectStore({ dir });
    const missing = spec.windows[0]!.segments[0]!.key;
    await store.delete([missing, spec.windows[2]!.segments[0]!.key]);
    expect(await run('--destination', destination, '--table', TABLE, '--since', since)).toBe(1);
    const lines = stdout.split('\n');
    expect(lines).toContain('violations:   2');
    expect(lines).toContain(`  object-missing: segment ${missing} (window ${since}) does not exist`);
    expect(lines.filter((l) => l.startsWith('  object-missing: '))).toHaveLength(2);
    expect(stdout.endsWith('FAILED\n')).toBe(true);
    expect(stderr).toBe('');
  });

  it('prints the report as JSON with --json, reading the destination and table from the environment', async () => {
    vi.stubEnv('CHANGELOG_DESTINATION', destination);
    vi.stubEnv('CHANGELOG_TABLE', TABLE);
    const until = isoTime(FIRST_WINDOW_MS + 60_000);
    expect(await run('--since', since, '--until', until, '--json')).toBe(0);
    const report = JSON.parse(stdout) as VerifyReport;
    expect(report).toMatchObject({
      table: TABLE,
      since,
      until,
      windows: 1,
      segments: 1,
      records: 24,
      violations: [],
    });
  });

  it('reports every bad option in one error and exits 2', async () => {
    const code = await run(
      '--destination',
      'ftp://bucket/x',
      '--table',
      'my table',
      '--since',
      'yesterday',
      '--until',
      '2026-11-22T10:00:00',
    );
    expect(code).toBe(2);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines[0]).toBe('dynamodb-changelog: invalid configuration:');
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(
      /^ {2}- --destination: destination "ftp:\/\/bucket\/x" has an unsupported scheme; expected s3:\/\//,
    );
    expect(lines[2]).toMatch(/^ {2}- --table: "my table" is not a DynamoDB table name \(3-255 of letters/);
    expect(lines[3]).toMatch(
      /^ {2}- --since: "yesterday" is not an ISO-8601 time with a zone .* or a duration ago/,
    );
    expect(lines[4]).toMatch(/^ {2}- --until: "2026-11-22T10:00:00" is not an ISO-8601 time with a zone/);
  });

  it('names every missing option, and an until before since', async () => {
    expect(await run()).toBe(2);
    expect(stderr).toMatch(/--destination: missing; .*CHANGELOG_DESTINATION/);
    expect(stderr).toMatch(/--table: missing; .*CHANGELOG_TABLE/);
    expect(stderr).toMatch(/--since: missing; give an ISO-8601 time/);
    stderr = '';
    expect(
      await run('--destination', destination, '--table', TABLE, '--since', since, '--until', since),
    ).toBe(2);
    expect(stderr).toMatch(/--until: "[^"]+" \([^)]+\) must be after --since/);
  });
});

describe('dynamodb-changelog verify --stream', () => {
  const streamsMock = mockClient(DynamoDBStreamsClient);
  let streams: DynamoDBStreamsClient;
  let dir: string;
  let destination: string;
  let stdout: string;
  let stderr: string;
  const since = isoTime(FIRST_WINDOW_MS);

  /** The default fixture changelog's records per shard: the stream it was read from. */
  function streamRecords(): Map<string, WireRecord[]> {
    const stream = new Map<string, WireRecord[]>();
    buildChangelogSpec({
      override: (_w, shardId) => ({
        mapRecords: (records) => {
          stream.set(shardId, [...(stream.get(shardId) ?? []), ...records.map((r) => structuredClone(r))]);
        },
      }),
    });
    return stream;
  }

  function serve(stream: Map<string, WireRecord[]>): FakeStream {
    const fake = new FakeStream({
      streamArn: STREAM_ARN,
      shards: [
        { shardId: SHARD_A, closed: true, records: stream.get(SHARD_A)! },
        { shardId: SHARD_B, closed: true, records: stream.get(SHARD_B)! },
      ],
    });
    fake.install(streamsMock);
    return fake;
  }

  /** The verify command with the mocked Streams client (main() would build real ones). */
  async function run(...args: string[]): Promise<number> {
    const program = new Command('dynamodb-changelog').exitOverride();
    registerVerifyCommand(program, { streamClients: () => ({ streams }) });
    try {
      await program.parseAsync(['node', 'dynamodb-changelog', 'verify', ...args]);
      return 0;
    } catch (error) {
      if (error instanceof CommanderError) return error.exitCode;
      throw error;
    }
  }

  beforeEach(async () => {
    streamsMock.reset();
    streams = new DynamoDBStreamsClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-verify-stream-cli-'));
    destination = pathToFileURL(dir).href;
    await writeChangelog(new LocalObjectStore({ dir }), buildChangelogSpec());
    stdout = '';
    stderr = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr += String(chunk);
      return true;
    });
    vi.stubEnv('CHANGELOG_DESTINATION', undefined);
    vi.stubEnv('CHANGELOG_TABLE', undefined);
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    streams.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const common = () => ['--destination', destination, '--table', TABLE, '--since', since, '--stream'];
  const fast = ['--stream-rate', '50', '--stream-total-rate', '200', '--stream-concurrency', '2'];

  it('audits the manifests against the stream and prints what it read', async () => {
    const fake = serve(streamRecords());
    expect(await run(...common(), ...fast)).toBe(0);
    expect(stdout).toContain(`stream audit: ${STREAM_ARN}\n`);
    expect(stdout).toContain(`  shards read:    2 (${fake.calls.length} GetRecords calls)\n`);
    expect(stdout).toContain('  records read:   72\n');
    expect(stdout).toContain('  matched:        72\n');
    expect(stdout).toContain('  missing:        0\n');
    expect(stdout).toContain('  not auditable:  0 (manifest rows the stream no longer retains)\n');
    expect(stdout.endsWith('OK\n')).toBe(true);
    expect(stderr).toBe('');
  });

  it('reports a stream record no manifest holds, in JSON, and exits 1', async () => {
    const stream = streamRecords();
    const a = stream.get(SHARD_A)!;
    const lost = structuredClone(a[5]!);
    lost.dynamodb.SequenceNumber = String(BigInt(a[5]!.dynamodb.SequenceNumber) + 1n);
    lost.eventID = 'never-committed';
    a.push(lost);
    serve(stream);
    expect(await run(...common(), ...fast, '--json')).toBe(1);
    const report = JSON.parse(stdout) as VerifyReport;
    expect(report.violations).toEqual([
      expect.objectContaining({
        kind: 'stream-record-missing',
        shardId: SHARD_A,
        firstSequenceNumber: lost.dynamodb.SequenceNumber,
        lastSequenceNumber: lost.dynamodb.SequenceNumber,
        records: 1,
      }),
    ]);
    expect(report.stream).toMatchObject({
      streamArns: [STREAM_ARN],
      shardsRead: 2,
      recordsRead: 73,
      recordsMatched: 72,
      recordsMissing: 1,
      rowsNotAuditable: 0,
    });
  });

  it('reads the stream --stream-arn names', async () => {
    const other = STREAM_ARN.replace('2026-11-22T00:00:00.000', '2026-11-23T00:00:00.000');
    serve(streamRecords());
    expect(await run(...common(), ...fast, '--stream-arn', other, '--json')).toBe(0);
    expect((JSON.parse(stdout) as VerifyReport).stream?.streamArns).toEqual([other]);
  });

  it('refuses stream options without --stream, and bad values, all at once', async () => {
    const base = ['verify', '--destination', destination, '--table', TABLE, '--since', since];
    expect(
      await main(['node', 'dynamodb-changelog', ...base, '--stream-arn', STREAM_ARN, '--late-grace', '1h']),
    ).toBe(2);
    expect(stderr).toContain('--stream-arn: only with --stream');
    expect(stderr).toContain('--late-grace: only with --stream');
    stderr = '';
    const code = await main([
      'node',
      'dynamodb-changelog',
      ...base,
      '--stream',
      '--stream-arn',
      'arn:aws:dynamodb:us-east-1:123456789012:table/invoices/stream/2026-01-01T00:00:00.000',
      '--late-grace',
      'soon',
      '--stream-rate',
      '0',
      '--stream-concurrency',
      '1.5',
    ]);
    expect(code).toBe(2);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/--stream-arn: the stream belongs to table invoices, not "orders"/);
    expect(lines[2]).toMatch(/--late-grace: "soon" is not a duration/);
    expect(lines[3]).toMatch(/--stream-rate: "0" is not a positive number/);
    expect(lines[4]).toMatch(/--stream-concurrency: "1.5" is not a positive whole number/);
  });
});
