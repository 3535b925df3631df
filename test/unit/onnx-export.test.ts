/**
 * The bench's ONNX exporter (bench/onnx/export.ts) on the two catalogue MobileNetV2 models (models/, converted at
 * install): the bytes decode with the same protobuf schema into a well-formed graph with the fused ops we expect, and
 * onnxruntime-web (WASM, 1 thread) running them gives our features for a sample frame. Single-threaded WASM on both
 * sides, as the fused-executor tests.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initBackend } from '../../agent/backend/wasm';
import type { Extractor } from '../../agent/extractors/extractor';
import { loadExtractor } from '../../agent/extractors/load';
import { readModelFolder } from '../../agent/extractors/model-files';
import { preprocessFrame } from '../../agent/inference/features';
import { FEATURE_OPTIONS } from '../../bench/worker-common';
import { exportOnnx, OnnxUnsupported, OPSET } from '../../bench/onnx/export';
import { decodeModel, type Model } from '../../bench/onnx/onnx-schema';
import { loadOrtExtractor, type OrtExtractor } from '../../bench/onnx/ort-extractor';
import { resourcePath } from '../../base/paths';

const FRAME = new Uint8Array(fs.readFileSync(path.join(__dirname, '..', '..', 'assets', 'samples', 'fish', 'fish1.jpg')));

// MobileNetV2: 52 convs (the stem, 17 depthwise, 16 expansions, 17 projections, the last 1x1), relu6 after all but
// the 17 linear projections, 10 residual adds; then global average pooling and a flatten to [1, features].
const BODY = { Transpose: 1, Conv: 52, Clip: 35, Add: 10, GlobalAveragePool: 1, Flatten: 1 };
const MODELS = [
  // The TF-Hub graph scales its [0, 1] input to [-1, 1] itself (x * 2 - 1).
  { id: 'mobilenet_v2_140', features: 1792, ops: { ...BODY, Mul: 1, Sub: 1 } },
  { id: 'mobilenet_v2_100', features: 1280, ops: BODY },
];

before(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});

for (const m of MODELS) {
  describe(`ONNX export of ${m.id}`, () => {
    let ours: Extractor;
    let peer: OrtExtractor;
    let model: Model;
    before(async () => {
      ours = await loadExtractor({ ref: m.id, fused: true });
      peer = await loadOrtExtractor(m.id, 1);
      model = decodeModel(peer.onnx.bytes);
    });
    after(async () => {
      ours?.dispose();
      await peer?.dispose();
    });

    test('decodes with the schema into the opset, input and output we wrote', () => {
      assert.equal(model.ir_version, 8);
      assert.deepEqual(model.opset_import, [{ domain: '', version: OPSET }]);
      const dims = (v: Model['graph']['input'][number]) => v.type.tensor_type.shape.dim.map((d) => ('dim_value' in d ? d.dim_value : d.dim_param));
      assert.deepEqual(model.graph.input.map((v) => [v.name, dims(v)]), [[peer.onnx.input, [1, 224, 224, 3]]]);
      assert.deepEqual(model.graph.output.map((v) => [v.name, dims(v)]), [[peer.onnx.output, [1, m.features]]]);
      assert.equal(peer.onnx.featureDim, m.features);
    });

    test('has the fused ops of our executor, depthwise convs as grouped Conv', () => {
      const counts: Record<string, number> = {};
      for (const n of model.graph.node) counts[n.op_type] = (counts[n.op_type] ?? 0) + 1;
      assert.deepEqual(counts, m.ops);
      assert.deepEqual(peer.onnx.opCounts, m.ops);
      const group = (n: Model['graph']['node'][number]) => n.attribute?.find((a) => a.name === 'group')?.i ?? 1;
      assert.equal(model.graph.node.filter((n) => n.op_type === 'Conv' && group(n) > 1).length, 17);
      // BatchNormalization is folded, never an op or a weight of its own
      assert.ok(!model.graph.initializer.some((t) => /moving_|gamma|beta/.test(t.name)));
    });

    test('every node reads values defined before it; every initializer holds its float32 data', () => {
      const defined = new Set([...model.graph.input.map((v) => v.name), ...model.graph.initializer.map((t) => t.name)]);
      for (const n of model.graph.node) {
        for (const i of n.input) assert.ok(defined.has(i), `${n.name} (${n.op_type}) reads ${i} before it is defined`);
        for (const o of n.output) defined.add(o);
      }
      assert.ok(defined.has(peer.onnx.output));
      for (const t of model.graph.initializer) {
        assert.equal(t.data_type, 1, t.name);
        assert.equal(t.raw_data?.length, 4 * t.dims.reduce((a, b) => a * b, 1), t.name);
      }
    });

    test("onnxruntime-web's features for a sample frame are ours within 1e-4", async () => {
      const { input } = preprocessFrame(ours.info, FRAME, FEATURE_OPTIONS);
      try {
        const out = ours.extract(input);
        const a = out.dataSync() as Float32Array;
        out.dispose();
        const b = await peer.extract(input);
        assert.equal(b.length, a.length);
        let maxDiff = 0;
        for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
        assert.ok(maxDiff <= 1e-4, `max abs diff ${maxDiff}`);
        assert.ok(a.some((v) => v > 0.1), 'features not all ~0'); // a match of two all-zero outputs proves nothing
      } finally {
        input.dispose();
      }
    });
  });
}

test('an op the exporter does not know is refused by name', () => {
  const folder = readModelFolder(resourcePath('models', 'mobilenet_v2_140'));
  const nodes = (folder.json.modelTopology as { node: { op: string; name: string }[] }).node;
  const add = nodes.find((n) => n.op === 'AddV2')!;
  add.op = 'Atan2';
  assert.throws(() => exportOnnx(folder), (e: Error) => e instanceof OnnxUnsupported && e.message.includes(`Atan2 (node ${add.name})`));
});
