import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRunConfig, RUN_OPTIONS } from '../../../src/app/runConfig.js';
import { segmentSchema } from '../../../src/changelog/arrowBatch.js';
import { FIXED_COLUMNS, parseKeySchema } from '../../../src/changelog/keySchema.js';
import { dataPrefix, symlinkObjectKey, symlinkPrefix } from '../../../src/changelog/layout.js';
import { LEASE_PARTITION_KEY, LEASE_SORT_KEY } from '../../../src/coordination/leaseTable.js';
import { parseDuration } from '../../../src/support/duration.js';
import { REPO_ROOT } from '../../helpers/awsCallRecorder.js';

/*
 * The deployment files in infra/ agree with the code: settings the CLI accepts, the metrics port,
 * shutdown deadlines, the lease table's key schema and the segment columns the Glue table declares.
 */

const read = (...parts: string[]) => readFileSync(path.join(REPO_ROOT, 'infra', ...parts), 'utf8');
const KNOWN_ENV = new Set([...Object.values(RUN_OPTIONS).map((o) => o.env), 'AWS_REGION']);
const METRICS_PORT = Number(RUN_OPTIONS.metricsPort.default);
const SHUTDOWN_MS = parseDuration(RUN_OPTIONS.shutdownTimeout.default)!;

/** Each `resource "aws_glue_catalog_table" "<name>"` block of a Terraform file, by name. */
function glueTables(tf: string): Record<string, string> {
  const tables: Record<string, string> = {};
  for (const m of tf.matchAll(/^resource "aws_glue_catalog_table" "(\w+)" \{\n([\s\S]*?)^\}$/gm)) {
    tables[m[1]!] = m[2]!;
  }
  return tables;
}

/** A Terraform string with an object key prefix of src/changelog/layout.ts, the table as the variable. */
function tfLocation(prefix: (table: string) => string): string {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform interpolation
  const table = '${var.table_name}';
  return `"s3://\${var.bucket_name}/\${local.object_prefix}${prefix('orders').replace(/^orders\//, `${table}/`)}"`;
}

/** The flat `data:` map of a ConfigMap. */
function configMapData(yaml: string): Record<string, string> {
  const data: Record<string, string> = {};
  const lines = yaml.split('\n');
  let inData = false;
  for (const line of lines) {
    if (/^data:\s*$/.test(line)) {
      inData = true;
      continue;
    }
    if (inData && /^\S/.test(line)) break;
    const m = inData ? /^\s+([A-Z0-9_]+):\s*("?)([^"#]*?)\2\s*(#.*)?$/.exec(line) : null;
    if (m) data[m[1]!] = m[3]!.trim();
  }
  return data;
}

describe('infra/ deployment files', () => {
  it('configure only settings the CLI knows, and values it accepts', () => {
    const ecs = JSON.parse(read('ecs', 'task-definition.json')) as {
      containerDefinitions: { environment: { name: string; value: string }[] }[];
    };
    const sources = {
      'k8s/configmap.yaml': configMapData(read('k8s', 'configmap.yaml')),
      'ecs/task-definition.json': Object.fromEntries(
        ecs.containerDefinitions[0]!.environment.map((e) => [e.name, e.value]),
      ),
    };
    for (const [file, env] of Object.entries(sources)) {
      expect(Object.keys(env).length, file).toBeGreaterThan(4);
      for (const name of Object.keys(env)) expect(KNOWN_ENV.has(name), `${file}: ${name}`).toBe(true);
      // Throws (ConfigError naming the setting) on anything `run` would refuse.
      const config = parseRunConfig({}, env);
      expect(config.source.table, file).toBe(env['CHANGELOG_TABLE']);
    }
  });

  it('use the metrics port and leave the daemon its shutdown deadline', () => {
    const deployment = read('k8s', 'deployment.yaml');
    expect(deployment).toContain(`containerPort: ${METRICS_PORT}`);
    expect(deployment).toContain(`prometheus.io/port: "${METRICS_PORT}"`);
    for (const probe of ['/healthz', '/readyz']) expect(deployment).toContain(`path: ${probe}`);
    const grace = Number(/terminationGracePeriodSeconds: (\d+)/.exec(deployment)?.[1]);
    expect(grace * 1000).toBeGreaterThan(SHUTDOWN_MS);

    const ecs = JSON.parse(read('ecs', 'task-definition.json')) as {
      containerDefinitions: {
        stopTimeout: number;
        portMappings: { containerPort: number }[];
        healthCheck: { command: string[] };
      }[];
    };
    const container = ecs.containerDefinitions[0]!;
    expect(container.stopTimeout * 1000).toBeGreaterThan(SHUTDOWN_MS);
    expect(container.portMappings[0]!.containerPort).toBe(METRICS_PORT);
    expect(container.healthCheck.command.join(' ')).toContain(`http://127.0.0.1:${METRICS_PORT}/healthz`);

    const dockerfile = read('Dockerfile');
    expect(dockerfile).toContain(`EXPOSE ${METRICS_PORT}`);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "bin/dynamodb-changelog.js"]');
  });

  it('create the lease table with the key schema src/coordination/leaseTable.ts uses', () => {
    const tf = read('terraform', 'lease_table.tf');
    expect(tf).toContain(`hash_key     = "${LEASE_PARTITION_KEY}"`);
    expect(tf).toContain(`range_key    = "${LEASE_SORT_KEY}"`);
    expect(tf).toContain('billing_mode = "PAY_PER_REQUEST"');
    const attributes = [...tf.matchAll(/attribute \{\s*name = "(\w+)"\s*type = "(\w)"/g)].map(
      (m) => `${m[1]}:${m[2]}`,
    );
    expect(attributes.sort()).toEqual([`${LEASE_PARTITION_KEY}:S`, `${LEASE_SORT_KEY}:S`].sort());
  });

  it('declare the Glue columns the segments have, in their order and with matching types', () => {
    const tf = read('terraform', 'glue.tf');
    const declared = [...tf.matchAll(/\{ name = "(\w+)", type = "(\w+)"/g)].map((m) => `${m[1]}:${m[2]}`);
    const fixed = /fixed_columns\s*=\s*\[([^\]]*)\]/.exec(tf)?.[1];
    expect(fixed?.match(/"(\w+)"/g)?.map((s) => s.slice(1, -1))).toEqual([...FIXED_COLUMNS]);
    // Key columns sit between old_image and size_bytes; glue.tf adds them from the key schema.
    const hive: Record<string, string> = {
      Utf8: 'string',
      'Timestamp<MILLISECOND, UTC>': 'timestamp',
      Int32: 'int',
      Bool: 'boolean',
      Binary: 'binary',
    };
    const fromSchema = segmentSchema(parseKeySchema('pk:S'))
      .fields.filter((f) => f.name !== 'pk')
      .map((f) => `${f.name}:${hive[String(f.type)] ?? String(f.type)}`);
    expect(declared).toEqual(fromSchema);
  });
  it('declare a second Glue table over the symlink manifests: same columns and dt projection, exactly once', () => {
    const tf = read('terraform', 'glue.tf');
    // One resource over a map of the two tables: what they share is written once.
    const resources = glueTables(tf);
    expect(Object.keys(resources)).toEqual(['changelog']);
    const block = resources['changelog']!;
    expect(block).toMatch(
      /for_each\s+= \{ for key, table in local\.glue_tables : key => table if local\.glue_enabled \}/,
    );
    // The one column list the test above checks against the segment schema, the dt partition and projection.
    const columns = /dynamic "columns" \{\s*for_each = ([\w.]+)\s*content \{([^}]*)\}/.exec(block);
    expect(columns?.[1]).toBe('local.segment_columns');
    expect(
      columns?.[2]
        ?.replace(/\s*#.*$/gm, '')
        .replace(/\s+/g, ' ')
        .trim(),
    ).toBe('name = lower(columns.value.name) type = columns.value.type comment = columns.value.comment');
    expect(block).toContain('parameters = merge(local.dt_projection, {');
    expect(block).toMatch(/partition_keys \{\s*name\s*= "dt"\s*type\s*= "string"/);
    expect(block).toContain(
      'serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"',
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform interpolation
    expect(block).toContain('"storage.location.template" = "${each.value.location}dt=$${dt}/"');
    expect(block).toMatch(/location\s+= each\.value\.location/);
    expect(block).toMatch(/input_format\s+= each\.value\.input_format/);
    expect(tf).toMatch(/"projection\.dt\.format"\s*= "yyyy-MM-dd"/);

    // Where src/changelog/layout.ts writes: data/ for the segments, symlinks/ for the sealed windows.
    expect(tf).toContain(`data_location   = ${tfLocation(dataPrefix)}`);
    expect(tf).toContain(`symlink_location       = ${tfLocation(symlinkPrefix)}`);
    expect(symlinkObjectKey('orders', Date.UTC(2026, 10, 22, 10, 5))).toBe(
      `${symlinkPrefix('orders')}dt=2026-11-22/20261122T100500Z.txt`,
    );
    const table = (name: string) =>
      new RegExp(`^    ${name} = \\{\\n([\\s\\S]*?)^    \\}$`, 'm').exec(tf)?.[1] ?? '';
    const segments = table('segments');
    const sealed = table('sealed');
    expect(segments).toMatch(/location\s+= local\.data_location/);
    expect(segments).toMatch(
      /input_format\s+= "org\.apache\.hadoop\.hive\.ql\.io\.parquet\.MapredParquetInputFormat"/,
    );
    expect(sealed).toMatch(/location\s+= local\.symlink_location/);
    expect(sealed).toMatch(/input_format\s+= "org\.apache\.hadoop\.hive\.ql\.io\.SymlinkTextInputFormat"/);
    expect(sealed).toMatch(
      /output_format = "org\.apache\.hadoop\.hive\.ql\.io\.HiveIgnoreKeyTextOutputFormat"/,
    );
    // Deployments made before the resource was one keep their tables (moved, not re-created).
    expect(tf).toMatch(
      /moved \{\s*from = aws_glue_catalog_table\.segments\[0\]\s*to\s+= aws_glue_catalog_table\.changelog\["segments"\]/,
    );
    expect(tf).toMatch(
      /moved \{\s*from = aws_glue_catalog_table\.sealed\[0\]\s*to\s+= aws_glue_catalog_table\.changelog\["sealed"\]/,
    );
  });
});
