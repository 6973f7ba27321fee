import {
  type DynamoDBStreamsClient,
  GetShardIteratorCommand,
  type ShardIteratorType,
} from '@aws-sdk/client-dynamodb-streams';
import { StreamError } from '../support/errors.js';
import type { RetryOptions } from '../support/retry.js';
import { awsCall } from './awsCall.js';

/**
 * GetShardIterator through awsCall (transient faults retried there; other failures thrown as the
 * SDK's errors, whose names the reader acts on); a missing iterator in the answer is an error.
 */
export async function getShardIterator(
  streams: DynamoDBStreamsClient,
  at: { streamArn: string; shardId: string; type: ShardIteratorType; sequenceNumber?: string | undefined },
  retryOptions: RetryOptions | undefined,
  signal: AbortSignal,
): Promise<string> {
  const { streamArn, shardId, type, sequenceNumber } = at;
  const output = await awsCall(
    (s) =>
      streams.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shardId,
          ShardIteratorType: type,
          ...(sequenceNumber !== undefined && { SequenceNumber: sequenceNumber }),
        }),
        { abortSignal: s },
      ),
    { retry: { ...retryOptions, signal } },
  );
  if (!output.ShardIterator) {
    throw new StreamError('NoShardIterator', `GetShardIterator returned no iterator for ${shardId}`, {
      shardId,
    });
  }
  return output.ShardIterator;
}
