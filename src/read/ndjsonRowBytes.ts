import { type BytesColumn, bufferAt, textAt } from '../changelog/parquetColumnReader.js';
import type { ByteBuilder } from '../support/byteBuilder.js';
import { keyColumnValue } from './changeColumns.js';
import type { DecodedKeyColumn, DecodedRowGroup } from './segmentRows.js';
import { isoTimeCache } from './textRowFormats.js';

/*
 * NDJSON lines straight from a DecodedRowGroup's bytes: the hot path of `changes` (the default
 * format). Keys and images are stored DynamoDB JSON, so their bytes are copied, not decoded into
 * strings and encoded again. The output is byte for byte what textRowFormats.ts's `ndjson` lines
 * give for group.rowAt(i) (tests compare them), as long as the copied bytes are valid UTF-8:
 * - a JSON string cell (event_id, shard_id, key columns) whose bytes need escaping goes through
 *   JSON.stringify, as in the string path;
 * - stored text that is not valid UTF-8 comes out of the string path with U+FFFD in place of the
 *   bad bytes. Every copied value sits between ASCII bytes (`:` before, `,` `}` or `"` around), so
 *   a line is valid UTF-8 exactly when its copied values are: the writer checks whole chunks of
 *   lines at once (rowWriters.ts) and writes a line that fails through the string path.
 */

/** Appends row i of `group` as one NDJSON line (newline included) to `out`. */
export type RowBytes = (group: DecodedRowGroup, i: number, out: ByteBuilder) => void;

type CellBytes = (group: DecodedRowGroup, i: number, out: ByteBuilder) => void;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Lines of `columns` (validated: see changeColumns.ts), as textRowFormats.ts's ndjson. */
export function ndjsonRowBytes(columns: readonly string[]): RowBytes {
  const isoTime = isoTimeCache();
  const cells = columns.map((c) => cellBytes(c, isoTime));
  // `{"event_id":`, `,"op":`, ...: the names are escaped and encoded once.
  const prefixes = columns.map((c, k) => Buffer.from(`${k === 0 ? '{' : ','}${JSON.stringify(c)}:`, 'utf8'));
  const n = cells.length;
  return (group, i, out) => {
    for (let k = 0; k < n; k++) {
      const prefix = prefixes[k]!;
      out.bytes(prefix, 0, prefix.length);
      cells[k]!(group, i, out);
    }
    out.byte(0x7d); // }
    out.byte(0x0a); // \n
  };
}

function cellBytes(column: string, isoTime: (ms: number) => string): CellBytes {
  switch (column) {
    case 'event_id':
      return jsonStringCell((g) => g.eventId);
    case 'op':
      return (g, i, out) => {
        out.byte(QUOTE);
        out.text(g.opAt(i));
        out.byte(QUOTE);
      };
    case 'event_time':
      return (g, i, out) => {
        out.byte(QUOTE);
        out.text(isoTime(g.eventTimeAt(i)));
        out.byte(QUOTE);
      };
    case 'sequence_number':
      // The string path reads these as latin1 and writes UTF-8: the same bytes while they are ASCII.
      return (g, i, out) => {
        const c = g.sequenceNumber;
        out.byte(QUOTE);
        const buf = bufferAt(c, i);
        if (isAscii(buf, c.starts[i]!, c.ends[i]!)) out.bytes(buf, c.starts[i]!, c.ends[i]!);
        else out.text(g.sequenceNumberAt(i));
        out.byte(QUOTE);
      };
    case 'shard_id':
      return jsonStringCell((g) => g.shardId);
    case 'keys':
      return (g, i, out) => rawJson(g.keys, i, out);
    case 'new_image':
      return (g, i, out) => rawJson(g.newImage, i, out);
    case 'old_image':
      return (g, i, out) => rawJson(g.oldImage, i, out);
    case 'size_bytes':
      return (g, i, out) => out.text(String(g.sizeBytes[i]!));
    case 'ttl_delete':
      return (g, i, out) => out.text(g.ttlDelete[i] === 1 ? 'true' : 'false');
    default:
      return keyCellBytes(column);
  }
}

/** A typed key column: its text (S, N) or base64 (B) as a JSON string. */
function keyCellBytes(column: string): CellBytes {
  let group: DecodedRowGroup | undefined;
  let key: DecodedKeyColumn | undefined;
  const text = jsonStringCell(() => key!.column);
  return (g, i, out) => {
    if (g !== group) {
      group = g;
      key = g.keyColumns.find((k) => k.name === column);
    }
    if (key === undefined) {
      // The same error as the string path's, naming the row.
      keyColumnValue(g.rowAt(i), column);
      return;
    }
    if (key.encoding === 'utf8') {
      text(g, i, out);
      return;
    }
    out.byte(QUOTE);
    out.text(textAt(key.column, i, 'base64'));
    out.byte(QUOTE);
  };
}

/** A stored DynamoDB JSON value (or null) embedded as it is. */
function rawJson(c: BytesColumn, i: number, out: ByteBuilder): void {
  if (c.nulls !== undefined && c.nulls[i] === 1) out.text('null');
  else out.bytes(bufferAt(c, i), c.starts[i]!, c.ends[i]!);
}

/**
 * A text value as a JSON string: its bytes between quotes when JSON.stringify would not change
 * them (nothing to escape; non-ASCII is left as it is, as JSON.stringify does for valid UTF-8).
 * Rows of a dictionary-encoded column share value ranges, so the last verdict is remembered.
 */
function jsonStringCell(pick: (g: DecodedRowGroup) => BytesColumn): CellBytes {
  let lastBuf: Buffer | undefined;
  let lastStart = -1;
  let lastEnd = -1;
  let lastPlain = false;
  return (g, i, out) => {
    const c = pick(g);
    const buf = bufferAt(c, i);
    const start = c.starts[i]!;
    const end = c.ends[i]!;
    if (buf !== lastBuf || start !== lastStart || end !== lastEnd) {
      lastBuf = buf;
      lastStart = start;
      lastEnd = end;
      lastPlain = needsNoEscape(buf, start, end);
    }
    if (lastPlain) {
      out.byte(QUOTE);
      out.bytes(buf, start, end);
      out.byte(QUOTE);
    } else {
      out.text(JSON.stringify(buf.toString('utf8', start, end)));
    }
  };
}

function needsNoEscape(buf: Buffer, start: number, end: number): boolean {
  for (let k = start; k < end; k++) {
    const b = buf[k]!;
    if (b < 0x20 || b === QUOTE || b === BACKSLASH) return false;
  }
  return true;
}

function isAscii(buf: Uint8Array, start: number, end: number): boolean {
  for (let k = start; k < end; k++) if (buf[k]! >= 0x80) return false;
  return true;
}
