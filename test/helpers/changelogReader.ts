import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';

/*
 * Reads a changelog from S3 the way an outside consumer would, sharing no code with src/: list the
 * manifests, JSON.parse them, download the segments they list, read those with DuckDB. The chaos
 * test's exactly-once verdict comes from here, so a bug in the project's own reader or manifest
 * parser cannot hide a bug in its writer.
 *
 * Keys follow DESIGN.md's layout under `s3://<bucket>/<prefix>`:
 *   <prefix>/<table>/manifests/dt=YYYY-MM-DD/YYYYMMDDTHHMMSSZ.json
 *   <prefix>/<table>/data/dt=YYYY-MM-DD/window=YYYYMMDDTHHMMSSZ/<segment-id>.parquet
 * and manifests list segment keys relative to the prefix.
 */

export interface ChangelogReaderOptions {
  client: S3Client;
  bucket: string;
  /** Destination prefix inside the bucket, e.g. `changelog` (no leading or trailing `/`). */
  prefix: string;
  table: string;
}

/** One row of one segment, as listed by one manifest (a segment listed twice yields its rows twice). */
export interface ChangelogRow {
  manifestKey: string;
  /** The manifest's window.start (ISO). */
  windowStart: string;
  /** Relative to the prefix, as in the manifest. */
  segmentKey: string;
  event_id: string;
  op: string;
  sequence_number: string;
  shard_id: string;
  keys: string;
  new_image: string | null;
  old_image: string | null;
  /** Epoch ms. */
  event_time: number;
}

export interface ManifestSummary {
  /** Full object key. */
  key: string;
  windowStart: string;
  windowEnd: string;
  version: number;
  recordCount: number;
  complete: boolean;
  gaps: unknown[];
  segmentKeys: string[];
}

export interface ChangelogSnapshot {
  manifests: ManifestSummary[];
  rows: ChangelogRow[];
  /** Every object under `<prefix>/<table>/data/`, relative to the prefix. */
  dataObjects: string[];
  /** Data objects no manifest lists (left by crashes and retries, or of windows not sealed yet). */
  orphans: string[];
  /**
   * Contract breaks seen while reading: unparsable manifest, listed segment missing, checksum,
   * size or record count not as the manifest says.
   */
  problems: string[];
}

type SegmentRow = Omit<ChangelogRow, 'manifestKey' | 'windowStart' | 'segmentKey'>;

interface ManifestJson {
  window?: { start?: string; end?: string };
  version?: number;
  recordCount?: number;
  complete?: boolean;
  gaps?: unknown[];
  segments?: { key?: string; bytes?: number; records?: number; checksum?: string }[];
}

export class ChangelogReader {
  private readonly options: ChangelogReaderOptions;
  private dir: string | undefined;
  private instance: DuckDBInstance | undefined;
  private connection: DuckDBConnection | undefined;
  /** Downloaded segments: `key` -> local file and what was checked about it. */
  private readonly segments = new Map<string, { file: string; bytes: number; checksum: string }>();
  /** Rows of each downloaded file: objects are immutable under their key, so read once. */
  private readonly rowsByFile = new Map<string, SegmentRow[]>();

  constructor(options: ChangelogReaderOptions) {
    this.options = options;
  }

  private full(relative: string): string {
    return this.options.prefix === '' ? relative : `${this.options.prefix}/${relative}`;
  }

  private relative(full: string): string {
    return this.options.prefix === '' ? full : full.slice(this.options.prefix.length + 1);
  }

  /** Reads everything sealed right now. Segments are downloaded once and kept for later reads. */
  async read(): Promise<ChangelogSnapshot> {
    const { table } = this.options;
    const problems: string[] = [];
    const manifests: ManifestSummary[] = [];
    const listed: { manifest: ManifestSummary; segment: NonNullable<ManifestJson['segments']>[number] }[] =
      [];

    for (const key of await this.list(this.full(`${table}/manifests/`))) {
      const bytes = await this.get(key);
      if (bytes === undefined) continue; // deleted between list and get: not there, then
      let json: ManifestJson;
      try {
        json = JSON.parse(bytes.toString('utf8')) as ManifestJson;
      } catch (error) {
        problems.push(`manifest ${key} is not JSON: ${(error as Error).message}`);
        continue;
      }
      const summary: ManifestSummary = {
        key,
        windowStart: json.window?.start ?? '',
        windowEnd: json.window?.end ?? '',
        version: json.version ?? 0,
        recordCount: json.recordCount ?? -1,
        complete: json.complete ?? false,
        gaps: json.gaps ?? [],
        segmentKeys: (json.segments ?? []).map((s) => s.key ?? ''),
      };
      manifests.push(summary);
      for (const segment of json.segments ?? []) listed.push({ manifest: summary, segment });
    }

    // Download what is new; check each object against what its manifest says about it.
    const readable = new Map<string, string>(); // segment key -> local file
    for (const { manifest, segment } of listed) {
      const key = segment.key ?? '';
      const local = await this.download(key);
      if (local === undefined) {
        problems.push(`manifest ${manifest.key} lists ${key}, which does not exist`);
        continue;
      }
      if (segment.checksum !== undefined && segment.checksum !== local.checksum) {
        problems.push(
          `${key}: checksum ${local.checksum}, manifest ${manifest.key} says ${segment.checksum}`,
        );
      }
      if (segment.bytes !== undefined && segment.bytes !== local.bytes) {
        problems.push(`${key}: ${local.bytes} bytes, manifest ${manifest.key} says ${segment.bytes}`);
      }
      readable.set(key, local.file);
    }

    await this.readSegments([...new Set(readable.values())].filter((f) => !this.rowsByFile.has(f)));
    const rows: ChangelogRow[] = [];
    const perManifest = new Map<string, number>();
    for (const { manifest, segment } of listed) {
      const key = segment.key ?? '';
      const file = readable.get(key);
      if (file === undefined) continue;
      const segmentRows = this.rowsByFile.get(file) ?? [];
      if (segment.records !== undefined && segment.records !== segmentRows.length) {
        problems.push(`${key}: ${segmentRows.length} rows, manifest ${manifest.key} says ${segment.records}`);
      }
      perManifest.set(manifest.key, (perManifest.get(manifest.key) ?? 0) + segmentRows.length);
      for (const row of segmentRows) {
        rows.push({ manifestKey: manifest.key, windowStart: manifest.windowStart, segmentKey: key, ...row });
      }
    }
    for (const manifest of manifests) {
      const counted = perManifest.get(manifest.key) ?? 0;
      if (counted !== manifest.recordCount) {
        problems.push(
          `manifest ${manifest.key}: recordCount ${manifest.recordCount}, its segments hold ${counted}`,
        );
      }
    }

    const dataObjects = (await this.list(this.full(`${table}/data/`))).map((k) => this.relative(k));
    const referenced = new Set(listed.map((l) => l.segment.key));
    return {
      manifests,
      rows,
      dataObjects,
      orphans: dataObjects.filter((k) => !referenced.has(k)),
      problems,
    };
  }

  async close(): Promise<void> {
    this.connection?.closeSync();
    this.instance?.closeSync();
    this.connection = undefined;
    this.instance = undefined;
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    this.segments.clear();
    this.rowsByFile.clear();
  }

  private async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.options.client.send(
        new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys.sort();
  }

  private async get(key: string): Promise<Buffer | undefined> {
    try {
      const got = await this.options.client.send(
        new GetObjectCommand({ Bucket: this.options.bucket, Key: key }),
      );
      return Buffer.from(await got.Body!.transformToByteArray());
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || (error as Error).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  private async download(
    key: string,
  ): Promise<{ file: string; bytes: number; checksum: string } | undefined> {
    const cached = this.segments.get(key);
    if (cached !== undefined) return cached;
    const bytes = await this.get(this.full(key));
    if (bytes === undefined) return undefined;
    this.dir ??= await mkdtemp(path.join(tmpdir(), 'changelog-reader-'));
    const file = path.join(this.dir, `${this.segments.size}.parquet`);
    await writeFile(file, bytes);
    const local = {
      file,
      bytes: bytes.byteLength,
      checksum: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    };
    this.segments.set(key, local);
    return local;
  }

  /** One DuckDB scan over the given files; their rows go to rowsByFile. */
  private async readSegments(files: string[]): Promise<void> {
    if (files.length === 0) return;
    // A file with no rows still gets an entry, so it is not read again.
    for (const f of files) this.rowsByFile.set(f, []);
    if (this.connection === undefined) {
      this.instance = await DuckDBInstance.create(':memory:');
      this.connection = await this.instance.connect();
    }
    const list = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ');
    const reader = await this.connection.runAndReadAll(
      `SELECT filename, event_id, op, sequence_number, shard_id, keys, new_image, old_image,
              epoch_ms(event_time)::DOUBLE AS event_time
         FROM read_parquet([${list}], filename = true, union_by_name = true)`,
    );
    for (const r of reader.getRowObjectsJS()) {
      const rows = this.rowsByFile.get(String(r['filename']));
      if (rows === undefined) throw new Error(`DuckDB returned a row of an unknown file ${r['filename']}`);
      rows.push({
        event_id: String(r['event_id']),
        op: String(r['op']),
        sequence_number: String(r['sequence_number']),
        shard_id: String(r['shard_id']),
        keys: String(r['keys']),
        new_image: r['new_image'] == null ? null : String(r['new_image']),
        old_image: r['old_image'] == null ? null : String(r['old_image']),
        event_time: Number(r['event_time']),
      });
    }
  }
}

export async function readChangelog(options: ChangelogReaderOptions): Promise<ChangelogSnapshot> {
  const reader = new ChangelogReader(options);
  try {
    return await reader.read();
  } finally {
    await reader.close();
  }
}
