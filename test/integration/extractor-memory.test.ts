/**
 * A built extractor keeps its weights once, in the WASM heap: no JS copy of the model's bytes, of the decoded values
 * or of a weight cache hit stays behind (the steps' closures share scopes with the build's helpers, which kept ~20 MB
 * alive per model before release() existed). Measured as ArrayBuffer bytes after a full GC, the model still in use.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { CATALOGUE } from '../../agent/extractors/catalogue';
import { loadExtractor } from '../../agent/extractors/load';
import { decodeImage, toModelInput } from '../../agent/image';
import { SAMPLES, tmpDir } from '../support/cli';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** ArrayBuffer bytes still reachable after a full collection. */
function liveArrayBuffers(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

const photo = new Uint8Array(fs.readFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg')));
/** Less than the smallest copy a leak would keep: the 1.4 model's 4.1 MB of stored bytes. */
const SLACK = 1.5 * 2 ** 20;

before(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});

for (const entry of CATALOGUE) {
  for (const cache of ['no weight cache', 'weight cache miss', 'weight cache hit'] as const) {
    test(`${entry.id}, ${cache}: no JS copy of the weights outlives the build`, async () => {
      const dir = tmpDir('weights-');
      if (cache === 'weight cache hit') (await loadExtractor({ ref: entry.id, weightCacheDir: dir })).dispose();
      const before = liveArrayBuffers();
      const ex = await loadExtractor({ ref: entry.id, weightCacheDir: cache === 'no weight cache' ? false : dir });
      try {
        const features = tf.tidy(() => {
          const img = decodeImage(photo, { maxPixels: 1e8 });
          const input = toModelInput(img, { inputSize: ex.info.inputSize, valueRange: ex.info.valueRange, resize: 'squash' });
          return ex.extract(input).dataSync();
        });
        assert.equal(features.length, entry.featureDim);
        const grew = liveArrayBuffers() - before;
        assert.ok(grew < SLACK, `${(grew / 2 ** 20).toFixed(1)} MB of ArrayBuffers held by the built extractor`);
      } finally {
        ex.dispose();
      }
    });
  }
}
