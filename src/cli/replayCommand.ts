import { type Command, Option } from 'commander';
import { TIME_ALLOWED } from '../app/commonOptions.js';
import { runReplay } from '../app/replay.js';
import {
  parseReplayConfig,
  REPLAY_PROGRESS,
  REPLAY_SOURCES,
  type ReplayOptionsInput,
} from '../app/replayConfig.js';
import { REPLAY_MODES } from '../changelog/manifest.js';
import { DEFAULTS } from '../coordination/config.js';
import { formatByteSize, formatDuration } from '../support/duration.js';
import { commonOption } from './commonOption.js';

export interface ReplayCommandOptions {
  /** The clock for relative times; tests pass a fixed one. */
  now?: () => number;
}

/** `replay`: writes a table's state or a time range into the changelog from a scan, an export or the stream. */
export function registerReplayCommand(program: Command, options: ReplayCommandOptions = {}): void {
  const now = options.now ?? Date.now;
  program
    .command('replay')
    .description(
      'backfill or rebuild the changelog: bootstrap it from a scan or full export, fill its gaps from an incremental export or the stream, rebuild windows from the stream',
    )
    .addOption(commonOption('destination', 'changelog location'))
    .addOption(commonOption('table'))
    .addOption(commonOption('leaseTable', "the daemon's lease table (replay progress is kept there too)"))
    .addOption(new Option('--mode <mode>', 'what to replay').choices([...REPLAY_MODES]))
    .addOption(new Option('--source <source>', 'where to read it').choices([...REPLAY_SOURCES]))
    .addOption(
      commonOption('since', `fill-gaps, rebuild: the first window to look at (required): ${TIME_ALLOWED}`),
    )
    .addOption(
      commonOption('until', 'fill-gaps, rebuild: windows before this time (default: all sealed ones)'),
    )
    .option(
      '--export <url>',
      "--source export: an export's folder, s3://.../AWSDynamoDB/<ExportId>/ or file:///...",
    )
    .option('--start-export', '--source export: have DynamoDB export the table first, then read that export')
    .option(
      '--export-to <url>',
      '--start-export: the s3://bucket/prefix DynamoDB exports to (default: <destination>/<table>/exports/ on S3)',
    )
    .option(
      '--export-from <time>',
      '--start-export with fill-gaps: start of the incremental export (required)',
    )
    .option(
      '--export-until <time>',
      '--start-export: end of the incremental export (required, 15m to 24h after --export-from), or the time of a full export (default now)',
    )
    .option(
      '--segments <n>',
      `--source scan: parallel scan segments, 1 to 1000000 (default ${DEFAULTS.replay.scanSegments})`,
    )
    .option(
      '--max-rcu-per-second <rcu>',
      '--source scan: read capacity units a second at most (default: no limit)',
    )
    .option(
      '--replay-id <id>',
      'name of this replay, 1-64 of A-Z a-z 0-9 - _ (default: derived from the flags, so the same command resumes)',
    )
    .option('--dry-run', 'say what would be replayed and written, write nothing')
    .option(
      '--wait-for-seal <duration>',
      `wait this long for the windows to be sealed (default ${formatDuration(DEFAULTS.replay.waitForSealMs)}: refuse at once)`,
    )
    .option(
      '--max-segment-bytes <size>',
      `flush a replay segment at this many uncompressed bytes (default ${formatByteSize(DEFAULTS.buffer.maxSegmentBytes)}, at least 1MiB)`,
    )
    .addOption(
      new Option('--progress <how>', 'progress on stderr (default: tty on a terminal, else json)').choices([
        ...REPLAY_PROGRESS,
      ]),
    )
    .addOption(commonOption('s3ForcePathStyle'))
    .addHelpText(
      'after',
      `
Recipes:
  bootstrap (a changelog that starts after the table did): the whole table, as SNAPSHOT rows
    replay --mode bootstrap --source scan [--segments 64 --max-rcu-per-second 2000]
    replay --mode bootstrap --source export --start-export     (needs point-in-time recovery)
  fill gaps (a manifest lists a gap: the stream trimmed records before they were read)
    replay --mode fill-gaps --source export --start-export --since T --export-from A --export-until B
  rebuild (segment objects lost or damaged: re-read from the stream, within its 24 h retention)
    replay --mode rebuild --source stream --since T [--until U] [--dry-run]
Each replay publishes new manifest versions beside the old ones, never over them. Running the
same command again resumes it (the default --replay-id comes from the flags; use absolute times).
Exit codes: 0 done, 2 bad flags, an unknown table, or changelog data that is missing or damaged
(the message names the object), 1 anything unexpected.`,
    )
    .action(async (flags: ReplayOptionsInput) => {
      const config = parseReplayConfig({ ...flags, isTty: process.stderr.isTTY === true }, now());
      await runReplay(config, { stdout: process.stdout, stderr: process.stderr });
    });
}
