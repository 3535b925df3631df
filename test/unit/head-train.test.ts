import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EdgeheadError } from '../../base/errors';
import { prng } from '../../base/prng';
import { FIT_DEFAULTS, fitLogistic, type FitProblem, logitsOf, objective, reduceToRowSpace, sampleWeights } from '../../operator/training/fit';
import { applyTemperature, fitTemperature, temperatureNll } from '../../operator/training/calibrate';
import { assignFolds, groupsPerClass } from '../../operator/training/cv';
import { DEFAULT_TRAIN_OPTIONS, formatConfusion, L2_GRID, trainHead, type TrainSample } from '../../operator/training/train';
import { encodeHead, makeHeadFile } from '../../protocol/head/format';

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Gaussian clusters: `classes` centres in `dim`-d space (spread apart by `spread`), unit noise. */
function clusters(classes: number, perClass: number, dim: number, seed: number, spread = 3): { features: Float32Array[]; labels: number[] } {
  const gauss = gaussian(prng(seed));
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

function problemOf(features: Float32Array[], labels: number[], numClasses: number, balanced = false): FitProblem {
  const dim = features[0]!.length;
  const x = new Float32Array(features.length * dim);
  features.forEach((f, i) => x.set(f, i * dim));
  const l = Int32Array.from(labels);
  return { x, n: features.length, dim, numClasses, labels: l, weights: sampleWeights(l, numClasses, balanced) };
}

/** The gradient of the loss in plain float64, written independently of fit.ts. */
function referenceGradient(p: FitProblem, params: Float64Array, l2: number): Float64Array {
  const { dim: D, numClasses: C, n: N } = p;
  const g = new Float64Array(params.length);
  const wsum = p.weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < N; i++) {
    const z = Array.from({ length: C }, (_, j) => params[D * C + j]! + Array.from({ length: D }, (_, d) => p.x[i * D + d]! * params[d * C + j]!).reduce((a, b) => a + b, 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b);
    for (let j = 0; j < C; j++) {
      const delta = ((e[j]! / s - (p.labels[i] === j ? 1 : 0)) * p.weights[i]!) / wsum;
      g[D * C + j]! += delta;
      for (let d = 0; d < D; d++) g[d * C + j]! += p.x[i * D + d]! * delta;
    }
  }
  for (let k = 0; k < D * C; k++) g[k]! += 2 * l2 * params[k]!;
  return g;
}

const maxAbs = (a: ArrayLike<number>) => Math.max(...Array.from(a, Math.abs));

describe('fitLogistic (L-BFGS)', () => {
  test('matches the known solution of a tiny symmetric problem', () => {
    // x = +1 -> class 0, x = -1 -> class 1, l2 = 0.25. With d = w0 - w1 the loss is log(1 + e^-d) + l2 d^2 / 2, so at
    // the optimum sigmoid(-d) = l2 d, w0 = -w1 = d / 2 and the bias is 0.
    const l2 = 0.25;
    let lo = 0;
    let hi = 4;
    for (let k = 0; k < 200; k++) {
      const mid = (lo + hi) / 2;
      if (1 / (1 + Math.exp(mid)) > l2 * mid) lo = mid;
      else hi = mid;
    }
    const d = (lo + hi) / 2;
    const p = problemOf([Float32Array.of(1), Float32Array.of(-1)], [0, 1], 2);
    const r = fitLogistic(p, { l2, gradTol: 1e-10 });
    assert.ok(r.converged);
    assert.ok(Math.abs(r.params[0]! - d / 2) < 1e-8, `w0 ${r.params[0]} vs ${d / 2}`);
    assert.ok(Math.abs(r.params[1]! + d / 2) < 1e-8, `w1 ${r.params[1]} vs ${-d / 2}`);
    assert.ok(maxAbs(r.params.subarray(2)) < 1e-8, `bias ${r.params.subarray(2)}`);
  });

  test('the analytic gradient matches an independent float64 reference', () => {
    const { features, labels } = clusters(3, 5, 4, 3);
    const p = problemOf(features, labels, 3, true);
    p.weights[0] = 3; // unequal weights
    const rand = prng(9);
    const params = Float64Array.from({ length: 4 * 3 + 3 }, () => rand() - 0.5);
    const g = new Float64Array(params.length);
    objective(p, params, 0.1, g);
    const ref = referenceGradient(p, params, 0.1);
    g.forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) < 1e-12, `component ${i}: ${v} vs ${ref[i]}`));
  });

  test('non-separable data: the loss never increases and the fit ends at a zero gradient', () => {
    const { features, labels } = clusters(4, 30, 8, 21, 0.7); // overlapping clusters
    const p = problemOf(features, labels, 4, true);
    const r = fitLogistic(p, { l2: 1e-3, gradTol: 1e-8 });
    assert.ok(r.converged, `not converged after ${r.iterations} iterations`);
    for (let i = 1; i < r.history.length; i++) assert.ok(r.history[i]! <= r.history[i - 1]!, `loss rose at iteration ${i}`);
    assert.ok(r.history[r.history.length - 1]! < r.history[0]! * 0.9);
    assert.ok(maxAbs(referenceGradient(p, r.params, 1e-3)) < 1e-6);
    const z = logitsOf(r.params, p.x, p.n, p.dim, 4);
    let hits = 0;
    labels.forEach((y, i) => (hits += [0, 1, 2, 3].reduce((b, j) => (z[i * 4 + j]! > z[i * 4 + b]! ? j : b), 0) === y ? 1 : 0));
    assert.ok(hits / labels.length < 1, 'the clusters were meant to overlap');
  });

  test('separable data with tiny l2: every training sample right, converged within the iteration budget', () => {
    const { features, labels } = clusters(3, 20, 16, 5);
    const p = problemOf(features, labels, 3);
    const r = fitLogistic(p, { l2: 1e-4 });
    assert.ok(r.converged && r.iterations < FIT_DEFAULTS.maxIter);
    const z = logitsOf(r.params, p.x, p.n, p.dim, 3);
    labels.forEach((y, i) => assert.equal([0, 1, 2].reduce((b, j) => (z[i * 3 + j]! > z[i * 3 + b]! ? j : b), 0), y));
  });

  test('a warm start reaches the same optimum', () => {
    const { features, labels } = clusters(3, 10, 6, 8, 1);
    const p = problemOf(features, labels, 3);
    const cold = fitLogistic(p, { l2: 0.05, gradTol: 1e-10 });
    const warm = fitLogistic(p, { l2: 0.05, gradTol: 1e-10, init: fitLogistic(p, { l2: 1 }).params });
    cold.params.forEach((v, i) => assert.ok(Math.abs(v - warm.params[i]!) < 1e-6));
  });

  test('class-balanced weights: each class sums to n / classes', () => {
    const w = sampleWeights([0, 0, 0, 1], 2, true);
    assert.deepEqual(Array.from(w), [2 / 3, 2 / 3, 2 / 3, 2]);
    assert.deepEqual(Array.from(sampleWeights([0, 0, 0, 1], 2, false)), [1, 1, 1, 1]);
  });
});

describe('temperature scaling', () => {
  test('recovers the over-confidence of scaled logits and lowers the NLL', () => {
    const rand = prng(4);
    const gauss = gaussian(rand);
    const n = 2000;
    const c = 3;
    const logits = new Float64Array(n * c);
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const z = [gauss(), gauss(), gauss()];
      const e = z.map(Math.exp);
      const s = e.reduce((a, b) => a + b);
      let u = rand() * s;
      let y = 0;
      while (u > e[y]! && y < c - 1) u -= e[y++]!;
      labels.push(y); // drawn from softmax(z): z are calibrated logits
      z.forEach((v, j) => (logits[i * c + j] = 4 * v)); // ... shown 4x over-confident
    }
    const t = fitTemperature(logits, labels, c);
    assert.ok(t > 3 && t < 5, `temperature ${t}`);
    assert.ok(temperatureNll(logits, labels, c, t) < temperatureNll(logits, labels, c, 1));
    const scaled = applyTemperature(Float64Array.of(4, -2), 2);
    assert.deepEqual(Array.from(scaled), [2, -1]);
  });

  test('no rows -> temperature 1', () => {
    assert.equal(fitTemperature(new Float64Array(0), [], 3), 1);
  });
});

describe('folds', () => {
  test('stratified, a group (image + mirror) never split, independent of input order, seeded', () => {
    const keys: string[] = [];
    const labels: number[] = [];
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 7 + c; i++) {
        keys.push(`c${c}/img${i}.jpg`, `c${c}/img${i}.jpg`); // original and mirror
        labels.push(c, c);
      }
    }
    const folds = assignFolds(keys, labels, 5, 42);
    for (let i = 0; i < keys.length; i += 2) assert.equal(folds[i], folds[i + 1], `${keys[i]} split from its mirror`);
    for (let c = 0; c < 3; c++) {
      const sizes = [0, 1, 2, 3, 4].map((f) => keys.filter((_, i) => labels[i] === c && folds[i] === f && i % 2 === 0).length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `class ${c} fold sizes ${sizes}`);
    }
    const order = keys.map((_, i) => i).reverse();
    const reversed = assignFolds(order.map((i) => keys[i]!), order.map((i) => labels[i]!), 5, 42);
    order.forEach((i, r) => assert.equal(reversed[r], folds[i]));
    assert.notDeepEqual(assignFolds(keys, labels, 5, 43), folds);
    assert.deepEqual(groupsPerClass(keys, labels, 3), [7, 8, 9]);
  });
});

function trainSamples(features: Float32Array[], labels: number[], mirror = true): TrainSample[] {
  return features.flatMap((f, i) => {
    const s: TrainSample[] = [{ features: f, label: labels[i]!, group: `s${String(i).padStart(3, '0')}` }];
    if (mirror) s.push({ features: f.map((v) => v + 0.1), label: labels[i]!, group: s[0]!.group, augmented: true });
    return s;
  });
}

describe('trainHead', () => {
  const FAST = { ...DEFAULT_TRAIN_OPTIONS, grid: [1e-3, 1e-1, 10] };

  test('chooses its l2 from the grid by cross-validation and reports out-of-fold metrics of originals only', () => {
    const { features, labels } = clusters(4, 12, 16, 11, 1.2);
    const steps: number[] = [];
    const r = trainHead(trainSamples(features, labels), 4, { ...FAST, onStep: (d) => steps.push(d) });
    const m = r.metrics;
    assert.equal(m.folds, 5);
    assert.ok(FAST.grid.includes(m.l2));
    assert.deepEqual(m.grid.map((g) => g.l2), FAST.grid);
    const best = Math.min(...m.grid.map((g) => g.rawNll));
    assert.equal(m.grid.find((g) => g.l2 === m.l2)!.rawNll, best);
    assert.equal(m.sampleCount, 48);
    assert.equal(m.augmentedCount, 48);
    assert.equal(m.confusion.flat().reduce((a, b) => a + b, 0), 48);
    assert.ok(m.cvAccuracy! > 0.8, `cv accuracy ${m.cvAccuracy}`);
    assert.deepEqual(steps, Array.from({ length: 5 * 3 + 1 }, (_, i) => i + 1));
    assert.equal(r.kernel.length, 16 * 4);
    assert.equal(r.bias.length, 4);
  });

  test('the temperature is folded into the weights', () => {
    const { features, labels } = clusters(3, 10, 8, 2, 0.8);
    const s = trainSamples(features, labels, false);
    const raw = trainHead(s, 3, { ...FAST, calibrate: false });
    const cal = trainHead(s, 3, FAST);
    assert.equal(raw.metrics.temperature, 1);
    assert.notEqual(cal.metrics.temperature, 1);
    assert.equal(cal.metrics.l2, raw.metrics.l2);
    raw.kernel.forEach((v, i) => assert.ok(Math.abs(v / cal.metrics.temperature - cal.kernel[i]!) <= 1e-6 * Math.max(1, Math.abs(v))));
  });

  test('same samples and options -> byte-identical head files (fixed createdAt) and weights sha256', () => {
    const { features, labels } = clusters(3, 9, 12, 5, 0.8);
    const bytes = () => {
      const r = trainHead(trainSamples(features, labels), 3, FAST);
      const file = makeHeadFile({
        id: 'det',
        version: 1,
        classes: ['a', 'b', 'c'],
        extractor: { id: 'synthetic', fingerprint: createHash('sha256').update('s').digest('hex') },
        kernel: r.kernel,
        bias: r.bias,
        createdAt: new Date('2020-01-01T00:00:00Z'),
        metrics: { ...r.metrics },
      });
      return { encoded: Buffer.from(encodeHead(file)), sha: file.manifest.sha256 };
    };
    const a = bytes();
    const b = bytes();
    assert.ok(a.encoded.equals(b.encoded), 'head files differ');
    assert.equal(a.sha, b.sha);
    const other = trainHead(trainSamples(features, labels), 3, { ...FAST, seed: 7 });
    const same = trainHead(trainSamples(features, labels), 3, FAST);
    assert.ok(other.metrics.grid.some((g, i) => g.rawNll !== same.metrics.grid[i]!.rawNll), 'another seed, other folds');
  });

  test('too few samples per class to cross-validate: the fallback l2, no temperature, training confusion', () => {
    const { features, labels } = clusters(2, 1, 4, 1);
    const r = trainHead(trainSamples(features, labels), 2, DEFAULT_TRAIN_OPTIONS);
    assert.equal(r.metrics.folds, 0);
    assert.equal(r.metrics.cvAccuracy, null);
    assert.equal(r.metrics.temperature, 1);
    assert.equal(r.metrics.confusion.flat().reduce((a, b) => a + b, 0), 2);
    assert.ok(L2_GRID.length > 5);
  });

  test('bad inputs are refused with BAD_ARGS', () => {
    const { features, labels } = clusters(2, 4, 3, 1);
    const s = trainSamples(features, labels, false);
    const cases: Array<[() => unknown, RegExp]> = [
      [() => trainHead(s.map((x) => ({ ...x, label: 0 })), 2, DEFAULT_TRAIN_OPTIONS), /class 1 has no training samples/],
      [() => trainHead([...s, { features: new Float32Array(3), label: 7, group: 'x' }], 2, DEFAULT_TRAIN_OPTIONS), /label 8 is 7/],
      [() => trainHead([...s, { features: new Float32Array(2), label: 0, group: 'x' }], 2, DEFAULT_TRAIN_OPTIONS), /feature vector 8 has 2 values/],
      [() => trainHead([...s, { features: Float32Array.of(1, NaN, 0), label: 0, group: 'x' }], 2, DEFAULT_TRAIN_OPTIONS), /non-finite value at 1/],
      [() => trainHead([], 2, DEFAULT_TRAIN_OPTIONS), /no training samples/],
      [() => trainHead(s, 2, { ...DEFAULT_TRAIN_OPTIONS, l2: -1 }), /l2 must be >= 0/],
    ];
    for (const [f, re] of cases) assert.throws(f, (e) => e instanceof EdgeheadError && e.code === 'BAD_ARGS' && re.test(e.message));
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
  });
});

describe('reduceToRowSpace (fewer samples than features)', () => {
  test('the fit in the row space gives the same logits and loss as the fit on the full features', () => {
    const { features, labels } = clusters(3, 6, 40, 21, 0.8);
    const p = problemOf(features, labels, 3, true);
    const reduced = reduceToRowSpace(p);
    assert.equal(reduced.problem.n, p.n);
    assert.ok(reduced.problem.dim <= p.n && reduced.problem.dim > 1, `rank ${reduced.problem.dim}`);
    const full = fitLogistic(p, { l2: 0.05, gradTol: 1e-10 });
    const small = fitLogistic(reduced.problem, { l2: 0.05, gradTol: 1e-10 });
    const expanded = reduced.expand(small.params);
    assert.equal(expanded.length, full.params.length);
    const zFull = logitsOf(full.params, p.x, p.n, p.dim, 3);
    const zExpanded = logitsOf(expanded, p.x, p.n, p.dim, 3);
    const zSmall = logitsOf(small.params, reduced.problem.x, p.n, reduced.problem.dim, 3);
    zFull.forEach((v, i) => {
      assert.ok(Math.abs(v - zExpanded[i]!) < 1e-4, `logit ${i}: ${v} vs ${zExpanded[i]}`);
      assert.ok(Math.abs(zSmall[i]! - zExpanded[i]!) < 1e-4, `reduced logit ${i}: ${zSmall[i]} vs ${zExpanded[i]}`);
    });
    assert.ok(Math.abs(objective(p, expanded, 0.05) - full.loss) < 1e-6, 'same loss on the original problem');
  });

  test('duplicate rows: the rank is the number of distinct rows', () => {
    const { features, labels } = clusters(2, 3, 20, 4, 1);
    const p = problemOf([...features, ...features], [...labels, ...labels], 2);
    assert.equal(reduceToRowSpace(p).problem.dim, features.length);
  });
});

describe('trainHead speed-ups keep the result', () => {
  test('with fewer samples than features the head matches a fit of the original problem at the chosen l2', () => {
    const { features, labels } = clusters(3, 8, 60, 9, 0.6);
    const r = trainHead(trainSamples(features, labels, false), 3, { ...DEFAULT_TRAIN_OPTIONS, grid: [1e-2, 1], calibrate: false });
    const p = problemOf(features, labels, 3, true);
    const direct = fitLogistic(p, { l2: r.metrics.l2, gradTol: 1e-10 });
    const params = new Float64Array(direct.params.length);
    params.set(r.kernel);
    params.set(r.bias, r.kernel.length);
    assert.ok(objective(p, params, r.metrics.l2) - direct.loss < 1e-4, 'the trained head is (near) optimal for the original problem');
  });
});
