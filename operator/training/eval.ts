/**
 * Evaluation metrics of a classifier on labelled samples, from each sample's class probabilities: accuracy,
 * per-class precision/recall/support, the confusion matrix (rows = true class, columns = predicted), the expected
 * calibration error of the top-1 score, and the misclassified samples. Pure: used by `head eval` and the trainer's
 * cross-validation report.
 */
import { argmax } from './cv';

export interface EvalRow {
  /** What to name the sample by in `errors` (a file path). */
  file: string;
  label: number;
  /** Probabilities per class, in the head's class order. */
  probs: ArrayLike<number>;
}

export interface ClassMetrics {
  class: string;
  /** null when nothing was predicted as this class. */
  precision: number | null;
  /** null when the class has no samples. */
  recall: number | null;
  support: number;
}

export interface EvalError {
  file: string;
  label: string;
  predicted: string;
  /** The top-1 score. */
  score: number;
  /** Every class's score. */
  scores: Record<string, number>;
}

export interface EvalReport {
  count: number;
  accuracy: number;
  perClass: ClassMetrics[];
  confusion: number[][];
  ece: number;
  errors: EvalError[];
}

export const ECE_BINS = 10;

/**
 * Expected calibration error: the top-1 scores in `bins` equal-width bins over [0, 1] (a score of exactly 1 falls in
 * the last); sum over bins of (bin size / n) * |accuracy in bin - mean score in bin|.
 */
export function expectedCalibrationError(scores: ArrayLike<number>, correct: ArrayLike<boolean>, bins = ECE_BINS): number {
  const n = scores.length;
  if (n === 0) return 0;
  const count = new Array<number>(bins).fill(0);
  const hit = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    const b = Math.min(bins - 1, Math.max(0, Math.floor(s * bins)));
    count[b]!++;
    conf[b]! += s;
    if (correct[i]) hit[b]!++;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b]! > 0) ece += (count[b]! / n) * Math.abs(hit[b]! / count[b]! - conf[b]! / count[b]!);
  return ece;
}

export function evaluateRows(classes: readonly string[], rows: readonly EvalRow[]): EvalReport {
  const c = classes.length;
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  const top = new Float64Array(rows.length);
  const correct: boolean[] = [];
  const errors: EvalError[] = [];
  rows.forEach((r, i) => {
    const pred = argmax(r.probs, 0, c);
    confusion[r.label]![pred]!++;
    top[i] = r.probs[pred]!;
    correct.push(pred === r.label);
    if (pred !== r.label) {
      const scores: Record<string, number> = {};
      classes.forEach((name, j) => (scores[name] = r.probs[j]!));
      errors.push({ file: r.file, label: classes[r.label]!, predicted: classes[pred]!, score: r.probs[pred]!, scores });
    }
  });
  const perClass = classes.map((name, j): ClassMetrics => {
    const support = confusion[j]!.reduce((a, v) => a + v, 0);
    const predicted = confusion.reduce((a, row) => a + row[j]!, 0);
    const tp = confusion[j]![j]!;
    return { class: name, precision: predicted ? tp / predicted : null, recall: support ? tp / support : null, support };
  });
  const hits = correct.filter(Boolean).length;
  return {
    count: rows.length,
    accuracy: rows.length ? hits / rows.length : 0,
    perClass,
    confusion,
    ece: expectedCalibrationError(top, correct),
    errors,
  };
}

/** Row-major logits [n, classes] -> probabilities (softmax per row), float64. */
export function softmaxRows(logits: ArrayLike<number>, numClasses: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / numClasses; r++) {
    let m = -Infinity;
    for (let j = 0; j < numClasses; j++) m = Math.max(m, logits[r * numClasses + j]!);
    let s = 0;
    for (let j = 0; j < numClasses; j++) s += out[r * numClasses + j] = Math.exp(logits[r * numClasses + j]! - m);
    for (let j = 0; j < numClasses; j++) out[r * numClasses + j]! /= s;
  }
  return out;
}

const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);

/** The human-readable report of `head eval`: summary, per-class table, misclassified files. */
export function formatReport(r: EvalReport, confusionTable: string): string {
  const nameWidth = Math.max(5, ...r.perClass.map((p) => p.class.length));
  const lines = [
    `accuracy ${r.accuracy.toFixed(3)} (${r.count - r.errors.length}/${r.count}), ECE ${r.ece.toFixed(3)} (${ECE_BINS} bins of the top-1 score)`,
    '',
    `${'class'.padEnd(nameWidth)}  precision  recall  support`,
    ...r.perClass.map((p) => `${p.class.padEnd(nameWidth)}  ${pct(p.precision).padStart(9)}  ${pct(p.recall).padStart(6)}  ${String(p.support).padStart(7)}`),
    '',
    confusionTable,
  ];
  if (r.errors.length > 0) {
    lines.push('', `misclassified (${r.errors.length}):`);
    for (const e of r.errors) lines.push(`  ${e.file}: ${e.label} -> ${e.predicted} ${e.score.toFixed(3)} (${e.label} ${e.scores[e.label]!.toFixed(3)})`);
  }
  return lines.join('\n');
}
