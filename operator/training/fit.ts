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

/*
 * Inside the fit the kernel is stored transposed, [classes, dim] (then the bias): every inner loop then runs along a
 * feature row (long, contiguous, the same for x and the weights), four samples and two classes at a time so that
 * each weight read serves four rows and each feature read two classes (2.5x the speed of one row against all
 * classes). The public layout ([dim, classes]) is converted on the way in and out.
 */

/** [dim, classes] kernel + bias -> [classes, dim] kernel + bias. */
function toInternal(params: Float64Array, dim: number, c: number): Float64Array {
  const out = new Float64Array(params.length);
  for (let d = 0; d < dim; d++) for (let j = 0; j < c; j++) out[j * dim + d] = params[d * c + j]!;
  for (let j = 0; j < c; j++) out[dim * c + j] = params[dim * c + j]!;
  return out;
}

/** The inverse of toInternal. */
function toPublic(t: Float64Array, dim: number, c: number): Float64Array {
  const out = new Float64Array(t.length);
  for (let j = 0; j < c; j++) for (let d = 0; d < dim; d++) out[d * c + j] = t[j * dim + d]!;
  for (let j = 0; j < c; j++) out[dim * c + j] = t[dim * c + j]!;
  return out;
}

/** out[n, c] = x[n, dim] . W^T + b for internal-layout params t (W: [c, dim]). Blocks of 4 rows x 2 classes. */
function matLogits(t: Float64Array, x: Float32Array, n: number, dim: number, c: number, out: Float64Array): void {
  const biasAt = dim * c;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const r0 = i * dim;
    const r1 = r0 + dim;
    const r2 = r1 + dim;
    const r3 = r2 + dim;
    let j = 0;
    for (; j + 2 <= c; j += 2) {
      const w = j * dim;
      const v = w + dim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let u0 = 0;
      let u1 = 0;
      let u2 = 0;
      let u3 = 0;
      for (let d = 0; d < dim; d++) {
        const wd = t[w + d]!;
        const vd = t[v + d]!;
        const x0 = x[r0 + d]!;
        const x1 = x[r1 + d]!;
        const x2 = x[r2 + d]!;
        const x3 = x[r3 + d]!;
        s0 += x0 * wd;
        s1 += x1 * wd;
        s2 += x2 * wd;
        s3 += x3 * wd;
        u0 += x0 * vd;
        u1 += x1 * vd;
        u2 += x2 * vd;
        u3 += x3 * vd;
      }
      const b = t[biasAt + j]!;
      const b2 = t[biasAt + j + 1]!;
      out[i * c + j] = s0 + b;
      out[(i + 1) * c + j] = s1 + b;
      out[(i + 2) * c + j] = s2 + b;
      out[(i + 3) * c + j] = s3 + b;
      out[i * c + j + 1] = u0 + b2;
      out[(i + 1) * c + j + 1] = u1 + b2;
      out[(i + 2) * c + j + 1] = u2 + b2;
      out[(i + 3) * c + j + 1] = u3 + b2;
    }
    for (; j < c; j++) {
      for (let q = 0; q < 4; q++) out[(i + q) * c + j] = rowDot(t, j * dim, x, r0 + q * dim, dim) + t[biasAt + j]!;
    }
  }
  for (; i < n; i++) for (let j = 0; j < c; j++) out[i * c + j] = rowDot(t, j * dim, x, i * dim, dim) + t[biasAt + j]!;
}

function rowDot(t: Float64Array, w: number, x: Float32Array, r: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += x[r + d]! * t[w + d]!;
  return s;
}

/** grad (internal layout, overwritten) = X^T g (kernel part), column sums of g (bias part); g: [n, c]. Blocks of 4
 * rows x 2 classes. */
function matGradient(g: Float64Array, x: Float32Array, n: number, dim: number, c: number, grad: Float64Array): void {
  const biasAt = dim * c;
  grad.fill(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const r0 = i * dim;
    const r1 = r0 + dim;
    const r2 = r1 + dim;
    const r3 = r2 + dim;
    let j = 0;
    for (; j + 2 <= c; j += 2) {
      const g0 = g[i * c + j]!;
      const g1 = g[(i + 1) * c + j]!;
      const g2 = g[(i + 2) * c + j]!;
      const g3 = g[(i + 3) * c + j]!;
      const h0 = g[i * c + j + 1]!;
      const h1 = g[(i + 1) * c + j + 1]!;
      const h2 = g[(i + 2) * c + j + 1]!;
      const h3 = g[(i + 3) * c + j + 1]!;
      const w = j * dim;
      const v = w + dim;
      for (let d = 0; d < dim; d++) {
        const x0 = x[r0 + d]!;
        const x1 = x[r1 + d]!;
        const x2 = x[r2 + d]!;
        const x3 = x[r3 + d]!;
        grad[w + d]! += g0 * x0 + g1 * x1 + g2 * x2 + g3 * x3;
        grad[v + d]! += h0 * x0 + h1 * x1 + h2 * x2 + h3 * x3;
      }
      grad[biasAt + j]! += g0 + g1 + g2 + g3;
      grad[biasAt + j + 1]! += h0 + h1 + h2 + h3;
    }
    for (; j < c; j++) {
      for (let q = 0; q < 4; q++) {
        const gq = g[(i + q) * c + j]!;
        rowAxpy(grad, j * dim, gq, x, r0 + q * dim, dim);
        grad[biasAt + j]! += gq;
      }
    }
  }
  for (; i < n; i++) {
    for (let j = 0; j < c; j++) {
      const gq = g[i * c + j]!;
      rowAxpy(grad, j * dim, gq, x, i * dim, dim);
      grad[biasAt + j]! += gq;
    }
  }
}

function rowAxpy(grad: Float64Array, w: number, a: number, x: Float32Array, r: number, dim: number): void {
  for (let d = 0; d < dim; d++) grad[w + d]! += a * x[r + d]!;
}

/** Logits [n, classes] row-major of rows of x under params (float64). */
export function logitsOf(params: Float64Array, x: Float32Array, n: number, dim: number, numClasses: number): Float64Array {
  const out = new Float64Array(n * numClasses);
  matLogits(toInternal(params, dim, numClasses), x, n, dim, numClasses, out);
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

/**
 * Weighted mean cross-entropy of logits z [n, c] (normalised weights wn); when dz is given it receives
 * dLoss/dlogit [n, c].
 */
function crossEntropy(z: Float64Array, labels: Int32Array, wn: Float64Array, n: number, c: number, dz?: Float64Array): number {
  let ce = 0;
  for (let i = 0; i < n; i++) {
    const o = i * c;
    let m = -Infinity;
    for (let j = 0; j < c; j++) if (z[o + j]! > m) m = z[o + j]!;
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(z[o + j]! - m);
    const lse = m + Math.log(s);
    const y = labels[i]!;
    const wi = wn[i]!;
    ce -= wi * (z[o + y]! - lse);
    if (dz) for (let j = 0; j < c; j++) dz[o + j] = wi * (Math.exp(z[o + j]! - lse) - (j === y ? 1 : 0));
  }
  return ce;
}

/** l2 * sum(kernel^2) of internal-layout params; adds its gradient into grad when given. */
function penalty(t: Float64Array, size: number, l2: number, grad?: Float64Array): number {
  let s = 0;
  for (let k = 0; k < size; k++) {
    const w = t[k]!;
    s += w * w;
    if (grad) grad[k]! += 2 * l2 * w;
  }
  return l2 * s;
}

function normalisedWeights(p: FitProblem): Float64Array {
  let wsum = 0;
  for (let i = 0; i < p.n; i++) wsum += p.weights[i]!;
  return p.weights.map((w) => w / wsum);
}

/** The loss at params; when grad is given it receives the gradient (same layout as params). */
export function objective(p: FitProblem, params: Float64Array, l2: number, grad?: Float64Array): number {
  const { x, n, dim, numClasses: c, labels } = p;
  const t = toInternal(params, dim, c);
  const z = new Float64Array(n * c);
  matLogits(t, x, n, dim, c, z);
  const dz = grad ? new Float64Array(n * c) : undefined;
  const ce = crossEntropy(z, labels, normalisedWeights(p), n, c, dz);
  if (!grad) return ce + penalty(t, dim * c, l2);
  const g = new Float64Array(params.length);
  matGradient(dz!, x, n, dim, c, g);
  const f = ce + penalty(t, dim * c, l2, g);
  grad.set(toPublic(g, dim, c));
  return f;
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
 *
 * The loss depends on the kernel only through the logits, which are linear in it: each iteration computes the
 * logits of the search direction once (one pass over x), so a line-search trial costs O(n * classes), and the
 * gradient once at the accepted point (a second pass). The logits are updated along the step rather than
 * recomputed.
 */
export function fitLogistic(p: FitProblem, opts: FitOptions): FitResult {
  checkProblem(p, opts.l2);
  const maxIter = opts.maxIter ?? FIT_DEFAULTS.maxIter;
  const gradTol = opts.gradTol ?? FIT_DEFAULTS.gradTol;
  const m = opts.memory ?? FIT_DEFAULTS.memory;
  const { x, n, dim, numClasses: c, labels } = p;
  const l2 = opts.l2;
  const kernelSize = dim * c;
  const size = kernelSize + c;
  if (opts.init && opts.init.length !== size) throw new EdgeheadError('BAD_ARGS', `init has ${opts.init.length} values, expected ${size}`);
  const params = opts.init ? toInternal(opts.init, dim, c) : new Float64Array(size);
  const wn = normalisedWeights(p);
  const z = new Float64Array(n * c); // logits at params
  const zDir = new Float64Array(n * c); // logits of the direction (its kernel and bias)
  const zTrial = new Float64Array(n * c);
  const dz = new Float64Array(n * c);
  const grad = new Float64Array(size);
  matLogits(params, x, n, dim, c, z);
  const ce0 = crossEntropy(z, labels, wn, n, c, dz);
  matGradient(dz, x, n, dim, c, grad);
  let f = ce0 + penalty(params, kernelSize, l2, grad);
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
    matLogits(dir, x, n, dim, c, zDir); // logits are linear in (kernel, bias): z(params + a dir) = z + a zDir
    let step = 1;
    let fNew = Infinity;
    for (let tries = 0; tries < 60; tries++) {
      for (let i = 0; i < size; i++) trial[i] = params[i]! + step * dir[i]!;
      for (let i = 0; i < zTrial.length; i++) zTrial[i] = z[i]! + step * zDir[i]!;
      fNew = crossEntropy(zTrial, labels, wn, n, c) + penalty(trial, kernelSize, l2);
      if (fNew <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    iterations++;
    if (!(fNew < f)) {
      // the line search found no decrease: at the optimum to machine precision
      converged = true;
      break;
    }
    crossEntropy(zTrial, labels, wn, n, c, dz);
    matGradient(dz, x, n, dim, c, trialGrad);
    penalty(trial, kernelSize, l2, trialGrad);
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
    z.set(zTrial);
    const decrease = f - fNew;
    f = fNew;
    history.push(f);
    if (maxAbs(grad) <= gradTol || decrease <= 1e-15 * Math.max(1, Math.abs(f))) converged = true;
  }
  return { params: toPublic(params, dim, c), loss: f, iterations, converged, gradMax: maxAbs(grad), history };
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

/** A problem rewritten over an orthonormal basis of its rows' span (see reduceToRowSpace). */
export interface RowSpaceProblem {
  /** The same samples with features of dimension rank (their coordinates in the basis). */
  problem: FitProblem;
  /** Params of the reduced problem -> params of the original (kernel [dim, classes], bias). */
  expand(params: Float64Array): Float64Array;
}

/** Pivots of the Gram matrix below this fraction of the largest squared row norm are treated as zero. */
const RANK_TOL = 1e-12;

/**
 * Every gradient step of the fit moves the kernel within the span of the samples' feature rows (the gradient is
 * x^T (...) plus a multiple of the kernel), and the penalty only grows outside it; so when there are fewer samples
 * than features the fit is the same in the coordinates of an orthonormal basis Q of that span: features x Q^T
 * ([n, rank], rank <= n), kernel Q^T w. L-BFGS from zero is invariant under this rotation (same iterates, same
 * iterations), and a pass over the features costs rank / dim as much. Cross-validation folds are subsets of the
 * rows, so one basis serves them all.
 *
 * The coordinates come from a pivoted Cholesky factorisation of the Gram matrix x x^T = L L^T (float64, pivots in a
 * fixed order: deterministic): the coordinates are the rows of L, and Q = Lp^-1 xp over the pivot rows p.
 */
export function reduceToRowSpace(p: FitProblem): RowSpaceProblem {
  const { x, n, dim, numClasses: c } = p;
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * dim;
    for (let k = 0; k <= i; k++) {
      const rk = k * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += x[ri + d]! * x[rk + d]!;
      gram[i * n + k] = s;
      gram[k * n + i] = s;
    }
  }
  const diag = new Float64Array(n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, (diag[i] = gram[i * n + i]!));
  const chol = new Float64Array(n * n); // [n, n] row-major; column k filled at step k
  const pivots: number[] = [];
  const used = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    let piv = -1;
    for (let i = 0; i < n; i++) if (!used[i] && (piv < 0 || diag[i]! > diag[piv]!)) piv = i;
    if (piv < 0 || !(diag[piv]! > RANK_TOL * maxDiag)) break;
    used[piv] = 1;
    pivots.push(piv);
    const lkk = Math.sqrt(diag[piv]!);
    chol[piv * n + k] = lkk;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      let s = gram[i * n + piv]!;
      for (let m = 0; m < k; m++) s -= chol[i * n + m]! * chol[piv * n + m]!;
      const v = s / lkk;
      chol[i * n + k] = v;
      diag[i]! -= v * v;
    }
  }
  const rank = pivots.length;
  const xr = new Float32Array(n * rank);
  for (let i = 0; i < n; i++) for (let k = 0; k < rank; k++) xr[i * rank + k] = chol[i * n + k]!;
  const problem: FitProblem = { x: xr, n, dim: rank, numClasses: c, labels: p.labels, weights: p.weights };
  const expand = (params: Float64Array): Float64Array => {
    // kernel = Q^T wr = xp^T Lp^-T wr: solve Lp^T m = wr (back substitution), then kernel = xp^T m.
    const mm = new Float64Array(rank * c);
    for (let k = rank - 1; k >= 0; k--) {
      for (let j = 0; j < c; j++) {
        let s = params[k * c + j]!;
        for (let q = k + 1; q < rank; q++) s -= chol[pivots[q]! * n + k]! * mm[q * c + j]!;
        mm[k * c + j] = s / chol[pivots[k]! * n + k]!;
      }
    }
    const out = new Float64Array(dim * c + c);
    for (let k = 0; k < rank; k++) {
      const row = pivots[k]! * dim;
      for (let d = 0; d < dim; d++) {
        const xd = x[row + d]!;
        for (let j = 0; j < c; j++) out[d * c + j]! += xd * mm[k * c + j]!;
      }
    }
    for (let j = 0; j < c; j++) out[dim * c + j] = params[rank * c + j]!;
    return out;
  };
  return { problem, expand };
}

/** A problem with centred features (see centreFeatures). */
export interface CentredProblem {
  problem: FitProblem;
  /** Params of the centred problem -> params of the original: bias - mean . kernel. */
  restore(params: Float64Array): Float64Array;
}

/**
 * Subtracts the mean feature row. Exact for this loss: x w + b = (x - mean) w + (b + mean w), and only the kernel is
 * penalised, so the optimum is the same head. It removes the mean direction from the Hessian, whose largest
 * eigenvalue it dominates when features are far from zero-mean (post-ReLU CNN features are all >= 0), so L-BFGS
 * needs far fewer iterations. One mean for all cross-validation folds: any shift is exact.
 */
export function centreFeatures(p: FitProblem): CentredProblem {
  const { x, n, dim, numClasses: c } = p;
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mean[d]! += x[i * dim + d]!;
  for (let d = 0; d < dim; d++) mean[d]! /= n;
  const xc = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) xc[i * dim + d] = x[i * dim + d]! - mean[d]!;
  const restore = (params: Float64Array): Float64Array => {
    const out = Float64Array.from(params);
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += mean[d]! * params[d * c + j]!;
      out[dim * c + j]! -= s;
    }
    return out;
  };
  return { problem: { ...p, x: xc }, restore };
}
