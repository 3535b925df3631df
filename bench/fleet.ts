/**
 * `npm run bench -- fleet [--devices 1000] [--seconds 60] [--canary-percent 5] [--telemetry-interval 5]
 * [--prediction-interval 1] [--dist | --entry CLI.cjs] [--no-rollout] [--no-browser] [--browser-seconds 10]
 * [--browser-loads 3] [--browser-repeats 5] [--json] [--out FILE]`. Not a test.
 * (--dist runs dist/edgehead.cjs, --entry another build of the CLI; default bin/edgehead.cjs, the sources.)
 *
 * The fleet server under a simulated fleet, every part a real process on loopback: Mosquitto
 * (test/support/mosquitto.ts), `edgehead fleet serve` and `edgehead fleet simulate --json-stats` (one stats line a
 * second on its stdout). Over a window of --seconds it measures:
 *   - messages published by the simulator per second vs messages the server ingested per second
 *     (edgehead_fleet_messages_total on /metrics, sampled as each simulator stats line arrives), and the backlog
 *     (published - ingested) at every sample: its growth per second says whether the server keeps up;
 *   - the server's CPU (utime + stime from /proc/<pid>/stat) per 1,000 messages, i.e. the cores it needs for
 *     1,000 msg/s, and its resident memory (VmRSS of /proc/<pid>/status): steady (median of the second half) and max;
 *   - the simulator's own CPU (it shares the machine with the server);
 * then the dashboard in headless Chromium (test/support/browser.ts; skipped with --no-browser or when Chromium is not
 * installed) while the devices keep publishing: page loads to N rendered rows, update batches and their render time
 * over --browser-seconds, the time from typing the filter / clicking a sort header to the DOM reflecting it, long
 * tasks, and the server's CPU with the dashboard connected (measureBrowser());
 * then a staged rollout of a fresh head to group "sim" (all devices; canary --canary-percent) through the JSON API
 * and the time from the POST to the last `applied` answer (RolloutView.devices[].answeredAt).
 * Progress goes to stderr; a table to stdout (or the JSON with --json); the JSON is written to
 * docs/bench-fleet-<date>.json (or --out FILE).
 *
 * startFleetBench() (Mosquitto + server + simulator, ready) is exported for the browser benchmark of the dashboard.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { sha256Hex } from '../base/hash';
import { progressBar } from '../base/progress';
import { median } from '../base/stats';
import { encodeHead, makeHeadFile } from '../protocol/head/format';
import { correlationIdOf, HeadStateMessageSchema } from '../protocol/messages';
import { STATE_MAX_BYTES } from '../protocol/patterns';
import { everyDeviceTopic, parseTopic } from '../protocol/topics';
import { parseJsonPayload } from '../protocol/validate';
import type { DeviceRow, RolloutView } from '../operator/fleet/model';
import { SIM_EXTRACTOR, type SimStats } from '../operator/fleet/simulate';
import { freePort, Mosquitto } from '../test/support/mosquitto';
import { processCpuMs } from './machine';

const root = path.resolve(__dirname, '..');
/** The topic prefix of the server and the simulator (both at their default). */
const PREFIX = 'edgehead';
const round1 = (x: number) => Math.round(x * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line: string) => process.stderr.write(`${line}\n`);

export interface FleetBenchOptions {
  devices: number;
  telemetryIntervalSec?: number;
  predictionIntervalSec?: number;
  /** The CLI to run: bin/edgehead.cjs (sources through tsx, default) or dist/edgehead.cjs (the bundle). */
  entry?: string;
  /** How long the simulator runs at most (s); it is stopped by stop() before. Default 3600. */
  simulatorSeconds?: number;
  /** Extra environment for the server (EDGEHEAD_FLEET_*). */
  serverEnv?: NodeJS.ProcessEnv;
}

/** A running benchmark fleet: Mosquitto, the server and the simulator, all on loopback. */
export interface FleetBenchEnv {
  brokerUrl: string;
  /** http://127.0.0.1:PORT/ */
  serverUrl: string;
  serverPid: number;
  simulatorPid: number;
  devices: number;
  /** The server's resident memory once it answered GET /metrics, before the simulator started (MB). */
  serverRssBeforeDevicesMB: number | undefined;
  /** Seconds from starting the simulator to the server listing every device online. */
  devicesOnlineSec: number;
  /** The simulator's latest stats line, with the local time it arrived. */
  simStats(): { at: number; stats: SimStats } | undefined;
  /** Called for every simulator stats line (about one a second). */
  onSimStats(fn: (at: number, stats: SimStats) => void): void;
  /** Resolves once the server lists this many devices online. */
  waitForOnline(n: number, guardMs?: number): Promise<void>;
  getJson<T>(p: string): Promise<T>;
  /** Stops the simulator (graceful), the server and Mosquitto. */
  stop(): Promise<void>;
}

/** A child process whose stderr tail is kept for error messages. */
function child(args: string[], env: NodeJS.ProcessEnv, name: string): { proc: ChildProcess; tail: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.once('error', (e) => (err += `\n${name}: ${e.message}`));
  return { proc, tail: () => err.trim(), exited };
}

async function stopChild(proc: ChildProcess, exited: Promise<unknown>, graceMs = 20_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Starts Mosquitto, `edgehead fleet serve`, then `edgehead fleet simulate`; resolves when the server sees them all. */
export async function startFleetBench(opts: FleetBenchOptions): Promise<FleetBenchEnv> {
  const entry = opts.entry ?? path.join(root, 'bin', 'edgehead.cjs');
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => say(`bench: cleanup failed: ${(e as Error).message}`));
  };
  try {
    say('starting mosquitto...');
    const broker = await Mosquitto.start();
    cleanups.push(() => broker.stop());

    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-fleet-bench-'));
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    say(`starting the fleet server on 127.0.0.1:${port}...`);
    const server = child([entry, 'fleet', 'serve', '--broker', broker.url, '--listen', `127.0.0.1:${port}`], { EDGEHEAD_LOG_LEVEL: 'warn', EDGEHEAD_FLEET_ROLLOUTS_DATA_DIR: dataDir, ...opts.serverEnv }, 'server');
    cleanups.push(() => stopChild(server.proc, server.exited));
    const serverUrl = `http://127.0.0.1:${port}/`;
    const getJson = async <T>(p: string): Promise<T> => {
      const res = await fetch(new URL(p, serverUrl));
      if (!res.ok) throw new Error(`GET ${p}: ${res.status} ${(await res.text()).slice(0, 200)}`);
      return (await res.json()) as T;
    };
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (server.proc.exitCode !== null) throw new Error(`the fleet server exited (${server.proc.exitCode}): ${server.tail()}`);
      if (Date.now() > deadline) throw new Error(`the fleet server did not answer GET /metrics within 60 s: ${server.tail()}`);
      const ok = await fetch(new URL('/metrics', serverUrl)).then((r) => r.ok, () => false);
      if (ok) break;
      await sleep(200);
    }
    // Idle and connected to the broker, no device yet: the baseline of the server's memory.
    await sleep(2000);
    const serverRssBeforeDevicesMB = rssMB(server.proc.pid!);

    say(`starting ${opts.devices} simulated devices...`);
    const simStartedAt = Date.now();
    const sim = child(
      [
        entry,
        'fleet',
        'simulate',
        '--broker',
        broker.url,
        '--devices',
        String(opts.devices),
        '--duration',
        String(opts.simulatorSeconds ?? 3600),
        '--telemetry-interval',
        String(opts.telemetryIntervalSec ?? 5),
        '--prediction-interval',
        String(opts.predictionIntervalSec ?? 1),
        '--stats-interval',
        '1',
        '--json-stats',
      ],
      { EDGEHEAD_LOG_LEVEL: 'warn' },
      'simulator',
    );
    cleanups.push(() => stopChild(sim.proc, sim.exited));
    let latest: { at: number; stats: SimStats } | undefined;
    const listeners: ((at: number, s: SimStats) => void)[] = [];
    readline.createInterface({ input: sim.proc.stdout! }).on('line', (line) => {
      let s: SimStats & { event?: string };
      try {
        s = JSON.parse(line) as SimStats & { event?: string };
      } catch {
        return;
      }
      latest = { at: Date.now(), stats: s };
      for (const l of listeners) l(latest.at, s);
    });

    const env: FleetBenchEnv = {
      brokerUrl: broker.url,
      serverUrl,
      serverPid: server.proc.pid!,
      simulatorPid: sim.proc.pid!,
      devices: opts.devices,
      serverRssBeforeDevicesMB: serverRssBeforeDevicesMB === undefined ? undefined : round1(serverRssBeforeDevicesMB),
      devicesOnlineSec: 0,
      simStats: () => latest,
      onSimStats: (fn) => void listeners.push(fn),
      getJson,
      async waitForOnline(n, guardMs = 120_000) {
        const end = Date.now() + guardMs;
        for (;;) {
          if (sim.proc.exitCode !== null) throw new Error(`the simulator exited (${sim.proc.exitCode}): ${sim.tail()}`);
          if (server.proc.exitCode !== null) throw new Error(`the fleet server exited (${server.proc.exitCode}): ${server.tail()}`);
          const rows = (await getJson<{ devices: DeviceRow[] }>('/api/devices')).devices;
          if (rows.filter((d) => d.online === true).length >= n) return;
          if (Date.now() > end) throw new Error(`the server lists ${rows.filter((d) => d.online).length}/${n} devices online after ${guardMs / 1000} s`);
          await sleep(500);
        }
      },
      stop,
    };
    await env.waitForOnline(opts.devices);
    env.devicesOnlineSec = round1((Date.now() - simStartedAt) / 1000);
    return env;
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

/** Sum of edgehead_fleet_messages_total over its kinds, from the Prometheus text. */
export function ingestedTotal(metricsText: string): number {
  let sum = 0;
  for (const m of metricsText.matchAll(/^edgehead_fleet_messages_total\{[^}]*\}\s+([0-9.e+]+)/gm)) sum += Number(m[1]);
  return sum;
}

function rssMB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Sample {
  t: number;
  published: number;
  ingested: number;
  serverCpuMs: number;
  simCpuMs: number;
  rssMB: number | undefined;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function measureThroughput(env: FleetBenchEnv, seconds: number) {
  const bar = progressBar('fleet', seconds);
  const samples: Sample[] = [];
  let t0: number | undefined;
  await new Promise<void>((resolve, reject) => {
    let busy = false;
    let finished = false;
    let lastAt = Date.now();
    // A simulator that died (or a server that stopped answering) would leave the window open forever.
    const watchdog = setInterval(() => {
      if (Date.now() - lastAt < 30_000) return;
      clearInterval(watchdog);
      finished = true;
      reject(new Error('no sample for 30 s: is the simulator still running? (the server answers GET /metrics?)'));
    }, 1000);
    env.onSimStats((at, stats) => {
      if (busy || finished) return;
      busy = true;
      fetch(new URL('/metrics', env.serverUrl))
        .then((r) => r.text())
        .then((text) => {
          t0 ??= at;
          lastAt = Date.now();
          samples.push({ t: at, published: stats.published.total, ingested: ingestedTotal(text), serverCpuMs: processCpuMs(env.serverPid), simCpuMs: processCpuMs(env.simulatorPid), rssMB: rssMB(env.serverPid) });
          const first = samples[0]!;
          const last = samples.at(-1)!;
          const dt = (last.t - first.t) / 1000;
          const inRate = dt > 0 ? (last.ingested - first.ingested) / dt : 0;
          bar.update(Math.min(seconds, Math.round(dt)), `${Math.round(inRate)} msg/s ingested, backlog ${last.published - last.ingested}`);
          if (at - t0 >= seconds * 1000) {
            finished = true;
            clearInterval(watchdog);
            resolve();
          }
        }, reject)
        .finally(() => (busy = false));
    });
  });
  bar.stop();
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const windowSec = (last.t - first.t) / 1000;
  const published = last.published - first.published;
  const ingested = last.ingested - first.ingested;
  const backlog = samples.map((s) => s.published - s.ingested);
  const backlogSlope = slope(samples.map((s) => (s.t - first.t) / 1000), backlog);
  const serverCpuSec = (last.serverCpuMs - first.serverCpuMs) / 1000;
  const simCpuSec = (last.simCpuMs - first.simCpuMs) / 1000;
  const rss = samples.map((s) => s.rssMB).filter((x): x is number => x !== undefined);
  const half = rss.slice(rss.length >> 1).sort((a, b) => a - b);
  const publishedPerSec = published / windowSec;
  return {
    windowSec: round1(windowSec),
    samples: samples.length,
    publishedPerSec: round1(publishedPerSec),
    ingestedPerSec: round1(ingested / windowSec),
    ingestedShare: published > 0 ? round3(ingested / published) : null,
    backlog: { first: backlog[0]!, last: backlog.at(-1)!, max: Math.max(...backlog), growthPerSec: round1(backlogSlope) },
    /** The backlog grows by less than 1% of the publish rate per second (over the window). */
    keepsUp: backlogSlope < 0.01 * publishedPerSec,
    server: {
      cpuSec: round1(serverCpuSec),
      cpuSecPer1000Messages: ingested > 0 ? round3((serverCpuSec * 1000) / ingested) : null,
      cores: round3(serverCpuSec / windowSec),
      rssMB: { steady: half.length ? Math.round(half[half.length >> 1]!) : null, max: rss.length ? Math.round(Math.max(...rss)) : null },
    },
    simulator: { cpuSec: round1(simCpuSec), cores: round3(simCpuSec / windowSec) },
  };
}

/** A head for the simulated devices (their extractor, their labels), 1280 features like MobileNetV2 1.0. */
function benchHead(version: number): Uint8Array {
  const featureDim = 1280;
  const kernel = new Float32Array(featureDim * 2).map((_, i) => Math.sin(i) / 10);
  return encodeHead(makeHeadFile({ id: 'bench', version, classes: ['cat', 'dog'], extractor: { ...SIM_EXTRACTOR }, kernel, bias: new Float32Array([0, 0]) }));
}

/**
 * The first live `applied` head/state per device carrying this correlation id, as a plain subscriber on the broker
 * sees it (local receipt time): the answers themselves, independent of the server's bookkeeping.
 */
async function watchApplied(brokerUrl: string, correlationId: string): Promise<{ first: Map<string, number>; close: () => Promise<void> }> {
  const client = mqtt.connect(brokerUrl, { clientId: `bench-watch-${process.pid}`, reconnectPeriod: 0, protocolVersion: 4 });
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  const first = new Map<string, number>();
  client.on('message', (topic, payload, packet) => {
    if (packet.retain) return;
    const t = parseTopic(PREFIX, topic);
    if (t?.kind !== 'head/state' || first.has(t.device)) return;
    const state = parseJsonPayload(HeadStateMessageSchema, payload, 'head/state', STATE_MAX_BYTES);
    if (state.ok && state.value.lastUpdate.correlationId === correlationId && state.value.lastUpdate.status === 'applied') first.set(t.device, Date.now());
  });
  await client.subscribeAsync(everyDeviceTopic(PREFIX, 'head/state'), { qos: 1 });
  return { first, close: () => client.endAsync() };
}

async function measureRollout(env: FleetBenchEnv, canaryPercent: number) {
  const bytes = benchHead(Math.floor(Date.now() / 1000));
  const watch = await watchApplied(env.brokerUrl, correlationIdOf(sha256Hex(bytes)));
  try {
    return await runRollout(env, canaryPercent, bytes, watch.first);
  } finally {
    await watch.close();
  }
}

async function runRollout(env: FleetBenchEnv, canaryPercent: number, bytes: Uint8Array, firstApplied: Map<string, number>) {
  const startedAt = Date.now();
  const res = await fetch(new URL(`/api/rollouts?target=group:sim&canaryPercent=${canaryPercent}`, env.serverUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'x-edgehead-request': '1' },
    body: bytes,
  });
  const body = (await res.json()) as RolloutView & { error?: string };
  if (res.status !== 201) throw new Error(`POST /api/rollouts: ${res.status} ${body.error ?? JSON.stringify(body).slice(0, 200)}`);
  const bar = progressBar('rollout', env.devices);
  let view = body;
  const guardMs = 30 * 60_000;
  while (!['done', 'halted', 'rolled-back'].includes(view.phase)) {
    if (Date.now() - startedAt > guardMs) throw new Error(`the rollout is still in phase ${view.phase} after ${guardMs / 60_000} min`);
    await sleep(250);
    view = await env.getJson<RolloutView>(`/api/rollouts/${encodeURIComponent(view.id)}`);
    bar.update(view.devices.filter((d) => d.state === 'applied').length, view.phase);
  }
  bar.stop();
  const canary = view.devices.filter((d) => d.stage === 'canary');
  const seen = (ds: typeof view.devices) => ds.map((d) => firstApplied.get(d.device)).filter((x): x is number => x !== undefined);
  const lastApplied = seen(view.devices).length ? Math.max(...seen(view.devices)) : null;
  const canaryDone = canary.length > 0 && seen(canary).length === canary.length ? Math.max(...seen(canary)) : null;
  const answered = view.devices.map((d) => d.answeredAt).filter((x): x is number => x !== null);
  const states: Record<string, number> = {};
  for (const d of view.devices) states[d.state] = (states[d.state] ?? 0) + 1;
  return {
    id: view.id,
    phase: view.phase,
    haltReason: view.haltReason,
    devices: view.devices.length,
    canaryDevices: canary.length,
    states,
    headBytes: bytes.byteLength,
    /** Devices whose `applied` answer the bench saw on the broker. */
    appliedSeen: firstApplied.size,
    /** POST to the last canary device's `applied`, as seen on the broker. */
    canarySec: canaryDone === null ? null : round3((canaryDone - startedAt) / 1000),
    /** POST to the last `applied` of any device, as seen on the broker. */
    toLastAppliedSec: lastApplied === null ? null : round3((lastApplied - startedAt) / 1000),
    /** POST to the last answer the server recorded (RolloutView.devices[].answeredAt). */
    toLastAnswerServerSec: answered.length ? round3((Math.max(...answered) - startedAt) / 1000) : null,
    toPhaseEndSec: round3((view.updatedAt - startedAt) / 1000),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The dashboard in Chromium, while the simulated devices keep publishing

/**
 * Runs in the page before its own scripts (a string: the bench is type-checked without the DOM library). Everything it
 * measures is page-side, in performance.now() (ms since the navigation started) or event.timeStamp (the same clock,
 * the time the browser received the input):
 *   - rowsAt: a MutationObserver on the document whose callback (a microtask right after the table's render, itself a
 *     requestAnimationFrame callback that ends with a forced layout) sees window.__fleet.rows reach N; nextFrameAt: the
 *     next animation frame after that, i.e. once the frame with the rows was painted;
 *   - batches: a requestAnimationFrame loop (the table renders at most once a frame) that, while `sampling`, records
 *     __fleet.lastRenderMs every time __fleet.updates moved (`missed` counts batches it could not see);
 *   - longTasks: PerformanceObserver('longtask') entries [startTime, duration] (tasks of 50 ms or more);
 *   - keys / clicks: the timeStamp of every keydown and click (capture phase), the start of an interaction;
 *   - armFilter / armSort: a MutationObserver on the table body that records when the DOM reflects the interaction.
 */
const PAGE_PROBE = `(() => {
  const N = __DEVICES__;
  const b = (window.__bench = { rowsAt: null, nextFrameAt: null, initialRenderMs: null, longTaskSupported: false, longTasks: [], keys: [], clicks: [], batches: [], missed: 0, sampling: false, wait: null });
  try {
    b.longTaskSupported = PerformanceObserver.supportedEntryTypes.includes('longtask');
    if (b.longTaskSupported) new PerformanceObserver((list) => { for (const e of list.getEntries()) b.longTasks.push([e.startTime, e.duration]); }).observe({ type: 'longtask', buffered: true });
  } catch (e) { b.longTaskSupported = false; }
  const mo = new MutationObserver(() => {
    const f = window.__fleet;
    if (b.rowsAt === null && f && f.rows >= N) {
      b.rowsAt = performance.now();
      b.initialRenderMs = f.initialRenderMs;
      mo.disconnect();
      requestAnimationFrame(() => (b.nextFrameAt = performance.now()));
    }
  });
  mo.observe(document, { childList: true, subtree: true });
  addEventListener('keydown', (e) => b.keys.push(e.timeStamp), true);
  addEventListener('click', (e) => b.clicks.push(e.timeStamp), true);
  let last = 0;
  const tick = () => {
    const f = window.__fleet;
    if (f) {
      if (b.sampling && f.updates !== last) {
        if (f.updates - last > 1) b.missed += f.updates - last - 1;
        b.batches.push(f.lastRenderMs);
      }
      last = f.updates;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  // Resolves b.wait once check() holds after a mutation of the table body; start: the last input's timeStamp then.
  const arm = (kind, options, check) => {
    const tbody = document.querySelector('table.fleet tbody');
    const w = (b.wait = { kind, inputAt: null, firstInputAt: null, doneAt: null, nextFrameAt: null });
    const inputs = kind === 'filter' ? b.keys : b.clicks;
    const from = inputs.length;
    const o = new MutationObserver(() => {
      if (w.doneAt !== null || inputs.length === from || !check(tbody)) return;
      w.doneAt = performance.now();
      w.inputAt = inputs[inputs.length - 1];
      w.firstInputAt = inputs[from];
      o.disconnect();
      requestAnimationFrame(() => (w.nextFrameAt = performance.now()));
    });
    o.observe(tbody, options);
  };
  b.armFilter = (visible) => arm('filter', { attributes: true, attributeFilter: ['hidden'], subtree: true }, () => window.__fleet.visible === visible);
  b.armSort = (first) => arm('sort', { childList: true }, (tbody) => tbody.firstElementChild && tbody.firstElementChild.dataset.device === first);
})();`;

interface PageProbe {
  rowsAt: number | null;
  nextFrameAt: number | null;
  initialRenderMs: number | null;
  longTaskSupported: boolean;
  longTasks: [number, number][];
  batches: number[];
  missed: number;
  sampling: boolean;
  wait: { kind: string; inputAt: number | null; firstInputAt: number | null; doneAt: number | null; nextFrameAt: number | null } | null;
  armFilter(visible: number): void;
  armSort(first: string): void;
}
interface TimingEntry {
  name: string;
  startTime: number;
  responseEnd: number;
  domContentLoadedEventEnd: number;
  decodedBodySize: number;
  transferSize: number;
}
/** The page's globals the bench reads (in page.evaluate callbacks, which must not call the bench's own functions). */
type ProbeWindow = {
  __bench: PageProbe;
  __fleet?: { rows: number; visible: number; updates: number; lastRenderMs: number; initialRenderMs: number };
  performance: { now(): number; getEntriesByType(type: string): TimingEntry[] };
};

const spread = (xs: number[]) => (xs.length ? { median: round1(median(xs)), max: round1(Math.max(...xs)), n: xs.length } : null);
const longTaskStats = (tasks: [number, number][], from: number, to: number) => {
  const inside = tasks.filter(([t]) => t >= from && t < to).map(([, d]) => d);
  return { count: inside.length, totalMs: Math.round(inside.reduce((a, b) => a + b, 0)), maxMs: inside.length ? Math.round(Math.max(...inside)) : 0 };
};

/** The `devices` events of GET /api/events as a plain client sees them: rows and bytes per batch. */
function watchEvents(serverUrl: string): { batches: { rows: number; bytes: number }[]; close: () => void } {
  const batches: { rows: number; bytes: number }[] = [];
  const abort = new AbortController();
  void (async () => {
    const res = await fetch(new URL('/api/events', serverUrl), { signal: abort.signal });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (!frame.startsWith('event: devices\n')) continue;
        const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        batches.push({ rows: (JSON.parse(data) as { devices: unknown[] }).devices.length, bytes: Buffer.byteLength(data) });
      }
    }
  })().catch((e: unknown) => {
    if ((e as Error).name !== 'AbortError') say(`bench: the event stream failed: ${(e as Error).message}`);
  });
  return { batches, close: () => abort.abort() };
}

export interface BrowserPhaseOptions {
  /** Page loads (each in a fresh browser context) for the first-render time. */
  loads: number;
  /** The live window (s) over which update batches are counted. */
  liveSeconds: number;
  /** Repetitions of each interaction (typing the filter, clicking a sort header). */
  repeats: number;
  /** What is typed into the filter box. */
  filter: string;
}

/**
 * The dashboard in headless Chromium against the benchmark's server while the devices keep publishing: (a) page loads
 * to N rendered rows, (b) a live window of update batches, (c) typing the filter and clicking a sort header, timed from
 * the input event to the DOM reflecting it, (d) a shorter live window sorted by p95 (every batch re-orders rows).
 */
export async function measureBrowser(env: FleetBenchEnv, opts: BrowserPhaseOptions) {
  const { CHROMIUM, CHROMIUM_MISSING, launchBrowser, unexpectedErrors } = await import('../test/support/browser');
  if (!CHROMIUM) return { skipped: CHROMIUM_MISSING };
  const n = env.devices;
  const rows = (await env.getJson<{ devices: DeviceRow[] }>('/api/devices')).devices;
  const ids = rows.map((r) => r.device).sort(new Intl.Collator(undefined, { numeric: true }).compare);
  const filter = opts.filter.trim().toLowerCase();
  const filterMatches = rows.filter((r) => [r.device, ...r.groups, r.head?.id ?? ''].join('\n').toLowerCase().includes(filter)).length;
  const browser = await launchBrowser();
  const errors: string[] = [];
  const open = async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.addInitScript({ content: PAGE_PROBE.replace('__DEVICES__', String(n)) });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    await page.goto(env.serverUrl);
    await page.waitForFunction(() => (globalThis as unknown as ProbeWindow).__bench.nextFrameAt !== null, undefined, { timeout: 60_000 });
    return { context, page };
  };
  try {
    const version = browser.version();
    // (a) first render, a fresh context each time (nothing cached; the first load also warms up the browser itself)
    say(`browser: ${opts.loads} page loads to ${n} rows...`);
    const loads = [];
    let dash: Awaited<ReturnType<typeof open>> | undefined;
    for (let i = 0; i < opts.loads; i++) {
      await dash?.context.close();
      dash = await open();
      loads.push(
        await dash.page.evaluate(() => {
          const w = globalThis as unknown as ProbeWindow;
          const b = w.__bench;
          const nav = w.performance.getEntriesByType('navigation')[0];
          const api = w.performance.getEntriesByType('resource').find((e) => /\/api\/devices(\?|$)/.test(e.name));
          return {
            rowsMs: b.rowsAt!,
            nextFrameMs: b.nextFrameAt!,
            initialRenderMs: b.initialRenderMs!,
            domContentLoadedMs: nav ? nav.domContentLoadedEventEnd : null,
            apiDevices: api ? { startMs: api.startTime, endMs: api.responseEnd, bodyKB: Math.round(api.decodedBodySize / 1024), transferKB: Math.round(api.transferSize / 1024) } : null,
            longTaskSupported: b.longTaskSupported,
            longTasks: b.longTasks.filter(([t]) => t < b.rowsAt!),
          };
        }),
      );
    }
    const page = dash!.page;
    const firstRender = {
      loads: loads.map((l) => ({
        rowsMs: round1(l.rowsMs),
        nextFrameMs: round1(l.nextFrameMs),
        initialRenderMs: round1(l.initialRenderMs),
        domContentLoadedMs: l.domContentLoadedMs === null ? null : round1(l.domContentLoadedMs),
        apiDevices: l.apiDevices && { startMs: round1(l.apiDevices.startMs), endMs: round1(l.apiDevices.endMs), bodyKB: l.apiDevices.bodyKB, transferKB: l.apiDevices.transferKB },
        longTasks: longTaskStats(l.longTasks, 0, Infinity),
      })),
      rowsMs: spread(loads.map((l) => l.rowsMs)),
      initialRenderMs: spread(loads.map((l) => l.initialRenderMs)),
    };
    const longTaskSupported = loads[0]!.longTaskSupported;

    // (b) live updates: batches applied, render time per batch
    const liveWindow = async (seconds: number) => {
      const events = watchEvents(env.serverUrl);
      const cpu0 = processCpuMs(env.serverPid);
      const t0 = Date.now();
      const from = await page.evaluate(() => {
        const b = (globalThis as unknown as ProbeWindow).__bench;
        b.batches = [];
        b.missed = 0;
        b.sampling = true;
        return { t: performance.now(), updates: (globalThis as unknown as ProbeWindow).__fleet!.updates };
      });
      await sleep(seconds * 1000);
      const to = await page.evaluate(() => {
        const b = (globalThis as unknown as ProbeWindow).__bench;
        b.sampling = false;
        return { t: performance.now(), updates: (globalThis as unknown as ProbeWindow).__fleet!.updates, batches: b.batches, missed: b.missed, longTasks: b.longTasks };
      });
      const serverCores = (processCpuMs(env.serverPid) - cpu0) / (Date.now() - t0);
      events.close();
      const sent = events.batches.slice(1); // the first may be a partial interval
      return {
        seconds: round1((to.t - from.t) / 1000),
        batches: to.updates - from.updates,
        batchesSampled: to.batches.length,
        missedBySampler: to.missed,
        renderMs: to.batches.length ? { median: round1(median(to.batches)), max: round1(Math.max(...to.batches)) } : null,
        rowsPerBatch: sent.length ? { median: median(sent.map((b) => b.rows)), max: Math.max(...sent.map((b) => b.rows)) } : null,
        kBPerBatch: sent.length ? Math.round(median(sent.map((b) => b.bytes)) / 1024) : null,
        longTasks: longTaskStats(to.longTasks, from.t, to.t),
        serverCores: round3(serverCores),
      };
    };
    say(`browser: live updates for ${opts.liveSeconds} s...`);
    const live = await liveWindow(opts.liveSeconds);

    // (c) responsiveness while the updates stream
    say(`browser: filter and sort, ${opts.repeats} times each...`);
    const i0 = await page.evaluate(() => performance.now());
    const box = page.locator('input.filter');
    type Wait = NonNullable<PageProbe['wait']>;
    const finish = async (what: string): Promise<Wait> => {
      await page.waitForFunction(() => (globalThis as unknown as ProbeWindow).__bench.wait?.nextFrameAt != null, undefined, { timeout: 30_000 }).catch(() => {
        throw new Error(`browser: the DOM did not reflect ${what} within 30 s`);
      });
      return page.evaluate(() => (globalThis as unknown as ProbeWindow).__bench.wait!);
    };
    const clearFilter = async () => {
      await box.fill('');
      await page.waitForFunction((all) => (globalThis as unknown as ProbeWindow).__fleet!.visible === all, n, { timeout: 30_000 });
    };
    const filterRuns: Wait[] = [];
    if (filterMatches !== n) {
      for (let i = 0; i < opts.repeats; i++) {
        await clearFilter();
        await sleep(300);
        await page.evaluate((v) => (globalThis as unknown as ProbeWindow).__bench.armFilter(v), filterMatches);
        await box.pressSequentially(opts.filter);
        filterRuns.push(await finish(`the filter ${JSON.stringify(opts.filter)}`));
      }
      await clearFilter();
    }
    const sortRuns: { dir: string; w: Wait }[] = [];
    const deviceHeader = page.locator('th[data-col="device"] button');
    for (let i = 0; i < 2 * opts.repeats; i++) {
      const dir = i % 2 === 0 ? 'descending' : 'ascending';
      await sleep(300);
      await page.evaluate((first) => (globalThis as unknown as ProbeWindow).__bench.armSort(first), dir === 'descending' ? ids.at(-1)! : ids[0]!);
      await deviceHeader.click();
      sortRuns.push({ dir, w: await finish(`the sort by device, ${dir}`) });
    }
    const i1 = await page.evaluate(() => performance.now());
    const interactionLongTasks = longTaskStats(await page.evaluate(() => (globalThis as unknown as ProbeWindow).__bench.longTasks), i0, i1);
    const respond = (ws: Wait[]) => spread(ws.map((w) => w.doneAt! - w.inputAt!));
    const responsiveness = {
      filter: {
        typed: opts.filter,
        visible: filterMatches,
        /** The last keystroke's keydown timeStamp to the rows hidden (the render's forced layout done). */
        lastKeyToDomMs: respond(filterRuns),
        lastKeyToNextFrameMs: spread(filterRuns.map((w) => w.nextFrameAt! - w.inputAt!)),
        /** The first keystroke to the rows hidden: typing the whole string (Playwright types without delay). */
        firstKeyToDomMs: spread(filterRuns.map((w) => w.doneAt! - w.firstInputAt!)),
      },
      sort: {
        column: 'device',
        /** The click's timeStamp (mouseup) to the table body re-ordered (N rows moved). */
        clickToDomMs: respond(sortRuns.map((r) => r.w)),
        clickToNextFrameMs: spread(sortRuns.map((r) => r.w.nextFrameAt! - r.w.inputAt!)),
      },
      longTasks: interactionLongTasks,
      /** How long the filter and sort runs took in all (s), waits between them included: the long tasks' window. */
      seconds: round1((i1 - i0) / 1000),
    };

    // (d) live updates while sorted by a column the updates change: every batch re-orders rows
    await page.locator('th[data-col="p95"] button').click();
    say(`browser: live updates sorted by p95 for ${Math.ceil(opts.liveSeconds / 2)} s...`);
    const liveSortedP95 = await liveWindow(Math.ceil(opts.liveSeconds / 2));

    return { chromium: CHROMIUM, version, longTaskSupported, firstRender, live, responsiveness, liveSortedP95, pageErrors: unexpectedErrors(errors) };
  } finally {
    await browser.close();
  }
}

/** The browser phase's lines of the result table. */
function browserRows(b: Awaited<ReturnType<typeof measureBrowser>> | { skipped: string } | { error: string }, devices: number): [string, string][] {
  if ('skipped' in b) return [['dashboard (Chromium)', `skipped: ${b.skipped}`]];
  if ('error' in b) return [['dashboard (Chromium)', `FAILED: ${b.error}`]];
  const ms = (s: { median: number; max: number; n: number } | null) => (s ? `median ${s.median} ms, max ${s.max} ms (${s.n})` : 'n/a');
  const lt = (x: { count: number; totalMs: number; maxMs: number }) => (b.longTaskSupported ? `${x.count} long tasks (${x.totalMs} ms in all, longest ${x.maxMs} ms)` : 'long tasks not observable');
  const live = (l: typeof b.live) =>
    `${l.batches} batches in ${l.seconds} s (${l.rowsPerBatch ? `median ${l.rowsPerBatch.median} rows, ${l.kBPerBatch} kB per batch` : 'batch size n/a'}), render per batch median ${l.renderMs?.median ?? 'n/a'} ms, max ${l.renderMs?.max ?? 'n/a'} ms; ${lt(l.longTasks)}; server ${l.serverCores} cores`;
  const f = b.firstRender;
  const r = b.responsiveness;
  return [
    ['dashboard: first render', `${devices} rows at ${f.loads.map((l) => `${l.rowsMs}`).join(' / ')} ms after navigation start (${f.loads.length} loads; the table's render ${f.loads.map((l) => l.initialRenderMs).join(' / ')} ms; api/devices ${f.loads[0]?.apiDevices?.bodyKB ?? 'n/a'} kB)`],
    ['dashboard: live updates', live(b.live)],
    ['dashboard: filter', r.filter.lastKeyToDomMs ? `"${r.filter.typed}" (${r.filter.visible} rows shown): last keystroke -> DOM ${ms(r.filter.lastKeyToDomMs)}` : 'n/a (the filter matches every row)'],
    ['dashboard: sort', `click a header (device, ${devices} rows re-ordered) -> DOM ${ms(r.sort.clickToDomMs)}; ${lt(r.longTasks)} over the ${r.seconds} s of filter + sort`],
    ['dashboard: sorted by p95', live(b.liveSortedP95)],
    ...(b.pageErrors.length ? [['dashboard: page errors', b.pageErrors.slice(0, 3).join(' | ')] as [string, string]] : []),
  ];
}

// ---------------------------------------------------------------------------------------------------------------

const USAGE =
  'usage: npm run bench -- fleet [--devices N] [--seconds S] [--canary-percent P] [--telemetry-interval S] [--prediction-interval S] [--dist | --entry CLI.cjs] [--no-rollout] [--no-browser] [--browser-seconds S] [--browser-loads N] [--browser-repeats N] [--json] [--out FILE]';

export async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        devices: { type: 'string', default: '1000' },
        seconds: { type: 'string', default: '60' },
        'canary-percent': { type: 'string', default: '5' },
        'telemetry-interval': { type: 'string', default: '5' },
        'prediction-interval': { type: 'string', default: '1' },
        dist: { type: 'boolean', default: false },
        entry: { type: 'string' },
        'no-rollout': { type: 'boolean', default: false },
        'no-browser': { type: 'boolean', default: false },
        'browser-seconds': { type: 'string', default: '10' },
        'browser-loads': { type: 'string', default: '3' },
        'browser-repeats': { type: 'string', default: '5' },
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
    }));
  } catch (e) {
    say(`bench fleet: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const num = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) {
      say(`bench fleet: --${name} must be a number in [${min}, ${max}] (got ${v})\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const devices = Math.round(num('devices', values.devices, 1, 5000));
  const seconds = num('seconds', values.seconds, 5, 3600);
  const canaryPercent = num('canary-percent', values['canary-percent'], 0.1, 100);
  const telemetryIntervalSec = num('telemetry-interval', values['telemetry-interval'], 0.1, 3600);
  const predictionIntervalSec = num('prediction-interval', values['prediction-interval'], 0.01, 3600);
  const browserOpts: BrowserPhaseOptions = {
    liveSeconds: num('browser-seconds', values['browser-seconds'], 2, 600),
    loads: Math.round(num('browser-loads', values['browser-loads'], 1, 20)),
    repeats: Math.round(num('browser-repeats', values['browser-repeats'], 1, 50)),
    filter: 'sim-00',
  };
  const entry = values.entry ? path.resolve(values.entry) : values.dist ? path.join(root, 'dist', 'edgehead.cjs') : path.join(root, 'bin', 'edgehead.cjs');
  if (!fs.existsSync(entry)) {
    say(`bench fleet: ${path.relative(root, entry)} not found${values.dist ? ' (npm run build)' : ''}`);
    process.exit(2);
  }
  const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memGB: Math.round(os.totalmem() / 1024 ** 3), node: process.versions.node, loadAvgBefore: os.loadavg().map(round1), date: new Date().toISOString() };

  const env = await startFleetBench({ devices, telemetryIntervalSec, predictionIntervalSec, entry, simulatorSeconds: seconds + 3600 });
  let report;
  try {
    say('warming up (5 s)...');
    await sleep(5000);
    say(`measuring ingestion for ${seconds} s...`);
    const throughput = await measureThroughput(env, seconds);
    let browser: Awaited<ReturnType<typeof measureBrowser>> | { skipped: string } | { error: string } = { skipped: '--no-browser' };
    if (!values['no-browser']) {
      say('the dashboard in Chromium, the devices still publishing...');
      try {
        browser = await measureBrowser(env, browserOpts);
        if ('skipped' in browser) say(`browser phase skipped: ${browser.skipped}`);
      } catch (e) {
        // The rollout still runs; the table and the exit code say the browser phase failed.
        say(`browser phase failed: ${(e as Error).stack ?? e}`);
        browser = { error: (e as Error).message };
        process.exitCode = 1;
      }
    }
    let rollout: Awaited<ReturnType<typeof measureRollout>> | { skipped: string } = { skipped: '--no-rollout' };
    if (!values['no-rollout']) {
      say(`rollout to ${devices} devices (canary ${canaryPercent}%)...`);
      rollout = await measureRollout(env, canaryPercent);
    }
    report = {
      config: { devices, seconds, canaryPercent, browser: values['no-browser'] ? null : browserOpts, telemetryIntervalSec, predictionIntervalSec, entry: path.relative(root, entry), expectedMsgsPerSec: round1(devices / telemetryIntervalSec + devices / predictionIntervalSec) },
      machine: { ...machine, loadAvgAfter: os.loadavg().map(round1) },
      startup: { serverRssBeforeDevicesMB: env.serverRssBeforeDevicesMB ?? null, devicesOnlineSec: env.devicesOnlineSec },
      throughput,
      browser,
      rollout,
    };
  } finally {
    say('stopping...');
    await env.stop();
  }

  const t = report.throughput;
  const r = report.rollout;
  const rows: [string, string][] = [
    ['devices', `${devices} (telemetry every ${telemetryIntervalSec} s, a prediction every ${predictionIntervalSec} s: ~${report.config.expectedMsgsPerSec} msg/s); all online ${report.startup.devicesOnlineSec} s after the simulator started`],
    ['window', `${t.windowSec} s, ${t.samples} samples`],
    ['published by the simulator', `${t.publishedPerSec} msg/s`],
    ['ingested by the server', `${t.ingestedPerSec} msg/s (${t.ingestedShare === null ? 'n/a' : `${round1(t.ingestedShare * 100)}%`} of published)`],
    ['backlog (published - ingested)', `first ${t.backlog.first}, last ${t.backlog.last}, max ${t.backlog.max}, growth ${t.backlog.growthPerSec} msg/s: ${t.keepsUp ? 'keeps up' : 'FALLING BEHIND'}`],
    ['server CPU', `${t.server.cpuSecPer1000Messages ?? 'n/a'} s per 1,000 messages (${t.server.cores} cores at ${Math.round(t.ingestedPerSec)} msg/s)`],
    ['server RSS', `steady ${t.server.rssMB.steady ?? 'n/a'} MB, max ${t.server.rssMB.max ?? 'n/a'} MB (${report.startup.serverRssBeforeDevicesMB ?? 'n/a'} MB before the devices connected)`],
    ['simulator CPU', `${t.simulator.cores} cores`],
    ...browserRows(report.browser, devices),
    [
      'rollout',
      'skipped' in r
        ? `skipped (${r.skipped})`
        : `${r.phase}${r.haltReason ? ` (${r.haltReason})` : ''}: ${Object.entries(r.states).map(([k, n]) => `${n} ${k}`).join(', ')}; canary (${r.canaryDevices} devices) applied ${r.canarySec ?? 'n/a'} s, last applied ${r.toLastAppliedSec ?? 'n/a'} s after the POST (${r.appliedSeen} applied answers seen on the broker; server's last answer at ${r.toLastAnswerServerSec ?? 'n/a'} s)`,
    ],
    ['machine', `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; load ${machine.loadAvgBefore.join(' ')} -> ${report.machine.loadAvgAfter.join(' ')}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const out = values.out ?? path.join(root, 'docs', `bench-fleet-${machine.date.slice(0, 10)}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + `\nwrote ${path.relative(process.cwd(), out)}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    say(`bench fleet failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  });
}
