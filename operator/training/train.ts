/**
 * The trainer behind `head train`: a Dense head as class-balanced multinomial logistic regression with L2 on the
 * kernel (fit.ts, L-BFGS, deterministic), the L2 strength chosen by stratified k-fold cross-validation over a grid
 * (cv.ts), a refit on all data with the chosen value, and temperature scaling fitted on the out-of-fold logits and
 * folded into the weights (calibrate.ts). Same samples (in the same order) + same options -> the same weights, bit
 * for bit. Augmented samples (mirror images) train but are never scored, and share their original's fold.
 */
import { EdgeheadError } from '../../base/errors';
import { applyTemperature, fitTemperature } from './calibrate';
import { argmax, assignFolds, crossValidate, type GridScore, groupsPerClass } from './cv';
import { evaluateRows, softmaxRows } from './eval';
import { centreFeatures, FIT_DEFAULTS, fitLogistic, type FitProblem, logitsOf, reduceToRowSpace, sampleWeights } from './fit';

export { formatConfusion } from './confusion';

export interface TrainSample {
  features: Float32Array;
  label: number;
  /** Fold key: samples with the same group (an image and its mirror) always share a fold. */
  group: string;
  /** A derived sample (a mirror image): trained on, never scored. */
  augmented?: boolean;
}

export interface TrainOptions {
  /** Candidate L2 strengths (loss += l2 * sum(kernel^2)). */
  grid: readonly number[];
  /** A fixed L2 strength instead of choosing one from the grid. */
  l2?: number;
  /** At most this many folds; fewer when the smallest class has fewer groups (k = min(maxFolds, smallest)). */
  maxFolds: number;
  /** Class-balanced sample weights (each class weighs the same in the loss). */
  balanced: boolean;
  /** Temperature scaling on the out-of-fold logits. */
  calibrate: boolean;
  seed: number;
  maxIter: number;
  gradTol: number;
  /** Progress of the cross-validation fits and the final fit. */
  onStep?: (done: number, total: number, info: string) => void;
  /** After every fit: a cross-validation fold's (fold 0..k-1) or the final refit's (fold null). For benchmarks. */
  onFit?: (info: FitInfo) => void;
}

export interface FitInfo {
  fold: number | null;
  l2: number;
  iterations: number;
  converged: boolean;
}

/** Half-decades from 1e-4 to 10. */
export const L2_GRID: readonly number[] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10];
/** The L2 strength used when there are too few samples per class to cross-validate. */
export const FALLBACK_L2 = 1e-2;

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  grid: L2_GRID,
  maxFolds: 5,
  balanced: true,
  calibrate: true,
  seed: 42,
  maxIter: FIT_DEFAULTS.maxIter,
  gradTol: 1e-4,
};

export interface TrainMetrics {
  /** Number of folds (0: too few samples per class to cross-validate; l2 fell back, temperature 1). */
  folds: number;
  /** Out-of-fold accuracy of the original samples at the chosen l2; null without cross-validation. */
  cvAccuracy: number | null;
  /** Out-of-fold expected calibration error after temperature scaling; null without cross-validation. */
  cvEce: number | null;
  /** Out-of-fold NLL after temperature scaling; null without cross-validation. */
  cvNll: number | null;
  l2: number;
  temperature: number;
  /** Every grid value's cross-validation score. */
  grid: GridScore[];
  /** Accuracy of the final head on the original samples it was trained on. */
  trainAccuracy: number;
  sampleCount: number;
  augmentedCount: number;
  iterations: number;
  converged: boolean;
  /** Out-of-fold confusion matrix (rows = true class, columns = predicted); the training set's without CV. */
  confusion: number[][];
}

export interface TrainResult {
  kernel: Float32Array;
  bias: Float32Array;
  metrics: TrainMetrics;
}

function badArgs(message: string): EdgeheadError {
  return new EdgeheadError('BAD_ARGS', message);
}

function checkInputs(samples: readonly TrainSample[], numClasses: number, opts: TrainOptions): number {
  if (!Number.isInteger(numClasses) || numClasses < 2) throw badArgs(`numClasses must be an integer >= 2, got ${numClasses}`);
  if (samples.length === 0) throw badArgs('no training samples');
  const dim = samples[0]!.features.length;
  if (dim < 1) throw badArgs('feature vectors are empty');
  const counts = new Array<number>(numClasses).fill(0);
  samples.forEach((s, i) => {
    if (s.features.length !== dim) throw badArgs(`feature vector ${i} has ${s.features.length} values, the first has ${dim}`);
    for (let j = 0; j < dim; j++) if (!Number.isFinite(s.features[j]!)) throw badArgs(`feature vector ${i} has a non-finite value at ${j}`);
    if (!Number.isInteger(s.label) || s.label < 0 || s.label >= numClasses) throw badArgs(`label ${i} is ${s.label}, must be an integer in [0, ${numClasses})`);
    if (!s.augmented) counts[s.label]!++;
  });
  const empty = counts.findIndex((c) => c === 0);
  if (empty >= 0) throw badArgs(`class ${empty} has no training samples`);
  if (opts.grid.length === 0 && opts.l2 === undefined) throw badArgs('the l2 grid is empty');
  for (const v of [...opts.grid, ...(opts.l2 === undefined ? [] : [opts.l2])]) if (!(v >= 0 && Number.isFinite(v))) throw badArgs(`l2 must be >= 0, got ${v}`);
  if (!Number.isInteger(opts.maxFolds) || opts.maxFolds < 2) throw badArgs(`maxFolds must be an integer >= 2, got ${opts.maxFolds}`);
  if (!Number.isInteger(opts.maxIter) || opts.maxIter < 1) throw badArgs(`maxIter must be an integer >= 1, got ${opts.maxIter}`);
  return dim;
}

export function trainHead(samples: readonly TrainSample[], numClasses: number, opts: TrainOptions): TrainResult {
  const dim = checkInputs(samples, numClasses, opts);
  const c = numClasses;
  const n = samples.length;
  const x = new Float32Array(n * dim);
  samples.forEach((s, i) => x.set(s.features, i * dim));
  const labels = Int32Array.from(samples, (s) => s.label);
  const augmented = samples.map((s) => s.augmented === true);
  const groups = samples.map((s) => s.group);
  const problem: FitProblem = { x, n, dim, numClasses: c, labels, weights: sampleWeights(labels, c, opts.balanced) };
  const fitOpts = { maxIter: opts.maxIter, gradTol: opts.gradTol };
  // Every fit runs on centred features (same optimum, far fewer iterations) and, with fewer samples than features,
  // in the samples' row space (same fits, rank / dim of the work); see fit.ts.
  const centred = centreFeatures(problem);
  const reduced = n < dim ? reduceToRowSpace(centred.problem) : null;
  const fitProblem = reduced ? reduced.problem : centred.problem;

  const k = Math.min(opts.maxFolds, ...groupsPerClass(groups, labels, c));
  const grid = opts.l2 !== undefined ? [opts.l2] : opts.grid;
  const totalSteps = (k >= 2 ? k * grid.length : 0) + 1;
  let l2 = opts.l2 ?? FALLBACK_L2;
  let temperature = 1;
  let cv: ReturnType<typeof crossValidate> | null = null;
  if (k >= 2) {
    const folds = assignFolds(groups, labels, k, opts.seed);
    cv = crossValidate(fitProblem, augmented, folds, k, { ...fitOpts, grid, balanced: opts.balanced, onStep: (d, _t, info) => opts.onStep?.(d, totalSteps, info), onFit: (fold, l2v, f) => opts.onFit?.({ fold, l2: l2v, iterations: f.iterations, converged: f.converged }) });
    const best = cv.scores[cv.best]!;
    l2 = best.l2;
    if (opts.calibrate) temperature = fitTemperature(cv.oofLogits[cv.best]!, Array.from(cv.rows, (i) => labels[i]!), c);
  }
  // The refit starts from the mean of the folds' solutions at the chosen l2 (close: each saw (k-1)/k of the data).
  const fit = fitLogistic(fitProblem, { ...fitOpts, l2, init: cv?.bestFoldMean });
  opts.onFit?.({ fold: null, l2, iterations: fit.iterations, converged: fit.converged });
  opts.onStep?.(totalSteps, totalSteps, `final fit, l2 ${l2}`);
  const fitted = centred.restore(reduced ? reduced.expand(fit.params) : fit.params);
  const params = temperature === 1 ? fitted : applyTemperature(fitted, temperature);
  const kernel = Float32Array.from(params.subarray(0, dim * c));
  const bias = Float32Array.from(params.subarray(dim * c));

  const originals: number[] = [];
  for (let i = 0; i < n; i++) if (!augmented[i]) originals.push(i);
  const trainLogits = logitsOf(params, x, n, dim, c);
  let trainHits = 0;
  for (const i of originals) trainHits += argmax(trainLogits, i * c, c) === labels[i] ? 1 : 0;

  let confusion: number[][];
  let cvAccuracy: number | null = null;
  let cvEce: number | null = null;
  let cvNll: number | null = null;
  if (cv) {
    const z = cv.oofLogits[cv.best]!.map((v) => v / temperature);
    const probs = softmaxRows(z, c);
    const report = evaluateRows(
      Array.from({ length: c }, (_, j) => String(j)),
      Array.from(cv.rows, (i, r) => ({ file: String(i), label: labels[i]!, probs: probs.subarray(r * c, (r + 1) * c) })),
    );
    confusion = report.confusion;
    cvAccuracy = report.accuracy;
    cvEce = report.ece;
    cvNll = opts.calibrate ? cv.scores[cv.best]!.nll : cv.scores[cv.best]!.rawNll;
  } else {
    confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
    for (const i of originals) confusion[labels[i]!]![argmax(trainLogits, i * c, c)]!++;
  }
  return {
    kernel,
    bias,
    metrics: {
      folds: k >= 2 ? k : 0,
      cvAccuracy,
      cvEce,
      cvNll,
      l2,
      temperature,
      grid: cv ? cv.scores : [],
      trainAccuracy: originals.length ? trainHits / originals.length : 0,
      sampleCount: originals.length,
      augmentedCount: n - originals.length,
      iterations: fit.iterations,
      converged: fit.converged,
      confusion,
    },
  };
}
