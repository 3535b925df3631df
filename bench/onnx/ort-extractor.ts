/**
 * A catalogue model run by onnxruntime-web (WASM, SIMD, threads) on the weights our extractor runs: the model folder
 * is exported to ONNX (export.ts) and given to an ORT session. A bench peer, not an agent path.
 *
 * How ORT-web loads in Node: `onnxruntime-web` resolves to dist/ort.node.min.js, which finds no script URL under Node
 * and dynamic-imports "./ort-wasm-simd-threaded.mjs" relative to itself (its dist folder); that Emscripten module reads
 * ort-wasm-simd-threaded.wasm beside it with fs (located from import.meta.url). There is only one build, SIMD and
 * threads. Threads: numThreads > 1 needs SharedArrayBuffer, which Node has, so ORT starts Emscripten pthreads as
 * worker_threads (the same .mjs) and its intra-op pool uses numThreads - 1 of them plus the calling thread; ORT falls
 * back to 1 thread (and sets env.wasm.numThreads to 1) where that is not possible, which `threads` reports.
 */
import * as ort from 'onnxruntime-web';
import type * as tf from '@tensorflow/tfjs-core';
import { catalogueEntry } from '../../agent/extractors/catalogue';
import { readModelFolder } from '../../agent/extractors/model-files';
import { resourcePath } from '../../base/paths';
import { exportOnnx, type OnnxExport } from './export';

/** How the bench labels this runtime's rows. */
export const ORT_LABEL = `onnxruntime-web ${ort.env.versions.web}`;

export interface OrtExtractor {
  readonly info: { id: string; inputSize: [number, number]; valueRange: [number, number]; featureDim: number };
  /** Threads ORT runs with (after its own fallback), and whether its SIMD build is in use. */
  readonly threads: number;
  readonly simd: boolean;
  /** The ONNX export (ops, bytes) and the time it took. */
  readonly onnx: OnnxExport & { exportMs: number };
  /** [1, h, w, 3] NHWC input (as our extractor takes it) -> features. The caller keeps and disposes `input`. */
  extract(input: tf.Tensor4D): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/**
 * Exports a catalogue model and opens an ORT session on it. ORT initialises its WASM module once per process, with
 * the thread count of the first call: later calls must ask for the same count. Needs a TF.js backend (the export
 * decodes the weights with TF.js).
 */
export async function loadOrtExtractor(id: string, threads: number): Promise<OrtExtractor> {
  const entry = catalogueEntry(id);
  if (!entry) throw new Error(`unknown catalogue extractor ${id}`);
  const t0 = performance.now();
  const onnx = exportOnnx(readModelFolder(resourcePath('models', id)), { inputSize: entry.inputSize, name: id });
  const exportMs = performance.now() - t0;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true; // its only build is SIMD: ORT throws at init where SIMD is missing, never runs without
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(onnx.bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  return {
    info: { id, inputSize: entry.inputSize, valueRange: entry.valueRange, featureDim: onnx.featureDim },
    threads: ort.env.wasm.numThreads ?? 1,
    simd: true,
    onnx: { ...onnx, exportMs },
    async extract(input) {
      const x = new ort.Tensor('float32', input.dataSync() as Float32Array, input.shape);
      const out = await session.run({ [onnx.input]: x });
      const y = out[onnx.output]!;
      const data = y.data as Float32Array;
      for (const t of Object.values(out)) t.dispose();
      return data;
    },
    dispose: () => session.release(),
  };
}
