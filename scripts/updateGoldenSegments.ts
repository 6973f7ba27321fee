/**
 * Rewrites the golden change segments under test/fixtures/segments/ from their source pages.
 *
 *   npm run golden:update
 *
 * Run it only for a deliberate format change (and bump SEGMENT_FORMAT_VERSION): the golden test
 * fails whenever the encoder's output for the same input changes, which is otherwise a regression
 * of determinism (a retried segment write would be refused as a conflict).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChangeBuffer } from '../src/changelog/changeBuffer.js';
import { parseKeySchema } from '../src/changelog/keySchema.js';
import { encodeSegment } from '../src/changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../src/changelog/wireRecordDecoder.js';
import { GOLDEN_CASES, goldenRecords } from '../test/helpers/goldenSegments.js';
import { getRecordsResponse } from '../test/helpers/streamRecords.js';

const dir = join(import.meta.dirname, '..', 'test', 'fixtures', 'segments');
for (const c of GOLDEN_CASES) {
  const page = getRecordsResponse(goldenRecords(c), 'AAAAAAAAAAG-golden-iterator');
  const buffer = new ChangeBuffer(parseKeySchema(c.keySchema));
  decodeGetRecordsResponse(page, c.shardId, buffer);
  const segment = encodeSegment(buffer, { compression: c.compression });
  writeFileSync(join(dir, `${c.name}.page.json`), page);
  writeFileSync(join(dir, `${c.name}.parquet`), segment.bytes);
  console.log(`${c.name}: ${segment.records} records, ${segment.bytes.length} bytes`);
}
