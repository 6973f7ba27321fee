import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeySchema } from '../../../src/changelog/keySchema.js';
import { segmentObjectKey, windowStartOf } from '../../../src/changelog/layout.js';
import { pipelineConfig } from '../../../src/coordination/config.js';
import { RawGetRecordsClient } from '../../../src/coordination/getRecordsClient.js';
import { createLeaseTable } from '../../../src/coordination/leaseTable.js';
import { openObjectStore } from '../../../src/coordination/openObjectStore.js';
import type { WindowSealed } from '../../../src/coordination/pipelineObserver.js';
import { S3ObjectStore } from '../../../src/coordination/s3ObjectStore.js';
import { resolveStreamArn } from '../../../src/coordination/shardDiscovery.js';
import { ChangelogWorker } from '../../../src/ingest/changelogWorker.js';
import {
  AWS_CALLS_DIR_ENV,
  classifyStack,
  onAwsCall,
  pruneRecordedRuns,
  REPO_ROOT,
  type RecordedCall,
  readRecordedRun,
} from '../../helpers/awsCallRecorder.js';
import { createStreamTable, type DynamoDbLocal, startDynamoDbLocal } from '../../helpers/dynamoDbLocal.js';
import {
  type ArnContext,
  checkActions,
  checkCalls,
  type Grant,
  grantsFor,
  OPERATIONS,
  operationKey,
  type Policy,
  parsePolicy,
  renderTemplate,
  runProcessVars,
  scanSourceForAwsCalls,
  type TemplateVars,
  templateVariables,
  wildcardMatch,
} from '../../helpers/iamPolicy.js';
import { type S3rverServer, startS3rver } from '../../helpers/s3rverServer.js';

/*
 * "Every AWS call the code makes is allowed by the IAM policy in infra/, and the policy allows
 * nothing the code does not call."
 *
 * The policy is infra/iam/policy.json.tftpl, the file Terraform renders (infra/terraform/iam.tf).
 * Calls are recorded by test/helpers/awsCallRecorder.ts: in this file, while the daemon's code path
 * runs against DynamoDB Local and s3rver (lease table creation, shard leases, raw GetRecords,
 * commits, sealing, orphan collection, multipart and SSE-KMS writes, an aborted upload); and in
 * every other test file of the run and the CLI processes they start (this file runs after them:
 * vitest.config.ts). The scenario's calls are checked on their exact resources; CLI `run`
 * processes on theirs (from their flags); calls other tests make on their own fixtures, at action
 * level.
 */

const CTX: ArnContext = { partition: 'aws', region: 'us-east-1', account: '123456789012' };
const TABLE = 'orders';
const LEASE_TABLE = 'orders-changelog-leases';
const BUCKET = 'changelog-bucket';
const PREFIX = 'changelog';
const KMS_KEY = 'arn:aws:kms:us-east-1:123456789012:key/0b5c2c64-7d1e-4a8e-9c1e-2f1b9b7f3a11';
const MIB = 1024 * 1024;

const TEMPLATE_FILE = path.join(REPO_ROOT, 'infra', 'iam', 'policy.json.tftpl');
const template = readFileSync(TEMPLATE_FILE, 'utf8');

/** The template's variables for the scenario: every optional statement on. */
const VARS: TemplateVars = {
  partition: CTX.partition,
  region: CTX.region,
  account_id: CTX.account,
  table_name: TABLE,
  lease_table_name: LEASE_TABLE,
  bucket_name: BUCKET,
  object_prefix: `${PREFIX}/`,
  kms_key_arn: KMS_KEY,
  allow_create_lease_table: true,
};

const render = (overrides: TemplateVars = {}): Policy =>
  parsePolicy(renderTemplate(template, { ...VARS, ...overrides }));

/**
 * Policy actions the scenario does not exercise, each allowed because the code calls it where the
 * static scan of src/ finds the operation (so this list cannot outlive the code).
 */
const NOT_EXERCISED_HERE = [
  {
    sid: 'ListSourceStreams',
    action: 'dynamodb:ListStreams',
    operation: 'dynamodbstreams:ListStreams',
    why: "TableWorker lists the table's streams to follow it across a stream disable/re-enable",
  },
  // `replay` (an operator's command, run with the same role) reads the table itself: a scan
  // (test/integration/coordination/tableScan.test.ts runs it on DynamoDB Local) or an export
  // (unit tests only: DynamoDB Local has no exports).
  ...(
    [
      ['ReplayReadsSourceTable', 'dynamodb:Scan', 'dynamodb:Scan'],
      ['ReplayReadsSourceTable', 'dynamodb:ExportTableToPointInTime', 'dynamodb:ExportTableToPointInTime'],
      ['ReplayDescribesExports', 'dynamodb:DescribeExport', 'dynamodb:DescribeExport'],
    ] as const
  ).map(([sid, action, operation]) => ({ sid, action, operation, why: 'replay: not part of the scenario' })),
];

/**
 * Code outside the policy's scope: it never runs with the daemon's role. Its calls are neither
 * scanned nor checked (in process: by the calling src/ file; CLI processes: by their command).
 */
const OUTSIDE_THE_POLICY = [
  {
    dir: 'src/app/local/',
    command: 'local',
    why: 'the embedded local stack (`dynamodb-changelog local`): it starts DynamoDB Local and an S3 server on loopback and drives a demo producer against them (its server starters also start the tests’ servers)',
  },
];
const EXCLUDED_DIRS = OUTSIDE_THE_POLICY.map((o) => o.dir);
/** An in-process call by src/ code outside the policy (e.g. the DynamoDB Local starter waiting for it). */
const outsideThePolicy = (c: RecordedCall) => EXCLUDED_DIRS.some((dir) => c.caller?.startsWith(dir));
const scanSource = () => scanSourceForAwsCalls(REPO_ROOT, EXCLUDED_DIRS);

/** Actions AWS defines without a resource type, which only `Resource: "*"` can grant. */
const RESOURCE_STAR_ONLY = new Set(['dynamodb:ListStreams']);

describe('the policy checker', () => {
  it('renders Terraform templates: interpolation, if/else, strip markers, escapes', () => {
    const t =
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform template syntax
      '[${a}%{ if flag ~}\n, "on"\n%{~ else ~}\n, "off"%{ endif }%{ if s != "" }, "${s}"%{ endif }, "$${x}"]';
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an escaped ${ renders as itself
    const literal = '${x}';
    expect(renderTemplate(t, { a: '"A"', flag: true, s: 'S' })).toBe(`["A", "on", "S", "${literal}"]`);
    expect(renderTemplate(t, { a: '"A"', flag: false, s: '' })).toBe(`["A", "off", "${literal}"]`);
    expect(() => renderTemplate(t, { a: '1', flag: true })).toThrow(/s is not in the vars/);
    expect(() => renderTemplate('%{ if s }x%{ endif }', { s: 'text' })).toThrow(/not a bool/);
  });

  it('matches IAM wildcards: actions case-insensitively, resources exactly', () => {
    expect(wildcardMatch('s3:Get*', 's3:getobject', true)).toBe(true);
    expect(wildcardMatch('arn:aws:s3:::b/p/*', 'arn:aws:s3:::b/p/x/y.parquet')).toBe(true);
    expect(wildcardMatch('arn:aws:s3:::b/p/*', 'arn:aws:s3:::b/P/x')).toBe(false);
    expect(wildcardMatch('arn:aws:s3:::b/p?', 'arn:aws:s3:::b/p1')).toBe(true);
    expect(wildcardMatch('a.b', 'axb')).toBe(false);
  });

  it('evaluates conditions; a key the request lacks fails the condition', () => {
    const policy = parsePolicy(
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'List',
            Effect: 'Allow',
            Action: 's3:ListBucket',
            Resource: 'arn:aws:s3:::b',
            Condition: { StringLike: { 's3:prefix': 'p/t/*' } },
          },
        ],
      }),
    );
    const list = (context: Record<string, string>) =>
      grantsFor(policy, { action: 's3:ListBucket', resource: 'arn:aws:s3:::b', context });
    expect(list({ 's3:prefix': 'p/t/data/' })).toHaveLength(1);
    expect(list({ 's3:prefix': 'p/other/' })).toHaveLength(0);
    expect(list({})).toHaveLength(0);
  });

  it('refuses policies it cannot evaluate exactly', () => {
    const doc = (statement: object) => JSON.stringify({ Version: '2012-10-17', Statement: [statement] });
    expect(() => parsePolicy(doc({ Effect: 'Deny', Action: 's3:*', Resource: '*' }))).toThrow(/only Allow/);
    expect(() => parsePolicy(doc({ Effect: 'Allow', NotAction: 's3:*', Resource: '*' }))).toThrow(
      /NotAction/,
    );
    expect(() =>
      parsePolicy(
        doc({
          Effect: 'Allow',
          Action: 's3:ListBucket',
          Resource: '*',
          Condition: { IpAddress: { a: 'b' } },
        }),
      ),
    ).toThrow(/IpAddress/);
  });

  it('fails a DeleteObjects when the policy lacks s3:DeleteObject, per key', () => {
    const call: RecordedCall = {
      service: 's3',
      operation: 'DeleteObjects',
      origin: 'src',
      bucket: BUCKET,
      keys: [
        `${PREFIX}/${TABLE}/data/dt=2026-01-01/window=20260101T000000Z/s1-a.parquet`,
        `${PREFIX}/_probe/x`,
      ],
    };
    expect(checkCalls(render(), [call], CTX).violations).toEqual([]);
    const withoutDelete = parsePolicy(
      JSON.stringify({
        Version: '2012-10-17',
        Statement: render()
          .statements.filter((s) => !s.Action.includes('s3:DeleteObject'))
          .map((s) => ({ Sid: s.Sid, Effect: 'Allow', Action: s.Action, Resource: s.Resource })),
      }),
    );
    const { violations } = checkCalls(withoutDelete, [call], CTX);
    expect(violations).toHaveLength(2);
    expect(violations[0]).toMatch(
      /DeleteObjects .* needs s3:DeleteObject on arn:aws:s3:::changelog-bucket\/changelog\//,
    );
  });

  it('needs one item action per transaction element, on that element’s table', () => {
    const transact = (type: 'Put' | 'Update' | 'Delete' | 'ConditionCheck', tableName = LEASE_TABLE) =>
      ({
        service: 'dynamodb',
        operation: 'TransactWriteItems',
        origin: 'src',
        transactItems: [{ type, tableName }],
      }) satisfies RecordedCall;
    const policy = render();
    expect(
      checkCalls(policy, [transact('Put'), transact('Update'), transact('ConditionCheck')], CTX).violations,
    ).toEqual([]);
    expect(checkCalls(policy, [transact('Delete')], CTX).violations[0]).toMatch(/needs dynamodb:DeleteItem/);
    expect(checkCalls(policy, [transact('Put', TABLE)], CTX).violations[0]).toMatch(
      /needs dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table\/orders,/,
    );
  });

  it('fails an operation missing from the mapping, saying where to add it', () => {
    const call: RecordedCall = { service: 's3', operation: 'PutBucketPolicy', origin: 'src', bucket: BUCKET };
    expect(checkCalls(render(), [call], CTX).violations[0]).toMatch(
      /s3:PutBucketPolicy is not in OPERATIONS/,
    );
    expect(checkActions(render(), [call], CTX).violations[0]).toMatch(/not in OPERATIONS/);
  });

  it('attributes calls to src/ by the first stack frame outside node_modules', () => {
    const frame = (file: string) => `    at fn (${path.join(REPO_ROOT, file)}:10:5)`;
    const stack = (...files: string[]) => ['Error', ...files.map(frame)].join('\n');
    expect(
      classifyStack(stack('node_modules/@smithy/core/x.js', 'src/coordination/s3ObjectStore.ts')),
    ).toEqual({
      kind: 'src',
      caller: 'src/coordination/s3ObjectStore.ts:10',
    });
    expect(classifyStack(stack('test/helpers/dynamoDbLocal.ts', 'src/x.ts'))).toEqual({ kind: 'other' });
    expect(
      classifyStack(`Error\n    at async Upload.done (${path.join(REPO_ROOT, 'src/a.ts')}:1:1)`),
    ).toMatchObject({
      kind: 'src',
    });
  });
});

describe('infra/iam/policy.json.tftpl', () => {
  it('uses exactly the variables infra/terraform/iam.tf passes to it', () => {
    const iamTf = readFileSync(path.join(REPO_ROOT, 'infra', 'terraform', 'iam.tf'), 'utf8');
    const call = /templatefile\("[^"]*policy\.json\.tftpl",\s*\{([\s\S]*?)\}\)/.exec(iamTf);
    expect(call, 'iam.tf renders the template with templatefile()').not.toBeNull();
    const passed = [...call![1]!.matchAll(/^\s*(\w+)\s*=/gm)].map((m) => m[1]).sort();
    expect(passed).toEqual([...templateVariables(template)].sort());
    expect(Object.keys(VARS).sort()).toEqual(passed);
  });

  it('has no wildcard actions, and Resource "*" only for actions without a resource type', () => {
    const policy = render();
    const sids = policy.statements.map((s) => s.Sid);
    expect(sids.every((sid) => /^[A-Za-z0-9]+$/.test(sid))).toBe(true);
    expect(new Set(sids).size).toBe(sids.length);
    for (const s of policy.statements) {
      for (const action of s.Action) expect(action, `${s.Sid} action`).not.toMatch(/[*?]/);
      if (s.Resource.includes('*')) {
        expect(s.Resource, `${s.Sid}: "*" must stand alone`).toEqual(['*']);
        for (const action of s.Action)
          expect(RESOURCE_STAR_ONLY.has(action), `${s.Sid}: ${action} on "*"`).toBe(true);
      }
      for (const r of s.Resource.filter((x) => x !== '*')) {
        expect(r, `${s.Sid} resource`).toMatch(/^arn:aws:(dynamodb|s3|kms):/);
      }
    }
  });

  it('covers every AWS operation in src/ (static scan), each mapped to its IAM actions', () => {
    const policy = render();
    const problems: string[] = [];
    for (const c of scanSource()) {
      const spec = OPERATIONS[operationKey(c.service, c.operation)];
      if (spec === undefined) {
        problems.push(
          `${c.service}:${c.operation} at ${c.at} is not in OPERATIONS (test/helpers/iamPolicy.ts)`,
        );
        continue;
      }
      for (const action of spec.actions) {
        if (!policy.statements.some((s) => s.Action.some((a) => wildcardMatch(a, action, true)))) {
          problems.push(`${c.operation} at ${c.at} needs ${action}, which the policy does not allow`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('drops the optional statements when their variables are off, and renders valid JSON without a prefix', () => {
    const minimal = render({ allow_create_lease_table: false, kms_key_arn: '', object_prefix: '' });
    const sids = minimal.statements.map((s) => s.Sid);
    expect(sids).not.toContain('CreateLeaseTable');
    expect(sids).not.toContain('EncryptWithKmsKey');
    const list = minimal.statements.find((s) => s.Sid === 'ListChangelog')!;
    expect(list.Condition['StringLike']!['s3:prefix']).toEqual([`${TABLE}/*`]);
  });

  // Skipped where no `terraform` binary is on PATH: Terraform is not an npm package and .ci/run
  // does not install it (the project must pass without it). Where it exists, as on this
  // workplace's machines, the test's renderer must match Terraform's own templatefile(); the
  // tests above check the rendered policy itself either way.
  const terraform = spawnSync('terraform', ['version'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!terraform)('renders here exactly as Terraform’s templatefile() renders it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tftpl-'));
    try {
      for (const vars of [
        VARS,
        { ...VARS, allow_create_lease_table: false, kms_key_arn: '', object_prefix: '' },
      ]) {
        writeFileSync(path.join(dir, 'vars.json'), JSON.stringify(vars));
        const out = execFileSync('terraform', ['console'], {
          cwd: dir,
          input: `templatefile(${JSON.stringify(TEMPLATE_FILE)}, jsondecode(file("vars.json")))\n`,
          encoding: 'utf8',
          stdio: ['pipe', 'pipe', 'ignore'],
        });
        // A multi-line string comes back as a heredoc: <<EOT ... EOT
        const heredoc = /^<<EOT\n([\s\S]*)\nEOT\s*$/.exec(out.trim());
        expect(heredoc, out).not.toBeNull();
        expect(JSON.parse(heredoc![1]!)).toEqual(JSON.parse(renderTemplate(template, vars)));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the daemon’s AWS calls against the policy', () => {
  const calls: RecordedCall[] = [];
  /** Calls the recorder attributed to test code rather than src/, or to src/ outside the policy. */
  const testCalls: RecordedCall[] = [];
  let local: DynamoDbLocal;
  let s3: S3rverServer;

  beforeAll(async () => {
    const stop = onAwsCall((c) => (c.origin === 'other' || outsideThePolicy(c) ? testCalls : calls).push(c), {
      includeOther: true,
    });
    try {
      [local, s3] = await Promise.all([startDynamoDbLocal(), startS3rver(BUCKET)]);
      await runScenario(local, s3, calls);
    } finally {
      stop();
    }
  }, 150_000);

  afterAll(async () => {
    await Promise.all([local?.stop(), s3?.stop()]);
  });

  it('attributes to src/ every call the daemon code made, and only those', () => {
    // The test itself only waits for DynamoDB Local, creates the source table, writes its items and
    // plants one orphan.
    const made = new Set(testCalls.map((c) => `${c.operation} ${c.tableName ?? c.key ?? ''}`.trim()));
    expect([...made].sort()).toEqual([
      'CreateTable orders',
      'DescribeTable orders',
      'ListTables',
      'PutItem orders',
      `PutObject ${PREFIX}/${segmentObjectKey(TABLE, scenarioPastWindow, 's1-orphan')}`,
      'UpdateItem orders',
    ]);
    // lib-storage's calls (after its own awaits) and the raw GetRecords path count as src/.
    expect(calls.filter((c) => c.operation === 'UploadPart').length).toBeGreaterThanOrEqual(2);
    expect(calls.some((c) => c.operation === 'GetRecords' && c.raw)).toBe(true);
    expect(calls.every((c) => c.caller?.startsWith('src/'))).toBe(true);
  });

  it('allows every call of the scenario on its exact resource', () => {
    const operations = [...new Set(calls.map((c) => operationKey(c.service, c.operation)))].sort();
    console.log(`IAM policy test: ${calls.length} calls observed: ${operations.join(', ')}`);
    expect(checkCalls(render(), calls, CTX).violations).toEqual([]);
  });

  it('allows nothing the code does not need: every action and resource of every statement is used', () => {
    const policy = render();
    const grants: Grant[] = [...checkCalls(policy, calls, CTX).grants, ...otherRunGrants().grants];
    const scanned = new Set(scanSource().map((c) => operationKey(c.service, c.operation)));
    const unused: string[] = [];
    for (const s of policy.statements) {
      const excused = (action?: string) =>
        NOT_EXERCISED_HERE.some(
          (e) => e.sid === s.Sid && (action === undefined || e.action === action) && scanned.has(e.operation),
        );
      for (const action of s.Action) {
        if (!grants.some((g) => g.sid === s.Sid && g.action === action) && !excused(action)) {
          unused.push(`${s.Sid}: ${action} is allowed but no call needed it`);
        }
      }
      for (const resource of s.Resource) {
        if (!grants.some((g) => g.sid === s.Sid && g.resourcePattern === resource) && !excused()) {
          unused.push(`${s.Sid}: resource ${resource} is allowed but no call touched it`);
        }
      }
    }
    for (const e of NOT_EXERCISED_HERE) {
      if (!scanned.has(e.operation))
        unused.push(`${e.sid}: ${e.action} is excused, but src/ no longer calls it`);
    }
    expect(unused).toEqual([]);
  });

  it('refuses the scenario’s calls when a statement or an optional part is missing', () => {
    const violations = (policy: Policy) => checkCalls(policy, calls, CTX).violations.join('\n');
    expect(violations(render({ allow_create_lease_table: false }))).toMatch(
      /CreateTable .* needs dynamodb:CreateTable on arn:aws:dynamodb:us-east-1:123456789012:table\/orders-changelog-leases/,
    );
    const noKms = violations(render({ kms_key_arn: '' }));
    expect(noKms).toMatch(/needs kms:GenerateDataKey on arn:aws:kms:/);
    expect(noKms).toMatch(/GetObject .* needs kms:Decrypt/);
    expect(violations(render({ object_prefix: 'elsewhere/' }))).toMatch(
      /ListObjectsV2 .* needs s3:ListBucket on arn:aws:s3:::changelog-bucket with \{"s3:prefix":"changelog\/orders\/data\//,
    );
    expect(violations(render({ table_name: 'other' }))).toMatch(
      /GetRecords \(raw\) .* needs dynamodb:GetRecords/,
    );
  });

  it('allows every call the other tests of this run recorded (CLI workers on their exact resources)', () => {
    const { violations, checkedFiles } = otherRunGrants();
    console.log(`IAM policy test: checked ${checkedFiles} recording file(s) of this run`);
    expect(violations).toEqual([]);
  });
});

/** Recordings of the whole run (other test files, CLI processes), checked against the policy. */
function otherRunGrants(): { grants: Grant[]; violations: string[]; checkedFiles: number } {
  const dir = process.env[AWS_CALLS_DIR_ENV];
  if (dir === undefined) return { grants: [], violations: [], checkedFiles: 0 };
  pruneRecordedRuns(path.dirname(dir), 24 * 3_600_000);
  const grants: Grant[] = [];
  const violations: string[] = [];
  const files = readRecordedRun(dir);
  for (const { file, lines } of files) {
    const header = lines.find((l) => l.type === 'process');
    if (header && OUTSIDE_THE_POLICY.some((o) => header.argv[0] === o.command)) continue;
    const fileCalls = lines.flatMap((l) =>
      l.type === 'call' && !EXCLUDED_DIRS.some((dir) => l.caller?.startsWith(dir)) ? [l as RecordedCall] : [],
    );
    const vars = header ? runProcessVars(header, CTX) : undefined;
    const name = path.basename(file);
    if (vars !== undefined) {
      // A `dynamodb-changelog run` process: its own table, lease table and destination.
      const policy = parsePolicy(renderTemplate(template, { ...VARS, ...vars }));
      const result = checkCalls(policy, fileCalls, CTX);
      violations.push(...result.violations.map((v) => `${name} (${header!.argv.join(' ')}): ${v}`));
      grants.push(...result.grants);
    } else {
      // Other tests' fixtures have their own names: check that the policy has the actions.
      violations.push(...checkActions(render(), fileCalls, CTX).violations.map((v) => `${name}: ${v}`));
    }
  }
  return { grants, violations: [...new Set(violations)], checkedFiles: files.length };
}

let scenarioPastWindow = 0;

/**
 * The daemon's code path, in process: lease table creation, stream resolution, a ChangelogWorker
 * (leases, raw GetRecords, commits, sealing, orphan collection) on the S3 object store, plus the
 * store's multipart, SSE-KMS and aborted-upload paths, which the worker's small segments do not
 * reach. Returns once a window with data is sealed and both planted orphans were deleted.
 */
async function runScenario(local: DynamoDbLocal, s3: S3rverServer, calls: RecordedCall[]): Promise<void> {
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const options = { region: CTX.region, endpoint: local.endpoint, credentials, maxAttempts: 1 };
  const dynamodb = new DynamoDBClient(options);
  const streams = new DynamoDBStreamsClient(options);
  const raw = new RawGetRecordsClient(streams);
  try {
    await createStreamTable(dynamodb, TABLE);
    // What `run --create-lease-table` does first (src/cli/runCommand.ts).
    await createLeaseTable(dynamodb, LEASE_TABLE);
    const streamArn = await resolveStreamArn(dynamodb, TABLE);

    const windowMs = 1000;
    const pastWindow = windowStartOf(Date.now() - 20_000, windowMs);
    scenarioPastWindow = pastWindow;
    const orphanKey = segmentObjectKey(TABLE, pastWindow, 's1-orphan');
    const multipartKey = segmentObjectKey(TABLE, pastWindow, 's1-multipart');
    // An orphan of a "failed commit", written by the test itself (not a recorded call).
    await s3.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/${orphanKey}`, Body: new Uint8Array(16) }),
    );

    // The store's other paths: SSE-KMS, a multipart upload, a read of a KMS object, an abort.
    const kmsStore = new S3ObjectStore({
      bucket: BUCKET,
      prefix: PREFIX,
      client: s3.client,
      sseKmsKeyId: KMS_KEY,
      multipartThresholdBytes: 5 * MIB,
      partSizeBytes: 5 * MIB,
    });
    const big = new Uint8Array(randomBytes(6 * MIB));
    await kmsStore.putIfAbsent(multipartKey, big);
    expect((await kmsStore.get(multipartKey))?.byteLength).toBe(big.byteLength);
    const abort = new AbortController();
    const abortedKey = segmentObjectKey(TABLE, pastWindow, 's1-aborted');
    const stopAborting = onAwsCall((c) => {
      if (c.operation === 'CreateMultipartUpload' && c.key?.endsWith(abortedKey))
        abort.abort(new Error('test abort'));
    });
    try {
      await expect(kmsStore.putIfAbsent(abortedKey, big, { signal: abort.signal })).rejects.toThrow();
    } finally {
      stopAborting();
    }
    // lib-storage sends AbortMultipartUpload once its part uploads have returned.
    await waitFor(() => calls.some((c) => c.operation === 'AbortMultipartUpload'), 20_000);

    const store = openObjectStore(`s3://${BUCKET}/${PREFIX}`, { s3: { client: s3.client } });
    const seals: WindowSealed[] = [];
    const worker = new ChangelogWorker({
      workerId: 'iam-policy-test',
      table: TABLE,
      streamArn,
      keySchema: parseKeySchema('pk:S,sk:N'),
      dynamodb,
      streams,
      raw,
      leaseTableName: LEASE_TABLE,
      store,
      config: pipelineConfig({
        window: { windowMs, allowedLatenessMs: 500 },
        buffer: { flushIntervalMs: 300 },
        lease: { failoverMs: 1500 },
        orphans: { orphanGraceMs: 0 },
      }),
      idleMinMs: 50,
      idleMaxMs: 200,
      observer: { windowSealed: (e) => seals.push(e) },
    });
    const controller = new AbortController();
    const running = worker.run(controller.signal);
    try {
      for (let i = 0; i < 20; i++) {
        const key = { pk: { S: `item-${i % 10}` }, sk: { N: '1' } };
        if (i < 10) {
          await dynamodb.send(new PutItemCommand({ TableName: TABLE, Item: { ...key, v: { N: '0' } } }));
        } else {
          await dynamodb.send(
            new UpdateItemCommand({
              TableName: TABLE,
              Key: key,
              UpdateExpression: 'SET v = v + :one',
              ExpressionAttributeValues: { ':one': { N: '1' } },
            }),
          );
        }
      }
      const deleted = (key: string) =>
        calls.some((c) => c.operation === 'DeleteObjects' && c.keys?.includes(`${PREFIX}/${key}`));
      await waitFor(
        () => seals.some((e) => e.records > 0) && deleted(orphanKey) && deleted(multipartKey),
        60_000,
      );
    } finally {
      controller.abort();
      await running;
    }
  } finally {
    raw.destroy();
    dynamodb.destroy();
    streams.destroy();
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
