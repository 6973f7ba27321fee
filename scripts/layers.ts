/**
 * The layering rule of src/ (docs/ARCHITECTURE.md "Layers"), checked by `npm run lint`:
 *
 * - every folder of src/ is a layer; a file imports only from its own layer and the layers below;
 *   `ingest/` and `read/` are siblings and never import each other;
 * - `support/` and `changelog/` hold no AWS code (no `@aws-sdk/*` or `@smithy/*` import);
 * - no import cycle between files (type-only imports count too: a cycle is a design smell even
 *   when it costs nothing at run time);
 * - `index.ts` (the public API) may import any layer but `cli/`.
 *
 * A small script rather than dependency-cruiser: dependency-cruiser cannot parse TypeScript 7,
 * and the imports of src/ are plain `import ... from './x.js'` lines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Bottom first. Layers with the same rank are siblings and may not import each other. */
export const LAYERS: Readonly<Record<string, number>> = {
  support: 0,
  changelog: 1,
  coordination: 2,
  ingest: 3,
  read: 3,
  app: 4,
  cli: 5,
};
const AWS_FREE = new Set(['support', 'changelog']);
const AWS_PACKAGE = /^@(aws-sdk|smithy)\//;

export interface ImportEdge {
  /** Importing file, relative to src/ with `/` separators. */
  from: string;
  /** The specifier as written. */
  specifier: string;
  /** The imported file relative to src/, for relative imports; undefined for packages. */
  to: string | undefined;
}

/** The import specifiers of a module's text: static imports/exports and dynamic `import()`. */
export function importSpecifiers(text: string): string[] {
  const out: string[] = [];
  const re =
    /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const match of text.matchAll(re)) out.push((match[1] ?? match[2])!);
  return out;
}

/** The layer of a file relative to src/ (`index` for src/index.ts). */
export function layerOf(file: string): string {
  return file.includes('/') ? file.slice(0, file.indexOf('/')) : path.basename(file, '.ts');
}

/** Every rule the edges break, as readable lines. */
export function layerViolations(edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  for (const edge of edges) {
    const from = layerOf(edge.from);
    if (edge.to === undefined) {
      if (AWS_FREE.has(from) && AWS_PACKAGE.test(edge.specifier)) {
        problems.push(`${edge.from} imports ${edge.specifier}: ${from}/ holds no AWS code`);
      }
      continue;
    }
    const to = layerOf(edge.to);
    if (from === 'index') {
      if (to === 'cli') problems.push(`${edge.from} imports ${edge.to}: the public API does not export cli/`);
      continue;
    }
    const fromRank = LAYERS[from];
    const toRank = LAYERS[to];
    if (fromRank === undefined) {
      problems.push(`${edge.from}: ${from}/ is not a layer (known: ${Object.keys(LAYERS).join(', ')})`);
      continue;
    }
    if (toRank === undefined) {
      problems.push(`${edge.from} imports ${edge.to}, which is not in a layer`);
    } else if (toRank > fromRank) {
      problems.push(`${edge.from} imports ${edge.to}: ${from}/ may not import the layer above it (${to}/)`);
    } else if (toRank === fromRank && to !== from) {
      problems.push(`${edge.from} imports ${edge.to}: ${from}/ and ${to}/ are siblings`);
    }
  }
  for (const cycle of importCycles(edges)) problems.push(`import cycle: ${cycle.join(' -> ')}`);
  return problems;
}

/** The import cycles among files (Tarjan's strongly connected components), each closed on its start. */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    if (to === undefined) continue;
    next.set(from, [...(next.get(from) ?? []), to]);
    if (!next.has(to)) next.set(to, []);
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const to of next.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!));
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    const selfLoop = (next.get(node) ?? []).includes(node);
    if (component.length > 1 || selfLoop) cycles.push([...component.reverse(), component[0]!]);
  };
  for (const node of [...next.keys()].sort()) if (!index.has(node)) visit(node);
  return cycles;
}

/** The import edges of every .ts file under `srcDir`. */
export function readImportEdges(srcDir: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const files = (readdirSync(srcDir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.split(path.sep).join('/'))
    .sort();
  for (const file of files) {
    const text = readFileSync(path.join(srcDir, file), 'utf8');
    for (const specifier of importSpecifiers(text)) {
      const to = specifier.startsWith('.')
        ? path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts')
        : undefined;
      edges.push({ from: file, specifier, to });
    }
  }
  return edges;
}
