/**
 * Temperature scaling (Guo et al., 2017): one scalar T such that softmax(logits / T) minimises the negative
 * log-likelihood of held-out predictions. The trainer fits T on cross-validated out-of-fold logits and folds it into
 * the head (kernel / T, bias / T), so the device's plain softmax gives calibrated scores and ranks are unchanged.
 */
import { logSoftmaxInPlace } from './fit';

/** Mean negative log-likelihood of softmax(logits / t) for row-major [n, classes] logits. */
export function temperatureNll(logits: Float64Array, labels: ArrayLike<number>, numClasses: number, t: number): number {
  const n = labels.length;
  if (n === 0) return 0;
  const z = new Float64Array(numClasses);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < numClasses; j++) z[j] = logits[i * numClasses + j]! / t;
    logSoftmaxInPlace(z);
    sum -= z[labels[i]!]!;
  }
  return sum / n;
}

/** Where T is searched. Bounded below so that perfectly separated held-out samples (whose NLL falls towards 0 as
 * T -> 0) cannot sharpen the head without limit. */
export const TEMPERATURE_RANGE: readonly [number, number] = [0.2, 20];

/**
 * The temperature in TEMPERATURE_RANGE minimising temperatureNll. NLL is convex in 1/T, so a golden-section search
 * over log T finds the minimum; a fixed number of steps keeps it deterministic. No rows -> 1.
 */
export function fitTemperature(logits: Float64Array, labels: ArrayLike<number>, numClasses: number): number {
  if (labels.length === 0) return 1;
  const f = (u: number) => temperatureNll(logits, labels, numClasses, Math.exp(u));
  let a = Math.log(TEMPERATURE_RANGE[0]);
  let b = Math.log(TEMPERATURE_RANGE[1]);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let k = 0; k < 80; k++) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return Math.exp((a + b) / 2);
}

/** params (kernel then bias) divided by t: softmax(x W / t + b / t) = softmax((x W + b) / t). */
export function applyTemperature(params: Float64Array, t: number): Float64Array {
  return params.map((v) => v / t);
}
