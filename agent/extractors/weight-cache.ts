/**
 * On-disk cache of what the fused executors compute from the model files at every start: the model's fingerprint,
 * its feature dimension (which otherwise takes a warm-up frame to learn) and, for layers models, the BatchNorm-folded
 * weights they keep. A hit skips the fingerprint's canonical JSON, the warm-up frame and, for layers models, decoding
 * and folding; the plan itself (topology -> steps) is still made from model.json, which is cheap. Graph models keep
 * their weights as decoded: reading them back as float32 (4x the bytes of the uint8-quantized files) costs more than
 * dequantizing them (extractor.ts, withWeightCache).
 *
 * Keyed by a sha256 of the model files' contents (model.json as parsed, all weight bytes), the executor and its
 * options, and WEIGHT_CACHE_VERSION. One file per extractor id (<dir>/<id>.<key prefix>.weights; writing a new key
 * removes the id's older files), written to a temp file and renamed into place. A file that is truncated, corrupt
 * (sha256 of its data), of another version or key is ignored, logged at debug level, and rewritten after the build.
 * The cache is an optimisation only: any failure to read or write it is logged at debug level and the model loads
 * as without it.
 *
 * No fsync: a file cut short by a power loss fails its checksum and is rebuilt, and a start on an SD card should not
 * wait for the disk.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { sha256Hex } from '../../base/hash';
import { createLogger } from '../../base/log';
import type { ModelFolder } from './model-files';

const log = createLogger('extractor:cache');

/** Bump when what the executors cache, or how they compute it (decode, fold), changes: old files are then ignored. */
export const WEIGHT_CACHE_VERSION = 1;

const MAGIC = 'EHWEIGHT';
const EXT = '.weights';

export type CachedDtype = 'float32' | 'int32';

export interface CachedTensor {
  dtype: CachedDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** What a fused build learned about the model, besides its tensors. */
export interface CachedModelInfo {
  fingerprint: string;
  paramCount: number;
  featureDim: number;
}

export interface CacheEntry {
  info: CachedModelInfo;
  tensors: Map<string, CachedTensor>;
}

/** Raised while planning from a cache entry that lacks a tensor or holds it in another shape: rebuild without it. */
export class WeightCacheMismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightCacheMismatch';
  }
}

/**
 * Where an executor gets the tensors it keeps. `make` computes one from the model files (decoding them on first
 * use); with a cache entry it is not called.
 */
export interface WeightSource {
  tensor(key: string, shape: readonly number[], dtype: CachedDtype, make: () => tf.Tensor): tf.Tensor;
}

/** Computes every tensor, and records a copy of each for writing the cache afterwards. */
export class RecordingSource implements WeightSource {
  readonly recorded = new Map<string, CachedTensor>();

  tensor(key: string, shape: readonly number[], dtype: CachedDtype, make: () => tf.Tensor): tf.Tensor {
    const t = make();
    if (t.dtype !== dtype || !sameShape(t.shape, shape)) throw new Error(`${key}: made ${t.dtype} [${t.shape}], planned ${dtype} [${shape}]`);
    this.recorded.set(key, { dtype, shape: [...shape], data: t.dataSync() as Float32Array | Int32Array });
    return t;
  }
}

/** Tensors from a cache entry; a missing or differently shaped one raises WeightCacheMismatch. */
export class CachedSource implements WeightSource {
  constructor(private readonly tensors: Map<string, CachedTensor>) {}

  tensor(key: string, shape: readonly number[], dtype: CachedDtype): tf.Tensor {
    const c = this.tensors.get(key);
    if (!c) throw new WeightCacheMismatch(`no tensor ${key}`);
    if (c.dtype !== dtype || !sameShape(c.shape, shape)) throw new WeightCacheMismatch(`${key} is ${c.dtype} [${c.shape}], planned ${dtype} [${shape}]`);
    return tf.tensor(c.data, [...shape], dtype);
  }
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** The cache key of a model's files for one executor (and its options). */
export function weightCacheKey(folder: ModelFolder, executor: string, options: Record<string, unknown>): string {
  return sha256Hex(`edgehead-weight-cache-v${WEIGHT_CACHE_VERSION}\n${executor}\n${JSON.stringify(options)}\n`, JSON.stringify(folder.json), '\n', folder.weightData);
}

/** One model's entry in the cache directory, opened (read) once per load. */
export interface ExecutorCache {
  readonly file: string;
  /** The entry a previous build of the same files saved, if it is there and intact. */
  readonly hit?: CacheEntry;
  /** Saves what a build from the model files computed (after its warm-up, which gave featureDim). */
  save(tensors: Map<string, CachedTensor>, info: CachedModelInfo): void;
}

/** `executor` and `options` are what the cached tensors also depend on (the executor, its output node...). */
export function openExecutorCache(dir: string, id: string, folder: ModelFolder, executor: string, options: Record<string, unknown>): ExecutorCache {
  const key = weightCacheKey(folder, executor, options);
  return {
    file: weightCachePath(dir, id, key),
    hit: readWeightCache(dir, id, key),
    save: (tensors, info) => writeWeightCache(dir, id, key, { info, tensors }),
  };
}

/** The CLI's cache folder: $XDG_CACHE_HOME/edgehead/weights, else ~/.cache/edgehead/weights. */
export function userWeightCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'edgehead', 'weights');
}

const safeId = (id: string) => id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80) || 'model';

export function weightCachePath(dir: string, id: string, key: string): string {
  return path.join(dir, `${safeId(id)}.${key.slice(0, 16)}${EXT}`);
}

/** The file: MAGIC, u32 LE byte length of the header JSON, the header, zero padding to 8 bytes, the data. */
interface Header {
  version: number;
  key: string;
  /** sha256 of `body` then the data: a flipped bit anywhere but in version/key (checked as such) is caught. */
  sha256: string;
  /** JSON of Body, kept as text so that the checksum covers exactly what was written. */
  body: string;
}

interface Body {
  info: CachedModelInfo;
  dataBytes: number;
  tensors: { key: string; dtype: CachedDtype; shape: number[]; offset: number }[];
}

/** The entry for `key`, or undefined (no file, or one that is unreadable, corrupt or for another key/version). */
export function readWeightCache(dir: string, id: string, key: string): CacheEntry | undefined {
  const file = weightCachePath(dir, id, key);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    log.debug('weight cache miss', { file, reason: code === 'ENOENT' ? 'no file' : code ?? (e as Error).message });
    return undefined;
  }
  try {
    return parse(bytes, key);
  } catch (e) {
    log.debug('weight cache file ignored; rebuilding it', { file, reason: (e as Error).message });
    return undefined;
  }
}

function parse(bytes: Buffer, key: string): CacheEntry {
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) throw new Error('not a weight cache file');
  const headerBytes = bytes.readUInt32LE(8);
  const dataStart = align(12 + headerBytes);
  if (dataStart > bytes.length) throw new Error('truncated header');
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + headerBytes)) as Header;
  if (header.version !== WEIGHT_CACHE_VERSION) throw new Error(`version ${header.version}, expected ${WEIGHT_CACHE_VERSION}`);
  if (header.key !== key) throw new Error('key mismatch (other model files or executor options)');
  const data = bytes.subarray(dataStart);
  if (typeof header.body !== 'string' || sha256Hex(header.body, data) !== header.sha256) throw new Error('checksum mismatch');
  const body = JSON.parse(header.body) as Body;
  if (data.length !== body.dataBytes) throw new Error(`data is ${data.length} bytes, header says ${body.dataBytes}`);
  // Views into the file's bytes (a large read is its own ArrayBuffer); a copy only if that ever comes unaligned.
  const base = data.byteOffset % 4 === 0 ? data : new Uint8Array(data);
  const tensors = new Map<string, CachedTensor>();
  for (const t of body.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.offset % 4 !== 0 || t.offset + 4 * n > base.byteLength) throw new Error(`tensor ${t.key} out of bounds`);
    const at = base.byteOffset + t.offset;
    const view = t.dtype === 'int32' ? new Int32Array(base.buffer, at, n) : new Float32Array(base.buffer, at, n);
    tensors.set(t.key, { dtype: t.dtype, shape: t.shape, data: view });
  }
  return { info: body.info, tensors };
}

const align = (n: number) => Math.ceil(n / 8) * 8;

/** Writes the entry (temp file + rename) and removes the id's other cache files. Failures are logged, not thrown. */
export function writeWeightCache(dir: string, id: string, key: string, entry: CacheEntry): void {
  const file = weightCachePath(dir, id, key);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tensors: Body['tensors'] = [];
    let offset = 0;
    for (const [k, t] of entry.tensors) {
      tensors.push({ key: k, dtype: t.dtype, shape: t.shape, offset });
      offset += t.data.byteLength; // 4-byte elements: every offset stays aligned
    }
    const data = Buffer.allocUnsafe(offset);
    for (const [i, t] of [...entry.tensors.values()].entries()) data.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), tensors[i]!.offset);
    const body = JSON.stringify({ info: entry.info, dataBytes: data.length, tensors } satisfies Body);
    const header: Header = { version: WEIGHT_CACHE_VERSION, key, sha256: sha256Hex(body, data), body };
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const head = Buffer.alloc(align(12 + json.length));
    head.write(MAGIC, 0, 'latin1');
    head.writeUInt32LE(json.length, 8);
    json.copy(head, 12);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, head);
      fs.writeSync(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    removeOthers(dir, id, path.basename(file));
    log.debug('weight cache written', { file, bytes: head.length + data.length });
  } catch (e) {
    log.debug('weight cache not written', { file, reason: (e as Error).message });
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing was written there
    }
  }
}

function removeOthers(dir: string, id: string, keep: string): void {
  const prefix = `${safeId(id)}.`;
  for (const f of fs.readdirSync(dir)) {
    // <id>.<16 hex>.weights only: a longer id that starts with this one ("a.b" vs "a") has another shape of name
    if (f !== keep && f.startsWith(prefix) && f.endsWith(EXT) && /^[0-9a-f]{16}$/.test(f.slice(prefix.length, -EXT.length))) {
      fs.rmSync(path.join(dir, f), { force: true });
    }
  }
}
