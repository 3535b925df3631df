process.env.TZ = 'UTC'; // cron and activeWindow are local time: pin it before any Date is made
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { Scheduler, type SchedulerOptions } from '../../agent/schedule/scheduler';
import { type Clock, ManualClock, systemClock } from '../../base/clock';
import { EdgeheadError } from '../../base/errors';
import { configureLogging } from '../../base/log';

const logs: string[] = [];
configureLogging({ level: 'warn', format: 'text', repeatWindowSec: 0, sink: { write: (line) => logs.push(line) } }); // every failure counted, none collapsed
beforeEach(() => void (logs.length = 0));

/** Lets promise callbacks run (what happens between timers in real time). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Advances the clock in steps, letting promise callbacks run between them. */
async function advance(clock: ManualClock, ms: number, step = 50): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    clock.advance(Math.min(step, ms - done));
    await flush();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

type Reason = 'schedule' | 'manual';
function setup(opts: Partial<SchedulerOptions> & { start?: number; run?: (reason: Reason) => Promise<void> } = {}) {
  const clock = new ManualClock(opts.start ?? 0);
  const calls: { at: number; reason: Reason }[] = [];
  const run = opts.run ?? (async () => {});
  const s = new Scheduler({
    clock,
    intervalMs: 1000,
    jitterMs: 0,
    ...opts,
    onTick: (reason) => {
      calls.push({ at: clock.now(), reason });
      return run(reason);
    },
  });
  return { clock, s, calls, times: () => calls.map((c) => c.at) };
}
const grid = (from: number, step: number, n: number) => Array.from({ length: n }, (_, k) => from + k * step);

test('interval: 10 ticks in 10 intervals, on the interval grid', async () => {
  const { clock, s, times } = setup({ start: 5_000 });
  s.start();
  await advance(clock, 10_000);
  assert.deepEqual(times(), grid(6_000, 1000, 10));
  assert.deepEqual(s.stats, { ticks: 10, skipped: 0, outsideWindow: 0, paused: 0 });
  await s.stop();
});

test('interval: runs that take time do not make the schedule drift', async () => {
  let clock!: ManualClock;
  const env = setup({ run: () => new Promise<void>((r) => clock.setTimeout(r, 350)) });
  clock = env.clock;
  env.s.start();
  await advance(clock, 10_000);
  assert.deepEqual(env.times(), grid(1000, 1000, 10));
  const stopping = env.s.stop(); // the last run still needs its 350 ms
  clock.advance(350);
  await stopping;
});

test('runAtStart: the first tick runs at start, the rest on the grid from there', async () => {
  const { clock, s, times } = setup({ start: 5_000, runAtStart: true });
  s.start();
  assert.equal(s.nextRunAt, 5_000);
  await advance(clock, 10_000);
  assert.deepEqual(times(), grid(5_000, 1000, 11));
  await s.stop();
});

test('runAtStart keeps jitter and activeWindow, and does not move cron times', async () => {
  const jittered = setup({ start: 0, runAtStart: true, jitterMs: 400, random: () => 0.5 });
  jittered.s.start();
  await advance(jittered.clock, 2_000);
  assert.deepEqual(jittered.times(), [200, 1200]);
  await jittered.s.stop();
  const closed = setup({ start: Date.UTC(2024, 0, 1, 21, 0), runAtStart: true, activeWindow: '06:00-20:00', intervalMs: 60_000 });
  closed.s.start();
  await advance(closed.clock, 1_000);
  assert.deepEqual(closed.times(), []);
  assert.equal(closed.s.stats.outsideWindow, 1);
  await closed.s.stop();
  const cron = setup({ cron: '*/10 * * * * *', start: Date.UTC(2024, 0, 1, 11, 59, 53), runAtStart: true });
  cron.s.start();
  await advance(cron.clock, 10_000, 500);
  assert.deepEqual(cron.times(), [Date.UTC(2024, 0, 1, 12, 0, 0)]);
  await cron.s.stop();
});

test('runs never overlap: ticks while a run is in flight are skipped and counted', async () => {
  const runs: ReturnType<typeof deferred>[] = [];
  const { clock, s, times } = setup({
    run: () => {
      const d = deferred();
      runs.push(d);
      return d.promise;
    },
  });
  s.start();
  await advance(clock, 1000);
  assert.equal(s.running, true);
  await advance(clock, 3000);
  assert.deepEqual(times(), [1000]);
  assert.deepEqual(s.stats, { ticks: 1, skipped: 3, outsideWindow: 0, paused: 0 });
  runs[0]!.resolve();
  await flush();
  assert.equal(s.running, false);
  await advance(clock, 1000);
  assert.deepEqual(times(), [1000, 5000]);
  assert.deepEqual(s.stats, { ticks: 2, skipped: 3, outsideWindow: 0, paused: 0 });
  runs[1]!.resolve();
  await s.stop();
});

test('slow runs: with a 1.5-interval run every other tick is skipped, the rest stay on the grid', async () => {
  let clock!: ManualClock;
  const env = setup({ run: () => new Promise<void>((r) => clock.setTimeout(r, 1500)) });
  clock = env.clock;
  env.s.start();
  await advance(clock, 10_000);
  assert.deepEqual(env.times(), [1000, 3000, 5000, 7000, 9000]);
  assert.equal(env.s.stats.skipped, 5);
  const stopping = env.s.stop();
  clock.advance(500);
  await stopping;
});

test('trigger() runs at once, resolves true when done, and refuses (false) while a run is in flight', async () => {
  const runs: ReturnType<typeof deferred>[] = [];
  const { clock, s, calls } = setup({
    run: () => {
      const d = deferred();
      runs.push(d);
      return d.promise;
    },
  });
  s.start();
  let finished = false;
  const first = s.trigger().then((r) => ((finished = true), r));
  assert.deepEqual(calls, [{ at: 0, reason: 'manual' }], 'onTick is called synchronously');
  assert.equal(await s.trigger(), false);
  await advance(clock, 1000);
  assert.equal(s.stats.skipped, 1, 'the scheduled tick meets the manual run in flight');
  assert.equal(finished, false);
  runs[0]!.resolve();
  assert.equal(await first, true);
  await advance(clock, 1000);
  assert.deepEqual(calls.at(-1), { at: 2000, reason: 'schedule' });
  assert.equal(await s.trigger(), false, 'refused while the scheduled run is in flight');
  runs[1]!.resolve();
  await s.stop();
  assert.equal(await s.trigger(), false, 'refused after stop()');
  assert.equal(s.stats.ticks, 2);
});

test('cron "*/10 * * * * *": ticks at :00, :10, :20', async () => {
  const { clock, s, times } = setup({ cron: '*/10 * * * * *', start: Date.UTC(2024, 0, 1, 11, 59, 53) });
  s.start();
  await advance(clock, 30_000, 500);
  assert.deepEqual(
    times().map((t) => new Date(t).toISOString()),
    ['2024-01-01T12:00:00.000Z', '2024-01-01T12:00:10.000Z', '2024-01-01T12:00:20.000Z'],
  );
  await s.stop();
});

test('cron is read in local time (5 fields: minute first)', async () => {
  process.env.TZ = 'Asia/Kolkata'; // UTC+05:30
  try {
    const { clock, s, times } = setup({ cron: '30 7 * * *', start: Date.UTC(2024, 0, 1, 0, 0) });
    s.start();
    await advance(clock, 2 * 86_400_000, 60_000);
    assert.deepEqual(times(), [Date.UTC(2024, 0, 1, 2, 0), Date.UTC(2024, 0, 2, 2, 0)], '07:30 in Kolkata is 02:00Z');
    await s.stop();
  } finally {
    process.env.TZ = 'UTC';
  }
});

test('bad configuration is refused with BAD_CONFIG naming the key', () => {
  const clock = new ManualClock(0);
  const base = { clock, intervalMs: 1000, jitterMs: 0, onTick: async () => {} };
  const bad: [Partial<SchedulerOptions>, RegExp][] = [
    [{ cron: 'every ten seconds' }, /^schedule\.cron: /],
    [{ cron: '61 * * * * *' }, /^schedule\.cron: /],
    [{ cron: '0 0 30 2 *' }, /^schedule\.cron: .*never fires/],
    [{ activeWindow: '25:00-06:00' }, /^schedule\.activeWindow: /],
    [{ intervalMs: 0 }, /^schedule\.intervalMs: /],
    [{ jitterMs: -1 }, /^schedule\.jitterMs: /],
  ];
  for (const [opts, re] of bad) {
    assert.throws(() => new Scheduler({ ...base, ...opts }), (e) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && re.test(e.message), JSON.stringify(opts));
  }
  assert.doesNotThrow(() => new Scheduler({ ...base, intervalMs: 0, cron: '* * * * *' }), 'intervalMs is ignored with cron');
});

test('activeWindow: ticks outside are counted, not run', async () => {
  const { clock, s, times } = setup({ activeWindow: '06:00-20:00', intervalMs: 60_000, start: Date.UTC(2024, 0, 1, 19, 57) });
  s.start();
  await advance(clock, 5 * 60_000, 1000);
  assert.deepEqual(times(), [Date.UTC(2024, 0, 1, 19, 58), Date.UTC(2024, 0, 1, 19, 59)]);
  assert.deepEqual(s.stats, { ticks: 2, skipped: 0, outsideWindow: 3, paused: 0 });
  await s.stop();
});

test('activeWindow crossing midnight: a day of half-hourly ticks runs only from 22:00 to 06:00', async () => {
  const { clock, s, times } = setup({ activeWindow: '22:00-06:00', intervalMs: 30 * 60_000, start: Date.UTC(2024, 0, 1, 12, 0) });
  s.start();
  await advance(clock, 86_400_000, 60_000);
  const expected = grid(Date.UTC(2024, 0, 1, 22, 0), 30 * 60_000, 16);
  assert.deepEqual(times(), expected);
  assert.deepEqual(s.stats, { ticks: 16, skipped: 0, outsideWindow: 32, paused: 0 });
  await s.stop();
});

test('manual triggers ignore the active window', async () => {
  const { s, calls } = setup({ activeWindow: '06:00-07:00', start: Date.UTC(2024, 0, 1, 12, 0) });
  assert.equal(await s.trigger(), true);
  assert.equal(calls.length, 1);
});

test('jitter: each tick fires random() * jitterMs after its grid time; the grid does not move', async () => {
  const rs = [0, 0.5, 0.999, 0.25, 1];
  let k = 0;
  const { clock, s, times } = setup({ jitterMs: 300, random: () => rs[k++ % rs.length]! });
  s.start();
  await advance(clock, 5_400, 1);
  const got = times();
  const want = [1000, 2150, 3299.7, 4075, 5300];
  assert.equal(got.length, want.length);
  got.forEach((t, i) => assert.ok(Math.abs(t - want[i]!) < 1e-6, `tick ${i} at ${t}, expected ${want[i]}`));
  await s.stop();
});

test('jitter with the default random(): every tick within [grid, grid + jitterMs]', async () => {
  const { clock, s, times } = setup({ jitterMs: 400 });
  s.start();
  await advance(clock, 50_000, 10);
  assert.equal(times().length, 49, 'the 50th tick may still be in its jitter');
  times().forEach((t, i) => assert.ok(t >= (i + 1) * 1000 && t <= (i + 1) * 1000 + 400, `tick ${i} at ${t}`));
  assert.ok(new Set(times().map((t) => t % 1000)).size > 10, 'the jitter varies');
  await s.stop();
});

test('stop() waits for the run in flight, cancels the timer and starts nothing afterwards', async () => {
  const d = deferred();
  const { clock, s, times } = setup({ run: () => d.promise });
  s.start();
  await advance(clock, 1000);
  assert.equal(clock.pending, 1);
  let stopped = false;
  const stopping = s.stop().then(() => (stopped = true));
  await flush();
  assert.equal(stopped, false, 'still waiting for the run');
  assert.equal(clock.pending, 0, 'no timer left');
  d.resolve();
  await stopping;
  assert.equal(s.running, false);
  await advance(clock, 5000);
  assert.deepEqual(times(), [1000]);
  assert.equal(clock.pending, 0);
  await s.stop(); // idempotent
  assert.throws(() => s.start(), /after stop/);
});

test('stop() with the real clock leaves no timer behind (the process can exit)', async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  let n = 0;
  const twoTicks = deferred();
  const s = new Scheduler({ clock: systemClock, intervalMs: 20, jitterMs: 5, onTick: async () => void (++n === 2 && twoTicks.resolve()) });
  s.start();
  assert.equal(timers(), before + 1);
  await twoTicks.promise; // the real timer fired, and was re-armed after the first tick
  await s.stop();
  assert.equal(timers(), before, 'no timer left: nothing can tick again');
});

test('errors in onTick (thrown or rejected) are logged and the loop goes on', async () => {
  let k = 0;
  const { clock, s, times } = setup({
    run: async () => {
      k++;
      if (k === 2) throw new Error('camera unplugged');
    },
  });
  const onTickSyncThrow = new Scheduler({
    clock,
    intervalMs: 1000,
    jitterMs: 0,
    onTick: () => {
      throw new EdgeheadError('CAPTURE', 'no frame');
    },
  });
  s.start();
  onTickSyncThrow.start();
  await advance(clock, 5000);
  assert.deepEqual(times(), grid(1000, 1000, 5));
  assert.equal(onTickSyncThrow.stats.ticks, 5);
  assert.equal(onTickSyncThrow.running, false);
  assert.equal(onTickSyncThrow.stats.skipped, 0, 'a synchronous throw does not leave a run "in flight"');
  assert.equal(logs.filter((l) => /schedule run failed: camera unplugged/.test(l)).length, 1);
  assert.equal(logs.filter((l) => /schedule run failed: no frame/.test(l)).length, 5);
  await s.stop();
  await onTickSyncThrow.stop();
});

test('wall-clock jumps (NTP step): no burst of missed ticks forward, no long wait backward', async () => {
  const manual = new ManualClock(Date.UTC(2024, 0, 1));
  let offset = 0;
  const clock: Clock = { now: () => manual.now() + offset, setTimeout: (fn, ms) => manual.setTimeout(fn, ms) };
  const calls: number[] = []; // monotonic (timer) time of each run
  const s = new Scheduler({ clock, intervalMs: 1000, jitterMs: 0, onTick: async () => void calls.push(manual.now()) });
  s.start();
  await advance(manual, 3000);
  assert.equal(calls.length, 3);
  offset += 10 * 3600_000; // forward 10 h
  await advance(manual, 3000);
  offset -= 24 * 3600_000; // back 24 h
  await advance(manual, 3000);
  const t0 = Date.UTC(2024, 0, 1);
  assert.deepEqual(calls, grid(t0 + 1000, 1000, 9), 'one tick per second throughout: no burst, no gap');
  assert.deepEqual(s.stats, { ticks: 9, skipped: 0, outsideWindow: 0, paused: 0 });
  await s.stop();
});

test('pause(): due ticks are counted as paused, not run; manual runs still run; resume() goes on from the grid', async () => {
  const clock = new ManualClock(0);
  let runs = 0;
  const s = new Scheduler({ clock, intervalMs: 100, jitterMs: 0, onTick: async () => void runs++ });
  s.start();
  await advance(clock, 200);
  assert.equal(runs, 2);
  assert.equal(s.pause(), true);
  assert.equal(s.pause(), false, 'already paused');
  await advance(clock, 300);
  assert.equal(runs, 2);
  assert.equal(s.stats.paused, 3);
  assert.deepEqual(await s.runNow(async () => 'manual'), { value: 'manual' });
  assert.equal(s.resume(), true);
  await advance(clock, 100);
  assert.equal(runs, 3);
  await s.stop();
});
