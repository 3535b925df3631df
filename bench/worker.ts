/**
 * One benchmark configuration in its own process (a process can initialise the WASM backend once), driven by
 * bench/run.ts over IPC so that configurations can take turns (see run.ts). Paths: "stock" = the model as a tfjs user
 * runs it (tfjs-layers / tfjs-converter), "edgehead" = our extractors (fused layers / fused graph executor), "cpu" =
 * tfjs-backend-cpu (running the stock model).
 *
 * Messages in:  {type: 'turn', frames: k} -> runs one untimed frame, k timed frames and three 640x480 preprocessings;
 *               {type: 'done'}            -> reports memory and exits.
 * Messages out: {type: 'ready', ...}, {type: 'turn', samples}, {type: 'done', ...}, {type: 'error', message}.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import jpeg from 'jpeg-js';
import type { ThreadsStatus } from '../agent/backend/adaptive-threads';
import { initBackend, threadsStatus } from '../agent/backend/wasm';
import { loadExtractor } from '../agent/extractors/load';
import { DenseHead } from '../agent/inference/dense-head';
import { DEMO_HEAD_PATH, readHeadFile } from '../protocol/head/files';
import { extractFeatures, type FeatureOptions, preprocessFrame } from '../agent/inference/features';
import { resourcePath } from '../base/paths';
import { warmUntilSteady } from './warmup';
import { doneMessage, runTurn } from './worker-common';

export interface WorkerArgs {
  extractor: string;
  /** "ort": onnxruntime-web on the same weights (bench/onnx/ort-worker-path.ts). */
  path: 'stock' | 'edgehead' | 'cpu' | 'ort';
  threads: number | 'auto';
  /**
   * Untimed frames right after start-up (JIT, XNNPACK operator creation, WASM memory growth, a thread pool settling):
   * at least this many, then blocks until the per-block median is steady (bench/warmup.ts). The ready message says
   * how many it took.
   */
  warmup: number;
}

export type Stage = 'decode' | 'resize' | 'extract' | 'head' | 'total';
export type Samples = Record<Stage | 'pre640', number[]>;

export type FromWorker =
  | { type: 'ready'; threads: number; threadsNote: string | null; simd: boolean; coldStartMs: number; featureDim: number; executor: string; warmupFrames: number; warmupBlockMedians: number[] }
  | { type: 'turn'; samples: Samples }
  | { type: 'done'; rssMB: number; peakRssMB: number; tensorsGrowth: number; cpuMs: number; threadsStatus: ThreadsStatus | null }
  | { type: 'error'; message: string };
export type ToWorker = { type: 'turn'; frames: number } | { type: 'done' };

function sampleFrames(): Uint8Array[] {
  const root = resourcePath('assets', 'samples');
  const out: Uint8Array[] = [];
  for (const c of fs.readdirSync(root).sort()) {
    const d = path.join(root, c);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const f of fs.readdirSync(d).sort()) if (/\.jpe?g$/i.test(f)) out.push(new Uint8Array(fs.readFileSync(path.join(d, f))));
  }
  return out;
}

/** A 640x480 JPEG (quality 90) made from a sample frame: the size of a typical webcam frame. */
function vgaJpeg(src: Uint8Array): Uint8Array {
  const img = jpeg.decode(src, { useTArray: true, formatAsRGBA: true });
  const rgba = tf.tidy(() => {
    const t = tf.cast(tf.tensor3d(img.data, [img.height, img.width, 4], 'int32'), 'float32') as tf.Tensor3D;
    return tf.round(tf.clipByValue(tf.image.resizeBilinear(t, [480, 640]), 0, 255)).dataSync();
  });
  return new Uint8Array(jpeg.encode({ data: Buffer.from(Uint8Array.from(rgba)), width: 640, height: 480 }, 90).data);
}

const send = (m: FromWorker) => process.send!(m);


async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]!) as WorkerArgs;
  if (a.path === 'ort') return (await import('./onnx/ort-worker-path')).main(a, { sampleFrames, vgaJpeg, send });
  const backend = await initBackend({ backend: a.path === 'cpu' ? 'cpu' : 'wasm', threads: a.threads });
  const extractor = await loadExtractor({ ref: a.extractor, fused: a.path === 'edgehead' });
  const demo = readHeadFile(DEMO_HEAD_PATH(), 1 << 24);
  const dim = extractor.info.featureDim;
  // The demo head's classes with a kernel of the extractor's width: the head's cost, whatever the extractor.
  const head = DenseHead.fromFile({ ...demo, manifest: { ...demo.manifest, featureDim: dim }, kernel: new Float32Array(dim * demo.manifest.classes.length), bias: demo.bias });
  const frames = sampleFrames();
  const vga = vgaJpeg(frames[0]!);
  const opts: FeatureOptions = { resize: 'squash', maxPixels: 40e6 };
  let next = 0;

  /** One frame as the agent runs it: bytes -> features -> head. */
  const frame = (samples?: Samples) => {
    const t0 = performance.now();
    const r = extractFeatures(extractor, frames[next++ % frames.length]!, opts);
    const t1 = performance.now();
    const f = tf.tensor2d(r.features, [1, r.features.length]);
    head.predict(f, 3);
    f.dispose();
    const t2 = performance.now();
    if (!samples) return;
    samples.decode.push(r.timings.decode);
    samples.resize.push(r.timings.resize);
    samples.extract.push(r.timings.extract);
    samples.head.push(t2 - t1);
    samples.total.push(t2 - t0);
  };
  /** decode + resize + normalise of a 640x480 JPEG through the agent's own path, without the extractor. */
  const preprocess640 = () => {
    const t0 = performance.now();
    const { input } = preprocessFrame(extractor.info, vga, opts);
    input.dataSync();
    input.dispose();
    return performance.now() - t0;
  };

  frame();
  const coldStartMs = performance.now(); // process start -> first prediction
  for (let i = 1; i < a.warmup; i++) frame();
  // tfjs-backend-cpu runs ~2 s a frame: its few frames are timed as they come.
  const warm = a.path === 'cpu' ? { frames: 0, blockMedians: [] } : await warmUntilSteady(() => {
    const s: Samples = { decode: [], resize: [], extract: [], head: [], total: [], pre640: [] };
    frame(s);
    return s.extract[0]!;
  });
  preprocess640();
  const tensors = tf.memory().numTensors;
  const ex = extractor.info.executor;
  const executor = ex ? `${ex.kind}${ex.retention ? ` (${ex.retention})` : ''}` : 'unknown';
  send({ type: 'ready', threads: backend.threads, threadsNote: backend.threadsNote ?? null, simd: backend.simd, coldStartMs, featureDim: dim, executor, warmupFrames: a.warmup + warm.frames, warmupBlockMedians: warm.blockMedians });

  process.on('message', async (m: ToWorker) => {
    try {
      if (m.type === 'turn') {
        send({ type: 'turn', samples: await runTurn(m.frames, frame, preprocess640) });
      } else {
        const result = doneMessage(tensors, threadsStatus() ?? null);
        head.dispose();
        extractor.dispose();
        process.send!(result, () => process.exit(0));
      }
    } catch (e) {
      send({ type: 'error', message: (e as Error).stack ?? String(e) });
    }
  });
}

main().catch((e) => {
  send({ type: 'error', message: (e as Error)?.stack ?? String(e) });
  process.exit(1);
});
