/**
 * DynamoDB AttributeValues as the AWS SDK returns them (binary as Uint8Array), or as wire JSON
 * parsed into objects (binary as base64 strings), serialised back to DynamoDB JSON text: the format
 * the change segments store. Numbers are copied as the exact strings DynamoDB gave (never through
 * float64), sets stay sets, and binary becomes base64 as on the wire.
 */
export type AttributeValueObject =
  | { S: string }
  | { N: string }
  | { B: Uint8Array | string }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: (Uint8Array | string)[] }
  | { M: Record<string, AttributeValueObject> }
  | { L: AttributeValueObject[] }
  | { NULL: boolean }
  | { BOOL: boolean };

export type AttributeMap = Record<string, AttributeValueObject>;

export function attributeMapToJson(map: AttributeMap): string {
  let out = '{';
  let first = true;
  for (const name of Object.keys(map)) {
    const value = map[name];
    if (value === undefined) {
      // DynamoDB has no undefined. The AWS SDK's deserialiser produces it for attributes named
      // "__proto__" (the value is lost before we see it): refuse rather than drop the attribute.
      throw new TypeError(
        `attribute ${JSON.stringify(name)} has no value${name === '__proto__' ? ' (the AWS SDK loses values of attributes named "__proto__"; decode the raw GetRecords bytes instead)' : ''}`,
      );
    }
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(name);
    out += ':';
    out += attributeValueToJson(value);
  }
  return out + '}';
}

export function attributeValueToJson(value: AttributeValueObject): string {
  const v = value as Partial<Record<string, unknown>>;
  if (v.S !== undefined) return `{"S":${JSON.stringify(v.S)}}`;
  if (v.N !== undefined) return `{"N":${JSON.stringify(checkNumber(v.N))}}`;
  if (v.B !== undefined) return `{"B":${JSON.stringify(base64(v.B as Uint8Array | string))}}`;
  if (v.M !== undefined) return `{"M":${attributeMapToJson(v.M as AttributeMap)}}`;
  if (v.L !== undefined)
    return `{"L":[${(v.L as AttributeValueObject[]).map(attributeValueToJson).join(',')}]}`;
  if (v.SS !== undefined) return `{"SS":${JSON.stringify(v.SS)}}`;
  if (v.NS !== undefined) return `{"NS":${JSON.stringify((v.NS as unknown[]).map(checkNumber))}}`;
  if (v.BS !== undefined) return `{"BS":${JSON.stringify((v.BS as (Uint8Array | string)[]).map(base64))}}`;
  if (v.BOOL !== undefined) return `{"BOOL":${v.BOOL === true}}`;
  if (v.NULL !== undefined) return `{"NULL":${v.NULL === true}}`;
  throw new TypeError(`not a DynamoDB AttributeValue: members ${JSON.stringify(Object.keys(value))}`);
}

/** The typed value of a key attribute as bytes: UTF-8 for S, number text for N, raw for B. */
export function keyValueBytes(value: AttributeValueObject, type: 'S' | 'N' | 'B'): Uint8Array | undefined {
  const v = value as Partial<Record<string, unknown>>;
  if (type === 'S' && typeof v.S === 'string') return Buffer.from(v.S, 'utf8');
  if (type === 'N' && typeof v.N === 'string') return Buffer.from(checkNumber(v.N), 'latin1');
  if (type === 'B' && v.B !== undefined) {
    return typeof v.B === 'string' ? Buffer.from(v.B, 'base64') : (v.B as Uint8Array);
  }
  return undefined;
}

function base64(value: Uint8Array | string): string {
  if (typeof value === 'string') return value;
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
}

function checkNumber(value: unknown): string {
  // Numbers must stay the strings DynamoDB sent; a JS number here would already have lost digits.
  if (typeof value !== 'string') throw new TypeError(`DynamoDB number must be a string, got ${typeof value}`);
  return value;
}
