/**
 * The binary head format: the file `edgehead head train` writes and, byte for byte, the MQTT payload a server
 * publishes to push a new head. See docs/head-format.md for the layout, the manifest fields and the validation order;
 * the manifest itself (schema, type, validation) is protocol/head/manifest.ts.
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
import { canonicalJson as canonicalJsonOf } from '../../base/canonical-json';
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { HEAD_MAX_BYTES } from '../patterns';
import { MAX_MANIFEST_DEPTH, validateManifest, type HeadManifest, type TestVector } from './manifest';

export { MAX_MANIFEST_DEPTH, validateManifest, type HeadManifest, type HeadSignature, type TestVector } from './manifest';

export const HEAD_MAGIC = 'EHED';
export const HEAD_FORMAT_VERSION = 1;
export const HEAD_HEADER_BYTES = 12;
export const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface HeadFile {
  manifest: HeadManifest;
  /** Row-major [featureDim, numClasses]. */
  kernel: Float32Array;
  bias: Float32Array;
}

export interface DecodeLimits {
  /** Largest payload accepted, in bytes (default HEAD_MAX_BYTES, the default of head.maxBytes). */
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
  shadow?: HeadManifest['shadow'];
  /** The region of interest the head was trained on (preprocess.region); the device crops to it. */
  region?: HeadManifest['region'];
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
  if (input.region !== undefined) manifest.region = [...input.region];
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
export function decodeHead(bytes: Uint8Array, limits: DecodeLimits = { maxBytes: HEAD_MAX_BYTES }): HeadFile {
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
  validateManifest(parsed);
  const manifest = parsed;

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
// Helpers

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
