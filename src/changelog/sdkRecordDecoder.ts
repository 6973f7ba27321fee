import { MalformedRecordError } from '../support/errors.js';
import { type AttributeMap, attributeMapToJson, keyValueBytes } from './attributeValueJson.js';
import { type ChangeBuffer, OP_INSERT, OP_MODIFY, OP_REMOVE, type OpCode } from './changeBuffer.js';
import { decimalSortKey } from './decimalSortKey.js';

/**
 * A stream record as an object: the AWS SDK's `Record` shape (ApproximateCreationDateTime a Date,
 * binary as Uint8Array), or the wire JSON parsed (epoch seconds, base64 binary, as Lambda gets it).
 */
export interface StreamRecordObject {
  eventID?: string;
  eventName?: string;
  dynamodb?: {
    ApproximateCreationDateTime?: Date | number;
    Keys?: AttributeMap;
    NewImage?: AttributeMap;
    OldImage?: AttributeMap;
    SequenceNumber?: string;
    SizeBytes?: number;
    StreamViewType?: string;
  };
  userIdentity?: { PrincipalId?: string; Type?: string; principalId?: string; type?: string };
}

const OPS: Record<string, OpCode> = { INSERT: OP_INSERT, MODIFY: OP_MODIFY, REMOVE: OP_REMOVE };

/**
 * Appends stream records given as objects to `buffer`, all-or-nothing. Produces the same rows as
 * `decodeGetRecordsResponse` on the wire bytes those objects came from.
 */
export function appendStreamRecords(
  records: readonly StreamRecordObject[],
  shardId: string,
  buffer: ChangeBuffer,
): number {
  const mark = buffer.mark();
  const shardIndex = buffer.shardIndex(shardId);
  try {
    for (const record of records) appendOne(record, shardId, shardIndex, buffer);
  } catch (error) {
    buffer.rollback(mark);
    throw error;
  }
  return records.length;
}

function appendOne(record: StreamRecordObject, shardId: string, shardIndex: number, out: ChangeBuffer): void {
  const d = record.dynamodb;
  const sequenceNumber = d?.SequenceNumber;
  // A function declaration returning never, so each check below narrows the types after it.
  function fail(message: string, cause?: unknown): never {
    throw new MalformedRecordError(
      `shard ${shardId} record ${sequenceNumber ?? '(no sequence number)'}: ${message}`,
      {
        shardId,
        sequenceNumber,
        cause,
      },
    );
  }
  if (!d || typeof sequenceNumber !== 'string' || !/^\d+$/.test(sequenceNumber)) {
    fail('no decimal dynamodb.SequenceNumber');
  }
  if (typeof record.eventID !== 'string') fail('no eventID');
  const op = OPS[record.eventName ?? ''];
  if (op === undefined) fail('eventName is not INSERT, MODIFY or REMOVE');
  if (!d.Keys) fail('no dynamodb.Keys');
  const t = d.ApproximateCreationDateTime;
  const eventTimeMs =
    t instanceof Date ? t.getTime() : typeof t === 'number' ? Math.round(t * 1000) : Number.NaN;
  if (!Number.isFinite(eventTimeMs)) fail('no valid ApproximateCreationDateTime');
  const sizeBytes = d.SizeBytes ?? 0;
  if (!Number.isInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > 0x7fffffff) fail('bad SizeBytes');

  const identity = record.userIdentity;
  const principal = identity?.PrincipalId ?? identity?.principalId;
  const type = identity?.Type ?? identity?.type;
  appendObjectRow(
    out,
    {
      eventId: record.eventID,
      sequenceNumber,
      op,
      eventTimeMs,
      sizeBytes,
      ttlDelete: op === OP_REMOVE && principal === 'dynamodb.amazonaws.com' && type === 'Service',
      shardIndex,
      keys: d.Keys,
      newImage: d.NewImage,
      oldImage: d.OldImage,
    },
    fail,
  );
}

/** One change row given as objects: what appendObjectRow appends. */
export interface ObjectRow {
  eventId: string;
  sequenceNumber: string;
  op: OpCode;
  eventTimeMs: number;
  sizeBytes: number;
  ttlDelete: boolean;
  shardIndex: number;
  keys: AttributeMap;
  newImage?: AttributeMap | undefined;
  oldImage?: AttributeMap | undefined;
}

/**
 * Appends one row given as objects (a stream record's, or a snapshot's: snapshotRows.ts), checking
 * its keys against the buffer's key schema. `fail` throws the caller's error, naming the record.
 * Nothing is appended unless every check passed, so a failure leaves the buffer as it was.
 */
export function appendObjectRow(
  out: ChangeBuffer,
  row: ObjectRow,
  fail: (message: string, cause?: unknown) => never,
): void {
  const keyNames = Object.keys(row.keys);
  const keyValues = out.keyAttributes.map((attr) => {
    const value = row.keys[attr.name];
    if (!value) fail(`Keys lacks key attribute ${JSON.stringify(attr.name)}`);
    const bytes = keyValueBytes(value, attr.type);
    if (!bytes) fail(`key ${JSON.stringify(attr.name)} is not of the key schema's type ${attr.type}`);
    return bytes;
  });
  if (keyNames.length !== out.keyAttributes.length) {
    fail(`Keys has attributes ${JSON.stringify(keyNames)}, the key schema has ${out.keyAttributes.length}`);
  }
  let keysJson: string;
  let newJson: string | undefined;
  let oldJson: string | undefined;
  let sortKeys: (Uint8Array | undefined)[];
  try {
    keysJson = attributeMapToJson(row.keys);
    newJson = row.newImage ? attributeMapToJson(row.newImage) : undefined;
    oldJson = row.oldImage ? attributeMapToJson(row.oldImage) : undefined;
    sortKeys = out.keyAttributes.map((attr, k) =>
      attr.type === 'N' ? decimalSortKey(keyValues[k]!, 0, keyValues[k]!.length) : undefined,
    );
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error), error);
  }

  out.eventId.appendBytes(Buffer.from(row.eventId, 'utf8'));
  out.sequenceNumber.appendBytes(Buffer.from(row.sequenceNumber, 'latin1'));
  out.keys.appendBytes(Buffer.from(keysJson, 'utf8'));
  if (newJson === undefined) out.newImage.appendNull();
  else out.newImage.appendBytes(Buffer.from(newJson, 'utf8'));
  if (oldJson === undefined) out.oldImage.appendNull();
  else out.oldImage.appendBytes(Buffer.from(oldJson, 'utf8'));
  for (let k = 0; k < keyValues.length; k++) {
    out.keyValues[k]!.appendBytes(keyValues[k]!);
    const sortKey = sortKeys[k];
    if (sortKey) out.keySortKeys[k]!.appendBytes(sortKey);
  }
  out.commitRow(row.op, row.eventTimeMs, row.sizeBytes, row.ttlDelete, row.shardIndex);
}
