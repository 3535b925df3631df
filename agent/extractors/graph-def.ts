/**
 * The GraphDef JSON of a TF.js graph model (model.json "modelTopology"): nodes, their input references, attributes.
 * Shared by pruning (prune.ts) and the fused graph executor (fused-graph.ts).
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

export const attrString = (v: AttrValue | undefined): string | undefined => (v?.s === undefined ? undefined : Buffer.from(v.s, 'base64').toString('utf8'));
export const attrInts = (v: AttrValue | undefined): number[] | undefined => v?.list?.i?.map(Number);
export const attrStrings = (v: AttrValue | undefined): string[] => (v?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString('utf8'));
export const attrInt = (v: AttrValue | undefined): number | undefined => (v?.i === undefined ? undefined : Number(v.i));
