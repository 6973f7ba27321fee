import { startForwardingProxy } from './forwardingProxy.js';

/*
 * A proxy in front of DynamoDB Local's Streams API that makes its GetRecords answers show two
 * things real DynamoDB does and DynamoDB Local cannot:
 *
 * - TTL deletes. DynamoDB Local never deletes by TTL, so no REMOVE of its carries the TTL service's
 *   identity. REMOVE records for which `isTtlDelete` says yes get
 *   `"userIdentity":{"principalId":"dynamodb.amazonaws.com","type":"Service"}` spliced in after
 *   their eventID: every other byte stays as DynamoDB Local sent it, and `x-amz-crc32` is
 *   recomputed (by forwardingProxy.ts) so the reader's integrity check still holds.
 * - Records that become readable after the reader was told it is caught up (on DynamoDB, a record
 *   stamped before an empty read can still arrive after it). `setClockOffset(ms)` moves the
 *   answers' `Date` header ahead: a worker's "caught up at" time, the watermark's input for a
 *   shard read to its tip, then runs ahead of the records still to come, windows close before
 *   those records are read, and they land in a later window as late records.
 *
 * Everything else is relayed unchanged. Answers are buffered whole (Streams answers are at most
 * ~1 MB).
 */

/** A stream record as the rewrite sees it (DynamoDB JSON, parsed). */
export interface StreamRecordJson {
  eventID?: string;
  eventName?: string;
  userIdentity?: unknown;
  dynamodb?: { Keys?: Record<string, unknown>; OldImage?: Record<string, unknown> };
}

export interface StreamsRewriteProxyOptions {
  /** Which REMOVE records to present as TTL deletes. Default: none. */
  isTtlDelete?: (record: StreamRecordJson) => boolean;
}

export interface StreamsRewriteCounts {
  getRecords: number;
  /** REMOVE records given the TTL identity (a record read twice counts twice). */
  ttlDeletes: number;
  /** GetRecords answers whose `Date` was moved. */
  shiftedDates: number;
  /** Answers the rewrite failed on (relayed as a 500, so the reader retries): should stay empty. */
  errors: string[];
}

export interface StreamsRewriteProxy {
  /** `http://127.0.0.1:<port>`: give it as AWS_ENDPOINT_URL_DYNAMODB_STREAMS. */
  readonly endpoint: string;
  /** Moves GetRecords answers' `Date` header by this much (0: unchanged). */
  setClockOffset(ms: number): void;
  readonly counts: StreamsRewriteCounts;
  stop(): Promise<void>;
}

const GET_RECORDS = 'DynamoDBStreams_20120810.GetRecords';
const TTL_IDENTITY = ',"userIdentity":{"principalId":"dynamodb.amazonaws.com","type":"Service"}';

export async function startStreamsRewriteProxy(
  target: string,
  options: StreamsRewriteProxyOptions = {},
): Promise<StreamsRewriteProxy> {
  const counts: StreamsRewriteCounts = { getRecords: 0, ttlDeletes: 0, shiftedDates: 0, errors: [] };
  const isTtlDelete = options.isTtlDelete ?? (() => false);
  let clockOffsetMs = 0;

  const proxy = await startForwardingProxy({
    target,
    name: 'streams rewrite proxy',
    maxSockets: 64,
    handle({ req, forward }) {
      const isGetRecords = req.headers['x-amz-target'] === GET_RECORDS;
      if (isGetRecords) counts.getRecords++;
      // Identity encoding, so the answer's text can be rewritten.
      forward({
        identityEncoding: true,
        onAnswer(answer) {
          if (!isGetRecords || answer.status !== 200) return answer;
          let rewritten: { body: Buffer; marked: number };
          try {
            rewritten = markTtlDeletes(answer.body, isTtlDelete);
          } catch (error) {
            counts.errors.push(String(error));
            return {
              status: 500,
              headers: { 'content-type': 'text/plain' },
              body: Buffer.from(`streams rewrite proxy: ${String(error)}`),
            };
          }
          if (rewritten.marked > 0) {
            counts.ttlDeletes += rewritten.marked;
            answer.body = rewritten.body;
          }
          const date = answer.headers['date'];
          if (clockOffsetMs !== 0 && typeof date === 'string') {
            answer.headers['date'] = new Date(Date.parse(date) + clockOffsetMs).toUTCString();
            counts.shiftedDates++;
          }
          return answer;
        },
      });
    },
  });
  return {
    endpoint: proxy.endpoint,
    setClockOffset(ms: number) {
      clockOffsetMs = ms;
    },
    counts,
    stop: () => proxy.stop(),
  };
}

/**
 * Splices the TTL identity into the chosen REMOVE records of a GetRecords answer, right after
 * their `"eventID":"..."` member, leaving the rest of the text as it was.
 */
function markTtlDeletes(
  body: Buffer,
  isTtlDelete: (record: StreamRecordJson) => boolean,
): { body: Buffer; marked: number } {
  const text = body.toString('utf8');
  const records = (JSON.parse(text) as { Records?: StreamRecordJson[] }).Records ?? [];
  let out = text;
  let marked = 0;
  for (const record of records) {
    if (record.eventName !== 'REMOVE' || record.userIdentity !== undefined || !isTtlDelete(record)) continue;
    const id = JSON.stringify(record.eventID);
    const member = new RegExp(`"eventID"\\s*:\\s*${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).exec(out);
    // A record the splice cannot place would silently stay a user delete: refuse instead.
    if (member === null) throw new Error(`streams rewrite proxy: no eventID member ${id} in the answer`);
    const at = member.index + member[0].length;
    out = out.slice(0, at) + TTL_IDENTITY + out.slice(at);
    marked++;
  }
  return { body: marked === 0 ? body : Buffer.from(out, 'utf8'), marked };
}
