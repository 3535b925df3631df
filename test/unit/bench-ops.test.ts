/** bench/ops.ts: the op kinds and MACs it derives from tf.profile()'s kernels, and its per-kind rows. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify, classifySteps, type KernelCall, kindRows } from '../../bench/ops';
import { median } from '../../base/stats';

const conv = (name: string, x: number[], filter: number[], out: number[]): KernelCall => ({ name, inputShapes: [x, filter, [out[3]!]], outputShapes: [out] });

test('classify: convs, depthwise, pointwise roles, padding and MACs', () => {
  assert.deepEqual(classify([conv('FusedConv2D', [1, 224, 224, 3], [3, 3, 3, 32], [1, 112, 112, 32])]), { kind: 'conv 3x3 s2', macs: 112 * 112 * 32 * 3 * 9 });
  const pad: KernelCall = { name: 'PadV2', inputShapes: [[1, 112, 112, 96]], outputShapes: [[1, 113, 113, 96]] };
  assert.deepEqual(classify([pad, conv('FusedDepthwiseConv2D', [1, 113, 113, 96], [3, 3, 96, 1], [1, 56, 56, 96])]), {
    kind: 'depthwise 3x3 s2 + pad',
    macs: 56 * 56 * 96 * 9,
  });
  assert.equal(classify([conv('FusedConv2D', [1, 56, 56, 24], [1, 1, 24, 144], [1, 56, 56, 144])]).kind, 'pointwise 1x1 expand');
  assert.equal(classify([conv('Conv2D', [1, 56, 56, 144], [1, 1, 144, 24], [1, 56, 56, 24])], false).kind, 'pointwise 1x1 project');
  assert.deepEqual(classify([conv('FusedConv2D', [1, 7, 7, 320], [1, 1, 320, 1280], [1, 7, 7, 1280])], false), { kind: 'pointwise 1x1 final 320->1280', macs: 49 * 320 * 1280 });
});

test('classify: other kernels by name, quiet ones only when alone', () => {
  const k = (name: string): KernelCall => ({ name, inputShapes: [[1, 7, 7, 8]], outputShapes: [[1, 1, 1, 8]] });
  assert.deepEqual(classify([k('AvgPool'), k('Cast')]), { kind: 'average pool', macs: 0 });
  assert.equal(classify([k('Identity')]).kind, 'Identity');
  assert.equal(classify([k('Add')]).kind, 'add');
  assert.equal(classify([]).kind, 'no kernel');
});

test('classifySteps: pointwise convs after the last depthwise one are final', () => {
  const dw = conv('FusedDepthwiseConv2D', [1, 7, 7, 960], [3, 3, 960, 1], [1, 7, 7, 960]);
  const project = conv('FusedConv2D', [1, 7, 7, 960], [1, 1, 960, 320], [1, 7, 7, 320]);
  const last = conv('FusedConv2D', [1, 7, 7, 320], [1, 1, 320, 1280], [1, 7, 7, 1280]);
  assert.deepEqual(
    classifySteps([[dw], [project], [last]]).map((s) => s.kind),
    ['depthwise 3x3 s1', 'pointwise 1x1 project', 'pointwise 1x1 final 320->1280'],
  );
});

test('kindRows: per-frame sums, medians, shares and GMAC/s', () => {
  const kinds = [
    { kind: 'a', macs: 2e6 },
    { kind: 'b', macs: 0 },
    { kind: 'a', macs: 2e6 },
  ];
  const frames = [
    [1, 0.5, 1],
    [2, 0.5, 2],
    [1, 0.5, 1],
  ];
  const rows = kindRows(kinds, frames, 4);
  assert.deepEqual(rows[0], { kind: 'a', count: 2, ms: 2, share: 50, mmac: 4, gmacs: 2, stepGmacs: [2, 2] });
  assert.deepEqual(rows[1], { kind: 'b', count: 1, ms: 0.5, share: 12.5, mmac: 0, gmacs: null, stepGmacs: null });
  assert.equal(median([3, 1, 2, 4]), 2.5);
});
