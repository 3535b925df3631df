/** Assembling a head file (weights + the metadata that travels with them). */
import type { ExtractorInfo } from '../extractors/extractor';
import { type HeadFile, type HeadManifest, type TestVector } from './format';

export interface BuildHeadInput {
  id: string;
  version: number;
  classes: string[];
  extractor: Pick<ExtractorInfo, 'id' | 'fingerprint' | 'featureDim'>;
  kernel: Float32Array;
  bias: Float32Array;
  metrics?: Record<string, unknown>;
  testVectors?: TestVector[];
  createdAt?: Date;
}

export function buildHeadFile(input: BuildHeadInput): HeadFile {
  const c = input.classes.length;
  const manifest: HeadManifest = {
    id: input.id,
    version: input.version,
    classes: [...input.classes],
    featureDim: input.extractor.featureDim,
    extractor: { id: input.extractor.id, fingerprint: input.extractor.fingerprint },
    dtype: 'float32',
    tensors: { kernel: { shape: [input.extractor.featureDim, c] }, bias: { shape: [c] } },
    sha256: '',
    createdAt: (input.createdAt ?? new Date()).toISOString(),
    ...(input.metrics ? { metrics: input.metrics } : {}),
    ...(input.testVectors?.length ? { testVectors: input.testVectors } : {}),
  };
  return { manifest, kernel: input.kernel, bias: input.bias };
}

/** Logits computed in plain float64 JS: the reference a device compares its own computation against. */
export function referenceLogits(features: Float32Array, kernel: Float32Array, bias: Float32Array): number[] {
  const c = bias.length;
  const d = features.length;
  const out: number[] = Array.from(bias, Number);
  for (let i = 0; i < d; i++) {
    const f = features[i]!;
    if (f === 0) continue;
    for (let j = 0; j < c; j++) out[j]! += f * kernel[i * c + j]!;
  }
  return out;
}
