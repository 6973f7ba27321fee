/**
 * An independent oracle for DynamoDB key order, for tests: numbers compared exactly with BigInt
 * scaling (not via our sort-key encoding), strings and binary by unsigned bytes.
 */
export function compareDynamoNumbers(a: string, b: string): number {
  const x = exactDecimal(a);
  const y = exactDecimal(b);
  const e = Math.min(x.e, y.e);
  const xs = x.m * 10n ** BigInt(x.e - e);
  const ys = y.m * 10n ** BigInt(y.e - e);
  return xs < ys ? -1 : xs > ys ? 1 : 0;
}

function exactDecimal(text: string): { m: bigint; e: number } {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) throw new Error(`not a number: ${text}`);
  const digits = (match[2] ?? '') + (match[3] ?? '');
  const m = BigInt(digits || '0') * (match[1] === '-' ? -1n : 1n);
  return { m, e: Number(match[4] ?? 0) - (match[3] ?? '').length };
}

export function compareKeyValues(type: 'S' | 'N' | 'B', a: string, b: string): number {
  if (type === 'N') return compareDynamoNumbers(a, b);
  const bytes = (v: string) => (type === 'B' ? Buffer.from(v, 'base64') : Buffer.from(v, 'utf8'));
  return Buffer.compare(bytes(a), bytes(b));
}
