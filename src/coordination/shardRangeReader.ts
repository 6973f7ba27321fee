import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { ChangeBuffer } from '../changelog/changeBuffer.js';
import { compareSequenceNumbers } from '../changelog/sequenceNumber.js';
import { decodeGetRecordsResponse } from '../changelog/wireRecordDecoder.js';
import { ChangelogError, StreamError } from '../support/errors.js';
import type { RetryOptions } from '../support/retry.js';
import { awsCall, hasName } from './awsCall.js';
import type { RawGetRecordsClient } from './getRecordsClient.js';
import { getShardIterator } from './shardIterator.js';

/** A stretch of one shard a segment holds: its manifest shard entry. */
export interface ShardRecordRange {
  streamArn: string;
  shardId: string;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
  records: number;
}

export type ShardRangeRead =
  | { kind: 'read'; records: number }
  /** The stream no longer holds the range (trimmed after 24 h, or the stream or shard is gone). */
  | { kind: 'gone'; reason: string };

export interface ShardRangeReaderOptions {
  streams: DynamoDBStreamsClient;
  raw: RawGetRecordsClient;
  retry?: Omit<RetryOptions, 'signal'>;
  /** Empty answers in a row after which an open shard counts as holding nothing more (default 10). */
  emptyReads?: number;
}

/**
 * Reads exactly the records `range` names back from the stream into `into` (rebuild: a segment
 * whose object was lost is re-encoded from the same records, so it comes out byte-identical).
 * Lease-free like `verify --stream`: one GetRecords at a time on the shard. Opens the shard AT the
 * first sequence number and stops past the last; checks that the first record is the first one
 * and that the count matches, else throws (the stream gave something else than the changelog
 * recorded). A range the stream no longer holds is answered `gone`, never guessed.
 */
export async function readShardRange(
  range: ShardRecordRange,
  into: ChangeBuffer,
  options: ShardRangeReaderOptions,
  signal: AbortSignal,
): Promise<ShardRangeRead> {
  const { shardId, firstSequenceNumber: first, lastSequenceNumber: last } = range;
  const mark = into.mark();
  let iterator: string | undefined;
  try {
    iterator = await getShardIterator(
      options.streams,
      { streamArn: range.streamArn, shardId, type: 'AT_SEQUENCE_NUMBER', sequenceNumber: first },
      options.retry,
      signal,
    );
  } catch (error) {
    const gone = goneReason(error);
    if (gone !== undefined) return { kind: 'gone', reason: gone };
    throw error;
  }
  let read = 0;
  let empty = 0;
  const maxEmpty = options.emptyReads ?? 10;
  for (;;) {
    const page = new ChangeBuffer(into.keySchema);
    let next: string | undefined;
    try {
      // Through the one AWS call wrapper: throttling and 5xx (StreamError, retriable) retried.
      const body = await awsCall(
        async (s) => (await options.raw.getRecords({ ShardIterator: iterator!, Limit: 1000 }, s)).body,
        { retry: options.retry, signal },
      );
      next = decodeGetRecordsResponse(body, shardId, page).nextShardIterator;
    } catch (error) {
      const gone = goneReason(error);
      if (gone !== undefined) {
        into.rollback(mark);
        return { kind: 'gone', reason: gone };
      }
      throw error;
    }
    let past = false;
    for (let row = 0; row < page.rowCount; row++) {
      const sequence = Buffer.from(page.sequenceNumber.value(row)).toString('latin1');
      if (compareSequenceNumbers(sequence, last) > 0) {
        past = true;
        break;
      }
      if (read === 0 && compareSequenceNumbers(sequence, first) !== 0) {
        into.rollback(mark);
        throw new ChangelogError(
          `shard ${shardId}: opened at ${first}, the stream's first record is ${sequence}; the changelog recorded ${first} as the range's first`,
          { shardId, sequenceNumber: sequence, retriable: false },
        );
      }
      into.appendRowFrom(page, row);
      read++;
    }
    empty = page.rowCount === 0 ? empty + 1 : 0;
    if (past || next === undefined || empty >= maxEmpty) break;
    iterator = next;
  }
  if (read !== range.records) {
    into.rollback(mark);
    throw new ChangelogError(
      `shard ${shardId}: ${first}..${last} holds ${read} record(s) in the stream, the changelog recorded ${range.records}`,
      { shardId, sequenceNumber: first, retriable: false },
    );
  }
  return { kind: 'read', records: read };
}

function goneReason(error: unknown): string | undefined {
  const code = error instanceof StreamError ? error.code : undefined;
  for (const name of ['TrimmedDataAccessException', 'ResourceNotFoundException']) {
    if (code === name || hasName(error, name)) return name;
  }
  return undefined;
}
