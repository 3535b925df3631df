/**
 * The collector: the frame loop hands it each classified frame (the features the classifier already computed, as
 * plain floats: no second extraction, no tensor kept); the policy (policy.ts) decides whether to keep it; a kept
 * frame becomes a Sample (protocol/dataset.ts) in the store (store.ts), with a downscaled JPEG when collect.images
 * is on. With images off, the frame's bytes are never encoded or written: features only.
 * A failure to keep a sample (a full disk, an undecodable frame) is logged and counted, never a failed frame.
 */
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { Config } from '../../config/schema';
import { COLLECT_IMAGE_MAX_BYTES } from '../../protocol/commands';
import { encodeFeatures, type Region, type Sample, type SampleReason } from '../../protocol/dataset';
import { encodeSnapshot } from '../frames/snapshot';
import { collectReason } from './policy';
import type { SampleStore } from './store';

const log = createLogger('collect');

/** JPEG quality of the kept images. */
const IMAGE_QUALITY = 85;

export type CollectSettings = Config['collect'];

/** A classified frame, as the frame loop hands it over. */
export interface CollectedFrame {
  /** The frame's bytes as captured (JPEG or PNG). */
  bytes: Uint8Array;
  capturedAt: number;
  run: number;
  frameId: number;
  features: Float32Array;
  top1: { label: string; score: number };
  head: { id: string; version: number };
  /** The region the frame was cropped to before extraction (the head's, else preprocess.region); null: the whole frame. */
  region: Region | null;
}

export interface CollectorDeps {
  cfg: CollectSettings;
  store: SampleStore;
  deviceId: string;
  extractor: { id: string; fingerprint: string };
  /** preprocess.maxPixels: the JPEG of a frame is decoded within it. */
  maxPixels: number;
}

export class Collector {
  private previousLabel: string | undefined;
  private seq = 0;
  /** Samples kept since the start, per reason. */
  readonly kept: Record<SampleReason, number> = { 'low-confidence': 0, 'label-change': 0, sample: 0 };
  /** Frames the policy kept that could not be stored. */
  failed = 0;

  constructor(private readonly deps: CollectorDeps) {}

  get store(): SampleStore {
    return this.deps.store;
  }

  /** Offers a classified frame; returns why it was kept, or null. Never throws. */
  offer(f: CollectedFrame): SampleReason | null {
    const { cfg } = this.deps;
    const reason = collectReason(cfg, { label: f.top1.label, score: f.top1.score, seq: ++this.seq }, this.previousLabel);
    this.previousLabel = f.top1.label;
    if (!reason) return null;
    try {
      const jpeg = cfg.images ? encodeSnapshot(f.bytes, { width: cfg.imageWidth, quality: IMAGE_QUALITY, maxBytes: COLLECT_IMAGE_MAX_BYTES }, this.deps.maxPixels).jpeg : undefined;
      this.deps.store.add(this.sample(f, reason), jpeg);
      this.kept[reason]++;
      return reason;
    } catch (e) {
      this.failed++;
      log.warn('sample not kept', { frame: f.frameId, error: describeError(e) });
      return null;
    }
  }

  private sample(f: CollectedFrame, reason: SampleReason): Sample {
    const { cfg } = this.deps;
    return {
      id: `${f.run}-${f.frameId}`,
      device: this.deps.deviceId,
      ts: new Date(f.capturedAt).toISOString(),
      reason,
      extractor: { id: this.deps.extractor.id, fingerprint: this.deps.extractor.fingerprint },
      featureDim: f.features.length,
      dtype: cfg.dtype,
      features: encodeFeatures(f.features, cfg.dtype),
      prediction: { label: f.top1.label, score: f.top1.score },
      head: { id: f.head.id, version: f.head.version },
      region: f.region,
      image: cfg.images,
    };
  }
}
