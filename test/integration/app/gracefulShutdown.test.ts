import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localAwsEnvironment } from '../../../src/app/local/localServers.js';
import { RegistryStore } from '../../../src/coordination/registryStore.js';
import { readStreamChanges, runProducer } from '../../helpers/chaosProducer.js';
import { type CliProcess, type LogRecord, startCli } from '../../helpers/cliProcess.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import { startFaultProxy } from '../../helpers/faultProxy.js';
import { readWithDuckDB } from '../../helpers/parquetReaders.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';

/*
 * The daemon as Kubernetes runs it: two `dynamodb-changelog run` processes, one holding the shard
 * with data buffered (a 30 s flush interval) when it gets SIGTERM. It must commit what it buffered,
 * release its lease (so the other takes it on its next cycle, not after the 30 s failover), stop
 * serving, and exit 0; and the changelog must hold every stream record exactly once.
 */

const TABLE = 'shutdown-source';
const LEASE_TABLE = 'shutdown-leases';
const BUCKET = 'changelog-shutdown';
const PREFIX = 'changelog';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
// Workers cycle (renew, list, take) every failover / 3: 10 s here, 3.3 s with the default 10 s.
const FAILOVER_S = 30;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const msg = (m: string) => (r: LogRecord) => r['msg'] === m;
const timeOf = (r: LogRecord) => Date.parse(String(r['time']));

describe('run: graceful shutdown', () => {
  let dynamo: DynamoDbLocal;
  let s3: S3rverServer;
  let ddb: DynamoDBClient;
  const workers: CliProcess[] = [];

  beforeAll(async () => {
    [dynamo, s3] = await Promise.all([startDynamoDbLocal(), startS3rver(BUCKET)]);
    ddb = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: CREDENTIALS,
      maxAttempts: 1,
    });
  });

  afterAll(async () => {
    for (const w of workers) w.killNow();
    ddb?.destroy();
    await Promise.all([dynamo?.stop(), s3?.stop()]);
  });

  it('commits what it buffered, releases its lease for another worker at once, exits 0, loses nothing', async () => {
    const streamArn = await createStreamTable(ddb, TABLE);
    const logDir = await mkdtemp(path.join(tmpdir(), 'changelog-shutdown-'));
    const env = localAwsEnvironment({ dynamodb: dynamo.endpoint, s3: s3.endpoint });
    const args = (flushInterval: string) => [
      'run',
      ...['--table', TABLE, '--destination', `s3://${BUCKET}/${PREFIX}`, '--lease-table', LEASE_TABLE],
      '--create-lease-table',
      ...['--window', '1m', '--allowed-lateness', '5s', '--flush-interval', flushInterval],
      ...['--failover', `${FAILOVER_S}s`, '--metrics-port', '0', '--shutdown-timeout', '20s'],
      '--s3-force-path-style',
    ];
    const start = (name: string, flushInterval: string) => {
      const cli = startCli(args(flushInterval), { env, name, logFile: path.join(logDir, `${name}.log`) });
      workers.push(cli);
      return cli;
    };

    const a = start('worker-a', '30s');
    const aStarted = await a.waitForLog(msg('worker starting'), 90_000);
    const aUrl = String(aStarted['metrics']);
    await a.waitForLog(msg('lease taken'), 60_000);

    const stopProducer = new AbortController();
    const producing = runProducer({
      client: ddb,
      table: TABLE,
      keys: 200,
      signal: stopProducer.signal,
      seed: 7,
      ratePerSecond: 80,
    });

    // A reads and buffers (nothing is due before 30 s); its endpoints say so.
    let metrics = '';
    for (let i = 0; i < 100; i++) {
      metrics = await (await fetch(`${aUrl}/metrics`)).text();
      if (gauge(metrics, 'buffered_bytes') > 0) break;
      await sleep(200);
    }
    expect(gauge(metrics, 'buffered_bytes')).toBeGreaterThan(0);
    expect(gauge(metrics, 'leases_held')).toBe(1);
    expect(gauge(metrics, 'records_read_total')).toBeGreaterThan(0);
    expect((await fetch(`${aUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${aUrl}/readyz`)).status).toBe(200);

    const b = start('worker-b', '2s');
    const bStarted = await b.waitForLog(msg('worker starting'), 90_000);
    const bUrl = String(bStarted['metrics']);
    // B's first lease cycle: nothing to take (A holds the only shard), so it is ready too.
    for (let i = 0; i < 100 && (await fetch(`${bUrl}/readyz`)).status !== 200; i++) await sleep(200);
    expect((await fetch(`${bUrl}/readyz`)).status).toBe(200);
    expect(a.logs.filter(msg('segment committed'))).toEqual([]);

    const sigtermAt = Date.now();
    a.kill('SIGTERM');
    const exit = await a.waitForExit(30_000);
    expect(exit).toEqual({ code: 0, signal: null });
    // What was buffered was committed on the way out, then the lease released.
    const shutdownCommits = a.logs.filter(msg('segment committed'));
    expect(shutdownCommits.length).toBeGreaterThan(0);
    const released = a.logs.find(msg('lease released'));
    expect(released).toBeDefined();
    expect(timeOf(released!)).toBeGreaterThanOrEqual(Math.max(...shutdownCommits.map(timeOf)));
    const stopped = a.logs.find(msg('stopped cleanly'));
    expect(stopped).toBeDefined();
    expect(stopped!['shutdownMs']).toBeLessThan(20_000);
    await expect(fetch(`${aUrl}/healthz`)).rejects.toThrow();

    // B takes the lease as free (from nobody): released, not expired. An expired lease could only
    // be taken after the failover and would name A as the previous owner.
    const taken = await b.waitForLog(msg('lease taken'), FAILOVER_S * 1000);
    expect(taken['from']).toBeNull();
    const pickUpMs = timeOf(taken) - sigtermAt;
    expect(pickUpMs).toBeLessThan(FAILOVER_S * 1000);
    console.log(
      `graceful shutdown: A stopped in ${stopped!['shutdownMs']} ms; B took the shard ${pickUpMs} ms after SIGTERM`,
    );

    await sleep(3_000);
    stopProducer.abort();
    const produced = await producing;
    const streamed = await readStreamChanges({
      endpoint: dynamo.endpoint,
      credentials: CREDENTIALS,
      streamArn,
      expectAtLeast: produced.writes.length,
    });
    expect(streamed.length).toBeGreaterThanOrEqual(produced.writes.length);

    // Every stream record in exactly one committed segment (the registry's, not orphans).
    const registry = new RegistryStore({ client: ddb, tableName: LEASE_TABLE, table: TABLE });
    const want = new Set(streamed.map((c) => c.eventId));
    let counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      counts = await committedEventIds(registry, s3);
      if ([...want].every((id) => counts.has(id))) break;
      await sleep(1_000);
    }
    const missing = [...want].filter((id) => !counts.has(id));
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    const extra = [...counts.keys()].filter((id) => !want.has(id));
    expect({ missing, duplicated, extra }).toEqual({ missing: [], duplicated: [], extra: [] });

    b.kill('SIGTERM');
    expect(await b.waitForExit(30_000)).toEqual({ code: 0, signal: null });
  }, 300_000);

  it('exits 1 when it cannot commit before the shutdown deadline, and the next worker reads the rows again', async () => {
    const table = 'deadline-source';
    const leaseTable = 'deadline-leases';
    const streamArn = await createStreamTable(ddb, table);
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const env = localAwsEnvironment({ dynamodb: dynamo.endpoint, s3: proxy.endpoint });
      const args = [
        'run',
        ...['--table', table, '--destination', `s3://${BUCKET}/${PREFIX}`, '--lease-table', leaseTable],
        '--create-lease-table',
        ...['--window', '1m', '--allowed-lateness', '5s', '--flush-interval', '1s'],
        ...['--failover', '3s', '--metrics-port', '0', '--shutdown-timeout', '3s'],
        '--s3-force-path-style',
      ];
      // Every object write fails: nothing can be committed.
      proxy.setFaultRate(1);
      const a = startCli(args, { env, name: 'deadline-a' });
      workers.push(a);
      await a.waitForLog(msg('lease taken'), 90_000);
      const stopProducer = new AbortController();
      const producing = runProducer({
        client: ddb,
        table,
        keys: 50,
        signal: stopProducer.signal,
        seed: 11,
        ratePerSecond: 50,
      });
      await a.waitForLog(msg('segment write failed; will retry'), 60_000);
      stopProducer.abort();
      const produced = await producing;

      a.kill('SIGTERM');
      expect(await a.waitForExit(20_000)).toEqual({ code: 1, signal: null });
      const gaveUp = a.logs.find(
        msg('exiting with uncommitted data, which the next lease holders read again'),
      );
      expect(gaveUp).toBeDefined();
      expect(gaveUp!['buffered']).toBeGreaterThan(0);
      expect(a.logs.filter(msg('segment committed'))).toEqual([]);

      // S3 is back; a new worker takes the expired lease and commits everything from the checkpoint.
      proxy.setFaultRate(0);
      const b = startCli(args, { env, name: 'deadline-b' });
      workers.push(b);
      const streamed = await readStreamChanges({
        endpoint: dynamo.endpoint,
        credentials: CREDENTIALS,
        streamArn,
        expectAtLeast: produced.writes.length,
      });
      const registry = new RegistryStore({ client: ddb, tableName: leaseTable, table });
      const want = new Set(streamed.map((c) => c.eventId));
      let counts = new Map<string, number>();
      for (let i = 0; i < 60; i++) {
        counts = await committedEventIds(registry, s3);
        if (want.size > 0 && [...want].every((id) => counts.has(id))) break;
        await sleep(1_000);
      }
      expect(want.size).toBeGreaterThan(0);
      expect([...want].filter((id) => !counts.has(id))).toEqual([]);
      expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
      b.kill('SIGTERM');
      expect(await b.waitForExit(30_000)).toEqual({ code: 0, signal: null });
    } finally {
      await proxy.stop();
    }
  }, 300_000);
});

function gauge(exposition: string, name: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(`dynamodb_changelog_${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ').at(-1));
}

async function committedEventIds(registry: RegistryStore, s3: S3rverServer): Promise<Map<string, number>> {
  const { segments } = await registry.queryRange(0, Date.now() + 3_600_000);
  const counts = new Map<string, number>();
  for (const segment of segments) {
    const object = await s3.client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/${segment.key}` }),
    );
    const rows = await readWithDuckDB(await object.Body!.transformToByteArray());
    for (const row of rows) {
      const id = String(row['event_id']);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  return counts;
}
