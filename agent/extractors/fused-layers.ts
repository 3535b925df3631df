/**
 * A fused executor for Keras "layers" models (the form tfjs-layers runs), built for inference only:
 *
 * - BatchNormalization folded into the Conv2D/DepthwiseConv2D before it (kernel and bias rewritten once at load),
 * - a following ReLU/Activation (relu, relu6) applied by the fused conv kernel,
 * - ZeroPadding2D merged into the following conv's padding when the kernel can express it,
 * - Dropout and linear Activation removed; intermediate tensors freed as soon as their last consumer has run, or at
 *   the end of the pass on a threaded backend (step-runner.ts explains why).
 *
 * The rest (Add, pooling, Flatten, Dense, Reshape, other activations, BatchNormalization that cannot be folded) runs
 * as plain TF.js ops with tfjs-layers' formulas. A model using anything else raises KerasUnsupported at build time
 * and the caller runs it through tfjs-layers instead. See docs/fusion.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  channelsLast,
  type KerasGraph,
  type KerasNode,
  KerasUnsupported,
  num,
  pair,
  padding2d,
  paddingMode,
  parseKerasTopology,
} from './keras-graph';
import { KerasWeights } from './keras-weights';
import { type Activation, activationOf, type BatchNormParams, foldBatchNorm, type Pads, padsEqual, padsZero, reluLayer, samePads } from './keras-ops';
import type { ModelFolder } from './model-files';
import { type Retention, type Step, type StepExecutor, stepExecutor } from './step-runner';
import type { WeightSource } from './weight-cache';

export interface FusionSummary {
  /** Keras layers the output depends on (InputLayer excluded). */
  layers: number;
  /** Steps the executor runs per call. */
  steps: number;
  convs: number;
  foldedBatchNorms: number;
  /** relu/relu6 applied inside a conv or matMul kernel. */
  fusedActivations: number;
  /** ZeroPadding2D layers merged into the following conv. */
  mergedPaddings: number;
}

export interface FusedLayersModel extends StepExecutor {
  /** [h, w, c] of the model input (null where dynamic). */
  readonly inputShape: (number | null)[];
  readonly summary: FusionSummary;
}

/**
 * Builds the executor; throws KerasUnsupported for models it does not cover. The tensors it keeps (folded kernels and
 * biases, dense weights, unfolded BatchNorm parameters) come from `source` (weight-cache.ts): computed from the model
 * files by default (decode-weights.ts), which are then decoded only as far as some tensor has to be computed.
 */
export function buildFusedLayersModel(folder: ModelFolder, opts: { retention?: Retention; source?: WeightSource } = {}): FusedLayersModel {
  const graph = parseKerasTopology(folder.json.modelTopology);
  const kept: tf.Tensor[] = [];
  let built: { steps: Step[]; output: string; summary: FusionSummary } | undefined;
  try {
    tf.tidy(() => {
      const weights = new KerasWeights({ weightData: folder.weightData, weightSpecs: folder.json.weightsManifest.flatMap((g) => g.weights) }, opts.source, kept);
      try {
        built = new Planner(graph, weights).plan();
      } finally {
        weights.release(); // the steps' closures keep `weights` alive: not its decoded copy of the model's weights
      }
    });
  } catch (e) {
    tf.dispose(kept);
    throw e;
  }
  const { steps, output, summary } = built!;
  return { inputShape: graph.inputShape, summary, ...stepExecutor(steps, graph.input, output, kept, opts.retention) };
}

const IDENTITY = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);
const CONVS = new Set(['Conv2D', 'DepthwiseConv2D']);

class Planner {
  private readonly steps: Step[] = [];
  private readonly alias = new Map<string, string>();
  private readonly absorbed = new Set<string>();
  /** conv name -> the ZeroPadding2D in front of it that it absorbs. */
  private readonly padFor = new Map<string, KerasNode>();
  private readonly summary: FusionSummary;

  constructor(
    private readonly graph: KerasGraph,
    private readonly weights: KerasWeights,
  ) {
    this.summary = { layers: graph.nodes.length, steps: 0, convs: 0, foldedBatchNorms: 0, fusedActivations: 0, mergedPaddings: 0 };
  }

  plan(): { steps: Step[]; output: string; summary: FusionSummary } {
    for (const node of this.graph.nodes) {
      const next = this.soleConsumer(node.name);
      if (node.className === 'ZeroPadding2D' && next && CONVS.has(next.className)) {
        this.padFor.set(next.name, node);
        this.absorbed.add(node.name);
      }
    }
    for (const node of this.graph.nodes) if (!this.absorbed.has(node.name)) this.add(node);
    this.summary.steps = this.steps.length;
    return { steps: this.steps, output: this.resolve(this.graph.output), summary: this.summary };
  }

  /** The only consumer of a layer's output (undefined if it has several, or is also the model output). */
  private soleConsumer(name: string): KerasNode | undefined {
    return this.graph.uses.get(name) === 1 ? this.graph.consumers.get(name)![0] : undefined;
  }

  private resolve(name: string): string {
    return this.alias.get(name) ?? name;
  }

  private input(node: KerasNode, count = 1): string[] {
    if (node.inputs.length !== count && !(count === -1 && node.inputs.length >= 2)) {
      throw new KerasUnsupported(`${node.name} (${node.className}) has ${node.inputs.length} inputs`);
    }
    return node.inputs.map((i) => this.resolve(i));
  }

  private push(out: string, inputs: string[], run: (xs: tf.Tensor[]) => tf.Tensor): void {
    this.steps.push({ out, inputs, run });
  }

  private add(node: KerasNode): void {
    const c = node.config;
    switch (node.className) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return this.conv(node);
      case 'Dense':
        return this.dense(node);
      case 'BatchNormalization':
        return this.batchNorm(node);
      case 'ReLU': {
        const act = reluLayer(node);
        return this.push(node.name, this.input(node), ([x]) => act.apply(x!));
      }
      case 'Activation': {
        const act = activationOf(node);
        if (act.fused === 'linear') return void this.alias.set(node.name, this.input(node)[0]!);
        return this.push(node.name, this.input(node), ([x]) => act.apply(x!));
      }
      case 'Add':
        return this.push(node.name, this.input(node, -1), (xs) => xs.reduce((a, b) => tf.add(a, b)));
      case 'ZeroPadding2D': {
        channelsLast(node);
        const [h, w] = padding2d(c.padding);
        return this.push(node.name, this.input(node), ([x]) => tf.pad(x!, [[0, 0], h, w, [0, 0]]));
      }
      case 'AveragePooling2D':
      case 'MaxPooling2D': {
        channelsLast(node);
        const size = pair(c.pool_size ?? 2, `${node.name} pool_size`);
        const strides = c.strides == null ? size : pair(c.strides, `${node.name} strides`);
        const mode = paddingMode(node);
        const pool = node.className === 'MaxPooling2D' ? tf.maxPool : tf.avgPool;
        return this.push(node.name, this.input(node), ([x]) => pool(x as tf.Tensor4D, size, strides, mode));
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        channelsLast(node);
        const keepDims = c.keepdims === true;
        const reduce = node.className === 'GlobalMaxPooling2D' ? tf.max : tf.mean;
        return this.push(node.name, this.input(node), ([x]) => reduce(x!, [1, 2], keepDims));
      }
      case 'Flatten':
        channelsLast(node);
        return this.push(node.name, this.input(node), ([x]) => tf.reshape(x!, [x!.shape[0], -1]));
      case 'Reshape': {
        const target = c.target_shape;
        if (!Array.isArray(target) || !target.every((d) => typeof d === 'number')) {
          throw new KerasUnsupported(`${node.name}: target_shape ${JSON.stringify(target)}`);
        }
        return this.push(node.name, this.input(node), ([x]) => tf.reshape(x!, [x!.shape[0], ...(target as number[])]));
      }
      default:
        if (IDENTITY.has(node.className)) return void this.alias.set(node.name, this.input(node)[0]!);
        throw new KerasUnsupported(`layer class ${node.className} (${node.name})`);
    }
  }

  /**
   * A fused kernel's trailing activation: the layer's own, else a ReLU/Activation that is the sole consumer of
   * `last` and that the kernel can apply. Returns the activation and the name whose output the step produces.
   */
  private trailingActivation(own: Activation, last: string): { act: Activation; out: string } {
    if (own.fused !== 'linear') return { act: own, out: last };
    const next = this.soleConsumer(last);
    if (!next || next.inputs.length !== 1 || (next.className !== 'ReLU' && next.className !== 'Activation')) return { act: own, out: last };
    const act = next.className === 'ReLU' ? reluLayer(next) : activationOf(next);
    if (!act.fused) return { act: own, out: last };
    this.absorbed.add(next.name);
    if (act.fused !== 'linear') this.summary.fusedActivations++;
    return { act, out: next.name };
  }

  private conv(node: KerasNode): void {
    channelsLast(node);
    const c = node.config;
    const depthwise = node.className === 'DepthwiseConv2D';
    const kernelSize = pair(c.kernel_size, `${node.name} kernel_size`);
    const strides = pair(c.strides ?? 1, `${node.name} strides`);
    const dilations = pair(c.dilation_rate ?? 1, `${node.name} dilation_rate`);
    const mode = paddingMode(node);
    if ((c.groups ?? 1) !== 1) throw new KerasUnsupported(`${node.name}: groups ${String(c.groups)}`);
    if (strides.some((s) => s !== 1) && dilations.some((d) => d !== 1)) {
      throw new KerasUnsupported(`${node.name}: strides ${strides} with dilation ${dilations}`);
    }
    const kernelParam = depthwise ? 'depthwise_kernel' : 'kernel';
    const shape = this.weights.shape(node.name, kernelParam) as [number, number, number, number];
    if (shape.length !== 4 || shape[0] !== kernelSize[0] || shape[1] !== kernelSize[1]) {
      throw new KerasUnsupported(`${node.name}: kernel shape [${shape}] for kernel_size [${kernelSize}]`);
    }
    if (depthwise && shape[3] !== num(node, 'depth_multiplier', 1)) throw new KerasUnsupported(`${node.name}: kernel shape [${shape}]`);
    const outChannels = depthwise ? shape[2] * shape[3] : shape[3];
    const withBias = c.use_bias !== false;
    if (withBias) this.weights.shape(node.name, 'bias');
    const own = activationOf(node);
    let last = node.name;

    const bn = this.soleConsumer(node.name);
    const fold = own.fused === 'linear' && bn?.className === 'BatchNormalization' && bn.inputs.length === 1 && bnAxis(bn) === 'last' ? bn : undefined;
    if (fold) {
      this.batchNormShapes(fold, outChannels);
      this.absorbed.add(fold.name);
      this.summary.foldedBatchNorms++;
      last = fold.name;
    }
    const { act, out } = this.trailingActivation(own, last);
    const activation = act.fused ?? 'linear';
    const post = act.fused ? undefined : act.apply;

    // Computed (decoded, folded) only when the weight source has no copy of them.
    let values: { kernel: Float32Array; bias?: Float32Array } | undefined;
    const compute = () => {
      if (values) return values;
      const kernel = this.weights.data(node.name, kernelParam);
      const bias = withBias ? this.weights.data(node.name, 'bias') : undefined;
      return (values = fold ? foldBatchNorm(kernel, bias, this.batchNormParams(fold), outChannels) : { kernel, bias });
    };
    const filter = this.weights.keep(`${node.name}/kernel`, shape, () => tf.tensor4d(compute().kernel, shape)) as tf.Tensor4D;
    const biasT = fold || withBias ? this.weights.keep(`${node.name}/bias`, [outChannels], () => tf.tensor1d(compute().bias!)) : undefined;
    values = undefined; // the step below shares this scope: it would keep the folded arrays alive (~9 MB for MNv2 1.0)
    const padNode = this.padFor.get(node.name);
    const prePads = padNode ? padding2d(padNode.config.padding) : undefined;
    if (padNode) {
      channelsLast(padNode);
      this.summary.mergedPaddings++;
    }
    this.summary.convs++;
    const inputs = padNode ? this.input(padNode) : this.input(node);

    this.push(out, inputs, ([x]) => {
      let input = x as tf.Tensor4D;
      let pad: 'same' | 'valid' | tf.backend_util.ExplicitPadding = mode;
      if (prePads) {
        const merged = mergePadding(input.shape[1], input.shape[2], prePads, mode, kernelSize, strides, dilations, depthwise);
        if (merged) pad = merged;
        else input = tf.pad(input, [[0, 0], prePads[0], prePads[1], [0, 0]]);
      }
      const y = depthwise
        ? tf.fused.depthwiseConv2d({ x: input, filter, strides, pad: pad as 'same' | 'valid', dilations, bias: biasT, activation })
        : tf.fused.conv2d({ x: input, filter, strides, pad, dilations, bias: biasT, activation });
      return post ? post(y) : y;
    });
  }

  private dense(node: KerasNode): void {
    const shape = this.weights.shape(node.name, 'kernel');
    if (shape.length !== 2) throw new KerasUnsupported(`${node.name}: kernel shape [${shape}]`);
    const [inDim, units] = shape as [number, number];
    const withBias = node.config.use_bias !== false;
    const biasShape = withBias ? this.weights.shape(node.name, 'bias') : undefined;
    const { act, out } = this.trailingActivation(activationOf(node), node.name);
    const activation = act.fused ?? 'linear';
    const post = act.fused ? undefined : act.apply;
    const w = this.weights.keep(`${node.name}/kernel`, shape, () => tf.clone(this.weights.get(node.name, 'kernel'))) as tf.Tensor2D;
    const bias = biasShape ? this.weights.keep(`${node.name}/bias`, biasShape, () => tf.clone(this.weights.get(node.name, 'bias'))) : undefined;
    this.push(out, this.input(node), ([x]) => {
      const lead = x!.shape.slice(0, -1);
      const a = x!.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x!, [-1, inDim]) as tf.Tensor2D;
      let y: tf.Tensor = tf.fused.matMul({ a, b: w, bias, activation });
      if (x!.rank !== 2) y = tf.reshape(y, [...lead, units]);
      return post ? post(y) : y;
    });
  }

  private batchNormParams(node: KerasNode): BatchNormParams {
    const c = node.config;
    return {
      gamma: c.scale === false ? undefined : this.weights.data(node.name, 'gamma'),
      beta: c.center === false ? undefined : this.weights.data(node.name, 'beta'),
      mean: this.weights.data(node.name, 'moving_mean'),
      variance: this.weights.data(node.name, 'moving_variance'),
      epsilon: num(node, 'epsilon', 1e-3),
    };
  }

  /** The BatchNormalization parameters the layer uses, each of `channels` values (checked without decoding them). */
  private batchNormShapes(node: KerasNode, channels?: number): { param: string; shape: number[] }[] {
    const c = node.config;
    const params = ['moving_mean', 'moving_variance', ...(c.scale === false ? [] : ['gamma']), ...(c.center === false ? [] : ['beta'])];
    return params.map((param) => {
      const shape = this.weights.shape(node.name, param);
      const n = shape.reduce((a, b) => a * b, 1);
      if (channels !== undefined && n !== channels) throw new KerasUnsupported(`BatchNormalization ${param} has ${n} values for ${channels} channels`);
      return { param, shape };
    });
  }

  /** A BatchNormalization that cannot be folded: tf.batchNorm over the last axis, as tfjs-layers runs it. */
  private batchNorm(node: KerasNode): void {
    const axis = bnAxis(node);
    if (axis === undefined) throw new KerasUnsupported(`${node.name}: BatchNormalization axis ${JSON.stringify(node.config.axis)}`);
    const kept = new Map<string, tf.Tensor>();
    for (const { param, shape } of this.batchNormShapes(node)) {
      const n = shape.reduce((a, b) => a * b, 1);
      kept.set(param, this.weights.keep(`${node.name}/${param}`, [n], () => tf.tensor1d(this.weights.data(node.name, param))));
    }
    const [mean, variance, gamma, beta] = ['moving_mean', 'moving_variance', 'gamma', 'beta'].map((p) => kept.get(p));
    const epsilon = num(node, 'epsilon', 1e-3);
    this.push(node.name, this.input(node), ([x]) => {
      if (axis !== 'last' && axis !== x!.rank - 1) throw new KerasUnsupported(`${node.name}: BatchNormalization on axis ${axis} of a rank-${x!.rank} input`);
      return tf.batchNorm(x!, mean!, variance!, beta, gamma, epsilon);
    });
  }
}

/** 'last' for axis -1 (or 3, the channel axis of the 4-d tensors a conv produces); a positive axis otherwise. */
function bnAxis(node: KerasNode): 'last' | number | undefined {
  let axis = node.config.axis ?? -1;
  if (Array.isArray(axis) && axis.length === 1) axis = axis[0];
  if (axis === -1 || axis === 3) return 'last';
  return typeof axis === 'number' && axis > 0 ? axis : undefined;
}

/**
 * The padding argument that makes a conv over the unpadded h x w input equal to ZeroPadding2D(prePads) followed by
 * the conv with its own padding mode; undefined when the kernel cannot express it (then the caller pads first).
 * conv2d takes explicit padding; fused depthwiseConv2d in tfjs-core 4.22 takes only 'same'/'valid'/a number, so the
 * merge applies there only when the total padding is none or exactly what 'same' computes for this input size
 * (MobileNetV2's ZeroPadding2D((0,1),(0,1)) before a stride-2 3x3 conv on an even size).
 */
export function mergePadding(
  h: number,
  w: number,
  prePads: Pads,
  mode: 'same' | 'valid',
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
  depthwise: boolean,
): 'same' | 'valid' | tf.backend_util.ExplicitPadding | undefined {
  let total = prePads;
  if (mode === 'same') {
    const [[t, b], [l, r]] = prePads;
    const own = samePads(h + t + b, w + l + r, kernel, strides, dilations);
    total = [
      [t + own[0][0], b + own[0][1]],
      [l + own[1][0], r + own[1][1]],
    ];
  }
  if (padsZero(total)) return 'valid';
  if (padsEqual(total, samePads(h, w, kernel, strides, dilations))) return 'same';
  return depthwise ? undefined : [[0, 0], total[0], total[1], [0, 0]];
}
