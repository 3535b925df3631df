/**
 * `npm run bench -- fleet [--devices 1000] [--seconds 60] [--canary-percent 5] [--telemetry-interval 5]
 * [--prediction-interval 1] [--dist | --entry CLI.cjs] [--no-rollout] [--json] [--out FILE]`. Not a test.
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
 * then a staged rollout of a fresh head to group "sim" (all devices; canary --canary-percent) through the JSON API
 * and the time from the POST to the last `applied` answer (RolloutView.devices[].answeredAt).
 * Progress goes to stderr; a table to stdout (or the JSON with --json); the JSON is written to
 * bench/results/fleet-<date>.json (or --out FILE).
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

    say(`starting ${opts.devices} simulated devices...`);
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

const USAGE = 'usage: npm run bench -- fleet [--devices N] [--seconds S] [--canary-percent P] [--telemetry-interval S] [--prediction-interval S] [--dist | --entry CLI.cjs] [--no-rollout] [--json] [--out FILE]';

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
    let rollout: Awaited<ReturnType<typeof measureRollout>> | { skipped: string } = { skipped: '--no-rollout' };
    if (!values['no-rollout']) {
      say(`rollout to ${devices} devices (canary ${canaryPercent}%)...`);
      rollout = await measureRollout(env, canaryPercent);
    }
    report = {
      config: { devices, seconds, canaryPercent, telemetryIntervalSec, predictionIntervalSec, entry: path.relative(root, entry), expectedMsgsPerSec: round1(devices / telemetryIntervalSec + devices / predictionIntervalSec) },
      machine: { ...machine, loadAvgAfter: os.loadavg().map(round1) },
      throughput,
      rollout,
    };
  } finally {
    say('stopping...');
    await env.stop();
  }

  const t = report.throughput;
  const r = report.rollout;
  const rows: [string, string][] = [
    ['devices', `${devices} (telemetry every ${telemetryIntervalSec} s, a prediction every ${predictionIntervalSec} s: ~${report.config.expectedMsgsPerSec} msg/s)`],
    ['window', `${t.windowSec} s, ${t.samples} samples`],
    ['published by the simulator', `${t.publishedPerSec} msg/s`],
    ['ingested by the server', `${t.ingestedPerSec} msg/s (${t.ingestedShare === null ? 'n/a' : `${round1(t.ingestedShare * 100)}%`} of published)`],
    ['backlog (published - ingested)', `first ${t.backlog.first}, last ${t.backlog.last}, max ${t.backlog.max}, growth ${t.backlog.growthPerSec} msg/s: ${t.keepsUp ? 'keeps up' : 'FALLING BEHIND'}`],
    ['server CPU', `${t.server.cpuSecPer1000Messages ?? 'n/a'} s per 1,000 messages (${t.server.cores} cores at ${Math.round(t.ingestedPerSec)} msg/s)`],
    ['server RSS', `steady ${t.server.rssMB.steady ?? 'n/a'} MB, max ${t.server.rssMB.max ?? 'n/a'} MB`],
    ['simulator CPU', `${t.simulator.cores} cores`],
    [
      'rollout',
      'skipped' in r
        ? `skipped (${r.skipped})`
        : `${r.phase}${r.haltReason ? ` (${r.haltReason})` : ''}: ${Object.entries(r.states).map(([k, n]) => `${n} ${k}`).join(', ')}; canary (${r.canaryDevices} devices) applied ${r.canarySec ?? 'n/a'} s, last applied ${r.toLastAppliedSec ?? 'n/a'} s after the POST (${r.appliedSeen} applied answers seen on the broker; server's last answer at ${r.toLastAnswerServerSec ?? 'n/a'} s)`,
    ],
    ['machine', `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; load ${machine.loadAvgBefore.join(' ')} -> ${report.machine.loadAvgAfter.join(' ')}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const out = values.out ?? path.join(root, 'bench', 'results', `fleet-${machine.date.slice(0, 10)}.json`);
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
