/**
 * The data loop's wire and file format (issue 14): a collected sample. The device keeps samples under
 * <stateDir>/collect/ (agent/collect/), sends them over the cmd topic in bounded chunks (the collect-fetch /
 * collect-ack commands, protocol/commands.ts), `edgehead dataset pull` writes each as a JSON side-file
 * `<sample id>.json` (plus `<sample id>.jpg` when images are collected), and `edgehead head train` reads the
 * side-files' features without re-extracting. One schema for all of them.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ID_PATTERN, ID_RULE } from './patterns';

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', patternMessage: 'must be 64 lowercase hex digits' });

export const SAMPLE_REASONS = ['low-confidence', 'label-change', 'sample'] as const;
export type SampleReason = (typeof SAMPLE_REASONS)[number];

/** A region of the frame: [x, y, w, h] as fractions of the width and height (0..1), x + w <= 1, y + h <= 1. */
export const RegionSchema = Type.Tuple([Type.Number({ minimum: 0, maximum: 1 }), Type.Number({ minimum: 0, maximum: 1 }), Type.Number({ exclusiveMinimum: 0, maximum: 1 }), Type.Number({ exclusiveMinimum: 0, maximum: 1 })], {
  description: '[x, y, w, h] as fractions of the frame (0..1); the frame is cropped to it before resizing',
});
export type Region = Static<typeof RegionSchema>;

export const SampleSchema = Type.Object(
  {
    /** Unique on the device: `<run>-<frameId>`; pulled files are named `<device>-<id>`. */
    id: Type.String({ pattern: '^[0-9]+-[0-9]+$', description: '<run>-<frameId>' }),
    device: Type.String({ pattern: ID_PATTERN, patternMessage: ID_RULE }),
    ts: Type.String({ description: 'capture time, ISO 8601 UTC' }),
    reason: Type.Union(SAMPLE_REASONS.map((r) => Type.Literal(r))),
    extractor: Type.Object({ id: Type.String(), fingerprint: Sha256 }),
    featureDim: Type.Integer({ minimum: 1 }),
    dtype: Type.Union([Type.Literal('float16'), Type.Literal('float32')]),
    /** Little-endian float16 or float32 values, standard base64. */
    features: Type.String({ description: 'base64 of featureDim little-endian values of dtype' }),
    prediction: Type.Object({ label: Type.String(), score: Type.Number({ minimum: 0, maximum: 1 }) }),
    head: Type.Object({ id: Type.String(), version: Type.Integer({ minimum: 1 }) }),
    region: Type.Union([RegionSchema, Type.Null()]),
    /** Whether a JPEG of the frame was kept (collect.images). */
    image: Type.Boolean(),
  },
  { description: 'one collected sample: the features (and optionally a JPEG) of a frame, with its prediction' },
);
export type Sample = Static<typeof SampleSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Features <-> base64 (float16: IEEE 754 half precision, round to nearest even; enough for features in training)

function toHalf(x: number): number {
  const f32 = new Float32Array([x]);
  const u = new Uint32Array(f32.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> 0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry into the exponent is still correct
  return sign | half;
}

function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Features as the base64 of little-endian `dtype` values. */
export function encodeFeatures(values: ArrayLike<number>, dtype: Sample['dtype']): string {
  const n = values.length;
  const buf = Buffer.alloc(n * (dtype === 'float16' ? 2 : 4));
  for (let i = 0; i < n; i++) {
    if (dtype === 'float16') buf.writeUInt16LE(toHalf(values[i]!), i * 2);
    else buf.writeFloatLE(values[i]!, i * 4);
  }
  return buf.toString('base64');
}

/** A sample's features; throws (naming the sample) when the length does not match featureDim and dtype. */
export function decodeFeatures(s: Pick<Sample, 'id' | 'features' | 'featureDim' | 'dtype'>): Float32Array {
  const buf = Buffer.from(s.features, 'base64');
  const width = s.dtype === 'float16' ? 2 : 4;
  if (buf.length !== s.featureDim * width) throw new Error(`sample ${s.id}: features are ${buf.length} bytes, expected ${s.featureDim} ${s.dtype} values (${s.featureDim * width} bytes)`);
  const out = new Float32Array(s.featureDim);
  for (let i = 0; i < s.featureDim; i++) out[i] = width === 2 ? fromHalf(buf.readUInt16LE(i * 2)) : buf.readFloatLE(i * 4);
  return out;
}
