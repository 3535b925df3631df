/**
 * The catalogue extractors on the real WASM backend: equal to tfjs-backend-cpu, loadable from a folder and from an
 * http(s) URL (local server), fingerprinted, warmed up, leak-free.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { CATALOGUE } from '../../agent/extractors/catalogue';
import { loadExtractor } from '../../agent/extractors/load';
import { decodeImage, toModelInput } from '../../agent/image';
import { EdgeheadError } from '../../base/errors';
import { ROOT, SAMPLES, tmpDir } from '../support/cli';

const photo = new Uint8Array(fs.readFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg')));

async function featuresOn(backend: 'wasm' | 'cpu', ref: string): Promise<Float32Array> {
  await initBackend({ backend, threads: 1 });
  const ex = await loadExtractor({ ref });
  try {
    return tf.tidy(() => {
      const img = decodeImage(photo, { maxPixels: 1e8 });
      const input = toModelInput(img, { inputSize: ex.info.inputSize, valueRange: ex.info.valueRange, resize: 'squash' });
      return ex.extract(input).dataSync() as Float32Array;
    });
  } finally {
    ex.dispose();
  }
}

describe('catalogue extractors: WASM equals the CPU reference', () => {
  for (const entry of CATALOGUE) {
    test(`${entry.id}: ${entry.featureDim}-d, max |wasm - cpu| < 1e-4`, async () => {
      const wasm = await featuresOn('wasm', entry.id);
      const cpu = await featuresOn('cpu', entry.id);
      assert.equal(wasm.length, entry.featureDim);
      assert.equal(cpu.length, entry.featureDim);
      let maxDiff = 0;
      for (let i = 0; i < wasm.length; i++) maxDiff = Math.max(maxDiff, Math.abs(wasm[i]! - cpu[i]!));
      assert.ok(maxDiff < 1e-4, `max abs diff ${maxDiff}`);
      // A real photo lights up many features: guards against an all-zero (broken) cut.
      assert.ok(wasm.filter((v) => v > 0).length > entry.featureDim / 10, 'too few active features');
    });
  }
});

describe('loading from a folder and from a URL', () => {
  let server: http.Server;
  let base: string;
  const requests: string[] = [];
  const modelDir = path.join(ROOT, 'models', 'mobilenet_v2_100');

  before(async () => {
    await initBackend({ backend: 'wasm', threads: 1 });
    server = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      const u = new URL(req.url ?? '/', 'http://x');
      const m = /^\/models\/mnv2(?:\/(.*))?$/.exec(u.pathname);
      const file = m?.[1] ? path.join(modelDir, path.basename(m[1])) : undefined;
      if (!file || !fs.existsSync(file)) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-length': fs.statSync(file).size });
      fs.createReadStream(file).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('a model folder path loads with the catalogue fingerprint, size and dimension read from the model', async () => {
    const byId = await loadExtractor({ ref: 'mobilenet_v2_100' });
    const byPath = await loadExtractor({ ref: modelDir });
    assert.equal(byPath.info.fingerprint, byId.info.fingerprint);
    assert.deepEqual(byPath.info.inputSize, [224, 224]);
    assert.equal(byPath.info.featureDim, 1280);
    assert.equal(byPath.info.format, 'layers');
    byId.dispose();
    byPath.dispose();
  });

  test('an http URL downloads into the cache with sha256s, then loads from the cache without the network', async () => {
    const cacheDir = tmpDir();
    const progress: number[] = [];
    const first = await loadExtractor({ ref: `${base}/models/mnv2`, cacheDir, onProgress: (d) => progress.push(d) });
    assert.equal(first.info.featureDim, 1280);
    assert.ok(requests.some((r) => r === '/models/mnv2/model.json?tfjs-format=file'), `TF Hub style URL: ${requests.join(' ')}`);
    assert.ok(progress.length > 0, 'progress reported');
    const record = JSON.parse(fs.readFileSync(path.join(cacheDir, 'models', fs.readdirSync(path.join(cacheDir, 'models'))[0]!, 'source.json'), 'utf8'));
    assert.match(record.files['weights.bin'], /^[0-9a-f]{64}$/);
    const direct = await loadExtractor({ ref: modelDir });
    assert.equal(first.info.fingerprint, direct.info.fingerprint, 'same bytes, same fingerprint');
    const before = requests.length;
    const second = await loadExtractor({ ref: `${base}/models/mnv2`, cacheDir });
    assert.equal(requests.length, before, 'served from the verified cache');
    assert.equal(second.info.fingerprint, first.info.fingerprint);
    [first, direct, second].forEach((e) => e.dispose());
  });

  test('a corrupted cache is detected and downloaded again', async () => {
    const cacheDir = tmpDir();
    const ex = await loadExtractor({ ref: `${base}/models/mnv2/model.json`, cacheDir });
    ex.dispose();
    const dir = path.join(cacheDir, 'models', fs.readdirSync(path.join(cacheDir, 'models'))[0]!);
    const w = path.join(dir, 'weights.bin');
    const bytes = fs.readFileSync(w);
    bytes[100] ^= 0xff;
    fs.writeFileSync(w, bytes);
    const before = requests.length;
    const again = await loadExtractor({ ref: `${base}/models/mnv2/model.json`, cacheDir });
    assert.ok(requests.length > before, 'downloaded again');
    assert.notEqual(fs.readFileSync(w)[100], bytes[100]);
    again.dispose();
  });

  test('a URL that 404s is a DOWNLOAD_FAILED error naming the URL and status', async () => {
    await assert.rejects(loadExtractor({ ref: `${base}/nothing/here`, cacheDir: tmpDir() }), (e: unknown) => {
      assert.ok(e instanceof EdgeheadError);
      assert.equal(e.code, 'DOWNLOAD_FAILED');
      assert.match(e.message, /HTTP 404/);
      assert.match(e.message, /\/nothing\/here/);
      return true;
    });
  });

  test('the fingerprint changes when one weight byte changes', async () => {
    const copy = tmpDir();
    for (const f of ['model.json', 'weights.bin']) fs.copyFileSync(path.join(modelDir, f), path.join(copy, f));
    const original = await loadExtractor({ ref: copy });
    const w = fs.readFileSync(path.join(copy, 'weights.bin'));
    w[12345] ^= 1;
    fs.writeFileSync(path.join(copy, 'weights.bin'), w);
    const changed = await loadExtractor({ ref: copy });
    assert.notEqual(changed.info.fingerprint, original.info.fingerprint);
    original.dispose();
    changed.dispose();
  });

  test('a missing model folder is MODEL_NOT_FOUND naming the folder', async () => {
    await assert.rejects(loadExtractor({ ref: '/nonexistent/model-dir' }), /model folder not found: \/nonexistent\/model-dir/);
  });

  test('no tensors leak across 100 extractions', async () => {
    const ex = await loadExtractor({ ref: 'mobilenet_v2_140' });
    const input = tf.zeros([1, 224, 224, 3]) as tf.Tensor4D;
    const start = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) ex.extract(input).dispose();
    assert.equal(tf.memory().numTensors, start);
    input.dispose();
    ex.dispose();
  });
});
