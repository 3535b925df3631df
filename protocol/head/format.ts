/**
 * The binary head format: the file `edgehead head train` writes and, byte for byte, the MQTT payload a server
 * publishes to push a new head. See docs/head-format.md for the layout, the manifest fields and the validation order.
 *
 *   offset 0    4 bytes  magic "EHED"
 *   offset 4    u16 LE   format version (1)
 *   offset 6    u16 LE   flags (0; anything else is rejected)
 *   offset 8    u32 LE   manifest length M (<= 1 MiB)
 *   offset 12   M bytes  manifest: UTF-8 JSON object
 *   offset 12+M          weights: kernel [featureDim, numClasses] row-major, then bias [numClasses]; float32 LE
 *
 * decodeHead() treats its input as hostile: every failure is an EdgeheadError('BAD_HEAD') with a one-line message,
 * and no length read from the payload is used to allocate before it has been checked against the payload size.
 */
import { createHash } from 'node:crypto';
import { canonicalJson as canonicalJsonOf } from '../../base/canonical-json';
import { EdgeheadError } from '../../base/errors';

export const HEAD_MAGIC = 'EHED';
export const HEAD_FORMAT_VERSION = 1;
export const HEAD_HEADER_BYTES = 12;
export const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Deepest nesting accepted anywhere in a manifest (metrics and unknown keys included). */
export const MAX_MANIFEST_DEPTH = 32;

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxBytes: 32 * 1024 * 1024 };

export interface TestVector {
  /** Raw extractor output, featureDim numbers. */
  features: number[];
  /** The logits (pre-softmax) the publisher's implementation computed for these features, numClasses numbers. */
  logits: number[];
}

export interface HeadSignature {
  alg: 'ed25519';
  /** First 16 hex digits of sha256(raw 32-byte public key). */
  keyId: string;
  /** Standard base64 (with padding) of the 64-byte Ed25519 signature. */
  value: string;
}

/**
 * The JSON manifest that travels with the weights. Keys not listed here are accepted and preserved by decodeHead()
 * and encodeHead() (forward compatibility: a newer publisher may add fields an older agent ignores); they are part of
 * what is signed.
 */
export interface HeadManifest {
  /** 1..64 chars of [A-Za-z0-9._-]. */
  id: string;
  /** Integer >= 1; publishers increase it for each new head with the same id. */
  version: number;
  /** >= 2 unique, non-empty labels of at most 128 chars; index i is logit i. */
  classes: string[];
  featureDim: number;
  extractor: { id: string; /** sha256 hex (64 lowercase digits) of the extractor the head was trained on. */ fingerprint: string };
  dtype: 'float32';
  tensors: { kernel: { shape: [number, number] }; bias: { shape: [number] } };
  /** Lowercase hex sha256 of the weight bytes (kernel then bias, float32 LE). encodeHead() fills it in. */
  sha256: string;
  /** ISO 8601 timestamp with a time zone, e.g. "2024-05-01T12:00:00.000Z". */
  createdAt: string;
  metrics?: Record<string, unknown>;
  testVectors?: TestVector[];
  shadow?: { frames: number; autoPromoteAgreement?: number };
  signature?: HeadSignature;
}

export interface HeadFile {
  manifest: HeadManifest;
  /** Row-major [featureDim, numClasses]. */
  kernel: Float32Array;
  bias: Float32Array;
}

export interface DecodeLimits {
  /** Largest payload accepted, in bytes. */
  maxBytes: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** The 12-byte header for a manifest of `manifestLength` bytes. */
export function encodeHeader(manifestLength: number): Uint8Array {
  const header = new Uint8Array(HEAD_HEADER_BYTES);
  const view = new DataView(header.buffer);
  for (let i = 0; i < 4; i++) header[i] = HEAD_MAGIC.charCodeAt(i);
  view.setUint16(4, HEAD_FORMAT_VERSION, true);
  view.setUint16(6, 0, true);
  view.setUint32(8, manifestLength, true);
  return header;
}

/** Kernel then bias as float32 little-endian, no padding: the bytes after the manifest, and what sha256 covers. */
export function encodeWeights(kernel: Float32Array, bias: Float32Array): Uint8Array {
  const out = new Uint8Array((kernel.length + bias.length) * 4);
  const view = new DataView(out.buffer);
  let off = 0;
  for (let i = 0; i < kernel.length; i++, off += 4) view.setFloat32(off, kernel[i]!, true);
  for (let i = 0; i < bias.length; i++, off += 4) view.setFloat32(off, bias[i]!, true);
  return out;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 (lowercase hex) of the head's weight bytes. */
export function headSha256(head: HeadFile): string {
  return sha256Hex(encodeWeights(head.kernel, head.bias));
}

/**
 * Canonical JSON: object keys sorted by UTF-16 code unit at every level, no whitespace, strings and numbers exactly
 * as JSON.stringify prints them, object keys whose value is undefined left out. Used for the encoded manifest and for
 * what is signed. Throws (BAD_HEAD) on values JSON cannot represent (NaN, Infinity, undefined in arrays, functions).
 */
export function canonicalJson(value: unknown): string {
  return canonicalJsonOf(value, { root: 'manifest', maxDepth: MAX_MANIFEST_DEPTH + 2, fail: (m) => bad(m) });
}

/**
 * Validates the head (manifest schema, shapes, finite weights), fills manifest.sha256 from the weight bytes and
 * returns the binary blob. The manifest is written as canonical JSON, so equal heads give equal bytes.
 */
export function encodeHead(head: HeadFile): Uint8Array {
  if (!(head.kernel instanceof Float32Array) || !(head.bias instanceof Float32Array)) {
    throw bad('kernel and bias must be Float32Arrays');
  }
  const weights = encodeWeights(head.kernel, head.bias);
  const manifest: HeadManifest = { ...head.manifest, sha256: sha256Hex(weights) };
  validateManifest(manifest);
  checkWeightCounts(manifest, head.kernel.length, head.bias.length);
  checkFinite('kernel', head.kernel, manifest.classes.length);
  checkFinite('bias', head.bias, manifest.classes.length);
  const manifestBytes = new TextEncoder().encode(canonicalJson(manifest));
  if (manifestBytes.length > MAX_MANIFEST_BYTES) {
    throw bad(`manifest is ${manifestBytes.length} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`, 'drop testVectors or metrics');
  }
  const out = new Uint8Array(HEAD_HEADER_BYTES + manifestBytes.length + weights.length);
  out.set(encodeHeader(manifestBytes.length), 0);
  out.set(manifestBytes, HEAD_HEADER_BYTES);
  out.set(weights, HEAD_HEADER_BYTES + manifestBytes.length);
  return out;
}

/** Convenience for trainers and tools: builds a HeadFile, deriving featureDim, dtype, shapes, sha256 and createdAt. */
export function makeHeadFile(input: {
  id: string;
  version: number;
  classes: string[];
  extractor: { id: string; fingerprint: string };
  kernel: Float32Array;
  bias: Float32Array;
  createdAt?: Date;
  metrics?: Record<string, unknown>;
  testVectors?: TestVector[];
  shadow?: { frames: number; autoPromoteAgreement?: number };
}): HeadFile {
  const numClasses = input.classes.length;
  const featureDim = numClasses > 0 ? Math.floor(input.kernel.length / numClasses) : 0;
  const manifest: HeadManifest = {
    id: input.id,
    version: input.version,
    classes: [...input.classes],
    featureDim,
    extractor: { ...input.extractor },
    dtype: 'float32',
    tensors: { kernel: { shape: [featureDim, numClasses] }, bias: { shape: [numClasses] } },
    sha256: '',
    createdAt: (input.createdAt ?? new Date()).toISOString(),
  };
  if (input.metrics !== undefined) manifest.metrics = input.metrics;
  if (input.testVectors !== undefined) manifest.testVectors = input.testVectors;
  if (input.shadow !== undefined) manifest.shadow = input.shadow;
  const head: HeadFile = { manifest, kernel: input.kernel, bias: input.bias };
  manifest.sha256 = headSha256(head);
  validateManifest(manifest);
  checkWeightCounts(manifest, input.kernel.length, input.bias.length);
  return head;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses and fully validates a head blob. Any problem is an EdgeheadError('BAD_HEAD') naming what is wrong. */
export function decodeHead(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): HeadFile {
  if (!(bytes instanceof Uint8Array)) throw bad('head payload must be a byte array');
  const n = bytes.length;
  if (n === 0) throw bad('empty head payload');
  if (n > limits.maxBytes) {
    throw bad(`head payload too large: ${n} bytes > limit ${limits.maxBytes}`, 'raise the head size limit if this is intended');
  }
  if (n < HEAD_HEADER_BYTES) throw bad(`head payload too short for the ${HEAD_HEADER_BYTES}-byte header: ${n} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.subarray(0, 4);
  if (String.fromCharCode(...magic) !== HEAD_MAGIC) {
    throw bad(`bad magic: expected "${HEAD_MAGIC}", got 0x${hex(magic)}`, 'this is not an edgehead head file');
  }
  const version = view.getUint16(4, true);
  if (version !== HEAD_FORMAT_VERSION) {
    throw bad(`unsupported head format version ${version} (this agent reads version ${HEAD_FORMAT_VERSION})`, 'upgrade the agent or publish a version-1 head');
  }
  const flags = view.getUint16(6, true);
  if (flags !== 0) throw bad(`unsupported flags 0x${flags.toString(16).padStart(4, '0')} (must be 0)`);
  const manifestLength = view.getUint32(8, true);
  if (manifestLength > MAX_MANIFEST_BYTES) {
    throw bad(`manifest length ${manifestLength} exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
  }
  const manifestEnd = HEAD_HEADER_BYTES + manifestLength;
  if (manifestEnd > n) {
    throw bad(`truncated manifest: header says ${manifestLength} bytes, only ${n - HEAD_HEADER_BYTES} follow the header`);
  }

  let text: string;
  try {
    text = utf8.decode(bytes.subarray(HEAD_HEADER_BYTES, manifestEnd));
  } catch {
    throw bad('manifest is not valid UTF-8');
  }
  if (text.charCodeAt(0) === 0xfeff) throw bad('manifest starts with a byte order mark (not allowed in JSON)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0]!.slice(0, 120) : String(e);
    throw bad(`manifest is not valid JSON: ${why}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw bad(`manifest must be a JSON object, got ${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed}`);
  }
  const manifest = parsed as HeadManifest;
  validateManifest(manifest);

  const numClasses = manifest.classes.length;
  const kernelCount = manifest.featureDim * numClasses;
  const expectedBytes = (kernelCount + numClasses) * 4;
  const gotBytes = n - manifestEnd;
  if (gotBytes < expectedBytes) throw bad(`truncated weights: expected ${expectedBytes} bytes, got ${gotBytes}`);
  if (gotBytes > expectedBytes) {
    throw bad(`trailing bytes after the weights: expected ${expectedBytes} weight bytes, got ${gotBytes} (${gotBytes - expectedBytes} extra)`);
  }
  const weightBytes = bytes.subarray(manifestEnd);
  const actualSha = sha256Hex(weightBytes);
  if (actualSha !== manifest.sha256) {
    throw bad(`weight sha256 mismatch: manifest says ${manifest.sha256}, weights hash to ${actualSha}`, 'the payload was corrupted or altered');
  }
  // Fresh, aligned arrays: the weights start at 12+M, which need not be a multiple of 4.
  const kernel = new Float32Array(kernelCount);
  const bias = new Float32Array(numClasses);
  let off = manifestEnd;
  for (let i = 0; i < kernelCount; i++, off += 4) kernel[i] = view.getFloat32(off, true);
  for (let i = 0; i < numClasses; i++, off += 4) bias[i] = view.getFloat32(off, true);
  checkFinite('kernel', kernel, numClasses);
  checkFinite('bias', bias, numClasses);
  return { manifest, kernel, bias };
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

function bad(message: string, hint?: string): EdgeheadError {
  return new EdgeheadError('BAD_HEAD', message, hint === undefined ? {} : { hint });
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkWeightCounts(m: HeadManifest, kernelLength: number, biasLength: number): void {
  const c = m.classes.length;
  if (kernelLength !== m.featureDim * c) {
    throw bad(`kernel has ${kernelLength} values, shape [${m.featureDim}, ${c}] needs ${m.featureDim * c}`);
  }
  if (biasLength !== c) throw bad(`bias has ${biasLength} values, shape [${c}] needs ${c}`);
}

function checkFinite(name: 'kernel' | 'bias', values: Float32Array, numClasses: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      const where = name === 'kernel' ? ` (row ${Math.floor(i / numClasses)}, column ${i % numClasses})` : '';
      throw bad(`non-finite weight: ${name}[${i}]${where} is ${v}`);
    }
  }
}

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const KEY_ID_RE = /^[0-9a-f]{16}$/;
const SIG_RE = /^[A-Za-z0-9+/]{86}==$/; // 64 bytes, standard base64 with padding
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 40 ? `a ${v.length}-char string` : JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  return `a ${typeof v}`;
}

function isIsoDate(s: string): boolean {
  const m = ISO_RE.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59) return false;
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (d < 1 || d > daysInMonth) return false;
  const tz = m[8]!;
  if (tz !== 'Z' && (Number(tz.slice(1, 3)) > 23 || Number(tz.slice(4, 6)) > 59)) return false;
  return !Number.isNaN(Date.parse(s));
}

/**
 * Checks every value is plain JSON (finite numbers, no undefined inside arrays), nesting is bounded and no key is
 * "__proto__" (so a manifest can never alter a prototype when copied with Object.assign elsewhere).
 */
function checkJsonTree(v: unknown, path: string, depth: number, errors: string[]): void {
  if (errors.length > 20) return;
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

function fail(errors: string[]): never {
  const shown = errors.slice(0, 3).join('; ');
  const more = errors.length > 3 ? ` (+${errors.length - 3} more)` : '';
  throw bad(`invalid head manifest: ${shown}${more}`);
}

function checkNumberArray(v: unknown, path: string, expected: number, errors: string[]): void {
  if (!Array.isArray(v)) {
    errors.push(`${path}: must be an array of ${expected} numbers, got ${describe(v)}`);
    return;
  }
  if (v.length !== expected) {
    errors.push(`${path}: expected ${expected} numbers, got ${v.length}`);
    return;
  }
  const i = v.findIndex((x) => typeof x !== 'number' || !Number.isFinite(x));
  if (i >= 0) errors.push(`${path}[${i}]: must be a finite number, got ${describe(v[i])}`);
}

/**
 * Validates a manifest in stages, throwing at the first failing stage: plain-JSON tree, field schema (every error of
 * the stage reported at once, each naming its path), dtype, tensor shapes vs featureDim/classes, test-vector sizes.
 */
export function validateManifest(m: unknown): asserts m is HeadManifest {
  const errors: string[] = [];
  if (!isObject(m)) throw bad(`manifest must be a JSON object, got ${describe(m)}`);
  checkJsonTree(m, 'manifest', 0, errors);
  if (errors.length > 0) fail(errors);

  const need = (key: string): unknown => {
    const v = m[key];
    if (v === undefined) errors.push(`manifest.${key}: required`);
    return v;
  };

  const id = need('id');
  if (id !== undefined && (typeof id !== 'string' || !ID_RE.test(id))) {
    errors.push(`manifest.id: must be 1-64 characters of [A-Za-z0-9._-], got ${describe(id)}`);
  }
  const version = need('version');
  if (version !== undefined && !(Number.isSafeInteger(version) && (version as number) >= 1)) {
    errors.push(`manifest.version: must be an integer >= 1, got ${describe(version)}`);
  }
  const classes = need('classes');
  let classesOk = false;
  if (classes !== undefined) {
    if (!Array.isArray(classes) || classes.length < 2) {
      errors.push(`manifest.classes: must be an array of at least 2 labels, got ${Array.isArray(classes) ? `${classes.length}` : describe(classes)}`);
    } else {
      const seen = new Map<string, number>();
      const before = errors.length;
      classes.forEach((c, i) => {
        if (typeof c !== 'string' || c.length === 0) errors.push(`manifest.classes[${i}]: must be a non-empty string`);
        else if (c.length > 128) errors.push(`manifest.classes[${i}]: must be at most 128 characters, got ${c.length}`);
        else if (seen.has(c)) errors.push(`manifest.classes[${i}]: duplicate of classes[${seen.get(c)}] ${JSON.stringify(c)}`);
        else seen.set(c, i);
      });
      classesOk = errors.length === before;
    }
  }
  const featureDim = need('featureDim');
  const featureDimOk = Number.isSafeInteger(featureDim) && (featureDim as number) >= 1;
  if (featureDim !== undefined && !featureDimOk) {
    errors.push(`manifest.featureDim: must be an integer >= 1, got ${describe(featureDim)}`);
  }
  const extractor = need('extractor');
  if (extractor !== undefined) {
    if (!isObject(extractor)) errors.push(`manifest.extractor: must be an object, got ${describe(extractor)}`);
    else {
      if (typeof extractor.id !== 'string' || extractor.id.length === 0 || extractor.id.length > 256) {
        errors.push(`manifest.extractor.id: must be a non-empty string of at most 256 chars, got ${describe(extractor.id)}`);
      }
      if (typeof extractor.fingerprint !== 'string' || !SHA256_RE.test(extractor.fingerprint)) {
        errors.push(`manifest.extractor.fingerprint: must be 64 lowercase hex digits (sha256), got ${describe(extractor.fingerprint)}`);
      }
    }
  }
  const dtype = need('dtype');
  if (dtype !== undefined && typeof dtype !== 'string') errors.push(`manifest.dtype: must be a string, got ${describe(dtype)}`);
  const tensors = need('tensors');
  let kernelShape: unknown;
  let biasShape: unknown;
  if (tensors !== undefined) {
    if (!isObject(tensors)) errors.push(`manifest.tensors: must be an object, got ${describe(tensors)}`);
    else {
      for (const [name, rank] of [['kernel', 2], ['bias', 1]] as const) {
        const t = tensors[name];
        const path = `manifest.tensors.${name}`;
        if (!isObject(t)) {
          errors.push(`${path}: must be an object with a shape, got ${describe(t)}`);
          continue;
        }
        const shape = t.shape;
        if (!Array.isArray(shape) || shape.length !== rank || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          errors.push(`${path}.shape: must be an array of ${rank} non-negative integers, got ${Array.isArray(shape) ? JSON.stringify(shape).slice(0, 60) : describe(shape)}`);
          continue;
        }
        if (name === 'kernel') kernelShape = shape;
        else biasShape = shape;
      }
    }
  }
  const sha256 = need('sha256');
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !SHA256_RE.test(sha256))) {
    errors.push(`manifest.sha256: must be 64 lowercase hex digits, got ${describe(sha256)}`);
  }
  const createdAt = need('createdAt');
  if (createdAt !== undefined && (typeof createdAt !== 'string' || !isIsoDate(createdAt))) {
    errors.push(`manifest.createdAt: must be an ISO 8601 date-time with time zone (e.g. 2024-05-01T12:00:00Z), got ${describe(createdAt)}`);
  }
  if (m.metrics !== undefined && !isObject(m.metrics)) errors.push(`manifest.metrics: must be an object, got ${describe(m.metrics)}`);
  const tvs = m.testVectors;
  if (tvs !== undefined) {
    if (!Array.isArray(tvs)) errors.push(`manifest.testVectors: must be an array, got ${describe(tvs)}`);
    else {
      tvs.forEach((tv, i) => {
        if (!isObject(tv)) errors.push(`manifest.testVectors[${i}]: must be an object with features and logits`);
        else {
          if (!Array.isArray(tv.features)) errors.push(`manifest.testVectors[${i}].features: must be an array of numbers`);
          if (!Array.isArray(tv.logits)) errors.push(`manifest.testVectors[${i}].logits: must be an array of numbers`);
        }
      });
    }
  }
  const shadow = m.shadow;
  if (shadow !== undefined) {
    if (!isObject(shadow)) errors.push(`manifest.shadow: must be an object, got ${describe(shadow)}`);
    else {
      if (!(Number.isSafeInteger(shadow.frames) && (shadow.frames as number) >= 1)) {
        errors.push(`manifest.shadow.frames: must be an integer >= 1, got ${describe(shadow.frames)}`);
      }
      const a = shadow.autoPromoteAgreement;
      if (a !== undefined && !(typeof a === 'number' && a >= 0 && a <= 1)) {
        errors.push(`manifest.shadow.autoPromoteAgreement: must be a number in [0, 1], got ${describe(a)}`);
      }
    }
  }
  const sig = m.signature;
  if (sig !== undefined) {
    if (!isObject(sig)) errors.push(`manifest.signature: must be an object, got ${describe(sig)}`);
    else {
      if (sig.alg !== 'ed25519') errors.push(`manifest.signature.alg: must be "ed25519", got ${describe(sig.alg)}`);
      if (typeof sig.keyId !== 'string' || !KEY_ID_RE.test(sig.keyId)) {
        errors.push(`manifest.signature.keyId: must be 16 lowercase hex digits, got ${describe(sig.keyId)}`);
      }
      if (typeof sig.value !== 'string' || !SIG_RE.test(sig.value)) {
        errors.push(`manifest.signature.value: must be the base64 of a 64-byte signature (88 chars), got ${describe(sig.value)}`);
      }
    }
  }
  if (errors.length > 0) fail(errors);

  if (dtype !== 'float32') throw bad(`unsupported dtype ${JSON.stringify(dtype)} (this agent supports only "float32")`);

  const c = (classes as string[]).length;
  const f = featureDim as number;
  const ks = kernelShape as number[];
  const bs = biasShape as number[];
  if (classesOk && featureDimOk && (ks[0] !== f || ks[1] !== c || bs[0] !== c)) {
    throw bad(
      `shape mismatch: tensors.kernel.shape [${ks.join(', ')}] and tensors.bias.shape [${bs.join(', ')}] must be ` +
        `[${f}, ${c}] and [${c}] (featureDim ${f}, ${c} classes)`,
    );
  }

  if (Array.isArray(tvs)) {
    (tvs as Obj[]).forEach((tv, i) => {
      checkNumberArray(tv.features, `manifest.testVectors[${i}].features`, f, errors);
      checkNumberArray(tv.logits, `manifest.testVectors[${i}].logits`, c, errors);
    });
    if (errors.length > 0) fail(errors);
  }
}
