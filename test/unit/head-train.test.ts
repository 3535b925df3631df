import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { EdgeheadError } from '../../base/errors';
import { prng } from '../../base/prng';
import { DEFAULT_TRAIN_OPTIONS, formatConfusion, splitStratified, trainSoftmaxHead, type TrainOptions } from '../../operator/training/train';
import { decodeHead, encodeHead, makeHeadFile } from '../../protocol/head/format';
import { DenseHead } from '../../agent/inference/dense-head';


/** Gaussian clusters: `classes` centres in `dim`-d space, unit noise. Non-negative-ish like ReLU6 features. */
function clusters(classes: number, perClass: number, dim: number, seed: number, spread = 3): { features: Float32Array[]; labels: number[] } {
  const rand = prng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const centres = Array.from({ length: classes }, () => Float32Array.from({ length: dim }, () => 2 + spread * gauss()));
  const features: Float32Array[] = [];
  const labels: number[] = [];
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < perClass; i++) {
      features.push(Float32Array.from(centres[c]!, (m) => m + gauss()));
      labels.push(c);
    }
  }
  return { features, labels };
}

const FAST: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, epochs: 60, patience: 0 };

describe('splitStratified', () => {
  test('deterministic for a seed, stratified, disjoint and complete', () => {
    const labels = [...Array(10).fill(0), ...Array(20).fill(1), ...Array(5).fill(2), 3, ...Array(2).fill(4)];
    const a = splitStratified(labels, 0.2, 7);
    assert.deepEqual(splitStratified(labels, 0.2, 7), a);
    assert.notDeepEqual(splitStratified(labels, 0.2, 8), a);
    assert.deepEqual([...a.train, ...a.val].sort((x, y) => x - y), labels.map((_, i) => i));
    const valCount = (c: number) => a.val.filter((i) => labels[i] === c).length;
    assert.deepEqual([0, 1, 2, 3, 4].map(valCount), [2, 4, 1, 0, 1]);
    assert.ok(a.train.some((i) => labels[i] === 4), 'a 2-sample class keeps one training sample');
  });

  test('valSplit 0 puts everything in training; out-of-range valSplit is refused', () => {
    assert.deepEqual(splitStratified([0, 0, 1, 1], 0, 1), { train: [0, 1, 2, 3], val: [] });
    assert.throws(() => splitStratified([0, 1], 0.95, 1), EdgeheadError);
    assert.throws(() => splitStratified([0, 1], -0.1, 1), EdgeheadError);
  });

  test('tiny valSplit still gives every class with >= 2 samples a validation sample', () => {
    const labels = [0, 0, 0, 1, 1, 2];
    const { val } = splitStratified(labels, 0.01, 3);
    assert.deepEqual(val.map((i) => labels[i]).sort(), [0, 1]);
  });
});

describe('trainSoftmaxHead', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  test('separable 4-class clusters in 32-d reach >= 0.95 validation accuracy; no tensors leak', async () => {
    const { features, labels } = clusters(4, 60, 32, 11);
    const before = tf.memory().numTensors;
    const reports: number[] = [];
    const r = await trainSoftmaxHead(features, labels, 4, { ...FAST, onEpoch: (e) => reports.push(e.epoch) });
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.ok(r.metrics.valAccuracy! >= 0.95, `val accuracy ${r.metrics.valAccuracy}`);
    assert.ok(r.metrics.trainAccuracy >= 0.95);
    assert.equal(r.metrics.trainCount + r.metrics.valCount, 240);
    assert.equal(r.metrics.valCount, 48);
    assert.equal(r.kernel.length, 32 * 4);
    assert.equal(r.bias.length, 4);
    assert.deepEqual(reports, Array.from({ length: r.metrics.epochsRun }, (_, i) => i + 1));
    // confusion: rows true, columns predicted, over the validation set
    const total = r.metrics.confusion.flat().reduce((a, b) => a + b, 0);
    assert.equal(total, r.metrics.valCount);
    r.metrics.confusion.forEach((row) => assert.equal(row.reduce((a, b) => a + b, 0), 12));
    const diagonal = r.metrics.confusion.reduce((a, row, i) => a + row[i]!, 0);
    assert.ok(Math.abs(diagonal / r.metrics.valCount - r.metrics.valAccuracy!) < 1e-12);
  });

  test('deterministic: the same seed gives a bit-identical kernel, another seed does not', async () => {
    const { features, labels } = clusters(3, 30, 16, 5);
    const opts = { ...FAST, epochs: 15 };
    const a = await trainSoftmaxHead(features, labels, 3, opts);
    const b = await trainSoftmaxHead(features, labels, 3, opts);
    assert.deepEqual(new Uint8Array(b.kernel.buffer), new Uint8Array(a.kernel.buffer));
    assert.deepEqual(b.bias, a.bias);
    assert.deepEqual(b.metrics, a.metrics);
    const c = await trainSoftmaxHead(features, labels, 3, { ...opts, seed: 43 });
    assert.notDeepEqual(c.kernel, a.kernel);
  });

  test('early stopping: stops after `patience` epochs without improvement and returns the best weights', async () => {
    const { features, labels } = clusters(4, 40, 32, 21, 4);
    const valLosses: number[] = [];
    const r = await trainSoftmaxHead(features, labels, 4, {
      ...DEFAULT_TRAIN_OPTIONS,
      epochs: 500,
      patience: 3,
      learningRate: 0.05,
      onEpoch: (e) => valLosses.push(e.valLoss!),
    });
    assert.ok(r.metrics.epochsRun < 500, `ran all ${r.metrics.epochsRun} epochs`);
    assert.equal(r.metrics.epochsRun - r.metrics.bestEpoch, 3);
    assert.equal(valLosses.length, r.metrics.epochsRun);
    // The reported val loss is the one of the best epoch, i.e. the weights were restored.
    assert.ok(Math.abs(r.metrics.valLoss! - valLosses[r.metrics.bestEpoch - 1]!) < 1e-6, `${r.metrics.valLoss} vs ${valLosses[r.metrics.bestEpoch - 1]}`);
    assert.ok(r.metrics.valLoss! <= Math.min(...valLosses) + 1e-4);
  });

  test('converges to the optimum of mean cross-entropy + l2 * sum(kernel^2) (gradient checked in float64)', async () => {
    const rand = prng(5);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const [D, C, N, l2] = [4, 3, 30, 0.05];
    const features = Array.from({ length: N }, (_, i) => Float32Array.from({ length: D }, (_, d) => gauss() + (d === i % C ? 1 : 0)));
    const labels = features.map((_, i) => i % C);
    const r = await trainSoftmaxHead(features, labels, C, { ...DEFAULT_TRAIN_OPTIONS, valSplit: 0, batchSize: N, epochs: 1000, learningRate: 0.05, l2 });
    const gW = new Float64Array(D * C);
    const gb = new Float64Array(C);
    features.forEach((x, i) => {
      const z = Array.from({ length: C }, (_, j) => r.bias[j]! + x.reduce((s, xd, d) => s + xd * r.kernel[d * C + j]!, 0));
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const sum = e.reduce((a, b) => a + b);
      for (let j = 0; j < C; j++) {
        const delta = e[j]! / sum - (labels[i] === j ? 1 : 0);
        gb[j]! += delta / N;
        for (let d = 0; d < D; d++) gW[d * C + j]! += (x[d]! * delta) / N;
      }
    });
    for (let k = 0; k < D * C; k++) gW[k]! += 2 * l2 * r.kernel[k]!;
    const worst = Math.max(...gW.map(Math.abs), ...gb.map(Math.abs));
    assert.ok(worst < 1e-4, `gradient at the returned weights is ${worst}, not ~0`);
  });

  test('without validation: all epochs run, confusion is over the training set', async () => {
    const { features, labels } = clusters(2, 10, 4, 9);
    const r = await trainSoftmaxHead(features, labels, 2, { ...FAST, epochs: 5, valSplit: 0, patience: 1 });
    assert.equal(r.metrics.epochsRun, 5);
    assert.equal(r.metrics.bestEpoch, 5);
    assert.equal(r.metrics.valAccuracy, null);
    assert.equal(r.metrics.valLoss, null);
    assert.equal(r.metrics.valCount, 0);
    assert.equal(r.metrics.confusion.flat().reduce((a, b) => a + b, 0), r.metrics.trainCount);
  });

  test('bad inputs are refused with BAD_ARGS', async () => {
    const { features, labels } = clusters(2, 4, 3, 1);
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [trainSoftmaxHead(features, labels.map(() => 0), 2, FAST), /class 1 has no training samples/],
      [trainSoftmaxHead(features, [...labels.slice(1), 7], 2, FAST), /label 7 is 7/],
      [trainSoftmaxHead(features, labels.slice(1), 2, FAST), /8 feature vectors but 7 labels/],
      [trainSoftmaxHead([...features, new Float32Array(2)], [...labels, 0], 2, FAST), /feature vector 8 has 2 values/],
      [trainSoftmaxHead(features, labels, 2, { ...FAST, epochs: 0 }), /epochs must be an integer >= 1/],
      [trainSoftmaxHead(features, labels, 2, { ...FAST, valSplit: 1 }), /valSplit/],
      [trainSoftmaxHead([], [], 2, FAST), /no training samples/],
    ];
    for (const [p, re] of cases) await assert.rejects(p, (e) => e instanceof EdgeheadError && e.code === 'BAD_ARGS' && re.test(e.message));
  });

  test('end to end: train -> encode -> decode -> DenseHead reproduces the validation accuracy', async () => {
    const { features, labels } = clusters(3, 40, 24, 33);
    const r = await trainSoftmaxHead(features, labels, 3, { ...FAST, epochs: 40 });
    const file = makeHeadFile({
      id: 'e2e',
      version: 1,
      classes: ['a', 'b', 'c'],
      extractor: { id: 'synthetic', fingerprint: createHash('sha256').update('s').digest('hex') },
      kernel: r.kernel,
      bias: r.bias,
      metrics: { ...r.metrics },
    });
    const head = DenseHead.fromFile(decodeHead(encodeHead(file)));
    const { val } = splitStratified(labels, FAST.valSplit, FAST.seed);
    const x = tf.tensor2d(val.map((i) => Array.from(features[i]!)));
    const preds = head.predict(x, 1);
    const hits = preds.filter((p, k) => p[0]!.label === ['a', 'b', 'c'][labels[val[k]!]!]).length;
    assert.equal(hits / val.length, r.metrics.valAccuracy);
    x.dispose();
    head.dispose();
  });
});

describe('formatConfusion', () => {
  test('aligned table with recall per class', () => {
    const out = formatConfusion([[10, 0], [1, 119]], ['cat', 'a-much-longer-label']);
    const lines = out.split('\n');
    assert.equal(lines.length, 3);
    assert.equal(new Set(lines.map((l) => l.length)).size, 1, `unequal widths:\n${out}`);
    assert.match(lines[0]!, /^true \\ predicted\s+cat\s+a-much-longer-l…\s+recall$/);
    assert.match(lines[1]!, /^cat\s+10\s+0\s+100\.0%$/);
    assert.match(lines[2]!, /^a-much-longer-l…\s+1\s+119\s+99\.2%$/);
    // numbers are right-aligned under their column header
    assert.equal(lines[1]!.indexOf('10') + 2, lines[0]!.indexOf('cat') + 3);
  });

  test('a class without samples shows "-" as recall', () => {
    assert.match(formatConfusion([[0, 0], [0, 3]], ['x', 'y']).split('\n')[1]!, /-$/);
  });
});
