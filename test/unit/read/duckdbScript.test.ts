import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type KeySchema,
  keyAttributes,
  keyColumnName,
  parseKeySchema,
} from '../../../src/changelog/keySchema.js';
import { duckdbScript } from '../../../src/read/duckdbScript.js';
import type { Row } from '../../helpers/parquetReaders.js';
import {
  byEventId,
  changeRowsOf,
  type ItemChange,
  latestRowsOf,
  wireChange,
  writeSegmentFile,
} from '../../helpers/segmentFiles.js';

// 21 and 22 digits: compared as text, 999... would wrongly beat 1000...
const SEQ_OLD = '999999999999999999999';
const SEQ_NEW = '1000000000000000000000';

/** Two segments of one table's changes; a key's history spans both. */
function history(): ItemChange[][] {
  return [
    [
      { op: 'INSERT', key: ['a', '1'], sequenceNumber: '100000000000000000001', status: 'A1' },
      { op: 'MODIFY', key: ['a', '1'], sequenceNumber: SEQ_OLD, status: 'A2' },
      { op: 'INSERT', key: ['b', '10'], sequenceNumber: '100000000000000000002', status: 'B1' },
      { op: 'INSERT', key: ['c', '-1.5'], sequenceNumber: '100000000000000000003', status: 'C1' },
    ],
    [
      { op: 'MODIFY', key: ['a', '1'], sequenceNumber: SEQ_NEW, status: 'A3' },
      { op: 'REMOVE', key: ['b', '10'], sequenceNumber: '1000000000000000000001' },
      { op: 'INSERT', key: ['d', '2'], sequenceNumber: '1000000000000000000002', status: 'D1' },
    ],
  ];
}

let dir: string;
let instance: DuckDBInstance;
let connection: DuckDBConnection;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changelog-duckdb-script-'));
  instance = await DuckDBInstance.create(':memory:');
  connection = await instance.connect();
});

afterAll(() => {
  connection.closeSync();
  instance.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

/** Rows of a view, shaped like parquetReaders.ts rows (event_time as epoch ms, BLOB as Buffer). */
async function viewRows(view: string): Promise<Row[]> {
  const reader = await connection.runAndReadAll(
    `SELECT * REPLACE (epoch_ms(event_time)::DOUBLE AS event_time) FROM ${view}`,
  );
  return reader.getRowObjectsJS().map((row) => {
    const out: Row = {};
    for (const [name, value] of Object.entries(row)) {
      out[name] =
        value === null || value === undefined
          ? null
          : value instanceof Uint8Array
            ? Buffer.from(value)
            : (value as string | number | boolean);
    }
    return out;
  });
}

async function checkScript(schema: KeySchema, name: string, toUrl: (path: string) => string): Promise<void> {
  const batches = history().map((changes) => changes.map((c) => wireChange(schema, c)));
  const files = batches.map((records, i) => writeSegmentFile(dir, `${name}-${i}.parquet`, schema, records));
  const keyColumns = keyAttributes(schema).map((a) => keyColumnName(a.name));
  await connection.run(duckdbScript({ urls: files.map(toUrl), keyColumns }));
  const records = batches.flat();
  expect(byEventId(await viewRows('changes'))).toEqual(byEventId(changeRowsOf(schema, records)));
  const latest = byEventId(await viewRows('latest'));
  expect(latest).toEqual(byEventId(latestRowsOf(schema, records)));
  // a: its 22-digit change wins; b: removed last, so gone; c and d: their only change.
  expect(latest.map((r) => r['event_id']).sort()).toEqual(
    [`event-${SEQ_NEW}`, 'event-100000000000000000003', 'event-1000000000000000000002'].sort(),
  );
}

describe('duckdbScript', () => {
  it('gives DuckDB the changes and the latest state of each item', async () => {
    await checkScript(parseKeySchema('pk:S,sk:N'), 'plain', (path) => path);
  });

  it('quotes key columns DuckDB reserves or that need quotes, and takes file:// URLs', async () => {
    await checkScript(parseKeySchema('order:S,Sort "Key":N'), 'odd', (path) => pathToFileURL(path).href);
  });

  it('loads httpfs for s3:// URLs and shows how to pass credentials', () => {
    const script = duckdbScript({ urls: ["s3://bucket/it's/a.parquet"], keyColumns: ['pk'] });
    expect(script).toContain('INSTALL httpfs;\nLOAD httpfs;\n');
    expect(script).toContain('-- CREATE SECRET (TYPE s3, PROVIDER credential_chain);');
    expect(script).toContain("  's3://bucket/it''s/a.parquet'\n");
    expect(duckdbScript({ urls: ['/tmp/a.parquet'], keyColumns: ['pk'] })).not.toContain('httpfs');
  });

  it('refuses no segments', () => {
    expect(() => duckdbScript({ urls: [], keyColumns: ['pk'] })).toThrow(/no segments to read/);
  });
});
