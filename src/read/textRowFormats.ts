import { plainJsonFromDynamoJson } from '../changelog/plainJson.js';
import { MalformedRecordError } from '../support/errors.js';
import { keyColumnValue } from './changeColumns.js';
import type { ChangeRow } from './changeRow.js';

/*
 * Change rows as text lines, one line per row, built by string concatenation from per-column
 * pieces chosen once per output (this is the hot path of `changes` to NDJSON: no per-row objects,
 * no JSON.stringify of the row, only of the short strings that may need escaping).
 */

export type TextRowFormat = 'ndjson' | 'json' | 'csv';

export interface LineFormat {
  /** Written once before the first line ('' when the format has none). */
  header: string;
  /** The row's line, newline included. Throws on a row it cannot write (naming row and segment). */
  line(row: ChangeRow): string;
}

/** A column's value as output text, for one row. */
type Cell = (row: ChangeRow) => string;

/**
 * Lines for `columns` (validated: see changeColumns.ts):
 * - `ndjson`: a JSON object per line; keys/new_image/old_image embedded as the JSON values they
 *   are, byte for byte as stored (DynamoDB JSON), null when absent; event_time ISO-8601 UTC with ms.
 * - `json`: the same, with keys/new_image/old_image as plain JSON (plainJson.ts: numbers as exact
 *   decimal strings, sets as sorted arrays).
 * - `csv`: RFC 4180 with a header line, LF line ends; images as their DynamoDB JSON text in quoted
 *   fields; null is an empty field, an empty string is `""`.
 */
export function lineFormat(format: TextRowFormat, columns: readonly string[]): LineFormat {
  const isoTime = isoTimeCache();
  if (format === 'csv') {
    const cells = columns.map((c) => csvCell(c, isoTime));
    return {
      header: `${columns.map(csvText).join(',')}\n`,
      line: (row) => {
        let line = cells[0]!(row);
        for (let k = 1; k < cells.length; k++) line += ',' + cells[k]!(row);
        return line + '\n';
      },
    };
  }
  const cells = columns.map((c) => jsonCell(c, format === 'json', isoTime));
  // `{"event_id":`, `,"op":`, ...: the names are escaped once here, not per row.
  const prefixes = columns.map((c, k) => `${k === 0 ? '{' : ','}${JSON.stringify(c)}:`);
  return {
    header: '',
    line: (row) => {
      let line = '';
      for (let k = 0; k < cells.length; k++) line += prefixes[k]! + cells[k]!(row);
      return line + '}\n';
    },
  };
}

function jsonCell(column: string, plain: boolean, isoTime: (ms: number) => string): Cell {
  switch (column) {
    case 'event_id':
      return (row) => JSON.stringify(row.eventId);
    case 'op':
      return (row) => `"${row.op}"`;
    case 'event_time':
      return (row) => `"${isoTime(row.eventTimeMs)}"`;
    case 'sequence_number':
      // Decimal digits (the record decoders refuse anything else before a segment is written).
      return (row) => `"${row.sequenceNumber}"`;
    case 'shard_id':
      return (row) => JSON.stringify(row.shardId);
    case 'keys':
      return plain ? (row) => plainImage(row, 'keys', row.keys) : (row) => row.keys;
    case 'new_image':
      return plain
        ? (row) => (row.newImage === null ? 'null' : plainImage(row, 'new_image', row.newImage))
        : (row) => row.newImage ?? 'null';
    case 'old_image':
      return plain
        ? (row) => (row.oldImage === null ? 'null' : plainImage(row, 'old_image', row.oldImage))
        : (row) => row.oldImage ?? 'null';
    case 'size_bytes':
      return (row) => String(row.sizeBytes);
    case 'ttl_delete':
      return (row) => (row.ttlDelete ? 'true' : 'false');
    default:
      return (row) => JSON.stringify(keyColumnValue(row, column));
  }
}

function csvCell(column: string, isoTime: (ms: number) => string): Cell {
  switch (column) {
    case 'event_id':
      return (row) => csvText(row.eventId);
    case 'op':
      return (row) => row.op;
    case 'event_time':
      return (row) => isoTime(row.eventTimeMs);
    case 'sequence_number':
      return (row) => row.sequenceNumber;
    case 'shard_id':
      return (row) => csvText(row.shardId);
    case 'keys':
      return (row) => csvQuoted(row.keys);
    case 'new_image':
      return (row) => (row.newImage === null ? '' : csvQuoted(row.newImage));
    case 'old_image':
      return (row) => (row.oldImage === null ? '' : csvQuoted(row.oldImage));
    case 'size_bytes':
      return (row) => String(row.sizeBytes);
    case 'ttl_delete':
      return (row) => (row.ttlDelete ? 'true' : 'false');
    default:
      return (row) => csvText(keyColumnValue(row, column));
  }
}

/** A CSV field: quoted when it holds a quote, comma or line break, or is empty (empty means null). */
function csvText(text: string): string {
  return text === '' || /[",\r\n]/.test(text) ? csvQuoted(text) : text;
}

function csvQuoted(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

function plainImage(row: ChangeRow, column: string, dynamoJson: string): string {
  try {
    return plainJsonFromDynamoJson(dynamoJson, column);
  } catch (error) {
    throw new MalformedRecordError(
      `row ${row.eventId} of segment ${row.segmentKey}: ${error instanceof Error ? error.message : String(error)}`,
      { key: row.segmentKey, shardId: row.shardId, sequenceNumber: row.sequenceNumber, cause: error },
    );
  }
}

/**
 * ISO-8601 UTC with ms. Event times have second precision and a window holds a few dozen distinct
 * seconds, but rows come in key order, so times repeat without being consecutive: remember the
 * recent ones (toISOString per row cost ~1 µs, a tenth of an NDJSON row's whole cost).
 */
export function isoTimeCache(): (ms: number) => string {
  let texts = new Map<number, string>();
  return (ms) => {
    let text = texts.get(ms);
    if (text === undefined) {
      if (texts.size >= 4096) texts = new Map();
      text = new Date(ms).toISOString();
      texts.set(ms, text);
    }
    return text;
  };
}
