import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { checkConfig, ConfigError, hostnameDeviceId, loadConfig, maskSecrets } from '../../config/load';
import { EdgeheadError } from '../../base/errors';
import { tmpDir } from '../support/cli';

/** Writes FILE (relative to a fresh temp folder) and returns its absolute path. */
function writeConfig(text: string, name = 'config.yaml', dir = tmpDir('edgehead-config-')): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** The ConfigError thrown by loadConfig (fails the test if it does not throw one). */
function configErrors(opts: Parameters<typeof loadConfig>[0]): readonly string[] {
  try {
    loadConfig(opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.equal(e.code, 'BAD_CONFIG');
    return e.errors;
  }
  assert.fail('loadConfig accepted an invalid config');
}

const NO_ENV = {};

test('three mistakes are all reported, each with its key path, in one BAD_CONFIG error', () => {
  const file = writeConfig('version: 1\nschedule:\n  intervalMs: 0\nbackend:\n  threads: many\nmqtt:\n  urll: mqtt://broker:1883\n');
  let error: unknown;
  try {
    loadConfig({ file, env: NO_ENV });
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof EdgeheadError && error.code === 'BAD_CONFIG');
  const lines = error.message.split('\n');
  assert.equal(lines[0], 'invalid configuration (3 errors):');
  assert.deepEqual(lines.slice(1).map((l) => l.trim()).sort(), [
    'backend.threads: must be "auto" or an integer from 1 to 64 (got "many")',
    'mqtt.urll: unknown key (did you mean url?)',
    'schedule.intervalMs: must be >= 50 (got 0)',
  ]);
});

test('plain-English messages: types, ranges, one-of lists, patterns, list items, fixed-length lists', () => {
  const errors = configErrors({
    file: writeConfig(
      [
        'version: 1',
        'stateDir: 5',
        'device: {groups: [ok, "not ok"]}',
        'mqtt: {url: "http://broker", keepaliveSec: 99999, cleanSession: "yes"}',
        'predictions: {qos: 3, minScore: 1.5}',
        'offline: {maxMB: 0}',
        'backend: {name: gpu}',
        'extractor: {valueRange: [0]}',
        'head: {file: ""}',
        'log: null',
      ].join('\n'),
    ),
    env: NO_ENV,
  });
  assert.deepEqual([...errors].sort(), [
    'backend.name: must be one of: wasm, cpu (got "gpu")',
    'device.groups[1]: must be 1 to 64 letters, digits, "_", "." or "-" (got "not ok")',
    'extractor.valueRange: must be a list of 2 numbers (got [0])',
    'head.file: must not be empty (got "")',
    'log: must be a mapping of settings (got null)',
    'mqtt.cleanSession: must be true or false (got "yes") — write true (YAML 1.2: yes/no/on/off are strings)',
    'mqtt.keepaliveSec: must be <= 3600 (got 99999)',
    'mqtt.url: must start with mqtt://, mqtts://, ws:// or wss:// (got "http://broker")',
    'offline.maxMB: must be > 0 (got 0)',
    'predictions.minScore: must be <= 1 (got 1.5)',
    'predictions.qos: must be one of: 0, 1, 2 (got 3)',
    'stateDir: must be a string (got 5)',
  ]);
});

test('unknown keys: did-you-mean for a sibling or a setting in another section, nothing when nothing is close', () => {
  const errors = configErrors({ file: writeConfig('version: 1\nintervalMs: 500\nschedule: {interval_ms: 5}\nmqtt: {zzzz: 1}\n'), env: NO_ENV });
  assert.deepEqual([...errors].sort(), ['intervalMs: unknown key (did you mean schedule.intervalMs?)', 'mqtt.zzzz: unknown key', 'schedule.interval_ms: unknown key (did you mean intervalMs?)']);
});

test('no silent repair: numbers written as strings stay errors', () => {
  const errors = configErrors({ file: writeConfig('version: 1\nschedule:\n  intervalMs: "1000"\ntelemetry:\n  intervalSec: abc\n'), env: NO_ENV });
  assert.deepEqual([...errors].sort(), ['schedule.intervalMs: must be an integer (got "1000")', 'telemetry.intervalSec: must be an integer (got "abc")']);
});

test('version: required in a file, other numbers unsupported, no file means defaults', () => {
  assert.deepEqual(configErrors({ file: writeConfig('mqtt: {url: "mqtt://127.0.0.1:1884"}\n'), env: NO_ENV }), ['version: required (this agent reads version 1)']);
  assert.deepEqual(configErrors({ file: writeConfig(''), env: NO_ENV }), ['version: required (this agent reads version 1)']);
  // Another version is not checked against this schema: only the version error, not the unknown key.
  assert.deepEqual(configErrors({ file: writeConfig('version: 2\nwhatever: 1\n'), env: NO_ENV }), ['version: unsupported 2 (this agent reads version 1)']);
  assert.deepEqual(configErrors({ file: writeConfig('version: "1"\n'), env: NO_ENV }), ['version: must be 1 (got "1")']);
  // A missing version is reported together with the file's other errors.
  assert.deepEqual(configErrors({ file: writeConfig('schedule: {intervalMs: 1}\n'), env: NO_ENV }), [
    'version: required (this agent reads version 1)',
    'schedule.intervalMs: must be >= 50 (got 1)',
  ]);
  const config = loadConfig({ env: NO_ENV, hostname: 'pi-1', cwd: '/srv' });
  assert.deepEqual({ ...config, device: { ...config.device, id: undefined }, stateDir: undefined }, { ...defaultConfig(), device: { ...defaultConfig().device, id: undefined }, stateDir: undefined });
  assert.equal(config.stateDir, '/srv/state');
});

test('the file must be a mapping; YAML and JSON syntax errors name the file, line and column', () => {
  assert.throws(() => loadConfig({ file: writeConfig('- a\n- b\n'), env: NO_ENV }), /\(top level\): must be a mapping of settings \(got a list\)/);
  const yamlFile = writeConfig('version: 1\nmqtt:\n  url: mqtt://a\n  url: mqtt://b\n');
  assert.throws(() => loadConfig({ file: yamlFile, env: NO_ENV }), (e: Error) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && e.message.includes(`${yamlFile}:4:3: YAML syntax error: Map keys must be unique`));
  const jsonFile = writeConfig('{\n  "version": 1,\n  "mqtt": {"url": mqtt}\n}\n', 'config.json');
  assert.throws(() => loadConfig({ file: jsonFile, env: NO_ENV }), (e: Error) => e.message.includes(`${jsonFile}:3:19: JSON syntax error`));
  const missing = path.join(tmpDir(), 'nope.yaml');
  assert.throws(() => loadConfig({ file: missing, env: NO_ENV }), (e: Error) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && e.message === `cannot read config file ${missing}: file not found`);
});

test('JSON files (by extension or sniffed) load like YAML', () => {
  const json = '{"version": 1, "schedule": {"intervalMs": 250}, "device": {"id": "cam-1"}}';
  assert.equal(loadConfig({ file: writeConfig(json, 'c.json'), env: NO_ENV }).schedule.intervalMs, 250);
  assert.equal(loadConfig({ file: writeConfig(json, 'c.conf'), env: NO_ENV }).device.id, 'cam-1');
});

test('secrets are never printed: not in errors, not in syntax errors, masked for display', () => {
  const secret = 'hunter2-do-not-print';
  const errors = configErrors({ file: writeConfig(`version: 1\nmqtt:\n  password: 12345\n  urll: x\nsource:\n  http: {password: ["${secret}"]}\n`), env: NO_ENV });
  assert.ok(errors.includes('mqtt.password: must be a string (got ***)'), errors.join('\n'));
  assert.ok(errors.includes('source.http.password: must be a string (got ***)'), errors.join('\n'));
  assert.ok(!errors.join('\n').includes('12345') && !errors.join('\n').includes(secret));
  const broken = writeConfig(`version: 1\nmqtt:\n  password: "${secret}\n`);
  assert.throws(() => loadConfig({ file: broken, env: NO_ENV }), (e: Error) => e.message.includes(broken) && !e.message.includes(secret));
  const config = loadConfig({ file: writeConfig(`version: 1\nmqtt: {password: ${secret}}\n`), env: NO_ENV });
  assert.equal(config.mqtt.password, secret);
  const shown = JSON.stringify(maskSecrets(config));
  assert.ok(!shown.includes(secret) && shown.includes('"password":"***"'));
});

test('cross-field checks are reported together with the schema errors', () => {
  const errors = configErrors({
    file: writeConfig(
      'version: 1\nsource:\n  type: http\n  stream: {restartMinMs: 5000, restartMaxMs: 1000}\nmqtt:\n  reconnectMinMs: 9000\n  reconnectMaxMs: 8000\n  tls: {cert: client.pem}\nschedule: {intervalMs: 0}\n',
    ),
    env: NO_ENV,
    checkFiles: false,
  });
  assert.deepEqual([...errors].sort(), [
    'mqtt.reconnectMinMs: must be <= mqtt.reconnectMaxMs, which is 8000 (got 9000)',
    'mqtt.tls.key: required when mqtt.tls.cert is set',
    'schedule.intervalMs: must be >= 50 (got 0)',
    'source.http.url: required when source.type is http',
    'source.stream.restartMinMs: must be <= source.stream.restartMaxMs, which is 1000 (got 5000)',
  ]);
  assert.deepEqual(configErrors({ file: writeConfig('version: 1\nmqtt: {tls: {key: k.pem}}\n'), env: NO_ENV, checkFiles: false }), ['mqtt.tls.cert: required when mqtt.tls.key is set']);
});

test('files named in mqtt.tls.* must exist, resolved against the config folder (unless checkFiles is false)', () => {
  const dir = tmpDir();
  const file = writeConfig('version: 1\nsource: {type: webcam}\nmqtt:\n  url: mqtts://b:8883\n  tls: {ca: tls/ca.pem, cert: tls/client.pem, key: /nonexistent/client.key}\n', 'config.yaml', dir);
  fs.mkdirSync(path.join(dir, 'tls'));
  fs.writeFileSync(path.join(dir, 'tls', 'ca.pem'), 'x');
  assert.deepEqual(configErrors({ file, env: NO_ENV }), [`mqtt.tls.cert: file not found: ${path.join(dir, 'tls', 'client.pem')}`, 'mqtt.tls.key: file not found: /nonexistent/client.key']);
  fs.mkdirSync(path.join(dir, 'tls', 'client.pem'));
  assert.ok(configErrors({ file, env: NO_ENV }).includes(`mqtt.tls.cert: not a file: ${path.join(dir, 'tls', 'client.pem')}`));
  assert.equal(loadConfig({ file, env: NO_ENV, checkFiles: false }).mqtt.tls.ca, path.join(dir, 'tls', 'ca.pem'));
});

test('relative paths in the file resolve against its folder; from env and defaults against the cwd', () => {
  const dir = tmpDir();
  const file = writeConfig(
    'version: 1\nstateDir: ./state\nsource: {directory: {path: frames}}\nhead: {file: ../heads/a.head}\nextractor: {ref: models/my-extractor}\nmqtt: {tls: {ca: /abs/ca.pem}}\n',
    'etc/config.yaml',
    dir,
  );
  const etc = path.join(dir, 'etc');
  const c = loadConfig({ file, env: NO_ENV, cwd: '/somewhere/else', checkFiles: false });
  assert.equal(c.stateDir, path.join(etc, 'state'));
  assert.equal(c.source.directory.path, path.join(etc, 'frames'));
  assert.equal(c.head.file, path.join(dir, 'heads', 'a.head'));
  assert.equal(c.extractor.ref, path.join(etc, 'models', 'my-extractor'));
  assert.equal(c.mqtt.tls.ca, '/abs/ca.pem');
  // Catalogue ids and URLs are not paths.
  for (const ref of ['mobilenet_v2_100', 'https://hub.example/m/1']) {
    assert.equal(loadConfig({ file: writeConfig(`version: 1\nextractor: {ref: "${ref}"}\n`), env: NO_ENV }).extractor.ref, ref);
  }
  // From the environment or a default: relative to the current directory.
  const fromEnv = loadConfig({ file, env: { EDGEHEAD_STATE_DIR: 'var/state' }, cwd: '/run/x', checkFiles: false });
  assert.equal(fromEnv.stateDir, '/run/x/var/state');
  assert.equal(loadConfig({ file: writeConfig('version: 1\n'), env: NO_ENV, cwd: '/run/x' }).stateDir, '/run/x/state');
});

test('device.id defaults to the sanitised host name', () => {
  assert.equal(hostnameDeviceId('pi-kitchen.local'), 'pi-kitchen.local');
  assert.equal(hostnameDeviceId('my pi (2)'), 'my-pi--2-');
  assert.equal(hostnameDeviceId('x'.repeat(100)).length, 64);
  assert.equal(hostnameDeviceId(''), 'edgehead');
  assert.equal(hostnameDeviceId('all'), 'edgehead-all', 'a host name that is a topic word is not taken as it is');
  assert.equal(loadConfig({ env: NO_ENV, hostname: 'Büro Pi' }).device.id, 'B-ro-Pi');
  assert.equal(loadConfig({ file: writeConfig('version: 1\ndevice: {id: cam-7}\n'), env: NO_ENV, hostname: 'other' }).device.id, 'cam-7');
  const r = checkConfig({ data: { version: 1, device: { id: 'bad id' } }, env: NO_ENV });
  assert.deepEqual(r.errors, ['device.id: must be 1 to 64 letters, digits, "_", "." or "-", and must not be "groups" or "all" (topic words) (got "bad id")']);
});
