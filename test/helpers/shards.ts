import type { Shard } from '@aws-sdk/client-dynamodb-streams';

/** A DescribeStream `Shard`: open unless `end` is given, a root unless `parent` is. */
export function shard(id: string, options: { parent?: string; end?: string } = {}): Shard {
  return {
    ShardId: id,
    ...(options.parent !== undefined && { ParentShardId: options.parent }),
    SequenceNumberRange: {
      StartingSequenceNumber: '100000000000000000001',
      ...(options.end !== undefined && { EndingSequenceNumber: options.end }),
    },
  };
}
