/** Passwords inside URLs are never printed: `config check` (text and JSON) and the running agent's log. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { waitUntil } from '../support/assertions';
import { AgentProcess, testConfig } from '../support/agent-process';
import { runCli, tmpDir } from '../support/cli';
import { freePort } from '../support/mosquitto';

const SECRET = 'hunter2-pw';

test('config check shows mqtt://user:***@host, in text and --json', async () => {
  const file = path.join(tmpDir('cred-'), 'c.yaml');
  fs.writeFileSync(file, `version: 1\nsource: {type: webcam}\nmqtt:\n  url: mqtt://bob:${SECRET}@broker.example:1883\n`);
  for (const args of [['config', 'check', file], ['config', 'check', '--json', file]]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), args.join(' '));
    assert.match(r.stdout, /mqtt:\/\/bob:\*\*\*@broker\.example:1883/);
  }
});

test('the agent logs its broker URL without the password, also when the connection fails', async () => {
  const port = await freePort();
  const agent = AgentProcess.start(testConfig(`mqtt://bob:${SECRET}@127.0.0.1:${port}`, { log: { level: 'debug' } }));
  try {
    await waitUntil('a refused connection in the log', () => /refused the connection/.test(agent.stderr) || !agent.running);
    assert.ok(agent.running, agent.stderr);
    assert.match(agent.stderr, new RegExp(`broker mqtt://bob:\\*\\*\\*@127\\.0\\.0\\.1:${port} refused`));
  } finally {
    await agent.kill();
  }
  assert.ok(!(agent.stdout + agent.stderr).includes(SECRET));
});

test('head push --help names the ways to give a password that ps cannot show', async () => {
  const r = await runCli(['head', 'push', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--password-file F/);
  assert.match(r.stdout, /EDGEHEAD_PUSH_PASSWORD/);
});
