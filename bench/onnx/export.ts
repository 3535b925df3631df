/**
 * A TF.js model folder -> ONNX bytes, with the fusions of edgehead's own executors, so that a peer runtime runs the
 * same weights as the same ops: BatchNormalization folded into the conv before it (keras-ops.ts foldBatchNorm, the
 * very function fused-layers.ts uses), ZeroPadding2D merged into the conv's pads, the trailing relu/relu6 after the
 * conv (ONNX Relu / Clip(0, 6), which runtimes fuse into the conv), depthwise convs as Conv with group = channels.
 *
 * Covers the ops of the catalogue's MobileNetV2 models: the graph model's _FusedConv2D, FusedDepthwiseConv2dNative,
 * AddV2, Mul/Sub by constants, AvgPool over the whole map and Squeeze (mobilenet_v2_140), and the Keras model's
 * Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, ZeroPadding2D, Add, AveragePooling2D and Flatten
 * (mobilenet_v2_100); anything else throws OnnxUnsupported. A bench tool: nothing in the agent uses it.
 *
 * The ONNX graph takes the same NHWC float32 input as our extractor (a Transpose to NCHW is its first node) and gives
 * the same [n, featureDim] features. Shapes are static (batch 1 unless asked): pads are computed from them, as TF's
 * 'same' padding depends on the input size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { attrInt, attrInts, attrString, attrStrings, type AttrValue, dependencyOrder, type GraphNode, graphOutputs, inputNodeName } from '../../agent/extractors/graph-def';
import { channelsLast, type KerasGraph, type KerasNode, num, pair, padding2d, paddingMode, parseKerasTopology } from '../../agent/extractors/keras-graph';
import { activationOf, foldBatchNorm, type Pads, reluLayer, samePads } from '../../agent/extractors/keras-ops';
import { type ModelFolder, toArtifacts } from '../../agent/extractors/model-files';
import { type Attribute, AttributeType, DataType, encodeModel, type Node, type Tensor } from './onnx-schema';

export class OnnxUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxUnsupported';
  }
}

export interface OnnxExport {
  bytes: Uint8Array;
  input: string;
  output: string;
  /** [n, h, w, c], as our extractor takes it. */
  inputShape: [number, number, number, number];
  featureDim: number;
  /** ONNX nodes by op type. */
  opCounts: Record<string, number>;
}

export const OPSET = 13;
const IR_VERSION = 8;

/**
 * Exports a model folder (graph or layers format). Needs a TF.js backend: weights are decoded (and dequantized) by
 * tf.io.decodeWeights, as our executors decode them.
 */
export function exportOnnx(folder: ModelFolder, opts: { batch?: number; inputSize?: [number, number]; name?: string } = {}): OnnxExport {
  const artifacts = toArtifacts(folder);
  const weights = tf.io.decodeWeights(artifacts.weightData!, artifacts.weightSpecs!);
  try {
    const g = new OnnxGraph();
    const plan = folder.json.format === 'graph-model' ? planGraphModel : planLayersModel;
    const { input, output, inputShape } = plan(folder, weights, g, opts);
    const outShape = g.shape(output);
    if (outShape.length !== 2) throw new OnnxUnsupported(`the output is ${outShape.length}-d, expected [n, features]`);
    const bytes = encodeModel({
      ir_version: IR_VERSION,
      opset_import: [{ domain: '', version: OPSET }],
      producer_name: 'edgehead bench/onnx/export.ts',
      producer_version: '1',
      graph: {
        name: opts.name ?? 'edgehead',
        node: g.nodes,
        initializer: g.initializers,
        input: [valueInfo(input, inputShape)],
        output: [valueInfo(output, outShape)],
      },
    });
    const opCounts: Record<string, number> = {};
    for (const n of g.nodes) opCounts[n.op_type] = (opCounts[n.op_type] ?? 0) + 1;
    return { bytes, input, output, inputShape, featureDim: outShape[1]!, opCounts };
  } finally {
    tf.dispose(Object.values(weights));
  }
}

const valueInfo = (name: string, dims: number[]) => ({
  name,
  type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
});

const ints = (name: string, v: number[]): Attribute => ({ name, type: AttributeType.INTS, ints: v });
const int = (name: string, v: number): Attribute => ({ name, type: AttributeType.INT, i: v });

/** Nodes, initializers and the static shape of every value (4-d values are NCHW). */
class OnnxGraph {
  readonly nodes: Node[] = [];
  readonly initializers: Tensor[] = [];
  private readonly shapes = new Map<string, number[]>();
  private count = 0;

  shape(name: string): number[] {
    const s = this.shapes.get(name);
    if (!s) throw new OnnxUnsupported(`no value named ${name}`);
    return s;
  }

  input(name: string, shape: number[]): void {
    this.shapes.set(name, shape);
  }

  /** A float32 initializer, stored as raw little-endian bytes. */
  constant(hint: string, dims: number[], data: Float32Array): string {
    const name = `${hint}#${this.count++}`;
    const bytes = new Uint8Array(data.byteLength);
    const view = new DataView(bytes.buffer);
    data.forEach((v, i) => view.setFloat32(i * 4, v, true));
    this.initializers.push({ name, dims, data_type: DataType.FLOAT, raw_data: bytes });
    return name;
  }

  node(op: string, inputs: string[], output: string, shape: number[], attribute: Attribute[] = []): string {
    this.nodes.push({ name: `${op}_${this.nodes.length}`, op_type: op, input: inputs, output: [output], ...(attribute.length ? { attribute } : {}) });
    this.shapes.set(output, shape);
    return output;
  }

  /** x -> output = activation(x), or x itself for 'linear'. */
  activation(x: string, act: 'linear' | 'relu' | 'relu6', output: string): string {
    if (act === 'linear') return x;
    if (act === 'relu') return this.node('Relu', [x], output, this.shape(x));
    const lo = this.constant('clip_min', [], Float32Array.of(0));
    const hi = this.constant('clip_max', [], Float32Array.of(6));
    return this.node('Clip', [x, lo, hi], output, this.shape(x));
  }

  /** The NHWC model input -> NCHW. */
  transposeIn(input: string, nhwc: [number, number, number, number]): string {
    const [n, h, w, c] = nhwc;
    this.input(input, nhwc);
    return this.node('Transpose', [input], `${input}/nchw`, [n, c, h, w], [ints('perm', [0, 3, 1, 2])]);
  }

  /**
   * A TF conv, kernel [kh, kw, in, out] (or [kh, kw, in, multiplier] when depthwise) -> ONNX Conv, W [out, in/group,
   * kh, kw]. `pads` are TF's ([top, bottom], [left, right]).
   */
  conv(
    x: string,
    output: string,
    k: { kernel: Float32Array; shape: number[]; bias?: Float32Array; depthwise: boolean },
    strides: [number, number],
    dilations: [number, number],
    pads: Pads,
  ): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    const [kh, kw, cin, m] = k.shape as [number, number, number, number];
    if (cin !== c) throw new OnnxUnsupported(`${output}: kernel for ${cin} channels over ${c}`);
    const cout = k.depthwise ? cin * m : m;
    const W = new Float32Array(k.kernel.length);
    // TF's kernel value at [y, x, i, o] is at ((y * kw + x) * cin + i) * m + o; depthwise output channel i * m + o.
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let i = 0; i < cin; i++)
          for (let o = 0; o < m; o++) {
            const v = k.kernel[((y * kw + xx) * cin + i) * m + o]!;
            if (k.depthwise) W[((i * m + o) * kh + y) * kw + xx] = v;
            else W[((o * cin + i) * kh + y) * kw + xx] = v;
          }
    const wName = this.constant(`${output}/W`, [cout, k.depthwise ? 1 : cin, kh, kw], W);
    const inputs = [x, wName];
    if (k.bias) inputs.push(this.constant(`${output}/B`, [cout], k.bias));
    const out = (size: number, kk: number, s: number, d: number, p: [number, number]) => Math.floor((size + p[0] + p[1] - ((kk - 1) * d + 1)) / s) + 1;
    const shape = [n, cout, out(h, kh, strides[0], dilations[0], pads[0]), out(w, kw, strides[1], dilations[1], pads[1])];
    return this.node('Conv', inputs, output, shape, [
      ints('kernel_shape', [kh, kw]),
      ints('strides', strides),
      ints('dilations', dilations),
      ints('pads', [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]),
      int('group', k.depthwise ? cin : 1),
    ]);
  }

  /** Average pooling with a window of the whole map is GlobalAveragePool; otherwise AveragePool (TF excludes padding
   * from the mean, as ONNX's count_include_pad = 0 does). */
  avgPool(x: string, output: string, size: [number, number], strides: [number, number], mode: 'same' | 'valid'): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    if (size[0] === h && size[1] === w && mode === 'valid') return this.node('GlobalAveragePool', [x], output, [n, c, 1, 1]);
    const pads: Pads = mode === 'same' ? samePads(h, w, size, strides, [1, 1]) : [[0, 0], [0, 0]];
    const out = (s: number, k: number, st: number, p: [number, number]) => Math.floor((s + p[0] + p[1] - k) / st) + 1;
    return this.node('AveragePool', [x], output, [n, c, out(h, size[0], strides[0], pads[0]), out(w, size[1], strides[1], pads[1])], [
      ints('kernel_shape', size),
      ints('strides', strides),
      ints('pads', [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]),
    ]);
  }

  /** NHWC flatten of an NCHW value: the channel-last order first where h * w > 1. */
  flatten(x: string, output: string): string {
    const s = this.shape(x);
    if (s.length === 2) return x;
    if (s.length !== 4) throw new OnnxUnsupported(`${output}: flatten of a ${s.length}-d value`);
    const [n, c, h, w] = s as [number, number, number, number];
    const src = h * w === 1 ? x : this.node('Transpose', [x], `${output}/nhwc`, [n, h, w, c], [ints('perm', [0, 2, 3, 1])]);
    return this.node('Flatten', [src], output, [n, c * h * w], [int('axis', 1)]);
  }
}

const staticInput = (dims: (number | null)[], opts: { batch?: number; inputSize?: [number, number] }, what: string): [number, number, number, number] => {
  const [h, w, c] = dims.slice(-3);
  const size: [number, number] | undefined = h && w && h > 0 && w > 0 ? [h, w] : opts.inputSize;
  if (!size || !c || c < 1) throw new OnnxUnsupported(`${what}: input shape [${dims}] (give inputSize)`);
  return [opts.batch ?? 1, size[0], size[1], c];
};

// ---- graph models (tfjs-converter) ----

function planGraphModel(
  folder: ModelFolder,
  weights: tf.NamedTensorMap,
  g: OnnxGraph,
  opts: { batch?: number; inputSize?: [number, number] },
): { input: string; output: string; inputShape: [number, number, number, number] } {
  const nodes = (folder.json.modelTopology as { node?: GraphNode[] }).node ?? [];
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const leaves = graphOutputs(nodes);
  if (leaves.length !== 1) throw new OnnxUnsupported(`the graph has ${leaves.length} outputs`);
  const ordered = dependencyOrder(leaves[0]!.name, byName, (m) => new OnnxUnsupported(m));
  const placeholders = ordered.filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1) throw new OnnxUnsupported(`${placeholders.length} inputs`);
  const ph = placeholders[0]!;
  const dims = (ph.attr?.shape as { shape?: { dim?: { size?: string }[] } } | undefined)?.shape?.dim?.map((d) => Number(d.size ?? -1)) ?? [];
  const inputShape = staticInput(dims, opts, ph.name);

  const value = new Map<string, string>([[ph.name, g.transposeIn(ph.name, inputShape)]]);
  const constant = (name: string): tf.Tensor | undefined => (byName.get(name)?.op === 'Const' ? weights[name] : undefined);
  const data = (t: tf.Tensor) => t.dataSync() as Float32Array;
  for (const node of ordered) {
    if (node.op === 'Const' || node.op === 'Placeholder') continue;
    const a = node.attr ?? {};
    const names = (node.input ?? []).filter((i) => !i.startsWith('^')).map(inputNodeName);
    const dynamic = (i: number): string => {
      const v = value.get(names[i]!);
      if (!v) throw new OnnxUnsupported(`${node.name}: input ${names[i]} is not computed`);
      return v;
    };
    const format = attrString(a.data_format);
    if (format && format !== 'NHWC') throw new OnnxUnsupported(`${node.name}: data_format ${format}`);
    const set = (v: string) => value.set(node.name, v);
    switch (node.op) {
      case 'Identity':
        set(dynamic(0));
        break;
      case '_FusedConv2D':
      case 'FusedDepthwiseConv2dNative':
      case 'Conv2D':
      case 'DepthwiseConv2dNative': {
        const fused = node.op.startsWith('_') || node.op.startsWith('Fused');
        const ops = fused ? attrStrings(a.fused_ops) : [];
        if (fused && (ops[0] !== 'BiasAdd' || ops.length > 2 || (attrInt(a.num_args) ?? 1) !== 1)) throw new OnnxUnsupported(`${node.name}: fused ops [${ops}]`);
        const act = ({ undefined: 'linear', Relu: 'relu', Relu6: 'relu6' } as const)[String(ops[1]) as 'undefined' | 'Relu' | 'Relu6'];
        if (!act) throw new OnnxUnsupported(`${node.name}: fused activation ${ops[1]}`);
        const kernel = constant(names[1]!);
        const bias = fused ? constant(names[2]!) : undefined;
        if (!kernel || (fused && !bias)) throw new OnnxUnsupported(`${node.name}: kernel or bias is not a constant`);
        const x = dynamic(0);
        const [, , h, w] = g.shape(x) as [number, number, number, number];
        const s = tfPair(a.strides, `${node.name} strides`);
        const d = tfPair(a.dilations, `${node.name} dilations`);
        const pads = graphPads(node, a, h, w, kernel.shape.slice(0, 2) as [number, number], s, d);
        const conv = g.conv(x, act === 'linear' ? node.name : `${node.name}/conv`, { kernel: data(kernel), shape: kernel.shape, bias: bias && data(bias), depthwise: node.op.includes('Depthwise') }, s, d, pads);
        set(g.activation(conv, act, node.name));
        break;
      }
      case 'Add':
      case 'AddV2':
      case 'BiasAdd':
      case 'Sub':
      case 'Mul':
      case 'RealDiv': {
        const op = ({ Add: 'Add', AddV2: 'Add', BiasAdd: 'Add', Sub: 'Sub', Mul: 'Mul', RealDiv: 'Div' } as const)[node.op];
        if (names.length !== 2) throw new OnnxUnsupported(`${node.name}: ${names.length} inputs`);
        const dyn = names.map((n) => value.get(n));
        const operand = (i: number): string => {
          if (dyn[i]) return dyn[i]!;
          const t = constant(names[i]!);
          if (!t) throw new OnnxUnsupported(`${node.name}: input ${names[i]} is neither computed nor a constant`);
          // A per-channel vector broadcasts over the last axis in NHWC, over axis 1 in NCHW.
          if (t.size === 1) return g.constant(names[i]!, [], data(t));
          if (t.rank === 1 && g.shape(dyn[1 - i]!)[1] === t.size) return g.constant(names[i]!, [t.size, 1, 1], data(t));
          throw new OnnxUnsupported(`${node.name}: constant of shape [${t.shape}]`);
        };
        if (!dyn[0] && !dyn[1]) throw new OnnxUnsupported(`${node.name} depends on constants only`);
        const shape = g.shape((dyn[0] ?? dyn[1])!);
        if (dyn[0] && dyn[1] && g.shape(dyn[1]).join() !== shape.join()) throw new OnnxUnsupported(`${node.name}: broadcast between values`);
        set(g.node(op, [operand(0), operand(1)], node.name, shape));
        break;
      }
      case 'Relu':
      case 'Relu6':
        set(g.activation(dynamic(0), node.op === 'Relu' ? 'relu' : 'relu6', node.name));
        break;
      case 'AvgPool': {
        const k = attrInts(a.ksize);
        const s = attrInts(a.strides);
        const p = attrString(a.padding);
        if (!k || !s || k[0] !== 1 || k[3] !== 1 || s[0] !== 1 || s[3] !== 1 || (p !== 'SAME' && p !== 'VALID')) throw new OnnxUnsupported(`${node.name}: pooling attributes`);
        set(g.avgPool(dynamic(0), node.name, [k[1]!, k[2]!], [s[1]!, s[2]!], p === 'SAME' ? 'same' : 'valid'));
        break;
      }
      case 'Mean': {
        const axes = constant(names[1]!);
        const x = dynamic(0);
        const [, , h, w] = g.shape(x) as [number, number, number, number];
        if (!axes || Array.from(axes.dataSync()).join() !== '1,2') throw new OnnxUnsupported(`${node.name}: mean over other axes than h, w`);
        const pooled = g.avgPool(x, a.keep_dims?.b ? node.name : `${node.name}/pool`, [h, w], [1, 1], 'valid');
        set(a.keep_dims?.b ? pooled : g.flatten(pooled, node.name));
        break;
      }
      case 'Squeeze': {
        const x = dynamic(0);
        const sq = attrInts(a.squeeze_dims) ?? [];
        const s = g.shape(x);
        if (s.length !== 4 || s[2] !== 1 || s[3] !== 1 || (sq.length && sq.join() !== '1,2')) throw new OnnxUnsupported(`${node.name}: squeeze [${sq}] of [${s}]`);
        set(g.flatten(x, node.name));
        break;
      }
      default:
        throw new OnnxUnsupported(`op ${node.op} (node ${node.name})`);
    }
  }
  return { input: ph.name, output: value.get(leaves[0]!.name)!, inputShape };
}

function tfPair(v: AttrValue | undefined, what: string): [number, number] {
  const s = attrInts(v) ?? [1, 1, 1, 1];
  if (s.length !== 4 || s[0] !== 1 || s[3] !== 1) throw new OnnxUnsupported(`${what}: [${s}]`);
  return [s[1]!, s[2]!];
}

function graphPads(node: GraphNode, a: Record<string, AttrValue>, h: number, w: number, k: [number, number], s: [number, number], d: [number, number]): Pads {
  const p = attrString(a.padding);
  if (p === 'SAME') return samePads(h, w, k, s, d);
  if (p === 'VALID') return [[0, 0], [0, 0]];
  const e = attrInts(a.explicit_paddings) ?? [];
  if (p !== 'EXPLICIT' || e.length !== 8 || e[0] || e[1] || e[6] || e[7]) throw new OnnxUnsupported(`${node.name}: padding ${p} [${e}]`);
  return [[e[2]!, e[3]!], [e[4]!, e[5]!]];
}

// ---- layers models (Keras) ----

function planLayersModel(
  folder: ModelFolder,
  weights: tf.NamedTensorMap,
  g: OnnxGraph,
  opts: { batch?: number; inputSize?: [number, number] },
): { input: string; output: string; inputShape: [number, number, number, number] } {
  const graph = parseKerasTopology(folder.json.modelTopology);
  const inputShape = staticInput(graph.inputShape, opts, graph.input);
  const byName = new Map<string, tf.Tensor>();
  for (const [name, t] of Object.entries(weights)) byName.set(name.replace(/:0$/, ''), t);
  // Keras weight names, e.g. "Conv1/kernel"; some converters prefix the model name ("model/Conv1/kernel").
  const tensor = (layer: string, param: string): tf.Tensor => {
    const exact = byName.get(`${layer}/${param}`);
    const hits = exact ? [] : [...byName.keys()].filter((k) => k.endsWith(`/${layer}/${param}`));
    const t = exact ?? (hits.length === 1 ? byName.get(hits[0]!) : undefined);
    if (!t || t.dtype !== 'float32') throw new OnnxUnsupported(`float32 weight ${layer}/${param} not found`);
    return t;
  };
  const need = (layer: string, param: string) => tensor(layer, param).dataSync() as Float32Array;
  const value = new Map<string, string>([[graph.input, g.transposeIn(graph.input, inputShape)]]);
  const absorbed = new Set<string>();
  const valueOf = (name: string): string => {
    const v = value.get(name);
    if (!v) throw new OnnxUnsupported(`layer ${name} is not computed`);
    return v;
  };
  const sole = (name: string) => soleConsumer(graph, name);

  for (const node of graph.nodes) {
    if (absorbed.has(node.name)) continue;
    const c = node.config;
    const x = () => {
      if (node.inputs.length !== 1) throw new OnnxUnsupported(`${node.name} has ${node.inputs.length} inputs`);
      return valueOf(node.inputs[0]!);
    };
    switch (node.className) {
      case 'ZeroPadding2D': {
        // Merged into the pads of the conv that is its only consumer (as fused-layers.ts does): passed through here.
        const next = sole(node.name);
        if (!next || (next.className !== 'Conv2D' && next.className !== 'DepthwiseConv2D')) throw new OnnxUnsupported(`${node.name}: ZeroPadding2D not before a conv`);
        channelsLast(node);
        value.set(node.name, x());
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        channelsLast(node);
        const depthwise = node.className === 'DepthwiseConv2D';
        const pad = graph.nodes.find((n) => n.name === node.inputs[0] && n.className === 'ZeroPadding2D');
        const src = valueOf(node.inputs[0]!);
        const [, , h, w] = g.shape(src) as [number, number, number, number];
        const k = pair(c.kernel_size, `${node.name} kernel_size`);
        const s = pair(c.strides ?? 1, `${node.name} strides`);
        const d = pair(c.dilation_rate ?? 1, `${node.name} dilation_rate`);
        if ((c.groups ?? 1) !== 1) throw new OnnxUnsupported(`${node.name}: groups ${String(c.groups)}`);
        const kernelT = tensor(node.name, depthwise ? 'depthwise_kernel' : 'kernel');
        const shape = kernelT.shape;
        if (shape.length !== 4 || shape[0] !== k[0] || shape[1] !== k[1]) throw new OnnxUnsupported(`${node.name}: kernel shape [${shape}] for kernel_size [${k}]`);
        let kernel = kernelT.dataSync() as Float32Array;
        let bias = c.use_bias === false ? undefined : need(node.name, 'bias');
        const outChannels = depthwise ? shape[2]! * shape[3]! : shape[3]!;
        const own = activationOf(node);
        let last = node.name;
        const bn = sole(node.name);
        if (own.fused === 'linear' && bn?.className === 'BatchNormalization' && bn.inputs.length === 1 && lastAxis(bn)) {
          ({ kernel, bias } = foldBatchNorm(
            kernel,
            bias,
            {
              gamma: bn.config.scale === false ? undefined : need(bn.name, 'gamma'),
              beta: bn.config.center === false ? undefined : need(bn.name, 'beta'),
              mean: need(bn.name, 'moving_mean'),
              variance: need(bn.name, 'moving_variance'),
              epsilon: num(bn, 'epsilon', 1e-3),
            },
            outChannels,
          ));
          absorbed.add(bn.name);
          last = bn.name;
        }
        let act = own.fused;
        if (!act) throw new OnnxUnsupported(`${node.name}: activation ${String(c.activation)}`);
        const next = act === 'linear' ? sole(last) : undefined;
        if (next && next.inputs.length === 1 && (next.className === 'ReLU' || next.className === 'Activation')) {
          const a = next.className === 'ReLU' ? reluLayer(next) : activationOf(next);
          if (a.fused) {
            act = a.fused;
            absorbed.add(next.name);
            last = next.name;
          }
        }
        // ZeroPadding2D then the conv's own padding, over the padded size: one set of pads.
        const pre: Pads = pad ? padding2d(pad.config.padding) : [[0, 0], [0, 0]];
        const ph = h + pre[0][0] + pre[0][1];
        const pw = w + pre[1][0] + pre[1][1];
        const own2: Pads = paddingMode(node) === 'same' ? samePads(ph, pw, k, s, d) : [[0, 0], [0, 0]];
        const pads: Pads = [
          [pre[0][0] + own2[0][0], pre[0][1] + own2[0][1]],
          [pre[1][0] + own2[1][0], pre[1][1] + own2[1][1]],
        ];
        const conv = g.conv(src, act === 'linear' ? last : `${last}/conv`, { kernel, shape, bias, depthwise }, s, d, pads);
        value.set(last, g.activation(conv, act, last));
        break;
      }
      case 'ReLU':
      case 'Activation': {
        const a = node.className === 'ReLU' ? reluLayer(node) : activationOf(node);
        if (!a.fused) throw new OnnxUnsupported(`${node.name}: activation other than relu/relu6`);
        value.set(node.name, g.activation(x(), a.fused, node.name));
        break;
      }
      case 'Add': {
        const ins = node.inputs.map(valueOf);
        if (ins.length < 2) throw new OnnxUnsupported(`${node.name}: Add of ${ins.length} inputs`);
        let acc = ins[0]!;
        for (let i = 1; i < ins.length; i++) acc = g.node('Add', [acc, ins[i]!], i === ins.length - 1 ? node.name : `${node.name}/${i}`, g.shape(acc));
        value.set(node.name, acc);
        break;
      }
      case 'AveragePooling2D': {
        channelsLast(node);
        const size = pair(c.pool_size ?? 2, `${node.name} pool_size`);
        const strides = c.strides == null ? size : pair(c.strides, `${node.name} strides`);
        value.set(node.name, g.avgPool(x(), node.name, size, strides, paddingMode(node)));
        break;
      }
      case 'GlobalAveragePooling2D': {
        channelsLast(node);
        const pooled = g.avgPool(x(), c.keepdims === true ? node.name : `${node.name}/pool`, g.shape(x()).slice(2) as [number, number], [1, 1], 'valid');
        value.set(node.name, c.keepdims === true ? pooled : g.flatten(pooled, node.name));
        break;
      }
      case 'Flatten':
        channelsLast(node);
        value.set(node.name, g.flatten(x(), node.name));
        break;
      case 'Dropout':
        value.set(node.name, x());
        break;
      default:
        throw new OnnxUnsupported(`layer class ${node.className} (${node.name})`);
    }
  }
  return { input: graph.input, output: valueOf(graph.output), inputShape };
}

function soleConsumer(graph: KerasGraph, name: string): KerasNode | undefined {
  return graph.uses.get(name) === 1 ? graph.consumers.get(name)![0] : undefined;
}

/** A BatchNormalization over the channel axis (-1, or 3 of a conv's NHWC output): foldable into the conv. */
function lastAxis(node: KerasNode): boolean {
  let axis = node.config.axis ?? -1;
  if (Array.isArray(axis) && axis.length === 1) axis = axis[0];
  return axis === -1 || axis === 3;
}
