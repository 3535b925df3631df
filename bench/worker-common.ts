/** What every bench worker path (bench/worker.ts, bench/onnx/ort-worker-path.ts) does the same way. */
import * as tf from '@tensorflow/tfjs-core';
import type { ThreadsStatus } from '../agent/backend/adaptive-threads';
import type { FromWorker, Samples } from './worker';

export const emptySamples = (): Samples => ({ decode: [], resize: [], extract: [], head: [], total: [], pre640: [] });

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
