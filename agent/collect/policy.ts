/**
 * The collect policy (collect.*): whether a classified frame is kept as a training sample, and why. Pure: the
 * caller passes the frame's top-1, the previous frame's top-1 label and the frame's sequence number.
 * Reasons are checked in this order: 'low-confidence' (the head is unsure: the most useful samples to label),
 * 'label-change' (the scene changed), 'sample' (every Nth frame, a plain picture of what the camera sees).
 */
import type { Config } from '../../config/schema';
import type { SampleReason } from '../../protocol/dataset';

export type CollectPolicySettings = Pick<Config['collect'], 'belowScore' | 'onLabelChange' | 'sampleEvery'>;

export interface PolicyFrame {
  label: string;
  score: number;
  /** 1 for the first classified frame since the start, then 2, 3, ... */
  seq: number;
}

/** The reason to keep the frame, or null to drop it. `previousLabel`: the last classified frame's top-1 (none at the start). */
export function collectReason(p: CollectPolicySettings, frame: PolicyFrame, previousLabel: string | undefined): SampleReason | null {
  if (p.belowScore > 0 && frame.score < p.belowScore) return 'low-confidence';
  if (p.onLabelChange && previousLabel !== undefined && frame.label !== previousLabel) return 'label-change';
  if (p.sampleEvery > 0 && frame.seq % p.sampleEvery === 0) return 'sample';
  return null;
}
