/**
 * The public API of dynamodb-changelog: what is supported and documented (README "Library").
 * Everything not exported here is internal and may change in any release.
 *
 * - Run the daemon from code: `parseRunConfig` (or build a `RunConfig` from the config groups and
 *   `DEFAULTS`), `runDaemon`, and a `PipelineObserver` to be told what it does.
 * - Read a changelog: `openChangelog` (sealed windows, completeness, rows), one item's history,
 *   the latest state per key, the incremental cursor, output writers and warehouse hand-off
 *   (what `changes` does: `runChanges`), and `verifyChangelog`.
 * - Backfill and repair: `runReplay(parseReplayConfig(flags, now), io)` (what `replay` does).
 * - The format: manifest and segment types, the S3 layout's keys, sequence-number order, the
 *   invariants and their violation kinds.
 * - The errors every call may throw.
 */

export { type ChangesIo, type ChangesResult, runChanges } from './app/changes.js';
export { type ChangesConfig, type ChangesEmit, parseChangesConfig } from './app/changesConfig.js';
// Running the daemon
export { type DaemonOptions, type DaemonResult, runDaemon } from './app/daemon.js';
export { type ReplayIo, type ReplayResult, runReplay } from './app/replay.js';
export {
  parseReplayConfig,
  type ReplayConfig,
  type ReplayOptionsInput,
  type ReplaySource,
} from './app/replayConfig.js';
export { parseRunConfig, RUN_OPTIONS, type RunConfig, type SourceConfig } from './app/runConfig.js';
// The format
export { VIOLATION_KINDS, type Violation, type ViolationKind } from './changelog/invariants.js';
export { type KeyAttribute, type KeySchema, parseKeySchema } from './changelog/keySchema.js';
export { manifestObjectKey, segmentObjectKey, windowStartOf } from './changelog/layout.js';
export {
  MANIFEST_FORMAT_VERSION,
  type Manifest,
  type ManifestGap,
  type ManifestSegment,
  type ManifestShard,
  manifestSchema,
  parseManifest,
} from './changelog/manifest.js';
export {
  type CellValue,
  readSegmentBatches,
  type SegmentBatch,
} from './changelog/parquetDecoder.js';
export { plainJsonFromDynamoJson } from './changelog/plainJson.js';
export { SEGMENT_FORMAT_VERSION } from './changelog/segmentEncoder.js';
export { compareSequenceNumbers, SHARD_END, TRIM_HORIZON } from './changelog/sequenceNumber.js';
export {
  type BufferConfig,
  DEFAULTS,
  type DestinationConfig,
  type LeaseConfig,
  type OperationsConfig,
  type OrphanConfig,
  type PipelineConfig,
  type PipelineOverrides,
  pipelineConfig,
  type ReadConfig,
  type StreamConfig,
  type WindowConfig,
} from './coordination/config.js';
// Reading a changelog
export type { ObjectInfo, ObjectStore } from './coordination/objectStore.js';
export { openDestination, openObjectStore } from './coordination/openObjectStore.js';
export {
  type CommitFailureKind,
  type CommittedSegment,
  combineObservers,
  type LeaseChange,
  type PipelineObserver,
  type WindowSealed,
} from './coordination/pipelineObserver.js';
export {
  type Changelog,
  type ChangelogSegment,
  type ChangelogStatus,
  type OpenChangelogOptions,
  openChangelog,
  type RowsOptions,
  type SealedWindow,
  type WindowRange,
} from './read/changelog.js';
export type { ChangeOp, ChangeRow } from './read/changeRow.js';
export {
  type BatchPart,
  type BatchPlan,
  batchWindows,
  type ChangesCursor,
  type PlanBatchOptions,
  planBatch,
} from './read/cursor.js';
export { readCursorFile, writeCursorFile } from './read/cursorFile.js';
export { duckdbScript } from './read/duckdbScript.js';
export { rowsForKey } from './read/keyLookup.js';
export { latestPerKey } from './read/latestMerge.js';
export {
  type ListManifestsOptions,
  listManifests,
  type ManifestListing,
  readManifest,
} from './read/manifestReader.js';
export { redshiftLoadSql, redshiftManifest } from './read/redshift.js';
export { openRowWriter, ROW_FORMATS, type RowFormat, type RowWriter } from './read/rowWriters.js';
export {
  type VerifyGap,
  type VerifyOptions,
  type VerifyProgress,
  type VerifyReport,
  verifyChangelog,
} from './read/verifier.js';
// Errors
export {
  ChangelogError,
  ChangelogIntegrityError,
  ConfigError,
  ExportError,
  isRetriable,
  LeaseLostError,
  MalformedRecordError,
  ObjectConflictError,
  ObjectStoreError,
  SegmentEncodeError,
  StreamError,
  TableScanError,
  WindowClosedError,
} from './support/errors.js';
export { createLogger, type Logger, type LogLevel } from './support/logger.js';
