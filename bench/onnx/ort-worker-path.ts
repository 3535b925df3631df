/**
 * bench/worker.ts's "ort" path: the configuration's process runs onnxruntime-web on our weights (ort-extractor.ts),
 * with the same frames, the same preprocessing (the agent's preprocessFrame on the TF.js WASM backend, 1 thread) and
 * the same head as the other paths, speaking the same messages (worker.ts describes them).
 *
 * Its own loop because ORT's session.run is asynchronous while the TF.js paths' frame is synchronous; the stages are
 * cut as extractFeatures cuts them (extract = input tensor -> features read back, input read out of TF.js included).
 * Cold start excludes the ONNX export (a one-off conversion a user of ORT would do ahead of time).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { preprocessFrame } from '../../agent/inference/features';
import type { Samples, ToWorker, WorkerArgs } from '../worker';
import { demoHead, doneMessage, FEATURE_OPTIONS, recordFrame, runTurn, sampleFrames, send, timePreprocess640, vgaJpeg, warmFrames } from '../worker-common';
import { loadOrtExtractor, ORT_LABEL } from './ort-extractor';

export async function main(a: WorkerArgs): Promise<void> {
  // TF.js on one thread: it only preprocesses here, and a second thread pool would compete with ORT's.
  if (a.threads === 'auto') throw new Error('the ort path takes a thread count, not auto');
  await initBackend({ backend: 'wasm', threads: 1 });
  const peer = await loadOrtExtractor(a.extractor, a.threads);
  const dim = peer.info.featureDim;
  const head = demoHead(dim);
  const frames = sampleFrames();
  const vga = vgaJpeg(frames[0]!);
  let next = 0;

  const frame = async (samples?: Samples) => {
    const t0 = performance.now();
    const { input, timings } = preprocessFrame(peer.info, frames[next++ % frames.length]!, FEATURE_OPTIONS);
    const t1 = performance.now();
    let features: Float32Array;
    try {
      features = await peer.extract(input);
    } finally {
      input.dispose();
    }
    const t2 = performance.now();
    const f = tf.tensor2d(features, [1, features.length]);
    head.predict(f, 3);
    f.dispose();
    const t3 = performance.now();
    if (samples) recordFrame(samples, { ...timings, extract: t2 - t1, head: t3 - t2, total: t3 - t0 });
  };
  const preprocess640 = () => timePreprocess640(peer.info, vga);

  await frame();
  const coldStartMs = performance.now() - peer.onnx.exportMs;
  for (let i = 1; i < a.warmup; i++) await frame();
  const warm = await warmFrames(frame);
  preprocess640();
  const tensors = tf.memory().numTensors;
  const threadsNote = peer.threads === a.threads ? null : `onnxruntime-web fell back to ${peer.threads} thread(s)`;
  send({ type: 'ready', threads: peer.threads, threadsNote, simd: peer.simd, coldStartMs, featureDim: dim, executor: ORT_LABEL, warmupFrames: a.warmup + warm.frames, warmupBlockMedians: warm.blockMedians });

  // One message at a time: run.ts waits for each reply before it sends the next.
  process.on('message', (m: ToWorker) => {
    void (async () => {
      if (m.type === 'turn') {
        send({ type: 'turn', samples: await runTurn(m.frames, frame, preprocess640) });
      } else {
        const result = doneMessage(tensors, null /* a fixed ORT thread count: nothing adapts */);
        head.dispose();
        await peer.dispose();
        process.send!(result, () => process.exit(0));
      }
    })().catch((e) => send({ type: 'error', message: (e as Error).stack ?? String(e) }));
  });
}
