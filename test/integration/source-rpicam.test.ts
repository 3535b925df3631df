/**
 * The rpicam source against test/support/fakes/rpicam-still, a bash stand-in that follows the real command line
 * (refuses unknown options, dies on a SIGUSR1 that arrives before the camera has started, writes each still in two
 * parts before linking it with --latest, dies on a dangling --latest link): the argv it gets, captures, the readiness
 * wait, the timeout that kills a hung command, a crash -> restart with backoff -> captures again, the command not
 * installed, no camera, and stop() leaving no process (checked in /proc), temp folder or timer behind. Variants of the
 * fake are small wrapper scripts setting its environment.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { type RpicamEvent, type RpicamSettings, RpicamSource, rpicamArgs } from '../../agent/sources/rpicam';
import { type Clock, ManualClock } from '../../base/clock';
import { rejectsWith } from '../support/assertions';

const FAKE = path.resolve(__dirname, '../support/fakes/rpicam-still');
const SAMPLE = fs.readFileSync(path.resolve(__dirname, '../../assets/samples/fish/fish1.jpg'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-rpicam-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** An executable running the fake with these environment variables (FAKE_RPICAM_*). */
function fake(env: Record<string, string> = {}, name = 'rpicam-still'): string {
  const dir = path.join(tmp, `bin${n++}`);
  fs.mkdirSync(dir);
  const file = path.join(dir, name);
  const vars = Object.entries(env).map(([k, v]) => `${k}='${v}' `).join('');
  fs.writeFileSync(file, `#!/bin/sh\n${vars}exec '${FAKE}' "$@"\n`, { mode: 0o755 });
  return file;
}

class Recorder {
  readonly events: RpicamEvent[] = [];
  private pending: { pred: (e: RpicamEvent) => boolean; resolve: (e: RpicamEvent) => void }[] = [];
  readonly on = (e: RpicamEvent): void => {
    this.events.push(e);
    for (const p of [...this.pending]) {
      if (p.pred(e)) {
        this.pending.splice(this.pending.indexOf(p), 1);
        p.resolve(e);
      }
    }
  };
  waitFor<T extends RpicamEvent['type']>(type: T, pred: (e: Extract<RpicamEvent, { type: T }>) => boolean = () => true): Promise<Extract<RpicamEvent, { type: T }>> {
    const match = (e: RpicamEvent): boolean => e.type === type && pred(e as Extract<RpicamEvent, { type: T }>);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen as Extract<RpicamEvent, { type: T }>);
    return new Promise((resolve, reject) => {
      // Only turns a hang into a failure with a message.
      const guard = setTimeout(() => reject(new Error(`no ${type} event within 30 s; events: ${JSON.stringify(this.events)}`)), 30_000);
      this.pending.push({ pred: match, resolve: (e) => (clearTimeout(guard), resolve(e as Extract<RpicamEvent, { type: T }>)) });
    });
  }
  count(type: RpicamEvent['type']): number {
    return this.events.filter((e) => e.type === type).length;
  }
}

/** Every source a test made, stopped after it (so that a failing test leaves no process restarting forever). */
const made: RpicamSource[] = [];
afterEach(async () => {
  for (const src of made.splice(0)) await src.stop();
});

function make(command: string, over: Partial<RpicamSettings> = {}, clock?: Clock): { src: RpicamSource; rec: Recorder } {
  const rec = new Recorder();
  const settings = { ...defaultConfig().source.rpicam, command, ...over };
  const src = new RpicamSource(settings, { clock, onEvent: rec.on });
  made.push(src);
  return { src, rec };
}

/** Processes (not zombies) in /proc whose process group is pgid. */
function processesInGroup(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after its last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') found.push(Number(entry));
  }
  return found;
}

describe('rpicam source', { timeout: 120_000 }, () => {
  test('rpicam-still gets the documented argv; captures wait for the camera to start, then give its stills', async () => {
    const argsFile = path.join(tmp, 'args.txt');
    // The fake's camera takes 0.5 s to start: a SIGUSR1 before then would kill it (as it would the real one).
    const { src, rec } = make(fake({ FAKE_RPICAM_ARGS_FILE: argsFile, FAKE_RPICAM_START_SEC: '0.5' }), {
      camera: 0,
      width: 800,
      height: 600,
      jpegQuality: 85,
      hflip: true,
      awb: 'daylight',
      extraArgs: ['--autofocus-mode', 'manual', '--lens-position', '0.5'],
    });
    await src.start();
    const dir = src.tempDir!;
    assert.equal((fs.statSync(dir).mode & 0o777).toString(8), '700', 'a private temp folder');
    for (let i = 1; i <= 3; i++) {
      const f = await src.capture();
      assert.ok(Buffer.from(f.bytes).equals(SAMPLE), `capture ${i}: the still, complete`);
      assert.equal(f.origin, 'rpicam:0');
      assert.ok(f.captureMs >= 0);
      assert.deepEqual(fs.readdirSync(dir), [], `capture ${i}: still and link removed after reading`);
    }
    assert.equal(rec.count('spawn'), 1, 'one long-running process for all captures');
    assert.equal(rec.count('exit'), 0);
    assert.equal(rec.count('trigger'), 3);
    assert.ok(rec.events.findIndex((e) => e.type === 'ready') < rec.events.findIndex((e) => e.type === 'trigger'), 'ready before the first trigger');
    const args = fs.readFileSync(argsFile, 'utf8').trimEnd().split('\n');
    assert.deepEqual(args, [
      '-t', '0', '--signal', '-n', '--camera', '0', '--width', '800', '--height', '600', '-q', '85', '--encoding', 'jpg', '--thumb', 'none',
      '-o', path.join(dir, 'still.jpg'), '--latest', path.join(dir, 'latest.jpg'),
      '--hflip', '--awb', 'daylight', '--autofocus-mode', 'manual', '--lens-position', '0.5',
    ]);
    assert.deepEqual(args, rpicamArgs({ ...defaultConfig().source.rpicam, width: 800, height: 600, jpegQuality: 85, hflip: true, awb: 'daylight', extraArgs: ['--autofocus-mode', 'manual', '--lens-position', '0.5'] }, path.join(dir, 'still.jpg'), path.join(dir, 'latest.jpg')));
    await src.stop();
  });

  test('command libcamera-still (older Raspberry Pi OS) is run the same way, found on PATH', async () => {
    const bin = fake({}, 'libcamera-still');
    const savedPath = process.env.PATH;
    process.env.PATH = `${path.dirname(bin)}:${savedPath}`;
    try {
      const { src } = make('libcamera-still');
      await src.start();
      assert.ok(Buffer.from((await src.capture()).bytes).equals(SAMPLE));
      await src.stop();
    } finally {
      process.env.PATH = savedPath;
    }
  });

  test('a command that delivers no still within timeoutMs: CAPTURE error, the command is killed and restarted', async () => {
    const { src, rec } = make(fake({ FAKE_RPICAM_HANG: '1', FAKE_RPICAM_START_SEC: '0' }), { timeoutMs: 5000, restartMinMs: 50, restartMaxMs: 100 });
    await src.start();
    const err = await rejectsWith(src.capture(), 'CAPTURE', /^no still from .*rpicam-still within 5000 ms; restarting it$/);
    assert.match(err.hint ?? '', /rpicam-hello --list-cameras/);
    const exit = await rec.waitFor('exit', (e) => e.run === 1);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.restartInMs, 50);
    await rec.waitFor('spawn', (e) => e.run === 2);
    await src.stop();
  });

  test('a crash: the command is restarted with backoff and captures again', async () => {
    const { src, rec } = make(fake({ FAKE_RPICAM_CRASH_AFTER: '1' }), { restartMinMs: 100, restartMaxMs: 150 });
    await src.start();
    for (let run = 1; run <= 3; run++) {
      await rec.waitFor('spawn', (e) => e.run === run);
      assert.ok(Buffer.from((await src.capture()).bytes).equals(SAMPLE), `run ${run} captures`);
      const exit = await rec.waitFor('exit', (e) => e.run === run);
      assert.equal(exit.signal, 'SIGSEGV');
      assert.equal(exit.restartInMs, [100, 150, 150][run - 1], 'doubling delays up to restartMaxMs');
      assert.match(exit.stderrTail, /Segmentation fault \(fake, after 1 stills\)/);
    }
    await rec.waitFor('spawn', (e) => e.run === 4);
    await src.stop();
    assert.equal((await rec.waitFor('exit', (e) => e.run === 4)).restartInMs, undefined, 'no restart after stop()');
    assert.equal(rec.count('spawn'), 4);
  });

  test('restarts of a command that fails at once double up to restartMaxMs (ManualClock); stop() leaves no timer', async () => {
    const clock = new ManualClock(0);
    const { src, rec } = make(fake({ FAKE_RPICAM_CAMERAS: '0' }), { restartMinMs: 100, restartMaxMs: 400 }, clock);
    await src.start();
    const delays: (number | undefined)[] = [];
    for (let run = 1; run <= 4; run++) {
      const exit = await rec.waitFor('exit', (e) => e.run === run);
      delays.push(exit.restartInMs);
      assert.equal(clock.pending, 1, 'one restart timer');
      clock.advance(exit.restartInMs! - 1);
      assert.equal(rec.count('spawn'), run, `run ${run + 1} waits the whole ${exit.restartInMs} ms`);
      clock.advance(1);
    }
    assert.deepEqual(delays, [100, 200, 400, 400]);
    await rec.waitFor('exit', (e) => e.run === 5);
    await src.stop();
    assert.equal(clock.pending, 0);
    clock.advance(3_600_000);
    assert.equal(rec.count('spawn'), 5, 'no restart after stop()');
  });

  test('no camera: the capture fails with the tail of rpicam-still\'s stderr (libcamera INFO lines left out)', async () => {
    const { src, rec } = make(fake({ FAKE_RPICAM_CAMERAS: '0' }), { restartMinMs: 60_000, restartMaxMs: 60_000 });
    await src.start();
    const err = await rejectsWith(src.capture(), 'CAPTURE', /^.*rpicam-still exited \(exit code 255\): ERROR: \*\*\* no cameras available \*\*\*$/);
    assert.equal(err.hint, 'restarting in 60000 ms');
    assert.equal((await rec.waitFor('exit')).code, 255);
    // Down until the restart: the next capture says the same at once.
    await rejectsWith(src.capture(), 'CAPTURE', /no cameras available/);
    await src.stop();
  });

  test('camera index not attached and an option rpicam-still does not know: its own error', async () => {
    const cases: [Partial<RpicamSettings>, RegExp][] = [
      [{ camera: 3 }, /exited \(exit code 255\): ERROR: \*\*\* selected camera is not available \*\*\*$/],
      [{ extraArgs: ['--no-such-option', '1'] }, /exited \(exit code 255\): ERROR: \*\*\* unrecognised option '--no-such-option' \*\*\*$/],
    ];
    for (const [over, re] of cases) {
      const { src } = make(fake(), { ...over, restartMinMs: 60_000, restartMaxMs: 60_000 });
      await src.start();
      await rejectsWith(src.capture(), 'CAPTURE', re);
      await src.stop();
    }
  });

  test('not installed: "rpicam-still not found: apt-get install rpicam-apps"', async () => {
    const empty = path.join(tmp, 'empty-path');
    fs.mkdirSync(empty);
    const savedPath = process.env.PATH;
    process.env.PATH = empty; // rpicam-still is not on this PATH, whatever this machine has installed
    try {
      const { src, rec } = make('rpicam-still', { restartMinMs: 60_000, restartMaxMs: 60_000 });
      await src.start();
      const err = await rejectsWith(src.capture(), 'CAPTURE', /^rpicam-still not found: apt-get install rpicam-apps$/);
      assert.match(err.hint ?? '', /libcamera-still/);
      assert.equal((await rec.waitFor('exit')).errorCode, 'ENOENT');
      await src.stop();
    } finally {
      process.env.PATH = savedPath;
    }
  });

  test('a still over maxFrameBytes is refused (and removed); the source stays usable', async () => {
    const big = path.join(tmp, 'big.jpg');
    fs.writeFileSync(big, Buffer.concat([SAMPLE, Buffer.alloc(4096)]));
    const { src } = make(fake({ FAKE_RPICAM_JPEG: big }), { maxFrameBytes: 8192 });
    await src.start();
    await rejectsWith(src.capture(), 'CAPTURE', new RegExp(`the still from .*rpicam-still is ${SAMPLE.length + 4096} bytes, over source\\.rpicam\\.maxFrameBytes \\(8192\\)`));
    assert.deepEqual(fs.readdirSync(src.tempDir!), []);
    await rejectsWith(src.capture(), 'CAPTURE', /over source\.rpicam\.maxFrameBytes/);
    await src.stop();
  });

  test('stop() rejects a capture in flight, kills the process group (checked in /proc) and removes the temp folder', async () => {
    const { src, rec } = make(fake({ FAKE_RPICAM_HANG: '1' }), { timeoutMs: 600_000 });
    await src.start();
    await src.start(); // idempotent
    const dir = src.tempDir!;
    const inFlight = rejectsWith(src.capture(), 'CAPTURE', /^rpicam source stopped$/);
    const trigger = await rec.waitFor('trigger');
    assert.ok(processesInGroup(trigger.pid).length >= 1, 'the command and its children run in their own group');
    await src.stop();
    await inFlight;
    assert.deepEqual(processesInGroup(trigger.pid), [], 'no process of the group is left');
    assert.equal(fs.existsSync(`/proc/${trigger.pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${trigger.pid}/stat`, 'utf8')), false);
    assert.equal(src.pid, undefined);
    assert.equal(fs.existsSync(dir), false, 'temp folder removed');
    assert.equal((await rec.waitFor('exit')).restartInMs, undefined, 'not restarted');
    await src.stop(); // idempotent
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
  });

  test('settings that cannot work are refused at start(); capture() before start() fails', async () => {
    const bin = fake();
    await rejectsWith(make(bin).src.capture(), 'CAPTURE', /^rpicam source is not started$/);
    await rejectsWith(make(bin, { restartMinMs: 5000, restartMaxMs: 1000 }).src.start(), 'BAD_CONFIG', /restartMinMs \(5000\) must not exceed source\.rpicam\.restartMaxMs \(1000\)/);
    for (const arg of ['-o', '--output=/tmp/x.jpg', '--signal', '--timeout', '--latest', '-t0']) {
      await rejectsWith(make(bin, { extraArgs: ['--ev', '0.5', arg] }).src.start(), 'BAD_CONFIG', /^source\.rpicam\.extraArgs\[2\]: ".*" is set by the rpicam source itself or is not a long option$/);
    }
  });
});
