/** Public API of dynamodb-changelog. Anything not exported here is internal. */

export { type DaemonOptions, type DaemonResult, runDaemon } from './cli/daemon.js';
export { formatDuration, parseByteSize, parseDuration } from './config/duration.js';
export { parseRunConfig, RUN_OPTIONS, type RunConfig } from './config/runConfig.js';
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
} from './errors.js';
export { type Lease, SHARD_END, TRIM_HORIZON } from './lease/lease.js';
export { planLeaseTakes } from './lease/leaseBalancer.js';
export { LeaseExpiryTracker } from './lease/leaseExpiry.js';
export { type CheckpointMove, LeaseStore, type LeaseStoreOptions } from './lease/leaseStore.js';
export { createLeaseTable } from './lease/leaseTable.js';
export {
  dtOf,
  manifestObjectKey,
  parseManifestKey,
  segmentId,
  segmentObjectKey,
  windowId,
  windowSizeProblem,
  windowStartOf,
} from './manifest/layout.js';
export {
  MANIFEST_FORMAT_VERSION,
  type Manifest,
  type ManifestGap,
  type ManifestSegment,
  type ManifestShard,
  manifestSchema,
  parseManifest,
  serializeManifest,
} from './manifest/manifest.js';
export {
  type ListManifestsOptions,
  listManifests,
  type ManifestListing,
  readManifest,
} from './manifest/manifestReader.js';
export {
  type GapRecord,
  type RegistryShardEntry,
  RegistryStore,
  type SegmentRecord,
  type WindowState,
} from './manifest/registryStore.js';
export { type SealEvent, Sealer, type SealerOptions } from './manifest/sealer.js';
export {
  type VerifyGap,
  type VerifyOptions,
  type VerifyProgress,
  type VerifyReport,
  VIOLATION_KINDS,
  type Violation,
  type ViolationKind,
  verifyChangelog,
} from './manifest/verifier.js';
export { computeWatermark, shardProgress } from './manifest/watermark.js';
export {
  type ObservabilityServer,
  type ObservabilityServerOptions,
  startObservabilityServer,
} from './observability/httpServer.js';
export { createLogger, type Logger } from './observability/logger.js';
export { ChangelogMetrics, type MetricsSnapshot, type MetricsSources } from './observability/metrics.js';
export {
  type CommittedSegment,
  combineObservers,
  type LeaseChange,
  type PipelineObserver,
  type SealedWindow,
} from './observability/pipelineObserver.js';
export {
  StallDetector,
  type StallDetectorOptions,
  type StalledShard,
} from './observability/stallDetector.js';
export { ChangelogWorker, type ChangelogWorkerOptions } from './pipeline/changelogWorker.js';
export { PageCheckpointSink } from './pipeline/pageCheckpointSink.js';
export {
  type CommitEvent,
  SegmentCommitter,
  type SegmentCommitterOptions,
} from './pipeline/segmentCommitter.js';
export type { ShardSession, ShardSink } from './pipeline/shardSink.js';
export { type CheckpointEvent, StreamWorker, type StreamWorkerOptions } from './pipeline/streamWorker.js';
export {
  type FollowedStream,
  isStreamDrained,
  type StreamRunner,
  type StreamRunnerFactory,
  TableWorker,
  type TableWorkerOptions,
} from './pipeline/tableWorker.js';
export { type RetryOptions, retry, sleep } from './retry.js';
export { segmentSchema } from './segment/arrowBatch.js';
export { ChangeBuffer, OP_NAMES } from './segment/changeBuffer.js';
export {
  formatKeySchema,
  type KeyAttribute,
  type KeyAttributeType,
  type KeySchema,
  keyColumnName,
  keySchemaFromTable,
  parseKeySchema,
} from './segment/keySchema.js';
export {
  type CellValue,
  readSegmentBatches,
  readSegmentColumns,
  readSegmentFooter,
  type SegmentBatch,
  type SegmentFooter,
} from './segment/parquetDecoder.js';
export { SEGMENT_COMPRESSIONS, type SegmentCompression } from './segment/parquetEncoder.js';
export {
  type EncodedSegment,
  encodeSegment,
  SEGMENT_FORMAT_VERSION,
  type SegmentOptions,
  type ShardRange,
} from './segment/segmentEncoder.js';
export { LocalObjectStore } from './sink/localObjectStore.js';
export {
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
  parseDestination,
  sha256Checksum,
} from './sink/objectStore.js';
export { openObjectStore } from './sink/openObjectStore.js';
export { S3ObjectStore, type S3ObjectStoreOptions } from './sink/s3ObjectStore.js';
export {
  type AttributeMap,
  type AttributeValueObject,
  attributeMapToJson,
} from './stream/attributeValueJson.js';
export { RawGetRecordsClient, type RawGetRecordsResponse } from './stream/getRecordsClient.js';
export { appendStreamRecords, type StreamRecordObject } from './stream/sdkRecordDecoder.js';
export {
  describeAllShards,
  describeChildShards,
  listTableStreams,
  resolveStreamArn,
  ShardDiscovery,
  type ShardDiscoveryOptions,
} from './stream/shardDiscovery.js';
export { type ShardAnomaly, ShardGraph, type ShardInfo } from './stream/shardGraph.js';
export {
  decodePage,
  type FetchedPage,
  type PageSummary,
  ShardReader,
  type ShardReaderOptions,
  type ShardReadResult,
  type StreamGap,
} from './stream/shardReader.js';
export { type DecodedPage, decodeGetRecordsResponse } from './stream/wireRecordDecoder.js';
