/**
 * `npm run bench [-- --json FILE] [--frames N] [--turn K] [--threads N] [--sequential] [--no-agent]`. Not a test.
 *
 * Every configuration runs in its own process (the WASM backend initialises once per process). The processes start
 * one after the other (so cold start and memory are their own), then take turns: each turn runs K frames of one
 * configuration while the others wait idle, and the order rotates every round. A burst of load from the other users
 * of a shared machine then hits every configuration alike, and the ratios of medians stay meaningful; with
 * `--sequential` each configuration runs all its frames in one go instead (less memory: one process at a time).
 * Then: tfjs-backend-cpu on a few frames, head-swap latency, onnxruntime-web's features against ours (bench/onnx),
 * and the running agent's memory (the esbuild bundle, 1 and N threads). See docs/BENCHMARKS.md.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { progressBar } from '../base/progress';
import { freePort } from '../test/support/mosquitto';
import { cpuNoise, machineCpuMs, processCpuMs } from './machine';
import type { OrtCheck } from './onnx/check';
import type { FromWorker, Samples, ToWorker, WorkerArgs } from './worker';

const root = path.resolve(__dirname, '..');

export interface Config extends WorkerArgs {
  /** Timed frames. */
  frames: number;
}

type Stat = { median: number; p95: number };

const round2 = (x: number) => Math.round(x * 100) / 100;
const quantile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? round2(s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))]!) : NaN;
};
const stat = (xs: number[]): Stat => ({ median: quantile(xs, 0.5), p95: quantile(xs, 0.95) });

/** A configuration's process, answering one message at a time. */
class BenchProcess {
  private readonly child: ChildProcess;
  private pending: ((m: FromWorker) => void) | undefined;
  private failed: Error | undefined;
  readonly ready: Promise<Extract<FromWorker, { type: 'ready' }>>;

  constructor(readonly config: Config) {
    const args: WorkerArgs = { extractor: config.extractor, path: config.path, threads: config.threads, warmup: config.warmup };
    this.child = fork(path.join(root, 'bench', 'worker.ts'), [JSON.stringify(args)], {
      cwd: root,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, EDGEHEAD_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: FromWorker) => {
      const p = this.pending;
      this.pending = undefined;
      if (m.type === 'error') this.fail(new Error(`${this.name}: ${m.message}`));
      else p?.(m);
    });
    this.child.on('exit', (code) => {
      if (this.pending) this.fail(new Error(`${this.name}: the worker exited (code ${code})`));
    });
    this.ready = this.next() as Promise<Extract<FromWorker, { type: 'ready' }>>;
  }

  get name(): string {
    return `${this.config.extractor} ${this.config.path} x${this.config.threads}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  private rejectPending: ((e: Error) => void) | undefined;

  private fail(e: Error): void {
    this.failed = e;
    this.rejectPending?.(e);
  }

  private next(): Promise<FromWorker> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending = resolve;
      this.rejectPending = reject;
    });
  }

  async turn(frames: number): Promise<Samples> {
    const reply = this.next();
    this.child.send({ type: 'turn', frames } satisfies ToWorker);
    return ((await reply) as Extract<FromWorker, { type: 'turn' }>).samples;
  }

  async done(): Promise<Extract<FromWorker, { type: 'done' }>> {
    const reply = this.next();
    this.child.send({ type: 'done' } satisfies ToWorker);
    return (await reply) as Extract<FromWorker, { type: 'done' }>;
  }

  kill(): void {
    this.child.kill();
  }
}

function summarise(c: Config, ready: Extract<FromWorker, { type: 'ready' }>, s: Samples, done: Extract<FromWorker, { type: 'done' }>, turnMedians: number[]) {
  const totalMedian = quantile(s.total, 0.5);
  return {
    extractor: c.extractor,
    path: c.path,
    threads: ready.threads,
    threadsRequested: c.threads,
    threadsNote: ready.threadsNote,
    simd: ready.simd,
    executor: ready.executor,
    frames: s.extract.length,
    extractMs: stat(s.extract),
    decodeMs: stat(s.decode),
    resizeMs: stat(s.resize),
    headMs: stat(s.head),
    preprocessMs: { median: quantile(s.decode.map((d, i) => d + s.resize[i]!), 0.5) },
    preprocess640x480Ms: stat(s.pre640),
    totalMs: stat(s.total),
    framesPerSec: round2(1000 / totalMedian),
    coldStartMs: Math.round(ready.coldStartMs),
    warmupFrames: ready.warmupFrames,
    warmupBlockMedians: ready.warmupBlockMedians,
    rssMB: done.rssMB,
    peakRssMB: done.peakRssMB,
    tensorsGrowth: done.tensorsGrowth,
    threadsStatus: done.threadsStatus,
    extractTurnMediansMs: turnMedians,
  };
}
export type Result = ReturnType<typeof summarise>;

/** Runs configurations taking turns (or one after the other), with a progress bar over all timed frames. */
export async function runConfigs(configs: Config[], turn: number, sequential: boolean): Promise<{ results: Result[]; otherLoadCores: number | null }> {
  const turns = configs.map((c) => Math.ceil(c.frames / turn));
  const bar = progressBar('bench', configs.reduce((a, c) => a + c.frames, 0));
  let framesDone = 0;
  const samples = configs.map((): Samples => ({ decode: [], resize: [], extract: [], head: [], total: [], pre640: [] }));
  const turnMedians = configs.map((): number[] => []);
  const readies: Extract<FromWorker, { type: 'ready' }>[] = [];
  const dones: Extract<FromWorker, { type: 'done' }>[] = [];
  const procs: BenchProcess[] = [];
  // CPU used by other processes while timed frames run: machine busy time minus ours, over the elapsed time.
  let otherBusy = 0;
  let elapsed = 0;
  const measure = () => {
    const cpu0 = machineCpuMs();
    const ours = () => procs.reduce((a, p) => a + (p ? processCpuMs(p.pid) : 0), processCpuMs(process.pid));
    const ours0 = ours();
    return () => {
      const cpu1 = machineCpuMs();
      if (!cpu0 || !cpu1 || cpu1.total <= cpu0.total) return;
      otherBusy += Math.max(0, cpu1.busy - cpu0.busy - (ours() - ours0));
      elapsed += (cpu1.total - cpu0.total) / os.cpus().length;
    };
  };
  const runTurns = async (i: number, count: number) => {
    for (let t = 0; t < count; t++) {
      const k = Math.min(turn, configs[i]!.frames - samples[i]!.extract.length);
      const s = await procs[i]!.turn(k);
      for (const key of Object.keys(s) as (keyof Samples)[]) samples[i]![key].push(...s[key]);
      turnMedians[i]!.push(quantile(s.extract, 0.5));
      framesDone += k;
      bar.update(framesDone, procs[i]!.name);
    }
  };
  try {
    if (sequential) {
      for (let i = 0; i < configs.length; i++) {
        procs[i] = new BenchProcess(configs[i]!);
        readies[i] = await procs[i]!.ready;
        const end = measure();
        await runTurns(i, turns[i]!);
        end();
        dones[i] = await procs[i]!.done();
      }
    } else {
      for (let i = 0; i < configs.length; i++) {
        procs[i] = new BenchProcess(configs[i]!); // one at a time: start-up measured alone
        readies[i] = await procs[i]!.ready;
      }
      const end = measure();
      for (let round = 0; round < Math.max(...turns); round++) {
        for (let j = 0; j < configs.length; j++) {
          const i = (j + round) % configs.length;
          if (round < turns[i]!) await runTurns(i, 1);
        }
      }
      end();
      for (let i = 0; i < configs.length; i++) dones[i] = await procs[i]!.done();
    }
  } finally {
    bar.stop();
    for (const p of procs) p?.kill();
  }
  const otherLoadCores = elapsed > 0 ? round2(otherBusy / elapsed) : null;
  return { results: configs.map((c, i) => summarise(c, readies[i]!, samples[i]!, dones[i]!, turnMedians[i]!)), otherLoadCores };
}

function runScript(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench', script)], {
      cwd: root,
      env: { ...process.env, EDGEHEAD_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${script} exited with ${code}`))));
  });
}

const serviceUnit = () => fs.readFileSync(path.join(root, 'firmware-scripts', 'edgehead.service'), 'utf8');

/** The node options of the systemd unit's ExecStart (firmware-scripts/edgehead.service): the agent is measured as
 * it runs on a board. */
function serviceNodeFlags(): string[] {
  const exec = /^ExecStart=\S+ (.*?)\S*edgehead\.cjs/m.exec(serviceUnit());
  return exec ? exec[1]!.split(/\s+/).filter(Boolean) : [];
}

/** The unit's Environment= settings that shape memory (e.g. MALLOC_ARENA_MAX), the agent's own EDGEHEAD_* aside. */
function serviceEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of serviceUnit().matchAll(/^Environment=([A-Z_][A-Z0-9_]*)=(\S*)$/gm)) if (!m[1]!.startsWith('EDGEHEAD_')) env[m[1]!] = m[2]!;
  return env;
}

/** Resident memory of the running agent (the esbuild bundle with the unit's node options, as on a board: embedded
 * broker, bundled frames, one frame every 500 ms), sampled every second; steady state = median of the second half. */
async function agentMemory(threads: number, seconds: number): Promise<{ threads: number; nodeFlags: string; rssMB: { steady: number; max: number }; samples: number } | { skipped: string }> {
  const bundle = path.join(root, 'dist', 'edgehead.cjs');
  if (!fs.existsSync(bundle)) return { skipped: 'dist/edgehead.cjs not built (npm run build)' };
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-bench-'));
  const child = spawn(process.execPath, [...serviceNodeFlags(), bundle, 'run'], {
    env: {
      ...process.env,
      ...serviceEnv(),
      EDGEHEAD_LOG_LEVEL: 'warn',
      EDGEHEAD_BACKEND_THREADS: String(threads),
      EDGEHEAD_SCHEDULE_INTERVAL_MS: '500',
      EDGEHEAD_STATE_DIR: state,
      EDGEHEAD_DEVICE_ID: 'bench',
      EDGEHEAD_MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d).slice(-2000)));
  const rss: number[] = [];
  try {
    for (let t = 0; t < seconds && child.exitCode === null; t++) {
      await new Promise((r) => setTimeout(r, 1000));
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) rss.push(Number(m[1]) / 1024);
    }
  } catch (e) {
    return { skipped: `cannot read the agent's memory: ${(e as Error).message}` };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r).once('error', r));
    fs.rmSync(state, { recursive: true, force: true });
  }
  if (rss.length < seconds) return { skipped: `the agent exited after ${rss.length} s: ${stderr.trim()}` };
  const env = Object.entries(serviceEnv()).map(([k, v]) => `${k}=${v}`);
  return { threads, nodeFlags: [...env, ...serviceNodeFlags()].join(' '), rssMB: { steady: Math.round(quantile(rss.slice(rss.length >> 1), 0.5)), max: Math.round(Math.max(...rss)) }, samples: rss.length };
}

const USAGE = `usage: npm run bench -- [--json FILE] [--frames N] [--turn K] [--threads N] [--sequential] [--no-agent]
       npm run bench -- fleet|motion|train [options]     (the fleet server, the motion gate, the trainer)
       npm run bench -- threads [options]                (1 vs N threads vs auto, idle and beside a busy core)
       npm run bench -- ops [options]                    (op by op: time, share and GMAC/s of each op kind)
  --json FILE    also write the results as JSON
  --frames N     timed frames per configuration (default 60)
  --turn K       frames per turn while the configurations take turns (default 5)
  --threads N    the multi-threaded configuration's threads (default: the CPUs, 2 to 4)
  --sequential   one process at a time, all its frames in one go (less memory: small boards)
  --no-agent     skip the running agent's memory
  -h, --help     print this help
See docs/BENCHMARKS.md.`;

function parseOrExit<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  if (config.args?.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE.split('\n')[0]}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'fleet') return (await import('./fleet')).main(process.argv.slice(3)); // the fleet server benchmark (bench/fleet.ts)
  if (process.argv[2] === 'motion') return (await import('./motion')).main(process.argv.slice(3)); // the motion gate (bench/motion.ts)
  if (process.argv[2] === 'train') return (await import('./train')).main(process.argv.slice(3)); // the head trainer (bench/train.ts)
  if (process.argv[2] === 'threads') return (await import('./threads')).main(process.argv.slice(3)); // 1 vs N vs auto threads, idle and contended (bench/threads.ts)
  if (process.argv[2] === 'ops') return (await import('./ops')).main(process.argv.slice(3)); // op by op: where a frame's time goes (bench/ops.ts)
  const { values } = parseOrExit({
    args: process.argv.slice(2),
    options: {
      json: { type: 'string' },
      frames: { type: 'string', default: '60' },
      turn: { type: 'string', default: '5' },
      threads: { type: 'string' },
      sequential: { type: 'boolean', default: false },
      'no-agent': { type: 'boolean', default: false },
    },
  });
  const positive = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      process.stderr.write(`bench: --${name} must be a positive integer (got ${v})\n`);
      process.exit(2);
    }
    return n;
  };
  const frames = positive('frames', values.frames);
  const turn = positive('turn', values.turn);
  const n = values.threads ? positive('threads', values.threads) : Math.max(2, Math.min(os.cpus().length, 4));
  const configs: Config[] = ['mobilenet_v2_100', 'mobilenet_v2_140'].flatMap((extractor) => [
    { extractor, path: 'stock' as const, threads: 1, warmup: 5, frames },
    { extractor, path: 'edgehead' as const, threads: 1, warmup: 5, frames },
    { extractor, path: 'edgehead' as const, threads: n, warmup: 5, frames },
    // A peer runtime on the same weights (bench/onnx/), its rows labelled "onnxruntime-web <version>".
    { extractor, path: 'ort' as const, threads: 1, warmup: 5, frames },
    { extractor, path: 'ort' as const, threads: n, warmup: 5, frames },
  ]);
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGB: Math.round(os.totalmem() / 1024 ** 3),
    arch: process.arch,
    node: process.versions.node,
    os: `${os.type()} ${os.release()}`,
    loadAvgBefore: os.loadavg().map(round2),
    date: new Date().toISOString(),
  };
  const noiseBefore = await cpuNoise(3);
  process.stderr.write(`${configs.length} configurations, ${frames} timed frames each, ${values.sequential ? 'one after the other' : `taking turns of ${turn} frames`}\n`);
  const main = await runConfigs(configs, turn, values.sequential);
  const noiseAfter = await cpuNoise(3);
  process.stderr.write('tfjs-backend-cpu, 5 frames...\n');
  const cpu = await runConfigs([{ extractor: 'mobilenet_v2_140', path: 'cpu', threads: 1, warmup: 1, frames: 5 }], 5, true);
  process.stderr.write('head-swap latency (5 and 1000 classes)...\n');
  const headSwap = JSON.parse(await runScript('head-swap.ts')) as { classes: Record<string, { median: number; p95: number; bytes: number }> };
  process.stderr.write('onnxruntime-web features against ours, sample frames...\n');
  const ortCheck = JSON.parse(await runScript('onnx/check.ts')) as OrtCheck;
  const agent: Awaited<ReturnType<typeof agentMemory>>[] = [];
  if (!values['no-agent']) {
    for (const t of [1, n]) {
      process.stderr.write(`agent memory, ${t} thread(s), 40 s...\n`);
      agent.push(await agentMemory(t, 40));
    }
  }
  const results = [...main.results, ...cpu.results];
  const find = (e: string, p: string, t: number) => results.find((r) => r.extractor === e && r.path === p && r.threadsRequested === t);
  const ratio = (e: string, a: [string, number], b: [string, number]) => {
    const x = find(e, ...a);
    const y = find(e, ...b);
    return x && y ? round2(x.extractMs.median / y.extractMs.median) : null;
  };
  const targets = [
    { target: `mobilenet_v2_100: stock x1 / edgehead x${n} >= 3.5`, value: ratio('mobilenet_v2_100', ['stock', 1], ['edgehead', n]), min: 3.5 },
    { target: `mobilenet_v2_140: stock x1 / edgehead x${n} >= 1.8`, value: ratio('mobilenet_v2_140', ['stock', 1], ['edgehead', n]), min: 1.8 },
    { target: 'mobilenet_v2_100: stock x1 / edgehead x1 >= 2', value: ratio('mobilenet_v2_100', ['stock', 1], ['edgehead', 1]), min: 2 },
    { target: `mobilenet_v2_100: edgehead x${n} extract <= 20 ms`, value: find('mobilenet_v2_100', 'edgehead', n)?.extractMs.median ?? null, max: 20 },
    { target: `mobilenet_v2_140: edgehead x${n} extract <= 35 ms`, value: find('mobilenet_v2_140', 'edgehead', n)?.extractMs.median ?? null, max: 35 },
    ...['mobilenet_v2_100', 'mobilenet_v2_140'].map((e) => {
      const r = find(e, 'edgehead', n);
      return { target: `${e}: 640x480 preprocessing / edgehead x${n} extract <= 0.25`, value: r ? round2(r.preprocess640x480Ms.median / r.extractMs.median) : null, max: 0.25 };
    }),
  ].map((t) => ({ ...t, met: t.value !== null && ('min' in t ? t.value >= t.min! : t.value <= t.max!) }));
  const peerRatios = ['mobilenet_v2_100', 'mobilenet_v2_140'].flatMap((e) => [1, n].map((t) => ({ extractor: e, threads: t, edgeheadOverOrt: ratio(e, ['edgehead', t], ['ort', t]) })));
  const report = {
    machine: { ...machine, loadAvgAfter: os.loadavg().map(round2), otherLoadCores: main.otherLoadCores, cpuNoiseBefore: noiseBefore, cpuNoiseAfter: noiseAfter, mode: values.sequential ? 'sequential' : `turns of ${turn} frames` },
    results,
    targets,
    headSwapMs: headSwap,
    peer: { runtime: ortCheck.runtime, features: ortCheck.models, extractMedianRatios: peerRatios },
    agentMemory: agent,
  };

  const rows = results.map((r) => [r.extractor, r.path === 'ort' ? r.executor : r.path, String(r.threads), `${r.extractMs.median} / ${r.extractMs.p95}`, `${r.decodeMs.median}`, `${r.resizeMs.median}`, `${r.headMs.median}`, `${r.preprocess640x480Ms.median}`, `${r.framesPerSec}`, `${r.coldStartMs}`, `${r.rssMB} / ${r.peakRssMB}`]);
  const head = ['extractor', 'path', 'thr', 'extract ms med/p95', 'decode', 'resize', 'head', '640x480 pre', 'fps', 'cold ms', 'rss/peak MB'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const out = [line(head), ...rows.map(line), ''];
  for (const t of targets) out.push(`${t.met ? 'met    ' : 'NOT met'}  ${t.target}: ${t.value ?? 'n/a'}`);
  for (const [e, c] of Object.entries(ortCheck.models)) out.push(`${e}: ${ortCheck.runtime} features vs edgehead, max abs diff ${c.maxAbsDiff.toExponential(2)} over ${c.frames} frames (largest feature ${round2(c.maxAbsFeature)}); extract median edgehead / ORT: ${peerRatios.filter((p) => p.extractor === e).map((p) => `x${p.threads} ${p.edgeheadOverOrt ?? 'n/a'}`).join(', ')}`);
  out.push(`head swap receipt->applied (signed, test vectors, fsync): ${Object.entries(headSwap.classes).map(([c, v]) => `${c} classes ${v.median} ms (p95 ${v.p95}, ${v.bytes} bytes)`).join('; ')}`);
  for (const a of agent) out.push('skipped' in a ? `agent memory: skipped (${a.skipped})` : `agent memory (node ${a.nodeFlags}), ${a.threads} thread(s): steady ${a.rssMB.steady} MB RSS, max ${a.rssMB.max} MB (${a.samples} s)`);
  out.push(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; load ${machine.loadAvgBefore.join(' ')} -> ${report.machine.loadAvgAfter.join(' ')}; other processes during the timed frames: ${main.otherLoadCores ?? 'n/a'} cores`);
  out.push(`CPU time lost by a busy thread per CPU (3 s, before / after): ${noiseBefore.lostPercent}% (longest gap ${noiseBefore.maxGapMs} ms) / ${noiseAfter.lostPercent}% (${noiseAfter.maxGapMs} ms)`);
  process.stdout.write(out.join('\n') + '\n');
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
