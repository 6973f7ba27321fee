import { Readable } from 'node:stream';
import {
  DynamoDBStreamsClient,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
} from '@aws-sdk/client-dynamodb-streams';

/**
 * Runs the AWS SDK's own GetRecords deserialisation over raw response bytes: a client whose HTTP
 * handler answers every request with `body`. What comes out is exactly what a consumer using the
 * SDK would get from DynamoDB Streams.
 */
export function sdkGetRecordsClient(nextBody: () => Uint8Array): DynamoDBStreamsClient {
  return new DynamoDBStreamsClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    requestHandler: {
      handle: async () => {
        const body = nextBody();
        return {
          // The SDK's HttpResponse check is structural (statusCode + headers), so a plain object does.
          response: {
            statusCode: 200,
            headers: { 'content-type': 'application/x-amz-json-1.0', 'content-length': String(body.length) },
            body: Readable.from([Buffer.from(body.buffer, body.byteOffset, body.byteLength)]),
          },
        };
      },
    },
  });
}

export async function sdkDeserializeGetRecords(body: Uint8Array): Promise<GetRecordsCommandOutput> {
  const client = sdkGetRecordsClient(() => body);
  try {
    return await client.send(new GetRecordsCommand({ ShardIterator: 'iterator' }));
  } finally {
    client.destroy();
  }
}
