/**
 * A head may only run on the extractor it was trained on: same feature dimension and same fingerprint (different
 * features, even at the same dimension, would give confidently wrong answers). One check and one wording for the
 * classifier (which throws) and the hot-swap validation (which rejects the payload with the reason).
 */
import type { ExtractorInfo } from '../extractors/extractor';
import type { HeadManifest } from '../../protocol/head/format';
import { EdgeheadError } from '../../base/errors';

type HeadFacts = Pick<HeadManifest, 'featureDim' | 'extractor'>;
type ExtractorFacts = Pick<ExtractorInfo, 'id' | 'fingerprint' | 'featureDim'>;

/** Why `head` cannot run on `extractor` (and what to do about it), or undefined when it can. */
export function headIncompatibility(head: HeadFacts, extractor: ExtractorFacts): { reason: string; hint: string } | undefined {
  if (head.featureDim !== extractor.featureDim) {
    return {
      reason: `wrong feature dimension: head expects ${head.featureDim}-d features, extractor ${extractor.id} gives ${extractor.featureDim}-d`,
      hint: `train the head on ${extractor.id} or run with --extractor ${head.extractor.id}`,
    };
  }
  if (head.extractor.fingerprint !== extractor.fingerprint) {
    return {
      reason: `wrong extractor fingerprint: head was trained on ${head.extractor.id} (${head.extractor.fingerprint.slice(0, 12)}…), this device runs ${extractor.id} (${extractor.fingerprint.slice(0, 12)}…)`,
      hint: 'retrain the head with `edgehead head train` on this extractor',
    };
  }
  return undefined;
}

/** Throws HEAD_MISMATCH when `head` cannot run on `extractor`. */
export function checkHeadCompatible(head: HeadFacts, extractor: ExtractorFacts): void {
  const why = headIncompatibility(head, extractor);
  if (why) throw new EdgeheadError('HEAD_MISMATCH', why.reason, { hint: why.hint });
}
