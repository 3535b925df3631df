/** `edgehead config check` for configs written for another machine, and its --json report (issue 16). */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { hasStackTrace, ROOT, runCli, tmpDir } from '../support/cli';

const PRODUCTION = path.join(ROOT, 'config', 'examples', 'production.yaml');

/** Only the EDGEHEAD_* variables given (the developer's own environment must not leak into these tests). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('EDGEHEAD_')) env[k] = undefined;
  return { ...env, ...extra };
}

const MISSING = ['mqtt.tls.ca', 'mqtt.tls.cert', 'mqtt.tls.key', 'head.publicKeys[0]'];

test('the production example on a laptop: exit 2 naming each missing file, with the --no-file-checks hint; with it: warnings, exit 0', async () => {
  const r = await runCli(['config', 'check', PRODUCTION], { env: cleanEnv() });
  assert.equal(r.code, 2, r.stderr);
  for (const key of MISSING) assert.match(r.stderr, new RegExp(`^ {2}${key.replace(/[.[\]]/g, '\\$&')}: file not found: /etc/edgehead/`, 'm'));
  assert.match(r.stderr, /^ {2}hint: .*edgehead config check --no-file-checks FILE/m);
  assert.ok(!hasStackTrace(r.stderr));

  const ok = await runCli(['config', 'check', '--no-file-checks', PRODUCTION], { env: cleanEnv() });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /is valid \(4 files it names not checked here: see the warnings\)/);
  const warnings = ok.stderr.trimEnd().split('\n');
  assert.deepEqual(warnings.map((l) => /^edgehead: warning: (\S+): file not found: /.exec(l)?.[1]), MISSING);
});

test('config check --json: {ok, errors: [{path, message, hint?}], warnings, config}, errors included, exit codes 0 and 2', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'c.yaml');
  fs.writeFileSync(file, 'version: 1\nmqtt:\n  url: mqtt://broker.local:1883\n  cleanSession: yes\nschedule: {intervalMs: 0}\n');
  const bad = await runCli(['config', 'check', '--json', file], { env: cleanEnv() });
  assert.equal(bad.code, 2, bad.stderr);
  const report = JSON.parse(bad.stdout);
  assert.equal(report.ok, false);
  assert.deepEqual(report.warnings, []);
  assert.deepEqual(report.errors, [
    { path: 'mqtt.cleanSession', message: 'must be true or false (got "yes")', hint: 'write true (YAML 1.2: yes/no/on/off are strings)' },
    { path: 'schedule.intervalMs', message: 'must be >= 50 (got 0)' },
    { path: 'source.type', message: 'required when mqtt.url is a broker on another machine (the default "directory" would publish the bundled sample photos)', hint: 'choose webcam, stream, rpicam, http or directory (docs/configuration.md)' },
  ]);

  const unreadable = await runCli(['config', 'check', '--json', path.join(dir, 'nope.yaml')], { env: cleanEnv() });
  assert.equal(unreadable.code, 2);
  assert.match(JSON.parse(unreadable.stdout).errors[0].message, /cannot read config file .*nope\.yaml: file not found/);

  const files = await runCli(['config', 'check', '--json', PRODUCTION], { env: cleanEnv() });
  assert.equal(files.code, 2);
  const f = JSON.parse(files.stdout);
  assert.deepEqual(f.errors.map((e: { path: string }) => e.path), MISSING);
  assert.match(f.errors[0].hint, /--no-file-checks/);

  const ok = await runCli(['config', 'check', '--json', '--no-file-checks', PRODUCTION], { env: cleanEnv({ EDGEHEAD_MQTT_PASSWORD: 'hunter2-secret' }) });
  assert.equal(ok.code, 0, ok.stderr);
  const o = JSON.parse(ok.stdout);
  assert.equal(o.ok, true);
  assert.deepEqual(o.errors, []);
  assert.deepEqual(o.warnings.map((w: { path: string }) => w.path), MISSING);
  assert.equal(o.config.source.type, 'webcam');
  assert.equal(o.config.mqtt.password, '***');
  assert.ok(!ok.stdout.includes('hunter2-secret'));
});

test('head.publicKeys in a config check: resolved against the config folder, a key that is not Ed25519 is an error', async () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', 'fleet.pub'), 'not a key\n');
  const file = path.join(dir, 'c.yaml');
  fs.writeFileSync(file, 'version: 1\nhead: {publicKeys: [keys/fleet.pub]}\n');
  const r = await runCli(['config', 'check', file], { env: cleanEnv(), cwd: '/' });
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stderr, new RegExp(`head\\.publicKeys\\[0\\]: ${path.join(dir, 'keys', 'fleet.pub').replace(/[./]/g, '\\$&')}: not an Ed25519 public key`));
});
