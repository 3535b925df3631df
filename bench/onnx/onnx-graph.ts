/**
 * The ONNX graph a planner builds (bench/onnx/export.ts): nodes, float32 initializers and the static shape of every
 * value, with the few composite ops both planners use (conv from a TF kernel, activation, pooling, NHWC flatten).
 */
import { type Pads, samePads } from '../../agent/extractors/keras-ops';
import { type Attribute, AttributeType, DataType, type Node, type Tensor } from './onnx-schema';

export class OnnxUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxUnsupported';
  }
}

export interface PlanOptions {
  batch?: number;
  inputSize?: [number, number];
}

/** What a planner returns: the ONNX graph's input and output values and the NHWC input shape. */
export interface Planned {
  input: string;
  output: string;
  inputShape: [number, number, number, number];
}

export const ints = (name: string, v: number[]): Attribute => ({ name, type: AttributeType.INTS, ints: v });
export const int = (name: string, v: number): Attribute => ({ name, type: AttributeType.INT, i: v });

/** Nodes, initializers and the static shape of every value (4-d values are NCHW). */
export class OnnxGraph {
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

/** [n, h, w, c] of a model input: its static size, else opts.inputSize. */
export const staticInput = (dims: (number | null)[], opts: PlanOptions, what: string): [number, number, number, number] => {
  const [h, w, c] = dims.slice(-3);
  const size: [number, number] | undefined = h && w && h > 0 && w > 0 ? [h, w] : opts.inputSize;
  if (!size || !c || c < 1) throw new OnnxUnsupported(`${what}: input shape [${dims}] (give inputSize)`);
  return [opts.batch ?? 1, size[0], size[1], c];
};
