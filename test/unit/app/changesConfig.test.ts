import { describe, expect, it } from 'vitest';
import { parseChangesConfig, parseKeyOption } from '../../../src/app/changesConfig.js';
import { ConfigError } from '../../../src/support/errors.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const base = { destination: 's3://bucket/changelog', table: 'orders', since: '2026-11-22T10:00:00Z' };

function problems(input: Parameters<typeof parseChangesConfig>[0]): readonly string[] {
  try {
    parseChangesConfig(input, NOW);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

describe('parseChangesConfig', () => {
  it('reads a plain range with the defaults', () => {
    expect(parseChangesConfig({ ...base, until: '-1h' }, NOW)).toEqual({
      destination: { url: 's3://bucket/changelog', s3ForcePathStyle: false },
      table: 'orders',
      sinceMs: Date.UTC(2026, 10, 22, 10),
      untilMs: NOW - 3_600_000,
      format: 'ndjson',
      output: undefined,
      columns: undefined,
      key: undefined,
      latest: false,
      includeDeletes: false,
      cursorFile: undefined,
      emit: 'rows',
      redshift: {},
      read: { latestKeepBytes: 256 * 1024 * 1024 },
    });
  });

  it('reports every problem at once, naming flag, value and what is allowed', () => {
    expect(
      problems({
        destination: 'http://x',
        table: 'a',
        since: 'yesterday',
        format: 'xml',
        emit: 'everything',
        includeDeletes: true,
      }),
    ).toEqual([
      expect.stringMatching(/^--destination: destination "http:\/\/x" has an unsupported scheme/),
      '--table: "a" is not a DynamoDB table name (3-255 of letters, digits, _ . -)',
      expect.stringMatching(/^--since: "yesterday" is not an ISO-8601 time/),
      '--emit: "everything" is not one of rows, files, redshift-manifest, redshift-sql, duckdb-sql',
      '--format: "xml" is not one of ndjson, json, csv, parquet',
      '--include-deletes: only with --latest (rows always include deletes)',
    ]);
  });

  it('refuses an empty range and a missing --since (unless a cursor gives the start)', () => {
    expect(problems({ ...base, until: base.since })).toEqual([
      expect.stringMatching(/^--until: .* must be after --since .*: the range is empty$/),
    ]);
    expect(problems({ destination: base.destination, table: 'orders' })).toEqual([
      expect.stringMatching(/^--since: missing/),
    ]);
    expect(problems({ destination: base.destination, table: 'orders', cursor: 'c.json' })).toEqual([]);
  });

  it('refuses combinations that mean nothing', () => {
    expect(problems({ ...base, key: 'pk=a', latest: true, cursor: 'c.json' })).toEqual([
      '--key and --latest cannot be used together',
      '--key and --cursor (a cursor follows the whole table) cannot be used together',
    ]);
    expect(problems({ ...base, emit: 'files', format: 'csv', latest: true })).toEqual([
      '--format: only with row output, not with --emit files',
      '--latest: only with row output, not with --emit files',
    ]);
    expect(problems({ ...base, targetTable: 't' })).toEqual([
      '--target-table: only with --emit redshift-sql',
    ]);
  });

  it('needs the load target, role and manifest URL for --emit redshift-sql', () => {
    expect(problems({ ...base, emit: 'redshift-sql', iamRole: 'role', manifestUrl: 'https://x' })).toEqual([
      '--target-table: missing; --emit redshift-sql loads into it',
      '--manifest-url: "https://x" is not an s3://bucket/key URL',
      expect.stringMatching(/^--iam-role: "role" is not an IAM role ARN/),
    ]);
    const ok = parseChangesConfig(
      {
        ...base,
        emit: 'redshift-sql',
        targetTable: 'orders_latest',
        iamRole: 'arn:aws:iam::123456789012:role/loader',
        manifestUrl: 's3://bucket/loads/1.manifest',
      },
      NOW,
    );
    expect(ok.redshift).toEqual({
      targetTable: 'orders_latest',
      iamRole: 'arn:aws:iam::123456789012:role/loader',
      manifestUrl: 's3://bucket/loads/1.manifest',
    });
  });
});

describe('parseKeyOption', () => {
  it('reads attribute=value pairs, keeping commas inside a value, and JSON objects', () => {
    const p: string[] = [];
    expect(parseKeyOption('pk=tenant-1#a,b,sk=5', p)).toEqual({ pk: 'tenant-1#a,b', sk: '5' });
    expect(parseKeyOption('{"pk":"a,b=c","sk":5}', p)).toEqual({ pk: 'a,b=c', sk: '5' });
    expect(parseKeyOption('pk=', p)).toEqual({ pk: '' });
    expect(p).toEqual([]);
  });

  it('names what is wrong', () => {
    const p: string[] = [];
    parseKeyOption('tenant-1', p);
    parseKeyOption('pk=a,pk=b', p);
    parseKeyOption('{"pk":', p);
    parseKeyOption('[1]', p);
    expect(p).toEqual([
      expect.stringMatching(/^--key: "tenant-1" does not start with attribute=value/),
      expect.stringMatching(/^--key: "pk=a,pk=b" names pk twice/),
      expect.stringMatching(/^--key: .* is not valid JSON/),
      expect.stringMatching(/^--key: "\[1\]" does not start with attribute=value/),
    ]);
  });
});
