/**
 * The zero-config start (`npm start`): embedded broker, bundled frames, demo head, predictions on the console and
 * on MQTT (seen by the real mosquitto_sub). And `run` refusing a bad config with every error and exit code 2.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { runCli, tmpDir } from '../support/cli';
import { freePort } from '../support/mosquitto';

const SUB = ['/usr/bin/mosquitto_sub'].find((p) => fs.existsSync(p));

test('no config: embedded broker, predictions printed and published (mosquitto_sub sees them)', { skip: !SUB && 'mosquitto-clients not installed' }, async () => {
  const port = await freePort();
  const state = tmpDir();
  // Same as `npm start`, except the port (1883 may be taken on a developer machine) and the state dir.
  const env = { EDGEHEAD_MQTT_URL: `mqtt://127.0.0.1:${port}`, EDGEHEAD_STATE_DIR: state };
  const { proc } = startAgentWithoutConfig(env);
  const agent = proc;
  let out = '';
  let err = '';
  agent.stdout!.on('data', (d) => (out += d));
  agent.stderr!.on('data', (d) => (err += d));
  try {
    await waitFor(() => /watch it with: mosquitto_sub -h 127\.0\.0\.1 -p \d+ -t 'edgehead\/#' -v/.test(err), 60_000, () => err);
    assert.match(err, /embedded MQTT broker listening/);
    // The retained status, head/state, schedule and state come first (4 at most), then predictions.
    const sub = spawn(SUB!, ['-h', '127.0.0.1', '-p', String(port), '-t', 'edgehead/#', '-v', '-C', '6']);
    let got = '';
    sub.stdout.on('data', (d) => (got += d));
    await new Promise((r) => sub.once('exit', r));
    const lines = got.trim().split('\n');
    assert.equal(lines.length, 6, got);
    assert.ok(lines.some((l) => / \{"ts":".*"frameId":\d+/.test(l) && l.includes('/predictions ')), got);
    await waitFor(() => /^#\d+ directory:\S+: \w+ \d\.\d\d/m.test(out), 10_000, () => out);
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
  }
});

function startAgentWithoutConfig(env: NodeJS.ProcessEnv) {
  const root = path.resolve(__dirname, '..', '..');
  const proc = spawn(process.execPath, [path.join(root, 'bin', 'edgehead.cjs'), 'run'], {
    cwd: root,
    env: { ...process.env, EDGEHEAD_LOG_LEVEL: undefined, EDGEHEAD_CONFIG: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { proc };
}

async function waitFor(fn: () => boolean, timeoutMs: number, show: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out; output:\n${show()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('run with a config that has three mistakes: all three reported with key paths, exit 2, nothing started', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(file, ['version: 1', 'schedule:', '  intervalMs: 0', 'backend:', '  threads: many', 'mqtt:', '  urll: mqtt://x'].join('\n'));
  const r = await runCli(['run', '--config', file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /invalid configuration \(3 errors\)/);
  assert.match(r.stderr, /schedule\.intervalMs: must be >= 50 \(got 0\)/);
  assert.match(r.stderr, /backend\.threads: .*\(got "many"\)/);
  assert.match(r.stderr, /mqtt\.urll: unknown key \(did you mean url\?\)/);
  assert.ok(!/agent started/.test(r.stderr));
});
