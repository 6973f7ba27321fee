import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { sqlString } from '../../../src/read/latestStateSql.js';
import {
  type RedshiftLoadOptions,
  redshiftLoadSql,
  redshiftManifest,
  redshiftTargetTableSql,
} from '../../../src/read/redshift.js';
import { ChangelogError, ConfigError } from '../../../src/support/errors.js';
import type { Row } from '../../helpers/parquetReaders.js';
import {
  byEventId,
  type ItemChange,
  latestRowsOf,
  wireChange,
  writeSegmentFile,
} from '../../helpers/segmentFiles.js';
import type { WireRecord } from '../../helpers/streamRecords.js';

const SEGMENT = 's3://my-bucket/changelog/orders/data/dt=2026-11-22/window=20261122T100500Z/s1-a.parquet';

const GOLDEN_OPTIONS: RedshiftLoadOptions = {
  manifestUrl: 's3://my-bucket/loads/orders-20261122T1005.manifest',
  targetTable: 'orders',
  targetSchema: 'analytics',
  iamRole: 'arn:aws:iam::123456789012:role/RedshiftLoad',
  region: 'eu-west-1',
  keySchema: parseKeySchema('pk:S,sk:N'),
};

describe('redshiftManifest', () => {
  it('lists each segment once, mandatory, with its content length (golden file)', async () => {
    const manifest = redshiftManifest([
      { url: SEGMENT, bytes: 9_133_120 },
      {
        url: 's3://my-bucket/changelog/orders/data/dt=2026-11-22/window=20261122T101000Z/s1-b.parquet',
        bytes: 512,
      },
    ]);
    await expect(manifest).toMatchFileSnapshot('../../fixtures/redshift/manifest.json');
    expect(JSON.parse(manifest)).toEqual({
      entries: [
        { url: SEGMENT, mandatory: true, meta: { content_length: 9_133_120 } },
        {
          url: 's3://my-bucket/changelog/orders/data/dt=2026-11-22/window=20261122T101000Z/s1-b.parquet',
          mandatory: true,
          meta: { content_length: 512 },
        },
      ],
    });
  });

  it('refuses a URL listed twice, naming it', () => {
    const twice = () =>
      redshiftManifest([
        { url: SEGMENT, bytes: 10 },
        { url: 's3://my-bucket/other.parquet', bytes: 10 },
        { url: SEGMENT, bytes: 10 },
      ]);
    expect(twice).toThrow(ChangelogError);
    expect(twice).toThrow(`Redshift manifest: ${SEGMENT} is listed twice; COPY would load its rows twice`);
  });

  it('refuses no entries, URLs that are not s3:// objects and sizes that are not byte counts', () => {
    expect(() => redshiftManifest([])).toThrow(/no segments to list/);
    expect(() => redshiftManifest([{ url: 'file:///tmp/a.parquet', bytes: 1 }])).toThrow(
      /"file:\/\/\/tmp\/a.parquet" is not an s3:\/\/bucket\/key URL/,
    );
    expect(() => redshiftManifest([{ url: 's3://bucket', bytes: 1 }])).toThrow(
      /not an s3:\/\/bucket\/key URL/,
    );
    expect(() => redshiftManifest([{ url: SEGMENT, bytes: 0 }])).toThrow(
      /has size 0; content_length must be/,
    );
    expect(() => redshiftManifest([{ url: SEGMENT, bytes: 1.5 }])).toThrow(/has size 1.5/);
  });
});

describe('redshiftLoadSql', () => {
  it('writes the two-transaction load script (golden file)', async () => {
    const sql = redshiftLoadSql(GOLDEN_OPTIONS);
    await expect(sql).toMatchFileSnapshot('../../fixtures/redshift/load.sql');
    const transactions = sql.split('BEGIN;').slice(1);
    expect(transactions).toHaveLength(2);
    expect(transactions[0]).toContain('FORMAT AS PARQUET\nMANIFEST\nCOMPUPDATE OFF\nSTATUPDATE OFF;');
    expect(transactions[1]).toContain('MERGE INTO analytics.orders');
  });

  it('types binary keys as VARBYTE and takes the default IAM role', () => {
    const sql = redshiftLoadSql({ ...GOLDEN_OPTIONS, keySchema: parseKeySchema('id:B'), iamRole: 'default' });
    expect(sql).toContain('  id VARBYTE(2048) NOT NULL,');
    expect(sql).toContain('IAM_ROLE default\n');
  });

  it('quotes every odd identifier, wherever it appears', () => {
    const sql = redshiftLoadSql({
      ...GOLDEN_OPTIONS,
      targetTable: 'Order Items',
      targetSchema: 'my schema',
      stagingTable: 'select',
      keySchema: parseKeySchema('order:S,Sort "Key":N'),
    });
    // Outside comments and string literals, each name appears only in its quoted form.
    const code = sql
      .split('\n')
      .filter((line) => !line.startsWith('--'))
      .join('\n')
      .replace(/'(?:[^']|'')*'/g, "''");
    const quotedForms = ['"order"', '"Sort ""Key"""', '"Order Items"', '"my schema"', '"select"'];
    let rest = code;
    for (const form of quotedForms) {
      expect(code).toContain(form);
      rest = rest.replaceAll(form, '');
    }
    expect(rest).not.toMatch(/\border\b/); // the keyword is written ORDER
    expect(rest).not.toMatch(/Sort|Items|my schema|\bselect\b/);
    // Derived names that are no keyword stay plain.
    expect(code).toContain('USING select_latest\n');
    expect(code).toContain('USING select_apply AS src\n');
  });

  it('lists every option Redshift would refuse', () => {
    let caught: unknown;
    try {
      redshiftLoadSql({
        ...GOLDEN_OPTIONS,
        manifestUrl: 'https://example.com/m',
        iamRole: 'RedshiftLoad',
        region: 'Europe',
        targetTable: 't'.repeat(128),
        keySchema: parseKeySchema('Keys:S,ctid:N'),
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).issues).toEqual([
      'manifestUrl: "https://example.com/m" is not an s3://bucket/key URL',
      'iamRole: "RedshiftLoad" is not "default" or IAM role ARNs (arn:aws:iam::<account>:role/<name>, comma-separated to chain)',
      'region: "Europe" is not an AWS region name (e.g. eu-west-1)',
      `targetTable "${'t'.repeat(128)}" is 128 bytes; Redshift names are 1 to 127 bytes`,
      'columns "keys" and "Keys" are one name in Redshift, which folds names to lower case',
      'key column "ctid" is a Redshift system column name (oid, tableoid, xmin, cmin, xmax, cmax, ctid)',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// The script's logic run for real: DuckDB runs it (it has DELETE ... USING, MERGE, temp tables and
// lpad), with the COPY from S3 replaced by an INSERT from the same segment files. Odd names on
// purpose, so the quoting is exercised by an engine too.

describe('redshiftLoadSql, run in DuckDB', () => {
  const schema = parseKeySchema('order:S,Sort "Key":N');
  const options: RedshiftLoadOptions = {
    ...GOLDEN_OPTIONS,
    targetTable: 'Order Items',
    targetSchema: 'my schema',
    keySchema: schema,
  };
  let dir: string;
  let instance: DuckDBInstance;
  let connection: DuckDBConnection;
  let batch = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'changelog-redshift-'));
    instance = await DuckDBInstance.create(':memory:');
    connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
    await connection.run(`CREATE SCHEMA "my schema"; ${redshiftTargetTableSql(options)}`);
  });

  afterAll(() => {
    connection.closeSync();
    instance.closeSync();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the load script over one segment of `records`, as Redshift would after its COPY. */
  async function load(records: WireRecord[]): Promise<void> {
    const file = writeSegmentFile(dir, `batch-${batch++}.parquet`, schema, records);
    const script = redshiftLoadSql(options);
    const copy = /\nCOPY [^;]*;/.exec(script)?.[0];
    expect(copy).toBeDefined();
    await connection.run(
      script.replace(
        copy!,
        `\nINSERT INTO dynamodb_changelog_staging SELECT * FROM read_parquet(${sqlString(file)}, hive_partitioning = false);`,
      ),
    );
  }

  async function target(): Promise<Row[]> {
    const reader = await connection.runAndReadAll(
      'SELECT * REPLACE (epoch_ms(event_time)::DOUBLE AS event_time) FROM "my schema"."Order Items"',
    );
    return byEventId(reader.getRowObjectsJS() as Row[]);
  }

  const change = (c: ItemChange) => wireChange(schema, c);

  it('keeps each item latest change, deletes removed items, and a repeated or older batch changes nothing', async () => {
    const batch1 = [
      change({ op: 'INSERT', key: ['a', '1'], sequenceNumber: '100000000000000000001', status: 'A1' }),
      // 21 digits against 22 below: compared as text this one would win.
      change({ op: 'MODIFY', key: ['a', '1'], sequenceNumber: '999999999999999999999', status: 'A2' }),
      change({ op: 'INSERT', key: ['b', '2'], sequenceNumber: '100000000000000000002', status: 'B1' }),
      change({ op: 'INSERT', key: ['c', '3'], sequenceNumber: '100000000000000000003', status: 'C1' }),
      change({ op: 'REMOVE', key: ['c', '3'], sequenceNumber: '100000000000000000004' }),
    ];
    await load(batch1);
    const afterBatch1 = await target();
    expect(afterBatch1).toEqual(byEventId(latestRowsOf(schema, batch1)));
    expect(afterBatch1.map((r) => r['event_id'])).toEqual([
      'event-100000000000000000002',
      'event-999999999999999999999',
    ]);

    await load(batch1);
    expect(await target()).toEqual(afterBatch1);

    const batch2 = [
      change({ op: 'MODIFY', key: ['a', '1'], sequenceNumber: '1000000000000000000000', status: 'A3' }),
      change({ op: 'REMOVE', key: ['b', '2'], sequenceNumber: '1000000000000000000001' }),
      change({ op: 'INSERT', key: ['d', '4'], sequenceNumber: '1000000000000000000002', status: 'D1' }),
    ];
    await load(batch2);
    const afterBatch2 = await target();
    expect(afterBatch2).toEqual(byEventId(latestRowsOf(schema, [...batch1, ...batch2])));
    expect(afterBatch2.map((r) => r['new_image'])).toEqual([
      expect.stringContaining('"A3"'),
      expect.stringContaining('"D1"'),
    ]);

    await load(batch2);
    expect(await target()).toEqual(afterBatch2);

    // An older change of an item the target holds a newer row of: ignored.
    await load([
      change({ op: 'MODIFY', key: ['a', '1'], sequenceNumber: '999999999999999999998', status: 'OLD' }),
    ]);
    expect(await target()).toEqual(afterBatch2);
  });
});
