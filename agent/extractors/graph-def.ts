/**
 * The GraphDef JSON of a TF.js graph model (model.json "modelTopology"): nodes, their input references, attributes.
 * Shared by pruning (prune.ts), the fused graph executor (fused-graph.ts) and the bench's ONNX export.
 */

/** A node as tfjs-converter writes it; attribute values are TensorFlow AttrValue JSON ({i}, {f}, {b}, {s: base64}, {list}). */
export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, AttrValue>;
}

export interface AttrValue {
  i?: string | number;
  f?: number;
  b?: boolean;
  s?: string;
  type?: string;
  list?: { i?: (string | number)[]; s?: string[]; f?: number[] };
  [k: string]: unknown;
}

/** "^name" (control dependency) and "name:1" (output index) -> "name". */
export const inputNodeName = (input: string): string => input.replace(/^\^/, '').replace(/:\d+$/, '');

/** Names reachable from `start` by following `parents` (start included). */
export function ancestors(start: string, parents: (name: string) => string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    stack.push(...parents(name));
  }
  return seen;
}

/** The nodes nothing reads, constants and inputs aside: a graph's outputs. */
export function graphOutputs(nodes: GraphNode[]): GraphNode[] {
  const read = new Set(nodes.flatMap((n) => (n.input ?? []).map(inputNodeName)));
  return nodes.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder' && !read.has(n.name));
}

/**
 * The nodes `output` depends on (itself included), each after its inputs (depth-first; no recursion, graphs can be
 * deep). Control dependencies are not followed. An undefined reference or a cycle is thrown as `fail(message)`.
 */
export function dependencyOrder(output: string, byName: Map<string, GraphNode>, fail: (message: string) => Error): GraphNode[] {
  const out: GraphNode[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: [string, boolean][] = [[output, false]];
  while (stack.length) {
    const [name, expanded] = stack.pop()!;
    const node = byName.get(name);
    if (!node) throw fail(`node ${name} is referenced but not defined`);
    if (expanded) {
      state.set(name, 'done');
      out.push(node);
      continue;
    }
    if (state.get(name) === 'done') continue;
    if (state.get(name) === 'open') throw fail(`cycle through ${name}`);
    state.set(name, 'open');
    stack.push([name, true]);
    for (const i of node.input ?? []) {
      if (i.startsWith('^')) continue;
      const dep = inputNodeName(i);
      if (state.get(dep) !== 'done') stack.push([dep, false]);
    }
  }
  return out;
}

export const attrString = (v: AttrValue | undefined): string | undefined => (v?.s === undefined ? undefined : Buffer.from(v.s, 'base64').toString('utf8'));
export const attrInts = (v: AttrValue | undefined): number[] | undefined => v?.list?.i?.map(Number);
export const attrStrings = (v: AttrValue | undefined): string[] => (v?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString('utf8'));
export const attrInt = (v: AttrValue | undefined): number | undefined => (v?.i === undefined ? undefined : Number(v.i));
