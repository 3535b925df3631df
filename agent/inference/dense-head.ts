/**
 * The classification head at inference time: logits = features · kernel + bias, then softmax and top-k.
 * Holds two tensors (kernel, bias) until dispose(); every call runs inside tf.tidy and leaks nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EdgeheadError } from '../../base/errors';
import type { HeadFile, HeadManifest } from '../../protocol/head/format';

export interface Prediction {
  label: string;
  score: number;
}

export type TestVectorResult = { ok: true; count: number; maxAbsDiff: number } | { ok: false; reason: string; maxAbsDiff: number };

export class DenseHead {
  readonly manifest: HeadManifest;
  readonly classes: string[];
  readonly featureDim: number;
  private kernel: tf.Tensor2D | null;
  private bias: tf.Tensor1D | null;

  private constructor(manifest: HeadManifest, kernel: tf.Tensor2D, bias: tf.Tensor1D) {
    this.manifest = manifest;
    this.classes = [...manifest.classes];
    this.featureDim = manifest.featureDim;
    this.kernel = kernel;
    this.bias = bias;
  }

  /** Builds the head from a (decoded, validated) head file. The weights are copied into tensors. */
  static fromFile(head: HeadFile): DenseHead {
    const { manifest, kernel, bias } = head;
    const c = manifest.classes.length;
    if (kernel.length !== manifest.featureDim * c || bias.length !== c) {
      throw new EdgeheadError('BAD_HEAD', `head weights do not match the manifest: kernel has ${kernel.length} values for [${manifest.featureDim}, ${c}], bias ${bias.length} for [${c}]`);
    }
    // tf.keep: survive even if the caller builds the head inside a tf.tidy.
    const k = tf.keep(tf.tensor2d(kernel, [manifest.featureDim, c], 'float32'));
    const b = tf.keep(tf.tensor1d(bias, 'float32'));
    return new DenseHead(manifest, k, b);
  }

  get numClasses(): number {
    return this.classes.length;
  }

  private weights(): [tf.Tensor2D, tf.Tensor1D] {
    if (this.kernel === null || this.bias === null) throw new Error(`DenseHead ${this.manifest.id} used after dispose()`);
    return [this.kernel, this.bias];
  }

  private checkFeatures(features: tf.Tensor): void {
    if (features.rank !== 2) {
      throw new EdgeheadError('HEAD_MISMATCH', `head expects a [n, ${this.featureDim}] feature batch, got shape [${features.shape.join(', ')}]`);
    }
    const d = features.shape[1];
    if (d !== this.featureDim) {
      throw new EdgeheadError('HEAD_MISMATCH', `head expects ${this.featureDim}-d features, extractor gives ${d}-d`, {
        hint: `head "${this.manifest.id}" was trained on extractor "${this.manifest.extractor.id}"`,
      });
    }
  }

  /** [n, featureDim] -> [n, classes]. The caller owns (disposes) the result. */
  logits(features: tf.Tensor2D): tf.Tensor2D {
    const [kernel, bias] = this.weights();
    this.checkFeatures(features);
    return tf.tidy(() => tf.add(tf.matMul(features, kernel), bias) as tf.Tensor2D);
  }

  /** Softmax probabilities, top-k per row sorted by descending score (ties: lower class index first). */
  predict(features: tf.Tensor2D, topK: number): Prediction[][] {
    this.weights();
    this.checkFeatures(features);
    if (!Number.isInteger(topK) || topK < 1) throw new EdgeheadError('BAD_ARGS', `topK must be an integer >= 1, got ${topK}`);
    const n = features.shape[0];
    if (n === 0) return [];
    const c = this.numClasses;
    const probs = tf.tidy(() => tf.softmax(this.logits(features)).dataSync() as Float32Array);
    const k = Math.min(topK, c);
    const out: Prediction[][] = [];
    const order = new Array<number>(c);
    for (let r = 0; r < n; r++) {
      const row = probs.subarray(r * c, (r + 1) * c);
      for (let i = 0; i < c; i++) order[i] = i;
      order.sort((a, b) => row[b]! - row[a]! || a - b);
      out.push(order.slice(0, k).map((i) => ({ label: this.classes[i]!, score: row[i]! })));
    }
    return out;
  }

  /**
   * Runs manifest.testVectors through this head on the current backend and compares with the publisher's logits:
   * |got - want| <= atol + rtol * |want| for every logit. A head without test vectors passes with count 0.
   */
  checkTestVectors(atol = 1e-3, rtol = 1e-3): TestVectorResult {
    const tvs = this.manifest.testVectors ?? [];
    if (tvs.length === 0) return { ok: true, count: 0, maxAbsDiff: 0 };
    const flat = new Float32Array(tvs.length * this.featureDim);
    tvs.forEach((tv, i) => flat.set(tv.features, i * this.featureDim));
    const got = tf.tidy(() => this.logits(tf.tensor2d(flat, [tvs.length, this.featureDim])).dataSync() as Float32Array);
    let maxAbsDiff = 0;
    let firstBad: string | null = null;
    tvs.forEach((tv, i) => {
      tv.logits.forEach((want, j) => {
        const diff = Math.abs(got[i * this.numClasses + j]! - want);
        maxAbsDiff = Math.max(maxAbsDiff, diff);
        if (firstBad === null && !(diff <= atol + rtol * Math.abs(want))) {
          firstBad = `test vector ${i}, logit ${j} (${this.classes[j]}): expected ${want}, got ${got[i * this.numClasses + j]}`;
        }
      });
    });
    return firstBad === null ? { ok: true, count: tvs.length, maxAbsDiff } : { ok: false, reason: firstBad, maxAbsDiff };
  }

  dispose(): void {
    this.kernel?.dispose();
    this.bias?.dispose();
    this.kernel = null;
    this.bias = null;
  }
}
