import type { KeySchema } from '../changelog/keySchema.js';
import { ChunkedOutput } from '../support/chunkedOutput.js';
import { ConfigError } from '../support/errors.js';
import { selectColumns } from './changeColumns.js';
import type { ChangeRow } from './changeRow.js';
import { ParquetRowWriter } from './parquetRowWriter.js';
import { type LineFormat, lineFormat } from './textRowFormats.js';

/** The output formats of `changes` (textRowFormats.ts and parquetRowWriter.ts say what each is). */
export type RowFormat = 'ndjson' | 'json' | 'csv' | 'parquet';

export const ROW_FORMATS: readonly RowFormat[] = ['ndjson', 'json', 'csv', 'parquet'];

export const DEFAULT_ROW_FORMAT: RowFormat = 'ndjson';

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
  return new TextRowWriter(output, lineFormat(format, columns));
}

class TextRowWriter implements RowWriter {
  private readonly output: ChunkedOutput;
  /** Written with the first row, or at end() when there is none (a CSV of no rows has its header). */
  private header: string;

  constructor(
    output: NodeJS.WritableStream,
    private readonly format: LineFormat,
  ) {
    this.output = new ChunkedOutput(output);
    this.header = format.header;
  }

  write(row: ChangeRow): Promise<void> {
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
    if (this.header !== '') await this.output.write(this.header);
    this.header = '';
    await this.output.end();
  }
}
