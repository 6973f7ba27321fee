import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { AttributeMap } from '../../../src/changelog/attributeValueJson.js';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { appendExportLines } from '../../../src/changelog/exportLineDecoder.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import {
  type DynamoExport,
  openExport,
  readExportFileChunks,
} from '../../../src/coordination/dynamoExport.js';
import type { ObjectStore } from '../../../src/coordination/objectStore.js';
import { ExportError, MalformedRecordError } from '../../../src/support/errors.js';
import { type ExportChange, writeExport } from '../../helpers/exportFixtures.js';
import { MemoryObjectStore } from '../../helpers/memoryObjectStore.js';

const TABLE_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/orders';
const T = Date.UTC(2026, 10, 22, 18, 0, 0);

/** Every line of the export's data files, JSON-parsed, in file order (the reader's bytes, checked). */
async function readAll(store: ObjectStore, exp: DynamoExport): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const file of exp.files) {
    for await (const batch of readExportFileChunks(store, exp, file)) {
      const lines = Buffer.from(batch.bytes).toString('utf8').split('\n');
      if (lines.at(-1) === '') lines.pop();
      expect(lines).toHaveLength(batch.lines);
      for (const line of lines) out.push(JSON.parse(line) as Record<string, unknown>);
    }
  }
  return out;
}

/** The export through the replay's path: reader batches into appendExportLines (pk:S). */
async function decodeAll(store: ObjectStore, exp: DynamoExport): Promise<ChangeBuffer> {
  const buffer = new ChangeBuffer(parseKeySchema('pk:S'));
  const kind = exp.summary.exportType === 'FULL_EXPORT' ? 'full' : 'incremental';
  for (const file of exp.files) {
    for await (const batch of readExportFileChunks(store, exp, file)) {
      appendExportLines(batch.bytes, 0, batch.bytes.length, kind, { replayId: 'r', eventTimeMs: T }, buffer, {
        file: file.key,
        firstLine: batch.firstLine,
      });
    }
  }
  return buffer;
}

async function failure(promise: Promise<unknown>): Promise<ExportError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ExportError);
  return error as ExportError;
}

const awkwardItems: AttributeMap[] = [
  {
    pk: { S: 'order#1' },
    sk: { N: '12345678901234567890123456789012345678' },
    tiny: { N: '-0.00000000000000000000000000000000000001' },
    huge: { N: '9.9999999999999999999999999999999999999E+125' },
    tags: { SS: ['a', 'b', ''] },
    scores: { NS: ['1', '10000000000000000000000000000000000001'] },
    blob: { B: 'AAECAwQ=' },
    blobs: { BS: ['AA==', '//8='] },
    empty: { S: '' },
    nested: {
      M: {
        level: { M: { deeper: { L: [{ N: '1' }, { NULL: true }, { BOOL: false }, { M: {} }] } } },
        'odd name.with "quotes"': { S: 'ünïcödé ✓' },
      },
    },
  },
  { pk: { S: 'order#2' }, sk: { N: '0' }, flag: { BOOL: true }, nothing: { NULL: true }, list: { L: [] } },
];

describe('openExport and readExportFileChunks: a full export', () => {
  it('gives back every item exactly, numbers of 38 digits, sets, binary, nested maps and empty strings included', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'exports/2026-Nov',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix, { table: 'orders' });
    expect(exp.summary).toMatchObject({
      exportArn: written.exportArn,
      exportId: written.exportId,
      tableArn: TABLE_ARN,
      tableName: 'orders',
      exportType: 'FULL_EXPORT',
      exportTimeMs: T,
      itemCount: 2,
      outputFormat: 'DYNAMODB_JSON',
      s3Prefix: 'exports/2026-Nov',
    });
    expect(exp.summary.fromTimeMs).toBeUndefined();
    expect(exp.totalItems).toBe(2);
    expect(exp.files.map((f) => f.key)).toEqual(written.files.map((f) => f.key));
    expect(exp.files[0]?.key).toMatch(
      /^exports\/2026-Nov\/AWSDynamoDB\/01700000000000-a1b2c3d4\/data\/.*\.json\.gz$/,
    );
    expect(await readAll(store, exp)).toEqual(awkwardItems.map((item) => ({ Item: item })));
  });

  it('accepts the folder without its trailing slash, and the table as an ARN', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'x',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix.replace(/\/$/, ''), { table: TABLE_ARN });
    expect(exp.prefix).toBe(written.exportPrefix);
    expect(exp.location).toBe(`memory://${written.exportPrefix}`);
  });

  it('resolves data keys for a store rooted below the bucket, for keys without the S3Prefix, and for an export at the root', async () => {
    // The store is s3://bucket/landing; the export was requested with S3Prefix landing/exports.
    const below = new MemoryObjectStore();
    const a = await writeExport(below, {
      prefix: 'exports',
      s3Prefix: 'landing/exports',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    expect(a.files[0]?.s3Key.startsWith('landing/exports/AWSDynamoDB/')).toBe(true);
    expect(await readAll(below, await openExport(below, a.exportPrefix))).toHaveLength(2);

    const docStyle = new MemoryObjectStore();
    const b = await writeExport(docStyle, {
      prefix: '2020-Nov',
      keysWithoutPrefix: true,
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    expect(b.files[0]?.s3Key.startsWith('AWSDynamoDB/')).toBe(true);
    expect(await readAll(docStyle, await openExport(docStyle, b.exportPrefix))).toHaveLength(2);

    const root = new MemoryObjectStore();
    const c = await writeExport(root, {
      prefix: '',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    expect(c.exportPrefix).toBe('AWSDynamoDB/01700000000000-a1b2c3d4/');
    expect(await readAll(root, await openExport(root, c.exportPrefix))).toHaveLength(2);
  });

  it('reads a file of several thousand lines split across decompressed chunks, spread over files, empty partitions included', async () => {
    const store = new MemoryObjectStore();
    const items: AttributeMap[] = Array.from({ length: 5000 }, (_, i) => ({
      pk: { S: `item#${i}` },
      n: { N: `${i}${'7'.repeat(30)}` },
      body: { S: 'x'.repeat(i % 97) },
    }));
    const written = await writeExport(store, {
      prefix: 'p',
      tableArn: TABLE_ARN,
      type: 'full',
      items,
      filesCount: 2,
      emptyFiles: 1,
      exportTimeMs: T,
    });
    const big = store.objects.get(written.files[0]?.key ?? '')?.body ?? new Uint8Array();
    // Larger than zlib's 16 KiB output chunks, so lines do cross chunk boundaries.
    expect(gunzipSync(big).byteLength).toBeGreaterThan(100_000);
    const exp = await openExport(store, written.exportPrefix);
    expect(exp.files.map((f) => f.itemCount)).toEqual([2500, 2500, 0]);
    const lines = await readAll(store, exp);
    expect(lines).toEqual(items.map((item) => ({ Item: item })));
  });
});

describe('readExportFileChunks', () => {
  it('yields the decompressed text as batches of whole lines, numbered, and leaves out skipLines lines', async () => {
    const store = new MemoryObjectStore();
    const items: AttributeMap[] = Array.from({ length: 3000 }, (_, i) => ({
      pk: { S: `item#${i}` },
      body: { S: 'y'.repeat(i % 131) },
    }));
    const written = await writeExport(store, {
      prefix: 'p',
      tableArn: TABLE_ARN,
      type: 'full',
      items,
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix);
    const file = exp.files[0]!;
    const text = gunzipSync(store.objects.get(file.key)!.body).toString('utf8');
    const lines = text.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(3000);
    const read = async (skipLines: number) => {
      const batches = [];
      for await (const b of readExportFileChunks(store, exp, file, { skipLines })) batches.push(b);
      return batches;
    };
    const all = await read(0);
    expect(all.length).toBeGreaterThan(2);
    let next = 1;
    for (const b of all) {
      expect(b.firstLine).toBe(next);
      const text = Buffer.from(b.bytes).toString('utf8');
      expect(text.split('\n').filter((l) => l !== '')).toHaveLength(b.lines);
      expect(text.endsWith('\n') || b === all.at(-1)).toBe(true);
      next += b.lines;
    }
    expect(Buffer.concat(all.map((b) => b.bytes)).toString('utf8')).toBe(text);
    // Resume points: none, one line, inside a batch, at a batch boundary, the last line, all lines.
    const boundary = all[0]!.lines;
    for (const skip of [1, 17, boundary, boundary + 1, 2999, 3000]) {
      const batches = await read(skip);
      expect(batches[0]?.firstLine ?? 3001).toBe(skip + 1);
      expect(batches.reduce((n, b) => n + b.lines, 0)).toBe(3000 - skip);
      const rest = Buffer.concat(batches.map((b) => b.bytes)).toString('utf8');
      expect(rest.split('\n').filter((l) => l !== '')).toEqual(lines.slice(skip));
    }
  });

  it('refuses a file with more lines than its itemCount before yielding the batch with the extra line', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      corrupt: { fileItemCount: { file: 0, delta: -1 } },
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix);
    const yielded: unknown[] = [];
    const error = await failure(
      (async () => {
        for await (const b of readExportFileChunks(store, exp, exp.files[0]!)) yielded.push(b);
      })(),
    );
    expect(yielded).toEqual([]);
    expect(error.problem).toBe('item-count-mismatch');
  });
});

describe('openExport and readExportFileChunks: an incremental export', () => {
  const keys = (id: string): AttributeMap => ({ pk: { S: id } });
  const changes: ExportChange[] = [
    // Inserted in the period: a new image only.
    {
      keys: keys('a'),
      newImage: { pk: { S: 'a' }, v: { N: '1' } },
      writeTimestampMicros: 1_763_834_400_000_001n,
    },
    // Modified: new and old image.
    {
      keys: keys('b'),
      newImage: { pk: { S: 'b' }, v: { N: '3' } },
      oldImage: { pk: { S: 'b' }, v: { N: '2' } },
      writeTimestampMicros: 1_763_834_400_123_456n,
    },
    // Deleted: no NewImage (the old image with NEW_AND_OLD_IMAGES).
    {
      keys: keys('c'),
      oldImage: { pk: { S: 'c' }, v: { N: '9' } },
      writeTimestampMicros: 1_763_834_401_000_000n,
    },
    // Deleted, seen with NEW_IMAGE view: keys only.
    { keys: keys('d'), writeTimestampMicros: 1_763_834_402_000_000n },
  ];

  it('yields every change with its keys, images and exact write timestamp, and the period from the summary', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'incr',
      tableArn: TABLE_ARN,
      type: 'incremental',
      changes,
      filesCount: 2,
      exportTimeMs: T,
      fromMs: T - 3_600_000,
      toMs: T,
    });
    // Incremental exports keep their data in the shared AWSDynamoDB/data/ folder.
    expect(written.files[0]?.key).toMatch(/^incr\/AWSDynamoDB\/data\//);
    const exp = await openExport(store, written.exportPrefix, { table: 'orders' });
    expect(exp.summary).toMatchObject({
      exportType: 'INCREMENTAL_EXPORT',
      fromTimeMs: T - 3_600_000,
      toTimeMs: T,
      exportTimeMs: T,
      outputView: 'NEW_AND_OLD_IMAGES',
      itemCount: 4,
    });
    const lines = (await readAll(store, exp)) as {
      Metadata: { WriteTimestampMicros: { N: string } };
      Keys: unknown;
      NewImage?: unknown;
      OldImage?: unknown;
    }[];
    expect(
      lines.map((l) => ({
        keys: l.Keys,
        newImage: l.NewImage,
        oldImage: l.OldImage,
        writeTimestampMicros: BigInt(l.Metadata.WriteTimestampMicros.N),
      })),
    ).toEqual(changes);
    expect('NewImage' in lines[2]!).toBe(false);
    // Through the replay's decoder: NET rows, the delete a tombstone, images as the lines hold them.
    const buffer = await decodeAll(store, exp);
    expect(buffer.rowCount).toBe(4);
    expect(buffer.newImage.isNull(2)).toBe(true);
    expect(JSON.parse(Buffer.from(buffer.oldImage.value(1)).toString('utf8'))).toEqual(changes[1]!.oldImage);
  });
});

describe('openExport refuses', () => {
  it('a folder without manifest-summary.json, naming the location and the folder expected', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'exports',
      tableArn: TABLE_ARN,
      type: 'full',
      items: [],
      exportTimeMs: T,
    });
    const error = await failure(openExport(store, 'exports/'));
    expect(error.problem).toBe('not-an-export');
    expect(error.message).toContain('memory://exports/');
    expect(error.message).toContain('AWSDynamoDB/<ExportId>/');
    expect(error.context.key).toBe('exports/manifest-summary.json');
    await expect(openExport(store, written.exportPrefix)).resolves.toBeDefined();
  });

  it('an export of another table, naming both', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    const error = await failure(openExport(store, written.exportPrefix, { table: 'customers' }));
    expect(error.problem).toBe('wrong-table');
    expect(error.message).toContain('orders');
    expect(error.message).toContain('customers');
    expect(error.retriable).toBe(false);
  });

  it('an output format other than DYNAMODB_JSON, naming the value and what is allowed', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      outputFormat: 'ION',
      exportTimeMs: T,
    });
    const error = await failure(openExport(store, written.exportPrefix));
    expect(error.problem).toBe('unsupported-format');
    expect(error.message).toContain('"ION"');
    expect(error.message).toContain('only DYNAMODB_JSON');
  });

  it('a summary whose itemCount is not the sum of the files', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      corrupt: { summaryItemCount: 1 },
      exportTimeMs: T,
    });
    const error = await failure(openExport(store, written.exportPrefix));
    expect(error.problem).toBe('item-count-mismatch');
    expect(error.message).toMatch(/itemCount 3.*add up to 2/);
  });

  it('a summary that does not match its checksum file (.md5 or .checksum)', async () => {
    for (const checksumFiles of ['.md5', '.checksum'] as const) {
      const store = new MemoryObjectStore();
      const written = await writeExport(store, {
        prefix: 'e',
        tableArn: TABLE_ARN,
        type: 'full',
        items: awkwardItems,
        checksumFiles,
        corrupt: { summaryChecksum: true },
        exportTimeMs: T,
      });
      const error = await failure(openExport(store, written.exportPrefix));
      expect(error.problem).toBe('checksum-mismatch');
      expect(error.message).toContain(`manifest-summary${checksumFiles}`);
    }
  });

  it('a data file key that would leave the AWSDynamoDB folder', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      checksumFiles: 'none',
      exportTimeMs: T,
    });
    const filesKey = `${written.exportPrefix}manifest-files.json`;
    const entry = {
      itemCount: 2,
      md5Checksum: written.files[0]?.md5Checksum,
      etag: 'x',
      dataFileS3Key: 'e/AWSDynamoDB/../../secret.json.gz',
    };
    store.objects.set(filesKey, {
      body: new TextEncoder().encode(`${JSON.stringify(entry)}\n`),
      lastModified: new Date(),
    });
    const error = await failure(openExport(store, written.exportPrefix));
    expect(error.problem).toBe('malformed-manifest');
    expect(error.message).toContain('outside the export');
  });
});

describe('readExportFileChunks refuses', () => {
  it('a data file whose MD5 differs, before yielding any line', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      corrupt: { dataFileMd5: 0 },
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix);
    const file = exp.files[0];
    if (file === undefined) throw new Error('no file');
    const yielded: unknown[] = [];
    const error = await failure(
      (async () => {
        for await (const batch of readExportFileChunks(store, exp, file)) yielded.push(batch);
      })(),
    );
    expect(yielded).toEqual([]);
    expect(error.problem).toBe('checksum-mismatch');
    expect(error.context.key).toBe(file.key);
  });

  it('a data file with fewer lines than its itemCount, after the last line, naming expected and found', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      corrupt: { fileItemCount: { file: 0, delta: 1 } },
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix);
    const error = await failure(readAll(store, exp));
    expect(error.problem).toBe('item-count-mismatch');
    expect(error.message).toContain('holds 2 lines');
    expect(error.message).toContain('itemCount 3');
  });

  it('a data file with more lines than its itemCount', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      corrupt: { fileItemCount: { file: 0, delta: -1 } },
      exportTimeMs: T,
    });
    const error = await failure(readAll(store, await openExport(store, written.exportPrefix)));
    expect(error.problem).toBe('item-count-mismatch');
    expect(error.message).toContain('more than 1 lines');
  });

  it('an empty line, naming the file and line number', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: [...awkwardItems, { pk: { S: 'three' } }],
      corrupt: { line: { file: 0, line: 1, text: '' } },
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix);
    const error = await failure(readAll(store, exp));
    expect(error.problem).toBe('malformed-data');
    expect(error.message).toMatch(/line 2 is empty/);
    expect(error.message).toContain(exp.files[0]?.key);
    expect(error.line).toBe(2);
  });

  it.each([
    ['not JSON', '{"Item":', /line 2 is not valid JSON/],
    ['no Item', '{"Keys":{"pk":{"S":"a"}}}', /line 2 has "Keys": an incremental-export line/],
    ['a key number as a JSON number', '{"Item":{"pk":{"N":12}}}', /line 2 has Item\.pk that is not/],
    ['a key with two type keys', '{"Item":{"pk":{"S":"a","N":"1"}}}', /line 2 has Item\.pk that is not/],
  ])(
    'a malformed line (%s), in the decoder, naming the file and line number',
    async (_what, text, message) => {
      const store = new MemoryObjectStore();
      const written = await writeExport(store, {
        prefix: 'e',
        tableArn: TABLE_ARN,
        type: 'full',
        items: [{ pk: { S: 'one' } }, { pk: { S: 'two' } }, { pk: { S: 'three' } }],
        corrupt: { line: { file: 0, line: 1, text } },
        exportTimeMs: T,
      });
      const exp = await openExport(store, written.exportPrefix);
      const error = await decodeAll(store, exp).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MalformedRecordError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(`${exp.files[0]?.key} line 2 `);
    },
  );

  it('an incremental line without a usable WriteTimestampMicros', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'incremental',
      changes: [{ keys: { pk: { S: 'a' } }, writeTimestampMicros: 1n }],
      corrupt: {
        line: {
          file: 0,
          line: 0,
          text: '{"Metadata":{"WriteTimestampMicros":{"N":"soon"}},"Keys":{"pk":{"S":"a"}}}',
        },
      },
      exportTimeMs: T,
    });
    const error = await decodeAll(store, await openExport(store, written.exportPrefix)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MalformedRecordError);
    expect((error as Error).message).toMatch(/line 1 has a bad Metadata\.WriteTimestampMicros/);
  });

  it('a data file that is missing from the store', async () => {
    const store = new MemoryObjectStore();
    const written = await writeExport(store, {
      prefix: 'e',
      tableArn: TABLE_ARN,
      type: 'full',
      items: awkwardItems,
      exportTimeMs: T,
    });
    const exp = await openExport(store, written.exportPrefix);
    await store.delete([written.files[0]?.key ?? '']);
    const error = await failure(readAll(store, exp));
    expect(error.problem).toBe('missing-file');
  });
});
