/** The state dir under attack: damaged files, two agents, a full disk. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../../test/support/cli';
import { sleep } from '../harness';
import type { Scenario } from '../world';

/** Counts from the agent's own log line "... skipped=N ..." or "... dropped=N ...", the highest seen. */
function counted(text: string, key: string): number {
  let n = 0;
  for (const m of text.matchAll(new RegExp(`\\b${key}=(\\d+)`, 'g'))) n = Math.max(n, Number(m[1]));
  return n;
}

export const corruptQueue: Scenario = {
  name: 'corrupt-queue',
  proves: 'one flipped byte in a queue segment costs at most the record it hit',
  async run(w, { short }) {
    await w.broker.stop();
    const a = w.agent();
    await a.frames(short ? 40 : 180);
    await a.stop();
    const qdir = path.join(w.stateDir, 'queue');
    const seg = fs.readdirSync(qdir).filter((f) => f.endsWith('.seg')).sort()[0]!;
    const file = path.join(qdir, seg);
    const bytes = fs.readFileSync(file);
    const at = Math.floor(bytes.length * 0.05);
    bytes[at]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    w.notes.push(`flipped byte ${at} of ${bytes.length} in ${seg}`);
    await w.broker.restart();
    const b = w.agent();
    await b.frames(20); // telemetry (every second) reports the skipped count meanwhile
    await b.stop();
    const skipped = Math.max(counted(b.stderr, 'skipped'), w.ledger.queueCounters.skipped);
    w.notes.push(`the agent reported ${skipped} skipped`);
    const out = await w.outcome({ maxLost: 1, why: 'the damaged record' });
    if (out.lost !== skipped) out.failure ??= `lost ${out.lost} but the agent reported ${skipped} skipped`;
    return out;
  },
};

export const corruptState: Scenario = {
  name: 'corrupt-state',
  proves: 'a garbage run counter and a damaged active head: the agent starts, run numbers never repeat',
  async run(w) {
    const a = w.agent();
    await a.frames(10);
    await a.stop();
    const runA = a.run!;
    fs.writeFileSync(path.join(w.stateDir, 'run'), 'garbage\u0000\n');
    const active = path.join(w.stateDir, 'heads', 'active.head');
    if (fs.existsSync(active)) {
      const h = fs.readFileSync(active);
      h[h.length - 1]! ^= 0xff;
      fs.writeFileSync(active, h);
      w.notes.push('active.head damaged');
    }
    const b = w.agent();
    await b.frames(10);
    await b.stop();
    w.notes.push(`runs ${runA} -> ${b.run}`);
    const out = await w.outcome();
    if (!(b.run! > runA)) out.failure ??= `run number repeated or went back: ${runA} -> ${b.run}`;
    return out;
  },
};

export const twoAgents: Scenario = {
  name: 'two-agents',
  proves: 'a second agent on the same state dir exits at once with a one-line error; the first is unharmed',
  async run(w) {
    const a = w.agent();
    await a.frames(5);
    const b = w.agent();
    const exit = await Promise.race([b.exited, sleep(30_000).then(() => undefined)]);
    await a.frames(5);
    await a.stop();
    const line = b.stderr.trim().split('\n').filter((l) => /error/.test(l));
    w.notes.push(`second agent: exit ${exit?.code ?? 'still running'}: ${line[0]?.slice(0, 100) ?? '(no error line)'}`);
    const out = await w.outcome();
    if (!exit || exit.code === 0) out.failure ??= 'the second agent did not exit non-zero';
    return out;
  },
};

/** Fills the file system holding `dir` with a filler file until ENOSPC. */
function fillUp(dir: string): number {
  const fd = fs.openSync(path.join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x42);
  let written = 0;
  try {
    for (;;) written += fs.writeSync(fd, chunk);
  } catch {
    for (let size = 4096; size >= 1; size >>= 1) {
      try {
        for (;;) written += fs.writeSync(fd, chunk.subarray(0, size));
      } catch {
        // next smaller size
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return written;
}

export const diskFull: Scenario = {
  name: 'disk-full',
  proves: 'the disk fills up during an outage: the agent keeps classifying, drops (and counts) the oldest queued predictions, restarts on the full disk, delivers the rest',
  async run(w, { short }) {
    const mnt = tmpDir('chaos-tmpfs-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      w.notes.push('skipped: cannot mount a tmpfs here (needs root)');
      return w.outcome();
    }
    try {
      const stateDir = path.join(mnt, 'state');
      const over = { stateDir, offline: { maxMB: 50 } };
      await w.broker.stop();
      const a = w.agent(over);
      await a.frames(10);
      const filled = fillUp(mnt);
      w.notes.push(`filled the last ${Math.round(filled / 1024)} KiB of a 4 MiB tmpfs`);
      await a.waitFor('the disk-full warning', () => /disk full/.test(a.stderr));
      await a.frames(short ? 20 : 100); // still classifying
      await a.stop();
      const b = w.agent(over); // restart on the full disk
      await b.frames(10);
      await w.broker.restart();
      await b.frames(20);
      await b.stop();
      const dropped = Math.max(counted(a.stderr + b.stderr, 'droppedTotal'), w.ledger.queueCounters.dropped);
      w.notes.push(`the agents reported ${dropped} dropped`);
      const out = await w.outcome({ maxLost: Number.MAX_SAFE_INTEGER });
      if (out.lost > dropped) out.failure ??= `lost ${out.lost} but only ${dropped} reported dropped`;
      return out;
    } finally {
      execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
    }
  },
};

export const STATE = [corruptQueue, corruptState, twoAgents, diskFull];
