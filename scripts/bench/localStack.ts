/**
 * DynamoDB Local for the end-to-end benchmark: the tests' starter (in memory, free port, killed with
 * this process), from the module that imports no vitest, so the measured RSS is the daemon's own.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startDynamoDbLocal } from '../../test/helpers/dynamoDbLocalServer.js';

export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
export const REGION = 'us-east-1';

export interface LocalDynamoDb {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startLocalDynamoDb(): Promise<LocalDynamoDb> {
  const local = await startDynamoDbLocal();
  return { endpoint: local.endpoint, stop: () => local.stop() };
}

export function dynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
}
