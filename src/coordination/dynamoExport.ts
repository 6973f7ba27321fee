import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ExportError, type ExportProblem } from '../support/errors.js';
import { assertValidKey, type ObjectStore } from './objectStore.js';

/*
 * Reads a DynamoDB export to S3 in DYNAMODB_JSON format, as AWS documents it
 * (developerguide/S3DataExport.Output.html):
 *
 *   <S3Prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json    one JSON object
 *   <S3Prefix>/AWSDynamoDB/<ExportId>/manifest-summary.md5     (or .checksum) its MD5
 *   <S3Prefix>/AWSDynamoDB/<ExportId>/manifest-files.json      JSON lines: itemCount, md5Checksum,
 *   <S3Prefix>/AWSDynamoDB/<ExportId>/manifest-files.md5         etag, dataFileS3Key per data file
 *   <S3Prefix>/AWSDynamoDB/<ExportId>/data/*.json.gz           full export: {"Item":{...}} a line
 *   <S3Prefix>/AWSDynamoDB/data/*.json.gz                      incremental exports share this folder:
 *       {"Metadata":{"WriteTimestampMicros":{"N":".."}},"Keys":{..},"NewImage":{..},"OldImage":{..}}
 *
 * Everything is checked before it is trusted: the manifests' own checksum files, every data file's
 * MD5 before any of its lines is handed out, and the item counts (summary = sum of files; each
 * file's lines = its entry). A fault is an ExportError, never a skipped line.
 */

export const SUMMARY_FILE = 'manifest-summary.json';
const AWS_FOLDER = 'AWSDynamoDB';
/** The docs name the checksum files `.checksum`; exports in the wild carry `.md5`. Either is checked. */
const CHECKSUM_SUFFIXES = ['.md5', '.checksum'] as const;

export type ExportType = 'FULL_EXPORT' | 'INCREMENTAL_EXPORT';

export interface ExportSummary {
  exportArn: string;
  /** The last segment of the export ARN: the folder name under AWSDynamoDB/. */
  exportId: string;
  tableArn: string;
  tableName: string;
  exportType: ExportType;
  /** Full export: the point in time exported. Incremental: the end of the period (exclusive). */
  exportTimeMs: number;
  /** Incremental only: the period, start inclusive, end exclusive. */
  fromTimeMs?: number;
  toTimeMs?: number;
  itemCount: number;
  outputFormat: 'DYNAMODB_JSON';
  /** Incremental only: NEW_AND_OLD_IMAGES or NEW_IMAGE, when the summary says. */
  outputView?: string;
  /** The S3Prefix the export was requested with (bucket-relative), or '' for none. */
  s3Prefix: string;
}

export interface ExportDataFile {
  /** The object's key in the store (see `openExport` for how it is resolved). */
  key: string;
  itemCount: number;
  /** Base64 MD5 of the object's bytes (the gzip file), as manifest-files.json gives it. */
  md5Checksum: string;
}

export interface DynamoExport {
  /** The export's folder in the store: `.../AWSDynamoDB/<ExportId>/`. */
  prefix: string;
  /** The same folder as a URL, for messages. */
  location: string;
  summary: ExportSummary;
  files: ExportDataFile[];
  totalItems: number;
}

export interface OpenExportOptions {
  /** The table the caller expects (name or ARN): an export of another table is refused. */
  table?: string;
  signal?: AbortSignal;
}

/**
 * Opens the export whose folder is `exportPrefix` (`.../AWSDynamoDB/<ExportId>`, trailing `/`
 * optional) in `store`: reads and checks manifest-summary.json and manifest-files.json.
 *
 * Data file keys: manifest-files.json gives `dataFileS3Key` relative to the bucket, S3Prefix
 * included (`<S3Prefix>/AWSDynamoDB/...`; the docs' example leaves the prefix out, which is
 * accepted too). The S3Prefix is stripped and the rest, which starts with `AWSDynamoDB/`, is
 * resolved against the store key of this export's `AWSDynamoDB/` folder. So the store may be rooted
 * anywhere above the export (bucket root, the S3Prefix, or a copy of the folder elsewhere), and a key
 * can never point outside that `AWSDynamoDB/` folder.
 */
export async function openExport(
  store: ObjectStore,
  exportPrefix: string,
  options: OpenExportOptions = {},
): Promise<DynamoExport> {
  const { signal } = options;
  const prefix = exportPrefix.replace(/\/+$/, '') === '' ? '' : `${exportPrefix.replace(/\/+$/, '')}/`;
  const location = locationOf(store, prefix);
  const summaryKey = prefix + SUMMARY_FILE;
  const summaryBytes = await store.get(summaryKey, signal);
  if (summaryBytes === undefined) {
    throw new ExportError(
      'not-an-export',
      `no ${SUMMARY_FILE} at ${location}: not a DynamoDB export's folder; expected the folder that holds ${SUMMARY_FILE}, <S3Prefix>/${AWS_FOLDER}/<ExportId>/ (e.g. s3://bucket/exports/${AWS_FOLDER}/01234567890123-a1b2c3d4/)`,
      { key: summaryKey },
    );
  }
  await verifyChecksumFile(store, summaryKey, summaryBytes, signal);
  const summary = parseSummary(summaryBytes, summaryKey);

  const folderMatch = new RegExp(`(^|/)${AWS_FOLDER}/([^/]+)/$`).exec(prefix);
  if (folderMatch === null || folderMatch[2] !== summary.exportId) {
    throw new ExportError(
      'malformed-manifest',
      `${summaryKey} describes export ${summary.exportArn}, but sits at ${location}; expected it in the folder ${AWS_FOLDER}/${summary.exportId}/`,
      { key: summaryKey },
    );
  }
  // The store key of the AWSDynamoDB/ folder's parent: data keys resolve below it.
  const base = prefix.slice(0, prefix.length - `${AWS_FOLDER}/${summary.exportId}/`.length);

  if (options.table !== undefined) {
    const expected = options.table;
    const matches = expected.startsWith('arn:')
      ? expected === summary.tableArn
      : expected === summary.tableName;
    if (!matches) {
      throw new ExportError(
        'wrong-table',
        `export ${summary.exportArn} at ${location} is of table ${summary.tableName} (${summary.tableArn}), not ${expected}: only an export of ${expected} can be used`,
        { key: summaryKey },
      );
    }
  }

  const manifestS3Key = summary.manifestFilesS3Key;
  const filesKey = resolveKey(manifestS3Key, summary.s3Prefix, base, summaryKey, 'manifestFilesS3Key');
  const filesBytes = await store.get(filesKey, signal);
  if (filesBytes === undefined) {
    throw new ExportError(
      'missing-file',
      `${filesKey} (manifestFilesS3Key "${manifestS3Key}" of ${summaryKey}) is not in ${store.url}`,
      { key: filesKey },
    );
  }
  await verifyChecksumFile(store, filesKey, filesBytes, signal);
  const files = parseFilesManifest(filesBytes, filesKey, (s3Key) =>
    resolveKey(s3Key, summary.s3Prefix, base, filesKey, 'dataFileS3Key'),
  );
  const totalItems = files.reduce((sum, f) => sum + f.itemCount, 0);
  if (totalItems !== summary.itemCount) {
    throw new ExportError(
      'item-count-mismatch',
      `export ${summary.exportArn}: ${summaryKey} says itemCount ${summary.itemCount}, but the ${files.length} data files of ${filesKey} add up to ${totalItems}`,
      { key: filesKey },
    );
  }
  const { manifestFilesS3Key: _, ...publicSummary } = summary;
  return { prefix, location, summary: publicSummary, files, totalItems };
}

export interface ReadExportFileOptions {
  signal?: AbortSignal;
}

/** Whole lines of a data file's decompressed text, as bytes. */
export interface ExportLineBatch {
  /** The lines, each followed by a newline except perhaps the file's last. Valid UTF-8, none empty. */
  bytes: Uint8Array;
  /** The 1-based number in the file of the first line in `bytes`. */
  firstLine: number;
  /** How many lines `bytes` holds. */
  lines: number;
}

export interface ReadExportFileChunksOptions extends ReadExportFileOptions {
  /** Lines at the file's start to leave out (a resumed replay's lines consumed); still counted. */
  skipLines?: number;
}

/**
 * The lines of one data file as batches of bytes, in file order, for the byte-level decoder
 * (changelog/exportLineDecoder.ts, which checks each line's JSON). Checked here: the whole object's MD5
 * before any batch is yielded; lines split on the decompressed stream (the gzip bytes are held, the
 * decompressed text only a batch at a time); invalid UTF-8 and empty lines refused naming the line;
 * a line count above the file's itemCount fails before the batch holding the extra line, one below
 * it after the last batch: a consumer must treat a file that threw as not read. The lines' JSON is
 * not checked here (the decoder does).
 */
export async function* readExportFileChunks(
  store: ObjectStore,
  exp: DynamoExport,
  file: ExportDataFile,
  options: ReadExportFileChunksOptions = {},
): AsyncIterable<ExportLineBatch> {
  const { signal } = options;
  const skip = options.skipLines ?? 0;
  const bytes = await verifiedDataFile(store, exp, file, signal);
  let count = 0;
  // AWS writes an empty file for an empty partition; a zero-byte object is not valid gzip.
  if (bytes.byteLength > 0) {
    for await (const batch of decompressedBatches(bytes, file.key, signal)) {
      if (count + batch.lines > file.itemCount) {
        throw countMismatch(exp, file, `more than ${file.itemCount} lines`);
      }
      const before = count;
      count += batch.lines;
      if (count <= skip) continue;
      if (before >= skip) {
        yield batch;
        continue;
      }
      // The batch straddles the resume point: leave out its first lines.
      let at = 0;
      for (let n = before; n < skip; n++) at = batch.bytes.indexOf(0x0a, at) + 1;
      yield { bytes: batch.bytes.subarray(at), firstLine: skip + 1, lines: count - skip };
    }
  }
  if (count !== file.itemCount) throw countMismatch(exp, file, `${count} lines`);
}

async function verifiedDataFile(
  store: ObjectStore,
  exp: DynamoExport,
  file: ExportDataFile,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const bytes = await store.get(file.key, signal);
  if (bytes === undefined) {
    throw new ExportError(
      'missing-file',
      `data file ${file.key} of export ${exp.summary.exportArn} is not in ${store.url}`,
      { key: file.key },
    );
  }
  const md5 = createHash('md5').update(bytes).digest('base64');
  if (md5 !== file.md5Checksum) {
    throw new ExportError(
      'checksum-mismatch',
      `data file ${file.key} of export ${exp.summary.exportArn} has MD5 ${md5}, but manifest-files.json records ${file.md5Checksum}: the object is corrupt or not the one exported`,
      { key: file.key },
    );
  }
  return bytes;
}

function countMismatch(exp: DynamoExport, file: ExportDataFile, found: string): ExportError {
  return new ExportError(
    'item-count-mismatch',
    `data file ${file.key} of export ${exp.summary.exportArn} holds ${found}; manifest-files.json records itemCount ${file.itemCount}`,
    { key: file.key },
  );
}

/** Decompressed output chunk size: a batch is about this many bytes of whole lines. */
const GUNZIP_CHUNK_BYTES = 64 * 1024;

/**
 * The gunzipped object as batches of whole lines (a chunk of the stream up to its last newline,
 * with the previous chunk's unfinished line in front), each checked: valid UTF-8, no empty line.
 */
async function* decompressedBatches(
  gzipped: Uint8Array,
  key: string,
  signal: AbortSignal | undefined,
): AsyncGenerator<ExportLineBatch> {
  const gunzip = Readable.from([Buffer.from(gzipped.buffer, gzipped.byteOffset, gzipped.byteLength)]).pipe(
    createGunzip({ chunkSize: GUNZIP_CHUNK_BYTES }),
  );
  let pending: Buffer[] = [];
  let next = 1;
  const batch = (bytes: Buffer): ExportLineBatch => {
    const firstLine = next;
    let start = 0;
    while (start < bytes.length) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      let i = start;
      while (i < end && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0d)) i++;
      if (i === end) {
        throw new ExportError(
          'malformed-data',
          `data file ${key} line ${next} is empty; expected one JSON record a line`,
          { key, line: next },
        );
      }
      next++;
      start = end + 1;
    }
    if (!isUtf8(bytes)) {
      let line = firstLine;
      let at = 0;
      for (;;) {
        let end = bytes.indexOf(0x0a, at);
        if (end < 0) end = bytes.length;
        if (!isUtf8(bytes.subarray(at, end)) || end === bytes.length) {
          throw new ExportError('malformed-data', `data file ${key} line ${line} is not valid UTF-8`, {
            key,
            line,
          });
        }
        line++;
        at = end + 1;
      }
    }
    return { bytes, firstLine, lines: next - firstLine };
  };
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      signal?.throwIfAborted();
      const last = chunk.lastIndexOf(0x0a);
      if (last < 0) {
        pending.push(chunk);
        continue;
      }
      const head = chunk.subarray(0, last + 1);
      const whole = pending.length === 0 ? head : Buffer.concat([...pending, head]);
      pending = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : [];
      yield batch(whole);
    }
  } catch (error) {
    if (error instanceof ExportError || signal?.aborted) throw error;
    throw new ExportError(
      'malformed-data',
      `data file ${key} is not valid gzip: ${(error as Error).message}`,
      {
        key,
        cause: error,
      },
    );
  } finally {
    gunzip.destroy();
  }
  if (pending.length > 0) yield batch(pending.length === 1 ? pending[0]! : Buffer.concat(pending));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// --- manifests ----------------------------------------------------------------------------------

interface ParsedSummary extends ExportSummary {
  manifestFilesS3Key: string;
}

const ARN_PARTS = 'arn:[^:]+:dynamodb:[^:]*:[^:]*';
const TABLE_ARN = new RegExp(`^${ARN_PARTS}:table/([^/]+)$`);
const EXPORT_ARN = new RegExp(`^(${ARN_PARTS}:table/[^/]+)/export/([^/]+)$`);

function parseSummary(bytes: Uint8Array, key: string): ParsedSummary {
  const fail = (problem: ExportProblem, what: string) => new ExportError(problem, `${key} ${what}`, { key });
  const doc = parseJson(bytes, key);
  if (!isPlainObject(doc)) throw fail('malformed-manifest', 'is not a JSON object');
  const str = (field: string): string => {
    const v = doc[field];
    if (typeof v !== 'string' || v === '') throw fail('malformed-manifest', `has no ${field} (a string)`);
    return v;
  };
  const time = (field: string): number => {
    const v = str(field);
    const ms = Date.parse(v);
    if (!/^\d{4}-\d\d-\d\dT/.test(v) || Number.isNaN(ms)) {
      throw fail('malformed-manifest', `has ${field} ${JSON.stringify(v)}; expected an ISO-8601 time`);
    }
    return ms;
  };

  const outputFormat = doc['outputFormat'];
  if (outputFormat !== 'DYNAMODB_JSON') {
    throw fail(
      'unsupported-format',
      `has outputFormat ${JSON.stringify(outputFormat)}; only DYNAMODB_JSON exports can be read (request the export with ExportFormat DYNAMODB_JSON, not ION)`,
    );
  }
  // The docs' full-export summary predates the field: no exportType means a full export.
  const exportType = doc['exportType'] ?? 'FULL_EXPORT';
  if (exportType !== 'FULL_EXPORT' && exportType !== 'INCREMENTAL_EXPORT') {
    throw fail(
      'unsupported-format',
      `has exportType ${JSON.stringify(exportType)}; expected FULL_EXPORT or INCREMENTAL_EXPORT`,
    );
  }
  const tableArn = str('tableArn');
  const tableMatch = TABLE_ARN.exec(tableArn);
  if (tableMatch === null) {
    throw fail(
      'malformed-manifest',
      `has tableArn ${JSON.stringify(tableArn)}; expected arn:aws:dynamodb:<region>:<account>:table/<name>`,
    );
  }
  const exportArn = str('exportArn');
  const exportMatch = EXPORT_ARN.exec(exportArn);
  if (exportMatch === null || exportMatch[1] !== tableArn) {
    throw fail(
      'malformed-manifest',
      `has exportArn ${JSON.stringify(exportArn)}; expected ${tableArn}/export/<ExportId>`,
    );
  }
  const itemCount = doc['itemCount'];
  if (typeof itemCount !== 'number' || !Number.isSafeInteger(itemCount) || itemCount < 0) {
    throw fail(
      'malformed-manifest',
      `has itemCount ${JSON.stringify(itemCount)}; expected a whole number >= 0`,
    );
  }
  const s3Prefix = doc['s3Prefix'];
  if (s3Prefix !== undefined && s3Prefix !== null && typeof s3Prefix !== 'string') {
    throw fail('malformed-manifest', `has s3Prefix ${JSON.stringify(s3Prefix)}; expected a string or null`);
  }
  const summary: ParsedSummary = {
    exportArn,
    exportId: exportMatch[2] as string,
    tableArn,
    tableName: tableMatch[1] as string,
    exportType,
    exportTimeMs: 0,
    itemCount,
    outputFormat,
    s3Prefix: (s3Prefix ?? '').replace(/^\/+|\/+$/g, ''),
    manifestFilesS3Key: str('manifestFilesS3Key'),
  };
  if (exportType === 'FULL_EXPORT') {
    summary.exportTimeMs = time('exportTime');
  } else {
    summary.fromTimeMs = time('exportFromTime');
    summary.toTimeMs = time('exportToTime');
    if (summary.toTimeMs <= summary.fromTimeMs) {
      throw fail('malformed-manifest', `has exportToTime before or at exportFromTime`);
    }
    summary.exportTimeMs = summary.toTimeMs;
    if (typeof doc['outputView'] === 'string') summary.outputView = doc['outputView'];
  }
  return summary;
}

function parseFilesManifest(
  bytes: Uint8Array,
  key: string,
  resolve: (s3Key: string) => string,
): ExportDataFile[] {
  const files: ExportDataFile[] = [];
  const seen = new Set<string>();
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8').split('\n');
  lines.forEach((text, i) => {
    if (text.trim() === '') return; // the trailing newline
    const fail = (what: string) =>
      new ExportError('malformed-manifest', `${key} line ${i + 1} ${what}`, { key, line: i + 1 });
    let entry: unknown;
    try {
      entry = JSON.parse(text);
    } catch (error) {
      throw new ExportError(
        'malformed-manifest',
        `${key} line ${i + 1} is not JSON: ${(error as Error).message}`,
        {
          key,
          line: i + 1,
          cause: error,
        },
      );
    }
    if (!isPlainObject(entry)) throw fail('is not a JSON object');
    const { itemCount, md5Checksum, dataFileS3Key } = entry;
    if (typeof itemCount !== 'number' || !Number.isSafeInteger(itemCount) || itemCount < 0) {
      throw fail(`has itemCount ${JSON.stringify(itemCount)}; expected a whole number >= 0`);
    }
    if (typeof md5Checksum !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(md5Checksum)) {
      throw fail(`has md5Checksum ${JSON.stringify(md5Checksum)}; expected a base64 MD5 (24 characters)`);
    }
    if (typeof dataFileS3Key !== 'string' || dataFileS3Key === '')
      throw fail('has no dataFileS3Key (a string)');
    const resolved = resolve(dataFileS3Key);
    if (seen.has(resolved)) throw fail(`lists ${dataFileS3Key} a second time`);
    seen.add(resolved);
    files.push({ key: resolved, itemCount, md5Checksum });
  });
  return files;
}

/** See `openExport`: a bucket-relative key of this export as a key of the store. */
function resolveKey(
  s3Key: string,
  s3Prefix: string,
  base: string,
  manifestKey: string,
  field: string,
): string {
  const withPrefix = s3Prefix === '' ? undefined : `${s3Prefix}/`;
  const rest =
    withPrefix !== undefined && s3Key.startsWith(withPrefix) ? s3Key.slice(withPrefix.length) : s3Key;
  const outside = () =>
    new ExportError(
      'malformed-manifest',
      `${manifestKey} has ${field} ${JSON.stringify(s3Key)}, outside the export; expected ${withPrefix ?? ''}${AWS_FOLDER}/...`,
      { key: manifestKey },
    );
  if (!rest.startsWith(`${AWS_FOLDER}/`)) throw outside();
  const key = base + rest;
  try {
    assertValidKey(key);
  } catch {
    throw outside(); // `..` or empty segments could leave the AWSDynamoDB/ folder
  }
  return key;
}

/** Checks `<key minus .json>.md5` (or `.checksum`) when the export has one: hex or base64 MD5. */
async function verifyChecksumFile(
  store: ObjectStore,
  key: string,
  bytes: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<void> {
  const stem = key.replace(/\.json$/, '');
  for (const suffix of CHECKSUM_SUFFIXES) {
    const checksumKey = stem + suffix;
    const recorded = await store.get(checksumKey, signal);
    if (recorded === undefined) continue;
    const text = Buffer.from(recorded).toString('utf8').trim();
    const digest = createHash('md5').update(bytes).digest();
    let matches: boolean;
    if (/^[0-9a-fA-F]{32}$/.test(text)) matches = text.toLowerCase() === digest.toString('hex');
    else if (/^[A-Za-z0-9+/]{22}==$/.test(text)) matches = text === digest.toString('base64');
    else {
      throw new ExportError(
        'malformed-manifest',
        `${checksumKey} holds ${JSON.stringify(text.slice(0, 64))}; expected the MD5 of ${key} in hex or base64`,
        { key: checksumKey },
      );
    }
    if (!matches) {
      throw new ExportError(
        'checksum-mismatch',
        `${key} has MD5 ${digest.toString('hex')}, but ${checksumKey} records ${text}: the manifest is corrupt or incomplete`,
        { key },
      );
    }
    return;
  }
}

function parseJson(bytes: Uint8Array, key: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new ExportError('malformed-manifest', `${key} is not JSON: ${(error as Error).message}`, {
      key,
      cause: error,
    });
  }
}

function locationOf(store: ObjectStore, key: string): string {
  return store.url.endsWith('/') ? store.url + key : `${store.url}/${key}`;
}
