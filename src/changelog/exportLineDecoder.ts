import { MalformedRecordError } from '../support/errors.js';
import { type ChangeBuffer, OP_NET, OP_SNAPSHOT } from './changeBuffer.js';
import { InvalidNumberError } from './decimalSortKey.js';
import {
  bytesEqual,
  decodeStringToken,
  expectByte,
  JsonSyntaxError,
  lastStringEscaped,
  scanString,
  skipValue,
  skipWhitespace,
} from './jsonScanner.js';
import { SNAPSHOT_SEQUENCE_NUMBER, SNAPSHOT_SHARD_ID, snapshotEventId } from './snapshotRows.js';
import {
  appendKeyValues,
  type KeySlot,
  keyNameBytes,
  locateKeySlots,
  newKeySlots,
} from './wireRecordDecoder.js';

/** A full export's lines are `{"Item":{...}}`; an incremental export's carry Keys and images. */
export type ExportLineKind = 'full' | 'incremental';

export interface ExportRowContext {
  replayId: string;
  /** The event time of every row appended (the replay's snapshot time). */
  eventTimeMs: number;
}

export interface ExportLinesWhere {
  /** The data file, for messages. */
  file: string;
  /** The 1-based number of the range's first line in the file. */
  firstLine: number;
}

export interface AppendExportLinesOptions {
  /** Stop after the line that brings `buffer.byteSize` to at least this (a segment is full). */
  stopAtBytes?: number;
}

export interface AppendedExportLines {
  /** Lines appended (one row each). */
  lines: number;
  /** The index just past the last line appended and its newline: where the next call starts. */
  end: number;
}

const enc = (s: string) => new TextEncoder().encode(s);
const K_ITEM = enc('Item');
const K_KEYS = enc('Keys');
const K_NEW_IMAGE = enc('NewImage');
const K_OLD_IMAGE = enc('OldImage');
const K_METADATA = enc('Metadata');
const K_WRITE_TIMESTAMP = enc('WriteTimestampMicros');
const K_N = enc('N');

const NEWLINE = 0x0a;

/**
 * Appends the export lines in `bytes[start, end)` (newline-separated, the last newline optional) to
 * `buffer`, walking the bytes like the stream path (wireRecordDecoder.ts) instead of parsing them:
 * the images are copied byte-for-byte as the export wrote them. The rows are what
 * `appendSnapshotRows` (snapshotRows.ts) makes of the same lines otherwise:
 *
 * - full: `{"Item":{...}}` -> a SNAPSHOT row; new_image the Item's bytes; keys the key attributes
 *   as DynamoDB JSON in key-schema order, `{"pk":{"S":"..."},"sk":{"N":"..."}}`;
 * - incremental: `{"Metadata":{"WriteTimestampMicros":{"N":".."}},"Keys":{..},"NewImage":{..}?,
 *   "OldImage":{..}?}` -> a NET row; keys the Keys bytes; no NewImage: a tombstone;
 * - event_id `snapshotEventId(replayId, keys)`, sequence "0", shard "", size_bytes the UTF-8 length
 *   of keys and images, event time `row.eventTimeMs`.
 *
 * With `stopAtBytes`, stops after the line that fills the buffer to it. All-or-nothing: a malformed
 * line rolls back every row of the call and throws MalformedRecordError naming file and line.
 */
export function appendExportLines(
  bytes: Uint8Array,
  start: number,
  end: number,
  kind: ExportLineKind,
  row: ExportRowContext,
  buffer: ChangeBuffer,
  where: ExportLinesWhere,
  options: AppendExportLinesOptions = {},
): AppendedExportLines {
  const stopAtBytes = options.stopAtBytes ?? Number.POSITIVE_INFINITY;
  // The scanner reads up to the end of its buffer: a view of exactly the range keeps it inside.
  const buf = start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end);
  const decoder = new LineDecoder(kind, row, buffer, where);
  const mark = buffer.mark();
  let pos = 0;
  let lines = 0;
  try {
    while (pos < buf.length) {
      // One line at a time, in a view that ends at its newline: the scanner cannot run on into the
      // next line (a truncated record followed by another would otherwise read as one).
      let newline = buf.indexOf(NEWLINE, pos);
      if (newline < 0) newline = buf.length;
      decoder.line(buf.subarray(pos, newline), where.firstLine + lines, start + pos);
      pos = newline + 1;
      lines++;
      if (buffer.byteSize >= stopAtBytes) break;
    }
  } catch (error) {
    buffer.rollback(mark);
    throw error;
  }
  return { lines, end: start + pos };
}

class LineDecoder {
  private readonly keyNames: Uint8Array[];
  private readonly slots: KeySlot[];
  private readonly keyNameJson: string[];
  private readonly shardIndex: number;
  private lineNumber = 0;
  private lineStart = 0;
  private readonly failFn = (message: string): never => this.fail(message);

  /** The current line, without its newline. */
  private buf: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly kind: ExportLineKind,
    private readonly row: ExportRowContext,
    private readonly out: ChangeBuffer,
    private readonly where: ExportLinesWhere,
  ) {
    this.keyNames = keyNameBytes(out);
    this.slots = newKeySlots(out);
    this.keyNameJson = out.keyAttributes.map((a) => JSON.stringify(a.name));
    this.shardIndex = out.shardIndex(SNAPSHOT_SHARD_ID);
    if (!Number.isFinite(row.eventTimeMs)) {
      throw new MalformedRecordError(`replay ${row.replayId}: event time ${row.eventTimeMs} is not a time`);
    }
  }

  private fail(message: string, cause?: unknown): never {
    const { file } = this.where;
    throw new MalformedRecordError(`export data file ${file} line ${this.lineNumber} ${message}`, {
      key: file,
      offset: this.lineStart,
      cause,
    });
  }

  /** Decodes and appends one line (`line`: its bytes without the newline; `offset`: for messages). */
  line(line: Uint8Array, lineNumber: number, offset: number): void {
    this.buf = line;
    this.lineNumber = lineNumber;
    this.lineStart = offset;
    try {
      if (this.kind === 'full') this.fullLine(0);
      else this.incrementalLine(0);
    } catch (error) {
      if (error instanceof MalformedRecordError) throw error;
      if (error instanceof JsonSyntaxError) this.fail(`is not valid JSON: ${error.message}`, error);
      if (error instanceof InvalidNumberError) this.fail(`has key ${error.message}`, error);
      throw error;
    }
  }

  /** Spaces, tabs and CRs (a line has no newline). */
  private blank(i: number): number {
    const buf = this.buf;
    let c = buf[i];
    while (c === 0x20 || c === 0x0d || c === 0x09) c = buf[++i];
    return i;
  }

  /** Positions at the line's object: `{` after leading blanks. */
  private open(i: number): number {
    const j = this.blank(i);
    if (j >= this.buf.length) this.fail('is empty; expected one JSON record a line');
    if (this.buf[j] !== 0x7b) this.fail('is not a JSON object');
    return j;
  }

  /** After the line's object: only blanks up to the line's end. */
  private close(i: number): void {
    const j = this.blank(i);
    if (j < this.buf.length) this.fail(`has bytes after its JSON object at byte ${j}`);
  }

  /**
   * Walks the object at `i` (the line's record): calls `member` with each member's name range and
   * value range. Returns the index after the object.
   */
  private members(
    i: number,
    member: (nameStart: number, nameEnd: number, v: number, end: number, escaped: boolean) => void,
  ): number {
    const buf = this.buf;
    let j = skipWhitespace(buf, expectByte(buf, i, 0x7b, "'{'"));
    if (buf[j] === 0x7d) return j + 1;
    for (;;) {
      const nameQuote = j;
      j = scanString(buf, j);
      const nameEnd = j - 1;
      const escaped = lastStringEscaped;
      const v = skipWhitespace(buf, expectByte(buf, skipWhitespace(buf, j), 0x3a, "':'"));
      j = skipValue(buf, v);
      member(nameQuote + 1, nameEnd, v, j, escaped);
      j = skipWhitespace(buf, j);
      if (buf[j] === 0x2c) {
        j = skipWhitespace(buf, j + 1);
        continue;
      }
      return expectByte(buf, j, 0x7d, "',' or '}'");
    }
  }

  private fullLine(i: number): void {
    const buf = this.buf;
    let itemStart = -1;
    let itemEnd = -1;
    let other: string | undefined;
    const after = this.members(this.open(i), (ns, ne, v, end) => {
      if (bytesEqual(buf, ns, ne, K_ITEM)) {
        itemStart = v;
        itemEnd = end;
      } else if (bytesEqual(buf, ns, ne, K_KEYS)) {
        other = 'Keys';
      }
    });
    this.close(after);
    if (itemStart < 0) {
      if (other !== undefined) this.fail('has "Keys": an incremental-export line in a full export');
      this.fail('has no "Item": a full export line is {"Item":{...}}');
    }
    if (buf[itemStart] !== 0x7b) this.fail('has Item that is not a map of attributes');
    // The key attributes inside the item, as the Keys object of a stream record would hold them.
    this.locateItemKeys(itemStart);
    const keysJson = this.keysJsonFromSlots();
    this.append(OP_SNAPSHOT, Buffer.from(keysJson, 'utf8'), itemStart, itemEnd, -1, -1);
  }

  /** Fills the key slots from the Item's top-level attributes (other attributes are skipped). */
  private locateItemKeys(itemStart: number): void {
    const buf = this.buf;
    const out = this.out;
    const slots = this.slots;
    for (const k of slots) k.valueStart = -1;
    this.members(itemStart, (ns, ne, v, end, escaped) => {
      const k = this.keyIndex(ns, ne, escaped);
      if (k < 0) return;
      const attribute = out.keyAttributes[k]!;
      const slot = slots[k]!;
      // {"T":"value"}: one member, a one-letter type and a string.
      let j = skipWhitespace(buf, v + 1);
      const typeQuote = j;
      const bad = () =>
        this.fail(`has Item.${attribute.name} that is not of the key schema's type ${attribute.type}`);
      if (buf[v] !== 0x7b || buf[j] !== 0x22) bad();
      j = scanString(buf, j);
      if (j - typeQuote !== 3 || buf[typeQuote + 1] !== attribute.type.charCodeAt(0)) bad();
      j = skipWhitespace(buf, expectByte(buf, skipWhitespace(buf, j), 0x3a, "':'"));
      if (buf[j] !== 0x22) bad();
      const valueQuote = j;
      j = scanString(buf, j);
      slot.escaped = lastStringEscaped;
      if (skipWhitespace(buf, j) !== end - 1) bad(); // more than one member
      slot.type = buf[typeQuote + 1]!;
      slot.valueStart = valueQuote + 1;
      slot.valueEnd = j - 1;
    });
    for (let k = 0; k < slots.length; k++) {
      if (slots[k]!.valueStart < 0) {
        this.fail(`has an Item that lacks key attribute ${JSON.stringify(out.keyAttributes[k]!.name)}`);
      }
    }
  }

  private keyIndex(nameStart: number, nameEnd: number, escaped: boolean): number {
    if (escaped) {
      const name = decodeStringToken(this.buf, nameStart - 1, nameEnd + 1);
      return this.out.keyAttributes.findIndex((a) => a.name === name);
    }
    const names = this.keyNames;
    for (let k = 0; k < names.length; k++) if (bytesEqual(this.buf, nameStart, nameEnd, names[k]!)) return k;
    return -1;
  }

  /**
   * `{"pk":{"S":"..."},...}` in key-schema order: attributeMapToJson's text of the same keys (an
   * unescaped string's bytes are what JSON.stringify writes; an escaped one is re-encoded).
   */
  private keysJsonFromSlots(): string {
    const buf = this.buf;
    const attrs = this.out.keyAttributes;
    let json = '{';
    for (let k = 0; k < attrs.length; k++) {
      const slot = this.slots[k]!;
      const token = slot.escaped
        ? JSON.stringify(decodeStringToken(buf, slot.valueStart - 1, slot.valueEnd + 1))
        : Buffer.from(
            buf.buffer,
            buf.byteOffset + slot.valueStart - 1,
            slot.valueEnd - slot.valueStart + 2,
          ).toString('utf8');
      if (k > 0) json += ',';
      json += `${this.keyNameJson[k]}:{"${attrs[k]!.type}":${token}}`;
    }
    return `${json}}`;
  }

  private incrementalLine(i: number): void {
    const buf = this.buf;
    let keysStart = -1;
    let keysEnd = -1;
    let newStart = -1;
    let newEnd = -1;
    let oldStart = -1;
    let oldEnd = -1;
    let metaStart = -1;
    let hasItem = false;
    const after = this.members(this.open(i), (ns, ne, v, end) => {
      if (bytesEqual(buf, ns, ne, K_KEYS)) {
        keysStart = v;
        keysEnd = end;
      } else if (bytesEqual(buf, ns, ne, K_NEW_IMAGE)) {
        newStart = v;
        newEnd = end;
      } else if (bytesEqual(buf, ns, ne, K_OLD_IMAGE)) {
        oldStart = v;
        oldEnd = end;
      } else if (bytesEqual(buf, ns, ne, K_METADATA)) {
        metaStart = v;
      } else if (bytesEqual(buf, ns, ne, K_ITEM)) {
        hasItem = true;
      }
    });
    this.close(after);
    if (metaStart < 0) {
      if (hasItem) this.fail('has "Item": a full-export line in an incremental export');
      this.fail(
        'has no "Metadata": an incremental export line is {"Metadata":{"WriteTimestampMicros":{"N":"..."}},"Keys":{...},...}',
      );
    }
    this.checkWriteTimestamp(metaStart);
    if (keysStart < 0) this.fail('has no "Keys"');
    if (buf[keysStart] !== 0x7b) this.fail('has Keys that is not a map of attributes');
    if (newStart >= 0 && buf[newStart] !== 0x7b) this.fail('has NewImage that is not a map of attributes');
    if (oldStart >= 0 && buf[oldStart] !== 0x7b) this.fail('has OldImage that is not a map of attributes');
    locateKeySlots(buf, keysStart, this.out, this.keyNames, this.slots, this.failFn);
    this.append(OP_NET, buf.subarray(keysStart, keysEnd), newStart, newEnd, oldStart, oldEnd);
  }

  /** Metadata.WriteTimestampMicros: `{"N":"<digits>"}` (what exports carry) or a bare integer. */
  private checkWriteTimestamp(metaStart: number): void {
    const buf = this.buf;
    let ok = false;
    let seen = false;
    const digits = (s: number, e: number) => {
      if (e <= s || e - s > 20) return false;
      for (let k = s; k < e; k++) if (buf[k]! < 0x30 || buf[k]! > 0x39) return false;
      return true;
    };
    if (buf[metaStart] === 0x7b) {
      this.members(metaStart, (ns, ne, v, end) => {
        if (!bytesEqual(buf, ns, ne, K_WRITE_TIMESTAMP)) return;
        seen = true;
        if (buf[v] === 0x7b) {
          this.members(v, (tns, tne, tv, tend) => {
            if (bytesEqual(buf, tns, tne, K_N) && buf[tv] === 0x22) ok = digits(tv + 1, tend - 1);
          });
        } else {
          ok =
            digits(v, end) &&
            Number.isSafeInteger(Number(Buffer.from(buf.subarray(v, end)).toString('latin1')));
        }
      });
    }
    if (!ok) {
      this.fail(
        `has ${seen ? 'a bad ' : 'no '}Metadata.WriteTimestampMicros; expected {"N":"<microseconds since the epoch>"}`,
      );
    }
  }

  private append(
    op: number,
    keys: Uint8Array,
    newStart: number,
    newEnd: number,
    oldStart: number,
    oldEnd: number,
  ): void {
    const out = this.out;
    const buf = this.buf;
    let size = keys.length;
    if (newStart >= 0) size += newEnd - newStart;
    if (oldStart >= 0) size += oldEnd - oldStart;
    const keysJson = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength).toString('utf8');
    const eventId = snapshotEventId(this.row.replayId, keysJson);
    const mark = out.mark();
    try {
      out.eventId.appendBytes(Buffer.from(eventId, 'utf8'));
      out.sequenceNumber.appendBytes(SEQUENCE_BYTES);
      out.keys.appendBytes(keys);
      if (newStart >= 0) out.newImage.append(buf, newStart, newEnd);
      else out.newImage.appendNull();
      if (oldStart >= 0) out.oldImage.append(buf, oldStart, oldEnd);
      else out.oldImage.appendNull();
      appendKeyValues(buf, this.slots, out);
    } catch (error) {
      out.rollback(mark);
      throw error;
    }
    out.commitRow(
      op === OP_SNAPSHOT ? OP_SNAPSHOT : OP_NET,
      Math.trunc(this.row.eventTimeMs),
      Math.min(size, 0x7fffffff),
      false,
      this.shardIndex,
    );
  }
}

const SEQUENCE_BYTES = new TextEncoder().encode(SNAPSHOT_SEQUENCE_NUMBER);
