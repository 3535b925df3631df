/**
 * The on-disk TF.js model form (model.json + binary weight shards), read and written without tfjs-node.
 * Used for the catalogue extractors (converted once from nsfwjs into models/<id>/), for user model folders, and
 * for the download cache of model URLs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { io } from '@tensorflow/tfjs-core';
import { EdgeheadError } from '../../base/errors';

export interface ModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: unknown;
  weightsManifest: io.WeightsManifestConfig;
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ModelFolder {
  json: ModelJson;
  /** All shards concatenated in manifest order. */
  weightData: Uint8Array;
}

export function modelJsonPath(dir: string): string {
  return path.join(dir, 'model.json');
}

/** Reads model.json and its shards from a folder. Errors name the missing or malformed file. */
export function readModelFolder(dir: string): ModelFolder {
  const jsonPath = modelJsonPath(dir);
  if (!fs.existsSync(dir)) throw new EdgeheadError('MODEL_NOT_FOUND', `model folder not found: ${dir}`);
  if (!fs.existsSync(jsonPath)) throw new EdgeheadError('MODEL_NOT_FOUND', `no model.json in ${dir}`);
  const json = parseModelJson(fs.readFileSync(jsonPath, 'utf8'), jsonPath);
  const shards = shardPaths(json).map((p) => {
    const file = path.join(dir, p);
    if (!fs.existsSync(file)) throw new EdgeheadError('MODEL_NOT_FOUND', `weight shard missing: ${file}`);
    return fs.readFileSync(file);
  });
  // One shard (the usual case) is used as read: a copy of megabytes costs start time (docs/BENCHMARKS.md, "Cold start").
  const all = shards.length === 1 ? shards[0]! : Buffer.concat(shards);
  const weightData = new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  checkWeightSize(json, weightData.byteLength, dir);
  return { json, weightData };
}

export function parseModelJson(text: string, where: string): ModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `${where} is not valid JSON: ${(e as Error).message}`);
  }
  const j = json as Partial<ModelJson> | null;
  if (!j || typeof j !== 'object' || !j.modelTopology || !Array.isArray(j.weightsManifest)) {
    throw new EdgeheadError('BAD_MODEL', `${where} is not a TF.js model.json (needs modelTopology and weightsManifest)`);
  }
  return j as ModelJson;
}

export function shardPaths(json: ModelJson): string[] {
  return json.weightsManifest.flatMap((g) => g.paths);
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** Byte size of one weight entry as stored (quantized entries take their quantized size). */
export function storedByteSize(spec: io.WeightsManifestEntry): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const bytes = DTYPE_BYTES[dtype];
  if (bytes === undefined) throw new EdgeheadError('BAD_MODEL', `unsupported weight dtype ${dtype} (${spec.name})`);
  return n * bytes;
}

function checkWeightSize(json: ModelJson, actual: number, where: string): void {
  const expected = json.weightsManifest.flatMap((g) => g.weights).reduce((a, w) => a + storedByteSize(w), 0);
  if (expected !== actual) {
    throw new EdgeheadError('BAD_MODEL', `weights in ${where} are ${actual} bytes, model.json declares ${expected}`);
  }
}

/** Writes a model folder atomically enough for a build step: files first, model.json last. */
export function writeModelFolder(dir: string, json: ModelJson, weightData: Uint8Array): void {
  fs.mkdirSync(dir, { recursive: true });
  const out: ModelJson = {
    ...json,
    weightsManifest: [{ paths: ['weights.bin'], weights: json.weightsManifest.flatMap((g) => g.weights) }],
  };
  fs.writeFileSync(path.join(dir, 'weights.bin'), weightData);
  fs.writeFileSync(modelJsonPath(dir), JSON.stringify(out));
}

/** tfjs ModelArtifacts for io.fromMemory(). */
export function toArtifacts(folder: ModelFolder): io.ModelArtifacts {
  const { json, weightData } = folder;
  const whole = weightData.byteOffset === 0 && weightData.byteLength === weightData.buffer.byteLength;
  const buf = whole ? weightData.buffer : weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength);
  return {
    modelTopology: json.modelTopology as io.ModelArtifacts['modelTopology'],
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy ?? undefined,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: buf as ArrayBuffer,
    signature: json.signature as io.ModelArtifacts['signature'],
    userDefinedMetadata: json.userDefinedMetadata as io.ModelArtifacts['userDefinedMetadata'],
  };
}
