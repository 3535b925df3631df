/** A TF.js graph model (tfjs-converter's fused ops) -> an ONNX graph (bench/onnx/export.ts describes the mapping). */
import type * as tf from '@tensorflow/tfjs-core';
import { attrInt, attrInts, attrString, attrStrings, type AttrValue, dependencyOrder, type GraphNode, graphOutputs, inputNodeName } from '../../agent/extractors/graph-def';
import { type Pads, samePads } from '../../agent/extractors/keras-ops';
import type { ModelFolder } from '../../agent/extractors/model-files';
import { OnnxGraph, OnnxUnsupported, type PlanOptions, type Planned, staticInput } from './onnx-graph';

export function planGraphModel(
  folder: ModelFolder,
  weights: tf.NamedTensorMap,
  g: OnnxGraph,
  opts: PlanOptions,
): Planned {
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
