/**
 * `edgehead run` as systemd runs it: stderr is the journal stream and JOURNAL_STREAM names its device:inode. No
 * systemd here (no systemd-run, no booted systemd in the test environment), so the test plays its part: stderr is a
 * file whose fstat gives JOURNAL_STREAM. A camera that fails every frame: each line carries its syslog priority and
 * no timestamp, "frame failed" is printed once (then summarised), the 'camera' problem is logged once.
 * The same run with a JOURNAL_STREAM naming another stream (inherited, stderr redirected) prints plain lines.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { testConfig } from '../support/agent-process';
import { ROOT, tmpDir } from '../support/cli';
import { freePort } from '../support/mosquitto';

async function runWithStderrFile(journal: 'matching' | 'other'): Promise<string> {
  const dir = tmpDir('log-journal-');
  const frames = path.join(dir, 'frames');
  fs.mkdirSync(frames);
  fs.writeFileSync(path.join(frames, 'broken.jpg'), 'this is not a JPEG'); // every frame fails the same way
  const config = path.join(dir, 'config.json');
  const url = `mqtt://127.0.0.1:${await freePort()}`; // nobody listens: the agent queues and retries
  fs.writeFileSync(config, JSON.stringify(testConfig(url, { source: { type: 'directory', directory: { path: frames } } })));
  const errFile = path.join(dir, 'stderr.log');
  const fd = fs.openSync(errFile, 'w');
  const st = fs.fstatSync(fd, { bigint: true });
  const stream = journal === 'matching' ? `${st.dev}:${st.ino}` : `${st.dev}:${st.ino + 1n}`;
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'edgehead.cjs'), 'run', '--config', config], {
    cwd: ROOT,
    env: { ...process.env, EDGEHEAD_LOG_LEVEL: undefined, EDGEHEAD_LOG_FORMAT: undefined, JOURNAL_STREAM: stream },
    stdio: ['ignore', 'ignore', fd],
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 60_000;
    while (!/problem: frames keep failing/.test(fs.readFileSync(errFile, 'utf8'))) {
      if (proc.exitCode !== null) throw new Error(`agent exited: ${fs.readFileSync(errFile, 'utf8')}`);
      if (Date.now() > deadline) throw new Error(`no camera problem logged: ${fs.readFileSync(errFile, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The problem is set by the 3rd failure in a row: 2 repeats were counted by then, so a summary follows (at the
    // latest at shutdown: flushLogRepeats).
  } finally {
    proc.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
  const out = fs.readFileSync(errFile, 'utf8');
  if (process.env.SHOW_STDERR) process.stdout.write(out);
  return out;
}

test('under the journal: priority prefixes, no timestamps, one "frame failed" line plus its summary, the problem once', async () => {
  const [journal, plain] = await Promise.all([runWithStderrFile('matching'), runWithStderrFile('other')]);

  const lines = journal.trimEnd().split('\n');
  for (const l of lines) assert.match(l, /^<[3467]>/, `every line has its priority: ${l}`);
  assert.ok(!/\d{4}-\d\d-\d\dT\d\d:\d\d/.test(journal), 'no timestamp of ours');
  assert.equal(lines.filter((l) => /^<4>WARN {2}\[frames\] frame failed error=.*broken\.jpg/.test(l)).length, 1, journal);
  assert.ok(lines.some((l) => /^<4>WARN {2}\[frames\] frame failed \(repeated \d+ times in the last \d+ s\)/.test(l)), 'the summary, at the latest at shutdown');
  assert.equal(lines.filter((l) => /^<4>WARN {2}\[problems\] problem: frames keep failing: .*broken\.jpg/.test(l)).length, 1);
  assert.ok(lines.some((l) => /^<6>INFO {2}\[/.test(l)), 'info lines (log.level info) at priority 6');
  assert.ok(lines.some((l) => /^<6>edgehead: device \S+ running/.test(l)), 'the hand-written start line too');

  assert.ok(!/^<\d>/m.test(plain), 'JOURNAL_STREAM of another stream: no prefixes');
  assert.match(plain, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN {2}\[frames\] frame failed/m);
});
