/** Head payloads for tests: trained ones (real features) and surgically broken ones. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHead, encodeHeader, encodeWeights, type HeadFile, type HeadManifest } from '../../protocol/head/format';
import { canonicalJson } from '../../base/canonical-json';
import { sha256Hex } from '../../base/hash';
import { runCli, SAMPLES, tmpDir } from './cli';

/** Trains a 2-class head "land"/"sea" on the bundled samples (fish = sea) with the default extractor. */
export async function trainLandSeaHead(out: string, opts: { id?: string; version?: number; seed?: number } = {}): Promise<Uint8Array> {
  const data = tmpDir('landsea-');
  for (const cls of ['land', 'sea']) fs.mkdirSync(path.join(data, cls));
  for (const c of fs.readdirSync(SAMPLES).filter((c) => fs.statSync(path.join(SAMPLES, c)).isDirectory())) {
    for (const f of fs.readdirSync(path.join(SAMPLES, c))) fs.symlinkSync(path.join(SAMPLES, c, f), path.join(data, c === 'fish' ? 'sea' : 'land', `${c}-${f}`));
  }
  const r = await runCli(['head', 'train', '--data', data, '--out', out, '--quiet', '--id', opts.id ?? 'landsea', '--version', String(opts.version ?? 1), '--seed', String(opts.seed ?? 1)]);
  if (r.code !== 0) throw new Error(`head train failed: ${r.stderr}`);
  return new Uint8Array(fs.readFileSync(out));
}

/** Re-encodes a head with a modified manifest and/or weights, WITHOUT the validation encodeHead does. */
export function rawEncode(manifest: HeadManifest | Record<string, unknown>, kernel: Float32Array, bias: Float32Array, opts: { fixSha?: boolean } = {}): Uint8Array {
  const weights = encodeWeights(kernel, bias);
  const m = { ...manifest } as Record<string, unknown>;
  if (opts.fixSha !== false) m.sha256 = sha256Hex(weights);
  const json = Buffer.from(canonicalJson(m));
  return new Uint8Array(Buffer.concat([encodeHeader(json.byteLength), json, weights]));
}

export function decoded(bytes: Uint8Array): HeadFile {
  return decodeHead(bytes, { maxBytes: 1 << 26 });
}

export const MANIFEST_OFFSET = 12;
export function manifestLength(bytes: Uint8Array): number {
  return Buffer.from(bytes).readUInt32LE(8);
}
