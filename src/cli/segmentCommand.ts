import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ChangeBuffer } from '../changelog/changeBuffer.js';
import { type KeySchema, parseKeySchema } from '../changelog/keySchema.js';
import { SEGMENT_COMPRESSIONS, type SegmentCompression } from '../changelog/parquetEncoder.js';
import { encodeSegment } from '../changelog/segmentEncoder.js';
import { decodeGetRecordsResponse } from '../changelog/wireRecordDecoder.js';
import { sha256Checksum } from '../coordination/objectStore.js';
import { ConfigError } from '../support/errors.js';

interface SegmentFlags {
  keySchema?: string;
  shardId?: string;
  compression: string;
  output?: string;
}

/**
 * `segment`: encodes captured GetRecords responses (raw JSON, as the Streams API sent them) into one
 * change segment. For inspecting what the daemon would write for a page, and for reproducing a
 * decode problem from a captured response without AWS.
 */
export function registerSegmentCommand(program: Command): void {
  program
    .command('segment')
    .description('encode captured GetRecords response files into one Parquet change segment')
    .argument('<responses...>', 'GetRecords response bodies (JSON files), in stream order')
    .requiredOption('--key-schema <spec>', 'table key schema, e.g. "pk:S" or "pk:S,sk:N" (types S, N, B)')
    .requiredOption('--shard-id <id>', 'shard the responses were read from')
    .option('--compression <codec>', `Parquet compression: ${SEGMENT_COMPRESSIONS.join(', ')}`, 'zstd')
    .requiredOption('-o, --output <file>', 'where to write the Parquet segment')
    .action(async (files: string[], flags: SegmentFlags) => {
      const { keySchema, compression } = validate(flags);
      const buffer = new ChangeBuffer(keySchema);
      for (const file of files) decodeGetRecordsResponse(await readFile(file), flags.shardId!, buffer);
      if (buffer.rowCount === 0)
        throw new ConfigError([`the responses (${files.join(', ')}) hold no records`]);
      const segment = encodeSegment(buffer, { compression });
      await writeFile(flags.output!, segment.bytes);
      const summary = {
        output: flags.output,
        records: segment.records,
        bytes: segment.bytes.length,
        checksum: sha256Checksum(segment.bytes),
        minEventTime: new Date(segment.minEventTimeMs).toISOString(),
        maxEventTime: new Date(segment.maxEventTimeMs).toISOString(),
        shards: segment.shards,
      };
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    });
}

/** Checks every flag and reports all problems at once. */
function validate(flags: SegmentFlags): { keySchema: KeySchema; compression: SegmentCompression } {
  const problems: string[] = [];
  let keySchema: KeySchema | undefined;
  try {
    keySchema = parseKeySchema(flags.keySchema ?? '');
  } catch (error) {
    problems.push(`--key-schema: ${(error as Error).message}`);
  }
  if (!SEGMENT_COMPRESSIONS.includes(flags.compression as SegmentCompression)) {
    problems.push(
      `--compression: ${JSON.stringify(flags.compression)} is not one of ${SEGMENT_COMPRESSIONS.join(', ')}`,
    );
  }
  if (!flags.shardId?.trim()) problems.push('--shard-id: must not be empty');
  if (problems.length > 0 || !keySchema) throw new ConfigError(problems);
  return { keySchema, compression: flags.compression as SegmentCompression };
}
