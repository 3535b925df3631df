/** Image bytes -> feature vector, timing each stage (decode, resize/scale, extract). Leaks no tensor.
 * JPEGs are decoded at the smallest DCT scale that still covers the extractor's input (see docs/preprocessing.md). */
import type * as tf from '@tensorflow/tfjs-core';
import { observeExtractMs } from '../backend/adaptive-threads';
import type { Extractor } from '../extractors/extractor';
import { decodeImage, type ResizeMode, toModelInput } from '../image';
import { decodeTargetSize } from '../image/preprocess';
import type { Region } from '../../protocol/dataset';

export interface FeatureOptions {
  resize: ResizeMode;
  maxPixels: number;
  /** Crop to this part of the upright frame before resizing (preprocess.region, or the active head's). */
  region?: Region;
}

export interface FeatureResult {
  features: Float32Array;
  /** The frame's size as stored in the file (it may have been decoded smaller). */
  width: number;
  height: number;
  timings: { decode: number; resize: number; extract: number };
}

/** Bytes -> the extractor's input tensor (the caller owns it), decoding a JPEG at the smallest DCT scale that still
 * covers the input. The preprocessing half of extractFeatures, also what `npm run bench` times. */
export function preprocessFrame(
  info: Pick<Extractor['info'], 'inputSize' | 'valueRange'>,
  bytes: Uint8Array,
  opts: FeatureOptions,
): { input: tf.Tensor4D; fileWidth: number; fileHeight: number; timings: { decode: number; resize: number } } {
  const t0 = performance.now();
  const [h, w] = info.inputSize;
  const targetSize = decodeTargetSize([h, w], opts.resize, opts.region);
  const img = decodeImage(bytes, { maxPixels: opts.maxPixels, targetSize });
  const t1 = performance.now();
  const input = toModelInput(img, { inputSize: info.inputSize, valueRange: info.valueRange, resize: opts.resize, ...(opts.region ? { region: opts.region } : {}) });
  const t2 = performance.now();
  return { input, fileWidth: img.fileWidth, fileHeight: img.fileHeight, timings: { decode: t1 - t0, resize: t2 - t1 } };
}

export function extractFeatures(extractor: Extractor, bytes: Uint8Array, opts: FeatureOptions): FeatureResult {
  const { input, fileWidth, fileHeight, timings } = preprocessFrame(extractor.info, bytes, opts);
  const t2 = performance.now();
  let features: Float32Array;
  try {
    const out = extractor.extract(input);
    try {
      features = out.dataSync() as Float32Array; // forces the (lazy) backend work into this stage
    } finally {
      out.dispose();
    }
  } finally {
    input.dispose();
  }
  const t3 = performance.now();
  observeExtractMs(t3 - t2); // backend.threads auto: the next frame may run on another thread count
  return { features, width: fileWidth, height: fileHeight, timings: { ...timings, extract: t3 - t2 } };
}
