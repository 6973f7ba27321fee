import type { SegmentCompression } from '../../src/changelog/parquetEncoder.js';
import { generateRecords, type StreamViewType } from './streamRecords.js';

/** The golden segment cases: each a captured-style GetRecords page and how it was encoded. */
export interface GoldenCase {
  name: string;
  keySchema: string;
  shardId: string;
  compression: SegmentCompression;
  viewType: StreamViewType;
  records: number;
  seed: number;
}

export const GOLDEN_CASES: GoldenCase[] = [
  {
    name: 'orders-s-n-zstd',
    keySchema: 'pk:S,sk:N',
    shardId: 'shardId-00000001700000000000-0a1b2c3d',
    compression: 'zstd',
    viewType: 'NEW_AND_OLD_IMAGES',
    records: 40,
    seed: 101,
  },
  {
    name: 'keys-only-s-n-snappy',
    keySchema: 'pk:S,sk:N',
    shardId: 'shardId-00000001700000000001-4e5f6a7b',
    compression: 'snappy',
    viewType: 'KEYS_ONLY',
    records: 25,
    seed: 202,
  },
  {
    name: 'new-image-uncompressed',
    keySchema: 'pk:S,sk:N',
    shardId: 'shardId-00000001700000000002-8c9d0e1f',
    compression: 'none',
    viewType: 'NEW_IMAGE',
    records: 25,
    seed: 303,
  },
];

export function goldenRecords(c: GoldenCase) {
  return generateRecords({
    records: c.records,
    seed: c.seed,
    viewType: c.viewType,
    keyCount: 8,
    ttlShare: 0.5,
  });
}
