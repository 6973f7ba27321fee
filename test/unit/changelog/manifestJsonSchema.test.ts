import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { manifestJsonSchema, manifestJsonSchemaText } from '../../../src/changelog/manifestJsonSchema.js';

const file = new URL('../../../docs/manifest.schema.json', import.meta.url);

/** Every property schema in the tree, with its path. */
function properties(node: Record<string, unknown>, path = ''): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  const children = (node.properties ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, child] of Object.entries(children)) {
    const childPath = path === '' ? name : `${path}.${name}`;
    out.push([childPath, child], ...properties(child, childPath));
    const items = child.items as Record<string, unknown> | undefined;
    if (items) out.push(...properties(items, `${childPath}[]`));
  }
  return out;
}

describe('docs/manifest.schema.json', () => {
  it('is the output of the generator (run `npm run schema:update` after changing the manifest)', () => {
    expect(readFileSync(file, 'utf8')).toBe(manifestJsonSchemaText());
  });

  it('is a draft 2020-12 schema that describes every property and allows no others', () => {
    const schema = manifestJsonSchema();
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.description).toMatch(/sealed time window/);
    const all = properties(schema);
    expect(all.map(([p]) => p)).toContain('segments[].shards[].afterSequenceNumber');
    expect(all.map(([p]) => p)).toContain('gaps[].resumedAtSequenceNumber');
    for (const [path, node] of all) {
      expect(typeof node.description, path).toBe('string');
      if (node.type === 'object') expect(node.additionalProperties, path).toBe(false);
    }
    expect(schema.required).toEqual([
      'formatVersion',
      'table',
      'streamArn',
      'window',
      'sealedAt',
      'version',
      'complete',
      'recordCount',
      'lateRecordCount',
      'segments',
      'gaps',
    ]);
  });
});
