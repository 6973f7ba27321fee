import { describe, expect, it } from 'vitest';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  localAwsEnvironment,
} from '../../../../src/app/local/localServers.js';

describe('localAwsEnvironment', () => {
  it('points the SDK at the local servers, with the local credentials and region', () => {
    expect(localAwsEnvironment({ dynamodb: 'http://127.0.0.1:1', s3: 'http://127.0.0.1:2' })).toEqual({
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:1',
      // DynamoDB Local answers the Streams API on the same port.
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS: 'http://127.0.0.1:1',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:2',
    });
  });

  it('takes another Streams endpoint when given one', () => {
    const env = localAwsEnvironment({ dynamodb: 'http://d', s3: 'http://s', streams: 'http://tap' });
    expect(env['AWS_ENDPOINT_URL_DYNAMODB']).toBe('http://d');
    expect(env['AWS_ENDPOINT_URL_DYNAMODB_STREAMS']).toBe('http://tap');
  });
});
