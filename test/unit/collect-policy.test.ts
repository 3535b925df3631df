/** The collect policy (agent/collect/policy.ts): which classified frames are kept, and the reason recorded. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectReason } from '../../agent/collect/policy';

const OFF = { belowScore: 0, onLabelChange: false, sampleEvery: 0 };
const f = (label: string, score: number, seq = 1) => ({ label, score, seq });

test('every rule off: nothing is kept', () => {
  for (const [fr, prev] of [[f('cat', 0.1), 'dog'], [f('cat', 0.99, 5), undefined]] as const) assert.equal(collectReason(OFF, fr, prev), null);
});

test('belowScore keeps frames whose top-1 score is below it (not at it); 0 turns it off', () => {
  const p = { ...OFF, belowScore: 0.6 };
  assert.equal(collectReason(p, f('cat', 0.59), 'cat'), 'low-confidence');
  assert.equal(collectReason(p, f('cat', 0.6), 'cat'), null);
  assert.equal(collectReason(OFF, f('cat', 0), 'cat'), null);
});

test('onLabelChange keeps a frame whose label differs from the previous one; the first frame is no change', () => {
  const p = { ...OFF, onLabelChange: true };
  assert.equal(collectReason(p, f('cat', 0.9), 'dog'), 'label-change');
  assert.equal(collectReason(p, f('cat', 0.9), 'cat'), null);
  assert.equal(collectReason(p, f('cat', 0.9), undefined), null);
});

test('sampleEvery keeps every Nth frame', () => {
  const p = { ...OFF, sampleEvery: 3 };
  const kept = [1, 2, 3, 4, 5, 6, 7].filter((seq) => collectReason(p, f('cat', 0.9, seq), 'cat') === 'sample');
  assert.deepEqual(kept, [3, 6]);
});

test('one reason per frame: low-confidence before label-change before sample', () => {
  const all = { belowScore: 0.5, onLabelChange: true, sampleEvery: 1 };
  assert.equal(collectReason(all, f('cat', 0.1), 'dog'), 'low-confidence');
  assert.equal(collectReason(all, f('cat', 0.9), 'dog'), 'label-change');
  assert.equal(collectReason(all, f('cat', 0.9), 'cat'), 'sample');
});
