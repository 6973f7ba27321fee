/** Public API of dynamodb-changelog. Anything not exported here is internal. */

export { type DaemonOptions, type DaemonResult, runDaemon } from './app/daemon.js';
export {
  type ObservabilityServer,
  type ObservabilityServerOptions,
  startObservabilityServer,
} from './app/httpServer.js';
export { ChangelogMetrics, type MetricsSnapshot, type MetricsSources } from './app/metrics.js';
export { parseRunConfig, RUN_OPTIONS, type RunConfig } from './app/runConfig.js';
export {
  StallDetector,
  type StallDetectorOptions,
  type StalledShard,
} from './app/stallDetector.js';
export { segmentSchema } from './changelog/arrowBatch.js';
export {
  type AttributeMap,
  type AttributeValueObject,
  attributeMapToJson,
} from './changelog/attributeValueJson.js';
export { ChangeBuffer, OP_NAMES } from './changelog/changeBuffer.js';
export { VIOLATION_KINDS, type Violation, type ViolationKind } from './changelog/invariants.js';
export {
  formatKeySchema,
  type KeyAttribute,
  type KeyAttributeType,
  type KeySchema,
  keyColumnName,
  keySchemaFromTable,
  parseKeySchema,
} from './changelog/keySchema.js';
export {
  dtOf,
  manifestObjectKey,
  parseManifestKey,
  segmentId,
  segmentObjectKey,
  windowId,
  windowSizeProblem,
  windowStartOf,
} from './changelog/layout.js';
export {
  MANIFEST_FORMAT_VERSION,
  type Manifest,
  type ManifestGap,
  type ManifestSegment,
  type ManifestShard,
  manifestSchema,
  parseManifest,
  serializeManifest,
} from './changelog/manifest.js';
export {
  type CellValue,
  readSegmentBatches,
  readSegmentColumns,
  readSegmentFooter,
  type SegmentBatch,
  type SegmentFooter,
} from './changelog/parquetDecoder.js';
export { SEGMENT_COMPRESSIONS, type SegmentCompression } from './changelog/parquetEncoder.js';
export { appendStreamRecords, type StreamRecordObject } from './changelog/sdkRecordDecoder.js';
export {
  type EncodedSegment,
  encodeSegment,
  SEGMENT_FORMAT_VERSION,
  type SegmentOptions,
  type ShardRange,
} from './changelog/segmentEncoder.js';
export { SHARD_END, TRIM_HORIZON } from './changelog/sequenceNumber.js';
export { type DecodedPage, decodeGetRecordsResponse } from './changelog/wireRecordDecoder.js';
export { RawGetRecordsClient, type RawGetRecordsResponse } from './coordination/getRecordsClient.js';
export type { Lease } from './coordination/lease.js';
export { planLeaseTakes } from './coordination/leaseBalancer.js';
export { LeaseExpiryTracker } from './coordination/leaseExpiry.js';
export { type CheckpointMove, LeaseStore, type LeaseStoreOptions } from './coordination/leaseStore.js';
export { createLeaseTable } from './coordination/leaseTable.js';
export { LocalObjectStore } from './coordination/localObjectStore.js';
export {
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
  parseDestination,
  sha256Checksum,
} from './coordination/objectStore.js';
export { openObjectStore } from './coordination/openObjectStore.js';
export {
  type GapRecord,
  type RegistryShardEntry,
  RegistryStore,
  type SegmentRecord,
  type WindowState,
} from './coordination/registryStore.js';
export { S3ObjectStore, type S3ObjectStoreOptions } from './coordination/s3ObjectStore.js';
export {
  describeAllShards,
  describeChildShards,
  listTableStreams,
  resolveStreamArn,
  ShardDiscovery,
  type ShardDiscoveryOptions,
} from './coordination/shardDiscovery.js';
export { type ShardAnomaly, ShardGraph, type ShardInfo } from './coordination/shardGraph.js';
export { ChangelogWorker, type ChangelogWorkerOptions } from './ingest/changelogWorker.js';
export { PageCheckpointSink } from './ingest/pageCheckpointSink.js';
export { type SealEvent, Sealer, type SealerOptions } from './ingest/sealer.js';
export {
  type CommitEvent,
  SegmentCommitter,
  type SegmentCommitterOptions,
} from './ingest/segmentCommitter.js';
export {
  decodePage,
  type FetchedPage,
  type PageSummary,
  ShardReader,
  type ShardReaderOptions,
  type ShardReadResult,
  type StreamGap,
} from './ingest/shardReader.js';
export type { ShardSession, ShardSink } from './ingest/shardSink.js';
export { type CheckpointEvent, StreamWorker, type StreamWorkerOptions } from './ingest/streamWorker.js';
export {
  type FollowedStream,
  isStreamDrained,
  type StreamRunner,
  type StreamRunnerFactory,
  TableWorker,
  type TableWorkerOptions,
} from './ingest/tableWorker.js';
export { computeWatermark, shardProgress } from './ingest/watermark.js';
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
export { formatDuration, parseByteSize, parseDuration } from './support/duration.js';
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
export { createLogger, type Logger } from './support/logger.js';
export {
  type CommittedSegment,
  combineObservers,
  type LeaseChange,
  type PipelineObserver,
  type SealedWindow,
} from './support/pipelineObserver.js';
export { type RetryOptions, retry, sleep } from './support/retry.js';
