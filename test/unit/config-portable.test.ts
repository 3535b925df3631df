/**
 * Configs that validate anywhere (issue 16): files missing here as warnings, head.publicKeys resolved and checked like
 * the other path settings, the source chosen for a real broker, YAML 1.1 booleans with a hint.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkConfig, ConfigError, loadConfig } from '../../config/load';
import { generateKeyPair } from '../../protocol/head/signature';
import { tmpDir } from '../support/cli';

const NO_ENV = {};

function writeConfig(dir: string, text: string): string {
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, text);
  return file;
}

test('checkFiles "warn": files missing here are warnings (with their key paths), the config is valid', () => {
  const dir = tmpDir();
  const file = writeConfig(dir, 'version: 1\nsource: {type: webcam}\nmqtt:\n  url: mqtts://b:8883\n  tls: {ca: /nonexistent/ca.pem, cert: tls/client.pem, key: tls/client.key}\nhead: {publicKeys: [/nonexistent/k.pub]}\n');
  const strict = checkConfig({ file, env: NO_ENV });
  assert.equal(strict.config, undefined);
  assert.deepEqual(strict.issues.map((i) => [i.path, i.file]), [['mqtt.tls.ca', true], ['mqtt.tls.cert', true], ['mqtt.tls.key', true], ['head.publicKeys[0]', true]]);
  const r = checkConfig({ file, env: NO_ENV, checkFiles: 'warn' });
  assert.deepEqual(r.errors, []);
  assert.ok(r.config);
  assert.deepEqual(r.warnings.map((w) => `${w.path}: ${w.message}`), [
    'mqtt.tls.ca: file not found: /nonexistent/ca.pem',
    `mqtt.tls.cert: file not found: ${path.join(dir, 'tls', 'client.pem')}`,
    `mqtt.tls.key: file not found: ${path.join(dir, 'tls', 'client.key')}`,
    'head.publicKeys[0]: file not found: /nonexistent/k.pub',
  ]);
  // Other errors stay errors.
  const bad = checkConfig({ data: { version: 1, schedule: { intervalMs: 0 }, mqtt: { tls: { ca: '/nonexistent/ca.pem' } } }, env: NO_ENV, checkFiles: 'warn' });
  assert.deepEqual(bad.errors, ['schedule.intervalMs: must be >= 50 (got 0)']);
  assert.equal(bad.warnings.length, 1);
});

test('head.publicKeys: relative paths resolve against the config file folder, and the keys are checked', () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', 'good.pub'), generateKeyPair().publicKeyPem);
  const file = writeConfig(dir, 'version: 1\nhead:\n  publicKeys: [keys/good.pub]\n');
  // From another working directory: the path is the config folder's.
  const c = loadConfig({ file, env: NO_ENV, cwd: '/' });
  assert.deepEqual(c.head.publicKeys, [path.join(dir, 'keys', 'good.pub')]);

  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  fs.writeFileSync(path.join(dir, 'keys', 'rsa.pub'), rsa);
  fs.writeFileSync(path.join(dir, 'keys', 'private.key'), generateKeyPair().privateKeyPem);
  fs.writeFileSync(path.join(dir, 'keys', 'junk.pub'), 'not a key\n');
  const inline = generateKeyPair().publicKeyPem;
  const bad = writeConfig(
    dir,
    `version: 1\nhead:\n  publicKeys:\n    - keys/good.pub\n    - keys/missing.pub\n    - keys/rsa.pub\n    - keys/private.key\n    - keys/junk.pub\n    - ${JSON.stringify(inline)}\n`,
  );
  let errors: readonly string[] = [];
  assert.throws(() => loadConfig({ file: bad, env: NO_ENV, cwd: '/' }), (e: unknown) => e instanceof ConfigError && ((errors = e.errors), true));
  const k = (f: string) => path.join(dir, 'keys', f);
  assert.equal(errors.length, 4, errors.join('\n'));
  assert.equal(errors[0], `head.publicKeys[1]: file not found: ${k('missing.pub')}`);
  assert.equal(errors[1], `head.publicKeys[2]: ${k('rsa.pub')}: not an Ed25519 public key (a rsa key)`);
  assert.match(errors[2]!, /^head\.publicKeys\[3\]: .*private\.key: this is a PRIVATE key; devices must only hold the public key/);
  assert.match(errors[3]!, /^head\.publicKeys\[4\]: .*junk\.pub: not an Ed25519 public key \(/);
  // An inline PEM is checked too, and left as it is.
  assert.deepEqual(loadConfig({ data: { version: 1, head: { publicKeys: [inline] } }, env: NO_ENV }).head.publicKeys, [inline]);
  assert.throws(() => loadConfig({ data: { version: 1, head: { publicKeys: [rsa] } }, env: NO_ENV }), /head\.publicKeys\[0\]: not an Ed25519 public key \(a rsa key\)/);
  // A bad key is an error even when missing files are only warnings: it is the same file on every machine.
  const warn = checkConfig({ file: bad, env: NO_ENV, checkFiles: 'warn' });
  assert.equal(warn.errors.length, 3);
  assert.deepEqual(warn.warnings.map((w) => w.path), ['head.publicKeys[1]']);
});

test('a broker on another machine needs source.type chosen (file, EDGEHEAD_SOURCE_TYPE); loopback brokers keep the default', () => {
  const refused = checkConfig({ data: { version: 1, mqtt: { url: 'mqtt://broker.local:1883' } }, env: NO_ENV });
  assert.deepEqual(refused.issues, [
    {
      path: 'source.type',
      message: 'required when mqtt.url is a broker on another machine (the default "directory" would publish the bundled sample photos)',
      hint: 'choose webcam, stream, rpicam, http or directory (docs/configuration.md)',
    },
  ]);
  // Also when the URL comes from the environment.
  assert.equal(checkConfig({ data: { version: 1 }, env: { EDGEHEAD_MQTT_URL: 'mqtts://10.0.0.5:8883' } }).issues[0]?.path, 'source.type');
  assert.match(checkConfig({ data: { version: 1, mqtt: { url: 'mqtt://b:1883' }, source: { directory: { path: '/srv/frames' } } }, env: NO_ENV }).errors[0]!, /would publish the images of source\.directory\.path/);
  // Chosen: in the file (even the default's value), or by the environment.
  assert.equal(loadConfig({ data: { version: 1, mqtt: { url: 'mqtt://b:1883' }, source: { type: 'directory' } }, env: NO_ENV }).source.type, 'directory');
  assert.equal(loadConfig({ data: { version: 1, mqtt: { url: 'mqtt://b:1883' } }, env: { EDGEHEAD_SOURCE_TYPE: 'webcam' } }).source.type, 'webcam');
  // Loopback brokers (npm start, the embedded broker): the sample photos stay the default.
  for (const url of ['mqtt://127.0.0.1:1883', 'mqtt://localhost:1883', 'mqtts://[::1]:8883', 'ws://127.0.0.2:9001']) {
    assert.equal(loadConfig({ data: { version: 1, mqtt: { url } }, env: NO_ENV }).source.type, 'directory', url);
  }
  assert.equal(loadConfig({ env: NO_ENV }).source.type, 'directory', 'no file: the embedded defaults');
});

test('YAML 1.1 booleans (yes/no/on/off) in boolean settings get a hint; settings that take "on"/"off" strings do not', () => {
  const dir = tmpDir();
  const file = writeConfig(dir, 'version: 1\nmqtt:\n  cleanSession: yes\n  embeddedBroker: on\n  tls: {rejectUnauthorized: off}\nmotion: {gate: On}\npredictions: {console: off}\ncollect: {images: maybe}\n');
  const r = checkConfig({ file, env: NO_ENV });
  assert.deepEqual(r.issues, [
    { path: 'mqtt.embeddedBroker', message: 'must be one of: auto, off (got "on")' },
    { path: 'mqtt.cleanSession', message: 'must be true or false (got "yes")', hint: 'write true (YAML 1.2: yes/no/on/off are strings)' },
    { path: 'mqtt.tls.rejectUnauthorized', message: 'must be true or false (got "off")', hint: 'write false (YAML 1.2: yes/no/on/off are strings)' },
    { path: 'collect.images', message: 'must be true or false (got "maybe")' },
    { path: 'motion.gate', message: 'must be true or false (got "On")', hint: 'write true (YAML 1.2: yes/no/on/off are strings)' },
  ]);
  assert.ok(r.errors.includes('mqtt.cleanSession: must be true or false (got "yes") — write true (YAML 1.2: yes/no/on/off are strings)'), r.errors.join('\n'));
});
