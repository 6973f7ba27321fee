import type { z } from 'zod';
import { ChangelogError } from '../support/errors.js';

/**
 * Parses a JSON object of the changelog's format (a manifest, a revision, a cursor) and validates
 * it; a bad one is an error naming `what`, the key or file, and every problem at once.
 */
export function parseJsonDocument<T extends z.ZodType>(
  bytes: Uint8Array,
  schema: T,
  what: string,
  key: string,
): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new ChangelogError(`${what} ${key} is not valid JSON: ${(error as Error).message}`, {
      key,
      retriable: false,
      cause: error,
    });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ChangelogError(`${what} ${key} does not match the schema: ${problems.join('; ')}`, {
      key,
      retriable: false,
    });
  }
  return result.data;
}
