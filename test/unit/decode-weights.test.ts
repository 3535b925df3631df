/**
 * WeightDecoder (agent/extractors/decode-weights.ts) gives exactly tf.io.decodeWeights' values: for every weight of
 * both catalogue models (uint8-quantized float32), and for unquantized, uint16-quantized, int32 and float16 entries at
 * unaligned offsets.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { io } from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import { WeightDecoder } from '../../agent/extractors/decode-weights';
import { readModelFolder, toArtifacts } from '../../agent/extractors/model-files';
import { resourcePath } from '../../base/paths';

before(() => initBackend({ backend: 'cpu', threads: 1 }));

function sameAsTfjs(weightData: Uint8Array, specs: io.WeightsManifestEntry[]): number {
  const buf = weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength) as ArrayBuffer;
  const expected = tf.io.decodeWeights(buf, specs);
  const decoder = new WeightDecoder(weightData, specs);
  for (const spec of specs) {
    const got = decoder.tensor(spec.name);
    const want = expected[spec.name]!;
    assert.equal(got.dtype, want.dtype, spec.name);
    assert.deepEqual(got.shape, want.shape, spec.name);
    assert.deepEqual(got.dataSync(), want.dataSync(), spec.name);
    got.dispose();
  }
  tf.dispose(Object.values(expected));
  return specs.length;
}

for (const id of ['mobilenet_v2_100', 'mobilenet_v2_140']) {
  test(`${id}: every weight as tf.io.decodeWeights decodes it`, () => {
    const folder = readModelFolder(resourcePath('models', id));
    const specs = folder.json.weightsManifest.flatMap((g) => g.weights);
    assert.ok(specs.some((s) => s.quantization?.dtype === 'uint8'), 'the catalogue models are uint8-quantized');
    assert.ok(sameAsTfjs(folder.weightData, specs) > 100);
    assert.equal((toArtifacts(folder).weightData as ArrayBuffer).byteLength, folder.weightData.byteLength);
  });
}

test('unquantized, uint16, int32 (plain and quantized), float16, at unaligned offsets', () => {
  const specs: io.WeightsManifestEntry[] = [
    { name: 'u8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.1, min: -0.5 } },
    { name: 'f32', shape: [2, 2], dtype: 'float32' },
    { name: 'u16', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.001, min: 1.5 } },
    { name: 'i32', shape: [2], dtype: 'int32' },
    { name: 'i32q', shape: [3], dtype: 'int32', quantization: { dtype: 'uint8', scale: 0.7, min: -3 } },
    { name: 'f16', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
  ];
  const parts = [
    Uint8Array.from([0, 7, 255]), // 3 bytes: everything after is unaligned
    new Uint8Array(Float32Array.from([1.5, -2.25, 3.125, 1e-7]).buffer),
    new Uint8Array(Uint16Array.from([0, 1000, 65535]).buffer),
    new Uint8Array(Int32Array.from([-5, 123456]).buffer),
    Uint8Array.from([0, 5, 200]),
    new Uint8Array(Uint16Array.from([0x3c00, 0xc000]).buffer), // 1.0, -2.0
  ];
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((off, p) => (data.set(p, off), off + p.length), 0);
  assert.equal(sameAsTfjs(data, specs), specs.length);
});
