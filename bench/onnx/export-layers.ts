/** A Keras layers model -> an ONNX graph, with fused-layers.ts's fusions (bench/onnx/export.ts describes the mapping). */
import type * as tf from '@tensorflow/tfjs-core';
import { channelsLast, type KerasGraph, type KerasNode, num, pair, padding2d, paddingMode, parseKerasTopology } from '../../agent/extractors/keras-graph';
import { activationOf, foldBatchNorm, type Pads, reluLayer, samePads } from '../../agent/extractors/keras-ops';
import type { ModelFolder } from '../../agent/extractors/model-files';
import { OnnxGraph, OnnxUnsupported, type PlanOptions, type Planned, staticInput } from './onnx-graph';

export function planLayersModel(
  folder: ModelFolder,
  weights: tf.NamedTensorMap,
  g: OnnxGraph,
  opts: PlanOptions,
): Planned {
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
