import { type Command, Option } from 'commander';
import { runChanges } from '../app/changes.js';
import { CHANGES_EMITS, type ChangesOptionsInput, parseChangesConfig } from '../app/changesConfig.js';
import { TIME_ALLOWED } from '../app/commonOptions.js';
import { ROW_FORMATS } from '../read/rowWriters.js';
import { commonOption } from './commonOption.js';

export interface ChangesCommandOptions {
  /** The clock for relative times; tests pass a fixed one. */
  now?: () => number;
}

/** `changes`: what changed in a time range (or since the last run, with --cursor). */
export function registerChangesCommand(program: Command, options: ChangesCommandOptions = {}): void {
  const now = options.now ?? Date.now;
  program
    .command('changes')
    .description(
      'what changed since T: the change rows of sealed windows, the latest state per item, or load files',
    )
    .addOption(commonOption('destination', 'changelog location'))
    .addOption(commonOption('table'))
    .addOption(commonOption('since', `first window (rounded down to its window start): ${TIME_ALLOWED}`))
    .addOption(
      commonOption(
        'until',
        'windows starting before this time (default: up to where every window is sealed)',
      ),
    )
    .addOption(commonOption('s3ForcePathStyle'))
    .addOption(
      new Option('--format <format>', 'row output format (default ndjson)').choices([...ROW_FORMATS]),
    )
    .option('--output <file>', 'write to this file (atomically, at the end) instead of stdout')
    .option('--columns <list>', 'comma-separated columns to output, in order (default: all)')
    .option('--key <pk=value[,sk=value]>', "one item's history (or a JSON object of its key attributes)")
    .option('--latest', 'one row per item: its latest change (items deleted last are left out)')
    .option('--include-deletes', 'with --latest: keep items deleted last, as their REMOVE row (tombstones)')
    .option('--cursor <file>', 'incremental: deliver what is new since the cursor, then advance it')
    .addOption(
      new Option('--emit <what>', 'hand off files instead of rows (default rows)').choices([
        ...CHANGES_EMITS,
      ]),
    )
    .option('--target-table <name>', 'with --emit redshift-sql: the table to merge into')
    .option('--iam-role <arn>', 'with --emit redshift-sql: the role COPY uses to read S3')
    .option(
      '--manifest-url <s3url>',
      'with --emit redshift-sql: where the redshift-manifest output was uploaded',
    )
    .option('--region <region>', "with --emit redshift-sql: the bucket's region, when not the cluster's")
    .addHelpText(
      'after',
      `
Rows come from sealed windows only, each exactly once, late records with the window that holds
them. stderr says up to when the answer is complete and whether a window in it lists a gap.
With --cursor, repeated runs deliver every change exactly once; the cursor advances only after
the output is fully written. Exit codes: 0 done, 2 bad flags, an unknown table, or changelog
data that is missing or damaged (the message names the object), 1 anything unexpected.`,
    )
    .action(async (flags: ChangesOptionsInput) => {
      const config = parseChangesConfig(flags, now());
      await runChanges(config, { stdout: process.stdout, stderr: process.stderr });
    });
}
