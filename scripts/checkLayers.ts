/** `npm run lint`: fails when an import in src/ breaks the layering (see scripts/layers.ts). */
import path from 'node:path';
import { layerViolations, readImportEdges } from './layers.js';

const srcDir = path.join(import.meta.dirname, '..', 'src');
const edges = readImportEdges(srcDir);
const problems = layerViolations(edges);
if (problems.length > 0) {
  console.error(`layering: ${problems.length} problem(s) in src/ (docs/ARCHITECTURE.md "Layers"):`);
  for (const problem of problems) console.error(`  ${problem}`);
  process.exit(1);
}
const files = new Set(edges.map((e) => e.from)).size;
console.log(`layering: ${files} files, ${edges.length} imports, no upward import, no cycle`);
