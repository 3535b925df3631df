/**
 * The per-frame pipeline: bytes -> decode -> resize/scale -> extract -> head -> top-k, with per-stage timings.
 * The features of the last frame are kept (as plain floats) so that a new head can be warmed up and asked to
 * re-predict the last frame without recomputing the extractor.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Extractor } from '../extractors/extractor';
import type { DenseHead, Prediction } from './dense-head';
import { checkHeadCompatible } from './compat';
import { extractFeatures, type FeatureOptions } from './features';

export interface StageTimings {
  decode: number;
  resize: number;
  extract: number;
  head: number;
}

export interface Classification {
  predictions: Prediction[];
  timings: StageTimings;
  width: number;
  height: number;
}

export interface ClassifierOptions extends FeatureOptions {
  topK: number;
}

export class Classifier {
  private headRef: DenseHead;
  private last: Float32Array | undefined;

  constructor(
    readonly extractor: Extractor,
    head: DenseHead,
    private readonly opts: ClassifierOptions,
  ) {
    checkHeadCompatible(head.manifest, extractor.info);
    this.headRef = head;
  }

  get head(): DenseHead {
    return this.headRef;
  }

  /** Features of the last classified frame, if any. */
  get lastFeatures(): Float32Array | undefined {
    return this.last;
  }

  /** `head`: the head to use (a frame pins the head it started with; see Agent.frame). */
  classify(bytes: Uint8Array, head: DenseHead = this.headRef): Classification {
    const { features, timings, width, height } = extractFeatures(this.extractor, bytes, { ...this.opts, region: head.manifest.region ?? this.opts.region }); // the head's region wins: a frame finishes on the region of the head it started with
    this.last = features;
    const t0 = performance.now();
    const predictions = this.predictFeatures(features, head);
    return { predictions, timings: { ...timings, head: performance.now() - t0 }, width, height };
  }

  /** Predicts from given features, with the current head unless another is given (e.g. a candidate). */
  predictFeatures(features: Float32Array, head: DenseHead = this.headRef): Prediction[] {
    const t = tf.tensor2d(features, [1, features.length]);
    try {
      return head.predict(t, Math.min(this.opts.topK, head.numClasses))[0]!;
    } finally {
      t.dispose();
    }
  }

  /** Installs a new head between frames; returns the previous one (the caller disposes it). */
  swapHead(head: DenseHead): DenseHead {
    checkHeadCompatible(head.manifest, this.extractor.info);
    const old = this.headRef;
    this.headRef = head;
    return old;
  }
}
