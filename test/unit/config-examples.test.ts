import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { checkConfig, ConfigError, loadConfig } from '../../config/load';
import { generateKeyPair } from '../../protocol/head/signature';
import { ROOT, tmpDir } from '../support/cli';

const EXAMPLES = path.join(ROOT, 'config', 'examples');

test('every example in config/examples validates', () => {
  const files = fs.readdirSync(EXAMPLES).filter((f) => /\.ya?ml$/.test(f)).sort();
  assert.deepEqual(files, ['minimal.yaml', 'production.yaml', 'rpicam.yaml', 'stream.yaml']);
  for (const f of files) assert.doesNotThrow(() => loadConfig({ file: path.join(EXAMPLES, f), env: {}, checkFiles: false }), f);
});

test('minimal.yaml: version, broker, device id and the source a real broker needs; everything else default', () => {
  const file = path.join(EXAMPLES, 'minimal.yaml');
  const c = loadConfig({ file, env: {} });
  assert.equal(c.version, 1);
  assert.match(c.mqtt.url, /^mqtt:\/\//);
  assert.equal(c.device.id, 'kitchen-pi');
  assert.equal(c.source.type, 'webcam');
  // Without its source line the broker elsewhere would receive the bundled sample photos: refused.
  const copy = path.join(tmpDir(), 'minimal.yaml');
  fs.writeFileSync(copy, fs.readFileSync(file, 'utf8').replace(/^source:\n.*\n/m, ''));
  assert.throws(() => loadConfig({ file: copy, env: {} }), (e: unknown) => e instanceof ConfigError && /^source\.type: required when mqtt\.url is a broker on another machine/.test(e.errors.join()));
});

test('production.yaml: webcam, mqtts with CA and client certificate under /etc/edgehead/tls, state in /var/lib', () => {
  const file = path.join(EXAMPLES, 'production.yaml');
  const c = loadConfig({ file, env: {}, checkFiles: false });
  assert.equal(c.source.type, 'webcam');
  assert.match(c.mqtt.url, /^mqtts:\/\//);
  assert.equal(c.stateDir, '/var/lib/edgehead');
  assert.ok(c.device.groups.length > 0);
  assert.deepEqual([c.mqtt.tls.ca, c.mqtt.tls.cert, c.mqtt.tls.key].map((p) => p && path.dirname(p)), ['/etc/edgehead/tls', '/etc/edgehead/tls', '/etc/edgehead/tls']);
  assert.deepEqual(c.head.publicKeys, ['/etc/edgehead/keys/edgehead-head.pub'], 'signed heads only');
  assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /not in the schema/);
  // Written for a Pi: elsewhere its files are warnings with checkFiles 'warn' (config check --no-file-checks).
  const r = checkConfig({ file, env: {}, checkFiles: 'warn' });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings.map((w) => w.path), ['mqtt.tls.ca', 'mqtt.tls.cert', 'mqtt.tls.key', 'head.publicKeys[0]']);
  // With the TLS files and the key in place (here: a copy of the example pointing into a temp folder) the file checks pass too.
  const dir = tmpDir();
  for (const f of ['ca.pem', 'client.pem', 'client.key']) fs.writeFileSync(path.join(dir, f), 'x');
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', 'edgehead-head.pub'), generateKeyPair().publicKeyPem);
  const copy = path.join(dir, 'config.yaml');
  fs.writeFileSync(copy, fs.readFileSync(file, 'utf8').replaceAll('/etc/edgehead/tls/', './').replaceAll('/etc/edgehead/keys/', 'keys/'));
  assert.equal(loadConfig({ file: copy, env: {} }).mqtt.tls.key, path.join(dir, 'client.key'));
  // Without them, exactly the three files are reported.
  fs.rmSync(path.join(dir, 'client.key'));
  assert.throws(() => loadConfig({ file: copy, env: {} }), (e: unknown) => e instanceof ConfigError && e.errors.join() === `mqtt.tls.key: file not found: ${path.join(dir, 'client.key')}`);
});

test('stream.yaml: rpicam-vid writing MJPEG to stdout', () => {
  const c = loadConfig({ file: path.join(EXAMPLES, 'stream.yaml'), env: {} });
  assert.equal(c.source.type, 'stream');
  assert.equal(c.source.stream.command, 'rpicam-vid');
  const args = c.source.stream.args;
  assert.equal(args[args.indexOf('--codec') + 1], 'mjpeg');
  assert.equal(args[args.indexOf('-o') + 1], '-');
});

test('rpicam.yaml: the camera module through rpicam-still, turned, with extra rpicam-still options', () => {
  const c = loadConfig({ file: path.join(EXAMPLES, 'rpicam.yaml'), env: {} });
  assert.equal(c.source.type, 'rpicam');
  assert.equal(c.source.rpicam.command, 'rpicam-still');
  assert.equal(c.source.rpicam.rotation, 180);
  assert.deepEqual(c.source.rpicam.extraArgs, ['--autofocus-mode', 'manual', '--lens-position', '0.5']);
  assert.equal(c.source.rpicam.restartMaxMs, defaultConfig().source.rpicam.restartMaxMs, 'unset settings keep their defaults');
});
