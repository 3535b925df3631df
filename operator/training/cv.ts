/**
 * Stratified k-fold cross-validation for the trainer: deterministic fold assignment by group (a sample and its
 * mirrored copy share a group, so they always land in the same fold), and the L2 grid search scored on the
 * out-of-fold predictions of the original (non-augmented) samples.
 */
import { prng } from '../../base/prng';
import { fitTemperature, temperatureNll } from './calibrate';
import { fitLogistic, type FitOptions, type FitProblem, type FitResult, logitsOf, sampleWeights, subProblem } from './fit';

/**
 * Fold (0..k-1) of every sample. Groups are sorted by key within their class, shuffled with the seed, and dealt
 * round-robin (continuing across classes, so fold sizes differ by at most one). Same keys + seed -> same folds,
 * whatever the order of the input.
 */
export function assignFolds(groups: readonly string[], labels: ArrayLike<number>, k: number, seed: number): Int32Array {
  const groupLabel = new Map<string, number>();
  groups.forEach((g, i) => {
    const l = labels[i]!;
    const prev = groupLabel.get(g);
    if (prev !== undefined && prev !== l) throw new Error(`group ${g} has samples of two classes (${prev}, ${l})`);
    groupLabel.set(g, l);
  });
  const byClass = new Map<number, string[]>();
  for (const [g, l] of groupLabel) {
    const list = byClass.get(l);
    if (list) list.push(g);
    else byClass.set(l, [g]);
  }
  const rand = prng(seed);
  const foldOf = new Map<string, number>();
  let next = 0;
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const keys = byClass.get(label)!.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    for (const key of keys) foldOf.set(key, next++ % k);
  }
  return Int32Array.from(groups, (g) => foldOf.get(g)!);
}

/** Distinct groups per class (the count that limits k). */
export function groupsPerClass(groups: readonly string[], labels: ArrayLike<number>, numClasses: number): number[] {
  const seen = Array.from({ length: numClasses }, () => new Set<string>());
  groups.forEach((g, i) => seen[labels[i]!]!.add(g));
  return seen.map((s) => s.size);
}

export interface GridScore {
  l2: number;
  /** Out-of-fold NLL at temperature 1 (what selects l2). */
  rawNll: number;
  /** Out-of-fold NLL after fitting a temperature to them. */
  nll: number;
  accuracy: number;
  temperature: number;
}

export interface CrossValidation {
  scores: GridScore[];
  /** Index into scores / the grid of the chosen l2. */
  best: number;
  /** The evaluated rows (originals only), ascending sample index, with their fold. */
  rows: Int32Array;
  rowFolds: Int32Array;
  /** Out-of-fold logits [rows, classes] for every grid value. */
  oofLogits: Float64Array[];
  /** The mean over folds of the chosen l2's fitted params: a warm start for the refit on all samples. */
  bestFoldMean: Float64Array;
}

export interface CvOptions extends Omit<FitOptions, 'l2' | 'init'> {
  grid: readonly number[];
  balanced: boolean;
  onStep?: (done: number, total: number, info: string) => void;
  /** After every fit (fold 0..k-1), e.g. for iteration counts in the benchmark. */
  onFit?: (fold: number, l2: number, fit: FitResult) => void;
}

/**
 * For each fold: fit every grid value on the other folds (all their samples, augmented included; largest l2 first,
 * each warm-started from the previous solution), predict the fold's original samples. Chooses the l2 whose
 * out-of-fold predictions have the lowest NLL (ties: the larger l2). The NLL before temperature scaling: after it,
 * a heavily regularised fit sharpened by a small temperature can look as good on a few well-separated samples.
 */
export function crossValidate(p: FitProblem, augmented: ArrayLike<boolean>, folds: Int32Array, k: number, opts: CvOptions): CrossValidation {
  const c = p.numClasses;
  const order = opts.grid.map((_, i) => i).sort((a, b) => opts.grid[b]! - opts.grid[a]!);
  const rowsList: number[] = [];
  for (let i = 0; i < p.n; i++) if (!augmented[i]) rowsList.push(i);
  const rows = Int32Array.from(rowsList);
  const rowFolds = Int32Array.from(rowsList, (i) => folds[i]!);
  const rowPos = new Map<number, number>(rowsList.map((i, r) => [i, r]));
  const oofLogits = opts.grid.map(() => new Float64Array(rows.length * c));
  const foldSums = opts.grid.map(() => new Float64Array(p.dim * c + c));
  const total = k * opts.grid.length;
  let done = 0;
  for (let f = 0; f < k; f++) {
    const trainIdx: number[] = [];
    const valIdx: number[] = [];
    for (let i = 0; i < p.n; i++) {
      if (folds[i] !== f) trainIdx.push(i);
      else if (!augmented[i]) valIdx.push(i);
    }
    const train = subProblem(p, trainIdx);
    train.weights = sampleWeights(train.labels, c, opts.balanced);
    const val = subProblem(p, valIdx);
    let init: Float64Array | undefined;
    for (const g of order) {
      const fit = fitLogistic(train, { ...opts, l2: opts.grid[g]!, init });
      init = fit.params;
      const sum = foldSums[g]!;
      for (let q = 0; q < sum.length; q++) sum[q]! += fit.params[q]!;
      opts.onFit?.(f, opts.grid[g]!, fit);
      const z = logitsOf(fit.params, val.x, val.n, val.dim, c);
      valIdx.forEach((i, r) => oofLogits[g]!.set(z.subarray(r * c, (r + 1) * c), rowPos.get(i)! * c));
      opts.onStep?.(++done, total, `fold ${f + 1}/${k} l2 ${opts.grid[g]}`);
    }
  }
  const labels = Array.from(rows, (i) => p.labels[i]!);
  const scores = opts.grid.map((l2, g): GridScore => {
    const z = oofLogits[g]!;
    const temperature = fitTemperature(z, labels, c);
    let hits = 0;
    labels.forEach((y, r) => (hits += argmax(z, r * c, c) === y ? 1 : 0));
    return { l2, rawNll: temperatureNll(z, labels, c, 1), nll: temperatureNll(z, labels, c, temperature), accuracy: labels.length ? hits / labels.length : 0, temperature };
  });
  let best = 0;
  scores.forEach((s, g) => {
    const b = scores[best]!;
    if (s.rawNll < b.rawNll || (s.rawNll === b.rawNll && s.l2 > b.l2)) best = g;
  });
  return { scores, best, rows, rowFolds, oofLogits, bestFoldMean: foldSums[best]!.map((v) => v / k) };
}

/** Index of the largest of values[from..from+count) (ties: the lower index, like the device's top-k). */
export function argmax(values: ArrayLike<number>, from: number, count: number): number {
  let best = 0;
  for (let j = 1; j < count; j++) if (values[from + j]! > values[from + best]!) best = j;
  return best;
}
