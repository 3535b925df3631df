/** `edgehead config ...` through the real CLI (bin/edgehead.cjs) as a subprocess. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { defaultConfig } from '../../config/defaults';
import { listEnvVars } from '../../config/env';
import { hasStackTrace, runCli, tmpDir } from '../support/cli';

/** Only the EDGEHEAD_* variables given (the developer's own environment must not leak into these tests). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('EDGEHEAD_')) env[k] = undefined;
  return { ...env, ...extra };
}

function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

test('config check: a file with three mistakes -> exit 2, every mistake on its own line, no stack trace', async () => {
  const file = write(tmpDir(), 'bad.yaml', 'version: 1\nschedule:\n  intervalMs: 0\nbackend:\n  threads: many\nmqtt:\n  urll: mqtt://broker:1883\n  password: hunter2-secret\n');
  const r = await runCli(['config', 'check', file], { env: cleanEnv() });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines[0], 'edgehead: error: invalid configuration (3 errors):');
  assert.deepEqual(lines.slice(1).map((l) => l.trim()).sort(), [
    'backend.threads: must be "auto" or an integer from 1 to 64 (got "many")',
    'mqtt.urll: unknown key (did you mean url?)',
    'schedule.intervalMs: must be >= 50 (got 0)',
  ]);
  assert.ok(!hasStackTrace(r.stderr) && !r.stderr.includes('hunter2-secret'));
});

test('config check: valid -> exit 0 and the effective config as YAML: defaults, env overrides, resolved paths, secrets masked', async () => {
  const dir = tmpDir();
  write(dir, 'ca.pem', 'x');
  const file = write(dir, 'ok.yaml', 'version: 1\ndevice: {id: cam-1}\nstateDir: ./state\nsource: {type: webcam}\nmqtt:\n  password: hunter2-secret\n  tls: {ca: ca.pem}\n');
  const r = await runCli(['config', 'check', file], { env: cleanEnv({ EDGEHEAD_MQTT_URL: 'mqtts://broker.example:8883', EDGEHEAD_SOURCE_HTTP_PASSWORD: 'env-secret' }), cwd: '/' });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes('hunter2-secret') && !r.stdout.includes('env-secret'), r.stdout);
  const shown = YAML.parse(r.stdout);
  assert.equal(shown.mqtt.password, '***');
  assert.equal(shown.source.http.password, '***');
  assert.equal(shown.mqtt.url, 'mqtts://broker.example:8883');
  assert.match(r.stdout, /url: mqtts:\/\/broker\.example:8883 # from EDGEHEAD_MQTT_URL/);
  assert.equal(shown.mqtt.tls.ca, path.join(dir, 'ca.pem'));
  assert.equal(shown.stateDir, path.join(dir, 'state'));
  assert.equal(shown.predictions.topK, defaultConfig().predictions.topK);
  assert.equal(shown.device.id, 'cam-1');

  const j = await runCli(['config', 'check', '--json', file], { env: cleanEnv(), cwd: '/' });
  assert.equal(j.code, 0, j.stderr);
  const json = JSON.parse(j.stdout);
  assert.equal(json.ok, true);
  assert.equal(json.config.mqtt.password, '***');
  assert.equal(json.config.mqtt.tls.rejectUnauthorized, true);
});

test('config check: a bad environment variable fails the check (exit 2) with the variable and key path', async () => {
  const file = write(tmpDir(), 'ok.yaml', 'version: 1\n');
  const r = await runCli(['config', 'check', file], { env: cleanEnv({ EDGEHEAD_SCHEDULE_INTERVAL_MS: 'fast', EDGEHEAD_SCHEDULE_INTERVALL_MS: '5' }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^ {2}EDGEHEAD_SCHEDULE_INTERVAL_MS: must be an integer \(got "fast"\) — sets schedule\.intervalMs$/m);
  assert.match(r.stderr, /^ {2}EDGEHEAD_SCHEDULE_INTERVALL_MS: unknown setting \(did you mean EDGEHEAD_SCHEDULE_INTERVAL_MS\?\)$/m);
});

test('config check: usage errors and unreadable files exit 2', async () => {
  const none = await runCli(['config', 'check'], { env: cleanEnv() });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /config check needs a FILE/);
  const missing = await runCli(['config', 'check', '/nonexistent/edgehead.yaml'], { env: cleanEnv() });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read config file \/nonexistent\/edgehead\.yaml: file not found/);
  const viaEnv = await runCli(['config', 'check'], { env: cleanEnv({ EDGEHEAD_CONFIG: '/nonexistent/via-env.yaml' }) });
  assert.match(viaEnv.stderr, /via-env\.yaml: file not found/);
  const sub = await runCli(['config', 'frobnicate'], { env: cleanEnv() });
  assert.equal(sub.code, 2);
  assert.match(sub.stderr, /unknown config subcommand "frobnicate"/);
});

test('config defaults prints the full default config as YAML; config env lists every variable', async () => {
  const d = await runCli(['config', 'defaults'], { env: cleanEnv() });
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual(YAML.parse(d.stdout), defaultConfig());
  const e = await runCli(['config', 'env'], { env: cleanEnv({ EDGEHEAD_MQTT_URL: 'mqtt://x:1' }) });
  assert.equal(e.code, 0, e.stderr);
  for (const v of listEnvVars()) assert.match(e.stdout, new RegExp(`^[ *] ${v.name} +${v.key.replace(/\./g, '\\.')} `, 'm'), v.name);
  assert.match(e.stdout, /^\* EDGEHEAD_MQTT_URL /m);
  assert.match(e.stdout, /^ {2}EDGEHEAD_WASM_DIR /m);
});
