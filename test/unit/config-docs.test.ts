import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { renderConfigDocs, renderDefaultsYaml } from '../../config/docs';
import { defaultConfig } from '../../config/defaults';
import { listEnvVars, schemaLeaves } from '../../config/env';
import { checkConfig } from '../../config/load';
import { ROOT } from '../support/cli';

test('docs/configuration.md is up to date with config/schema.ts', () => {
  const committed = fs.readFileSync(path.join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const fresh = renderConfigDocs();
  if (committed === fresh) return;
  const a = committed.split('\n');
  const b = fresh.split('\n');
  const line = a.findIndex((l, i) => l !== b[i]);
  assert.fail(
    `docs/configuration.md is stale (first difference at line ${(line < 0 ? a.length : line) + 1}: ` +
      `${JSON.stringify(a[line] ?? '')} should be ${JSON.stringify(b[line] ?? '')}): run npx tsx scripts/gen-config-docs.ts`,
  );
});

test('the docs list every setting with its env var, and every default', () => {
  const docs = renderConfigDocs();
  for (const leaf of schemaLeaves()) {
    const key = leaf.path.join('.');
    const row = docs.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
    assert.ok(row, `no row for ${key}`);
    const env = listEnvVars().find((v) => v.key === key);
    if (env) assert.ok(row.includes(`\`${env.name}\``), `${key}: env var missing`);
    const d = (leaf.schema as { default?: unknown }).default;
    if (d !== undefined) assert.ok(row.includes(`\`${JSON.stringify(d)}\``), `${key}: default missing`);
  }
  assert.match(docs, /\| `device\.id` \| [^|]+ \| hostname \|/);
  assert.match(docs, /\n### `mqtt\.tls`\n\nTLS for mqtts:\/\/ and wss:\/\/ brokers\.\n/);
});

test('the error example in the docs is real loader output', () => {
  const docs = renderConfigDocs();
  assert.ok(docs.includes('edgehead: error: invalid configuration (6 errors):\n  EDGEHEAD_PREDICTIONS_TOP_K: must be an integer (got "lots") — sets predictions.topK\n'));
  assert.ok(docs.includes('  mqtt.password: must be a string (got ***)\n'));
  assert.ok(!docs.includes('(got 12345)'));
});

test('the defaults YAML is a valid config file equal to the schema defaults, with optional settings as comments', () => {
  const text = renderDefaultsYaml();
  assert.deepEqual(YAML.parse(text), defaultConfig());
  const r = checkConfig({ data: YAML.parse(text), env: {}, hostname: 'pi' });
  assert.deepEqual(r.errors, []);
  assert.match(text, /^ {2}# id: \(default: hostname\)$/m);
  assert.match(text, /^ {2}# password: \(secret, not set\)$/m);
  assert.match(text, /^ {4}# servername: \(not set\)$/m);
});
