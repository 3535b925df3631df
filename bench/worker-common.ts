/** What every bench worker path (bench/worker.ts, bench/onnx/ort-worker-path.ts) and the ORT feature check do the same way. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import jpeg from 'jpeg-js';
import type { ThreadsStatus } from '../agent/backend/adaptive-threads';
import { DenseHead } from '../agent/inference/dense-head';
import { type FeatureOptions, preprocessFrame } from '../agent/inference/features';
import { resourcePath } from '../base/paths';
import { DEMO_HEAD_PATH, readHeadFile } from '../protocol/head/files';
import { warmUntilSteady } from './warmup';
import type { FromWorker, Samples, Stage } from './worker';

/** How every path preprocesses a frame (the agent's defaults for a camera frame). */
export const FEATURE_OPTIONS: FeatureOptions = { resize: 'squash', maxPixels: 40e6 };

export const send = (m: FromWorker) => process.send!(m);

/** The bundled sample frames (assets/samples/<class>/*.jpg), classes and files in name order. */
export function sampleFrames(): Uint8Array[] {
  const root = resourcePath('assets', 'samples');
  const out: Uint8Array[] = [];
  for (const c of fs.readdirSync(root).sort()) {
    const d = path.join(root, c);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const f of fs.readdirSync(d).sort()) if (/\.jpe?g$/i.test(f)) out.push(new Uint8Array(fs.readFileSync(path.join(d, f))));
  }
  return out;
}

/** A 640x480 JPEG made from a frame (needs the TF.js backend): what a webcam gives the agent. */
export function vgaJpeg(src: Uint8Array): Uint8Array {
  const img = jpeg.decode(src, { useTArray: true, formatAsRGBA: true });
  const rgba = tf.tidy(() => {
    const t = tf.cast(tf.tensor3d(img.data, [img.height, img.width, 4], 'int32'), 'float32') as tf.Tensor3D;
    return tf.round(tf.clipByValue(tf.image.resizeBilinear(t, [480, 640]), 0, 255)).dataSync();
  });
  return new Uint8Array(jpeg.encode({ data: Buffer.from(Uint8Array.from(rgba)), width: 640, height: 480 }, 90).data);
}

/** The demo head's classes with a kernel `featureDim` wide: the head's cost, whatever the extractor. */
export function demoHead(featureDim: number): DenseHead {
  const demo = readHeadFile(DEMO_HEAD_PATH(), 1 << 24);
  return DenseHead.fromFile({ ...demo, manifest: { ...demo.manifest, featureDim }, kernel: new Float32Array(featureDim * demo.manifest.classes.length), bias: demo.bias });
}

export const emptySamples = (): Samples => ({ decode: [], resize: [], extract: [], head: [], total: [], pre640: [] });

/** Adds one frame's stage times (ms) to `samples`. */
export function recordFrame(samples: Samples, stages: Record<Stage, number>): void {
  for (const k of Object.keys(stages) as Stage[]) samples[k].push(stages[k]);
}

/** decode + resize + normalise of a 640x480 JPEG through the agent's own path, without the extractor (ms). */
export function timePreprocess640(info: Parameters<typeof preprocessFrame>[0], vga: Uint8Array): number {
  const t0 = performance.now();
  const { input } = preprocessFrame(info, vga, FEATURE_OPTIONS);
  input.dataSync();
  input.dispose();
  return performance.now() - t0;
}

/** Untimed frames until their extract time is steady (bench/warmup.ts). */
export function warmFrames(frame: (samples: Samples) => unknown): ReturnType<typeof warmUntilSteady> {
  return warmUntilSteady(async () => {
    const s = emptySamples();
    await frame(s);
    return s.extract[0]!;
  });
}

/**
 * One turn: an untimed frame (the pool's threads were asleep while the other configurations ran), `frames` timed
 * frames, three 640x480 preprocessings.
 */
export async function runTurn(frames: number, frame: (samples?: Samples) => unknown, preprocess640: () => number): Promise<Samples> {
  const samples = emptySamples();
  await frame();
  for (let i = 0; i < frames; i++) await frame(samples);
  for (let i = 0; i < 3; i++) samples.pre640.push(preprocess640());
  return samples;
}

/** The 'done' message: memory, CPU time, tensors left over since `tensorsAtStart`, the thread policy's state. */
export function doneMessage(tensorsAtStart: number, threadsStatus: ThreadsStatus | null): Extract<FromWorker, { type: 'done' }> {
  const usage = process.resourceUsage();
  return {
    type: 'done',
    rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
    peakRssMB: Math.round(usage.maxRSS / 1024),
    tensorsGrowth: tf.memory().numTensors - tensorsAtStart,
    cpuMs: Math.round((usage.userCPUTime + usage.systemCPUTime) / 1000),
    threadsStatus,
  };
}
