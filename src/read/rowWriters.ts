import { isUtf8 } from 'node:buffer';
import { WriteStream } from 'node:fs';
import type { KeySchema } from '../changelog/keySchema.js';
import { ByteBuilder } from '../support/byteBuilder.js';
import { ChunkedOutput } from '../support/chunkedOutput.js';
import { ConfigError } from '../support/errors.js';
import { selectColumns } from './changeColumns.js';
import type { ChangeRow } from './changeRow.js';
import { ndjsonRowBytes, type RowBytes } from './ndjsonRowBytes.js';
import { ParquetRowWriter } from './parquetRowWriter.js';
import type { DecodedRowGroup } from './segmentRows.js';
import { type LineFormat, lineFormat } from './textRowFormats.js';

/** The output formats of `changes` (textRowFormats.ts and parquetRowWriter.ts say what each is). */
export type RowFormat = 'ndjson' | 'json' | 'csv' | 'parquet';

export const ROW_FORMATS: readonly RowFormat[] = ['ndjson', 'json', 'csv', 'parquet'];

export const DEFAULT_ROW_FORMAT: RowFormat = 'ndjson';

const READY: Promise<void> = Promise.resolve();

export interface RowWriterOptions {
  /** A subset of the columns, in output order (changeColumns.ts validates it); default all. */
  columns?: readonly string[];
  /** The table's typed key columns by segment column name (keyColumnName), partition key first. */
  keyColumns: readonly string[];
  /** The table's key schema; parquet needs it for the key columns' types (B keys are binary). */
  keySchema?: KeySchema;
}

export interface RowWriter {
  /** Queues a row; waits when the stream asks for backpressure. Rejects on a row it cannot write. */
  write(row: ChangeRow): Promise<void>;
  /**
   * Queues row i of a decoded row group: the same output as write(group.rowAt(i)), without
   * building the row where the format copies bytes (ndjson).
   */
  writeDecoded(group: DecodedRowGroup, i: number): Promise<void>;
  /**
   * Writes what is left, ends the stream and resolves once it finished: the rows are then with the
   * stream's destination, so a caller may advance a cursor past them.
   */
  end(): Promise<void>;
}

/**
 * A writer of change rows to `output` in `format`. Throws a ConfigError for an unknown format, a bad
 * column list, or parquet without the key schema.
 */
export function openRowWriter(
  format: RowFormat,
  output: NodeJS.WritableStream,
  options: RowWriterOptions,
): RowWriter {
  if (!ROW_FORMATS.includes(format)) {
    throw new ConfigError([`format ${JSON.stringify(format)} is not one of ${ROW_FORMATS.join(', ')}`]);
  }
  const columns = selectColumns(options.columns, options.keyColumns);
  if (format === 'parquet')
    return new ParquetRowWriter(output, columns, options.keySchema, options.keyColumns);
  return new TextRowWriter(
    output,
    lineFormat(format, columns),
    format === 'ndjson' ? ndjsonRowBytes(columns) : undefined,
  );
}

/**
 * Output chunks of text formats: writing a 600 MB NDJSON file took 0.8 s in 64 KB chunks and
 * 0.4 s in 256 KB ones on one core here (fewer writes, each above the file stream's high-water
 * mark).
 */
const TEXT_CHUNK_SIZE = 256 * 1024;

class TextRowWriter implements RowWriter {
  private readonly output: ChunkedOutput;
  /** Written with the first row, or at end() when there is none (a CSV of no rows has its header). */
  private header: string;
  /** Lines built as bytes (writeDecoded), handed to the output a chunk at a time. */
  private readonly lineBytes = new ByteBuilder(TEXT_CHUNK_SIZE + 16 * 1024);
  /** The rows whose lines are in lineBytes, to write again through the string path if needed. */
  private lineGroups: DecodedRowGroup[] = [];
  private lineRows: number[] = [];
  private readonly reuseChunks: boolean;

  constructor(
    output: NodeJS.WritableStream,
    private readonly format: LineFormat,
    /** The format's lines as bytes, when it has that form (ndjson). */
    private readonly rowBytes: RowBytes | undefined,
  ) {
    this.output = new ChunkedOutput(output, TEXT_CHUNK_SIZE);
    this.header = format.header;
    this.reuseChunks = output instanceof WriteStream;
  }

  writeDecoded(group: DecodedRowGroup, i: number): Promise<void> {
    if (this.rowBytes === undefined || this.header !== '') return this.write(group.rowAt(i));
    const before = this.lineBytes.length;
    try {
      this.rowBytes(group, i, this.lineBytes);
    } catch (error) {
      this.lineBytes.truncate(before);
      return Promise.reject(error);
    }
    this.lineGroups.push(group);
    this.lineRows.push(i);
    return this.lineBytes.length >= TEXT_CHUNK_SIZE ? this.flushBytes() : READY;
  }

  /**
   * Hands the lines built as bytes to the output. They are the string path's lines when they are
   * valid UTF-8 (ndjsonRowBytes.ts), checked for the whole chunk at once; otherwise each line is
   * checked, and one that fails is written through the string path instead.
   */
  private flushBytes(): Promise<void> {
    if (this.lineBytes.length === 0) return READY;
    const taken = this.lineBytes.take();
    const chunk = isUtf8(taken) ? taken : this.rewriteLines();
    this.lineGroups = [];
    this.lineRows = [];
    // A file stream is done with a chunk once written; another stream (a pipe's reader, a
    // PassThrough) may keep it, so only a file's chunks are reused.
    const lines = this.lineBytes;
    const written = this.reuseChunks && chunk === taken ? () => lines.recycle(taken) : undefined;
    return this.output.writeBytes(chunk, written);
  }

  private rewriteLines(): Buffer {
    const out = new ByteBuilder(TEXT_CHUNK_SIZE + 16 * 1024);
    const line = new ByteBuilder(16 * 1024);
    for (let k = 0; k < this.lineRows.length; k++) {
      const group = this.lineGroups[k]!;
      const i = this.lineRows[k]!;
      this.rowBytes!(group, i, line);
      const bytes = line.take();
      if (isUtf8(bytes)) out.bytes(bytes, 0, bytes.length);
      else out.text(this.format.line(group.rowAt(i)));
    }
    return out.take();
  }

  write(row: ChangeRow): Promise<void> {
    // Lines queued as bytes go first, so rows keep their order.
    if (this.lineBytes.length > 0) return this.flushBytes().then(() => this.writeLine(row));
    return this.writeLine(row);
  }

  private writeLine(row: ChangeRow): Promise<void> {
    let line: string;
    try {
      line = this.format.line(row);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.header !== '') {
      line = this.header + line;
      this.header = '';
    }
    return this.output.write(line);
  }

  async end(): Promise<void> {
    await this.flushBytes();
    if (this.header !== '') await this.output.write(this.header);
    this.header = '';
    await this.output.end();
  }
}
