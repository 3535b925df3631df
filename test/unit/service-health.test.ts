/**
 * READY, the watchdog and the status line (agent/service/health.ts) on a ManualClock with a recording notifier:
 * READY after the first frame, at once with a far schedule, after failing first frames, never while the first frame
 * hangs; pings while the loop is idle or its frame is young, none while a frame hangs (and again once it ends);
 * STOPPING=1 at stop; a notifier that throws changes nothing for the agent. Then the same through the whole agent
 * in-process (createAgent with a scripted source): READY only once the first prediction is published, pings stop
 * while a capture hangs, and a throwing notifier does not stop the predictions.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { type Agent, createAgent } from '../../agent/agent';
import type { FrameOutcome } from '../../agent/frames/frame-loop';
import { describeSchedule, duration, FIRST_FRAME_WAIT_MS, frameBoundMs, FRAME_SLACK_MS, ServiceHealth, STATUS_REFRESH_MS } from '../../agent/service/health';
import type { ServiceNotifier } from '../../agent/service/notifier';
import { Scheduler } from '../../agent/schedule/scheduler';
import { MemoryQueue } from '../../agent/store/memory-queue';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { defaultConfig } from '../../config/defaults';
import { meanRgbExtractor, rgbHead, ScriptedSource, until } from '../support/agent-parts';
import { tmpDir } from '../support/cli';
import { FakeBroker } from '../support/fake-broker';

type Call = { kind: 'ready' | 'watchdog' | 'status' | 'stopping'; status?: string };

class RecordingNotifier implements ServiceNotifier {
  readonly calls: Call[] = [];
  ready(status: string): void {
    this.calls.push({ kind: 'ready', status });
  }
  watchdog(status?: string): void {
    this.calls.push({ kind: 'watchdog', status });
  }
  status(text: string): void {
    this.calls.push({ kind: 'status', status: text });
  }
  async stopping(status?: string): Promise<void> {
    this.calls.push({ kind: 'stopping', status });
  }
  count(kind: Call['kind']): number {
    return this.calls.filter((c) => c.kind === kind).length;
  }
  last(kind: Call['kind']): Call | undefined {
    return this.calls.filter((c) => c.kind === kind).at(-1);
  }
}

/** A notifier whose every method throws (and whose stopping() rejects). */
const throwingNotifier: ServiceNotifier = {
  ready: () => {
    throw new Error('ready exploded');
  },
  watchdog: () => {
    throw new Error('watchdog exploded');
  },
  status: () => {
    throw new Error('status exploded');
  },
  stopping: () => Promise.reject(new Error('stopping exploded')),
};

let logs: string[];
beforeEach(() => {
  logs = [];
  configureLogging({ level: 'info', sink: { write: (l) => logs.push(l) }, repeatWindowSec: 0 });
});
afterEach(() => configureLogging({ level: 'silent' }));

const BOUND = 40_000;

function setup(opts: { nextFrameIn?: number; watchdogMs?: number; notifier?: ServiceNotifier } = {}) {
  const clock = new ManualClock(1_000_000);
  const notifier = new RecordingNotifier();
  const health = new ServiceHealth({
    notifier: opts.notifier ?? notifier,
    clock,
    watchdogMs: 'watchdogMs' in opts ? opts.watchdogMs : 1000,
    frameBoundMs: BOUND,
    nextFrameIn: () => ('nextFrameIn' in opts ? opts.nextFrameIn : 1000),
    describe: () => 'head demo v1, 1 frame/1 s',
  });
  /** One frame from start to end, ending with `outcome`. */
  const frame = (outcome: FrameOutcome) => health.frameStarted()(outcome);
  return { clock, notifier, health, frame };
}

describe('READY', () => {
  test('after the first classified frame, not before; with the status line', () => {
    const { clock, notifier, health, frame } = setup();
    health.start();
    assert.equal(notifier.count('ready'), 0);
    assert.match(notifier.last('status')!.status!, /^starting: head demo v1, 1 frame\/1 s, first frame due in 1 s$/);
    clock.advance(1000);
    const end = health.frameStarted();
    clock.advance(700);
    assert.equal(notifier.count('ready'), 0, 'a frame in flight is not a frame that worked');
    end('classified');
    assert.equal(notifier.count('ready'), 1);
    assert.equal(notifier.last('ready')!.status, 'running: head demo v1, 1 frame/1 s, last frame just now');
    assert.equal(health.ready, true);
    frame('classified');
    assert.equal(notifier.count('ready'), 1, 'READY once');
  });

  test('a frame the motion gate found unchanged counts as a frame that worked', () => {
    const { notifier, health, frame } = setup();
    health.start();
    frame('unchanged');
    assert.equal(notifier.count('ready'), 1);
  });

  test('at once when no frame is due soon: a far schedule, or none (paused, outside activeWindow)', () => {
    for (const nextFrameIn of [FIRST_FRAME_WAIT_MS + 1, 3_600_000, undefined]) {
      const { notifier, health } = setup({ nextFrameIn });
      health.start();
      assert.equal(notifier.count('ready'), 1, `next frame in ${nextFrameIn}`);
      assert.match(notifier.last('ready')!.status!, nextFrameIn === undefined ? /^running: .*, no frame due$/ : /^running: .*, no frame yet, next in (30 s|60 min)$/);
    }
  });

  test('after CAMERA_PROBLEM_AFTER failed first frames, saying so (the agent is up; a restart fixes no camera)', () => {
    const { notifier, health, frame } = setup();
    health.start();
    frame('failed');
    frame('failed');
    assert.equal(notifier.count('ready'), 0);
    frame('failed');
    assert.equal(notifier.count('ready'), 1);
    assert.match(notifier.last('ready')!.status!, /the last 3 frames failed$/);
  });

  test('when the due frame never ran (paused meanwhile): after the wait', () => {
    const { clock, notifier, health } = setup({ nextFrameIn: 5000 });
    health.start();
    clock.advance(5000 + FIRST_FRAME_WAIT_MS - 1);
    assert.equal(notifier.count('ready'), 0);
    clock.advance(1);
    assert.equal(notifier.count('ready'), 1);
  });

  test('never while the first frame hangs: the start times out in systemd instead', () => {
    const { clock, notifier, health } = setup();
    health.start();
    clock.advance(1000);
    health.frameStarted(); // never ends
    clock.advance(2000);
    assert.equal(notifier.last('watchdog')!.status, 'starting: head demo v1, 1 frame/1 s, first frame in progress');
    clock.advance(10 * 60_000);
    assert.equal(notifier.count('ready'), 0);
  });

  test('a frame that worked before start() makes start() READY at once', () => {
    const { notifier, health, frame } = setup();
    frame('classified');
    assert.equal(notifier.count('ready'), 0);
    health.start();
    assert.equal(notifier.count('ready'), 1);
  });
});

describe('watchdog', () => {
  test('pings every period while the loop is idle or its frame is younger than the bound, with a fresh status', () => {
    const { clock, notifier, health, frame } = setup({ watchdogMs: 1000 });
    health.start();
    frame('classified');
    clock.advance(5000);
    assert.equal(notifier.count('watchdog'), 5);
    assert.equal(notifier.last('watchdog')!.status, 'running: head demo v1, 1 frame/1 s, last frame 5 s ago');
    const end = health.frameStarted();
    clock.advance(BOUND);
    assert.equal(notifier.count('watchdog'), 5 + BOUND / 1000, 'a frame within its bound is progress');
    end('classified');
  });

  test('no pings while a frame hangs past the bound; stuck reported once; pings again when it ends', () => {
    const { clock, notifier, health, frame } = setup({ watchdogMs: 1000 });
    health.start();
    frame('classified');
    const end = health.frameStarted();
    clock.advance(BOUND);
    const before = notifier.count('watchdog');
    clock.advance(120_000);
    assert.equal(notifier.count('watchdog'), before, 'no ping while the frame hangs');
    assert.equal(notifier.calls.filter((c) => c.kind === 'status' && /^stuck: a frame has been in flight for 41 s \(bound 40 s\)$/.test(c.status!)).length, 1);
    assert.equal(logs.filter((l) => /WARN .*watchdog pings stopped; systemd restarts the agent/.test(l)).length, 1, logs.join('\n'));
    end('failed');
    clock.advance(1000);
    assert.equal(notifier.count('watchdog'), before + 1);
    assert.ok(logs.some((l) => /the frame loop is moving again: watchdog pings resumed/.test(l)));
  });

  test('without WATCHDOG_USEC: no pings, the status line is refreshed every STATUS_REFRESH_MS', () => {
    const { clock, notifier, health, frame } = setup({ watchdogMs: undefined });
    health.start();
    frame('classified');
    clock.advance(3 * STATUS_REFRESH_MS);
    assert.equal(notifier.count('watchdog'), 0);
    assert.equal(notifier.count('status'), 1 + 3); // "starting: ..." then one per refresh
  });

  test('stop(): STOPPING=1 with a status, then nothing more', async () => {
    const { clock, notifier, health, frame } = setup({ watchdogMs: 1000 });
    health.start();
    frame('classified');
    await health.stop();
    assert.deepEqual(notifier.calls.at(-1), { kind: 'stopping', status: 'stopping' });
    const n = notifier.calls.length;
    clock.advance(60_000);
    frame('classified');
    assert.equal(notifier.calls.length, n);
    await health.stop(); // idempotent
    assert.equal(notifier.calls.length, n);
  });

  test('a notifier that throws: READY, pings and stop go on; logged once', async () => {
    const { clock, health, frame } = setup({ notifier: throwingNotifier, watchdogMs: 1000 });
    health.start();
    frame('classified');
    assert.equal(health.ready, true);
    clock.advance(10_000);
    await health.stop();
    assert.equal(logs.filter((l) => /service notifier failed/.test(l)).length, 1, logs.join('\n'));
  });
});

describe('helpers', () => {
  test('frameBoundMs: the source in use\'s capture timeout plus the slack; the directory source a fixed bound', () => {
    const c = defaultConfig();
    c.source.type = 'webcam';
    c.source.webcam.timeoutMs = 7000;
    assert.equal(frameBoundMs(c.source), 7000 + FRAME_SLACK_MS);
    c.source.type = 'stream';
    c.source.stream.frameTimeoutMs = 12_000;
    assert.equal(frameBoundMs(c.source), 12_000 + FRAME_SLACK_MS);
    c.source.type = 'http';
    assert.equal(frameBoundMs(c.source), c.source.http.timeoutMs + FRAME_SLACK_MS);
    c.source.type = 'directory';
    assert.equal(frameBoundMs(c.source), 10_000 + FRAME_SLACK_MS);
  });

  test('Scheduler.nextRunAt (what "a frame due soon" is read from): the planned tick, unless it will not run', () => {
    const noon = new Date(2026, 0, 1, 12, 0, 0).getTime(); // local time, like activeWindow
    const make = (opts: { cron?: string; activeWindow?: string; jitterMs?: number } = {}) => {
      const clock = new ManualClock(noon);
      return { clock, s: new Scheduler({ clock, intervalMs: 5000, jitterMs: 0, random: () => 0.5, onTick: async () => undefined, ...opts }) };
    };
    const { clock, s } = make();
    assert.equal(s.nextRunAt, undefined, 'not started');
    s.start();
    assert.equal(s.nextRunAt, noon + 5000);
    clock.advance(5000);
    assert.equal(s.nextRunAt, noon + 10_000);
    s.pause();
    assert.equal(s.nextRunAt, undefined, 'paused');
    s.resume();
    s.halt();
    assert.equal(s.nextRunAt, undefined, 'stopped');
    const jittered = make({ jitterMs: 1000 }).s;
    jittered.start();
    assert.equal(jittered.nextRunAt, noon + 5500, 'jitter included');
    const hourly = make({ cron: '0 0 * * * *' }).s;
    hourly.start();
    assert.equal(hourly.nextRunAt, noon + 3_600_000);
    const outside = make({ activeWindow: '13:00-14:00' }).s;
    outside.start();
    assert.equal(outside.nextRunAt, undefined, 'the next tick falls outside activeWindow');
    const inside = make({ activeWindow: '11:00-13:00' }).s;
    inside.start();
    assert.equal(inside.nextRunAt, noon + 5000);
  });

  test('describeSchedule and duration', () => {
    const c = defaultConfig();
    c.schedule.intervalMs = 3000;
    assert.equal(describeSchedule(c.schedule), '1 frame/3 s');
    c.schedule.intervalMs = 250;
    assert.equal(describeSchedule(c.schedule), '1 frame/250 ms');
    c.schedule.cron = '0 * * * *';
    c.schedule.activeWindow = '06:00-20:00';
    assert.equal(describeSchedule(c.schedule), 'cron "0 * * * *" within 06:00-20:00');
    assert.deepEqual([1500, 119_000, 120_000, 3_600_000, 9_000_000].map(duration), ['1.5 s', '119 s', '2 min', '60 min', '2.5 h']);
  });
});

describe('the agent in-process', () => {
  let agent: Agent | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  async function start(notifier: ServiceNotifier, source: ScriptedSource, broker: FakeBroker, clock: ManualClock): Promise<Agent> {
    const dir = tmpDir('service-health-');
    fs.writeFileSync(`${dir}/start.head`, rgbHead('colours', 1));
    const c = defaultConfig();
    c.device.id = 'dev1';
    c.stateDir = tmpDir('service-health-state-');
    c.backend.name = 'cpu';
    c.predictions.console = 'off';
    c.schedule.intervalMs = 1000;
    c.telemetry.intervalSec = 3600;
    c.head.file = `${dir}/start.head`;
    const a = await createAgent({ config: c, broker, source, clock, queue: new MemoryQueue({ maxBytes: 1 << 20 }), extractor: meanRgbExtractor(), service: { notifier, watchdogMs: 1000 } });
    await a.start();
    broker.connect();
    return a;
  }

  test('READY once the first prediction is published; pings stop while a capture hangs; STOPPING=1 at stop()', async () => {
    const notifier = new RecordingNotifier();
    const source = new ScriptedSource();
    const broker = new FakeBroker();
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    agent = await start(notifier, source, broker, clock);
    const a = agent;
    assert.equal(notifier.count('ready'), 0, 'not before the first frame');
    clock.advance(1000);
    await until('READY', () => notifier.count('ready') === 1);
    assert.equal(broker.sentTo(a.topics.predictions).length, 1, 'the first prediction went out before READY');
    assert.match(notifier.last('ready')!.status!, /^running: head colours v1, 1 frame\/1 s, last frame just now$/);

    let release!: () => void;
    source.next({ wait: new Promise<void>((r) => (release = r)), bytes: fs.readFileSync(`${__dirname}/../../assets/samples/fish/fish1.jpg`) });
    clock.advance(1000); // this frame's capture hangs
    await until('the capture started', () => source.captures === 2);
    const pings = notifier.count('watchdog');
    for (let i = 0; i < 120; i++) clock.advance(1000); // 2 minutes: the directory bound is 40 s
    const during = notifier.count('watchdog') - pings;
    // One ping per second while the frame is younger than the bound (40 s), give or take the tick it started on.
    assert.ok(during >= 39 && during <= 41, `pings while the frame was young, none after the bound (${during})`);
    assert.ok(notifier.calls.some((c) => c.kind === 'status' && /^stuck: /.test(c.status!)));
    release();
    await until('the hung frame ends', () => broker.sentTo(a.topics.predictions).length === 2);
    clock.advance(1000);
    await until('pings again', () => notifier.count('watchdog') > pings + during);

    await a.stop();
    assert.equal(notifier.calls.find((c) => c.kind === 'stopping')?.status, 'stopping');
  });

  test('a notifier that throws does not stop the agent: predictions go on', async () => {
    const source = new ScriptedSource();
    const broker = new FakeBroker();
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    agent = await start(throwingNotifier, source, broker, clock);
    const a = agent;
    for (let i = 1; i <= 3; i++) {
      clock.advance(1000);
      await until(`prediction ${i}`, () => broker.sentTo(a.topics.predictions).length === i);
    }
    await a.stop();
    assert.equal(logs.filter((l) => /service notifier failed/.test(l)).length, 1);
  });
});
