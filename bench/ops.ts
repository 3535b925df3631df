/**
 * `npm run bench -- ops [--model ID]... [--frames N] [--threads N] [--json FILE]`: where a frame's time goes, op by
 * op (issue 17, part 3). Not a test.
 *
 * For each catalogue model: the fused executor (fused-layers.ts / fused-graph.ts) on the WASM backend, warmed up until
 * steady (bench/warmup.ts), then
 * N frames through its observed runner (step-runner.ts: same plan and memory policy, each step.run timed; TF.js WASM
 * kernels run synchronously, so the wall time around a step is its op's time), alternating with N plain predict()
 * frames. One tf.profile()d frame tells which kernels each step runs and their shapes: the op kind and its MACs
 * (conv = outH*outW*cOut*cIn*kH*kW, depthwise = outH*outW*c*kH*kW). "Outside the ops" = the observed predict minus
 * the sum of its steps (dispatch, tf.tidy, the runner's bookkeeping, freeing values). Then frames of the stock path
 * (tfjs-layers / tfjs-converter) alternating with plain ones, for their ratio. A plain 1x1 conv runs once per timed
 * frame as the reference rate (the shared VM's speed drifts by tens of %; ratios hold). Markdown on stdout, progress
 * on stderr.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../agent/backend/wasm';
import { catalogueEntry } from '../agent/extractors/catalogue';
import { buildFusedGraphModel } from '../agent/extractors/fused-graph';
import { buildFusedLayersModel } from '../agent/extractors/fused-layers';
import { loadExtractor } from '../agent/extractors/load';
import { readModelFolder } from '../agent/extractors/model-files';
import type { StepExecutor } from '../agent/extractors/step-runner';
import { resourcePath } from '../base/paths';
import { progressBar } from '../base/progress';
import { median } from '../base/stats';
import { cpuNoise } from './machine';
import { WARMUP_MAX, warmUntilSteady } from './warmup';

const STOCK_FRAMES = 20;

const USAGE = `usage: npm run bench -- ops [--model ID]... [--frames N] [--threads N] [--json FILE]
  --model ID    mobilenet_v2_100 and/or mobilenet_v2_140 (default both)
  --frames N    timed frames per model (default 40; as many plain predict() frames alternate with them)
  --threads N   WASM backend threads (default 1)
  --json FILE   also write the results (every step) as JSON
See docs/BENCHMARKS.md.`;

const round2 = (x: number) => Math.round(x * 100) / 100;

/** A kernel as tf.profile() records it. */
export type KernelCall = { name: string; inputShapes: (number[] | null)[]; outputShapes: number[][] };

const CONV = new Set(['Conv2D', 'FusedConv2D']);
const DEPTHWISE = new Set(['DepthwiseConv2dNative', 'FusedDepthwiseConv2D']);
const OTHER: Record<string, string> = { Add: 'add', AddV2: 'add', Multiply: 'mul', Sub: 'sub', RealDiv: 'div', Mean: 'mean (global pool)', AvgPool: 'average pool', MaxPool: 'max pool', Reshape: 'reshape', Squeeze: 'reshape', PadV2: 'pad' };
/** Kernels named only when a step runs nothing else (tf.avgPool casts its result, tf.clone runs Identity). */
const QUIET = new Set(['Identity', 'Cast']);

/** A step's op kind and multiply-accumulates, from the kernels it ran (`laterDepthwise`: a depthwise conv follows in the plan). */
export function classify(kernels: KernelCall[], laterDepthwise = true): { kind: string; macs: number } {
  const k = kernels.find((c) => CONV.has(c.name) || DEPTHWISE.has(c.name));
  const padded = kernels.some((c) => c.name === 'PadV2') ? ' + pad' : '';
  if (!k) {
    const loud = kernels.filter((c) => !QUIET.has(c.name));
    const names = [...new Set((loud.length ? loud : kernels).map((c) => OTHER[c.name] ?? c.name))];
    return { kind: names.join(' + ') || 'no kernel', macs: 0 };
  }
  const [, inH] = k.inputShapes[0]!;
  const [kh, kw, cin, mult] = k.inputShapes[1]!;
  const [, oh, ow, cout] = k.outputShapes[0]!;
  const s = Math.max(1, Math.round(inH! / oh!));
  if (DEPTHWISE.has(k.name)) return { kind: `depthwise ${kh}x${kw} s${s}${padded}`, macs: oh! * ow! * cin! * mult! * kh! * kw! };
  const macs = oh! * ow! * cout! * cin! * kh! * kw!;
  if (kh !== 1 || kw !== 1) return { kind: `conv ${kh}x${kw} s${s}${padded}`, macs };
  const role = cout! < cin! ? 'project' : !laterDepthwise ? `final ${cin}->${cout}` : cout! > cin! ? 'expand' : 'same width';
  return { kind: `pointwise 1x1 ${role}${padded}`, macs };
}

/** Kinds of all steps: pointwise convs after the last depthwise one are "final". */
export function classifySteps(kernelsPerStep: KernelCall[][]): { kind: string; macs: number }[] {
  let lastDw = -1;
  kernelsPerStep.forEach((ks, i) => ks.some((c) => DEPTHWISE.has(c.name)) && (lastDw = i));
  return kernelsPerStep.map((ks, i) => classify(ks, i < lastDw));
}

export interface KindRow {
  kind: string;
  count: number;
  ms: number;
  share: number;
  mmac: number;
  gmacs: number | null;
  /** The slowest and fastest single step of the kind, GMAC/s (from each step's median time). */
  stepGmacs: [number, number] | null;
}

/** Per op kind: count, median per frame of the kind's summed step times, share of `frameMs`, MACs and GMAC/s. */
export function kindRows(kinds: { kind: string; macs: number }[], stepMs: number[][], frameMs: number): KindRow[] {
  const byKind = new Map<string, number[]>();
  kinds.forEach((k, i) => byKind.set(k.kind, [...(byKind.get(k.kind) ?? []), i]));
  const stepMedian = kinds.map((_, i) => median(stepMs.map((f) => f[i]!)));
  return [...byKind]
    .map(([kind, idx]) => {
      const ms = median(stepMs.map((f) => idx.reduce((a, i) => a + f[i]!, 0)));
      const macs = idx.reduce((a, i) => a + kinds[i]!.macs, 0);
      const per = idx.map((i) => kinds[i]!.macs / stepMedian[i]! / 1e6);
      return {
        kind,
        count: idx.length,
        ms: round2(ms),
        share: round2((100 * ms) / frameMs),
        mmac: round2(macs / 1e6),
        gmacs: macs ? round2(macs / ms / 1e6) : null,
        stepGmacs: macs ? ([round2(Math.min(...per)), round2(Math.max(...per))] as [number, number]) : null,
      };
    })
    .sort((a, b) => b.ms - a.ms);
}

async function profileModel(id: string, frames: number, threads: number, ref: () => number) {
  const entry = catalogueEntry(id)!;
  const folder = readModelFolder(resourcePath('models', id));
  const ex: StepExecutor = entry.format === 'graph' ? buildFusedGraphModel(folder) : buildFusedLayersModel(folder);
  const x = tf.randomUniform([1, ...entry.inputSize, 3], 0, 1, 'float32', 17) as tf.Tensor4D;
  let cur: number[] = [];
  const names: string[] = [];
  const observed = ex.observed((i, step, ms) => void ((cur[i] = ms), (names[i] = step.out)));
  const bar = progressBar(`ops ${id} x${threads}`, 2 * (WARMUP_MAX + frames + STOCK_FRAMES + 5));
  let done = 0;
  const time = (f: (x: tf.Tensor4D) => tf.Tensor): [number, number] => {
    const [t0, y] = [performance.now(), f(x)];
    const t1 = performance.now();
    y.dataSync();
    const t2 = performance.now();
    y.dispose();
    bar.update(++done);
    return [t1 - t0, t2 - t1];
  };
  try {
    // Pairs of observed and plain frames until the plain ones are steady (bench/warmup.ts; 2 threads take a while).
    const warm = await warmUntilSteady(() => (time(observed), time(ex.predict)[0]));
    done = 2 * WARMUP_MAX;
    // Kernels per step: the profile's kernel count after each step marks the step's end.
    const ends: number[] = [];
    const active = tf.engine().state.activeProfile;
    const probe = ex.observed((i) => (ends[i] = active.kernels.length));
    const profile = await tf.profile(() => void tf.dispose(probe(x)));
    const perStep = ends.map((end, i) => profile.kernels.slice(i ? ends[i - 1]! : 0, end) as KernelCall[]);
    const kinds = classifySteps(perStep);
    const [stepMs, observedMs, plainMs, readMs, refMs]: [number[][], number[], number[], number[], number[]] = [[], [], [], [], []];
    for (let i = 0; i < frames; i++) {
      cur = [];
      const [p, r] = time(observed);
      stepMs.push(cur);
      observedMs.push(p);
      readMs.push(r);
      plainMs.push(time(ex.predict)[0]);
      refMs.push(ref());
    }
    const outside = median(stepMs.map((f, i) => observedMs[i]! - f.reduce((a, b) => a + b, 0)));
    const frameMs = median(observedMs);
    const rows = kindRows(kinds, stepMs, frameMs);
    const steps = kinds.map((k, i) => ({ index: i, out: names[i], ...k, ms: Math.round(median(stepMs.map((f) => f[i]!)) * 1e4) / 1e4 }));
    // The stock path (tfjs-layers / tfjs-converter) for reference, alternating with plain frames (their ratio).
    const stock = await loadExtractor({ ref: id, fused: false });
    const [stockMs, besideMs]: number[][] = [[], []];
    try {
      for (let i = 0; i < 5 + STOCK_FRAMES; i++) {
        const [t, p] = [time(stock.extract)[0], time(ex.predict)[0]];
        if (i < 5) continue;
        stockMs.push(t);
        besideMs.push(p);
      }
    } finally {
      stock.dispose();
    }
    const macs = kinds.reduce((a, k) => a + k.macs, 0);
    return {
      model: id,
      executor: `${entry.format === 'graph' ? 'fused-graph' : 'fused-layers'} (${ex.retention})`,
      warmup: warm,
      stepsPerFrame: kinds.length,
      mmac: round2(macs / 1e6),
      observedMs: round2(frameMs),
      plainMs: round2(median(plainMs)),
      sumOfStepsMs: round2(median(stepMs.map((f) => f.reduce((a, b) => a + b, 0)))),
      outsideMs: round2(outside),
      readMs: round2(median(readMs)),
      refGmacs: round2(REF_MACS / median(refMs) / 1e6),
      stockMs: round2(median(stockMs)),
      stockOverPlain: round2(median(stockMs) / median(besideMs)),
      rows,
      steps,
    };
  } finally {
    bar.stop();
    ex.dispose();
    x.dispose();
  }
}

type Report = Awaited<ReturnType<typeof profileModel>> & { tensorsLeaked: number };

/** The reference: a plain 1x1 conv [1,56,56,256] -> 256 (a 3136x256x256 GEMM, 205.5 MMAC), as fast as this backend
 * multiplies; run once per timed frame, so that machine drifts hit it and the model alike. Returns its ms per call. */
function gemmReference(): { run(): number; dispose(): void } {
  const [x, f] = [tf.randomUniform([1, 56, 56, 256], 0, 1, 'float32', 1) as tf.Tensor4D, tf.randomUniform([1, 1, 256, 256], 0, 1, 'float32', 2) as tf.Tensor4D];
  const run = () => {
    const t0 = performance.now();
    tf.conv2d(x, f, 1, 'valid').dispose();
    return performance.now() - t0;
  };
  return { run, dispose: () => tf.dispose([x, f]) };
}
const REF_MACS = 3136 * 256 * 256;

export function markdown(r: Report): string {
  const ofRef = (g: number | null) => (g ? `${Math.round((100 * g) / r.refGmacs)}%` : '');
  return [
    `**${r.model}**, ${r.executor}, ${r.stepsPerFrame} steps, ${r.mmac} MMAC/frame, steady after ${r.warmup.frames} warm-up pairs (observed + plain): observed predict ${r.observedMs} ms, plain predict ${r.plainMs} ms, stock ${r.stockMs} ms (stock / plain ${r.stockOverPlain}x, from ${STOCK_FRAMES} frames of each alternating)`,
    '',
    '| op kind | count | ms / frame | share | MMAC | GMAC/s | of the reference | single steps, GMAC/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...r.rows.map((k) => `| ${k.kind} | ${k.count} | ${k.ms} | ${k.share}% | ${k.mmac || ''} | ${k.gmacs ?? ''} | ${ofRef(k.gmacs)} | ${k.stepGmacs ? `${k.stepGmacs[0]} - ${k.stepGmacs[1]}` : ''} |`),
    `| **sum of the ops** | ${r.stepsPerFrame} | ${r.sumOfStepsMs} | ${round2((100 * r.sumOfStepsMs) / r.observedMs)}% | ${r.mmac} | ${round2(r.mmac / r.sumOfStepsMs)} | ${ofRef(r.mmac / r.sumOfStepsMs)} | |`,
    `| **outside the ops** (dispatch, tidy, bookkeeping) | | ${r.outsideMs} | ${round2((100 * r.outsideMs) / r.observedMs)}% | | | | |`,
    `| reading the output (dataSync, after predict) | | ${r.readMs} | | | | | |`,
    `| reference 1x1 conv [1,56,56,256] -> 256 | | | | ${round2(REF_MACS / 1e6)} | ${r.refGmacs} | 100% | |`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) return void process.stdout.write(USAGE + '\n');
  const fail = (message: string): never => {
    process.stderr.write(`bench ops: ${message}\n${USAGE}\n`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { model: { type: 'string', multiple: true }, frames: { type: 'string', default: '40' }, threads: { type: 'string', default: '1' }, json: { type: 'string' } } }));
  } catch (e) {
    return fail((e as Error).message);
  }
  const int = (name: string, v: string) => (Number.isInteger(Number(v)) && Number(v) >= 1 ? Number(v) : fail(`--${name} must be a positive integer (got ${v})`));
  const frames = int('frames', values.frames);
  const threads = int('threads', values.threads);
  const models = values.model ?? ['mobilenet_v2_100', 'mobilenet_v2_140'];
  for (const m of models) if (!catalogueEntry(m)) fail(`unknown model ${m}`);
  const backend = await initBackend({ backend: 'wasm', threads });
  const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.versions.node, date: new Date().toISOString(), loadAvgBefore: os.loadavg().map(round2) };
  const noise = [await cpuNoise(1)];
  const ref = gemmReference();
  const reports: Report[] = [];
  for (const m of models) {
    const before = tf.memory().numTensors;
    const r = await profileModel(m, frames, backend.threads, ref.run);
    reports.push({ ...r, tensorsLeaked: tf.memory().numTensors - before });
  }
  ref.dispose();
  noise.push(await cpuNoise(1));
  const after = os.loadavg().map(round2);
  const report = { machine: { ...machine, loadAvgAfter: after, cpuNoise: noise }, threads: backend.threads, simd: backend.simd, frames, models: reports };
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
  const note =
    `WASM backend, ${backend.threads} thread(s), SIMD ${backend.simd ? 'on' : 'off'}; medians over ${frames} frames (each: one observed and one plain predict); ${machine.cpu} x${machine.cores}, Node ${machine.node}, ${machine.date}, load average ${machine.loadAvgBefore[0]} -> ${after[0]}, CPU time lost to others ${noise.map((n) => `${n.lostPercent}%`).join(' -> ')} (bench/machine.ts cpuNoise).\n` +
    `"of the reference": GMAC/s over those of a plain 1x1 conv [1,56,56,256] -> 256 (a 3136x256x256 GEMM) run once per timed frame.`;
  process.stdout.write(`${reports.map(markdown).join('\n\n')}\n\n${note}\n`);
  const leaks = reports.filter((r) => r.tensorsLeaked !== 0);
  if (leaks.length) process.stderr.write(`bench ops: tensors leaked: ${leaks.map((r) => `${r.model} ${r.tensorsLeaked}`).join(', ')}\n`);
}
