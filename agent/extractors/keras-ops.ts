/**
 * The pieces of Keras semantics the fused executor needs, as plain functions: activations (and which of them a fused
 * TF.js kernel can apply), the ReLU layer, BatchNormalization folded into conv weights, and padding arithmetic.
 */
import * as tf from '@tensorflow/tfjs-core';
import { KerasUnsupported, type KerasNode } from './keras-graph';

/** Activations a fused conv/matMul kernel applies itself (the subset every backend implements the same way). */
export type FusedActivation = 'linear' | 'relu' | 'relu6';

export interface Activation {
  /** Set when a fused kernel can apply it. */
  fused?: FusedActivation;
  apply: (x: tf.Tensor) => tf.Tensor;
}

/** Keras activation names, with the formulas tfjs-layers uses. */
const ACTIVATIONS: Record<string, Activation> = {
  linear: { fused: 'linear', apply: (x) => x },
  relu: { fused: 'relu', apply: (x) => tf.relu(x) },
  relu6: { fused: 'relu6', apply: (x) => tf.relu6(x) },
  elu: { apply: (x) => tf.elu(x) },
  selu: { apply: (x) => tf.selu(x) },
  sigmoid: { apply: (x) => tf.sigmoid(x) },
  hard_sigmoid: { apply: (x) => tf.clipByValue(tf.add(tf.mul(x, 0.2), 0.5), 0, 1) },
  tanh: { apply: (x) => tf.tanh(x) },
  softplus: { apply: (x) => tf.softplus(x) },
  softsign: { apply: (x) => tf.div(x, tf.add(tf.abs(x), 1)) },
  softmax: { apply: (x) => tf.softmax(x, -1) },
  swish: { apply: (x) => tf.mul(x, tf.sigmoid(x)) },
  silu: { apply: (x) => tf.mul(x, tf.sigmoid(x)) },
};

export function activationOf(node: KerasNode, key = 'activation'): Activation {
  const name = node.config[key] ?? 'linear';
  const act = typeof name === 'string' ? ACTIVATIONS[name] : undefined;
  if (!act) throw new KerasUnsupported(`${node.name}: activation ${JSON.stringify(name)}`);
  return act;
}

/**
 * The Keras ReLU layer: f(x) = max_value for x >= max_value, x for threshold < x < max_value,
 * negative_slope * (x - threshold) otherwise. Fusable only when negative_slope and threshold are 0 and max_value is
 * absent (relu) or 6 (relu6). tfjs-layers ignores negative_slope and threshold; this follows Keras.
 */
export function reluLayer(node: KerasNode): Activation {
  const { max_value: maxValue, negative_slope: slope = 0, threshold = 0 } = node.config as {
    max_value?: number | null;
    negative_slope?: number;
    threshold?: number;
  };
  if ((maxValue != null && typeof maxValue !== 'number') || typeof slope !== 'number' || typeof threshold !== 'number') {
    throw new KerasUnsupported(`${node.name}: ReLU config ${JSON.stringify(node.config)}`);
  }
  if (slope === 0 && threshold === 0) {
    if (maxValue == null) return ACTIVATIONS.relu!;
    if (maxValue === 6) return ACTIVATIONS.relu6!;
  }
  return { apply: (x) => kerasRelu(x, slope, maxValue ?? undefined, threshold) };
}

/** keras.backend.relu(x, alpha, max_value, threshold), term by term. */
export function kerasRelu(x: tf.Tensor, alpha: number, maxValue: number | undefined, threshold: number): tf.Tensor {
  let y = threshold !== 0 ? tf.mul(x, tf.cast(tf.greater(x, threshold), x.dtype)) : tf.relu(x);
  if (maxValue !== undefined) y = tf.clipByValue(y, 0, maxValue);
  if (alpha !== 0) y = tf.sub(y, tf.mul(alpha, tf.relu(tf.sub(threshold, x))));
  return y;
}

export interface BatchNormParams {
  gamma?: Float32Array;
  beta?: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  epsilon: number;
}

/**
 * Folds an inference-mode BatchNormalization into the conv before it, in float64, rounded once to float32:
 *   y = gamma * (conv(x, W) + b - mean) / sqrt(var + eps) + beta
 *     = conv(x, W * s) + (b - mean) * s + beta,    s = gamma / sqrt(var + eps)   (per output channel)
 * `kernel` is [kh, kw, in, out] for Conv2D and [kh, kw, in, multiplier] for DepthwiseConv2D, whose output channel
 * c * multiplier + m is scaled by s[c * multiplier + m]. Both layouts end in the output-channel axes, so the
 * kernel value at flat index i belongs to output channel i % outChannels.
 */
export function foldBatchNorm(
  kernel: Float32Array,
  bias: Float32Array | undefined,
  bn: BatchNormParams,
  outChannels: number,
): { kernel: Float32Array; bias: Float32Array } {
  const { gamma, beta, mean, variance, epsilon } = bn;
  for (const [what, a] of [['gamma', gamma], ['beta', beta], ['moving_mean', mean], ['moving_variance', variance]] as const) {
    if (a && a.length !== outChannels) throw new KerasUnsupported(`BatchNormalization ${what} has ${a.length} values for ${outChannels} channels`);
  }
  const scale = new Float64Array(outChannels);
  const newBias = new Float32Array(outChannels);
  for (let c = 0; c < outChannels; c++) {
    scale[c] = (gamma ? gamma[c]! : 1) / Math.sqrt(variance[c]! + epsilon);
    newBias[c] = ((bias ? bias[c]! : 0) - mean[c]!) * scale[c]! + (beta ? beta[c]! : 0);
  }
  if (kernel.length % outChannels !== 0) throw new KerasUnsupported(`kernel of ${kernel.length} values for ${outChannels} channels`);
  const newKernel = new Float32Array(kernel.length);
  for (let i = 0; i < kernel.length; i++) newKernel[i] = kernel[i]! * scale[i % outChannels]!;
  return { kernel: newKernel, bias: newBias };
}

export type Pads = [[number, number], [number, number]];

/** TF 'same' padding ([top, bottom], [left, right]) of a conv/pool window over an h x w input. */
export function samePads(h: number, w: number, kernel: [number, number], strides: [number, number], dilations: [number, number]): Pads {
  const one = (size: number, k: number, s: number, d: number): [number, number] => {
    const eff = (k - 1) * d + 1;
    const total = Math.max((Math.ceil(size / s) - 1) * s + eff - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  };
  return [one(h, kernel[0], strides[0], dilations[0]), one(w, kernel[1], strides[1], dilations[1])];
}

export const padsEqual = (a: Pads, b: Pads): boolean => a[0][0] === b[0][0] && a[0][1] === b[0][1] && a[1][0] === b[1][0] && a[1][1] === b[1][1];
export const padsZero = (a: Pads): boolean => a[0][0] === 0 && a[0][1] === 0 && a[1][0] === 0 && a[1][1] === 0;
