/**
 * The fused graph executor on tiny hand-written graph models (GraphDef JSON + float32 weights, as tfjs-converter
 * writes them): checked against tfjs-converter's GraphModel running the same files, and against plain tf ops where
 * the converter is not the reference. Runs on the CPU backend, then again on WASM.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { fingerprintOf, paramCountOf, type PartialInfo } from '../../agent/extractors/extractor';
import { buildFusedGraphModel, GraphUnsupported } from '../../agent/extractors/fused-graph';
import { loadGraphExtractor, loadStockGraphExtractor } from '../../agent/extractors/graph-extractor';
import type { ModelFolder } from '../../agent/extractors/model-files';
import { configureLogging, logLevel } from '../../base/log';
import { prng } from '../../base/prng';

const TOL = 1e-5;

// ---- a tiny graph model builder ----

type Attr = Record<string, unknown>;
interface NodeSpec {
  name: string;
  op: string;
  input?: string[];
  attr?: Attr;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const A = {
  s: (v: string) => ({ s: b64(v) }),
  ints: (...v: number[]) => ({ list: { i: v.map(String) } }),
  strs: (...v: string[]) => ({ list: { s: v.map(b64) } }),
  i: (v: number) => ({ i: String(v) }),
  b: (v: boolean) => ({ b: v }),
};
const F32 = { type: 'DT_FLOAT' };

function graphFolder(inputShape: number[], nodes: NodeSpec[], weights: Record<string, tf.Tensor>): ModelFolder {
  const dim = (shape: number[]) => ({ dim: shape.map((s) => ({ size: String(s) })) });
  const consts = Object.entries(weights).map(([name, t]) => ({
    name,
    op: 'Const',
    attr: { value: { tensor: { dtype: t.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT', tensorShape: dim(t.shape) } }, dtype: { type: t.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT' } },
  }));
  const input = { name: 'input', op: 'Placeholder', attr: { shape: { shape: dim([-1, ...inputShape]) }, dtype: F32 } };
  const node = [input, ...consts, ...nodes.map((n) => ({ ...n, attr: { T: F32, ...n.attr } }))];
  const specs = Object.entries(weights).map(([name, t]) => ({ name, shape: t.shape, dtype: t.dtype as 'float32' | 'int32' }));
  const data = Object.values(weights).map((t) => new Uint8Array((t.dataSync() as Float32Array | Int32Array).slice().buffer));
  const weightData = new Uint8Array(data.reduce((n, d) => n + d.length, 0));
  data.reduce((off, d) => (weightData.set(d, off), off + d.length), 0);
  return {
    json: {
      format: 'graph-model',
      generatedBy: 'test',
      convertedBy: 'test',
      modelTopology: { node, library: {}, versions: {} },
      weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    },
    weightData,
  };
}

const infoOf = (folder: ModelFolder, outputNode?: string): PartialInfo => ({
  id: 'tiny',
  source: 'test',
  format: 'graph',
  valueRange: [0, 1],
  inputSize: [9, 9],
  fingerprint: fingerprintOf(folder, outputNode),
  paramCount: paramCountOf(folder),
  outputNode,
});

let seed = 1;
const rand = (shape: number[], lo = -1, hi = 1): tf.Tensor => {
  const r = prng(seed++);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + (hi - lo) * r()), shape);
};

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

const fusedConv = (name: string, input: string, filter: string, bias: string, attr: Attr, ops = ['BiasAdd', 'Relu6']): NodeSpec => ({
  name,
  op: '_FusedConv2D',
  input: [input, filter, bias],
  attr: { strides: A.ints(1, 1, 1, 1), padding: A.s('SAME'), data_format: A.s('NHWC'), dilations: A.ints(1, 1, 1, 1), fused_ops: A.strs(...ops), num_args: A.i(1), ...attr },
});
const fusedDw = (name: string, input: string, filter: string, bias: string, attr: Attr): NodeSpec => ({
  ...fusedConv(name, input, filter, bias, attr),
  op: 'FusedDepthwiseConv2dNative',
});

/** A MobileNetV2-shaped block: input scaling, stride-2 conv, depthwise, 1x1 projection, residual add, pool, squeeze. */
function mobileBlock(): { folder: ModelFolder; w: Record<string, tf.Tensor>; ref: (x: tf.Tensor4D) => tf.Tensor } {
  const w: Record<string, tf.Tensor> = {
    mul_y: tf.scalar(2),
    sub_y: tf.scalar(1),
    c1_w: rand([3, 3, 3, 8]),
    c1_b: rand([8]),
    dw_w: rand([3, 3, 8, 1]),
    dw_b: rand([8]),
    pr_w: rand([1, 1, 8, 8]),
    pr_b: rand([8]),
  };
  const nodes: NodeSpec[] = [
    { name: 'mul', op: 'Mul', input: ['mul_y', 'input'] },
    { name: 'sub', op: 'Sub', input: ['mul', 'sub_y'] },
    fusedConv('c1', 'sub', 'c1_w', 'c1_b', { strides: A.ints(1, 2, 2, 1) }),
    { name: 'c1_id', op: 'Identity', input: ['c1'] },
    fusedDw('dw', 'c1_id', 'dw_w', 'dw_b', {}),
    fusedConv('pr', 'dw', 'pr_w', 'pr_b', { padding: A.s('VALID') }, ['BiasAdd']),
    { name: 'add', op: 'AddV2', input: ['c1_id', 'pr'] },
    { name: 'pool', op: 'AvgPool', input: ['add'], attr: { ksize: A.ints(1, 5, 5, 1), strides: A.ints(1, 1, 1, 1), padding: A.s('VALID'), data_format: A.s('NHWC') } },
    { name: 'squeeze', op: 'Squeeze', input: ['pool'], attr: { squeeze_dims: A.ints(1, 2) } },
  ];
  const ref = (x: tf.Tensor4D) =>
    tf.tidy(() => {
      const s = tf.sub(tf.mul(x, 2), 1) as tf.Tensor4D;
      const c1 = tf.relu6(tf.add(tf.conv2d(s, w.c1_w as tf.Tensor4D, 2, 'same'), w.c1_b!)) as tf.Tensor4D;
      const dw = tf.relu6(tf.add(tf.depthwiseConv2d(c1, w.dw_w as tf.Tensor4D, 1, 'same'), w.dw_b!)) as tf.Tensor4D;
      const pr = tf.add(tf.conv2d(dw, w.pr_w as tf.Tensor4D, 1, 'valid'), w.pr_b!);
      return tf.squeeze(tf.avgPool(tf.add(c1, pr) as tf.Tensor4D, 5, 1, 'valid'), [1, 2]);
    });
  return { folder: graphFolder([9, 9, 3], nodes, w), w, ref };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`fused graph executor (${backend})`, () => {
    before(async () => {
      await initBackend({ backend, threads: 1 });
    });

    test('a MobileNetV2-shaped block: equal to tfjs-converter and to plain tf ops; Identity needs no step', async () => {
      const { folder, w, ref } = mobileBlock();
      const model = buildFusedGraphModel(folder);
      const stock = await loadStockGraphExtractor(folder, infoOf(folder));
      const x = rand([2, 9, 9, 3], 0, 1) as tf.Tensor4D;
      try {
        assert.deepEqual(model.summary, { nodes: 9, steps: 8 });
        assert.equal(model.output, 'squeeze');
        tf.tidy(() => {
          const y = model.predict(x);
          assert.deepEqual(y.shape, [2, 8]);
          const vsStock = maxAbsDiff(y, stock.extract(x));
          const vsRef = maxAbsDiff(y, ref(x));
          assert.ok(vsStock < TOL, `vs tfjs-converter: ${vsStock}`);
          assert.ok(vsRef < TOL, `vs plain ops: ${vsRef}`);
          // the comparison can tell: dropping the residual add moves the output well beyond the tolerance
          assert.ok(maxAbsDiff(ref(x), tf.squeeze(tf.avgPool(tf.relu6(tf.conv2d(tf.sub(tf.mul(x, 2), 1) as tf.Tensor4D, w.c1_w as tf.Tensor4D, 2, 'same')) as tf.Tensor4D, 5, 1, 'valid'), [1, 2])) > 100 * TOL);
        });
      } finally {
        x.dispose();
        model.dispose();
        stock.dispose();
        tf.dispose(Object.values(w));
      }
    });

    test('explicit (asymmetric) padding on a conv and a depthwise conv, unfused Conv2D, Relu, Mean(keep_dims), Reshape', () => {
      const w: Record<string, tf.Tensor> = {
        c_w: rand([3, 3, 3, 4]),
        c_b: rand([4]),
        d_w: rand([3, 3, 4, 2]),
        d_b: rand([8]),
        u_w: rand([1, 1, 8, 6]),
        axes: tf.tensor1d([1, 2], 'int32'),
        shape: tf.tensor1d([-1, 6], 'int32'),
      };
      const explicit = { padding: A.s('EXPLICIT'), explicit_paddings: A.ints(0, 0, 0, 1, 1, 0, 0, 0), strides: A.ints(1, 2, 2, 1) };
      const nodes: NodeSpec[] = [
        fusedConv('c', 'input', 'c_w', 'c_b', explicit, ['BiasAdd', 'Relu']),
        fusedDw('d', 'c', 'd_w', 'd_b', { ...explicit, strides: A.ints(1, 1, 1, 1) }),
        { name: 'u', op: 'Conv2D', input: ['d', 'u_w'], attr: { strides: A.ints(1, 1, 1, 1), padding: A.s('SAME'), data_format: A.s('NHWC'), dilations: A.ints(1, 1, 1, 1) } },
        { name: 'r', op: 'Relu', input: ['u'] },
        { name: 'm', op: 'Mean', input: ['r', 'axes'], attr: { keep_dims: A.b(true) } },
        { name: 'out', op: 'Reshape', input: ['m', 'shape'] },
      ];
      const folder = graphFolder([9, 9, 3], nodes, w);
      const model = buildFusedGraphModel(folder);
      const x = rand([1, 9, 9, 3]) as tf.Tensor4D;
      const pads: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [0, 1], [1, 0], [0, 0]];
      try {
        tf.tidy(() => {
          const c = tf.relu(tf.add(tf.conv2d(tf.pad(x, pads), w.c_w as tf.Tensor4D, 2, 'valid'), w.c_b!)) as tf.Tensor4D;
          const d = tf.relu6(tf.add(tf.depthwiseConv2d(tf.pad(c, pads), w.d_w as tf.Tensor4D, 1, 'valid'), w.d_b!)) as tf.Tensor4D;
          const ref = tf.reshape(tf.mean(tf.relu(tf.conv2d(d, w.u_w as tf.Tensor4D, 1, 'same')), [1, 2], true), [-1, 6]);
          const diff = maxAbsDiff(model.predict(x), ref);
          assert.ok(diff < TOL, `vs plain ops: ${diff}`);
        });
      } finally {
        x.dispose();
        model.dispose();
        tf.dispose(Object.values(w));
      }
    });

    test("both memory policies give identical outputs, leak nothing, and dispose() frees every weight", () => {
      const { folder, w } = mobileBlock();
      const start = tf.memory().numTensors;
      const a = buildFusedGraphModel(folder, { retention: 'lastUse' });
      const b = buildFusedGraphModel(folder, { retention: 'frame' });
      assert.deepEqual([a.retention, b.retention], ['lastUse', 'frame']);
      const x = rand([1, 9, 9, 3], 0, 1) as tf.Tensor4D;
      const warm = tf.memory().numTensors;
      for (let i = 0; i < 20; i++) {
        const [ya, yb] = [a.predict(x), b.predict(x)];
        assert.deepEqual(ya.dataSync(), yb.dataSync());
        tf.dispose([ya, yb]);
      }
      assert.equal(tf.memory().numTensors, warm);
      x.dispose();
      a.dispose();
      b.dispose();
      assert.equal(tf.memory().numTensors, start);
      tf.dispose(Object.values(w));
    });

    test('an op it does not cover: GraphUnsupported naming it; loadGraphExtractor falls back to tfjs-converter', async () => {
      const w = { c_w: rand([1, 1, 3, 4]), c_b: rand([4]) };
      const folder = graphFolder([9, 9, 3], [fusedConv('c', 'input', 'c_w', 'c_b', {}), { name: 't', op: 'Tanh', input: ['c'] }], w);
      assert.throws(() => buildFusedGraphModel(folder), (e: Error) => e instanceof GraphUnsupported && /op Tanh \(node t\)/.test(e.message));
      const level = logLevel();
      configureLogging({ level: 'silent' });
      const ex = await loadGraphExtractor(folder, infoOf(folder));
      configureLogging({ level });
      const x = rand([1, 9, 9, 3]) as tf.Tensor4D;
      try {
        assert.equal(ex.info.executor?.kind, 'tfjs-converter');
        tf.tidy(() => {
          const ref = tf.reshape(tf.tanh(tf.relu6(tf.add(tf.conv2d(x, w.c_w as tf.Tensor4D, 1, 'same'), w.c_b))), [1, -1]);
          assert.ok(maxAbsDiff(ex.extract(x), ref) < TOL);
        });
      } finally {
        x.dispose();
        ex.dispose();
        tf.dispose(Object.values(w));
      }
    });

    test('several outputs: an output node must be named; with one, the rest of the graph is left out', async () => {
      const { folder, w } = mobileBlock();
      const extra = { name: 'side', op: 'Relu', input: ['sub'] };
      const two: ModelFolder = { ...folder, json: { ...folder.json, modelTopology: { ...(folder.json.modelTopology as object), node: [...(folder.json.modelTopology as { node: unknown[] }).node, extra] } } };
      assert.throws(() => buildFusedGraphModel(two), (e: Error) => e instanceof GraphUnsupported && /2 outputs/.test(e.message));
      const ex = await loadGraphExtractor(two, infoOf(two, 'add'));
      const x = rand([1, 9, 9, 3], 0, 1) as tf.Tensor4D;
      try {
        assert.deepEqual(ex.info.executor, { kind: 'fused-graph', retention: 'lastUse' });
        assert.equal(ex.info.featureDim, 5 * 5 * 8);
        tf.tidy(() => assert.deepEqual(ex.extract(x).shape, [1, 200]));
      } finally {
        x.dispose();
        ex.dispose();
        tf.dispose(Object.values(w));
      }
    });

    test('malformed graphs are refused with the reason: missing node, constant-only op, fused op it does not know', () => {
      const w = { c_w: rand([1, 1, 3, 4]), c_b: rand([4]) };
      const bad = (nodes: NodeSpec[]) => graphFolder([9, 9, 3], nodes, w);
      assert.throws(() => buildFusedGraphModel(bad([{ name: 'a', op: 'Relu', input: ['nowhere'] }])), /node nowhere is referenced but not defined/);
      assert.throws(() => buildFusedGraphModel(bad([{ name: 'a', op: 'Relu', input: ['c_b'] }])), /the output depends on 0 inputs/);
      assert.throws(() => buildFusedGraphModel(bad([fusedConv('c', 'input', 'c_w', 'c_b', {}, ['BiasAdd', 'Elu'])])), /fused activation Elu/);
      assert.throws(() => buildFusedGraphModel(bad([fusedConv('c', 'input', 'c_w', 'c_b', { data_format: A.s('NCHW') })])), /data_format NCHW/);
      tf.dispose(Object.values(w));
    });
  });
}
