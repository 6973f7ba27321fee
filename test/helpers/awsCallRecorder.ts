import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { RawGetRecordsClient } from '../../src/coordination/getRecordsClient.js';

/*
 * Records the AWS API calls the code under src/ makes, for the IAM policy test
 * (test/integration/infra/iamPolicy.test.ts, checked against infra/iam/policy.json.tftpl).
 *
 * - Every SDK call goes through `send` of a client class; the three clients src/ uses get their own
 *   `send` that records, then calls the inherited one. lib-storage's Upload calls `send` of the
 *   client it was given, so multipart uploads are seen too.
 * - RawGetRecordsClient sends GetRecords over its own signed HTTP request, bypassing `send`; its
 *   `getRecords` is wrapped the same way.
 * - Only calls made by src/ are recorded, not the test code that creates source tables or writes
 *   items: the first stack frame outside node_modules (async frames included) must be in src/.
 *   Calls lib-storage makes after its own awaits have no such frame on the stack, so the origin of
 *   `Upload.done()` is kept in an AsyncLocalStorage for every call made under it. In a CLI child
 *   process (test/helpers/cliEntry.ts) everything is the CLI's own code: `origin: 'cli'`.
 * - Only names are recorded (operation, table, stream, bucket, key, prefix, KMS key id), never
 *   item contents or bodies. Identical records are written once per process.
 *
 * Each process appends JSON lines to `<dir>/<pid>.jsonl`; the directory is one test run's
 * (vitest.config.ts sets DYNAMODB_CHANGELOG_AWS_CALLS_DIR for the workers and their children).
 */

export const AWS_CALLS_DIR_ENV = 'DYNAMODB_CHANGELOG_AWS_CALLS_DIR';

export type AwsService = 'dynamodb' | 'dynamodbstreams' | 's3';
/** `other`: made by test code; only passed to listeners that ask for it, never written. */
export type CallOrigin = 'src' | 'cli' | 'other';

export interface TransactItemRef {
  /** The element's kind; `Unknown` for one this recorder does not know (the policy check fails it). */
  type: 'Put' | 'Update' | 'Delete' | 'ConditionCheck' | 'Unknown';
  tableName: string;
}

/** One AWS API call, by name and resource only. */
export interface RecordedCall {
  service: AwsService;
  /** The API operation, e.g. `PutObject` (the command class name without `Command`). */
  operation: string;
  origin: CallOrigin;
  /** The first src/ stack frame, e.g. `src/coordination/s3ObjectStore.ts:365`; absent for cli calls. */
  caller?: string;
  /** GetRecords sent by RawGetRecordsClient rather than the SDK. */
  raw?: boolean;
  tableName?: string;
  streamArn?: string;
  bucket?: string;
  key?: string;
  /** DeleteObjects: every key. */
  keys?: string[];
  /** ListObjectsV2: the Prefix (absent when listing the whole bucket). */
  prefix?: string;
  sseKmsKeyId?: string;
  transactItems?: TransactItemRef[];
}

/** The header line of a CLI child process: how it was started (flags and CHANGELOG_* settings). */
export interface ProcessInfo {
  argv: string[];
  env: Record<string, string>;
}

export type RecordLine = ({ type: 'call' } & RecordedCall) | ({ type: 'process' } & ProcessInfo);

export interface RecorderOptions {
  /** Directory of the run's JSON-lines files; without it, calls are only passed to listeners. */
  dir?: string | undefined;
  /** `cli`: a CLI child process, where every call is the code's own. Default: by stack. */
  origin?: 'stack' | 'cli';
  /** Written once as the file's first line (CLI processes). */
  processInfo?: ProcessInfo;
}

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC_DIR = path.join(REPO_ROOT, 'src') + path.sep;
const THIS_FILE = fileURLToPath(import.meta.url);

interface RecorderState {
  options: RecorderOptions;
  written: Set<string>;
  listeners: Map<(call: RecordedCall) => void, { includeOther: boolean }>;
  /** The origin of the library call (lib-storage's Upload.done) that the current code runs under. */
  libraryOrigin: AsyncLocalStorage<{ caller: string | undefined } | null>;
  headerWritten: boolean;
}

// One state per process, shared by every evaluation of this module (vitest re-evaluates inlined
// modules per test file, while the SDK classes it patches are loaded once per process).
const STATE_KEY = Symbol.for('dynamodb-changelog.awsCallRecorder');
const PATCHED = Symbol.for('dynamodb-changelog.awsCallRecorder.patched');

function state(): RecorderState | undefined {
  return (globalThis as Record<symbol, RecorderState | undefined>)[STATE_KEY];
}

/** Starts recording in this process (idempotent; a second call replaces the options). */
export function installAwsCallRecorder(options: RecorderOptions): void {
  const g = globalThis as Record<symbol, RecorderState | undefined>;
  const existing = g[STATE_KEY];
  if (existing) {
    existing.options = options;
  } else {
    g[STATE_KEY] = {
      options,
      written: new Set(),
      listeners: new Map(),
      libraryOrigin: new AsyncLocalStorage(),
      headerWritten: false,
    };
  }
  patchClient(DynamoDBClient.prototype, 'dynamodb');
  patchClient(DynamoDBStreamsClient.prototype, 'dynamodbstreams');
  patchClient(S3Client.prototype, 's3');
  patchUpload(Upload.prototype);
  patchRawGetRecords(RawGetRecordsClient.prototype);
}

/**
 * Calls `listener` with every call recorded in this process from now on (with `includeOther`,
 * also the calls test code makes, as origin `other`); returns the unsubscribe.
 */
export function onAwsCall(
  listener: (call: RecordedCall) => void,
  options: { includeOther?: boolean } = {},
): () => void {
  const s = state();
  if (!s) throw new Error('installAwsCallRecorder() was not called in this process');
  s.listeners.set(listener, { includeOther: options.includeOther ?? false });
  return () => s.listeners.delete(listener);
}

/** The JSON-lines files of a run directory: one per process, its lines parsed. */
export function readRecordedRun(dir: string): { file: string; lines: RecordLine[] }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
  } catch {
    return [];
  }
  return names.sort().map((name) => {
    const file = path.join(dir, name);
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as RecordLine];
        } catch {
          return []; // a line cut short by a killed process
        }
      });
    return { file, lines };
  });
}

/** Deletes run directories under `parent` older than `maxAgeMs` (other runs may be in progress). */
export function pruneRecordedRuns(parent: string, maxAgeMs: number): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  const cutoff = Date.now() - maxAgeMs;
  for (const name of names) {
    const dir = path.join(parent, name);
    try {
      if (statSync(dir).mtimeMs < cutoff) rmSync(dir, { recursive: true, force: true });
    } catch {
      // Gone already, or another run's: never worth failing a test over.
    }
  }
}

// --- recording -----------------------------------------------------------------------------------

function emit(call: Omit<RecordedCall, 'origin' | 'caller'>, stackOrigin: () => OriginResult): void {
  const s = state();
  if (!s) return;
  let full: RecordedCall;
  if (s.options.origin === 'cli') {
    full = { ...call, origin: 'cli' };
  } else {
    const origin = stackOrigin();
    if (origin.kind !== 'src') {
      for (const [listener, o] of s.listeners) if (o.includeOther) listener({ ...call, origin: 'other' });
      return;
    }
    full = { ...call, origin: 'src', ...(origin.caller ? { caller: origin.caller } : {}) };
  }
  for (const listener of s.listeners.keys()) listener(full);
  if (s.options.dir === undefined) return;
  const line = JSON.stringify({ type: 'call', ...full });
  if (s.written.has(line)) return;
  s.written.add(line);
  try {
    mkdirSync(s.options.dir, { recursive: true });
    const file = path.join(s.options.dir, `${process.pid}.jsonl`);
    if (!s.headerWritten && s.options.processInfo) {
      appendFileSync(file, `${JSON.stringify({ type: 'process', ...s.options.processInfo })}\n`);
    }
    s.headerWritten = true;
    appendFileSync(file, `${line}\n`);
  } catch {
    // Recording must never break the code under test; a missing line shows up as a test failure.
  }
}

type OriginResult = { kind: 'src'; caller: string | undefined } | { kind: 'other' };

/**
 * Who made the call: the first stack frame that is not in node_modules, node internals or this
 * file. Under a library call (Upload.done) the library call's origin counts.
 */
function originFromStack(): OriginResult {
  const s = state();
  const library = s?.libraryOrigin.getStore();
  if (library) return { kind: 'src', caller: library.caller };
  return classifyStack(captureStack());
}

function captureStack(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 50;
  try {
    return new Error().stack ?? '';
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Exported for the test of the recorder itself. */
export function classifyStack(stack: string): OriginResult {
  for (const line of stack.split('\n')) {
    const file = frameFile(line);
    if (file === undefined) continue;
    if (file === THIS_FILE || file.includes(`${path.sep}node_modules${path.sep}`)) continue;
    if (file.startsWith(SRC_DIR)) {
      const location = /:(\d+):\d+\)?\s*$/.exec(line);
      const relative = path.relative(REPO_ROOT, file).split(path.sep).join('/');
      return { kind: 'src', caller: location ? `${relative}:${location[1]}` : relative };
    }
    return { kind: 'other' };
  }
  return { kind: 'other' };
}

function frameFile(line: string): string | undefined {
  const m = /^\s*at (?:.*?\()?(.+?):\d+:\d+\)?\s*$/.exec(line);
  if (!m) return undefined;
  let file = m[1]!;
  if (file.startsWith('async ')) file = file.slice(6);
  if (file.startsWith('file://')) {
    try {
      file = fileURLToPath(file);
    } catch {
      return undefined;
    }
  }
  if (!path.isAbsolute(file)) return undefined; // node:internal/..., <anonymous>, native
  return file;
}

// --- what a call is about -----------------------------------------------------------------------

type Input = Record<string, unknown>;

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The stream ARN an iterator belongs to: DynamoDB (and DynamoDB Local) iterators start with it. */
export function streamArnOfIterator(iterator: unknown): string | undefined {
  if (typeof iterator !== 'string') return undefined;
  const bar = iterator.indexOf('|');
  const head = bar < 0 ? iterator : iterator.slice(0, bar);
  return /^arn:[^:]+:dynamodb:[^:]*:[^:]*:table\/[^/]+\/stream\/.+$/.test(head) ? head : undefined;
}

function describeCall(service: AwsService, operation: string, input: Input): RecordedCall {
  const call: RecordedCall = { service, operation, origin: 'src' };
  const tableName = str(input['TableName']);
  if (tableName !== undefined) call.tableName = tableName;
  // ExportTableToPointInTime names its table by ARN, DescribeExport by the export's ARN (under it).
  const tableArn = /:table\/([^/]+)/.exec(str(input['TableArn']) ?? str(input['ExportArn']) ?? '');
  if (call.tableName === undefined && tableArn) call.tableName = tableArn[1]!;
  const streamArn = str(input['StreamArn']) ?? streamArnOfIterator(input['ShardIterator']);
  if (streamArn !== undefined) call.streamArn = streamArn;
  if (service === 's3') {
    const bucket = str(input['Bucket']);
    if (bucket !== undefined) call.bucket = bucket;
    const key = str(input['Key']);
    if (key !== undefined) call.key = key;
    const prefix = str(input['Prefix']);
    if (prefix !== undefined) call.prefix = prefix;
    const kms = str(input['SSEKMSKeyId']);
    if (kms !== undefined) call.sseKmsKeyId = kms;
    const objects = (input['Delete'] as { Objects?: { Key?: string }[] } | undefined)?.Objects;
    if (objects) call.keys = objects.map((o) => o.Key ?? '');
  }
  const items = input['TransactItems'] as Record<string, { TableName?: string }>[] | undefined;
  if (Array.isArray(items)) {
    call.transactItems = items.map((item) => {
      const type = (['Put', 'Update', 'Delete', 'ConditionCheck'] as const).find((t) => item[t]);
      return type === undefined
        ? { type: 'Unknown', tableName: '' }
        : { type, tableName: item[type]?.TableName ?? '' };
    });
  }
  return call;
}

// --- patches ------------------------------------------------------------------------------------

interface Sendable {
  send(command: unknown, ...rest: unknown[]): unknown;
}

function patchClient(proto: Sendable, service: AwsService): void {
  const own = Object.getOwnPropertyDescriptor(proto, 'send');
  if (own && (own.value as Record<symbol, unknown>)?.[PATCHED]) return;
  const original = proto.send;
  const send = function (this: unknown, command: unknown, ...rest: unknown[]) {
    const c = command as { constructor?: { name?: string }; input?: Input } | null;
    const name = c?.constructor?.name ?? 'Unknown';
    const operation = name.endsWith('Command') ? name.slice(0, -'Command'.length) : name;
    emit(describeCall(service, operation, c?.input ?? {}), originFromStack);
    return original.call(this, command, ...rest);
  };
  (send as unknown as Record<symbol, unknown>)[PATCHED] = true;
  Object.defineProperty(proto, 'send', { value: send, writable: true, configurable: true });
}

function patchUpload(proto: { done(): Promise<unknown> }): void {
  if ((proto.done as unknown as Record<symbol, unknown>)[PATCHED]) return;
  const original = proto.done;
  const done = function (this: unknown) {
    const s = state();
    if (!s) return original.call(this);
    const origin =
      s.options.origin === 'cli' ? { kind: 'src' as const, caller: undefined } : originFromStack();
    // Calls lib-storage makes for this upload are the caller's; null hides an outer context.
    return s.libraryOrigin.run(origin.kind === 'src' ? { caller: origin.caller } : null, () =>
      original.call(this),
    );
  };
  (done as unknown as Record<symbol, unknown>)[PATCHED] = true;
  proto.done = done;
}

function patchRawGetRecords(proto: RawGetRecordsClient): void {
  if ((proto.getRecords as unknown as Record<symbol, unknown>)[PATCHED]) return;
  const original = proto.getRecords;
  const getRecords = function (
    this: RawGetRecordsClient,
    ...args: Parameters<RawGetRecordsClient['getRecords']>
  ) {
    const call = describeCall('dynamodbstreams', 'GetRecords', args[0] as unknown as Input);
    emit({ ...call, raw: true }, originFromStack);
    return original.apply(this, args);
  };
  (getRecords as unknown as Record<symbol, unknown>)[PATCHED] = true;
  proto.getRecords = getRecords;
}
