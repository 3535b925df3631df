/**
 * The stream source with small shell/node commands standing in for ffmpeg: restarts with exponential backoff (driven
 * by a ManualClock, so the delays are asserted exactly, not timed), the reset after a healthy run, no restart after
 * stop(), SIGKILL for a command that ignores SIGTERM, newest-frame-wins, frame timeouts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { HEALTHY_RUN_MS, KILL_GRACE_MS, type StreamEvent, type StreamSettings, StreamSource } from '../../agent/sources/stream';
import { type Clock, ManualClock } from '../../base/clock';
import { rejectsWith, waitUntil } from '../support/assertions';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const F1 = fs.readFileSync(path.join(FIXTURES, 'jpeg-baseline.jpg'));
const F2 = fs.readFileSync(path.join(FIXTURES, 'jpeg-gray.jpg'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-stream-source-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const F1_FILE = path.join(tmp, 'f1.jpg');
const F2_FILE = path.join(tmp, 'f2.jpg');
fs.writeFileSync(F1_FILE, F1);
fs.writeFileSync(F2_FILE, F2);
let n = 0;

/** Records the source's events; waitFor resolves on the first (past or future) event matching pred. */
class Recorder {
  readonly events: StreamEvent[] = [];
  private pending: { pred: (e: StreamEvent) => boolean; resolve: (e: StreamEvent) => void }[] = [];
  readonly on = (e: StreamEvent): void => {
    this.events.push(e);
    for (const p of [...this.pending]) {
      if (p.pred(e)) {
        this.pending.splice(this.pending.indexOf(p), 1);
        p.resolve(e);
      }
    }
  };
  waitFor<T extends StreamEvent['type']>(type: T, pred: (e: Extract<StreamEvent, { type: T }>) => boolean = () => true): Promise<Extract<StreamEvent, { type: T }>> {
    const match = (e: StreamEvent): boolean => e.type === type && pred(e as Extract<StreamEvent, { type: T }>);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen as Extract<StreamEvent, { type: T }>);
    return new Promise((resolve, reject) => {
      // A generous guard so that a broken source fails the test instead of hanging it.
      const guard = setTimeout(() => reject(new Error(`no ${type} event within 20 s; events: ${JSON.stringify(this.events.filter((e) => e.type !== 'frame'))}`)), 20_000);
      this.pending.push({ pred: match, resolve: (e) => (clearTimeout(guard), resolve(e as Extract<StreamEvent, { type: T }>)) });
    });
  }
  count(type: StreamEvent['type'], run?: number): number {
    return this.events.filter((e) => e.type === type && (run === undefined || e.run === run)).length;
  }
}

function settings(command: string, args: string[], over: Partial<StreamSettings> = {}): StreamSettings {
  return { ...defaultConfig().source.stream, command, args, ...over };
}

function make(command: string, args: string[], over: Partial<StreamSettings> = {}, clock?: Clock): { src: StreamSource; rec: Recorder } {
  const rec = new Recorder();
  return { src: new StreamSource(settings(command, args, over), { clock, onEvent: rec.on }), rec };
}

const sh = (script: string): [string, string[]] => ['sh', ['-c', script]];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ESRCH');
    return false;
  }
}


/** A node program writing a JPEG every 20 ms, each carrying "seq=N" in a COM segment. */
const NUMBERED_EMITTER = `
const base = require('fs').readFileSync(process.argv[1]);
let n = 0;
setInterval(() => {
  const text = Buffer.from('seq=' + ++n);
  const com = Buffer.from([0xff, 0xfe, 0, 0]);
  com.writeUInt16BE(text.length + 2, 2);
  process.stdout.write(Buffer.concat([base.subarray(0, 2), com, text, base.subarray(2)]));
}, 20);`;
const seqOf = (bytes: Uint8Array): number => Number(/seq=(\d+)/.exec(Buffer.from(bytes).toString('latin1'))![1]);

describe('stream source', { timeout: 60_000 }, () => {
  test('a command that exits at once is restarted with doubling delays up to restartMaxMs; none after stop()', async () => {
    const clock = new ManualClock(0);
    const { src, rec } = make(...sh('exit 1'), { restartMinMs: 100, restartMaxMs: 800 }, clock);
    await src.start();
    const delays: (number | undefined)[] = [];
    for (let run = 1; run <= 6; run++) {
      const exit = await rec.waitFor('exit', (e) => e.run === run);
      assert.equal(exit.code, 1);
      delays.push(exit.restartInMs);
      assert.equal(clock.pending, 1, 'one restart timer');
      clock.advance(exit.restartInMs! - 1);
      assert.equal(rec.count('spawn', run + 1), 0, `run ${run + 1} must wait the whole ${exit.restartInMs} ms`);
      clock.advance(1);
      assert.equal(rec.count('spawn', run + 1), 1, `run ${run + 1} spawned after ${exit.restartInMs} ms`);
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 800, 800]);
    await rec.waitFor('exit', (e) => e.run === 7);
    await src.stop();
    assert.equal(clock.pending, 0, 'stop() cancels the pending restart');
    clock.advance(3_600_000);
    assert.equal(rec.count('spawn'), 7, 'no restart after stop()');
    assert.equal(src.pid, undefined);
  });

  test('a command that emits 2 frames then exits: capture() gets the newer one, restarts back off', async () => {
    const clock = new ManualClock(0);
    const { src, rec } = make(...sh(`cat '${F1_FILE}' '${F2_FILE}'; exit 3`), { restartMinMs: 50, restartMaxMs: 1000 }, clock);
    await src.start();
    const exit1 = await rec.waitFor('exit', (e) => e.run === 1);
    assert.equal(exit1.code, 3);
    assert.equal(exit1.frames, 2);
    assert.equal(exit1.restartInMs, 50);
    const f = await src.capture();
    assert.ok(Buffer.from(f.bytes).equals(F2), 'the newest frame, not the oldest');
    assert.equal(f.origin, 'stream:sh');
    // Nothing newer yet: capture() waits for the next run's first frame.
    const next = src.capture();
    clock.advance(50);
    assert.ok(Buffer.from((await next).bytes).equals(F1));
    const exit2 = await rec.waitFor('exit', (e) => e.run === 2);
    assert.equal(exit2.restartInMs, 100, 'short runs keep doubling the delay');
    await src.stop();
    assert.equal(clock.pending, 0);
  });

  test('a run that lasted a while and delivered frames resets the backoff', async () => {
    const clock = new ManualClock(0);
    const counter = path.join(tmp, `count${n++}`);
    // Runs 1-3 and 5-6 fail at once; run 4 delivers a frame (the test then moves the clock past HEALTHY_RUN_MS) and exits.
    const script = `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${counter}'; [ $n -eq 4 ] && cat '${F1_FILE}'; exit 1`;
    const rec = new Recorder();
    const src = new StreamSource(settings(...sh(script), { restartMinMs: 10, restartMaxMs: 10_000 }), {
      clock,
      onEvent: (e) => {
        rec.on(e);
        // While run 4 is still alive (this runs inside its stdout handler, before its exit can be seen).
        if (e.type === 'frame' && e.run === 4) clock.advance(HEALTHY_RUN_MS);
      },
    });
    await src.start();
    const delays: (number | undefined)[] = [];
    for (let run = 1; run <= 6; run++) {
      const exit = await rec.waitFor('exit', (e) => e.run === run);
      delays.push(exit.restartInMs);
      clock.advance(exit.restartInMs!);
    }
    assert.deepEqual(delays, [10, 20, 40, 10, 20, 40]);
    await src.stop();
  });

  test('a command that cannot be started is retried with backoff; capture() explains', async () => {
    const clock = new ManualClock(0);
    const { src, rec } = make('edgehead-no-such-command', [], { restartMinMs: 60_000, restartMaxMs: 120_000, frameTimeoutMs: 500 }, clock);
    await src.start();
    const exit = await rec.waitFor('exit', (e) => e.run === 1);
    assert.match(exit.error ?? '', /ENOENT/);
    assert.equal(exit.restartInMs, 60_000);
    const capture = src.capture();
    clock.advance(500);
    await rejectsWith(capture, 'CAPTURE', /no frame from edgehead-no-such-command within 500 ms; last exit: cannot run edgehead-no-such-command: .*ENOENT/);
    clock.advance(59_500);
    assert.equal((await rec.waitFor('exit', (e) => e.run === 2)).restartInMs, 120_000);
    await src.stop();
    assert.equal(clock.pending, 0);
  });

  test('newest frame wins: after a pause capture() returns the latest frame, then waits for a newer one', async () => {
    const { src, rec } = make(process.execPath, ['-e', NUMBERED_EMITTER, F1_FILE]);
    await src.start();
    const first = seqOf((await src.capture()).bytes);
    const seen = rec.count('frame');
    await rec.waitFor('frame', () => rec.count('frame') >= seen + 5);
    const latestSeq = rec.count('frame'); // frames arrive in order and none is lost: the N-th carries seq=N
    const later = await src.capture();
    assert.equal(seqOf(later.bytes), latestSeq, 'the newest complete frame');
    assert.ok(latestSeq >= first + 5);
    const after = await src.capture();
    assert.ok(seqOf(after.bytes) > latestSeq, 'a frame is never returned twice');
    assert.ok(after.capturedAt >= later.capturedAt);
    await src.stop();
  });

  test('capture() fails after frameTimeoutMs when the command writes nothing; the source stays usable', async () => {
    const clock = new ManualClock(0);
    const { src, rec } = make(...sh(`sleep 1000 & wait`), { frameTimeoutMs: 250 }, clock);
    await src.start();
    const spawn = await rec.waitFor('spawn');
    const c1 = src.capture();
    clock.advance(249);
    clock.advance(1);
    await rejectsWith(c1, 'CAPTURE', /no frame from sh within 250 ms/);
    const c2 = src.capture();
    clock.advance(250);
    await rejectsWith(c2, 'CAPTURE', /within 250 ms/);
    assert.equal(rec.count('exit'), 0, 'the command itself keeps running');
    // stop() takes the whole process group down (sh and its background sleep) via SIGTERM.
    const stopped = src.stop();
    const exit = await rec.waitFor('exit');
    await stopped;
    assert.equal(exit.signal, 'SIGTERM');
    assert.equal(exit.restartInMs, undefined);
    assert.equal(alive(spawn.pid!), false);
    assert.equal(clock.pending, 0);
  });

  test('stop() rejects a waiting capture(), kills the command and leaves no pid behind', async () => {
    const { src, rec } = make(...sh(`cat '${F1_FILE}'; exec sleep 1000`));
    await src.start();
    await src.start(); // idempotent
    await src.capture();
    const pid = src.pid!;
    assert.ok(alive(pid));
    const waiting = rejectsWith(src.capture(), 'CAPTURE', /stream source stopped/);
    await src.stop();
    await waiting;
    assert.equal(alive(pid), false);
    assert.equal(rec.count('spawn'), 1);
    await src.stop(); // idempotent
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
  });

  test('a command that ignores SIGTERM gets SIGKILL after the grace period', async () => {
    const clock = new ManualClock(0);
    const termed = path.join(tmp, 'sigterm-received');
    const { src, rec } = make(...sh(`trap 'echo > "${termed}"' TERM; cat '${F1_FILE}'; while :; do sleep 1; done`), {}, clock);
    await src.start();
    await rec.waitFor('frame'); // the trap is set
    const pid = src.pid!;
    let done = false;
    const stopping = src.stop().then(() => (done = true));
    await waitUntil('SIGTERM to reach the command (and be ignored)', () => fs.existsSync(termed));
    assert.equal(done, false, 'still waiting for the command to exit');
    assert.ok(alive(pid));
    clock.advance(KILL_GRACE_MS);
    await stopping;
    const exit = await rec.waitFor('exit');
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(alive(pid), false);
    assert.equal(clock.pending, 0);
  });

  test('frames over maxFrameBytes are dropped', async () => {
    const big = path.join(tmp, 'big.jpg');
    fs.writeFileSync(big, fs.readFileSync(path.resolve(__dirname, '../../assets/samples/fish/fish1.jpg')));
    const { src, rec } = make(...sh(`cat '${F1_FILE}' '${big}' '${big}' '${F2_FILE}'; exec sleep 1000`), { maxFrameBytes: 4096 });
    await src.start();
    await rec.waitFor('frame', () => rec.count('frame') === 2);
    assert.ok(Buffer.from((await src.capture()).bytes).equals(F2));
    assert.equal(src.parserStats.oversized, 2);
    await src.stop();
  });

  test('restartMinMs > restartMaxMs is refused at start()', async () => {
    const { src, rec } = make(...sh('exit 0'), { restartMinMs: 5000, restartMaxMs: 1000 });
    await rejectsWith(src.start(), 'BAD_CONFIG', /restartMinMs \(5000\) must not exceed source\.stream\.restartMaxMs \(1000\)/);
    assert.equal(rec.count('spawn'), 0);
  });
});
