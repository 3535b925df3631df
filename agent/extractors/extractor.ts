/**
 * A frozen image feature extractor: [n, h, w, 3] float32 images (already scaled into valueRange) -> [n, featureDim].
 */
import * as tf from '@tensorflow/tfjs-core';
import { canonicalJson } from '../../base/canonical-json';
import { sha256Hex } from '../../base/hash';
import { createLogger, type Logger } from '../../base/log';
import type { ModelFolder } from './model-files';
import type { Retention } from './step-runner';
import { CachedSource, type ExecutorCache, RecordingSource, WeightCacheMismatch, type WeightSource } from './weight-cache';

const log = createLogger('extractor');

export interface ExtractorInfo {
  /** Catalogue id, or a name derived from the path/URL. */
  id: string;
  /** Where it came from: "catalogue", a folder path, or a URL. */
  source: string;
  format: 'graph' | 'layers';
  inputSize: [number, number];
  featureDim: number;
  valueRange: [number, number];
  /** sha256 over topology, weight specs, output node and weight bytes. Heads are bound to it. */
  fingerprint: string;
  paramCount: number;
  outputNode?: string;
  /** What runs the model: edgehead's executors (fused-layers.ts, fused-graph.ts, with their memory policy, see
   * step-runner.ts) or the TF.js libraries as shipped. Not part of the fingerprint: all give the same features. */
  executor?: { kind: 'fused-layers' | 'fused-graph' | 'tfjs-layers' | 'tfjs-converter'; retention?: Retention };
}

export interface Extractor {
  readonly info: ExtractorInfo;
  /** Synchronous; the caller owns (and disposes) the returned tensor. */
  extract(input: tf.Tensor4D): tf.Tensor2D;
  /** Runs the warm-up frame the load skipped (weight cache hit), unless a frame already ran or it was disposed.
   * For a long-running caller with idle time before its first frame (the agent, waiting for its first tick). */
  warmUp?(): void;
  dispose(): void;
}

export function fingerprintOf(folder: ModelFolder, outputNode?: string): string {
  const { json, weightData } = folder;
  const described = canonicalJson({
    format: json.format ?? null,
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    outputNode: outputNode ?? null,
  });
  return sha256Hex('edgehead-extractor-v1\n', described, '\n', weightData);
}

export function paramCountOf(folder: ModelFolder): number {
  return folder.json.weightsManifest
    .flatMap((g) => g.weights)
    .reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
}

export type PartialInfo = Omit<ExtractorInfo, 'featureDim' | 'inputSize'> & { inputSize?: [number, number] };

/** Input size of a model whose input shape leaves height and width dynamic (TF Hub models often do). */
export const DEFAULT_INPUT_SIZE: readonly [number, number] = [224, 224];

/** [n, h, w, c] with known h and w -> [h, w]; undefined when they are dynamic (-1 or null). */
export function staticInputSize(shape: readonly (number | null)[] | undefined): [number, number] | undefined {
  if (!shape || shape.length !== 4) return undefined;
  const [, h, w] = shape;
  return h && w && h > 0 && w > 0 ? [h, w] : undefined;
}

/**
 * Wraps a model's forward function as an Extractor: flattens the output to [n, d] and, unless the feature dimension
 * is already known (`featureDim`, from the weight cache), runs one warm-up batch of zeros to learn it. The input size
 * is info.inputSize, else the model's static input shape [n, h, w, c], else DEFAULT_INPUT_SIZE.
 *
 * Without the warm-up the first real frame does its work (creating the backend's operators, compiling the WASM
 * functions they run): it is slower, but the time to the first result is shorter by a whole frame.
 */
export function makeExtractor(
  info: PartialInfo,
  inputShape: readonly (number | null)[] | undefined,
  forward: (x: tf.Tensor4D) => tf.Tensor,
  dispose: () => void,
  featureDim?: number,
): Extractor {
  const inputSize = info.inputSize ?? staticInputSize(inputShape) ?? [...DEFAULT_INPUT_SIZE];
  let ran = false;
  let disposed = false;
  const extract = (input: tf.Tensor4D): tf.Tensor2D => {
    ran = true;
    return tf.tidy(() => tf.reshape(forward(input), [input.shape[0], -1]) as tf.Tensor2D);
  };
  const zeros = () => tf.tidy(() => extract(tf.zeros([1, inputSize[0], inputSize[1], 3])).shape[1]);
  const t0 = performance.now();
  const dim = featureDim ?? zeros();
  if (featureDim === undefined) log.debug('warm-up frame', { id: info.id, ms: Math.round((performance.now() - t0) * 10) / 10 });
  const warmUp = () => {
    if (ran || disposed) return;
    const t = performance.now();
    try {
      zeros();
    } catch (e) {
      // The first real frame meets the same failure, where the caller handles frame errors.
      log.debug('deferred warm-up frame failed', { id: info.id, error: (e as Error).message });
      return;
    }
    log.debug('warm-up frame (deferred)', { id: info.id, ms: Math.round((performance.now() - t) * 10) / 10 });
  };
  return {
    info: { ...info, inputSize, featureDim: dim },
    extract,
    warmUp,
    dispose: () => {
      disposed = true;
      dispose();
    },
  };
}

/**
 * Edgehead's executor for a model (`fused`), else the TF.js library as shipped (`stock`): when `opts.fused` is false,
 * when the executor does not cover the model (an `unsupported` error, logged at debug level), or when it fails (a
 * warning; results are never computed by a partial plan).
 */
export async function fusedOrStock(
  opts: { fused?: boolean; source: string; log: Logger; executor: string; library: string; unsupported: new (message: string) => Error },
  fused: () => Extractor,
  stock: () => Promise<Extractor>,
): Promise<Extractor> {
  if (opts.fused !== false) {
    try {
      return fused();
    } catch (e) {
      const fields = { model: opts.source, reason: (e as Error).message };
      if (e instanceof opts.unsupported) opts.log.debug(`${opts.executor} does not cover this model; running it on ${opts.library}`, fields);
      else {
        opts.log.warn(`${opts.executor} failed; running the model on ${opts.library}`, fields);
        opts.log.debug(`${opts.executor} failure`, { stack: (e as Error).stack });
      }
    }
  }
  return stock();
}

/**
 * A fused executor's build through the weight cache (weight-cache.ts): on a hit, from the cached tensors (with
 * `tensors`) and without the warm-up; on a miss, or when the cached tensors do not fit the plan, from the model files,
 * and then saved. `build` gets the weight source (undefined: from the files) and the known feature dimension, if any.
 *
 * `tensors: false` caches only the model's fingerprint and feature dimension: for weights the executor uses as they
 * are decoded (graph models), reading 4-byte floats back costs more than dequantizing the 1-byte values of the model
 * files (measured in docs/BENCHMARKS.md, "Cold start").
 */
export function withWeightCache(
  cache: ExecutorCache | undefined,
  log: Logger,
  tensors: boolean,
  build: (source: WeightSource | undefined, featureDim?: number) => Extractor,
): Extractor {
  if (!cache) return build(undefined);
  if (cache.hit) {
    try {
      return build(tensors ? new CachedSource(cache.hit.tensors) : undefined, cache.hit.info.featureDim);
    } catch (e) {
      if (!(e instanceof WeightCacheMismatch)) throw e;
      log.debug('weight cache entry does not fit the plan; rebuilding it', { file: cache.file, reason: e.message });
    }
  }
  const recording = tensors ? new RecordingSource() : undefined;
  const extractor = build(recording);
  const { fingerprint, paramCount, featureDim } = extractor.info;
  cache.save(recording?.recorded ?? new Map(), { fingerprint, paramCount, featureDim });
  return extractor;
}
