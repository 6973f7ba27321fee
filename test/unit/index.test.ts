import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';

describe('the public API (src/index.ts, README "Library")', () => {
  it('exports the supported surface and nothing else: a change here is a change to the documented API', () => {
    expect(Object.keys(api).sort()).toEqual(
      [
        // running the daemon
        'runDaemon',
        'parseRunConfig',
        'RUN_OPTIONS',
        'DEFAULTS',
        'pipelineConfig',
        'createLogger',
        'combineObservers',
        // reading a changelog
        'openObjectStore',
        'openDestination',
        'listManifests',
        'readManifest',
        'readSegmentBatches',
        'verifyChangelog',
        'openChangelog',
        'rowsForKey',
        'latestPerKey',
        'planBatch',
        'batchWindows',
        'readCursorFile',
        'writeCursorFile',
        'openRowWriter',
        'ROW_FORMATS',
        'plainJsonFromDynamoJson',
        'redshiftManifest',
        'redshiftLoadSql',
        'duckdbScript',
        'runChanges',
        'parseChangesConfig',
        'runReplay',
        'parseReplayConfig',
        // the format
        'MANIFEST_FORMAT_VERSION',
        'SEGMENT_FORMAT_VERSION',
        'manifestSchema',
        'parseManifest',
        'manifestObjectKey',
        'segmentObjectKey',
        'windowStartOf',
        'parseKeySchema',
        'compareSequenceNumbers',
        'TRIM_HORIZON',
        'SHARD_END',
        'VIOLATION_KINDS',
        // errors
        'ChangelogError',
        'ChangelogIntegrityError',
        'ConfigError',
        'ExportError',
        'LeaseLostError',
        'MalformedRecordError',
        'ObjectConflictError',
        'ObjectStoreError',
        'SegmentEncodeError',
        'StreamError',
        'TableScanError',
        'WindowClosedError',
        'isRetriable',
      ].sort(),
    );
  });

  it('has one source of defaults behind the flags: --help prints what DEFAULTS holds', () => {
    expect(api.RUN_OPTIONS.window.default).toBe('5m');
    expect(api.pipelineConfig({ window: { windowMs: 60_000 } }).window).toEqual({
      windowMs: 60_000,
      allowedLatenessMs: api.DEFAULTS.window.allowedLatenessMs,
    });
  });
});
