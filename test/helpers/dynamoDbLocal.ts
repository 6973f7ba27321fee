import { afterAll, beforeAll } from 'vitest';
import { type DynamoDbLocal, startDynamoDbLocal } from './dynamoDbLocalServer.js';

export {
  createSourceTable,
  createStreamTable,
  type DynamoDbLocal,
  startDynamoDbLocal,
} from './dynamoDbLocalServer.js';

/**
 * One DynamoDB Local for the calling test file, started in beforeAll and stopped in afterAll.
 * Returns an accessor, valid inside tests and hooks that run after the start.
 */
export function useDynamoDbLocal(): () => DynamoDbLocal {
  let local: DynamoDbLocal | undefined;
  beforeAll(async () => {
    local = await startDynamoDbLocal();
  });
  afterAll(async () => {
    await local?.stop();
  });
  return () => {
    if (!local) throw new Error('DynamoDB Local is not running: use it inside a test');
    return local;
  };
}
