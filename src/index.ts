/**
 * The public API of dynamodb-changelog: what is supported and documented (README "Library").
 * Everything not exported here is internal and may change in any release.
 *
 * - Run the daemon from code: `parseRunConfig` (or build a `RunConfig` from the config groups and
 *   `DEFAULTS`), `runDaemon`, and a `PipelineObserver` to be told what it does.
 * - Read a changelog: open its store, list the sealed manifests, decode segments, verify.
 * - The format: manifest and segment types, the S3 layout's keys, sequence-number order, the
 *   invariants and their violation kinds.
 * - The errors every call may throw.
 */

// Running the daemon
export { type DaemonOptions, type DaemonResult, runDaemon } from './app/daemon.js';
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
  type SealedWindow,
} from './coordination/pipelineObserver.js';
export {
  type ListManifestsOptions,
  listManifests,
  type ManifestListing,
  readManifest,
} from './read/manifestReader.js';
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
  ConfigError,
  isRetriable,
  LeaseLostError,
  MalformedRecordError,
  ObjectConflictError,
  ObjectStoreError,
  SegmentEncodeError,
  StreamError,
  WindowClosedError,
} from './support/errors.js';
export { createLogger, type Logger, type LogLevel } from './support/logger.js';
