/**
 * The fused layers executor on tiny hand-written Keras models (topology JSON + float32 weights): every fusion is
 * checked against an unfused reference built from plain tf ops (the Keras formulas), and against tfjs-layers.
 * Runs on the CPU backend, then again on WASM: asymmetric explicit padding is where kernels differ.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { fingerprintOf, paramCountOf, type PartialInfo } from '../../agent/extractors/extractor';
import { buildFusedLayersModel, type FusedLayersModel, mergePadding } from '../../agent/extractors/fused-layers';
import { KerasUnsupported, parseKerasTopology } from '../../agent/extractors/keras-graph';
import { loadFusedLayersExtractor, loadLayersExtractor, loadStockLayersExtractor } from '../../agent/extractors/layers-extractor';
import type { ModelFolder } from '../../agent/extractors/model-files';
import { configureLogging, logLevel } from '../../base/log';
import { prng } from '../../base/prng';

const TOL = 1e-4;

// ---- a tiny Keras model builder ----

interface LayerSpec {
  name: string;
  cls: string;
  config?: Record<string, unknown>;
  /** Default: the previous layer. */
  inputs?: string[];
}
type Weights = Record<string, tf.Tensor>;

function kerasFolder(inputShape: [number, number, number], layers: LayerSpec[], weights: Weights, output?: string): ModelFolder {
  const input = { name: 'input', class_name: 'InputLayer', config: { name: 'input', batch_input_shape: [null, ...inputShape], dtype: 'float32' }, inbound_nodes: [] };
  let prev = 'input';
  const rest = layers.map((l) => {
    const inputs = l.inputs ?? [prev];
    prev = l.name;
    return { name: l.name, class_name: l.cls, config: { name: l.name, trainable: false, ...l.config }, inbound_nodes: [inputs.map((i) => [i, 0, 0, {}])] };
  });
  const specs = Object.entries(weights).map(([name, t]) => ({ name, shape: t.shape, dtype: 'float32' as const }));
  const data = Object.values(weights).map((t) => new Uint8Array((t.dataSync() as Float32Array).slice().buffer));
  const weightData = new Uint8Array(data.reduce((n, d) => n + d.length, 0));
  data.reduce((off, d) => (weightData.set(d, off), off + d.length), 0);
  const modelTopology = {
    keras_version: '2.2.4',
    backend: 'tensorflow',
    model_config: {
      class_name: 'Model',
      config: { name: 'tiny', layers: [input, ...rest], input_layers: [['input', 0, 0]], output_layers: [[output ?? prev, 0, 0]] },
    },
  };
  return { json: { format: 'layers-model', modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: specs }] }, weightData };
}

const infoOf = (folder: ModelFolder): PartialInfo => ({
  id: 'tiny',
  source: 'test',
  format: 'layers',
  valueRange: [0, 1],
  fingerprint: fingerprintOf(folder),
  paramCount: paramCountOf(folder),
});

let seed = 1;
const rand = (shape: number[], lo = -1, hi = 1): tf.Tensor => {
  const r = prng(seed++);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + (hi - lo) * r()), shape);
};

const conv = (name: string, filters: number, k: number, config: Record<string, unknown> = {}): LayerSpec => ({
  name,
  cls: 'Conv2D',
  config: { filters, kernel_size: [k, k], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], activation: 'linear', use_bias: false, ...config },
});
const dwconv = (name: string, k: number, config: Record<string, unknown> = {}): LayerSpec => ({
  name,
  cls: 'DepthwiseConv2D',
  config: { kernel_size: [k, k], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], activation: 'linear', use_bias: false, depth_multiplier: 1, ...config },
});
const bn = (name: string, epsilon = 1e-3, inputs?: string[]): LayerSpec => ({
  name,
  cls: 'BatchNormalization',
  config: { axis: -1, momentum: 0.99, epsilon, center: true, scale: true },
  ...(inputs ? { inputs } : {}),
});
const relu6 = (name: string): LayerSpec => ({ name, cls: 'ReLU', config: { max_value: 6, negative_slope: 0, threshold: 0 } });

/** BN weights for n channels. Small variances next to a large epsilon: a fold that ignores epsilon is far off. */
function bnWeights(name: string, n: number, epsilon: number): Weights {
  return {
    [`${name}/gamma`]: rand([n], 0.5, 2),
    [`${name}/beta`]: rand([n], -0.5, 0.5),
    [`${name}/moving_mean`]: rand([n], -0.3, 0.3),
    [`${name}/moving_variance`]: rand([n], epsilon * 0.2, epsilon * 2),
  };
}
const refBn = (x: tf.Tensor, w: Weights, name: string, eps: number) =>
  tf.batchNorm(x, w[`${name}/moving_mean`]!, w[`${name}/moving_variance`]!, w[`${name}/beta`], w[`${name}/gamma`], eps);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Fused output vs a reference; also returns both for further checks. Disposes the model's weights afterwards. */
function checkFused(folder: ModelFolder, x: tf.Tensor4D, reference: (x: tf.Tensor4D) => tf.Tensor, check?: (m: FusedLayersModel) => void): number {
  const model = buildFusedLayersModel(folder);
  try {
    check?.(model);
    return tf.tidy(() => {
      const d = maxAbsDiff(model.predict(x), reference(x));
      assert.ok(d < TOL, `fused vs reference: max abs diff ${d}`);
      return d;
    });
  } finally {
    model.dispose();
  }
}

async function stockDiff(folder: ModelFolder, x: tf.Tensor4D): Promise<number> {
  const model = buildFusedLayersModel(folder);
  const stock = await loadStockLayersExtractor(folder, infoOf(folder));
  try {
    return tf.tidy(() => maxAbsDiff(tf.reshape(model.predict(x), [x.shape[0], -1]), stock.extract(x)));
  } finally {
    model.dispose();
    stock.dispose();
  }
}

// ---- the cases ----

const EPS = 0.05;

/** Conv2D(bias, stride 2, same) -> BN -> ReLU6, all three folded/fused into one kernel. */
function convBnRelu6(): { folder: ModelFolder; w: Weights; ref: (x: tf.Tensor4D, eps?: number) => tf.Tensor } {
  const w: Weights = { 'c/kernel': rand([3, 3, 3, 5]), 'c/bias': rand([5]), ...bnWeights('c_bn', 5, EPS) };
  const folder = kerasFolder([9, 9, 3], [conv('c', 5, 3, { strides: [2, 2], use_bias: true }), bn('c_bn', EPS), relu6('c_relu')], w);
  const ref = (x: tf.Tensor4D, eps = EPS) =>
    tf.clipByValue(tf.relu(refBn(tf.add(tf.conv2d(x, w['c/kernel'] as tf.Tensor4D, 2, 'same'), w['c/bias']!), w, 'c_bn', eps)), 0, 6);
  return { folder, w, ref };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`fused layers executor (${backend})`, () => {
    before(async () => {
      await initBackend({ backend, threads: 1 });
    });

    test('Conv2D + BatchNormalization + ReLU6 fold into one fused conv, equal to the unfused ops', () => {
      const { folder, ref } = convBnRelu6();
      const x = rand([2, 9, 9, 3], -2, 2) as tf.Tensor4D;
      checkFused(folder, x, (x) => ref(x), (m) => {
        assert.equal(m.summary.steps, 1);
        assert.equal(m.summary.foldedBatchNorms, 1);
        assert.equal(m.summary.fusedActivations, 1);
      });
      // The comparison can tell a wrong fold: ignoring epsilon moves the output far beyond the tolerance.
      const off = tf.tidy(() => maxAbsDiff(ref(x), ref(x, 0)));
      assert.ok(off > 100 * TOL, `epsilon matters here (${off})`);
      x.dispose();
    });

    test('DepthwiseConv2D (depth_multiplier 2, dilation 2) + BatchNormalization + ReLU', () => {
      const w: Weights = { 'd/depthwise_kernel': rand([3, 3, 3, 2]), ...bnWeights('d_bn', 6, EPS) };
      const folder = kerasFolder(
        [7, 7, 3],
        [dwconv('d', 3, { depth_multiplier: 2, dilation_rate: [2, 2] }), bn('d_bn', EPS), { name: 'r', cls: 'ReLU', config: { max_value: null } }],
        w,
      );
      const x = rand([1, 7, 7, 3], -2, 2) as tf.Tensor4D;
      checkFused(
        folder,
        x,
        (x) => tf.relu(refBn(tf.depthwiseConv2d(x, w['d/depthwise_kernel'] as tf.Tensor4D, 1, 'same', 'NHWC', 2), w, 'd_bn', EPS)),
        (m) => assert.deepEqual([m.summary.steps, m.summary.foldedBatchNorms, m.summary.fusedActivations], [1, 1, 1]),
      );
      x.dispose();
    });

    // 8: both merges become "same"; 11: conv2d takes explicit [0, 1] pads, the depthwise conv (5x5 input) pads first.
    for (const size of [8, 11]) {
      test(`ZeroPadding2D((0,1),(0,1)) + 'valid' stride-2 conv and depthwise conv, ${size}x${size} input (asymmetric)`, async () => {
        const w: Weights = { 'c/kernel': rand([3, 3, 3, 4]), 'd/depthwise_kernel': rand([3, 3, 4, 1]) };
        const folder = kerasFolder(
          [size, size, 3],
          [
            { name: 'c_pad', cls: 'ZeroPadding2D', config: { padding: [[0, 1], [0, 1]], data_format: 'channels_last' } },
            conv('c', 4, 3, { strides: [2, 2], padding: 'valid' }),
            { name: 'd_pad', cls: 'ZeroPadding2D', config: { padding: [[0, 1], [0, 1]], data_format: 'channels_last' } },
            dwconv('d', 3, { strides: [2, 2], padding: 'valid' }),
          ],
          w,
        );
        const x = rand([1, size, size, 3], -2, 2) as tf.Tensor4D;
        const pad = (t: tf.Tensor4D) => tf.pad(t, [[0, 0], [0, 1], [0, 1], [0, 0]]);
        checkFused(
          folder,
          x,
          (x) => tf.depthwiseConv2d(pad(tf.conv2d(pad(x), w['c/kernel'] as tf.Tensor4D, 2, 'valid')), w['d/depthwise_kernel'] as tf.Tensor4D, 2, 'valid'),
          (m) => assert.deepEqual([m.summary.steps, m.summary.mergedPaddings], [2, 2]),
        );
        const d = await stockDiff(folder, x);
        assert.ok(d < TOL, `fused vs tfjs-layers: ${d}`);
        x.dispose();
      });
    }

    test("ZeroPadding2D before a 'same' conv adds to the conv's own padding", async () => {
      const w: Weights = { 'c/kernel': rand([3, 3, 3, 4]), 'd/depthwise_kernel': rand([3, 3, 4, 1]) };
      const zp = (name: string): LayerSpec => ({ name, cls: 'ZeroPadding2D', config: { padding: [[2, 0], [1, 1]] } });
      const folder = kerasFolder([6, 7, 3], [zp('p1'), conv('c', 4, 3, { strides: [2, 2] }), zp('p2'), dwconv('d', 3)], w);
      const x = rand([1, 6, 7, 3], -2, 2) as tf.Tensor4D;
      const pad = (t: tf.Tensor4D) => tf.pad(t, [[0, 0], [2, 0], [1, 1], [0, 0]]);
      checkFused(folder, x, (x) =>
        tf.depthwiseConv2d(pad(tf.conv2d(pad(x), w['c/kernel'] as tf.Tensor4D, 2, 'same')), w['d/depthwise_kernel'] as tf.Tensor4D, 1, 'same'),
      );
      assert.ok((await stockDiff(folder, x)) < TOL);
      x.dispose();
    });

    test('Add: an inverted residual block (expand, depthwise, project + input)', async () => {
      const w: Weights = {
        'e/kernel': rand([1, 1, 3, 8]),
        ...bnWeights('e_bn', 8, EPS),
        'd/depthwise_kernel': rand([3, 3, 8, 1]),
        ...bnWeights('d_bn', 8, EPS),
        'p/kernel': rand([1, 1, 8, 3]),
        ...bnWeights('p_bn', 3, EPS),
      };
      const folder = kerasFolder(
        [6, 6, 3],
        [
          conv('e', 8, 1),
          bn('e_bn', EPS),
          relu6('e_relu'),
          dwconv('d', 3),
          bn('d_bn', EPS),
          relu6('d_relu'),
          conv('p', 3, 1),
          bn('p_bn', EPS),
          { name: 'add', cls: 'Add', config: {}, inputs: ['input', 'p_bn'] },
        ],
        w,
      );
      const r6 = (t: tf.Tensor) => tf.clipByValue(tf.relu(t), 0, 6);
      const x = rand([2, 6, 6, 3], -2, 2) as tf.Tensor4D;
      checkFused(
        folder,
        x,
        (x) => {
          const e = r6(refBn(tf.conv2d(x, w['e/kernel'] as tf.Tensor4D, 1, 'same'), w, 'e_bn', EPS)) as tf.Tensor4D;
          const d = r6(refBn(tf.depthwiseConv2d(e, w['d/depthwise_kernel'] as tf.Tensor4D, 1, 'same'), w, 'd_bn', EPS)) as tf.Tensor4D;
          return tf.add(x, refBn(tf.conv2d(d, w['p/kernel'] as tf.Tensor4D, 1, 'same'), w, 'p_bn', EPS));
        },
        (m) => assert.deepEqual([m.summary.steps, m.summary.foldedBatchNorms, m.summary.fusedActivations], [4, 3, 2]),
      );
      assert.ok((await stockDiff(folder, x)) < TOL);
      x.dispose();
    });

    test('a BatchNormalization whose conv has another consumer is not folded', async () => {
      const w: Weights = { 'c/kernel': rand([3, 3, 3, 3]), ...bnWeights('c_bn', 3, EPS) };
      const folder = kerasFolder(
        [5, 5, 3],
        [conv('c', 3, 3), bn('c_bn', EPS), relu6('c_relu'), { name: 'add', cls: 'Add', config: {}, inputs: ['c', 'c_relu'] }],
        w,
      );
      const x = rand([1, 5, 5, 3], -2, 2) as tf.Tensor4D;
      checkFused(
        folder,
        x,
        (x) => {
          const c = tf.conv2d(x, w['c/kernel'] as tf.Tensor4D, 1, 'same');
          return tf.add(c, tf.clipByValue(tf.relu(refBn(c, w, 'c_bn', EPS)), 0, 6));
        },
        (m) => assert.deepEqual([m.summary.foldedBatchNorms, m.summary.steps], [0, 4]),
      );
      assert.ok((await stockDiff(folder, x)) < TOL);
      x.dispose();
    });

    test('a BatchNormalization after a conv with its own activation is not folded', () => {
      const w: Weights = { 'c/kernel': rand([3, 3, 3, 3]), ...bnWeights('c_bn', 3, EPS) };
      const folder = kerasFolder([5, 5, 3], [conv('c', 3, 3, { activation: 'relu' }), bn('c_bn', EPS)], w);
      const x = rand([1, 5, 5, 3], -2, 2) as tf.Tensor4D;
      checkFused(folder, x, (x) => refBn(tf.relu(tf.conv2d(x, w['c/kernel'] as tf.Tensor4D, 1, 'same')), w, 'c_bn', EPS), (m) =>
        assert.equal(m.summary.foldedBatchNorms, 0),
      );
      x.dispose();
    });

    test('ReLU with negative_slope/threshold is not fused and follows Keras', () => {
      const w: Weights = { 'c/kernel': rand([1, 1, 3, 4]) };
      const folder = kerasFolder([4, 4, 3], [conv('c', 4, 1), { name: 'r', cls: 'ReLU', config: { max_value: 6, negative_slope: 0.1, threshold: 0.25 } }], w);
      const x = rand([1, 4, 4, 3], -3, 3) as tf.Tensor4D;
      checkFused(
        folder,
        x,
        (x) => {
          const c = tf.conv2d(x, w['c/kernel'] as tf.Tensor4D, 1, 'same');
          // Keras: max_value above it, x above threshold, 0.1 * (x - threshold) below.
          return tf.where(tf.greater(c, 0.25), tf.minimum(c, 6), tf.mul(0.1, tf.sub(c, 0.25)));
        },
        (m) => assert.deepEqual([m.summary.fusedActivations, m.summary.steps], [0, 2]),
      );
      x.dispose();
    });

    test('pooling, Flatten, Reshape, Dropout, Dense + Activation, GlobalAveragePooling2D', async () => {
      const w: Weights = { 'c/kernel': rand([3, 3, 3, 4]), 'c/bias': rand([4]), 'fc/kernel': rand([16, 5]), 'fc/bias': rand([5]) };
      const folder = kerasFolder(
        [8, 8, 3],
        [
          conv('c', 4, 3, { use_bias: true, activation: 'relu' }),
          { name: 'mp', cls: 'MaxPooling2D', config: { pool_size: [2, 2], strides: [2, 2], padding: 'valid' } },
          { name: 'ap', cls: 'AveragePooling2D', config: { pool_size: [2, 2], strides: [2, 2], padding: 'valid' } },
          { name: 'fl', cls: 'Flatten', config: {} },
          { name: 'do', cls: 'Dropout', config: { rate: 0.5 } },
          { name: 'fc', cls: 'Dense', config: { units: 5, activation: 'linear', use_bias: true } },
          { name: 'act', cls: 'Activation', config: { activation: 'tanh' } },
          { name: 'rs', cls: 'Reshape', config: { target_shape: [1, 1, 5] } },
          { name: 'gap', cls: 'GlobalAveragePooling2D', config: {} },
        ],
        w,
      );
      const x = rand([2, 8, 8, 3], -2, 2) as tf.Tensor4D;
      checkFused(folder, x, (x) => {
        const c = tf.relu(tf.add(tf.conv2d(x, w['c/kernel'] as tf.Tensor4D, 1, 'same'), w['c/bias']!)) as tf.Tensor4D;
        const p = tf.avgPool(tf.maxPool(c, 2, 2, 'valid'), 2, 2, 'valid');
        return tf.tanh(tf.add(tf.matMul(tf.reshape(p, [2, 16]), w['fc/kernel'] as tf.Tensor2D), w['fc/bias']!));
      });
      assert.ok((await stockDiff(folder, x)) < TOL);
      x.dispose();
    });

    test('a Sequential model (input shape on its first layer)', async () => {
      const { folder: functional, w } = convBnRelu6();
      const layers = (functional.json.modelTopology as { model_config: { config: { layers: { class_name: string; config: Record<string, unknown> }[] } } })
        .model_config.config.layers.slice(1)
        .map((l, i) => ({ class_name: l.class_name, config: i === 0 ? { ...l.config, batch_input_shape: [null, 9, 9, 3] } : l.config }));
      const folder: ModelFolder = {
        json: { ...functional.json, modelTopology: { keras_version: '2.2.4', backend: 'tensorflow', model_config: { class_name: 'Sequential', config: { name: 's', layers } } } },
        weightData: functional.weightData,
      };
      const x = rand([1, 9, 9, 3], -2, 2) as tf.Tensor4D;
      const m = buildFusedLayersModel(folder);
      assert.deepEqual([m.summary.steps, m.summary.foldedBatchNorms], [1, 1]);
      m.dispose();
      assert.ok((await stockDiff(folder, x)) < TOL);
      tf.dispose([x, ...Object.values(w)]);
    });

    test('no tensor leak over 50 calls; dispose() frees every weight', () => {
      const before = tf.memory().numTensors;
      const { folder, w } = convBnRelu6();
      const model = buildFusedLayersModel(folder);
      const x = rand([1, 9, 9, 3]) as tf.Tensor4D;
      tf.dispose(model.predict(x));
      const warm = tf.memory().numTensors;
      for (let i = 0; i < 50; i++) tf.dispose(model.predict(x));
      assert.equal(tf.memory().numTensors, warm);
      x.dispose();
      model.dispose();
      model.dispose();
      tf.dispose(Object.values(w));
      assert.equal(tf.memory().numTensors, before, 'tensors left after dispose()');
    });
  });
}

describe('fallback to tfjs-layers', () => {
  const lines: string[] = [];
  const level = logLevel();
  before(async () => {
    await initBackend({ backend: 'cpu', threads: 1 });
    configureLogging({ level: 'debug', sink: { write: (l) => lines.push(l) } });
  });
  after(() => configureLogging({ level, sink: { write: (l) => process.stderr.write(l + '\n') } }));

  test('a model with a layer the executor does not know runs on tfjs-layers, with a debug log', async () => {
    const w: Weights = { 'c/kernel': rand([3, 3, 3, 4]) };
    const folder = kerasFolder([6, 6, 3], [conv('c', 4, 3), { name: 'lr', cls: 'LeakyReLU', config: { alpha: 0.2 } }], w);
    assert.throws(() => buildFusedLayersModel(folder), (e) => e instanceof KerasUnsupported && /LeakyReLU/.test(e.message));
    assert.throws(() => loadFusedLayersExtractor(folder, infoOf(folder)), KerasUnsupported);
    const before = tf.memory().numTensors;
    const ex = await loadLayersExtractor(folder, infoOf(folder));
    const stock = await loadStockLayersExtractor(folder, infoOf(folder));
    const x = rand([1, 6, 6, 3], -2, 2) as tf.Tensor4D;
    tf.tidy(() => {
      const c = tf.conv2d(x, w['c/kernel'] as tf.Tensor4D, 1, 'same');
      const ref = tf.reshape(tf.leakyRelu(c, 0.2), [1, -1]);
      assert.ok(maxAbsDiff(ex.extract(x), ref) < TOL);
      assert.ok(maxAbsDiff(ex.extract(x), stock.extract(x)) === 0);
    });
    assert.ok(lines.some((l) => /tfjs-layers/.test(l) && /LeakyReLU/.test(l) && /DEBUG/.test(l)), lines.join('\n'));
    ex.dispose();
    stock.dispose();
    x.dispose();
    assert.equal(tf.memory().numTensors, before, 'the failed fused build and both extractors left no tensor');
  });

  test('topologies outside the executor: Keras 3 nodes, shared layers, two inputs', () => {
    const { folder } = convBnRelu6();
    const top = structuredClone(folder.json.modelTopology) as { model_config: { config: Record<string, unknown> & { layers: Record<string, unknown>[] } } };
    const k3 = structuredClone(top);
    k3.model_config.config.layers[1]!.inbound_nodes = [{ args: [{ class_name: '__keras_tensor__', config: { keras_history: ['input', 0, 0] } }], kwargs: {} }];
    assert.throws(() => parseKerasTopology(k3), /Keras 3/);
    const shared = structuredClone(top);
    shared.model_config.config.layers[1]!.inbound_nodes = [[['input', 0, 0, {}]], [['input', 0, 0, {}]]];
    assert.throws(() => parseKerasTopology(shared), /shared layer/);
    const two = structuredClone(top);
    two.model_config.config.input_layers = [['input', 0, 0], ['c', 0, 0]];
    assert.throws(() => parseKerasTopology(two), /2 inputs/);
    assert.doesNotThrow(() => parseKerasTopology(top));
  });
});

describe('mergePadding', () => {
  test('depthwise: folded into "same" only where same gives the same pads', () => {
    const pads: [[number, number], [number, number]] = [[0, 1], [0, 1]];
    assert.equal(mergePadding(224, 224, pads, 'valid', [3, 3], [2, 2], [1, 1], true), 'same');
    assert.equal(mergePadding(225, 225, pads, 'valid', [3, 3], [2, 2], [1, 1], true), undefined);
    assert.deepEqual(mergePadding(225, 225, pads, 'valid', [3, 3], [2, 2], [1, 1], false), [[0, 0], [0, 1], [0, 1], [0, 0]]);
    assert.equal(mergePadding(10, 10, [[0, 0], [0, 0]], 'valid', [3, 3], [1, 1], [1, 1], true), 'valid');
  });
});
