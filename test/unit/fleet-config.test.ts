/** The fleet server's config (operator/fleet/config.ts) on the agent's config machinery, and its generated docs. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { checkConfig, ConfigError } from '../../config/load';
import { HEAD_MAX_BYTES } from '../../protocol/patterns';
import { checkFleetConfig, defaultFleetConfig, isLoopbackHost, loadFleetConfig, renderFleetConfigDocs } from '../../operator/fleet/config';
import { renderDefaultsYaml } from '../../config/docs';
import { FLEET_CONFIG } from '../../operator/fleet/config';
import { ROOT } from '../support/cli';

const base = { env: {}, hostname: 'ops-1', random: () => 0.5, checkFiles: false };

function errorsOf(opts: Parameters<typeof checkFleetConfig>[0]): string[] {
  return checkFleetConfig({ ...base, ...opts }).errors;
}

test('docs/fleet-configuration.md is up to date with operator/fleet/config.ts', () => {
  const committed = fs.readFileSync(path.join(ROOT, 'docs', 'fleet-configuration.md'), 'utf8');
  const fresh = renderFleetConfigDocs();
  if (committed === fresh) return;
  const a = committed.split('\n');
  const b = fresh.split('\n');
  const line = a.findIndex((l, i) => l !== b[i]);
  assert.fail(`docs/fleet-configuration.md is stale (first difference at line ${line + 1}): run npx tsx scripts/gen-fleet-config-docs.ts`);
});

test('defaults come from the schema; the client id is computed per start from the host name', () => {
  const d = defaultFleetConfig();
  assert.equal(d.broker.url, 'mqtt://127.0.0.1:1883');
  assert.equal(d.broker.topicPrefix, 'edgehead');
  assert.equal(d.broker.clientId, undefined);
  assert.deepEqual(d.ingest, { shared: true, shareGroup: 'edgehead-fleet' });
  assert.deepEqual(d.listen, { host: '127.0.0.1', port: 8080, tls: {} });
  assert.deepEqual(d.history, { resolutionSec: 60, retentionHours: 24, maxDevices: 10000, maxLabels: 16 });
  assert.equal(d.metrics.maxLabelsPerHead, 50);
  assert.equal(d.rollouts.maxUploadBytes, HEAD_MAX_BYTES);
  assert.deepEqual([d.rollouts.canaryPercent, d.rollouts.stageTimeoutSec, d.rollouts.minAgreement], [10, 120, 0.9]);
  const cfg = loadFleetConfig({ ...base, cwd: '/srv' });
  assert.equal(cfg.broker.clientId, 'edgehead-fleet-ops-1-80000000');
  assert.equal(cfg.rollouts.dataDir, '/srv/edgehead-fleet');
  const other = loadFleetConfig({ ...base, random: () => 0.25 });
  assert.notEqual(other.broker.clientId, cfg.broker.clientId);
  assert.deepEqual(YAML.parse(renderDefaultsYaml(FLEET_CONFIG)), d);
});

test('EDGEHEAD_FLEET_* variables override the file; unknown ones are errors; the agent and the server ignore each other', () => {
  const cfg = loadFleetConfig({
    ...base,
    data: { version: 1, listen: { port: 9000 } },
    env: { EDGEHEAD_FLEET_LISTEN_PORT: '9100', EDGEHEAD_FLEET_INGEST_SHARED: 'false', EDGEHEAD_MQTT_URL: 'mqtt://agent:1883' },
  });
  assert.equal(cfg.listen.port, 9100);
  assert.equal(cfg.ingest.shared, false);
  assert.equal(cfg.broker.url, 'mqtt://127.0.0.1:1883');
  assert.deepEqual(errorsOf({ env: { EDGEHEAD_FLEET_LISTEN_PROT: '1' } }), ['EDGEHEAD_FLEET_LISTEN_PROT: unknown setting (did you mean EDGEHEAD_FLEET_LISTEN_PORT?)']);
  assert.deepEqual(errorsOf({ env: { EDGEHEAD_FLEET_CONFIG: '/etc/edgehead/fleet.yaml' } }), []);
  assert.deepEqual(checkConfig({ env: { EDGEHEAD_FLEET_LISTEN_PORT: '1' }, hostname: 'pi', checkFiles: false }).errors, []);
});

test('command-line overrides apply over file and environment, and errors name them', () => {
  const cfg = loadFleetConfig({ ...base, data: { version: 1, broker: { url: 'mqtt://file:1883' } }, env: { EDGEHEAD_FLEET_BROKER_URL: 'mqtt://env:1883' }, overrides: { broker: { url: 'mqtt://flag:1883' } } });
  assert.equal(cfg.broker.url, 'mqtt://flag:1883');
  assert.deepEqual(errorsOf({ overrides: { listen: { port: 70000 } } }), ['listen.port: must be <= 65535 (got 70000 from the command line)']);
});

test('every error at once, with its key path; secrets never printed; exit code 2 (BAD_CONFIG)', () => {
  const data = { version: 1, broker: { url: 'tcp://x', password: 1234, reconnectMinMs: 5000, reconnectMaxMs: 1000 }, history: { resolutionSec: 0 }, listn: {} };
  let err: unknown;
  assert.throws(() => loadFleetConfig({ ...base, data, env: { EDGEHEAD_FLEET_AUTH_TOKEN: 'short' } }), (e) => ((err = e), true));
  assert.ok(err instanceof ConfigError);
  assert.equal(err.code, 'BAD_CONFIG');
  assert.deepEqual(err.errors, [
    'listn: unknown key (did you mean listen?)',
    'broker.url: must start with mqtt://, mqtts://, ws:// or wss:// (got "tcp://x")',
    'broker.password: must be a string (got ***)',
    'auth.token: must be at least 16 characters long (got *** from EDGEHEAD_FLEET_AUTH_TOKEN)',
    'history.resolutionSec: must be >= 1 (got 0)',
    'broker.reconnectMinMs: must be <= broker.reconnectMaxMs, which is 1000 (got 5000)',
  ]);
  assert.ok(!err.message.includes('1234') && !err.message.includes('short'));
  assert.deepEqual(errorsOf({ data: {} }), ['version: required (this server reads version 1)']);
  assert.throws(() => loadFleetConfig({ ...base, data: { version: 2 } }), /version: unsupported 2 \(this server reads version 1\)/);
});

test('listening beyond loopback requires auth: a token (env or file) or basic auth', () => {
  for (const host of ['127.0.0.1', '127.3.2.1', 'localhost', '::1', '[::1]']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '192.168.1.5', 'fleet.example', '128.0.0.1']) assert.ok(!isLoopbackHost(host), host);
  const [error, ...rest] = errorsOf({ overrides: { listen: { host: '0.0.0.0' } } });
  assert.deepEqual(rest, []);
  assert.match(error!, /^listen\.host: "0\.0\.0\.0" is not a loopback address, which requires auth .* \(got "0\.0\.0\.0" from the command line\)$/);
  assert.deepEqual(errorsOf({ overrides: { listen: { host: '0.0.0.0' } }, env: { EDGEHEAD_FLEET_AUTH_TOKEN: 'a-long-enough-token' } }), []);
  assert.deepEqual(errorsOf({ data: { version: 1, listen: { host: '10.0.0.1' }, auth: { basicAuthFile: 'users' } } }), []);
});

test('TLS files go in pairs; relative paths resolve against the config file; named files must exist', () => {
  assert.deepEqual(errorsOf({ data: { version: 1, listen: { tls: { cert: 'c.pem' } }, broker: { tls: { key: 'k.pem' } } } }), [
    'broker.tls.cert: required when broker.tls.key is set',
    'listen.tls.key: required when listen.tls.cert is set',
  ]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-config-'));
  try {
    fs.writeFileSync(path.join(dir, 'a.pub'), 'x');
    fs.writeFileSync(path.join(dir, 'fleet.yaml'), 'version: 1\nrollouts:\n  dataDir: data\n  publicKeys: [a.pub, missing.pub]\n');
    const r = checkFleetConfig({ ...base, checkFiles: true, file: path.join(dir, 'fleet.yaml') });
    assert.deepEqual(r.errors, [`rollouts.publicKeys[1]: file not found: ${path.join(dir, 'missing.pub')}`]);
    fs.writeFileSync(path.join(dir, 'missing.pub'), 'x');
    const cfg = loadFleetConfig({ ...base, checkFiles: true, file: path.join(dir, 'fleet.yaml') });
    assert.equal(cfg.rollouts.dataDir, path.join(dir, 'data'));
    assert.deepEqual(cfg.rollouts.publicKeys, [path.join(dir, 'a.pub'), path.join(dir, 'missing.pub')]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
