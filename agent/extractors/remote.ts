/**
 * Downloads a TF.js model (model.json + shards) from an http(s) URL into a local cache folder, recording each file's
 * sha256. A later load with the same URL verifies the cached files and uses them without touching the network.
 * TF Hub style URLs without ".json" get "/model.json?tfjs-format=file" appended, as tfjs' fromTFHub does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { createLogger } from '../../base/log';
import { parseModelJson, shardPaths } from './model-files';

const log = createLogger('extractor:download');

export interface DownloadOptions {
  cacheDir: string;
  timeoutMs: number;
  /** Called as bytes arrive: (done, total or undefined when unknown). */
  onProgress?: (done: number, total: number | undefined) => void;
}

interface CacheRecord {
  url: string;
  fetchedAt: string;
  files: Record<string, string>;
}

export function modelJsonUrl(url: string): URL {
  const u = new URL(url);
  if (!u.pathname.endsWith('.json')) {
    u.pathname = u.pathname.replace(/\/$/, '') + '/model.json';
    if (!u.searchParams.has('tfjs-format')) u.searchParams.set('tfjs-format', 'file');
  }
  return u;
}

export function cacheFolderFor(url: string, cacheDir: string): string {
  return path.join(cacheDir, 'models', sha256Hex(url).slice(0, 16));
}

/** Returns the local folder holding the model, downloading it unless a verified copy is cached. */
export async function fetchModel(url: string, opts: DownloadOptions): Promise<string> {
  const dir = cacheFolderFor(url, opts.cacheDir);
  if (verifyCache(dir, url)) {
    log.debug('using cached model', { url, dir });
    return dir;
  }
  const jsonUrl = modelJsonUrl(url);
  const tmp = `${dir}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const jsonBytes = await get(jsonUrl, opts);
    const json = parseModelJson(Buffer.from(jsonBytes).toString('utf8'), jsonUrl.toString());
    const files: Record<string, string> = { 'model.json': sha256Hex(jsonBytes) };
    fs.writeFileSync(path.join(tmp, 'model.json'), jsonBytes);
    for (const shard of shardPaths(json)) {
      if (shard.includes('..') || path.isAbsolute(shard) || shard.includes('\\')) {
        throw new EdgeheadError('BAD_MODEL', `model.json names an unsafe weight path: ${shard}`);
      }
      const shardUrl = new URL(shard, jsonUrl);
      shardUrl.search = jsonUrl.search;
      const bytes = await get(shardUrl, opts);
      fs.mkdirSync(path.dirname(path.join(tmp, shard)), { recursive: true });
      fs.writeFileSync(path.join(tmp, shard), bytes);
      files[shard] = sha256Hex(bytes);
    }
    const record: CacheRecord = { url, fetchedAt: new Date().toISOString(), files };
    fs.writeFileSync(path.join(tmp, 'source.json'), JSON.stringify(record, null, 2));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    log.info('model downloaded', { url, dir });
    return dir;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** sha256 of every file the cache record lists; false if anything is missing or differs. */
export function verifyCache(dir: string, url: string): boolean {
  try {
    const rec = JSON.parse(fs.readFileSync(path.join(dir, 'source.json'), 'utf8')) as CacheRecord;
    if (rec.url !== url) return false;
    return Object.entries(rec.files).every(([f, sha]) => sha256Hex(fs.readFileSync(path.join(dir, f))) === sha);
  } catch {
    return false;
  }
}

async function get(url: URL, opts: DownloadOptions): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs), redirect: 'follow' });
  } catch (e) {
    const why = (e as Error).name === 'TimeoutError' ? `timed out after ${opts.timeoutMs} ms` : describeCause(e);
    throw new EdgeheadError('DOWNLOAD_FAILED', `GET ${url}: ${why}`);
  }
  if (!res.ok) throw new EdgeheadError('DOWNLOAD_FAILED', `GET ${url}: HTTP ${res.status} ${res.statusText}`.trim());
  const total = Number(res.headers.get('content-length')) || undefined;
  const chunks: Uint8Array[] = [];
  let done = 0;
  if (res.body) {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(chunk);
      done += chunk.byteLength;
      opts.onProgress?.(done, total);
    }
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function describeCause(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}
