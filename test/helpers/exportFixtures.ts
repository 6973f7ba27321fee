import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { AttributeMap } from '../../src/changelog/attributeValueJson.js';
import type { ObjectStore } from '../../src/coordination/objectStore.js';

/*
 * Writes DynamoDB exports to S3 into an ObjectStore exactly as AWS documents them
 * (developerguide/S3DataExport.Output.html): under `<S3Prefix>/AWSDynamoDB/<ExportId>/` the
 * manifest-summary.json, manifest-files.json (JSON lines), their checksum files, and gzipped
 * JSON-lines data files; a full export's data under `<ExportId>/data/`, an incremental export's in
 * the `AWSDynamoDB/data/` folder all incremental exports share. dataFileS3Key and
 * manifestFilesS3Key are bucket-relative, S3Prefix included.
 */

export interface ExportChange {
  keys: AttributeMap;
  newImage?: AttributeMap;
  oldImage?: AttributeMap;
  writeTimestampMicros: bigint;
}

export interface WriteExportOptions {
  /** The export's S3Prefix as a key prefix of `store` ('' for the store's root). */
  prefix: string;
  /** What the summary records as s3Prefix (default `prefix`): longer when the store is rooted below the bucket. */
  s3Prefix?: string | null;
  exportId?: string;
  tableArn: string;
  type: 'full' | 'incremental';
  items?: AttributeMap[];
  changes?: ExportChange[];
  /** Data files the records are spread over, in order (default 1). */
  filesCount?: number;
  /** Extra data files with no records, as AWS writes for empty partitions: zero-byte objects. */
  emptyFiles?: number;
  exportTimeMs: number;
  fromMs?: number;
  toMs?: number;
  outputFormat?: string;
  outputView?: 'NEW_AND_OLD_IMAGES' | 'NEW_IMAGE';
  /** Checksum files of the manifests: `.md5` (default, as exports carry), `.checksum` (the docs' name), none. */
  checksumFiles?: '.md5' | '.checksum' | 'none';
  /** dataFileS3Key/manifestFilesS3Key without the S3Prefix, as in the docs' example. */
  keysWithoutPrefix?: boolean;
  corrupt?: {
    /** This file's md5Checksum in manifest-files.json is wrong. */
    dataFileMd5?: number;
    /** This file's itemCount in manifest-files.json is off by `delta` (the summary agrees with it). */
    fileItemCount?: { file: number; delta: number };
    /** The summary's itemCount is off by this much. */
    summaryItemCount?: number;
    /** Replaces line `line` (0-based) of data file `file` (its MD5 is recorded after the change). */
    line?: { file: number; line: number; text: string };
    /** The manifest-summary checksum file records another MD5. */
    summaryChecksum?: boolean;
  };
}

export interface WrittenDataFile {
  /** The key in the store. */
  key: string;
  /** dataFileS3Key as written to manifest-files.json. */
  s3Key: string;
  itemCount: number;
  md5Checksum: string;
  lines: string[];
}

export interface WrittenExport {
  /** The export's folder in the store, `<prefix>/AWSDynamoDB/<ExportId>/`. */
  exportPrefix: string;
  exportArn: string;
  exportId: string;
  summary: Record<string, unknown>;
  files: WrittenDataFile[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const md5Base64 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('base64');
const md5Hex = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('hex');

/** The line of a change, DynamoDB JSON as an incremental export writes it. */
export function changeLine(change: ExportChange): string {
  return JSON.stringify({
    Metadata: { WriteTimestampMicros: { N: change.writeTimestampMicros.toString() } },
    Keys: change.keys,
    ...(change.newImage !== undefined && { NewImage: change.newImage }),
    ...(change.oldImage !== undefined && { OldImage: change.oldImage }),
  });
}

export async function writeExport(store: ObjectStore, options: WriteExportOptions): Promise<WrittenExport> {
  const exportId = options.exportId ?? '01700000000000-a1b2c3d4';
  const exportArn = `${options.tableArn}/export/${exportId}`;
  const storeBase = options.prefix === '' ? '' : `${options.prefix.replace(/\/+$/, '')}/`;
  const s3Prefix = options.s3Prefix === undefined ? options.prefix.replace(/\/+$/, '') : options.s3Prefix;
  const s3Base = options.keysWithoutPrefix || !s3Prefix ? '' : `${s3Prefix}/`;
  const folder = `AWSDynamoDB/${exportId}/`;
  const dataFolder = options.type === 'full' ? `${folder}data/` : 'AWSDynamoDB/data/';
  const corrupt = options.corrupt ?? {};

  const lines =
    options.type === 'full'
      ? (options.items ?? []).map((item) => JSON.stringify({ Item: item }))
      : (options.changes ?? []).map(changeLine);
  const filesCount = Math.max(1, options.filesCount ?? 1);
  const perFile = Math.ceil(lines.length / filesCount);
  const chunks: string[][] = [];
  for (let i = 0; i < filesCount; i++) chunks.push(lines.slice(i * perFile, (i + 1) * perFile));
  if (corrupt.line !== undefined) {
    const chunk = chunks[corrupt.line.file] as string[];
    chunk[corrupt.line.line] = corrupt.line.text;
  }

  const files: WrittenDataFile[] = [];
  const put = (key: string, body: Uint8Array | string) =>
    store.putIfAbsent(key, typeof body === 'string' ? new TextEncoder().encode(body) : body);
  const name = (i: number) => createHash('sha256').update(`${exportId}/${i}`).digest('hex').slice(0, 26);
  const dataFiles: { lines: string[]; body: Uint8Array }[] = [
    ...chunks.map((chunk) => ({
      lines: chunk,
      body: new Uint8Array(gzipSync(chunk.map((l) => `${l}\n`).join(''))),
    })),
    ...Array.from({ length: options.emptyFiles ?? 0 }, () => ({ lines: [], body: new Uint8Array(0) })),
  ];
  for (const [i, file] of dataFiles.entries()) {
    const relative = `${dataFolder}${name(i)}.json.gz`;
    await put(storeBase + relative, file.body);
    let itemCount = file.lines.length;
    if (corrupt.fileItemCount?.file === i) itemCount += corrupt.fileItemCount.delta;
    const md5Checksum =
      corrupt.dataFileMd5 === i
        ? md5Base64(new TextEncoder().encode('something else'))
        : md5Base64(file.body);
    files.push({
      key: storeBase + relative,
      s3Key: s3Base + relative,
      itemCount,
      md5Checksum,
      lines: file.lines,
    });
  }

  const filesManifest = files
    .map((f) =>
      JSON.stringify({
        itemCount: f.itemCount,
        md5Checksum: f.md5Checksum,
        etag: md5Hex(new TextEncoder().encode(f.key)),
        dataFileS3Key: f.s3Key,
      }),
    )
    .map((l) => `${l}\n`)
    .join('');
  const itemCount = files.reduce((sum, f) => sum + f.itemCount, 0) + (corrupt.summaryItemCount ?? 0);
  const endMs = options.exportTimeMs + 300_000;
  const summary: Record<string, unknown> =
    options.type === 'full'
      ? {
          version: '2020-06-30',
          exportArn,
          startTime: iso(options.exportTimeMs),
          endTime: iso(endMs),
          tableArn: options.tableArn,
          tableId: '12345a12-abcd-123a-ab12-1234abc12345',
          exportTime: iso(options.exportTimeMs),
          s3Bucket: 'export-bucket',
          s3Prefix: s3Prefix || null,
          s3SseAlgorithm: 'AES256',
          s3SseKmsKeyId: null,
          manifestFilesS3Key: `${s3Base}${folder}manifest-files.json`,
          billedSizeBytes: 0,
          itemCount,
          outputFormat: options.outputFormat ?? 'DYNAMODB_JSON',
          exportType: 'FULL_EXPORT',
        }
      : {
          version: '2023-08-01',
          exportArn,
          startTime: iso(endMs - 60_000),
          endTime: iso(endMs),
          tableArn: options.tableArn,
          tableId: '12345a12-abcd-123a-ab12-1234abc12345',
          exportFromTime: iso(options.fromMs ?? options.exportTimeMs - 3_600_000),
          exportToTime: iso(options.toMs ?? options.exportTimeMs),
          s3Bucket: 'export-bucket',
          s3Prefix: s3Prefix || null,
          s3SseAlgorithm: 'AES256',
          s3SseKmsKeyId: null,
          manifestFilesS3Key: `${s3Base}${folder}manifest-files.json`,
          billedSizeBytes: 0,
          itemCount,
          outputFormat: options.outputFormat ?? 'DYNAMODB_JSON',
          outputView: options.outputView ?? 'NEW_AND_OLD_IMAGES',
          exportType: 'INCREMENTAL_EXPORT',
        };
  const summaryText = JSON.stringify(summary);
  const enc = (s: string) => new TextEncoder().encode(s);
  await put(`${storeBase}${folder}_started`, '');
  await put(`${storeBase}${folder}manifest-files.json`, filesManifest);
  await put(`${storeBase}${folder}manifest-summary.json`, summaryText);
  const suffix = options.checksumFiles ?? '.md5';
  if (suffix !== 'none') {
    await put(`${storeBase}${folder}manifest-files${suffix}`, md5Hex(enc(filesManifest)));
    const summaryMd5 = corrupt.summaryChecksum ? md5Hex(enc('other')) : md5Hex(enc(summaryText));
    await put(`${storeBase}${folder}manifest-summary${suffix}`, summaryMd5);
  }
  return { exportPrefix: `${storeBase}${folder}`, exportArn, exportId, summary, files };
}
