import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ECE_BINS, evaluateRows, expectedCalibrationError, formatReport, softmaxRows } from '../../operator/training/eval';
import { formatConfusion } from '../../operator/training/train';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

describe('evaluateRows', () => {
  const classes = ['a', 'b', 'c'];
  const rows = [
    { file: 'a/1.jpg', label: 0, probs: [0.9, 0.05, 0.05] },
    { file: 'a/2.jpg', label: 0, probs: [0.3, 0.6, 0.1] },
    { file: 'b/3.jpg', label: 1, probs: [0.2, 0.7, 0.1] },
    { file: 'b/4.json', label: 1, probs: [0.1, 0.85, 0.05] },
    { file: 'c/5.jpg', label: 2, probs: [0.5, 0.1, 0.4] },
  ];

  test('accuracy, confusion, per-class precision/recall/support computed by hand', () => {
    const r = evaluateRows(classes, rows);
    assert.equal(r.count, 5);
    close(r.accuracy, 3 / 5);
    assert.deepEqual(r.confusion, [
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 0],
    ]);
    assert.deepEqual(r.perClass, [
      { class: 'a', precision: 1 / 2, recall: 1 / 2, support: 2 },
      { class: 'b', precision: 2 / 3, recall: 1, support: 2 },
      { class: 'c', precision: null, recall: 0, support: 1 },
    ]);
  });

  test('ECE over 10 bins of the top-1 score, and the misclassified files with their scores', () => {
    const r = evaluateRows(classes, rows);
    // one sample per bin: |1-.9| + |0-.6| + |1-.7| + |1-.85| + |0-.5|, over 5
    close(r.ece, (0.1 + 0.6 + 0.3 + 0.15 + 0.5) / 5);
    assert.deepEqual(r.errors, [
      { file: 'a/2.jpg', label: 'a', predicted: 'b', score: 0.6, scores: { a: 0.3, b: 0.6, c: 0.1 } },
      { file: 'c/5.jpg', label: 'c', predicted: 'a', score: 0.5, scores: { a: 0.5, b: 0.1, c: 0.4 } },
    ]);
    const text = formatReport(r, formatConfusion(r.confusion, classes));
    assert.match(text, /^accuracy 0\.600 \(3\/5\), ECE 0\.330/);
    assert.match(text, /^c\s+-\s+0\.0%\s+1$/m);
    assert.match(text, /c\/5\.jpg: c -> a 0\.500 \(c 0\.400\)/);
  });

  test('ties go to the lower class index, like the device', () => {
    const r = evaluateRows(['x', 'y'], [{ file: 'f', label: 1, probs: [0.5, 0.5] }]);
    assert.equal(r.errors[0]!.predicted, 'x');
  });
});

describe('expectedCalibrationError', () => {
  test('samples sharing a bin are averaged; a score of 1 is in the last bin; empty -> 0', () => {
    assert.equal(ECE_BINS, 10);
    close(expectedCalibrationError([0.95, 0.92], [true, false]), Math.abs(0.5 - 0.935));
    close(expectedCalibrationError([1, 0.91], [true, true]), 1 - 0.955);
    close(expectedCalibrationError([0.25, 0.35], [false, true]), (0.25 + 0.65) / 2);
    assert.equal(expectedCalibrationError([], []), 0);
  });

  test('perfectly calibrated bins give 0', () => {
    close(expectedCalibrationError([0.5, 0.5, 0.5, 0.5], [true, false, true, false]), 0);
  });
});

test('softmaxRows', () => {
  const p = softmaxRows([0, Math.log(3), 1000, 1000], 2);
  close(p[0]!, 0.25);
  close(p[1]!, 0.75);
  close(p[2]!, 0.5);
});
