import { MalformedRecordError } from '../support/errors.js';
import { type ChangeBuffer, OP_INSERT, OP_MODIFY, OP_REMOVE, type OpCode } from './changeBuffer.js';
import { decimalSortKey, InvalidNumberError } from './decimalSortKey.js';
import {
  bytesEqual,
  decodeStringToken,
  expectByte,
  JsonSyntaxError,
  lastStringEscaped,
  latin1,
  scanString,
  skipValue,
  skipWhitespace,
  utf8,
} from './jsonScanner.js';

/** What a decoded GetRecords page tells the reader besides the rows it added to the buffer. */
export interface DecodedPage {
  /** Absent at the end of a closed shard. */
  nextShardIterator: string | undefined;
  records: number;
  firstSequenceNumber: string | undefined;
  lastSequenceNumber: string | undefined;
  /** Event time (ms) of the last record, for progress tracking. */
  lastEventTimeMs: number | undefined;
}

const enc = (s: string) => new TextEncoder().encode(s);
const K_RECORDS = enc('Records');
const K_NEXT_ITERATOR = enc('NextShardIterator');
const K_EVENT_ID = enc('eventID');
const K_EVENT_NAME = enc('eventName');
const K_DYNAMODB = enc('dynamodb');
const K_USER_IDENTITY = enc('userIdentity');
const K_APPROX_TIME = enc('ApproximateCreationDateTime');
const K_KEYS = enc('Keys');
const K_NEW_IMAGE = enc('NewImage');
const K_OLD_IMAGE = enc('OldImage');
const K_SEQUENCE = enc('SequenceNumber');
const K_SIZE = enc('SizeBytes');
const K_PRINCIPAL = enc('PrincipalId');
const K_PRINCIPAL_LC = enc('principalId');
const K_TYPE = enc('Type');
const K_TYPE_LC = enc('type');
const V_INSERT = enc('INSERT');
const V_MODIFY = enc('MODIFY');
const V_REMOVE = enc('REMOVE');
const V_DYNAMODB_PRINCIPAL = enc('dynamodb.amazonaws.com');
const V_SERVICE = enc('Service');
const V_NULL = enc('null');

/** Byte positions of one record's fields in the page; reused across records (no allocation). */
class RecordSlots {
  eventIdStart = -1;
  eventIdEnd = -1;
  eventIdEscaped = false;
  op = -1;
  timeStart = -1;
  timeEnd = -1;
  keysStart = -1;
  keysEnd = -1;
  newStart = -1;
  newEnd = -1;
  oldStart = -1;
  oldEnd = -1;
  seqStart = -1;
  seqEnd = -1;
  sizeStart = -1;
  sizeEnd = -1;
  servicePrincipal = false;
  serviceType = false;
  recordStart = 0;

  reset(at: number): void {
    this.recordStart = at;
    this.eventIdStart = this.eventIdEnd = -1;
    this.eventIdEscaped = false;
    this.op = -1;
    this.timeStart = this.timeEnd = -1;
    this.keysStart = this.keysEnd = -1;
    this.newStart = this.newEnd = -1;
    this.oldStart = this.oldEnd = -1;
    this.seqStart = this.seqEnd = -1;
    this.sizeStart = this.sizeEnd = -1;
    this.servicePrincipal = false;
    this.serviceType = false;
  }
}

/**
 * Decodes the raw bytes of a DynamoDB Streams GetRecords response straight into `buffer`.
 *
 * The images (NewImage/OldImage) and Keys are copied as the exact DynamoDB JSON text the service
 * sent: they are located and structurally checked, never parsed into objects and re-serialised,
 * which is both the fastest path and lossless by construction (numbers stay strings, sets stay
 * sets, binary stays base64). Only the small fields (key values, times, ids) are read.
 *
 * The page is added all-or-nothing: on a malformed record nothing of the page stays in the buffer
 * and a MalformedRecordError names the shard, the sequence number when known, and the byte offset.
 */
export function decodeGetRecordsResponse(
  body: Uint8Array,
  shardId: string,
  buffer: ChangeBuffer,
): DecodedPage {
  const mark = buffer.mark();
  const page = new PageDecoder(body, shardId, buffer);
  try {
    return page.decode();
  } catch (error) {
    buffer.rollback(mark);
    if (error instanceof MalformedRecordError) throw error;
    if (error instanceof JsonSyntaxError) {
      throw new MalformedRecordError(
        `GetRecords response for shard ${shardId} is not valid JSON: ${error.message}`,
        {
          shardId,
          offset: error.offset,
          cause: error,
        },
      );
    }
    throw error;
  }
}

class PageDecoder {
  private readonly slots = new RecordSlots();
  private readonly keySlots: KeySlot[];
  private readonly shardIndex: number;
  private readonly keyNames: Uint8Array[];
  private records = 0;
  private pos = 0;
  private keyStart = 0;
  private keyEnd = 0;
  private firstSeq: string | undefined;
  private lastSeqStart = -1;
  private lastSeqEnd = -1;
  private lastEventTimeMs: number | undefined;

  constructor(
    private readonly buf: Uint8Array,
    private readonly shardId: string,
    private readonly out: ChangeBuffer,
  ) {
    this.shardIndex = out.shardIndex(shardId);
    this.keyNames = keyNameBytes(out);
    this.keySlots = newKeySlots(out);
  }

  decode(): DecodedPage {
    const buf = this.buf;
    let nextShardIterator: string | undefined;
    this.pos = skipWhitespace(buf, 0);
    if (this.enterObject()) {
      do {
        this.memberName();
        const v = this.pos;
        if (this.is(K_RECORDS)) {
          this.recordsArray();
        } else if (this.is(K_NEXT_ITERATOR)) {
          this.pos = skipValue(buf, v);
          if (buf[v] === 0x22) nextShardIterator = decodeStringToken(buf, v, this.pos);
        } else {
          this.pos = skipValue(buf, v);
        }
      } while (this.nextMember());
    }
    if (skipWhitespace(buf, this.pos) !== buf.length) {
      throw new JsonSyntaxError('trailing bytes after the response', this.pos);
    }
    return {
      nextShardIterator,
      records: this.records,
      firstSequenceNumber: this.firstSeq,
      lastSequenceNumber: this.lastSeqStart < 0 ? undefined : latin1(buf, this.lastSeqStart, this.lastSeqEnd),
      lastEventTimeMs: this.lastEventTimeMs,
    };
  }

  /*
   * A cursor over the page instead of callbacks: walking ~20 objects per record with a closure
   * each was a measurable share of decode time and garbage. `pos` is the next byte to read;
   * `memberName` leaves the member's name range in keyStart/keyEnd (quotes excluded; the names
   * matched here never need unescaping).
   */

  /** Consumes `{`; false (with the `}` consumed too) when the object is empty. */
  private enterObject(): boolean {
    const buf = this.buf;
    const i = skipWhitespace(buf, expectByte(buf, this.pos, 0x7b, "'{'"));
    if (buf[i] === 0x7d) {
      this.pos = i + 1;
      return false;
    }
    this.pos = i;
    return true;
  }

  /** Reads a member name and its colon; leaves `pos` at the value. */
  private memberName(): void {
    const buf = this.buf;
    const start = this.pos;
    const i = scanString(buf, start);
    this.keyStart = start + 1;
    this.keyEnd = i - 1;
    this.pos = skipWhitespace(buf, expectByte(buf, skipWhitespace(buf, i), 0x3a, "':'"));
  }

  /** After a member's value: true when another member follows, false at the closing `}`. */
  private nextMember(): boolean {
    const buf = this.buf;
    const i = skipWhitespace(buf, this.pos);
    if (buf[i] === 0x2c) {
      this.pos = skipWhitespace(buf, i + 1);
      return true;
    }
    this.pos = expectByte(buf, i, 0x7d, "',' or '}'");
    return false;
  }

  private is(name: Uint8Array): boolean {
    return bytesEqual(this.buf, this.keyStart, this.keyEnd, name);
  }

  private recordsArray(): void {
    const buf = this.buf;
    let i = skipWhitespace(buf, expectByte(buf, this.pos, 0x5b, "'[' for Records"));
    if (buf[i] === 0x5d) {
      this.pos = i + 1;
      return;
    }
    for (;;) {
      this.pos = i;
      this.record();
      i = skipWhitespace(buf, this.pos);
      if (buf[i] === 0x2c) {
        i = skipWhitespace(buf, i + 1);
        continue;
      }
      this.pos = expectByte(buf, i, 0x5d, "',' or ']' in Records");
      return;
    }
  }

  /** One stream record: find the fields, validate, then append (so a bad record appends nothing). */
  private record(): void {
    const buf = this.buf;
    const s = this.slots;
    s.reset(this.pos);
    if (this.enterObject()) {
      do {
        this.memberName();
        const v = this.pos;
        if (this.is(K_DYNAMODB)) {
          this.dynamodb();
        } else if (this.is(K_EVENT_ID)) {
          this.pos = scanString(buf, v);
          s.eventIdStart = v + 1;
          s.eventIdEnd = this.pos - 1;
          s.eventIdEscaped = lastStringEscaped;
        } else if (this.is(K_EVENT_NAME)) {
          this.pos = scanString(buf, v);
          s.op = opCode(buf, v + 1, this.pos - 1);
        } else if (this.is(K_USER_IDENTITY) && buf[v] === 0x7b) {
          this.userIdentity();
        } else {
          this.pos = skipValue(buf, v);
        }
      } while (this.nextMember());
    }
    const end = this.pos;
    this.appendRecord();
    this.pos = end;
  }

  private dynamodb(): void {
    const buf = this.buf;
    const s = this.slots;
    if (!this.enterObject()) return;
    do {
      this.memberName();
      const v = this.pos;
      const end = skipValue(buf, v);
      this.pos = end;
      if (this.is(K_NEW_IMAGE)) {
        if (!bytesEqual(buf, v, end, V_NULL)) {
          s.newStart = v;
          s.newEnd = end;
        }
      } else if (this.is(K_OLD_IMAGE)) {
        if (!bytesEqual(buf, v, end, V_NULL)) {
          s.oldStart = v;
          s.oldEnd = end;
        }
      } else if (this.is(K_KEYS)) {
        s.keysStart = v;
        s.keysEnd = end;
      } else if (this.is(K_SEQUENCE)) {
        if (buf[v] === 0x22) {
          s.seqStart = v + 1;
          s.seqEnd = end - 1;
        }
      } else if (this.is(K_APPROX_TIME)) {
        s.timeStart = v;
        s.timeEnd = end;
      } else if (this.is(K_SIZE)) {
        s.sizeStart = v;
        s.sizeEnd = end;
      }
    } while (this.nextMember());
  }

  private userIdentity(): void {
    const buf = this.buf;
    const s = this.slots;
    if (!this.enterObject()) return;
    do {
      this.memberName();
      const v = this.pos;
      const end = skipValue(buf, v);
      this.pos = end;
      if (this.is(K_PRINCIPAL) || this.is(K_PRINCIPAL_LC)) {
        s.servicePrincipal = bytesEqual(buf, v + 1, end - 1, V_DYNAMODB_PRINCIPAL);
      } else if (this.is(K_TYPE) || this.is(K_TYPE_LC)) {
        s.serviceType = bytesEqual(buf, v + 1, end - 1, V_SERVICE);
      }
    } while (this.nextMember());
  }

  private fail(message: string): never {
    const s = this.slots;
    const sequenceNumber = s.seqStart >= 0 ? latin1(this.buf, s.seqStart, s.seqEnd) : undefined;
    throw new MalformedRecordError(
      `shard ${this.shardId}${sequenceNumber ? ` record ${sequenceNumber}` : ` record at byte ${s.recordStart}`}: ${message}`,
      { shardId: this.shardId, sequenceNumber, offset: s.recordStart },
    );
  }

  private appendRecord(): void {
    const buf = this.buf;
    const s = this.slots;
    const out = this.out;
    if (s.seqStart < 0) this.fail('no dynamodb.SequenceNumber');
    if (!isDigits(buf, s.seqStart, s.seqEnd)) this.fail('SequenceNumber is not a decimal integer');
    if (s.eventIdStart < 0) this.fail('no eventID');
    if (s.op < 0) this.fail('eventName is not INSERT, MODIFY or REMOVE');
    if (s.keysStart < 0) this.fail('no dynamodb.Keys');
    if (s.timeStart < 0) this.fail('no dynamodb.ApproximateCreationDateTime');
    const seconds = Number(latin1(buf, s.timeStart, s.timeEnd));
    if (!Number.isFinite(seconds)) this.fail('ApproximateCreationDateTime is not a number');
    // Same rounding as the AWS SDK's epoch-seconds parser, so both decode paths agree to the ms.
    const eventTimeMs = Math.round(seconds * 1000);
    let sizeBytes = 0;
    if (s.sizeStart >= 0) {
      sizeBytes = Number(latin1(buf, s.sizeStart, s.sizeEnd));
      if (!Number.isInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > 0x7fffffff) this.fail('bad SizeBytes');
    }
    this.locateKeys();

    const mark = out.mark();
    try {
      if (s.eventIdEscaped) {
        out.eventId.appendBytes(
          Buffer.from(decodeStringToken(buf, s.eventIdStart - 1, s.eventIdEnd + 1), 'utf8'),
        );
      } else {
        out.eventId.append(buf, s.eventIdStart, s.eventIdEnd);
      }
      out.sequenceNumber.append(buf, s.seqStart, s.seqEnd);
      out.keys.append(buf, s.keysStart, s.keysEnd);
      if (s.newStart >= 0) out.newImage.append(buf, s.newStart, s.newEnd);
      else out.newImage.appendNull();
      if (s.oldStart >= 0) out.oldImage.append(buf, s.oldStart, s.oldEnd);
      else out.oldImage.appendNull();
      this.appendKeyValues();
    } catch (error) {
      out.rollback(mark);
      if (error instanceof InvalidNumberError) this.fail(`key ${error.message}`);
      throw error;
    }
    const op = s.op as OpCode;
    out.commitRow(
      op,
      eventTimeMs,
      sizeBytes,
      op === OP_REMOVE && s.servicePrincipal && s.serviceType,
      this.shardIndex,
    );

    if (this.records === 0) this.firstSeq = latin1(buf, s.seqStart, s.seqEnd);
    this.lastSeqStart = s.seqStart;
    this.lastSeqEnd = s.seqEnd;
    this.lastEventTimeMs = eventTimeMs;
    this.records++;
  }

  /** Finds each key attribute's typed value in the Keys object and checks it against the schema. */
  private locateKeys(): void {
    this.pos = locateKeySlots(
      this.buf,
      this.slots.keysStart,
      this.out,
      this.keyNames,
      this.keySlots,
      this.failFn,
    );
  }

  private readonly failFn = (message: string): never => this.fail(message);

  private appendKeyValues(): void {
    appendKeyValues(this.buf, this.keySlots, this.out);
  }
}

/** Positions of one key attribute's value inside a Keys object (see `locateKeySlots`). */
export interface KeySlot {
  valueStart: number;
  valueEnd: number;
  type: number; // 'S' | 'N' | 'B' as a byte
  escaped: boolean;
}

/** One empty slot per key attribute of `out`, for `locateKeySlots` to fill (reusable). */
export function newKeySlots(out: ChangeBuffer): KeySlot[] {
  return out.keyAttributes.map(() => ({ valueStart: -1, valueEnd: -1, type: 0, escaped: false }));
}

/** The key attributes' names as UTF-8 bytes, in key-schema order. */
export function keyNameBytes(out: ChangeBuffer): Uint8Array[] {
  return out.keyAttributes.map((a) => enc(a.name));
}

/**
 * Walks the Keys object at `start` (DynamoDB JSON, e.g. `{"pk":{"S":"a"},"sk":{"N":"1"}}`), fills
 * `slots` with each key attribute's typed value (in key-schema order) and checks the attributes
 * against the schema: `fail` (which throws) on an attribute not in the schema, a missing one, a
 * wrong type or a value that is not a single S, N or B string. Returns the index after the object.
 */
export function locateKeySlots(
  buf: Uint8Array,
  start: number,
  out: ChangeBuffer,
  keyNames: readonly Uint8Array[],
  slots: KeySlot[],
  fail: (message: string) => never,
): number {
  for (const k of slots) k.valueStart = -1;
  let i = skipWhitespace(buf, expectByte(buf, start, 0x7b, "'{'"));
  if (buf[i] === 0x7d) {
    i++;
  } else {
    for (;;) {
      const nameQuote = i;
      i = scanString(buf, i);
      const index = keyIndex(buf, nameQuote + 1, i - 1, keyNames, out);
      if (index < 0) {
        const name = utf8(buf, nameQuote + 1, i - 1);
        fail(`Keys has attribute ${JSON.stringify(name)} that is not in the key schema`);
      }
      i = skipWhitespace(buf, expectByte(buf, skipWhitespace(buf, i), 0x3a, "':'"));
      const slot = slots[index]!;
      const attribute = out.keyAttributes[index]!.name;
      // A key value is an object with exactly one member: its type (S, N or B) and a string.
      if (buf[i] !== 0x7b) fail(`key ${attribute} is not an S, N or B value`);
      i = skipWhitespace(buf, i + 1);
      if (buf[i] === 0x7d) fail(`key ${attribute} is not an S, N or B value`);
      const typeQuote = i;
      i = scanString(buf, i);
      const typeLength = i - typeQuote - 2;
      i = skipWhitespace(buf, expectByte(buf, skipWhitespace(buf, i), 0x3a, "':'"));
      if (typeLength !== 1 || buf[i] !== 0x22) fail(`key ${attribute} is not an S, N or B value`);
      const v = i;
      i = scanString(buf, v);
      slot.type = buf[typeQuote + 1]!;
      slot.valueStart = v + 1;
      slot.valueEnd = i - 1;
      slot.escaped = lastStringEscaped;
      i = skipWhitespace(buf, i);
      if (buf[i] === 0x2c) fail(`key ${attribute} has more than one type`);
      i = skipWhitespace(buf, expectByte(buf, i, 0x7d, "',' or '}'"));
      if (buf[i] === 0x2c) {
        i = skipWhitespace(buf, i + 1);
        continue;
      }
      i = expectByte(buf, i, 0x7d, "',' or '}'");
      break;
    }
  }
  for (let k = 0; k < slots.length; k++) {
    const attr = out.keyAttributes[k]!;
    const slot = slots[k]!;
    if (slot.valueStart < 0) fail(`Keys lacks key attribute ${JSON.stringify(attr.name)}`);
    if (slot.type !== attr.type.charCodeAt(0)) {
      fail(
        `key ${JSON.stringify(attr.name)} has type ${String.fromCharCode(slot.type)}, the key schema says ${attr.type}`,
      );
    }
  }
  return i;
}

function keyIndex(
  buf: Uint8Array,
  nameStart: number,
  nameEnd: number,
  names: readonly Uint8Array[],
  out: ChangeBuffer,
): number {
  for (let k = 0; k < names.length; k++) if (bytesEqual(buf, nameStart, nameEnd, names[k]!)) return k;
  // Escaped names (rare): compare decoded text.
  const name = decodeStringToken(buf, nameStart - 1, nameEnd + 1);
  return out.keyAttributes.findIndex((a) => a.name === name);
}

/**
 * Appends the located key values (see `locateKeySlots`) to the buffer's key value columns: UTF-8
 * text for S (escapes decoded), the number text for N (plus its sort key; InvalidNumberError when
 * it is not a number), the decoded bytes for B.
 */
export function appendKeyValues(buf: Uint8Array, slots: readonly KeySlot[], out: ChangeBuffer): void {
  for (let k = 0; k < slots.length; k++) {
    const slot = slots[k]!;
    const column = out.keyValues[k]!;
    const type = out.keyAttributes[k]!.type;
    if (type === 'B') {
      column.appendBytes(Buffer.from(latin1(buf, slot.valueStart, slot.valueEnd), 'base64'));
    } else if (slot.escaped) {
      column.appendBytes(Buffer.from(decodeStringToken(buf, slot.valueStart - 1, slot.valueEnd + 1), 'utf8'));
    } else {
      column.append(buf, slot.valueStart, slot.valueEnd);
    }
    if (type === 'N') out.keySortKeys[k]!.appendBytes(decimalSortKey(buf, slot.valueStart, slot.valueEnd));
  }
}

function opCode(buf: Uint8Array, start: number, end: number): number {
  if (bytesEqual(buf, start, end, V_INSERT)) return OP_INSERT;
  if (bytesEqual(buf, start, end, V_MODIFY)) return OP_MODIFY;
  if (bytesEqual(buf, start, end, V_REMOVE)) return OP_REMOVE;
  return -1;
}

function isDigits(buf: Uint8Array, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
