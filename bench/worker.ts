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
import * as tf from '@tensorflow/tfjs-core';
import type { ThreadsStatus } from '../agent/backend/adaptive-threads';
import { initBackend, threadsStatus } from '../agent/backend/wasm';
import { loadExtractor } from '../agent/extractors/load';
import { extractFeatures } from '../agent/inference/features';
import { demoHead, doneMessage, FEATURE_OPTIONS, recordFrame, runTurn, sampleFrames, send, timePreprocess640, vgaJpeg, warmFrames } from './worker-common';

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

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]!) as WorkerArgs;
  if (a.path === 'ort') return (await import('./onnx/ort-worker-path')).main(a);
  const backend = await initBackend({ backend: a.path === 'cpu' ? 'cpu' : 'wasm', threads: a.threads });
  const extractor = await loadExtractor({ ref: a.extractor, fused: a.path === 'edgehead' });
  const dim = extractor.info.featureDim;
  const head = demoHead(dim);
  const frames = sampleFrames();
  const vga = vgaJpeg(frames[0]!);
  let next = 0;

  /** One frame as the agent runs it: bytes -> features -> head. */
  const frame = (samples?: Samples) => {
    const t0 = performance.now();
    const r = extractFeatures(extractor, frames[next++ % frames.length]!, FEATURE_OPTIONS);
    const t1 = performance.now();
    const f = tf.tensor2d(r.features, [1, r.features.length]);
    head.predict(f, 3);
    f.dispose();
    const t2 = performance.now();
    if (samples) recordFrame(samples, { ...r.timings, head: t2 - t1, total: t2 - t0 });
  };
  const preprocess640 = () => timePreprocess640(extractor.info, vga);

  frame();
  const coldStartMs = performance.now(); // process start -> first prediction
  for (let i = 1; i < a.warmup; i++) frame();
  // tfjs-backend-cpu runs ~2 s a frame: its few frames are timed as they come.
  const warm = a.path === 'cpu' ? { frames: 0, blockMedians: [] } : await warmFrames(frame);
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
