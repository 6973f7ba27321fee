import { buildArrowTable } from './arrowBatch.js';
import { compareDigits } from './byteColumn.js';
import type { ChangeBuffer } from './changeBuffer.js';
import { formatKeySchema } from './keySchema.js';
import { encodeParquet, type ParquetOptions, type SegmentCompression } from './parquetEncoder.js';

export const SEGMENT_FORMAT_VERSION = '1';

export interface ShardRange {
  shardId: string;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
  records: number;
}

export interface EncodedSegment {
  bytes: Uint8Array;
  records: number;
  /** Uncompressed bytes the rows held in the buffer. */
  bufferedBytes: number;
  minEventTimeMs: number;
  maxEventTimeMs: number;
  /** Per shard, sorted by shard id: the sequence range the segment holds. */
  shards: ShardRange[];
}

export interface SegmentOptions {
  compression?: SegmentCompression;
  rowGroupRows?: number;
  /** Extra footer metadata (table name, stream ARN); never wall-clock values. */
  metadata?: Record<string, string>;
}

/**
 * The footer metadata of a segment of stream records, as the daemon writes it: `replay --mode
 * rebuild` re-encodes lost segments with the same, so they come out byte-identical.
 */
export function streamSegmentMetadata(table: string, streamArn: string): Record<string, string> {
  return { table, stream_arn: streamArn };
}

const LARGE_TEXT_COLUMNS = ['keys', 'new_image', 'old_image'];

/**
 * Per-column Parquet settings of the segment columns (also used for `changes` Parquet output):
 * no statistics for the large JSON text, no dictionary where values are (nearly) all distinct.
 */
export const SEGMENT_COLUMN_ENCODING = {
  noStatisticsColumns: LARGE_TEXT_COLUMNS,
  noDictionaryColumns: [...LARGE_TEXT_COLUMNS, 'event_id', 'sequence_number'],
} as const satisfies Pick<ParquetOptions, 'noStatisticsColumns' | 'noDictionaryColumns'>;

/**
 * Turns buffered change rows into one Parquet change segment. The same rows give the same bytes,
 * whatever order they arrived in, so a retried write of a segment is idempotent.
 */
export function encodeSegment(buffer: ChangeBuffer, options: SegmentOptions = {}): EncodedSegment {
  if (buffer.rowCount === 0) throw new RangeError('cannot encode an empty segment');
  buffer.assertConsistent();
  const parquet: ParquetOptions = {
    compression: options.compression ?? 'zstd',
    rowGroupRows: options.rowGroupRows,
    ...SEGMENT_COLUMN_ENCODING,
    metadata: {
      ...options.metadata,
      format_version: SEGMENT_FORMAT_VERSION,
      key_schema: formatKeySchema(buffer.keySchema),
    },
  };
  const bytes = encodeParquet(buildArrowTable(buffer), parquet);
  return {
    bytes,
    records: buffer.rowCount,
    bufferedBytes: buffer.byteSize,
    ...eventTimeRange(buffer),
    shards: shardRanges(buffer),
  };
}

function eventTimeRange(buffer: ChangeBuffer): { minEventTimeMs: number; maxEventTimeMs: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let r = 0; r < buffer.rowCount; r++) {
    const t = buffer.eventTimeMs(r);
    if (t < min) min = t;
    if (t > max) max = t;
  }
  return { minEventTimeMs: min, maxEventTimeMs: max };
}

/** First and last sequence number per shard (compared as integers, not by arrival). */
export function shardRanges(buffer: ChangeBuffer): ShardRange[] {
  const seq = buffer.sequenceNumber;
  const data = seq.data;
  const first = new Int32Array(buffer.shards.length).fill(-1);
  const last = new Int32Array(buffer.shards.length).fill(-1);
  const counts = new Int32Array(buffer.shards.length);
  for (let r = 0; r < buffer.rowCount; r++) {
    const s = buffer.shardOf(r);
    counts[s]!++;
    const f = first[s]!;
    if (f < 0 || compareDigits(data, seq.start(r), seq.end(r), data, seq.start(f), seq.end(f)) < 0)
      first[s] = r;
    const l = last[s]!;
    if (l < 0 || compareDigits(data, seq.start(r), seq.end(r), data, seq.start(l), seq.end(l)) > 0)
      last[s] = r;
  }
  const text = (row: number) => Buffer.from(seq.value(row)).toString('latin1');
  return buffer.shards
    .map((shardId, s) => ({ shardId, s }))
    .filter(({ s }) => counts[s]! > 0)
    .map(({ shardId, s }) => ({
      shardId,
      firstSequenceNumber: text(first[s]!),
      lastSequenceNumber: text(last[s]!),
      records: counts[s]!,
    }))
    .sort((a, b) => (a.shardId < b.shardId ? -1 : a.shardId > b.shardId ? 1 : 0));
}
