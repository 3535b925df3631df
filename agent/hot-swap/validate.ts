/**
 * Everything a head payload must pass before anything changes, in this order (the first failure is the reason):
 * size, magic/format, manifest schema, dtype/shapes, sha256, finite weights (decodeHead); feature dimension and
 * extractor fingerprint (the running extractor's); signature (when public keys are configured); duplicate (equal id,
 * version and sha256 as the active head: acknowledged, nothing changes); expiry (manifest.notAfter against the
 * device clock); version (newer than the active head of the same id, and newer than the highest version of that id
 * ever applied on this device: the high-water mark, high-water.ts), unless the operator allowed exactly this target;
 * test vectors reproduced on this device.
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
  /** The highest version of a head id ever applied on this device (high-water.ts); none: no downgrade check. */
  highest?: (id: string) => { version: number; at: string } | undefined;
  /** Whether the operator allowed this exact head despite the version rules (the `allow` command). */
  allowed?: (m: HeadManifest) => boolean;
  /** Device clock (ms since the epoch) for manifest.notAfter. */
  now?: number;
}

export type Verdict =
  | { kind: 'accept'; file: HeadFile; head: DenseHead; signedBy?: string; allowed?: boolean }
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
  if (active && active.id === m.id && m.version === active.version && m.sha256 === active.sha256) {
    return { kind: 'duplicate', reason: `head ${m.id} v${m.version} is already active`, file };
  }
  const now = ctx.now ?? Date.now();
  if (m.notAfter !== undefined && Date.parse(m.notAfter) < now) {
    return reject(`expired: head ${m.id} v${m.version} was valid until ${m.notAfter} (notAfter); this device's clock says ${new Date(now).toISOString()} (sign a fresh copy: edgehead head sign --not-after ...)`);
  }
  const allowed = ctx.allowed?.(m) ?? false;
  if (!allowed) {
    const allowHint = `; to go back to it, send {"cmd":"allow","args":{"id":${JSON.stringify(m.id)},"version":${m.version}}} first, or publish these weights as a new version`;
    if (active && active.id === m.id) {
      if (m.version === active.version) return reject(`version ${m.version} of head ${m.id} is already active with other weights: publish it as a new version`);
      if (m.version < active.version) return reject(`older version: head ${m.id} v${m.version} < active v${active.version}${allowHint}`);
    }
    const mark = ctx.highest?.(m.id);
    if (mark && m.version <= mark.version) {
      return reject(`downgrade: head ${m.id} v${m.version} <= v${mark.version}, the highest version of ${m.id} applied on this device (${mark.at})${allowHint}`);
    }
  }
  const head = DenseHead.fromFile(file);
  const tv = head.checkTestVectors(ctx.testVectorTolerance, ctx.testVectorTolerance);
  if (!tv.ok) {
    head.dispose();
    return reject(`test vectors not reproduced: ${tv.reason} (max |diff| ${tv.maxAbsDiff.toExponential(2)}, tolerance ${ctx.testVectorTolerance})`);
  }
  return { kind: 'accept', file, head, ...(signedBy ? { signedBy } : {}), ...(allowed ? { allowed } : {}) };
}
