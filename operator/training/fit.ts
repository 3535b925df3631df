/**
 * The convex fit behind `head train`: weighted multinomial logistic (softmax) regression with an L2 penalty on the
 * kernel (not the bias), solved full-batch with L-BFGS in plain float64 TypeScript.
 *
 *   loss(W, b) = sum_i w_i * CE(softmax(x_i W + b), y_i) / sum_i w_i  +  l2 * sum(W^2)
 *
 * Written by hand rather than with tfjs: the problem is small (features of a few thousand samples, <= ~50 classes),
 * float64 keeps the line search honest, and a fixed loop order makes the result the same bytes on every machine.
 * Parameters are one Float64Array: the kernel [dim, classes] row-major, then the bias [classes]. Starting from zero,
 * the bias stays centred (its gradient sums to zero over classes), so the minimiser found is unique.
 */
import { EdgeheadError } from '../../base/errors';

export interface FitProblem {
  /** Row-major [n, dim] features. */
  x: Float32Array;
  n: number;
  dim: number;
  numClasses: number;
  labels: Int32Array;
  /** Per-sample weights (> 0); normalised by their sum inside the loss. */
  weights: Float64Array;
}

export interface FitOptions {
  l2: number;
  /** Most L-BFGS iterations (default 500). */
  maxIter?: number;
  /** Stop when the largest absolute gradient component is below this (default 1e-6). */
  gradTol?: number;
  /** L-BFGS history length (default 10). */
  memory?: number;
  /** Starting parameters (a warm start); default zeros. Not modified. */
  init?: Float64Array;
}

export interface FitResult {
  /** Kernel [dim, classes] row-major, then bias [classes]. */
  params: Float64Array;
  loss: number;
  iterations: number;
  /** Whether the gradient tolerance (or a stalled, converged line search) ended the fit rather than maxIter. */
  converged: boolean;
  /** Largest absolute gradient component at `params`. */
  gradMax: number;
  /** The loss after each iteration (index 0: at the start). */
  history: number[];
}

export const FIT_DEFAULTS = { maxIter: 500, gradTol: 1e-6, memory: 10 } as const;

/** A subset of a problem's rows (indices in ascending order keep determinism obvious). */
export function subProblem(p: FitProblem, rows: ArrayLike<number>): FitProblem {
  const n = rows.length;
  const x = new Float32Array(n * p.dim);
  const labels = new Int32Array(n);
  const weights = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const i = rows[r]!;
    x.set(p.x.subarray(i * p.dim, (i + 1) * p.dim), r * p.dim);
    labels[r] = p.labels[i]!;
    weights[r] = p.weights[i]!;
  }
  return { x, n, dim: p.dim, numClasses: p.numClasses, labels, weights };
}

/** Logits [n, classes] row-major of rows of x under params (float64). */
export function logitsOf(params: Float64Array, x: Float32Array, n: number, dim: number, numClasses: number): Float64Array {
  const c = numClasses;
  const biasAt = dim * c;
  const out = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    const z = out.subarray(i * c, (i + 1) * c);
    for (let j = 0; j < c; j++) z[j] = params[biasAt + j]!;
    const row = i * dim;
    for (let d = 0; d < dim; d++) {
      const xd = x[row + d]!;
      if (xd === 0) continue;
      const k = d * c;
      for (let j = 0; j < c; j++) z[j]! += xd * params[k + j]!;
    }
  }
  return out;
}

/** In place: a row of logits -> log-probabilities (log-softmax). */
export function logSoftmaxInPlace(z: Float64Array): void {
  let m = -Infinity;
  for (let j = 0; j < z.length; j++) if (z[j]! > m) m = z[j]!;
  let s = 0;
  for (let j = 0; j < z.length; j++) s += Math.exp(z[j]! - m);
  const lse = m + Math.log(s);
  for (let j = 0; j < z.length; j++) z[j]! -= lse;
}

/** The loss at params; when grad is given it receives the gradient (same layout as params). */
export function objective(p: FitProblem, params: Float64Array, l2: number, grad?: Float64Array): number {
  const { x, n, dim, numClasses: c, labels, weights } = p;
  const biasAt = dim * c;
  let wsum = 0;
  for (let i = 0; i < n; i++) wsum += weights[i]!;
  if (grad) grad.fill(0);
  let ce = 0;
  const z = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    const row = i * dim;
    for (let j = 0; j < c; j++) z[j] = params[biasAt + j]!;
    for (let d = 0; d < dim; d++) {
      const xd = x[row + d]!;
      if (xd === 0) continue;
      const k = d * c;
      for (let j = 0; j < c; j++) z[j]! += xd * params[k + j]!;
    }
    logSoftmaxInPlace(z);
    const wi = weights[i]! / wsum;
    const y = labels[i]!;
    ce -= wi * z[y]!;
    if (!grad) continue;
    for (let j = 0; j < c; j++) z[j] = wi * (Math.exp(z[j]!) - (j === y ? 1 : 0)); // z now holds dLoss/dlogit
    for (let j = 0; j < c; j++) grad[biasAt + j]! += z[j]!;
    for (let d = 0; d < dim; d++) {
      const xd = x[row + d]!;
      if (xd === 0) continue;
      const k = d * c;
      for (let j = 0; j < c; j++) grad[k + j]! += xd * z[j]!;
    }
  }
  let penalty = 0;
  for (let k = 0; k < biasAt; k++) {
    const w = params[k]!;
    penalty += w * w;
    if (grad) grad[k]! += 2 * l2 * w;
  }
  return ce + l2 * penalty;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function checkProblem(p: FitProblem, l2: number): void {
  const bad = (m: string) => new EdgeheadError('BAD_ARGS', m);
  if (!(p.numClasses >= 2)) throw bad(`need at least 2 classes, got ${p.numClasses}`);
  if (p.n < 1) throw bad('no training samples');
  if (p.x.length !== p.n * p.dim) throw bad(`features hold ${p.x.length} values, expected ${p.n} x ${p.dim}`);
  if (p.labels.length !== p.n || p.weights.length !== p.n) throw bad(`${p.n} samples but ${p.labels.length} labels and ${p.weights.length} weights`);
  if (!(l2 >= 0 && Number.isFinite(l2))) throw bad(`l2 must be >= 0, got ${l2}`);
}

/**
 * Minimises the loss with L-BFGS (two-loop recursion) and a backtracking line search (Armijo). Deterministic: the
 * same problem and options give the same params, bit for bit.
 */
export function fitLogistic(p: FitProblem, opts: FitOptions): FitResult {
  checkProblem(p, opts.l2);
  const maxIter = opts.maxIter ?? FIT_DEFAULTS.maxIter;
  const gradTol = opts.gradTol ?? FIT_DEFAULTS.gradTol;
  const m = opts.memory ?? FIT_DEFAULTS.memory;
  const size = p.dim * p.numClasses + p.numClasses;
  const params = opts.init ? Float64Array.from(opts.init) : new Float64Array(size);
  if (params.length !== size) throw new EdgeheadError('BAD_ARGS', `init has ${params.length} values, expected ${size}`);
  const grad = new Float64Array(size);
  let f = objective(p, params, opts.l2, grad);
  const history = [f];
  const sList: Float64Array[] = [];
  const yList: Float64Array[] = [];
  const rho: number[] = [];
  const dir = new Float64Array(size);
  const trial = new Float64Array(size);
  const trialGrad = new Float64Array(size);
  const alpha = new Float64Array(m);
  let iterations = 0;
  let converged = maxAbs(grad) <= gradTol;
  while (!converged && iterations < maxIter) {
    // direction = -H * grad (two-loop recursion)
    dir.set(grad);
    for (let k = sList.length - 1; k >= 0; k--) {
      alpha[k] = rho[k]! * dot(sList[k]!, dir);
      const y = yList[k]!;
      for (let i = 0; i < size; i++) dir[i]! -= alpha[k]! * y[i]!;
    }
    const last = sList.length - 1;
    const gamma = last >= 0 ? dot(sList[last]!, yList[last]!) / dot(yList[last]!, yList[last]!) : 1 / Math.max(1e-12, Math.sqrt(dot(grad, grad)));
    for (let i = 0; i < size; i++) dir[i]! *= gamma;
    for (let k = 0; k < sList.length; k++) {
      const beta = rho[k]! * dot(yList[k]!, dir);
      const s = sList[k]!;
      for (let i = 0; i < size; i++) dir[i]! += s[i]! * (alpha[k]! - beta);
    }
    for (let i = 0; i < size; i++) dir[i] = -dir[i]!;
    let slope = dot(grad, dir);
    if (!(slope < 0)) {
      // not a descent direction (numerical trouble): restart from steepest descent
      sList.length = yList.length = rho.length = 0;
      const g = 1 / Math.max(1e-12, Math.sqrt(dot(grad, grad)));
      for (let i = 0; i < size; i++) dir[i] = -g * grad[i]!;
      slope = dot(grad, dir);
    }
    let step = 1;
    let fNew = Infinity;
    for (let tries = 0; tries < 60; tries++) {
      for (let i = 0; i < size; i++) trial[i] = params[i]! + step * dir[i]!;
      fNew = objective(p, trial, opts.l2, trialGrad);
      if (fNew <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    iterations++;
    if (!(fNew < f)) {
      // the line search found no decrease: at the optimum to machine precision
      converged = true;
      break;
    }
    const s = new Float64Array(size);
    const y = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      s[i] = trial[i]! - params[i]!;
      y[i] = trialGrad[i]! - grad[i]!;
    }
    const sy = dot(s, y);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      if (sList.length === m) {
        sList.shift();
        yList.shift();
        rho.shift();
      }
      sList.push(s);
      yList.push(y);
      rho.push(1 / sy);
    }
    params.set(trial);
    grad.set(trialGrad);
    const decrease = f - fNew;
    f = fNew;
    history.push(f);
    if (maxAbs(grad) <= gradTol || decrease <= 1e-15 * Math.max(1, Math.abs(f))) converged = true;
  }
  return { params, loss: f, iterations, converged, gradMax: maxAbs(grad), history };
}

/** Sample weights: 1 each, or class-balanced (each class's weights sum to n / numClasses). */
export function sampleWeights(labels: ArrayLike<number>, numClasses: number, balanced: boolean): Float64Array {
  const n = labels.length;
  const w = new Float64Array(n).fill(1);
  if (!balanced) return w;
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < n; i++) counts[labels[i]!]!++;
  for (let i = 0; i < n; i++) w[i] = n / (numClasses * counts[labels[i]!]!);
  return w;
}
