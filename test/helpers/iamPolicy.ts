import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { AwsService, ProcessInfo, RecordedCall } from './awsCallRecorder.js';

/*
 * The IAM side of the policy test: renders infra/iam/policy.json.tftpl as Terraform's
 * templatefile() does, maps recorded AWS calls to the IAM actions and resources they need, and
 * evaluates an identity policy for them (Allow statements, Action/Resource wildcards, StringLike /
 * StringEquals conditions). Anything outside that subset is refused, not guessed.
 */

// --- the template -------------------------------------------------------------------------------

export type TemplateVars = Record<string, string | boolean>;

type Token =
  | { kind: 'text'; text: string }
  | { kind: 'interp' | 'directive'; body: string; stripBefore: boolean; stripAfter: boolean };

/**
 * Renders a Terraform string template: `${name}` interpolations and `%{ if … }` / `%{ else }` /
 * `%{ endif }` directives with `~` strip markers, `$${` / `%%{` escapes. Conditions: `name`,
 * `!name`, `name == "text"`, `name != "text"`. A variable missing from `vars` is an error, as in
 * templatefile().
 */
export function renderTemplate(template: string, vars: TemplateVars): string {
  const tokens = tokenize(template);
  // Strip markers remove the whitespace (newlines included) next to the marker.
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'text') continue;
    const before = tokens[i - 1];
    const after = tokens[i + 1];
    if (t.stripBefore && before?.kind === 'text') before.text = before.text.replace(/\s+$/, '');
    if (t.stripAfter && after?.kind === 'text') after.text = after.text.replace(/^\s+/, '');
  }
  const lookup = (name: string): string | boolean => {
    if (!Object.hasOwn(vars, name)) throw new Error(`template variable ${name} is not in the vars`);
    return vars[name]!;
  };
  let out = '';
  // One frame per open `if`: whether its branch is being emitted, and whether the enclosing one is.
  const stack: { active: boolean; parentActive: boolean; taken: boolean }[] = [];
  const active = () => stack.every((f) => f.active);
  for (const t of tokens) {
    if (t.kind === 'text') {
      if (active()) out += t.text;
    } else if (t.kind === 'interp') {
      if (!/^[A-Za-z_]\w*$/.test(t.body)) throw new Error(`unsupported interpolation \${${t.body}}`);
      if (active()) out += String(lookup(t.body));
    } else {
      const body = t.body;
      if (body.startsWith('if ')) {
        const parentActive = active();
        const value = parentActive ? evalCondition(body.slice(3).trim(), lookup) : false;
        stack.push({ active: value, parentActive, taken: value });
      } else if (body === 'else') {
        const frame = stack.at(-1);
        if (!frame) throw new Error('%{ else } without %{ if }');
        frame.active = !frame.taken;
        frame.taken = true;
      } else if (body === 'endif') {
        if (!stack.pop()) throw new Error('%{ endif } without %{ if }');
      } else {
        throw new Error(`unsupported template directive %{ ${body} }`);
      }
    }
  }
  if (stack.length > 0) throw new Error('%{ if } without %{ endif }');
  return out;
}

function evalCondition(condition: string, lookup: (name: string) => string | boolean): boolean {
  const compare = /^([A-Za-z_]\w*)\s*(==|!=)\s*"([^"\\]*)"$/.exec(condition);
  if (compare) {
    const value = lookup(compare[1]!);
    if (typeof value !== 'string') throw new Error(`${compare[1]} compared with a string but is a bool`);
    return (value === compare[3]) === (compare[2] === '==');
  }
  const bare = /^(!?)([A-Za-z_]\w*)$/.exec(condition);
  if (bare) {
    const value = lookup(bare[2]!);
    if (typeof value !== 'boolean') throw new Error(`%{ if ${condition} }: ${bare[2]} is not a bool`);
    return bare[1] === '!' ? !value : value;
  }
  throw new Error(`unsupported template condition: ${condition}`);
}

function tokenize(template: string): Token[] {
  const tokens: Token[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    const two = template.slice(i, i + 2);
    const three = template.slice(i, i + 3);
    if (three === '$${' || three === '%%{') {
      text += three.slice(1);
      i += 3;
      continue;
    }
    if (two === '${' || two === '%{') {
      const end = template.indexOf('}', i + 2);
      if (end < 0) throw new Error(`unterminated ${two} at offset ${i}`);
      let body = template.slice(i + 2, end);
      const stripBefore = body.startsWith('~');
      const stripAfter = body.endsWith('~');
      if (stripBefore) body = body.slice(1);
      if (stripAfter) body = body.slice(0, -1);
      tokens.push({ kind: 'text', text });
      text = '';
      tokens.push({
        kind: two === '${' ? 'interp' : 'directive',
        body: body.trim(),
        stripBefore,
        stripAfter,
      });
      i = end + 1;
      continue;
    }
    text += template[i];
    i++;
  }
  tokens.push({ kind: 'text', text });
  return tokens;
}

/** The variable names a template uses (interpolations and conditions). */
export function templateVariables(template: string): Set<string> {
  const names = new Set<string>();
  for (const t of tokenize(template)) {
    if (t.kind === 'text') continue;
    const body = t.kind === 'directive' && t.body.startsWith('if ') ? t.body.slice(3) : t.body;
    if (t.kind === 'directive' && !t.body.startsWith('if ')) continue;
    for (const m of body.replace(/"[^"]*"/g, '').matchAll(/[A-Za-z_]\w*/g)) names.add(m[0]);
  }
  return names;
}

// --- the policy ---------------------------------------------------------------------------------

export interface Statement {
  Sid: string;
  Action: string[];
  Resource: string[];
  /** operator -> condition key -> allowed values */
  Condition: Record<string, Record<string, string[]>>;
}

export interface Policy {
  statements: Statement[];
}

const CONDITION_OPERATORS = new Set(['StringLike', 'StringEquals']);

const asList = (value: unknown, what: string): string[] => {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string')) {
    throw new Error(`${what} must be a string or a non-empty list of strings`);
  }
  return list;
};

/** Parses an identity policy in the subset this checker can evaluate exactly; throws otherwise. */
export function parsePolicy(json: string): Policy {
  const doc = JSON.parse(json) as { Version?: unknown; Statement?: unknown };
  if (doc.Version !== '2012-10-17') throw new Error('policy Version must be 2012-10-17');
  const raw = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  const statements = raw.map((s: Record<string, unknown>, index): Statement => {
    const where = `statement ${typeof s['Sid'] === 'string' ? s['Sid'] : `#${index}`}`;
    for (const key of Object.keys(s)) {
      if (!['Sid', 'Effect', 'Action', 'Resource', 'Condition'].includes(key)) {
        throw new Error(`${where}: ${key} is not supported by this checker`);
      }
    }
    if (s['Effect'] !== 'Allow') throw new Error(`${where}: only Allow statements are supported`);
    const condition: Statement['Condition'] = {};
    for (const [operator, keys] of Object.entries((s['Condition'] ?? {}) as Record<string, unknown>)) {
      if (!CONDITION_OPERATORS.has(operator))
        throw new Error(`${where}: condition ${operator} is not supported`);
      condition[operator] = {};
      for (const [key, values] of Object.entries(keys as Record<string, unknown>)) {
        condition[operator][key] = asList(values, `${where} condition ${operator} ${key}`);
      }
    }
    return {
      Sid: typeof s['Sid'] === 'string' ? s['Sid'] : '',
      Action: asList(s['Action'], `${where} Action`),
      Resource: asList(s['Resource'], `${where} Resource`),
      Condition: condition,
    };
  });
  return { statements };
}

/** IAM wildcard match: `*` any run of characters, `?` one character. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(value);
}

/** What one call needs: an IAM action on a resource, with the request's condition keys. */
export interface Permission {
  action: string;
  /** `*` for actions that have no resource type (ListStreams). */
  resource: string;
  context?: Record<string, string>;
}

export interface Grant {
  sid: string;
  action: string;
  resourcePattern: string;
}

/** The statements that allow `permission`, and through which action and resource pattern. */
export function grantsFor(policy: Policy, permission: Permission): Grant[] {
  const grants: Grant[] = [];
  for (const s of policy.statements) {
    const action = s.Action.find((a) => wildcardMatch(a, permission.action, true));
    if (action === undefined) continue;
    const resourcePattern = s.Resource.find((r) => wildcardMatch(r, permission.resource));
    if (resourcePattern === undefined) continue;
    if (!conditionsHold(s.Condition, permission.context ?? {})) continue;
    grants.push({ sid: s.Sid, action: permission.action, resourcePattern });
  }
  return grants;
}

function conditionsHold(condition: Statement['Condition'], context: Record<string, string>): boolean {
  return Object.entries(condition).every(([operator, keys]) =>
    Object.entries(keys).every(([key, values]) => {
      const value = context[key];
      // A key absent from the request fails a condition (no ...IfExists operators here).
      if (value === undefined) return false;
      return values.some((v) => (operator === 'StringLike' ? wildcardMatch(v, value) : v === value));
    }),
  );
}

/** True when some statement allows `action` on some resource (the action-level check). */
export function policyAllowsAction(policy: Policy, action: string): boolean {
  return policy.statements.some((s) => s.Action.some((a) => wildcardMatch(a, action, true)));
}

// --- calls -> permissions -----------------------------------------------------------------------

export interface ArnContext {
  partition: string;
  region: string;
  account: string;
}

interface Arns {
  table(name: string): string;
  stream(streamArn: string): string;
  bucket(bucket: string): string;
  object(bucket: string, key: string): string;
  kmsKey(keyId: string): string;
}

function arnsFor(ctx: ArnContext): Arns {
  const { partition: p, region: r, account: a } = ctx;
  return {
    table: (name) => `arn:${p}:dynamodb:${r}:${a}:table/${name}`,
    // DynamoDB Local's ARNs carry region ddblocal and account 000000000000: keep the resource part.
    stream: (arn) => `arn:${p}:dynamodb:${r}:${a}:${arn.split(':').slice(5).join(':')}`,
    bucket: (bucket) => `arn:${p}:s3:::${bucket}`,
    object: (bucket, key) => `arn:${p}:s3:::${bucket}/${key}`,
    kmsKey: (id) =>
      id.startsWith('arn:') ? id : `arn:${p}:kms:${r}:${a}:${id.startsWith('alias/') ? id : `key/${id}`}`,
  };
}

/** What the whole run has seen, for permissions that depend on earlier calls. */
export interface RunFacts {
  /** `bucket/key` of objects written with SSE-KMS: reading them needs kms:Decrypt. */
  kmsObjects: Map<string, string>;
  /** Action-level check: a missing resource name is not an error (the resource is not checked). */
  lenient?: boolean;
}

export function runFacts(calls: readonly RecordedCall[]): RunFacts {
  const kmsObjects = new Map<string, string>();
  for (const c of calls) {
    if (c.service === 's3' && c.sseKmsKeyId && c.bucket && c.key) {
      if (c.operation === 'PutObject' || c.operation === 'CreateMultipartUpload') {
        kmsObjects.set(`${c.bucket}/${c.key}`, c.sseKmsKeyId);
      }
    }
  }
  return { kmsObjects };
}

interface OperationSpec {
  /** The IAM actions every call of the operation needs. */
  actions: string[];
  /** Actions some calls need (SSE-KMS, a transaction's element kinds). */
  conditionalActions?: string[];
  permissions(call: RecordedCall, arns: Arns, facts: RunFacts): Permission[];
}

const need = (what: string | undefined, name: string, facts: RunFacts): string => {
  if (what !== undefined && what !== '') return what;
  if (facts.lenient) return '?';
  throw new Error(`the recorded call has no ${name}`);
};

const onTable =
  (action: string): OperationSpec['permissions'] =>
  (call, arns, facts) => [{ action, resource: arns.table(need(call.tableName, 'TableName', facts)) }];
const onStream =
  (action: string): OperationSpec['permissions'] =>
  (call, arns, facts) => [{ action, resource: arns.stream(need(call.streamArn, 'stream ARN', facts)) }];
const onObject =
  (action: string): OperationSpec['permissions'] =>
  (call, arns, facts) => [
    { action, resource: arns.object(need(call.bucket, 'Bucket', facts), need(call.key, 'Key', facts)) },
  ];

const TRANSACT_ITEM_ACTIONS: Record<string, string> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
};

/**
 * API operation -> IAM permissions, per service (`service:Operation`). Sources: the Service
 * Authorization Reference for DynamoDB and S3, and the S3 API reference's permission notes
 * (HeadObject needs s3:GetObject; DeleteObjects needs s3:DeleteObject per key; the multipart
 * upload calls need s3:PutObject; SSE-KMS writes need kms:GenerateDataKey, multipart ones and
 * reads also kms:Decrypt). An operation missing here fails the test: add it.
 */
export const OPERATIONS: Record<string, OperationSpec> = {
  'dynamodb:DescribeTable': {
    actions: ['dynamodb:DescribeTable'],
    permissions: onTable('dynamodb:DescribeTable'),
  },
  'dynamodb:CreateTable': { actions: ['dynamodb:CreateTable'], permissions: onTable('dynamodb:CreateTable') },
  'dynamodb:GetItem': { actions: ['dynamodb:GetItem'], permissions: onTable('dynamodb:GetItem') },
  'dynamodb:PutItem': { actions: ['dynamodb:PutItem'], permissions: onTable('dynamodb:PutItem') },
  'dynamodb:UpdateItem': { actions: ['dynamodb:UpdateItem'], permissions: onTable('dynamodb:UpdateItem') },
  'dynamodb:DeleteItem': { actions: ['dynamodb:DeleteItem'], permissions: onTable('dynamodb:DeleteItem') },
  'dynamodb:Query': { actions: ['dynamodb:Query'], permissions: onTable('dynamodb:Query') },
  'dynamodb:Scan': { actions: ['dynamodb:Scan'], permissions: onTable('dynamodb:Scan') },
  'dynamodb:ExportTableToPointInTime': {
    actions: ['dynamodb:ExportTableToPointInTime'],
    permissions: onTable('dynamodb:ExportTableToPointInTime'),
  },
  // An export's ARN is the table's ARN + /export/<id>.
  'dynamodb:DescribeExport': {
    actions: ['dynamodb:DescribeExport'],
    permissions: (call, arns, facts) => [
      {
        action: 'dynamodb:DescribeExport',
        resource: `${arns.table(need(call.tableName, 'ExportArn', facts))}/export/*`,
      },
    ],
  },
  // TransactWriteItems has no IAM action of its own: each element needs its item action.
  'dynamodb:TransactWriteItems': {
    actions: [],
    conditionalActions: Object.values(TRANSACT_ITEM_ACTIONS),
    permissions: (call, arns, facts) =>
      (call.transactItems ?? []).map((item) => {
        const action = TRANSACT_ITEM_ACTIONS[item.type];
        if (action === undefined) throw new Error(`TransactWriteItems element of unknown type ${item.type}`);
        return {
          action,
          resource: arns.table(need(item.tableName, 'TableName of a transaction element', facts)),
        };
      }),
  },
  'dynamodbstreams:DescribeStream': {
    actions: ['dynamodb:DescribeStream'],
    permissions: onStream('dynamodb:DescribeStream'),
  },
  'dynamodbstreams:GetShardIterator': {
    actions: ['dynamodb:GetShardIterator'],
    permissions: onStream('dynamodb:GetShardIterator'),
  },
  'dynamodbstreams:GetRecords': {
    actions: ['dynamodb:GetRecords'],
    permissions: onStream('dynamodb:GetRecords'),
  },
  // ListStreams has no resource type: it can only be granted on "*".
  'dynamodbstreams:ListStreams': {
    actions: ['dynamodb:ListStreams'],
    permissions: () => [{ action: 'dynamodb:ListStreams', resource: '*' }],
  },
  's3:PutObject': {
    actions: ['s3:PutObject'],
    conditionalActions: ['kms:GenerateDataKey'],
    permissions: (call, arns, facts) => [
      ...onObject('s3:PutObject')(call, arns, facts),
      ...(call.sseKmsKeyId
        ? [{ action: 'kms:GenerateDataKey', resource: arns.kmsKey(call.sseKmsKeyId) }]
        : []),
    ],
  },
  's3:GetObject': {
    actions: ['s3:GetObject'],
    conditionalActions: ['kms:Decrypt'],
    permissions: (call, arns, facts) => {
      const kms = facts.kmsObjects.get(`${call.bucket}/${call.key}`);
      return [
        ...onObject('s3:GetObject')(call, arns, facts),
        ...(kms ? [{ action: 'kms:Decrypt', resource: arns.kmsKey(kms) }] : []),
      ];
    },
  },
  's3:HeadObject': { actions: ['s3:GetObject'], permissions: onObject('s3:GetObject') },
  's3:ListObjectsV2': {
    actions: ['s3:ListBucket'],
    permissions: (call, arns, facts) => [
      {
        action: 's3:ListBucket',
        resource: arns.bucket(need(call.bucket, 'Bucket', facts)),
        context: call.prefix === undefined ? {} : ({ 's3:prefix': call.prefix } as Record<string, string>),
      },
    ],
  },
  's3:DeleteObject': { actions: ['s3:DeleteObject'], permissions: onObject('s3:DeleteObject') },
  's3:DeleteObjects': {
    actions: ['s3:DeleteObject'],
    permissions: (call, arns, facts) =>
      (call.keys ?? []).map((key) => ({
        action: 's3:DeleteObject',
        resource: arns.object(need(call.bucket, 'Bucket', facts), key),
      })),
  },
  's3:CreateMultipartUpload': {
    actions: ['s3:PutObject'],
    conditionalActions: ['kms:GenerateDataKey', 'kms:Decrypt'],
    permissions: (call, arns, facts) => [
      ...onObject('s3:PutObject')(call, arns, facts),
      ...(call.sseKmsKeyId
        ? [
            { action: 'kms:GenerateDataKey', resource: arns.kmsKey(call.sseKmsKeyId) },
            { action: 'kms:Decrypt', resource: arns.kmsKey(call.sseKmsKeyId) },
          ]
        : []),
    ],
  },
  's3:UploadPart': { actions: ['s3:PutObject'], permissions: onObject('s3:PutObject') },
  's3:CompleteMultipartUpload': { actions: ['s3:PutObject'], permissions: onObject('s3:PutObject') },
  's3:AbortMultipartUpload': {
    actions: ['s3:AbortMultipartUpload'],
    permissions: onObject('s3:AbortMultipartUpload'),
  },
};

export function operationKey(service: AwsService | string, operation: string): string {
  return `${service}:${operation}`;
}

/** The permissions a recorded call needs; throws for an operation missing from OPERATIONS. */
export function permissionsOf(call: RecordedCall, ctx: ArnContext, facts: RunFacts): Permission[] {
  const spec = OPERATIONS[operationKey(call.service, call.operation)];
  if (spec === undefined) {
    throw new Error(
      `${operationKey(call.service, call.operation)} is not in OPERATIONS (test/helpers/iamPolicy.ts): ` +
        'add the IAM action(s) it needs there, and to infra/iam/policy.json.tftpl if the daemon calls it',
    );
  }
  return spec.permissions(call, arnsFor(ctx), facts);
}

export function describeCall(call: RecordedCall): string {
  const what =
    call.tableName ??
    call.streamArn ??
    (call.bucket ? `s3://${call.bucket}/${call.key ?? call.prefix ?? ''}` : '');
  const where = call.caller ? ` from ${call.caller}` : call.origin === 'cli' ? ' from the CLI' : '';
  return `${call.operation}${call.raw ? ' (raw)' : ''} ${what}${where}`.trim();
}

export interface CheckResult {
  violations: string[];
  grants: Grant[];
}

/**
 * The exact check: every permission of every call must be allowed on its resource, with its
 * condition keys. Returns what failed and which statement/action/resource granted the rest.
 */
export function checkCalls(policy: Policy, calls: readonly RecordedCall[], ctx: ArnContext): CheckResult {
  const facts = runFacts(calls);
  const violations = new Set<string>();
  const grants: Grant[] = [];
  for (const call of calls) {
    let permissions: Permission[];
    try {
      permissions = permissionsOf(call, ctx, facts);
    } catch (error) {
      violations.add(`${describeCall(call)}: ${(error as Error).message}`);
      continue;
    }
    for (const permission of permissions) {
      const granted = grantsFor(policy, permission);
      if (granted.length === 0) {
        const context =
          permission.context && Object.keys(permission.context).length > 0
            ? ` with ${JSON.stringify(permission.context)}`
            : '';
        violations.add(
          `${describeCall(call)} needs ${permission.action} on ${permission.resource}${context}, which the policy does not allow`,
        );
      }
      grants.push(...granted);
    }
  }
  return { violations: [...violations], grants };
}

/** The action-level check, for calls whose resources belong to another test's set-up. */
export function checkActions(policy: Policy, calls: readonly RecordedCall[], ctx: ArnContext): CheckResult {
  const facts = { ...runFacts(calls), lenient: true };
  const violations = new Set<string>();
  for (const call of calls) {
    try {
      for (const p of permissionsOf(call, ctx, facts)) {
        if (!policyAllowsAction(policy, p.action)) {
          violations.add(`${describeCall(call)} needs ${p.action}, which no statement of the policy allows`);
        }
      }
    } catch (error) {
      violations.add(`${describeCall(call)}: ${(error as Error).message}`);
    }
  }
  return { violations: [...violations], grants: [] };
}

// --- CLI processes ------------------------------------------------------------------------------

/** The policy template's variables for a `run` process, from its flags and CHANGELOG_* settings. */
export function runProcessVars(
  info: ProcessInfo,
  ctx: ArnContext,
): Omit<TemplateVars, 'partition' | 'region' | 'account_id'> | undefined {
  if (info.argv[0] !== 'run') return undefined;
  const flag = (name: string, env: string): string | undefined => {
    const i = info.argv.indexOf(name);
    if (i >= 0) return info.argv[i + 1];
    const eq = info.argv.find((a) => a.startsWith(`${name}=`));
    return eq ? eq.slice(name.length + 1) : info.env[env];
  };
  const has = (name: string, env: string) =>
    info.argv.includes(name) || ['1', 'true', 'yes'].includes((info.env[env] ?? '').toLowerCase());
  const streamArn = flag('--stream-arn', 'CHANGELOG_STREAM_ARN');
  const table = flag('--table', 'CHANGELOG_TABLE') ?? streamArn?.split(':')[5]?.split('/')[1];
  const destination = flag('--destination', 'CHANGELOG_DESTINATION');
  const lease = flag('--lease-table', 'CHANGELOG_LEASE_TABLE');
  const kms = flag('--sse-kms-key-id', 'CHANGELOG_SSE_KMS_KEY_ID');
  if (table === undefined || destination === undefined || lease === undefined) return undefined;
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(destination);
  const prefix = (s3?.[2] ?? '').replace(/\/+$/, '');
  return {
    table_name: table,
    lease_table_name: lease,
    bucket_name: s3?.[1] ?? 'no-s3-destination',
    object_prefix: prefix === '' ? '' : `${prefix}/`,
    kms_key_arn: kms ? arnsFor(ctx).kmsKey(kms) : '',
    allow_create_lease_table: has('--create-lease-table', 'CHANGELOG_CREATE_LEASE_TABLE'),
  };
}

// --- the code, statically -----------------------------------------------------------------------

export interface CodeCall {
  service: AwsService | 'unknown';
  operation: string;
  /** `src/...:line` */
  at: string;
}

const CLIENT_PACKAGES: Record<string, AwsService> = {
  '@aws-sdk/client-dynamodb': 'dynamodb',
  '@aws-sdk/client-dynamodb-streams': 'dynamodbstreams',
  '@aws-sdk/client-s3': 's3',
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/**
 * Every AWS operation src/ can call, from its text: SDK commands constructed with `new XCommand(`
 * (the service from the file's import of X), RawGetRecordsClient's own GetRecords request, and
 * lib-storage's Upload (its multipart calls; AbortMultipartUpload when it cleans up after a
 * failure, i.e. leavePartsOnError is false).
 */
export function scanSourceForAwsCalls(repoRoot: string, excludeDirs: readonly string[] = []): CodeCall[] {
  const calls: CodeCall[] = [];
  for (const file of sourceFiles(path.join(repoRoot, 'src'))) {
    const rel = path.relative(repoRoot, file).split(path.sep).join('/');
    if (excludeDirs.some((dir) => rel.startsWith(dir))) continue;
    const text = readFileSync(file, 'utf8');
    const lineOf = (index: number) => text.slice(0, index).split('\n').length;
    const imported = new Map<string, AwsService>();
    for (const m of text.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
      const service = CLIENT_PACKAGES[m[2]!];
      if (service === undefined) continue;
      for (const name of m[1]!.split(',')) {
        const local = name
          .trim()
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)
          .pop()!;
        if (local) imported.set(local, service);
      }
    }
    for (const m of text.matchAll(/new\s+(\w+)Command\s*\(/g)) {
      calls.push({
        service: imported.get(`${m[1]}Command`) ?? 'unknown',
        operation: m[1]!,
        at: `${rel}:${lineOf(m.index)}`,
      });
    }
    const raw = text.indexOf("'DynamoDBStreams_20120810.GetRecords'");
    if (raw >= 0)
      calls.push({ service: 'dynamodbstreams', operation: 'GetRecords', at: `${rel}:${lineOf(raw)}` });
    const upload = /new\s+Upload\s*\(/.exec(text);
    if (upload && /from\s*'@aws-sdk\/lib-storage'/.test(text)) {
      const at = `${rel}:${lineOf(upload.index)}`;
      for (const operation of [
        'PutObject',
        'CreateMultipartUpload',
        'UploadPart',
        'CompleteMultipartUpload',
      ]) {
        calls.push({ service: 's3', operation, at });
      }
      if (/leavePartsOnError:\s*false/.test(text))
        calls.push({ service: 's3', operation: 'AbortMultipartUpload', at });
    }
  }
  return calls;
}
