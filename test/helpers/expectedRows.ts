import { type KeySchema, keyAttributes, keyColumnName } from '../../src/changelog/keySchema.js';
import { compareKeyValues } from './dynamoOrder.js';
import type { Row } from './parquetReaders.js';
import type { WireRecord } from './streamRecords.js';

/** What the segment must hold for `records`, in the order the format promises. */
export function expectedRows(schema: KeySchema, records: WireRecord[], shardId: string): Row[] {
  const attrs = keyAttributes(schema);
  const keyText = (r: WireRecord, name: string, type: 'S' | 'N' | 'B') =>
    (r.dynamodb.Keys[name] as Record<string, string>)[type]!;
  const sorted = [...records].sort((a, b) => {
    for (const attr of attrs) {
      const c = compareKeyValues(
        attr.type,
        keyText(a, attr.name, attr.type),
        keyText(b, attr.name, attr.type),
      );
      if (c !== 0) return c;
    }
    const d = BigInt(a.dynamodb.SequenceNumber) - BigInt(b.dynamodb.SequenceNumber);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  });
  return sorted.map((r) => {
    const row: Row = {
      event_id: r.eventID,
      op: r.eventName,
      event_time: Math.round(r.dynamodb.ApproximateCreationDateTime * 1000),
      sequence_number: r.dynamodb.SequenceNumber,
      shard_id: shardId,
      keys: JSON.stringify(r.dynamodb.Keys),
      new_image: r.dynamodb.NewImage ? JSON.stringify(r.dynamodb.NewImage) : null,
      old_image: r.dynamodb.OldImage ? JSON.stringify(r.dynamodb.OldImage) : null,
    };
    for (const attr of attrs) {
      const v = keyText(r, attr.name, attr.type);
      row[keyColumnName(attr.name)] = attr.type === 'B' ? Buffer.from(v, 'base64') : v;
    }
    row.size_bytes = r.dynamodb.SizeBytes;
    row.ttl_delete = r.userIdentity !== undefined;
    return row;
  });
}
