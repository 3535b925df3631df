/**
 * Everything a head payload must pass before anything changes, in this order (the first failure is the reason):
 * size, magic/format, manifest schema, dtype/shapes, sha256, finite weights (decodeHead); feature dimension and
 * extractor fingerprint (the running extractor's); signature (when public keys are configured); version (newer than
 * the active head of the same id; equal version + same sha256 = duplicate); test vectors reproduced on this device.
 */
import type { ExtractorInfo } from '../extractors/extractor';
import { headIncompatibility } from '../inference/compat';
import { DenseHead } from '../inference/dense-head';
import { decodeHead, type HeadFile, type HeadManifest } from '../../protocol/head/format';
import { verifyHead } from '../../protocol/head/signature';
import { describeError } from '../../base/errors';

export interface ValidationContext {
  maxBytes: number;
  extractor: Pick<ExtractorInfo, 'id' | 'fingerprint' | 'featureDim'>;
  publicKeys: string[];
  active: HeadManifest | undefined;
  testVectorTolerance: number;
}

export type Verdict =
  | { kind: 'accept'; file: HeadFile; head: DenseHead; signedBy?: string }
  | { kind: 'duplicate'; reason: string; file: HeadFile }
  | { kind: 'reject'; reason: string; file?: HeadFile };

export function validatePayload(bytes: Uint8Array, ctx: ValidationContext): Verdict {
  let file: HeadFile;
  try {
    file = decodeHead(bytes, { maxBytes: ctx.maxBytes });
  } catch (e) {
    return { kind: 'reject', reason: describeError(e) };
  }
  const m = file.manifest;
  const reject = (reason: string): Verdict => ({ kind: 'reject', reason, file });
  const mismatch = headIncompatibility(m, ctx.extractor);
  if (mismatch) return reject(mismatch.reason);
  let signedBy: string | undefined;
  if (ctx.publicKeys.length > 0) {
    const v = verifyHead(file, ctx.publicKeys);
    if (!v.ok) return reject(`signature: ${v.reason}`);
    signedBy = v.keyId;
  }
  const active = ctx.active;
  if (active && active.id === m.id) {
    if (m.version === active.version && m.sha256 === active.sha256) {
      return { kind: 'duplicate', reason: `head ${m.id} v${m.version} is already active`, file };
    }
    if (m.version === active.version) return reject(`version ${m.version} of head ${m.id} is already active with other weights: publish it as a new version`);
    if (m.version < active.version) return reject(`older version: head ${m.id} v${m.version} < active v${active.version}`);
  }
  const head = DenseHead.fromFile(file);
  const tv = head.checkTestVectors(ctx.testVectorTolerance, ctx.testVectorTolerance);
  if (!tv.ok) {
    head.dispose();
    return reject(`test vectors not reproduced: ${tv.reason} (max |diff| ${tv.maxAbsDiff.toExponential(2)}, tolerance ${ctx.testVectorTolerance})`);
  }
  return { kind: 'accept', file, head, ...(signedBy ? { signedBy } : {}) };
}
