import { describe, expect, it } from 'vitest';
import { parseDestination } from '../../../src/coordination/objectStore.js';
import { ConfigError } from '../../../src/support/errors.js';

describe('parseDestination', () => {
  it.each([
    ['s3://changelog-bucket', { kind: 's3', bucket: 'changelog-bucket', prefix: '' }],
    ['s3://changelog-bucket/', { kind: 's3', bucket: 'changelog-bucket', prefix: '' }],
    ['s3://my.bucket-1/tables/orders', { kind: 's3', bucket: 'my.bucket-1', prefix: 'tables/orders' }],
    ['s3://abc/tables/orders/', { kind: 's3', bucket: 'abc', prefix: 'tables/orders' }],
    ['S3://abc/p', { kind: 's3', bucket: 'abc', prefix: 'p' }],
    ['file:///var/lib/changelog', { kind: 'file', dir: '/var/lib/changelog' }],
    ['file:///var/lib/changelog/', { kind: 'file', dir: '/var/lib/changelog' }],
    ['file:///tmp/with%20space', { kind: 'file', dir: '/tmp/with space' }],
  ])('parses %s', (url, expected) => {
    expect(parseDestination(url)).toEqual(expected);
  });

  it.each([
    ['http://example.com/bucket', /unsupported scheme/],
    ['/var/lib/changelog', /unsupported scheme/],
    ['', /unsupported scheme/],
    ['s3://', /invalid bucket name ""/],
    ['s3://ab', /invalid bucket name "ab"/],
    ['s3://My_Bucket/p', /invalid bucket name "My_Bucket"/],
    ['s3://a..b/p', /invalid bucket name/],
    ['s3://192.168.1.1/p', /invalid bucket name/],
    ['s3://bucket//double', /invalid prefix "\/double"/],
    ['s3://bucket/a//b', /invalid prefix "a\/\/b"/],
    ['s3://bucket/a/../b', /invalid prefix/],
    ['file:relative/dir', /absolute file URL/],
    ['file://host/dir', /absolute file URL/],
    ['file:///dir?x=1', /query or fragment/],
  ])('rejects %s', (url, reason) => {
    let error: unknown;
    try {
      parseDestination(url);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(reason);
    // Names the offending value and what is allowed.
    expect(message).toContain(`"${url}"`);
    expect(message).toContain('s3://<bucket>[/<prefix>] or file:///<absolute directory>');
  });
});
