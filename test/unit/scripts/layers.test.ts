import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ImportEdge,
  importSpecifiers,
  layerViolations,
  readImportEdges,
} from '../../../scripts/layers.js';

const edge = (from: string, to: string): ImportEdge => ({ from, specifier: to, to });
const pkg = (from: string, specifier: string): ImportEdge => ({ from, specifier, to: undefined });

describe('the layering check (npm run lint)', () => {
  it('reads static, type-only, re-export and dynamic imports', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b/b.js';",
      'import {\n  c,\n  d,\n} from "@aws-sdk/client-s3";',
      "export { e } from './e.js';",
      "const f = await import('./f.js');",
      "// from './not-an-import.js' in a comment line that is not an import statement",
    ].join('\n');
    expect(importSpecifiers(text)).toEqual(['./a.js', '../b/b.js', '@aws-sdk/client-s3', './e.js', './f.js']);
  });

  it('allows imports of the same layer and the layers below', () => {
    expect(
      layerViolations([
        edge('ingest/sealer.ts', 'changelog/manifest.ts'),
        edge('ingest/sealer.ts', 'ingest/watermark.ts'),
        edge('cli/main.ts', 'app/daemon.ts'),
        edge('index.ts', 'app/daemon.ts'),
        pkg('coordination/s3ObjectStore.ts', '@aws-sdk/client-s3'),
      ]),
    ).toEqual([]);
  });

  it('refuses upward imports, sibling imports, AWS code in the format, cli/ in the API, and cycles', () => {
    const problems = layerViolations([
      edge('changelog/manifest.ts', 'coordination/registryStore.ts'),
      edge('read/verifier.ts', 'ingest/sealer.ts'),
      pkg('changelog/manifest.ts', '@aws-sdk/client-dynamodb'),
      edge('index.ts', 'cli/main.ts'),
      edge('app/a.ts', 'app/b.ts'),
      edge('app/b.ts', 'app/a.ts'),
      edge('misc/x.ts', 'support/errors.ts'),
    ]);
    expect(problems).toEqual([
      'changelog/manifest.ts imports coordination/registryStore.ts: changelog/ may not import the layer above it (coordination/)',
      'read/verifier.ts imports ingest/sealer.ts: read/ and ingest/ are siblings',
      'changelog/manifest.ts imports @aws-sdk/client-dynamodb: changelog/ holds no AWS code',
      'index.ts imports cli/main.ts: the public API does not export cli/',
      'misc/x.ts: misc/ is not a layer (known: support, changelog, coordination, ingest, read, app, cli)',
      'import cycle: app/a.ts -> app/b.ts -> app/a.ts',
    ]);
  });

  it('holds for src/ as it is', () => {
    const edges = readImportEdges(path.join(import.meta.dirname, '..', '..', '..', 'src'));
    expect(edges.length).toBeGreaterThan(100);
    expect(layerViolations(edges)).toEqual([]);
  });
});
