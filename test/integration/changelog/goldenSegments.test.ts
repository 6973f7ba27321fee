import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChangeBuffer } from '../../../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { encodeSegment } from '../../../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../../../src/changelog/wireRecordDecoder.js';
import { expectedRows } from '../../helpers/expectedRows.js';
import { GOLDEN_CASES } from '../../helpers/goldenSegments.js';
import { readWithDuckDB, readWithHyparquet } from '../../helpers/parquetReaders.js';
import type { WireRecord } from '../../helpers/streamRecords.js';

/*
 * Golden change segments, committed under test/fixtures/segments with the GetRecords page each was
 * made from. They must (1) still decode, with both independent readers, to the rows their page
 * holds, and (2) be reproduced byte for byte by today's encoder: a difference means the format
 * changed (regenerate with `npm run golden:update` and bump SEGMENT_FORMAT_VERSION) or determinism
 * broke (a retried segment write would then be refused as a conflicting object).
 */
const dir = join(import.meta.dirname, '..', '..', 'fixtures', 'segments');

describe.each(GOLDEN_CASES)('golden segment $name', (c) => {
  const golden = readFileSync(join(dir, `${c.name}.parquet`));
  const page = readFileSync(join(dir, `${c.name}.page.json`));
  const records = (JSON.parse(page.toString('utf8')) as { Records: WireRecord[] }).Records;
  const expected = expectedRows(parseKeySchema(c.keySchema), records, c.shardId);

  it('decodes with DuckDB and hyparquet to the rows of its page', async () => {
    expect(await readWithDuckDB(golden)).toEqual(expected);
    expect(await readWithHyparquet(golden)).toEqual(expected);
  });

  it('is reproduced byte for byte by the current encoder', () => {
    const buffer = new ChangeBuffer(parseKeySchema(c.keySchema));
    decodeGetRecordsResponse(page, c.shardId, buffer);
    const bytes = Buffer.from(encodeSegment(buffer, { compression: c.compression }).bytes);
    expect(bytes.length).toBe(golden.length);
    expect(bytes.equals(golden)).toBe(true);
  });
});
