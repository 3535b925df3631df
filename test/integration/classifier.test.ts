/** The frame pipeline on WASM with the demo head: leak-free, swap-safe, predictable. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { loadExtractor } from '../../agent/extractors/load';
import { DenseHead } from '../../agent/inference/dense-head';
import { DEMO_HEAD_PATH, readHeadFile } from '../../protocol/head/files';
import { Classifier } from '../../agent/inference/classifier';
import { SAMPLES } from '../support/cli';

test('numTensors is unchanged over 100 classifications (and bad frames leak nothing either)', async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  const headFile = readHeadFile(DEMO_HEAD_PATH(), 1 << 24);
  const extractor = await loadExtractor({ ref: headFile.manifest.extractor.id });
  const head = DenseHead.fromFile(headFile);
  const classifier = new Classifier(extractor, head, { resize: 'squash', maxPixels: 1e8, topK: 3 });
  const frames = ['fish/fish1.jpg', 'monument/IndiaGate.jpg'].map((f) => new Uint8Array(fs.readFileSync(path.join(SAMPLES, f))));
  classifier.classify(frames[0]!); // first call may allocate backend-side state
  const start = tf.memory().numTensors;
  for (let i = 0; i < 100; i++) {
    const r = classifier.classify(frames[i % 2]!);
    assert.equal(r.predictions.length, 3);
  }
  assert.throws(() => classifier.classify(new Uint8Array([0xff, 0xd8, 0xff, 0x00, 0x01])));
  assert.equal(tf.memory().numTensors, start);
  assert.equal(classifier.lastFeatures?.length, extractor.info.featureDim);
  head.dispose();
  extractor.dispose();
});
