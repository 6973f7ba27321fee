import { describe, expect, it } from 'vitest';
import { describeAwsError } from '../../../src/support/errors.js';

describe('describeAwsError', () => {
  it('names the error and its HTTP status, so an "UnknownError" message still says what failed', () => {
    const error = Object.assign(new Error('UnknownError'), {
      name: 'IdempotentParameterMismatchException',
      $metadata: { httpStatusCode: 400 },
    });
    expect(describeAwsError(error)).toBe('IdempotentParameterMismatchException (HTTP 400): UnknownError');
  });

  it('does not repeat a name the message already starts with, and handles non-errors', () => {
    const error = Object.assign(new Error('ThrottlingException: slow down'), { name: 'ThrottlingException' });
    expect(describeAwsError(error)).toBe('ThrottlingException: slow down');
    expect(describeAwsError(new Error('plain'))).toBe('plain');
    expect(describeAwsError('text')).toBe('text');
  });
});
