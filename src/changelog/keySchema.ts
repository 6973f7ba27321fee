import { SegmentEncodeError } from '../support/errors.js';

export type KeyAttributeType = 'S' | 'N' | 'B';

export interface KeyAttribute {
  /** The DynamoDB attribute name. */
  name: string;
  type: KeyAttributeType;
}

/** The table's primary key, from DescribeTable's KeySchema + AttributeDefinitions. */
export interface KeySchema {
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
}

/** Fixed columns of a change segment; a key attribute with one of these names gets a `key_` prefix. */
export const FIXED_COLUMNS = [
  'event_id',
  'op',
  'event_time',
  'sequence_number',
  'shard_id',
  'keys',
  'new_image',
  'old_image',
  'size_bytes',
  'ttl_delete',
] as const;

const reserved = new Set<string>(FIXED_COLUMNS);

/** The Parquet column name of a key attribute's typed column. */
export function keyColumnName(attributeName: string): string {
  return reserved.has(attributeName) ? `key_${attributeName}` : attributeName;
}

export function keyAttributes(schema: KeySchema): KeyAttribute[] {
  return schema.sortKey ? [schema.partitionKey, schema.sortKey] : [schema.partitionKey];
}

interface TableKeyDescription {
  KeySchema?: { AttributeName?: string; KeyType?: string }[];
  AttributeDefinitions?: { AttributeName?: string; AttributeType?: string }[];
}

/** Builds a KeySchema from a DescribeTable `Table` description. */
export function keySchemaFromTable(table: TableKeyDescription): KeySchema {
  const typeOf = (name: string): KeyAttributeType => {
    const def = table.AttributeDefinitions?.find((d) => d.AttributeName === name);
    const type = def?.AttributeType;
    if (type !== 'S' && type !== 'N' && type !== 'B') {
      throw new SegmentEncodeError(`key attribute ${name} has no S/N/B AttributeDefinition (got ${type})`);
    }
    return type;
  };
  const hash = table.KeySchema?.find((k) => k.KeyType === 'HASH')?.AttributeName;
  const range = table.KeySchema?.find((k) => k.KeyType === 'RANGE')?.AttributeName;
  if (!hash) throw new SegmentEncodeError('table description has no HASH key');
  const schema: KeySchema = { partitionKey: { name: hash, type: typeOf(hash) } };
  if (range) schema.sortKey = { name: range, type: typeOf(range) };
  return schema;
}

/**
 * Parses the compact form `pk:S` or `pk:S,sk:N` (used by flags and tests). Names may contain any
 * character but `,`; the type is after the last `:`.
 */
export function parseKeySchema(spec: string): KeySchema {
  const parts = spec.split(',').map((p) => p.trim());
  if (parts.length < 1 || parts.length > 2 || parts.some((p) => p === '')) {
    throw new SegmentEncodeError(
      `key schema ${JSON.stringify(spec)}: expected "name:TYPE" or "name:TYPE,name:TYPE" with TYPE one of S, N, B`,
    );
  }
  const attrs = parts.map((p) => {
    const colon = p.lastIndexOf(':');
    const name = p.slice(0, colon);
    const type = p.slice(colon + 1);
    if (colon <= 0 || (type !== 'S' && type !== 'N' && type !== 'B')) {
      throw new SegmentEncodeError(
        `key schema ${JSON.stringify(spec)}: ${JSON.stringify(p)} is not "name:TYPE" with TYPE one of S, N, B`,
      );
    }
    return { name, type } as KeyAttribute;
  });
  const [partitionKey, sortKey] = attrs as [KeyAttribute, KeyAttribute | undefined];
  if (sortKey && keyColumnName(sortKey.name) === keyColumnName(partitionKey.name)) {
    throw new SegmentEncodeError(
      `key schema ${JSON.stringify(spec)}: partition and sort key have the same name`,
    );
  }
  return sortKey ? { partitionKey, sortKey } : { partitionKey };
}

export function formatKeySchema(schema: KeySchema): string {
  return keyAttributes(schema)
    .map((a) => `${a.name}:${a.type}`)
    .join(',');
}
