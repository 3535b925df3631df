/** Test vectors: features with the logits the publisher computed, so a device can check its own arithmetic. */
import type { TestVector } from './format';

/** Logits in plain float64 JS: the publisher-side reference. */
export function referenceLogits(features: Float32Array, kernel: Float32Array, bias: Float32Array): number[] {
  const c = bias.length;
  const out: number[] = Array.from(bias, Number);
  for (let i = 0; i < features.length; i++) {
    const f = features[i]!;
    if (f === 0) continue;
    for (let j = 0; j < c; j++) out[j]! += f * kernel[i * c + j]!;
  }
  return out;
}

export function makeTestVectors(features: Float32Array[], kernel: Float32Array, bias: Float32Array): TestVector[] {
  return features.map((f) => ({ features: Array.from(f), logits: referenceLogits(f, kernel, bias) }));
}
