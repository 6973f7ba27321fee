/**
 * Regenerates docs/manifest.schema.json from the manifest's zod schema.
 *
 *   npm run schema:update
 *
 * Run it after changing src/changelog/manifest.ts; a test fails while the file is out of date.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { manifestJsonSchemaText } from '../src/changelog/manifestJsonSchema.js';

const file = join(import.meta.dirname, '..', 'docs', 'manifest.schema.json');
writeFileSync(file, manifestJsonSchemaText());
console.log(`wrote ${file}`);
