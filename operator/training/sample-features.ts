/**
 * The features of a scanned data folder (dataset.ts): from each sample's side-file when it has one (no extraction),
 * otherwise from its image through the agent's own pipeline (decode, EXIF, resize, scale, extractor), optionally
 * with the features of the horizontally mirrored image for augmentation. The extractor is only opened by the caller
 * when some sample needs it (`needsExtractor`).
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { describeError, EdgeheadError } from '../../base/errors';
import type { Region } from '../../protocol/dataset';
import type { Extractor } from '../../agent/extractors/extractor';
import { type FeatureOptions, preprocessFrame } from '../../agent/inference/features';
import type { DatasetItem } from './dataset';
import { type ExpectedExtractor, readSampleFile } from './features-file';

export interface ImageFeatures {
  features: Float32Array;
  /** The mirrored image's features (when asked for). */
  mirror?: Float32Array;
}

export type ImageExtract = (file: string) => ImageFeatures;

export interface LoadedSample {
  item: DatasetItem;
  /** The file the features came from (side-file or image). */
  file: string;
  features: Float32Array;
  mirror?: Float32Array;
  /** The region the features were computed on (side-files record it); null = the whole frame. */
  region: Region | null;
}

export interface LoadOptions {
  expected: ExpectedExtractor;
  /** Image -> features; required when some item has no side-file. */
  extractImage?: ImageExtract;
  /** The region extractImage crops to (recorded on the image samples; null or absent: the whole frame). */
  imageRegion?: Region | null;
  onProgress?: (done: number, total: number) => void;
  /** An image that cannot be read or decoded is skipped (side-file problems are errors). */
  onSkip?: (file: string, reason: string) => void;
}

export function needsExtractor(items: readonly DatasetItem[]): boolean {
  return items.some((i) => !i.sideFile);
}

export function loadSamples(items: readonly DatasetItem[], opts: LoadOptions): LoadedSample[] {
  const out: LoadedSample[] = [];
  items.forEach((item, i) => {
    if (item.sideFile) {
      const { sample, features } = readSampleFile(item.sideFile, opts.expected);
      out.push({ item, file: item.sideFile, features, region: sample.region });
    } else {
      const file = item.image!;
      if (!opts.extractImage) throw new Error(`${file}: no extractor to compute its features`);
      try {
        const r = opts.extractImage(file);
        out.push({ item, file, features: r.features, ...(r.mirror ? { mirror: r.mirror } : {}), region: opts.imageRegion ?? null });
      } catch (e) {
        opts.onSkip?.(file, describeError(e));
      }
    }
    opts.onProgress?.(i + 1, items.length);
  });
  return out;
}

/** Image file -> features (and the mirror's), on the extractor's backend. Leaks no tensor. */
export function imageExtractor(extractor: Extractor, featureOptions: FeatureOptions, flip: boolean): ImageExtract {
  return (file) => {
    const { input } = preprocessFrame(extractor.info, new Uint8Array(fs.readFileSync(file)), featureOptions);
    try {
      const run = (t: tf.Tensor4D) => {
        const out = extractor.extract(t);
        try {
          return (out.dataSync() as Float32Array).slice();
        } finally {
          out.dispose();
        }
      };
      const features = run(input);
      if (!flip) return { features };
      const mirrored = tf.tidy(() => tf.image.flipLeftRight(input));
      try {
        return { features, mirror: run(mirrored) };
      } finally {
        mirrored.dispose();
      }
    } finally {
      input.dispose();
    }
  };
}

/** All loaded samples must share one region (null = the whole frame); returns it. Throws naming two that differ. */
export function commonRegion(samples: readonly LoadedSample[]): Region | null {
  if (samples.length === 0) return null;
  const first = samples[0]!;
  const key = (r: Region | null) => JSON.stringify(r);
  const other = samples.find((s) => key(s.region) !== key(first.region));
  if (other) {
    throw new EdgeheadError('BAD_ARGS', `samples were taken with different regions: ${first.file} ${key(first.region)}, ${other.file} ${key(other.region)}`, {
      hint: 'a head is trained for one region: move the samples of other regions (or the images without side-files) out of the class folders',
    });
  }
  return first.region;
}
