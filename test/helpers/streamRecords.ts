/**
 * Factories for DynamoDB Streams records in wire JSON form (what GetRecords sends), seeded so runs
 * repeat. Used by tests and by scripts/benchEncode.ts.
 */

import { seededRandom } from '../../src/support/random.js';

export type WireAttributeValue =
  | { S: string }
  | { N: string }
  | { B: string }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: string[] }
  | { M: Record<string, WireAttributeValue> }
  | { L: WireAttributeValue[] }
  | { NULL: true }
  | { BOOL: boolean };

export type WireItem = Record<string, WireAttributeValue>;

export interface WireRecord {
  awsRegion: string;
  dynamodb: {
    ApproximateCreationDateTime: number;
    Keys: WireItem;
    NewImage?: WireItem;
    OldImage?: WireItem;
    SequenceNumber: string;
    SizeBytes: number;
    StreamViewType: StreamViewType;
  };
  eventID: string;
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  eventSource: 'aws:dynamodb';
  eventVersion: '1.1';
  userIdentity?: { PrincipalId: string; Type: string };
}

export type StreamViewType = 'KEYS_ONLY' | 'NEW_IMAGE' | 'OLD_IMAGE' | 'NEW_AND_OLD_IMAGES';

/** mulberry32: small, fast, seeded (the demo producer's). */
export const rng: (seed: number) => () => number = seededRandom;

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];

function digits(random: () => number, n: number): string {
  let s = String(1 + Math.floor(random() * 9));
  while (s.length < n) s += String(Math.floor(random() * 10));
  return s;
}

function base64Bytes(random: () => number, n: number): string {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
  return b.toString('base64');
}

/** A realistic ~900-byte object: nested maps, lists, sets, 38-digit numbers, binary. */
export function realisticItem(random: () => number, pk: string, sk: string, version: number): WireItem {
  const word = () => WORDS[Math.floor(random() * WORDS.length)]!;
  return {
    pk: { S: pk },
    sk: { N: sk },
    version: { N: String(version) },
    name: { S: `${word()} ${word()} ${word()} object ${Math.floor(random() * 1e6)}` },
    status: { S: random() < 0.5 ? 'ACTIVE' : 'PENDING' },
    owner: { S: `user-${digits(random, 8)}@example.com` },
    balance: { N: `${digits(random, 20)}.${digits(random, 18)}` },
    bigCounter: { N: digits(random, 38) },
    ratio: { N: `-${digits(random, 5)}E-${10 + Math.floor(random() * 100)}` },
    tags: { SS: [`${word()}-1`, `${word()}-2`, `${word()}-3`] },
    scores: { NS: [digits(random, 3), `${digits(random, 2)}.5`, digits(random, 12)] },
    checksum: { B: base64Bytes(random, 32) },
    active: { BOOL: random() < 0.5 },
    deletedAt: { NULL: true },
    address: {
      M: {
        street: { S: `${Math.floor(random() * 999)} ${word()} street` },
        city: { S: word() },
        zip: { S: digits(random, 5) },
        geo: {
          M: {
            lat: { N: `${digits(random, 2)}.${digits(random, 6)}` },
            lon: { N: `-${digits(random, 3)}.${digits(random, 6)}` },
          },
        },
      },
    },
    history: {
      L: [
        { M: { at: { N: digits(random, 13) }, by: { S: word() }, action: { S: 'update' } } },
        { M: { at: { N: digits(random, 13) }, by: { S: word() }, action: { S: 'review' } } },
        { M: { at: { N: digits(random, 13) }, by: { S: word() }, action: { S: 'approve' } } },
        { M: { at: { N: digits(random, 13) }, by: { S: word() }, action: { S: 'create' } } },
      ],
    },
    description: { S: Array.from({ length: 40 }, word).join(' ') },
    metrics: {
      M: {
        views: { N: digits(random, 7) },
        clicks: { N: digits(random, 5) },
        revenue: { N: `${digits(random, 9)}.${digits(random, 4)}` },
        score: { N: `0.${digits(random, 16)}` },
        rank: { N: digits(random, 3) },
        latencyP50: { N: `${digits(random, 3)}.${digits(random, 3)}` },
        latencyP99: { N: `${digits(random, 4)}.${digits(random, 3)}` },
      },
    },
    attributes: {
      M: {
        color: { S: word() },
        size: { N: digits(random, 2) },
        labels: { L: [{ S: word() }, { S: word() }] },
      },
    },
  };
}

export interface PageOptions {
  seed?: number;
  records: number;
  startSequence?: bigint;
  startTimeSeconds?: number;
  viewType?: StreamViewType;
  keyCount?: number;
  /** Share of REMOVEs done by TTL (service principal). */
  ttlShare?: number;
  /** Item versions by key; pass the same map across calls to continue one table's history. */
  versions?: Map<number, number>;
}

/** Generates `records` wire records over `keyCount` keys with INSERT/MODIFY/REMOVE. */
export function generateRecords(options: PageOptions): WireRecord[] {
  const random = rng(options.seed ?? 1);
  const viewType = options.viewType ?? 'NEW_AND_OLD_IMAGES';
  const keyCount = options.keyCount ?? Math.max(1, Math.floor(options.records / 3));
  let seq = options.startSequence ?? 100000000000000000000n;
  let time = options.startTimeSeconds ?? 1_760_000_000;
  const versions = options.versions ?? new Map<number, number>();
  const out: WireRecord[] = [];
  for (let i = 0; i < options.records; i++) {
    const k = Math.floor(random() * keyCount);
    const pk = `tenant-${k % 97}#object-${k}`;
    const sk = String(k % 13);
    const version = versions.get(k) ?? 0;
    const exists = version > 0;
    const r = random();
    const eventName: WireRecord['eventName'] = !exists ? 'INSERT' : r < 0.15 ? 'REMOVE' : 'MODIFY';
    const newItem = eventName === 'REMOVE' ? undefined : realisticItem(random, pk, sk, version + 1);
    const oldItem = exists ? realisticItem(random, pk, sk, version) : undefined;
    versions.set(k, eventName === 'REMOVE' ? 0 : version + 1);
    seq += BigInt(1 + Math.floor(random() * 1000));
    if (random() < 0.05) time += 1;
    const keys: WireItem = { pk: { S: pk }, sk: { N: sk } };
    const ttl = eventName === 'REMOVE' && random() < (options.ttlShare ?? 0.2);
    const record: WireRecord = {
      awsRegion: 'us-east-1',
      dynamodb: {
        ApproximateCreationDateTime: time,
        Keys: keys,
        SequenceNumber: String(seq),
        SizeBytes: 100 + Math.floor(random() * 900),
        StreamViewType: viewType,
      },
      eventID: digits(random, 8) + Buffer.from(String(seq)).toString('hex').slice(0, 24),
      eventName,
      eventSource: 'aws:dynamodb',
      eventVersion: '1.1',
    };
    if (newItem && (viewType === 'NEW_IMAGE' || viewType === 'NEW_AND_OLD_IMAGES'))
      record.dynamodb.NewImage = newItem;
    if (oldItem && (viewType === 'OLD_IMAGE' || viewType === 'NEW_AND_OLD_IMAGES'))
      record.dynamodb.OldImage = oldItem;
    if (ttl) record.userIdentity = { PrincipalId: 'dynamodb.amazonaws.com', Type: 'Service' };
    out.push(record);
  }
  return out;
}

/** A GetRecords response body as DynamoDB Streams sends it. */
export function getRecordsResponse(records: readonly WireRecord[], nextShardIterator?: string): Uint8Array {
  const body: Record<string, unknown> = { Records: records };
  if (nextShardIterator !== undefined) body.NextShardIterator = nextShardIterator;
  return Buffer.from(JSON.stringify(body), 'utf8');
}
