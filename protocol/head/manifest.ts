/**
 * The head manifest: the JSON object that travels with a head's weights (protocol/head/format.ts). This file is its
 * single source: the TypeBox schema (every field described, so docs can be generated from it), the `HeadManifest`
 * type derived from it, and validateManifest(), which adds what a schema cannot say: a plain, bounded JSON tree,
 * distinct classes, real calendar dates, shapes that agree with featureDim and classes, test-vector lengths.
 *
 * Unknown keys (at any level) are accepted and preserved: a newer publisher may add fields an older agent ignores;
 * they are part of what is signed. So no object here sets additionalProperties: false.
 *
 * `errorMessage` on a schema node is how every failure of that value is described (protocol/validate.ts).
 */
import { type Static, Type } from '@sinclair/typebox';
import { EdgeheadError } from '../../base/errors';
import type { Region } from '../dataset';
import { ID_PATTERN, ID_RULE } from '../patterns';
import { schemaErrors } from '../validate';

/** Deepest nesting accepted anywhere in a manifest (metrics and unknown keys included). */
export const MAX_MANIFEST_DEPTH = 32;
/** Most problems collected before a stage gives up (the message shows the first three and a count). */
const MAX_ERRORS = 20;

const SHA256_PATTERN = '^[0-9a-f]{64}$';
const ISO_PATTERN = '^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$';
const ISO_RE = new RegExp(ISO_PATTERN);
const ISO_RULE = 'must be an ISO 8601 date-time with time zone (e.g. 2024-05-01T12:00:00Z)';

const count = (description: string) =>
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, errorMessage: 'must be an integer >= 1', description });
const dim = (description: string) =>
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, errorMessage: 'must be a non-negative integer', description });
const finiteNumbers = (description: string) =>
  Type.Array(Type.Number({ errorMessage: 'must be a finite number', description: 'A finite number.' }), {
    errorMessage: 'must be an array of numbers',
    description,
  });

export const TestVectorSchema = Type.Object(
  {
    features: finiteNumbers('Raw extractor output: featureDim numbers.'),
    logits: finiteNumbers('The logits (before softmax) the publisher computed for these features: one per class.'),
  },
  { description: 'A sample input with the logits the publisher computed, so a device can check its own arithmetic.' },
);

export const HeadSignatureSchema = Type.Object(
  {
    alg: Type.Literal('ed25519', { description: 'Signature algorithm; only "ed25519" (RFC 8032, pure).' }),
    keyId: Type.String({
      pattern: '^[0-9a-f]{16}$',
      errorMessage: 'must be 16 lowercase hex digits',
      description: 'First 16 lowercase hex digits of sha256 over the raw 32-byte Ed25519 public key.',
    }),
    value: Type.String({
      pattern: '^[A-Za-z0-9+/]{86}==$',
      errorMessage: 'must be the base64 of a 64-byte signature (88 chars)',
      description: 'Standard base64 (with padding) of the 64-byte signature over header, canonical unsigned manifest and weights.',
    }),
  },
  { description: 'Detached Ed25519 signature (docs/head-format.md, section 3).' },
);

export const HeadManifestSchema = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN, errorMessage: ID_RULE, description: 'Head name: 1 to 64 letters, digits, "_", "." or "-".' }),
    version: count('Publishers increase it for every new head with the same id.'),
    classes: Type.Array(
      Type.String({ minLength: 1, maxLength: 128, description: 'A label: non-empty, at most 128 characters.' }),
      {
        minItems: 2,
        errorMessage: 'must be an array of at least 2 labels',
        description: 'At least 2 distinct labels; classes[j] is logit j (column j of the kernel).',
      },
    ),
    featureDim: count('Length of the feature vector the head consumes (rows of the kernel).'),
    extractor: Type.Object(
      {
        id: Type.String({
          minLength: 1,
          maxLength: 256,
          errorMessage: 'must be a non-empty string of at most 256 chars',
          description: 'Extractor the head was trained on, e.g. "mobilenet_v2_1.0_224".',
        }),
        fingerprint: Type.String({
          pattern: SHA256_PATTERN,
          errorMessage: 'must be 64 lowercase hex digits (sha256)',
          description: 'sha256 (64 lowercase hex digits) of the extractor the head was trained on.',
        }),
      },
      { description: 'The feature extractor the head was trained on; a device refuses a head made for another.' },
    ),
    dtype: Type.Literal('float32', {
      errorMessage: 'must be "float32", the only dtype this agent supports',
      description: 'Weight type; "float32" is the only dtype of format version 1.',
    }),
    tensors: Type.Object(
      {
        kernel: Type.Object(
          {
            shape: Type.Tuple([dim('Rows: equals featureDim.'), dim('Columns: equals classes.length.')], {
              errorMessage: 'must be an array of 2 non-negative integers',
              description: 'Must equal [featureDim, classes.length].',
            }),
          },
          { description: 'The kernel, row-major: row i holds the weights of feature i for every class.' },
        ),
        bias: Type.Object(
          { shape: Type.Tuple([dim('Equals classes.length.')], { errorMessage: 'must be an array of 1 non-negative integer', description: 'Must equal [classes.length].' }) },
          { description: 'The bias, one value per class.' },
        ),
      },
      { description: 'Shapes of the weight tensors that follow the manifest.' },
    ),
    sha256: Type.String({
      pattern: SHA256_PATTERN,
      errorMessage: 'must be 64 lowercase hex digits',
      description: 'Lowercase hex sha256 of the weight bytes (kernel then bias, float32 LE). encodeHead() fills it in.',
    }),
    createdAt: Type.String({
      pattern: ISO_PATTERN,
      errorMessage: ISO_RULE,
      description: 'ISO 8601 date-time with a time zone, e.g. "2024-05-01T12:00:00.000Z" or "2024-05-01T12:00:00.123456+00:00".',
    }),
    notAfter: Type.Optional(
      Type.String({
        pattern: ISO_PATTERN,
        errorMessage: ISO_RULE,
        description:
          'Optional expiry, an ISO 8601 date-time with a time zone: a device whose clock is past it refuses the head ("expired"). Signed with the rest, so a very old signed payload cannot be replayed forever (docs/head-format.md, threat model). A head already active keeps running.',
      }),
    ),
    metrics: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { errorMessage: 'must be an object', description: 'Free-form training metrics (accuracy, confusion matrix, ...).' })),
    testVectors: Type.Optional(Type.Array(TestVectorSchema, { errorMessage: 'must be an array', description: 'Sample inputs the device can re-run on its backend.' })),
    shadow: Type.Optional(
      Type.Object(
        {
          frames: count('Frames to run beside the active head.'),
          autoPromoteAgreement: Type.Optional(
            Type.Number({
              minimum: 0,
              maximum: 1,
              errorMessage: 'must be a number in [0, 1]',
              description: 'Promote automatically when the top-1 agreement with the active head reaches this fraction.',
            }),
          ),
        },
        { description: 'Shadow-mode request: run beside the active head before taking over.' },
      ),
    ),
    region: Type.Optional(
      Type.Tuple(
        [
          Type.Number({ minimum: 0, maximum: 1, errorMessage: 'must be a number in [0, 1]', description: 'x: the left edge, a fraction of the frame width.' }),
          Type.Number({ minimum: 0, maximum: 1, errorMessage: 'must be a number in [0, 1]', description: 'y: the top edge, a fraction of the frame height.' }),
          Type.Number({ exclusiveMinimum: 0, maximum: 1, errorMessage: 'must be a number in (0, 1]', description: 'w: the width, a fraction of the frame width.' }),
          Type.Number({ exclusiveMinimum: 0, maximum: 1, errorMessage: 'must be a number in (0, 1]', description: 'h: the height, a fraction of the frame height.' }),
        ],
        {
          errorMessage: 'must be [x, y, w, h]: an array of 4 numbers',
          description:
            'Optional region of interest the head was trained on: [x, y, w, h] as fractions of the frame (x + w <= 1, y + h <= 1). While the head is active a device crops its frames to this region instead of its own preprocess.region (docs/preprocessing.md). The same shape as protocol/dataset.ts RegionSchema.',
        },
      ),
    ),
    signature: Type.Optional(HeadSignatureSchema),
  },
  { description: 'The JSON manifest of a head file. Unknown keys are accepted, preserved and signed.' },
);

export type HeadManifest = Static<typeof HeadManifestSchema>;
export type TestVector = Static<typeof TestVectorSchema>;
export type HeadSignature = Static<typeof HeadSignatureSchema>;

type Obj = Record<string, unknown>;

function bad(message: string): EdgeheadError {
  return new EdgeheadError('BAD_HEAD', message);
}

function fail(errors: string[]): never {
  const shown = errors.slice(0, 3).join('; ');
  const more = errors.length > 3 ? ` (+${errors.length - 3} more)` : '';
  throw bad(`invalid head manifest: ${shown}${more}`);
}

const isObject = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Whether a date-time that matches the pattern is also on the calendar (no Feb 30, no 24:00, no +24:00 offset). */
function isRealDate(s: string): boolean {
  const m = ISO_RE.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59) return false;
  if (d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return false;
  const tz = m[8]!;
  if (tz !== 'Z' && (Number(tz.slice(1, 3)) > 23 || Number(tz.slice(4, 6)) > 59)) return false;
  return !Number.isNaN(Date.parse(s));
}

/**
 * Checks every value is plain JSON (finite numbers, no undefined inside arrays), nesting is bounded and no key is
 * "__proto__" (so a manifest can never alter a prototype when copied with Object.assign elsewhere).
 */
function checkJsonTree(v: unknown, path: string, depth: number, errors: string[]): void {
  if (errors.length > MAX_ERRORS) return;
  if (depth > MAX_MANIFEST_DEPTH) {
    errors.push(`${path}: nested deeper than ${MAX_MANIFEST_DEPTH} levels`);
    return;
  }
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) errors.push(`${path}: must be a finite number`);
    return;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (v[i] === undefined) errors.push(`${path}[${i}]: undefined is not JSON`);
      else checkJsonTree(v[i], `${path}[${i}]`, depth + 1, errors);
    }
    return;
  }
  if (typeof v === 'object') {
    if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) {
      errors.push(`${path}: must be a plain object`);
      return;
    }
    for (const k of Object.keys(v)) {
      if (k === '__proto__') errors.push(`${path}: key "__proto__" is not allowed`);
      const child = (v as Obj)[k];
      if (child !== undefined) checkJsonTree(child, `${path}.${k}`, depth + 1, errors);
    }
    return;
  }
  errors.push(`${path}: a ${typeof v} is not JSON`);
}

/**
 * What is wrong with a region whose four numbers are each in range but which reaches past the frame (x + w > 1 or
 * y + h > 1); undefined when it fits, or is not a 4-number array (the schema reports that). Shared with the config's
 * preprocess.region check. A hair of float rounding (1e-9) is tolerated: 0.7 + 0.3 is 1.0000000000000002.
 */
export function regionOutside(region: unknown): string | undefined {
  if (!Array.isArray(region) || region.length !== 4 || !region.every((v) => typeof v === 'number')) return undefined;
  const [x, y, w, h] = region as Region;
  const over: string[] = [];
  if (x + w > 1 + 1e-9) over.push(`x + w = ${+(x + w).toFixed(6)}`);
  if (y + h > 1 + 1e-9) over.push(`y + h = ${+(y + h).toFixed(6)}`);
  return over.length ? `must lie inside the frame: ${over.join(' and ')} > 1 (got ${JSON.stringify(region)})` : undefined;
}

/** The field checks a schema cannot express on one value: distinct classes, dates the calendar has, a region inside
 * the frame. */
function fieldErrors(m: Obj): string[] {
  const errors: string[] = [];
  if (Array.isArray(m.classes)) {
    const seen = new Map<string, number>();
    for (let i = 0; i < m.classes.length && errors.length < MAX_ERRORS; i++) {
      const c: unknown = m.classes[i];
      if (typeof c !== 'string') continue;
      const first = seen.get(c);
      if (first === undefined) seen.set(c, i);
      else errors.push(`manifest.classes[${i}]: duplicate of classes[${first}] ${JSON.stringify(c)}`);
    }
  }
  for (const key of ['createdAt', 'notAfter'] as const) {
    const v = m[key];
    if (typeof v === 'string' && ISO_RE.test(v) && !isRealDate(v)) errors.push(`manifest.${key}: ${ISO_RULE} (got ${JSON.stringify(v)})`);
  }
  const region = regionOutside(m.region);
  if (region) errors.push(`manifest.region: ${region}`);
  return errors;
}

/**
 * Validates a manifest in stages, throwing (BAD_HEAD, one line) at the first failing stage: plain-JSON tree; field
 * schema (every error of the stage reported at once, each naming its path); shapes vs featureDim and classes;
 * test-vector sizes.
 */
export function validateManifest(m: unknown): asserts m is HeadManifest {
  if (!isObject(m)) throw bad(`manifest must be a JSON object, got ${m === null ? 'null' : Array.isArray(m) ? 'an array' : typeof m}`);
  const errors: string[] = [];
  checkJsonTree(m, 'manifest', 0, errors);
  if (errors.length > 0) fail(errors);

  errors.push(...schemaErrors(HeadManifestSchema, m, 'manifest', MAX_ERRORS), ...fieldErrors(m));
  if (errors.length > 0) fail(errors);
  const manifest = m as HeadManifest;

  const c = manifest.classes.length;
  const f = manifest.featureDim;
  const ks = manifest.tensors.kernel.shape;
  const bs = manifest.tensors.bias.shape;
  if (ks[0] !== f || ks[1] !== c || bs[0] !== c) {
    throw bad(
      `shape mismatch: tensors.kernel.shape [${ks.join(', ')}] and tensors.bias.shape [${bs.join(', ')}] must be ` +
        `[${f}, ${c}] and [${c}] (featureDim ${f}, ${c} classes)`,
    );
  }

  (manifest.testVectors ?? []).forEach((tv, i) => {
    if (tv.features.length !== f) errors.push(`manifest.testVectors[${i}].features: expected ${f} numbers, got ${tv.features.length}`);
    if (tv.logits.length !== c) errors.push(`manifest.testVectors[${i}].logits: expected ${c} numbers, got ${tv.logits.length}`);
  });
  if (errors.length > 0) fail(errors);
}
