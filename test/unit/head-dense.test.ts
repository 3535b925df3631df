import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { EdgeheadError } from '../../base/errors';
import { makeHeadFile, type HeadFile, type TestVector } from '../../protocol/head/format';
import { DenseHead } from '../../agent/inference/dense-head';

// kernel [3, 2]: rows are feature dims, columns classes
const KERNEL = [
  [0.5, -0.5],
  [1, 2],
  [-1, 0.25],
];
const BIAS = [0.1, -0.1];

function tinyHead(classes = ['cat', 'dog'], kernel = KERNEL, bias = BIAS, testVectors?: TestVector[]): HeadFile {
  return makeHeadFile({
    id: 'demo',
    version: 1,
    classes,
    extractor: { id: 'mobilenet_v2_1.0_224', fingerprint: createHash('sha256').update('m').digest('hex') },
    kernel: new Float32Array(kernel.flat()),
    bias: new Float32Array(bias),
    ...(testVectors ? { testVectors } : {}),
  });
}

function handLogits(x: number[]): number[] {
  return [0, 1].map((j) => x.reduce((s, xi, i) => s + xi * KERNEL[i]![j]!, BIAS[j]!));
}

describe('DenseHead', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  test('logits equal a hand-computed matmul + bias', () => {
    const head = DenseHead.fromFile(tinyHead());
    const xs = [
      [1, 2, 3],
      [-1, 0.5, 4],
    ];
    const x = tf.tensor2d(xs);
    const logits = head.logits(x);
    assert.deepEqual(logits.shape, [2, 2]);
    const got = logits.arraySync();
    xs.forEach((row, r) => handLogits(row).forEach((want, j) => assert.ok(Math.abs(got[r]![j]! - want) < 1e-6, `[${r}][${j}] ${got[r]![j]} vs ${want}`)));
    // 1*0.5 + 2*1 + 3*-1 + 0.1 = -0.4 ; 1*-0.5 + 2*2 + 3*0.25 - 0.1 = 4.15
    assert.ok(Math.abs(got[0]![0]! - -0.4) < 1e-6 && Math.abs(got[0]![1]! - 4.15) < 1e-6);
    tf.dispose([x, logits]);
    head.dispose();
  });

  test('exposes manifest, classes and featureDim', () => {
    const head = DenseHead.fromFile(tinyHead());
    assert.deepEqual(head.classes, ['cat', 'dog']);
    assert.equal(head.featureDim, 3);
    assert.equal(head.manifest.id, 'demo');
    head.dispose();
  });

  test('predict: softmax scores, top-k sorted descending, k clamped to the class count', () => {
    const classes = ['a', 'b', 'c', 'd'];
    // identity-like kernel so the logits are the features (3-d -> 4 classes: class d has logit from bias only)
    const kernel = [
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ];
    const head = DenseHead.fromFile(tinyHead(classes, kernel, [0, 0, 0, 0.5]));
    const x = tf.tensor2d([
      [1, 3, 2],
      [0, 0, 0],
    ]);
    const [first, second] = head.predict(x, 2);
    assert.deepEqual(first!.map((p) => p.label), ['b', 'c']);
    const z = Math.exp(1) + Math.exp(3) + Math.exp(2) + Math.exp(0.5);
    assert.ok(Math.abs(first![0]!.score - Math.exp(3) / z) < 1e-6);
    assert.ok(Math.abs(first![1]!.score - Math.exp(2) / z) < 1e-6);
    // second row: d has the highest logit, then a tie among a, b, c broken by class index
    assert.deepEqual(second!.map((p) => p.label), ['d', 'a']);
    const all = head.predict(x, 10);
    assert.equal(all[0]!.length, 4);
    assert.ok(Math.abs(all[0]!.reduce((s, p) => s + p.score, 0) - 1) < 1e-6);
    for (let i = 1; i < 4; i++) assert.ok(all[0]![i - 1]!.score >= all[0]![i]!.score);
    assert.throws(() => head.predict(x, 0), EdgeheadError);
    x.dispose();
    head.dispose();
  });

  test('dimension mismatch is HEAD_MISMATCH naming both sizes', () => {
    const head = DenseHead.fromFile(tinyHead());
    const x = tf.zeros([1, 1280]) as tf.Tensor2D;
    for (const call of [() => head.logits(x), () => head.predict(x, 1)]) {
      assert.throws(call, (e) => e instanceof EdgeheadError && e.code === 'HEAD_MISMATCH' && e.message === 'head expects 3-d features, extractor gives 1280-d');
    }
    const rank1 = tf.zeros([3]) as unknown as tf.Tensor2D;
    assert.throws(() => head.logits(rank1), (e) => e instanceof EdgeheadError && e.code === 'HEAD_MISMATCH');
    tf.dispose([x, rank1]);
    head.dispose();
  });

  test('no tensor leak over 100 predicts and logits; dispose frees the weights', () => {
    const before = tf.memory().numTensors;
    const head = DenseHead.fromFile(tinyHead());
    assert.equal(tf.memory().numTensors, before + 2);
    const x = tf.tensor2d([[1, 2, 3]]);
    head.predict(x, 1); // warm-up
    const start = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      head.predict(x, 2);
      head.logits(x).dispose();
    }
    assert.equal(tf.memory().numTensors, start);
    x.dispose();
    head.dispose();
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => head.predict(tf.zeros([1, 3]) as tf.Tensor2D, 1), /after dispose/);
  });

  test('a head built inside tf.tidy survives the tidy', () => {
    let head: DenseHead | undefined;
    tf.tidy(() => {
      head = DenseHead.fromFile(tinyHead());
    });
    assert.ok(head);
    const x = tf.tensor2d([[1, 2, 3]]);
    assert.equal(head.predict(x, 1)[0]![0]!.label, 'dog');
    x.dispose();
    head.dispose();
  });

  test('an empty batch predicts nothing', () => {
    const head = DenseHead.fromFile(tinyHead());
    const x = tf.zeros([0, 3]) as tf.Tensor2D;
    assert.deepEqual(head.predict(x, 1), []);
    x.dispose();
    head.dispose();
  });

  test('weights inconsistent with the manifest are refused', () => {
    const file = tinyHead();
    assert.throws(() => DenseHead.fromFile({ ...file, kernel: new Float32Array(5) }), (e) => e instanceof EdgeheadError && e.code === 'BAD_HEAD');
  });

  test('checkTestVectors compares the backend logits with the publisher logits', () => {
    const good = DenseHead.fromFile(tinyHead(undefined, undefined, undefined, [{ features: [1, 2, 3], logits: handLogits([1, 2, 3]) }]));
    const r = good.checkTestVectors();
    assert.equal(r.ok, true);
    assert.ok(r.maxAbsDiff < 1e-5);
    const bad = DenseHead.fromFile(tinyHead(undefined, undefined, undefined, [{ features: [1, 2, 3], logits: [0, 0] }]));
    const r2 = bad.checkTestVectors();
    assert.equal(r2.ok, false);
    assert.match((r2 as { reason: string }).reason, /test vector 0, logit 0 \(cat\): expected 0, got -0\.4/);
    const none = DenseHead.fromFile(tinyHead());
    assert.deepEqual(none.checkTestVectors(), { ok: true, count: 0, maxAbsDiff: 0 });
    [good, bad, none].forEach((h) => h.dispose());
  });
});
