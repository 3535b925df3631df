/**
 * The Keras functional topology of a TF.js layers model (model.json `modelTopology`), parsed into a small graph the
 * fused executor can plan over: one node per layer call, inputs by layer name, in execution order, with the layers
 * that do not lead to the output dropped.
 *
 * Anything outside what the executor understands (several inputs or outputs, shared layers, nested models,
 * channels_first, Keras 3 node syntax) raises KerasUnsupported; the caller then runs the model through tfjs-layers.
 */

/** The model cannot be run by the fused executor; tfjs-layers can still run it. */
export class KerasUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KerasUnsupported';
  }
}

export type LayerConfig = Record<string, unknown>;

export interface KerasNode {
  name: string;
  className: string;
  config: LayerConfig;
  /** Names of the layers whose (single) output this layer consumes, in argument order. */
  inputs: string[];
}

export interface KerasGraph {
  /** The InputLayer's name. */
  input: string;
  /** [h, w, c] of the input (null where dynamic). */
  inputShape: (number | null)[];
  /** The layer whose output is the model's output. */
  output: string;
  /** The layers the output depends on, each after its inputs (the InputLayer excluded). */
  nodes: KerasNode[];
  /** For every node: how many times its output is used (layer inputs, plus one if it is the model output). */
  uses: Map<string, number>;
  /** For every node: the nodes consuming its output. */
  consumers: Map<string, KerasNode[]>;
}

interface RawLayer {
  name?: unknown;
  class_name?: unknown;
  config?: unknown;
  inbound_nodes?: unknown;
}

/** Parses `modelTopology` (with or without the `model_config` wrapper) of a Functional or Sequential model. */
export function parseKerasTopology(modelTopology: unknown): KerasGraph {
  let top = modelTopology as Record<string, unknown> | null;
  if (top && typeof top === 'object' && top.model_config != null) top = top.model_config as Record<string, unknown>;
  if (!top || typeof top !== 'object') throw new KerasUnsupported('modelTopology is not a Keras model config');
  const cls = top.class_name;
  if (cls === 'Sequential') return parseSequential(top.config);
  if (cls === 'Model' || cls === 'Functional') return parseFunctional(top.config as Record<string, unknown>);
  throw new KerasUnsupported(`model class ${String(cls)} (only Functional/Model and Sequential)`);
}

function parseFunctional(config: Record<string, unknown> | undefined): KerasGraph {
  const layers = config?.layers;
  if (!Array.isArray(layers)) throw new KerasUnsupported('model config has no layers list');
  const ins = endpoints(config?.input_layers, 'input_layers');
  const outs = endpoints(config?.output_layers, 'output_layers');
  if (ins.length !== 1 || outs.length !== 1) {
    throw new KerasUnsupported(`${ins.length} inputs and ${outs.length} outputs (only one of each)`);
  }
  const byName = new Map<string, KerasNode>();
  for (const raw of layers as RawLayer[]) {
    const node = toNode(raw, inboundNames(raw));
    if (byName.has(node.name)) throw new KerasUnsupported(`duplicate layer name ${node.name}`);
    byName.set(node.name, node);
  }
  return finish(byName, ins[0]!, outs[0]!);
}

function parseSequential(config: unknown): KerasGraph {
  const layers = Array.isArray(config) ? config : (config as { layers?: unknown } | undefined)?.layers;
  if (!Array.isArray(layers) || layers.length === 0) throw new KerasUnsupported('Sequential model has no layers');
  const byName = new Map<string, KerasNode>();
  let raws = layers as RawLayer[];
  let prev: string;
  if (raws[0]?.class_name === 'InputLayer') {
    const node = toNode(raws[0], []);
    byName.set(node.name, node);
    prev = node.name;
    raws = raws.slice(1);
  } else {
    // Keras puts the input shape on the first layer of a Sequential model.
    const first = (raws[0]?.config ?? {}) as LayerConfig;
    prev = '__input__';
    byName.set(prev, { name: prev, className: 'InputLayer', config: { batch_input_shape: first.batch_input_shape }, inputs: [] });
  }
  for (const raw of raws) {
    const node = toNode(raw, [prev]);
    if (byName.has(node.name)) throw new KerasUnsupported(`duplicate layer name ${node.name}`);
    byName.set(node.name, node);
    prev = node.name;
  }
  const input = [...byName.values()][0]!.name;
  return finish(byName, input, prev);
}

function toNode(raw: RawLayer, inputs: string[]): KerasNode {
  if (typeof raw?.class_name !== 'string') throw new KerasUnsupported('a layer without class_name');
  const config = (raw.config ?? {}) as LayerConfig;
  const name = typeof raw.name === 'string' ? raw.name : config.name;
  if (typeof name !== 'string') throw new KerasUnsupported(`a ${raw.class_name} layer without a name`);
  return { name, className: raw.class_name, config, inputs };
}

/** [["input_1", 0, 0]] -> ["input_1"]; only tensor 0 of node 0 (no multi-output layers). */
function endpoints(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) throw new KerasUnsupported(`model config has no ${what}`);
  // A single endpoint may be written flat: ["input_1", 0, 0].
  const list = typeof v[0] === 'string' ? [v] : v;
  return list.map((e: unknown) => refName(e, what));
}

function refName(e: unknown, what: string): string {
  if (!Array.isArray(e) || typeof e[0] !== 'string') throw new KerasUnsupported(`unreadable ${what} entry ${JSON.stringify(e)}`);
  if ((e[1] ?? 0) !== 0 || (e[2] ?? 0) !== 0) throw new KerasUnsupported(`${what} uses ${e[0]}[${e[1]}][${e[2]}] (shared or multi-output layer)`);
  return e[0];
}

/** Keras 2 syntax: inbound_nodes = [[ [name, nodeIndex, tensorIndex, kwargs], ... ]] with one entry per call. */
function inboundNames(raw: RawLayer): string[] {
  const nodes = raw.inbound_nodes;
  if (nodes == null || (Array.isArray(nodes) && nodes.length === 0)) return [];
  if (!Array.isArray(nodes)) throw new KerasUnsupported(`layer ${String(raw.name)}: unreadable inbound_nodes`);
  if (nodes.length !== 1) throw new KerasUnsupported(`layer ${String(raw.name)} is called ${nodes.length} times (shared layer)`);
  const call = nodes[0];
  if (!Array.isArray(call)) throw new KerasUnsupported(`layer ${String(raw.name)}: inbound node syntax not supported (Keras 3?)`);
  return call.map((ref: unknown) => {
    const kwargs = Array.isArray(ref) ? ref[3] : undefined;
    if (kwargs && typeof kwargs === 'object' && Object.keys(kwargs).length > 0) {
      throw new KerasUnsupported(`layer ${String(raw.name)} is called with arguments ${JSON.stringify(kwargs)}`);
    }
    return refName(ref, `inbound node of ${String(raw.name)}`);
  });
}

function finish(byName: Map<string, KerasNode>, input: string, output: string): KerasGraph {
  const inputNode = byName.get(input);
  if (!inputNode || inputNode.className !== 'InputLayer') throw new KerasUnsupported(`input ${input} is not an InputLayer`);
  const shape = inputNode.config.batch_input_shape ?? inputNode.config.batch_shape;
  if (!Array.isArray(shape) || shape.length !== 4) throw new KerasUnsupported(`input shape ${JSON.stringify(shape)} is not [batch, h, w, c]`);
  if (!byName.has(output)) throw new KerasUnsupported(`output layer ${output} not found`);

  // Depth-first from the output: execution order, and only the layers the output needs.
  const nodes: KerasNode[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') throw new KerasUnsupported(`cycle through layer ${name}`);
    const node = byName.get(name);
    if (!node) throw new KerasUnsupported(`unknown layer ${name}`);
    state.set(name, 'visiting');
    if (node.className === 'InputLayer' && name !== input) throw new KerasUnsupported(`second input ${name}`);
    for (const i of node.inputs) visit(i);
    state.set(name, 'done');
    if (name !== input) nodes.push(node);
  };
  visit(output);
  if (state.get(input) !== 'done') throw new KerasUnsupported('the output does not depend on the input');

  const uses = new Map<string, number>([[input, 0]]);
  const consumers = new Map<string, KerasNode[]>([[input, []]]);
  for (const n of nodes) {
    uses.set(n.name, 0);
    consumers.set(n.name, []);
  }
  for (const n of nodes) {
    for (const i of n.inputs) {
      uses.set(i, uses.get(i)! + 1);
      consumers.get(i)!.push(n);
    }
  }
  uses.set(output, uses.get(output)! + 1);
  return { input, inputShape: (shape as (number | null)[]).slice(1), output, nodes, uses, consumers };
}

// ---- config readers ----

export function pair(v: unknown, what: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0], v[1]];
  throw new KerasUnsupported(`${what}: expected a number or a pair, got ${JSON.stringify(v)}`);
}

/** ZeroPadding2D padding: n, [h, w] or [[top, bottom], [left, right]]. */
export function padding2d(v: unknown): [[number, number], [number, number]] {
  if (typeof v === 'number') return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    if (v.every((x) => typeof x === 'number')) return [[v[0], v[0]], [v[1], v[1]]];
    const [h, w] = v.map((x) => pair(x, 'ZeroPadding2D padding'));
    return [h!, w!];
  }
  throw new KerasUnsupported(`ZeroPadding2D padding ${JSON.stringify(v)}`);
}

export function channelsLast(node: KerasNode): void {
  const f = node.config.data_format;
  if (f != null && f !== 'channels_last') throw new KerasUnsupported(`${node.name}: data_format ${String(f)}`);
}

export function paddingMode(node: KerasNode): 'same' | 'valid' {
  const p = node.config.padding ?? 'valid';
  if (p !== 'same' && p !== 'valid') throw new KerasUnsupported(`${node.name}: padding ${String(p)}`);
  return p;
}

export function num(node: KerasNode, key: string, fallback: number): number {
  const v = node.config[key];
  if (v == null) return fallback;
  if (typeof v !== 'number') throw new KerasUnsupported(`${node.name}: ${key} ${JSON.stringify(v)}`);
  return v;
}
