/**
 * Runs a planned list of steps (one TF.js op, often a fused one, each) over named values: the inner loop of the
 * fused executors (fused-layers.ts, fused-graph.ts).
 *
 * Memory policy ("retention"):
 * - 'lastUse': a value is freed as soon as its last reader has run. Smallest WASM heap.
 * - 'frame': every value lives until the pass ends (tf.tidy frees them together). The heap holds all activations of
 *   one frame (MobileNetV2 1.0 at 224x224: +17.6 MB), but every op gets the same input and output addresses frame
 *   after frame. With 'lastUse', other allocations between frames (preprocessing, the head) shift the free lists, and
 *   13 of the 64 steps of MobileNetV2 1.0 saw different addresses on every other frame; the threaded backend then
 *   redoes per-operator set-up work (XNNPACK caches it per buffer address) on its serial path. Measured on the 2-vCPU
 *   VM, alternating both policies in one process: 2 threads 13.0 vs 14.1 ms (1.0), 20.5 vs 23.0 ms (1.4); 1 thread
 *   'lastUse' was ~0.5 ms faster. Hence the default: 'frame' when the WASM backend runs more than one thread.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo } from '../backend/wasm';

export interface Step {
  out: string;
  inputs: string[];
  run(xs: tf.Tensor[]): tf.Tensor;
}

export type Retention = 'lastUse' | 'frame';

/** Called after each step of an observed pass (bench/ops.ts): its index in the plan, the step, its inputs and
 * output, and the wall time of step.run in ms (TF.js WASM kernels run synchronously). */
export type StepObserver = (index: number, step: Step, ms: number, xs: tf.Tensor[], y: tf.Tensor) => void;

/** 'frame' when the active backend is WASM with more than one thread, else 'lastUse' (see above). */
function defaultRetention(): Retention {
  const info = backendInfo();
  return info && info.backend === 'wasm' && info.threads > 1 ? 'frame' : 'lastUse';
}

/** x -> the value named `output`. Runs in tf.tidy; the caller owns the result. The input is never freed. */
function stepRunner(steps: Step[], input: string, output: string, retention: Retention): (x: tf.Tensor) => tf.Tensor {
  // How often each value is read (plus once for the output): with 'lastUse' a value is freed after its last reader.
  const reads = new Map<string, number>([[output, 1]]);
  for (const s of steps) for (const i of s.inputs) reads.set(i, (reads.get(i) ?? 0) + 1);
  return (x) =>
    tf.tidy(() => {
      const env = new Map<string, tf.Tensor>([[input, x]]);
      const left = new Map(reads);
      for (const step of steps) {
        const xs = step.inputs.map((n) => env.get(n)!);
        let y = step.run(xs);
        if (xs.includes(y)) y = tf.clone(y);
        if (retention === 'lastUse') {
          for (const n of step.inputs) {
            const k = left.get(n)! - 1;
            left.set(n, k);
            if (k === 0 && n !== input) {
              env.get(n)!.dispose();
              env.delete(n);
            }
          }
        }
        env.set(step.out, y);
      }
      return env.get(output)!;
    });
}

export interface StepExecutor {
  /** When intermediate values are freed. */
  readonly retention: Retention;
  /** [n, h, w, c] -> the output value. Runs in tf.tidy; the caller owns the result. */
  predict(x: tf.Tensor4D): tf.Tensor;
  /** Frees the weights the steps hold (once). */
  dispose(): void;
  /** predict() that reports every step to `observe` (profiling): the same plan and memory policy over wrapped
   * steps; predict() itself is unchanged. */
  observed(observe: StepObserver): (x: tf.Tensor4D) => tf.Tensor;
}

/** predict() over planned steps, and dispose() of the weights they were planned with. */
export function stepExecutor(steps: Step[], input: string, output: string, weights: tf.Tensor[], retention = defaultRetention()): StepExecutor {
  const forward = stepRunner(steps, input, output, retention);
  let disposed = false;
  return {
    retention,
    predict: (x) => forward(x),
    observed: (observe) => {
      const timed = steps.map((s, i): Step => ({
        ...s,
        run: (xs) => {
          const t0 = performance.now();
          const y = s.run(xs);
          observe(i, s, performance.now() - t0, xs, y);
          return y;
        },
      }));
      return stepRunner(timed, input, output, retention);
    },
    dispose: () => {
      if (disposed) return;
      disposed = true;
      tf.dispose(weights);
    },
  };
}
