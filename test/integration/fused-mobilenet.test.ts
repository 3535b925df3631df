/**
 * The catalogue's layers model (mobilenet_v2_100) on the fused executor: equal to tfjs-layers on a real photo and on
 * random inputs, on WASM (single thread) and on the CPU backend; leak-free; bound to the same fingerprint. Then the
 * graph model (mobilenet_v2_140) on the fused graph executor against tfjs-converter. How fast each path is, is
 * measured by `npm run bench` (the "stock" and "edgehead" rows, 1 thread), not here.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { catalogueEntry } from '../../agent/extractors/catalogue';
import { type Extractor, fingerprintOf, paramCountOf, type PartialInfo } from '../../agent/extractors/extractor';
import { buildFusedGraphModel } from '../../agent/extractors/fused-graph';
import { buildFusedLayersModel } from '../../agent/extractors/fused-layers';
import { loadFusedGraphExtractor, loadStockGraphExtractor } from '../../agent/extractors/graph-extractor';
import { loadFusedLayersExtractor, loadStockLayersExtractor } from '../../agent/extractors/layers-extractor';
import { loadExtractor } from '../../agent/extractors/load';
import { type ModelFolder, readModelFolder } from '../../agent/extractors/model-files';
import { decodeImage, toModelInput } from '../../agent/image';
import { ROOT, SAMPLES } from '../support/cli';

const ID = 'mobilenet_v2_100';
const TOL = 1e-4;
const photo = new Uint8Array(fs.readFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg')));
const entry = catalogueEntry(ID)!;
const folder: ModelFolder = readModelFolder(path.join(ROOT, 'models', ID));
const info: PartialInfo = {
  id: ID,
  source: 'catalogue',
  format: 'layers',
  valueRange: entry.valueRange,
  inputSize: entry.inputSize,
  fingerprint: fingerprintOf(folder),
  paramCount: paramCountOf(folder),
};

const photoInput = (): tf.Tensor4D =>
  tf.tidy(() => toModelInput(decodeImage(photo, { maxPixels: 1e8 }), { inputSize: entry.inputSize, valueRange: entry.valueRange, resize: 'squash' }));
const randomInput = (n: number, seed: number): tf.Tensor4D => tf.randomUniform([n, 224, 224, 3], 0, 1, 'float32', seed);

function compare(fused: Extractor, stock: Extractor, x: tf.Tensor4D): { diff: number; fused: Float32Array } {
  return tf.tidy(() => {
    const a = fused.extract(x);
    const b = stock.extract(x);
    assert.deepEqual(a.shape, [x.shape[0], entry.featureDim]);
    assert.deepEqual(a.shape, b.shape);
    return { diff: tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!, fused: a.dataSync() as Float32Array };
  });
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`${ID}: fused executor vs tfjs-layers (${backend})`, () => {
    let fused: Extractor;
    let stock: Extractor;
    before(async () => {
      await initBackend({ backend, threads: 1 });
      fused = loadFusedLayersExtractor(folder, info); // throws instead of falling back
      stock = await loadStockLayersExtractor(folder, info);
    });
    after(() => {
      fused.dispose();
      stock.dispose();
    });

    test('the whole network is fused: every BatchNormalization folded, every ReLU6 in a conv, every pad merged', () => {
      const m = buildFusedLayersModel(folder);
      m.dispose();
      assert.deepEqual(m.summary, { layers: 156, steps: 64, convs: 52, foldedBatchNorms: 52, fusedActivations: 35, mergedPaddings: 5 });
      assert.equal(fused.info.featureDim, entry.featureDim);
      assert.equal(fused.info.fingerprint, stock.info.fingerprint);
    });

    test(`a real photo: max |fused - tfjs-layers| < ${TOL}`, (t) => {
      const x = photoInput();
      const { diff, fused: f } = compare(fused, stock, x);
      x.dispose();
      t.diagnostic(`${backend} photo: max abs diff ${diff.toExponential(2)}`);
      assert.ok(diff < TOL, `max abs diff ${diff}`);
      assert.ok(f.filter((v) => v > 0).length > entry.featureDim / 10, 'too few active features');
    });

    test(`random inputs (batch of 2): max |fused - tfjs-layers| < ${TOL}`, (t) => {
      const x = randomInput(2, 7);
      const { diff } = compare(fused, stock, x);
      x.dispose();
      t.diagnostic(`${backend} random: max abs diff ${diff.toExponential(2)}`);
      assert.ok(diff < TOL, `max abs diff ${diff}`);
    });

    if (backend === 'cpu') return; // the rest is about the agent's backend (and CPU takes ~1.5 s per frame)

    test('loadExtractor() runs the catalogue model on the fused executor, same fingerprint', async () => {
      const ex = await loadExtractor({ ref: ID });
      try {
        assert.equal(ex.info.fingerprint, info.fingerprint);
        const x = photoInput();
        const [a, b] = tf.tidy(() => [ex.extract(x).dataSync(), fused.extract(x).dataSync()]);
        x.dispose();
        assert.deepEqual(a, b, 'bit-identical to the fused extractor');
      } finally {
        ex.dispose();
      }
    });

    test('no tensor leak over 50 calls; dispose() frees all weights', () => {
      const start = tf.memory().numTensors;
      const ex = loadFusedLayersExtractor(folder, info);
      const x = randomInput(1, 3);
      const warm = tf.memory().numTensors;
      for (let i = 0; i < 50; i++) tf.dispose(ex.extract(x));
      assert.equal(tf.memory().numTensors, warm);
      x.dispose();
      ex.dispose();
      assert.equal(tf.memory().numTensors, start);
    });
  });
}

describe('mobilenet_v2_140: fused graph executor vs tfjs-converter (wasm)', () => {
  const id = 'mobilenet_v2_140';
  const e140 = catalogueEntry(id)!;
  const f140 = readModelFolder(path.join(ROOT, 'models', id));
  const i140: PartialInfo = { ...info, id, format: 'graph', valueRange: e140.valueRange, inputSize: e140.inputSize, fingerprint: fingerprintOf(f140), paramCount: paramCountOf(f140) };
  let fused: Extractor;
  let stock: Extractor;
  before(async () => {
    await initBackend({ backend: 'wasm', threads: 1 });
    fused = loadFusedGraphExtractor(f140, i140); // throws instead of falling back
    stock = await loadStockGraphExtractor(f140, i140);
  });
  after(() => {
    fused.dispose();
    stock.dispose();
  });

  test('every node of the pruned TF-Hub graph is covered: 66 ops, 66 steps; loadExtractor picks it', async () => {
    const m = buildFusedGraphModel(f140);
    m.dispose();
    assert.deepEqual(m.summary, { nodes: 66, steps: 66 });
    const ex = await loadExtractor({ ref: id });
    try {
      assert.deepEqual(ex.info.executor, { kind: 'fused-graph', retention: 'lastUse' });
      assert.equal(ex.info.fingerprint, stock.info.fingerprint);
    } finally {
      ex.dispose();
    }
  });

  test('a real photo and a random batch of 2: within 1e-5 of tfjs-converter (same kernels); no tensor leak', (t) => {
    const start = tf.memory().numTensors;
    for (const x of [tf.tidy(() => toModelInput(decodeImage(photo, { maxPixels: 1e8 }), { inputSize: e140.inputSize, valueRange: e140.valueRange, resize: 'squash' })), randomInput(2, 5)]) {
      const d = tf.tidy(() => {
        const a = fused.extract(x);
        const b = stock.extract(x);
        assert.deepEqual(a.shape, [x.shape[0], e140.featureDim]);
        return tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
      });
      x.dispose();
      t.diagnostic(`max abs diff ${d}`);
      assert.ok(d <= 1e-5, `max abs diff ${d}`);
    }
    assert.equal(tf.memory().numTensors, start);
  });
});
