import type { ExtractorInfo } from '../extractors/extractor';
import type { HeadManifest } from '../../protocol/head/format';
import { EdgeheadError } from '../../base/errors';

/** A head may only run on the extractor it was trained on: same feature dimension and same fingerprint. */
export function checkHeadCompatible(head: HeadManifest, extractor: ExtractorInfo): void {
  if (head.featureDim !== extractor.featureDim) {
    throw new EdgeheadError(
      'HEAD_MISMATCH',
      `head ${head.id} v${head.version} expects ${head.featureDim}-d features, extractor ${extractor.id} gives ${extractor.featureDim}-d`,
      { hint: `train the head on ${extractor.id} or run with --extractor ${head.extractor.id}` },
    );
  }
  if (head.extractor.fingerprint !== extractor.fingerprint) {
    throw new EdgeheadError(
      'HEAD_MISMATCH',
      `head ${head.id} v${head.version} was trained on extractor ${head.extractor.id} (fingerprint ${head.extractor.fingerprint.slice(0, 12)}…), not on ${extractor.id} (${extractor.fingerprint.slice(0, 12)}…)`,
      { hint: 'retrain the head with `edgehead head train` on this extractor' },
    );
  }
}
