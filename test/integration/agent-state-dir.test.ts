/**
 * The state dir with real agent processes (issue 11, items 2 and 6): a second agent on the same state dir exits at
 * once with one line naming the first one's pid and the dir; a lock left by kill -9 is taken over; an agent on a full
 * disk (a small tmpfs, when this process may mount one) keeps classifying and restarts cleanly.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { AgentProcess, testConfig } from '../support/agent-process';
import { tmpDir } from '../support/cli';
import { freePort } from '../support/mosquitto';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const running = (a: AgentProcess) => /running; watch it with/.test(a.stderr);

test('two agents on one state dir: the second exits 1 at once with one line naming the pid and the dir', async () => {
  const url = `mqtt://127.0.0.1:${await freePort()}`; // no broker: the agents queue
  const stateDir = path.join(tmpDir('two-agents-'), 'state');
  const cfg = testConfig(url, { stateDir });
  const a = AgentProcess.start(cfg);
  try {
    await waitFor('the first agent running', () => running(a) || !a.running);
    assert.ok(a.running, a.stderr);
    const b = AgentProcess.start(cfg);
    const { code } = await b.exited;
    assert.equal(code, 1);
    const errors = b.stderr.split('\n').filter((l) => l.startsWith('edgehead: error:'));
    assert.equal(errors.length, 1, b.stderr);
    assert.equal(errors[0], `edgehead: error: stateDir ${stateDir} is in use by another edgehead agent (pid ${a.proc.pid}); lock file ${path.join(stateDir, 'lock')} (stop that agent, or give each agent its own stateDir)`);
    assert.ok(a.running, 'the first agent is untouched');

    await a.kill('SIGKILL'); // leaves its lock behind
    assert.ok(fs.existsSync(path.join(stateDir, 'lock')));
    const c = AgentProcess.start(cfg);
    await waitFor('a new agent running', () => running(c) || !c.running);
    assert.ok(c.running, c.stderr);
    assert.match(c.stderr, /took over a stale state dir lock/);
    assert.deepEqual(await c.kill('SIGTERM'), { code: 0, signal: null });
    assert.ok(!fs.existsSync(path.join(stateDir, 'lock')), 'released at stop');
  } finally {
    await a.kill('SIGKILL');
  }
});

const canMount = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = tmpDir('mount-probe-');
  const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
  if (ok) spawnSync('umount', [probe]);
  return ok;
})();

test('a full disk (a 2 MiB tmpfs filled up): the agent keeps classifying, reports disk-full and restarts cleanly', { skip: !canMount && 'needs root to mount a tmpfs' }, async () => {
  const mnt = tmpDir('full-disk-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  const agents: AgentProcess[] = [];
  try {
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const cfg = testConfig(url, { stateDir: path.join(mnt, 'state'), predictions: { console: 'on' }, log: { level: 'info' } });
    const first = AgentProcess.start(cfg);
    agents.push(first);
    await waitFor('a few queued predictions', () => first.stdout.split('\n').length > 5 || !first.running);
    // Fill the disk to the last byte.
    const filler = fs.openSync(path.join(mnt, 'filler'), 'w');
    try {
      for (;;) fs.writeSync(filler, Buffer.alloc(64 * 1024));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    try {
      for (;;) fs.writeSync(filler, Buffer.alloc(512));
    } catch {
      // full
    }
    fs.closeSync(filler);
    const lines = first.stdout.length;
    await waitFor('disk-full reported', () => /problem: disk full/.test(first.stderr) || !first.running);
    await waitFor('more predictions on the full disk', () => first.stdout.length > lines + 500 || !first.running);
    assert.ok(first.running, first.stderr);
    await first.kill('SIGKILL');

    const second = AgentProcess.start(cfg); // restart on the full disk: run counter, lock, queue
    agents.push(second);
    await waitFor('the restarted agent running', () => running(second) || !second.running);
    assert.ok(second.running, second.stderr);
    const before = second.stdout.length;
    await waitFor('predictions after the restart', () => second.stdout.length > before + 200 || !second.running);
    assert.ok(second.running, second.stderr);
    assert.doesNotMatch(second.stderr, /edgehead: error/);
    assert.deepEqual(await second.kill('SIGTERM'), { code: 0, signal: null });
  } finally {
    for (const a of agents) await a.kill('SIGKILL');
    execFileSync('umount', ['-l', mnt]);
  }
});
