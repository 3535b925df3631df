/**
 * The agent process under a service manager's environment (NOTIFY_SOCKET, WATCHDOG_USEC), the way systemd starts
 * it with Type=notify and WatchdogSec= (firmware-scripts/edgehead.service):
 *  - a stand-in `systemd-notify` first on PATH (a script appending its parent PID, NOTIFY_SOCKET and arguments to a
 *    file): READY=1 once a first frame went through (its status line says so), WATCHDOG=1 again and again, STOPPING=1 at SIGTERM; spawned by
 *    the agent itself (its parent PID is the agent's: systemd-notify reports that PID as the sender);
 *  - no systemd-notify on PATH: one warning, and the agent goes on predicting;
 *  - the real systemd-notify (systemd 252) sending to a datagram socket (a python3 listener that, like systemd,
 *    closes the barrier fds): the wire messages READY=1 + STATUS=, WATCHDOG=1, STOPPING=1. Skipped with a reason
 *    when systemd-notify or python3 is missing.
 * The embedded broker on a free loopback port; nothing waits for a fixed time.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tmpDir } from '../support/cli';
import { AgentProcess, testConfig } from '../support/agent-process';
import { freePort } from '../support/mosquitto';

const SYSTEMD_NOTIFY = ['/usr/bin/systemd-notify', '/bin/systemd-notify'].find((p) => fs.existsSync(p));
const PYTHON3 = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'python3')).find((p) => fs.existsSync(p));

async function waitFor<T>(what: string, fn: () => T | undefined | false, show: () => string, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${show()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An agent config on the embedded broker (a free loopback port), frames every 200 ms, predictions printed. */
async function config(): Promise<Record<string, unknown>> {
  const port = await freePort();
  return testConfig(`mqtt://127.0.0.1:${port}`, { mqtt: { embeddedBroker: 'auto' }, predictions: { console: 'on' }, backend: { threads: 1 } });
}

test('a systemd-notify stand-in on PATH: READY=1 after the first prediction, WATCHDOG=1 repeats, STOPPING=1 at SIGTERM', async () => {
  const dir = tmpDir('notify-');
  const log = path.join(dir, 'notify.log');
  fs.writeFileSync(path.join(dir, 'systemd-notify'), `#!/bin/sh\nprintf 'ppid=%s socket=%s args=%s\\n' "$PPID" "$NOTIFY_SOCKET" "$*" >> '${log}'\n`, { mode: 0o755 });
  const socket = path.join(dir, 'notify.sock');
  const agent = AgentProcess.start(await config(), { env: { PATH: `${dir}:${process.env.PATH}`, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' } });
  const lines = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []);
  const show = () => `notify.log:\n${lines().join('\n')}\nstdout:\n${agent.stdout.slice(-2000)}\nstderr:\n${agent.stderr.slice(-3000)}`;
  try {
    const ready = await waitFor('READY=1', () => lines().find((l) => l.includes(' args=--ready ')), show);
    // READY's status says a frame went through ("last frame ..."); that READY follows the publish is in
    // test/unit/service-health.test.ts (one process, no pipes to race).
    await waitFor('the first prediction', () => /^#1 directory:/m.test(agent.stdout), show);
    assert.match(ready, /args=--ready --status=running: head demo v\d+, 1 frame\/200 ms, last frame (just now|\d+(\.\d)? s ago)$/, show());
    assert.match(lines()[0]!, /args=--status=starting: head demo v\d+, 1 frame\/200 ms, first frame due in \d+ ms$/, show());
    for (const l of lines()) {
      assert.ok(l.startsWith(`ppid=${agent.proc.pid} socket=${socket} args=`), `spawned by the agent itself, with NOTIFY_SOCKET: ${l}`);
    }
    const readyAt = lines().indexOf(ready);
    await waitFor('3 WATCHDOG=1 after READY', () => lines().slice(readyAt + 1).filter((l) => / args=--status=running: .* WATCHDOG=1$/.test(l)).length >= 3, show);
    assert.equal(lines().filter((l) => l.includes('--ready')).length, 1, 'READY once');

    const exit = await agent.kill('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, show());
    assert.match(lines().at(-1)!, / args=--status=stopping STOPPING=1$/, show());
    assert.doesNotMatch(agent.stderr, /systemd-notify failed/);
  } finally {
    await agent.kill('SIGKILL');
  }
});

test('NOTIFY_SOCKET set but no systemd-notify on PATH: one warning, the agent goes on predicting', async () => {
  const empty = tmpDir('notify-empty-path-');
  const agent = AgentProcess.start(await config(), { env: { PATH: empty, NOTIFY_SOCKET: path.join(empty, 'notify.sock'), WATCHDOG_USEC: '200000' } });
  const show = () => `stdout:\n${agent.stdout.slice(-2000)}\nstderr:\n${agent.stderr.slice(-3000)}`;
  try {
    await waitFor('5 predictions', () => /^#5 directory:/m.test(agent.stdout), show);
    await waitFor('the warning', () => /systemd-notify failed/.test(agent.stderr), show);
    assert.equal(agent.stderr.match(/WARN .*systemd-notify failed/g)?.length, 1, show());
    assert.match(agent.stderr, /systemd-notify not found on PATH \(NOTIFY_SOCKET is set: install systemd, or unset NOTIFY_SOCKET\)/);
    assert.ok(agent.running);
    assert.deepEqual(await agent.kill('SIGTERM'), { code: 0, signal: null }, show());
  } finally {
    await agent.kill('SIGKILL');
  }
});

// A datagram socket like systemd's notify socket: prints each message (newlines as "|") and closes the file
// descriptors passed with it (systemd-notify's barrier waits for that).
const LISTENER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(64))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % 4])
            for fd in fds:
                os.close(fd)
    print(msg.decode().replace("\\n", "|"), flush=True)
`;

test('the real systemd-notify against a notify socket: READY=1 with STATUS=, WATCHDOG=1, STOPPING=1 on the wire', { skip: (!SYSTEMD_NOTIFY && 'systemd-notify not installed') || (!PYTHON3 && 'python3 not installed (the socket listener)') }, async () => {
  const dir = tmpDir('notify-real-');
  const socket = path.join(dir, 'notify.sock');
  const listener: ChildProcess = spawn(PYTHON3!, ['-c', LISTENER, socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  let got = '';
  listener.stdout!.on('data', (d) => (got += d));
  listener.stderr!.on('data', (d) => (got += d));
  /** Each message's VARIABLE=VALUE lines (systemd-notify puts STATUS= before its positional arguments). */
  const messages = () => got.trim().split('\n').slice(1).map((m) => m.split('|'));
  const has = (m: string[], ...vars: (string | RegExp)[]) => vars.every((v) => m.some((f) => (typeof v === 'string' ? f === v : v.test(f))));
  try {
    await waitFor('the listener', () => got.startsWith('listening'), () => got);
    const agent = AgentProcess.start(await config(), { env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' } });
    const show = () => `socket:\n${got}\nstderr:\n${agent.stderr.slice(-3000)}`;
    try {
      await waitFor('READY=1', () => messages().some((m) => has(m, 'READY=1')), show);
      assert.ok(messages().some((m) => has(m, 'READY=1', /^STATUS=running: head demo v\d+, 1 frame\/200 ms, last frame (just now|.* ago)$/)), show());
      await waitFor('2 WATCHDOG=1', () => messages().filter((m) => has(m, 'WATCHDOG=1', /^STATUS=running: /)).length >= 2, show);
      assert.deepEqual(await agent.kill('SIGTERM'), { code: 0, signal: null }, show());
      await waitFor('STOPPING=1', () => messages().some((m) => has(m, 'STOPPING=1', 'STATUS=stopping')), show);
      assert.ok(messages().some((m) => has(m, 'BARRIER=1')), 'systemd-notify waited for the manager (barrier)');
      assert.doesNotMatch(agent.stderr, /systemd-notify failed/);
    } finally {
      await agent.kill('SIGKILL');
    }
  } finally {
    listener.kill('SIGTERM');
  }
});
