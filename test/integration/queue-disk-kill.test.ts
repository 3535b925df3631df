/**
 * DiskQueue against a real kill -9: a child process pushes (and now and then shifts) in a loop and is killed with
 * SIGKILL; three rounds, each child continuing the sequence where the survivors end. The cap is small, so drops,
 * rolls and deletions happen too. The rest of DiskQueue is in test/unit/queue-disk.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { DiskQueue } from '../../agent/store/disk-queue';
import { configureLogging } from '../../base/log';
import { ROOT, tmpDir } from '../support/cli';

configureLogging({ level: 'error' }); // a torn last record after kill -9 is expected; open() warns about it

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

const CHILD = `
const { DiskQueue } = require(${JSON.stringify(path.join(ROOT, 'agent', 'store', 'disk-queue'))});
const dir = process.env.Q_DIR;
const start = Number(process.env.Q_START);
(async () => {
  const q = new DiskQueue({ dir, maxBytes: 64 * 1024, segmentBytes: 8 * 1024 });
  await q.open();
  for (let i = start; ; i++) {
    await q.push({ topic: 'seq/' + i, payload: JSON.stringify({ i, pad: 'x'.repeat(i % 200) }), qos: 1, retain: i % 2 === 0 });
    if (i % 7 === 0) await q.shift(2);
    if (i % 50 === 0) process.stdout.write(JSON.stringify({ pushed: i + 1 }) + '\\n');
  }
})();
`;

function runChildUntilKilled(dir: string, start: number, killAfter: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', CHILD], {
      cwd: ROOT,
      env: { ...process.env, Q_DIR: dir, Q_START: String(start), EDGEHEAD_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let reported = start;
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) reported = Math.max(reported, (JSON.parse(line) as { pushed: number }).pushed);
      if (reported >= killAfter && !child.killed) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && reported >= killAfter) resolve(reported);
      else reject(new Error(`child exited (code ${code}, signal ${signal}) after ${reported} pushes: ${err}`));
    });
  });
}

test('kill -9 while pushing and shifting: every record read back is intact, in order, without gaps', { timeout: 180_000 }, async () => {
  const dir = path.join(tmpDir('queue-kill-'), 'q');
  let start = 0;
  let lastDropped = 0;
  for (let round = 0; round < 3; round++) {
    const reported = await runChildUntilKilled(dir, start, start + 1500 + round * 337);
    const q = new DiskQueue({ dir, maxBytes: 64 * 1024, segmentBytes: 8 * 1024 });
    await q.open();
    const recs = await q.peek(q.stats().depth);
    assert.equal(recs.length, q.stats().depth);
    assert.ok(recs.length > 100);
    const seq = recs.map((m) => {
      const p = JSON.parse(m.payload) as { i: number; pad: string };
      assert.equal(m.topic, `seq/${p.i}`);
      assert.equal(p.pad, 'x'.repeat(p.i % 200));
      assert.equal(m.qos, 1);
      assert.equal(m.retain, p.i % 2 === 0);
      return p.i;
    });
    assert.deepEqual(seq, range(seq[0]!, seq[0]! + seq.length), 'a contiguous run of the sequence');
    assert.ok(seq.at(-1)! + 1 >= reported, `everything reported pushed (${reported}) survived; last is ${seq.at(-1)}`);
    assert.ok(q.stats().dropped >= lastDropped && q.stats().dropped > 0);
    lastDropped = q.stats().dropped;
    start = seq.at(-1)! + 1;
    await q.close();
  }
});
