/**
 * A lean executor for TF.js graph models (tfjs-converter's format, e.g. TF-Hub feature vectors), inference only.
 *
 * The converter already folds BatchNorm and fuses bias + activation into its _FusedConv2D /
 * FusedDepthwiseConv2dNative nodes; this executor runs those nodes as the same TF.js ops, but from a plan made once
 * at load (constants bound, Identity nodes removed, attributes parsed) and with the memory policy of step-runner.ts.
 * That policy is what makes it faster on the threaded backend (docs/fusion.md); on one thread it runs as fast as
 * tfjs-converter's GraphExecutor, with the same outputs (same kernels).
 *
 * It covers the ops of convolutional feature extractors (list in SUPPORTED_OPS, NHWC only); any other op, control
 * flow, or a graph without a single input and output raises GraphUnsupported and the caller runs the model on
 * tfjs-converter instead.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type AttrValue, attrInt, attrInts, attrString, attrStrings, dependencyOrder, type GraphNode, graphOutputs, inputNodeName } from './graph-def';
import { WeightDecoder } from './decode-weights';
import type { ModelFolder } from './model-files';
import { type Retention, type Step, type StepExecutor, stepExecutor } from './step-runner';
import type { CachedDtype, WeightSource } from './weight-cache';

export class GraphUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphUnsupported';
  }
}

export interface FusedGraphModel extends StepExecutor {
  readonly input: string;
  readonly output: string;
  /** Op nodes the output depends on, and the steps run per call (Identity nodes need none). */
  readonly summary: { nodes: number; steps: number };
}

export const SUPPORTED_OPS = [
  '_FusedConv2D',
  'FusedDepthwiseConv2dNative',
  'Conv2D',
  'DepthwiseConv2dNative',
  'BiasAdd',
  'Add',
  'AddV2',
  'Sub',
  'Mul',
  'RealDiv',
  'Maximum',
  'Minimum',
  'Relu',
  'Relu6',
  'AvgPool',
  'MaxPool',
  'Mean',
  'Squeeze',
  'Reshape',
  'Identity',
  'StopGradient',
  'Snapshot',
] as const;
const SUPPORTED = new Set<string>(SUPPORTED_OPS);

const BINARY: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
  BiasAdd: tf.add,
  Add: tf.add,
  AddV2: tf.add,
  Sub: tf.sub,
  Mul: tf.mul,
  RealDiv: tf.div,
  Maximum: tf.maximum,
  Minimum: tf.minimum,
};

/**
 * Builds the executor; throws GraphUnsupported for graphs it does not cover. The constants it binds come from
 * `source` (weight-cache.ts) if given, else are decoded from the model files (decode-weights.ts: only those the
 * output depends on).
 */
export function buildFusedGraphModel(folder: ModelFolder, opts: { outputNode?: string; retention?: Retention; source?: WeightSource } = {}): FusedGraphModel {
  const nodes = (folder.json.modelTopology as { node?: GraphNode[] } | undefined)?.node;
  if (!Array.isArray(nodes)) throw new GraphUnsupported('model.json has no graph nodes');
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const output = opts.outputNode ?? defaultOutput(folder, nodes);
  if (!byName.has(output)) throw new GraphUnsupported(`graph has no node named ${output}`);
  const needed = dependencyOrder(output, byName, (m) => new GraphUnsupported(m));
  const ops = needed.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder');
  for (const node of ops) if (!SUPPORTED.has(node.op)) throw new GraphUnsupported(`op ${node.op} (node ${node.name})`);
  const placeholders = needed.filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1) throw new GraphUnsupported(`the output depends on ${placeholders.length} inputs (1 supported)`);

  const constants = new Constants(folder, opts.source);
  let steps: Step[];
  let alias: Map<string, string>;
  try {
    ({ steps, alias } = plan(ops, byName, (name) => constants.get(name)));
  } catch (e) {
    constants.dispose();
    throw e;
  } finally {
    constants.release(); // the steps' closures keep `constants` alive: not its decoded copy of the weights
  }
  const kept = constants.bound();
  const input = placeholders[0]!.name;
  return {
    input,
    output,
    summary: { nodes: ops.length, steps: steps.length },
    ...stepExecutor(steps, input, alias.get(output) ?? output, kept, opts.retention),
  };
}

/** The graph's constants by node name: bound from the weight source, else decoded from the model's weights. */
class Constants {
  private readonly byName = new Map<string, tf.Tensor>();
  private readonly decoder: WeightDecoder;

  constructor(
    folder: ModelFolder,
    private readonly source: WeightSource | undefined,
  ) {
    this.decoder = new WeightDecoder(folder.weightData, folder.json.weightsManifest.flatMap((g) => g.weights));
  }

  get(name: string): tf.Tensor {
    const done = this.byName.get(name);
    if (done) return done;
    const spec = this.decoder.spec(name);
    if (!spec) throw new GraphUnsupported(`constant ${name} has no weight entry`);
    const decode = () => this.decoder.tensor(name);
    const cacheable = spec.dtype === 'float32' || spec.dtype === 'int32';
    const t = this.source && cacheable ? this.source.tensor(name, spec.shape, spec.dtype as CachedDtype, decode) : decode();
    this.byName.set(name, t);
    return t;
  }

  /** Every constant bound (each decoded once; the weights of pruned nodes never are). */
  bound(): tf.Tensor[] {
    return [...this.byName.values()];
  }

  /** The build is over: the decoder's values and the model's bytes can go (decode-weights.ts release()). */
  release(): void {
    this.decoder.release();
  }

  dispose(): void {
    tf.dispose(this.bound());
  }
}

/** The model's output when none is named: the signature's only output, else the only node nobody reads. */
function defaultOutput(folder: ModelFolder, nodes: GraphNode[]): string {
  const sig = folder.json.signature as { outputs?: Record<string, { name?: string }> } | undefined;
  const fromSignature = Object.values(sig?.outputs ?? {}).map((o) => inputNodeName(o.name ?? ''));
  if (fromSignature.length === 1 && fromSignature[0]) return fromSignature[0];
  const leaves = graphOutputs(nodes);
  if (leaves.length !== 1) throw new GraphUnsupported(`the graph has ${leaves.length} outputs; name one (extractor.outputNode)`);
  return leaves[0]!.name;
}

function plan(ordered: GraphNode[], byName: Map<string, GraphNode>, weight: (name: string) => tf.Tensor): { steps: Step[]; alias: Map<string, string> } {
  const steps: Step[] = [];
  const alias = new Map<string, string>();
  const resolve = (name: string) => alias.get(name) ?? name;
  const constant = (name: string): tf.Tensor | undefined => (byName.get(name)?.op === 'Const' ? weight(name) : undefined);
  for (const node of ordered) {
    const a = node.attr ?? {};
    const refs = (node.input ?? []).filter((i) => !i.startsWith('^'));
    for (const r of refs) if (/:[1-9]\d*$/.test(r)) throw new GraphUnsupported(`${node.name} reads output ${r} (only single-output ops are supported)`);
    const names = refs.map(inputNodeName);
    const format = attrString(a.data_format);
    if (format && format !== 'NHWC') throw new GraphUnsupported(`${node.name}: data_format ${format}`);
    // Inputs are either constants (bound now) or values computed by earlier steps (looked up per call).
    const bound = names.map(constant);
    const dynamic = names.filter((_, k) => !bound[k]).map(resolve);
    const args = (xs: tf.Tensor[]): tf.Tensor[] => {
      let d = 0;
      return bound.map((t) => t ?? xs[d++]!);
    };
    const push = (run: (v: tf.Tensor[]) => tf.Tensor) => {
      if (dynamic.length === 0) throw new GraphUnsupported(`${node.name} (${node.op}) depends on constants only`);
      steps.push({ out: node.name, inputs: dynamic, run: (xs) => run(args(xs)) });
    };
    const arity = (n: number) => {
      if (names.length !== n) throw new GraphUnsupported(`${node.name} (${node.op}) has ${names.length} inputs, expected ${n}`);
    };
    const op = node.op;
    if (op === 'Identity' || op === 'StopGradient' || op === 'Snapshot') {
      arity(1);
      if (bound[0]) throw new GraphUnsupported(`${node.name} (${op}) of a constant`);
      alias.set(node.name, dynamic[0]!);
    } else if (op === '_FusedConv2D' || op === 'FusedDepthwiseConv2dNative' || op === 'Conv2D' || op === 'DepthwiseConv2dNative') {
      const fused = op.startsWith('_') || op.startsWith('Fused');
      const { activation, withBias } = fused ? fusedOps(node, a) : { activation: 'linear' as const, withBias: false };
      arity(withBias ? 3 : 2);
      const conv = convParams(node, a);
      const depthwise = op.includes('Depthwise');
      const { pad, ...rest } = conv;
      if (depthwise && typeof pad !== 'string') {
        // tf.fused.depthwiseConv2d takes no explicit padding: pad first, then a 'valid' convolution
        push(([x, filter, bias]) =>
          tf.fused.depthwiseConv2d({ x: tf.pad(x as tf.Tensor4D, pad), filter: filter as tf.Tensor4D, ...rest, pad: 'valid', bias: withBias ? bias : undefined, activation }),
        );
      } else if (depthwise) {
        const p = pad as 'same' | 'valid';
        push(([x, filter, bias]) => tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, ...rest, pad: p, bias: withBias ? bias : undefined, activation }));
      } else {
        push(([x, filter, bias]) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, ...rest, pad, bias: withBias ? bias : undefined, activation }));
      }
    } else if (op in BINARY) {
      arity(2);
      const f = BINARY[op]!;
      push(([x, y]) => f(x!, y!));
    } else if (op === 'Relu' || op === 'Relu6') {
      arity(1);
      push(op === 'Relu' ? ([x]) => tf.relu(x!) : ([x]) => tf.relu6(x!));
    } else if (op === 'AvgPool' || op === 'MaxPool') {
      arity(1);
      const k = attrInts(a.ksize);
      const s = attrInts(a.strides);
      const pad = padding(node, a);
      if (!k || !s || k.length !== 4 || s.length !== 4 || k[0] !== 1 || k[3] !== 1 || pad === 'explicit') {
        throw new GraphUnsupported(`${node.name} (${op}): pooling over batch or channels, or explicit padding`);
      }
      const size: [number, number] = [k[1]!, k[2]!];
      const strides: [number, number] = [s[1]!, s[2]!];
      push(op === 'AvgPool' ? ([x]) => tf.avgPool(x as tf.Tensor4D, size, strides, pad) : ([x]) => tf.maxPool(x as tf.Tensor4D, size, strides, pad));
    } else if (op === 'Mean') {
      arity(2);
      const axes = constValues(bound[1], node, 'axes');
      const keepDims = a.keep_dims?.b ?? false;
      push(([x]) => tf.mean(x!, axes, keepDims));
    } else if (op === 'Squeeze') {
      arity(1);
      const dims = attrInts(a.squeeze_dims) ?? [];
      push(([x]) => tf.squeeze(x!, dims.length ? dims : undefined));
    } else if (op === 'Reshape') {
      arity(2);
      const shape = constValues(bound[1], node, 'shape');
      push(([x]) => tf.reshape(x!, shape));
    } else {
      throw new GraphUnsupported(`op ${op} (node ${node.name})`);
    }
  }
  return { steps, alias };
}

function fusedOps(node: GraphNode, a: Record<string, AttrValue>): { activation: 'linear' | 'relu' | 'relu6'; withBias: boolean } {
  const ops = attrStrings(a.fused_ops);
  const numArgs = attrInt(a.num_args) ?? 1;
  if (ops[0] !== 'BiasAdd' || numArgs !== 1 || ops.length > 2) throw new GraphUnsupported(`${node.name}: fused ops [${ops.join(', ')}]`);
  const act = ops[1];
  if (act === undefined) return { activation: 'linear', withBias: true };
  if (act === 'Relu') return { activation: 'relu', withBias: true };
  if (act === 'Relu6') return { activation: 'relu6', withBias: true };
  throw new GraphUnsupported(`${node.name}: fused activation ${act}`);
}

function padding(node: GraphNode, a: Record<string, AttrValue>): 'same' | 'valid' | 'explicit' {
  const p = attrString(a.padding);
  if (p === 'SAME') return 'same';
  if (p === 'VALID') return 'valid';
  if (p === 'EXPLICIT') return 'explicit';
  throw new GraphUnsupported(`${node.name}: padding ${p}`);
}

function convParams(node: GraphNode, a: Record<string, AttrValue>) {
  const s = attrInts(a.strides) ?? [1, 1, 1, 1];
  const d = attrInts(a.dilations) ?? [1, 1, 1, 1];
  if (s.length !== 4 || d.length !== 4 || s[0] !== 1 || s[3] !== 1 || d[0] !== 1 || d[3] !== 1) {
    throw new GraphUnsupported(`${node.name}: strides/dilations over batch or channels`);
  }
  const mode = padding(node, a);
  let pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]] = mode === 'explicit' ? 'valid' : mode;
  if (mode === 'explicit') {
    const e = attrInts(a.explicit_paddings) ?? [];
    if (e.length !== 8 || e[0] || e[1] || e[6] || e[7]) throw new GraphUnsupported(`${node.name}: explicit paddings [${e.join(', ')}]`);
    pad = [
      [0, 0],
      [e[2]!, e[3]!],
      [e[4]!, e[5]!],
      [0, 0],
    ];
  }
  return { strides: [s[1]!, s[2]!] as [number, number], dilations: [d[1]!, d[2]!] as [number, number], pad, dataFormat: 'NHWC' as const };
}

function constValues(t: tf.Tensor | undefined, node: GraphNode, what: string): number[] {
  if (!t) throw new GraphUnsupported(`${node.name} (${node.op}): ${what} must be a constant`);
  return Array.from(t.dataSync() as Int32Array | Float32Array);
}
