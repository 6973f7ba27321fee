import { z } from 'zod';
import { MANIFEST_FORMAT_VERSION, manifestSchema } from './manifest.js';

/*
 * docs/manifest.schema.json is generated from the zod schema (npm run schema:update), so the
 * published JSON Schema cannot drift from what parseManifest accepts; a test compares the file with
 * this output. Descriptions live here, keyed by property path; every property must have one and
 * every path here must exist, so a schema change forces the descriptions to follow.
 */

// A URN: the project has no canonical URL to host the schema at.
export const MANIFEST_SCHEMA_ID = 'urn:dynamodb-changelog:manifest:1';

const SEQUENCE = 'A DynamoDB Streams sequence number: 1-40 decimal digits, compared as integers.';

/** Paths: property names joined by `.`, `[]` for array items; '' is the root. */
const DESCRIPTIONS: Record<string, string> = {
  '':
    'The manifest of one sealed time window of a dynamodb-changelog: the exact list of Parquet change ' +
    'segments holding the changes of that window. Stored at ' +
    '<prefix>/<table>/manifests/dt=YYYY-MM-DD/YYYYMMDDTHHMMSSZ.json; written once, never replaced.',
  formatVersion: `Version of this manifest format; ${MANIFEST_FORMAT_VERSION} for this schema.`,
  table: 'The DynamoDB table whose stream the changes come from.',
  streamArn: 'ARN of the DynamoDB Stream the changes were read from.',
  window: 'The time window: changes are grouped by event time into windows [start, end).',
  'window.start': 'Start of the window, inclusive (ISO-8601 UTC). Equals the time in the manifest key.',
  'window.end': 'End of the window, exclusive (ISO-8601 UTC). All windows of a table have the same size.',
  sealedAt: 'When the window was closed to commits (ISO-8601 UTC); the same on every retry of its sealing.',
  version: '1 when first sealed, then +1 for every rewrite of the window by compaction or replay.',
  complete:
    "False when the window lists a gap no replay filled (records the stream trimmed before they were read). A gap filled from an incremental export makes item states complete (each changed item's final state over the export period), not every intermediate change.",
  recordCount: 'Number of change records in the window: the sum of the records of its segments.',
  lateRecordCount:
    'Records whose event time is before the window start (they arrived after their own window was sealed): the sum of the lateRecords of its segments.',
  segments: 'The Parquet change segments of the window, sorted by key. Each record is in exactly one.',
  'segments[]': 'One Parquet change segment.',
  'segments[].key':
    'Object key relative to the destination prefix: <table>/data/dt=YYYY-MM-DD/window=YYYYMMDDTHHMMSSZ/<segment-id>.parquet.',
  'segments[].streamArn':
    "ARN of the stream the segment's records were read from, when it is not the manifest's streamArn (a window holding records of a table's old stream and of its re-enabled stream).",
  'segments[].bytes': 'Size of the object in bytes.',
  'segments[].records': 'Number of rows (change records) in the segment.',
  'segments[].checksum': 'sha256:<lowercase hex> of the bytes of the object.',
  'segments[].minEventTime': 'Earliest event_time of the rows (ISO-8601 UTC).',
  'segments[].maxEventTime': 'Latest event_time of the rows (ISO-8601 UTC).',
  'segments[].lateRecords': 'Rows whose event_time is before the window start.',
  'segments[].addedInVersion':
    'The manifest version that first published the rows of the segment, when not 1 (absent: 1). A replay adds segments in version n+1 and keeps the value of the others; a compaction merges only segments of the same value and keeps it. An incremental reader that delivered the window at version v delivers exactly the segments with addedInVersion > v.',
  'segments[].source':
    'Present on a segment a replay added (absent: written by the daemon from the stream): what produced its rows. A scan or export segment holds SNAPSHOT or NET rows and lists no shards.',
  'segments[].source.kind':
    'scan (a parallel Scan of the table), export (a DynamoDB export to S3) or stream (the stream read again).',
  'segments[].source.replayId':
    "The replay that wrote the segment; its SNAPSHOT/NET rows' event ids start with it.",
  'segments[].source.mode': 'The replay mode: bootstrap, fill-gaps or rebuild.',
  'segments[].source.exportArn': 'ARN of the export the rows come from.',
  'segments[].source.exportType': 'FULL_EXPORT (SNAPSHOT rows) or INCREMENTAL_EXPORT (NET rows).',
  'segments[].source.exportTime':
    "A full export's point in time, or an incremental export's period end (ISO-8601 UTC): the rows' event time.",
  'segments[].source.exportFromTime': "An incremental export's period start (ISO-8601 UTC).",
  'segments[].source.scanStartedAt':
    "When the scan started (ISO-8601 UTC); its rows' event time is 5 s before it (a margin for eventually consistent reads and clock skew).",
  'segments[].shards':
    'Per source shard, the contiguous range of stream records the segment holds, sorted by shardId. Empty for a scan or export segment.',
  'segments[].shards[]': 'The records of one shard in the segment.',
  'segments[].shards[].shardId': 'The DynamoDB Streams shard id.',
  'segments[].shards[].afterSequenceNumber':
    'The checkpoint of the shard before this segment: the lastSequenceNumber of the previous segment of the shard, or TRIM_HORIZON for its first. Contiguity: every segment of a shard starts right after the one before it.',
  'segments[].shards[].firstSequenceNumber': `Sequence number of the first record of the shard in the segment. ${SEQUENCE}`,
  'segments[].shards[].lastSequenceNumber': `Sequence number of the last record of the shard in the segment. ${SEQUENCE}`,
  'segments[].shards[].records': 'Number of records of the shard in the segment.',
  gaps: 'Data lost before it could be read (the stream keeps records 24 hours). complete is true when the list is empty or every gap has filledBy.',
  'gaps[]': 'One gap in one shard, found when reading failed with TrimmedDataAccessException.',
  'gaps[].shardId': 'The shard with the gap.',
  'gaps[].afterSequenceNumber': `Last sequence number read before the gap; TRIM_HORIZON when nothing of the shard was read. ${SEQUENCE}`,
  'gaps[].resumedAtSequenceNumber':
    'First sequence number read after the gap; absent when the shard ended with nothing more.',
  'gaps[].fromTime': 'Event time of the last record before the gap, when known (ISO-8601 UTC).',
  'gaps[].toTime': 'Event time of the first record after the gap, when known (ISO-8601 UTC).',
  'gaps[].detectedAt': 'The clock of DynamoDB when the gap was found, when known (ISO-8601 UTC).',
  'gaps[].reason': 'Why the records are missing.',
  'gaps[].filledBy':
    'Set when a replay filled the gap (the gap stays listed, for the record); the window then counts as complete.',
  'gaps[].filledBy.replayId': 'The replay that filled the gap.',
  'gaps[].filledBy.kind': 'What the rows came from: export, scan or stream.',
  'gaps[].filledBy.exportArn': 'ARN of the export the fill read.',
  'gaps[].filledBy.scanStartedAt': 'When the scan the fill read started (ISO-8601 UTC).',
  'gaps[].filledBy.records': 'Rows the fill added to the window.',
  'gaps[].filledBy.filledAt': 'When the replay published the fill (ISO-8601 UTC).',
};

type JsonSchemaNode = Record<string, unknown>;

/** The manifest's JSON Schema (draft 2020-12), with descriptions. */
export function manifestJsonSchema(): JsonSchemaNode {
  const generated = z.toJSONSchema(manifestSchema, { target: 'draft-2020-12' }) as JsonSchemaNode;
  const used = new Set<string>();
  const describe = (node: JsonSchemaNode, path: string): JsonSchemaNode => {
    const description = DESCRIPTIONS[path];
    if (description === undefined)
      throw new Error(`manifest JSON Schema: no description for ${path || '(root)'}`);
    used.add(path);
    const out: JsonSchemaNode = { description };
    for (const [name, value] of Object.entries(node)) {
      if (name === 'description') continue;
      if (name === 'properties') {
        out.properties = Object.fromEntries(
          Object.entries(value as Record<string, JsonSchemaNode>).map(([property, child]) => [
            property,
            describe(child, path === '' ? property : `${path}.${property}`),
          ]),
        );
      } else if (name === 'items') {
        out.items = describe(value as JsonSchemaNode, `${path}[]`);
      } else {
        out[name] = value;
      }
    }
    return out;
  };
  const { $schema, ...root } = generated;
  const described = describe(root, '');
  const stale = Object.keys(DESCRIPTIONS).filter((path) => !used.has(path));
  if (stale.length > 0)
    throw new Error(`manifest JSON Schema: descriptions for unknown paths ${stale.join(', ')}`);
  return { $schema, $id: MANIFEST_SCHEMA_ID, title: 'dynamodb-changelog window manifest', ...described };
}

/** The bytes of docs/manifest.schema.json. */
export function manifestJsonSchemaText(): string {
  return `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`;
}
