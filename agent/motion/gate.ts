/**
 * The motion/change gate (motion.gate): before the extractor runs, a frame's tiny grayscale (./tiny-gray.ts) is
 * compared with the one of the last CLASSIFIED frame; below motion.threshold the frame is skipped (the frame loop
 * counts it as frames.unchanged and publishes nothing). The reference only moves when a frame is classified, so a
 * slow drift (light, a creeping shadow) adds up until it is classified, instead of hiding under the threshold frame
 * after frame.
 *
 * A frame is always classified when there is no reference yet, after reset() (a head swap: new labels, maybe a new
 * region), when the region changed, and once `maxAgeMs` has passed since the last classified frame: the prediction
 * filter's heartbeat (predictions.maxIntervalSec) is frame-driven, so a static scene must still be classified that
 * often for the heartbeat to carry a frame classified just now.
 */
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { Region } from '../../protocol/dataset';
import { meanAbsDiff, type TinyGray, tinyGray } from './tiny-gray';

const log = createLogger('motion');

export interface MotionGateOptions {
  /** Mean absolute difference (0..255) at or above which a frame counts as changed. */
  threshold: number;
  /** Side of the tiny grayscale image. */
  size: number;
  /** preprocess.maxPixels: the same refusal of oversized images as the classifier's. */
  maxPixels: number;
  /** Classify at least this often even when nothing changed (predictions.maxIntervalSec * 1000); 0 = never forced. */
  maxAgeMs: number;
  /** Clock (ms) for maxAgeMs. */
  now: () => number;
}

/** `classify: false` = skip the frame. `view` is handed back to classified() once the frame was classified. */
export interface GateVerdict {
  classify: boolean;
  /** The difference to the reference (Infinity when there is none or it cannot be compared). */
  difference: number;
  why: 'changed' | 'unchanged' | 'first' | 'stale' | 'unreadable';
  view: TinyGray | undefined;
}

export class MotionGate {
  private reference: TinyGray | undefined;
  private referenceAt = 0;

  constructor(private readonly opts: MotionGateOptions) {}

  /** Looks at a frame's bytes (nothing is remembered until classified()). */
  look(bytes: Uint8Array, region: Region | undefined): GateVerdict {
    let view: TinyGray;
    try {
      view = tinyGray(bytes, { size: this.opts.size, maxPixels: this.opts.maxPixels, region });
    } catch (e) {
      // the classifier decodes the same bytes next and reports the real error
      log.debug('tiny image failed; the frame is classified', { error: describeError(e) });
      return { classify: true, difference: Infinity, why: 'unreadable', view: undefined };
    }
    const ref = this.reference;
    if (!ref) return { classify: true, difference: Infinity, why: 'first', view };
    const difference = meanAbsDiff(view, ref);
    if (difference >= this.opts.threshold) return { classify: true, difference, why: 'changed', view };
    if (this.opts.maxAgeMs > 0 && this.opts.now() - this.referenceAt >= this.opts.maxAgeMs) return { classify: true, difference, why: 'stale', view };
    return { classify: false, difference, why: 'unchanged', view };
  }

  /** The frame of `verdict` was classified: it is the new reference. */
  classified(verdict: GateVerdict): void {
    if (!verdict.view) return;
    this.reference = verdict.view;
    this.referenceAt = this.opts.now();
  }

  /** Forget the reference: the next frame is classified (after a head swap). */
  reset(): void {
    this.reference = undefined;
  }
}
