/**
 * The weights of a Keras model as fused-layers.ts plans with them: looked up by Keras name ("Conv1/kernel"), shapes
 * without decoding, values decoded on first use (decode-weights.ts), and the tensors the executor keeps, from the
 * weight cache when it has them. After the build, release() lets the decoded values go.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { io } from '@tensorflow/tfjs-core';
import { WeightDecoder } from './decode-weights';
import { KerasUnsupported } from './keras-graph';
import type { WeightSource } from './weight-cache';

const COMPUTE: WeightSource = { tensor: (_key, _shape, _dtype, make) => make() };
const RELEASED: WeightSource = {
  tensor: (key) => {
    throw new Error(`weight ${key} asked for after the build`);
  },
};

/**
 * The model's weights by Keras name, e.g. "Conv1/kernel": their manifest entries (shapes, for planning) and, decoded
 * on first use, their dequantized float32 values.
 */
export class KerasWeights {
  /** Keras name ("Conv1/kernel") -> manifest name ("Conv1/kernel" or "Conv1/kernel:0"). */
  private readonly names = new Map<string, string>();
  private readonly decoder: WeightDecoder;

  constructor(
    artifacts: { weightData: Uint8Array; weightSpecs: io.WeightsManifestEntry[] },
    /** Where kept tensors come from (weight-cache.ts); default: computed by `make`. */
    private source: WeightSource = COMPUTE,
    private readonly kept: tf.Tensor[] = [],
  ) {
    this.decoder = new WeightDecoder(artifacts.weightData, artifacts.weightSpecs);
    for (const name of this.decoder.names()) this.names.set(name.replace(/:0$/, ''), name);
  }

  private name(layer: string, param: string): string | undefined {
    const exact = this.names.get(`${layer}/${param}`);
    if (exact) return exact;
    // Some converters prefix the model name ("model/Conv1/kernel").
    const suffix = `/${layer}/${param}`;
    const hits = [...this.names.keys()].filter((k) => k.endsWith(suffix));
    return hits.length === 1 ? this.names.get(hits[0]!) : undefined;
  }

  /** The shape of a float32 weight, without decoding anything. */
  shape(layer: string, param: string): number[] {
    const name = this.name(layer, param);
    if (!name) throw new KerasUnsupported(`weight ${layer}/${param} not found`);
    const spec = this.decoder.spec(name)!;
    if (spec.dtype !== 'float32') throw new KerasUnsupported(`weight ${layer}/${param} is ${spec.dtype}`);
    return spec.shape;
  }

  /** The decoded weight (a tensor of the build's tf.tidy scope). */
  get(layer: string, param: string): tf.Tensor {
    this.shape(layer, param);
    return this.decoder.tensor(this.name(layer, param)!);
  }

  /** The decoded values, read only (not a copy). */
  data(layer: string, param: string): Float32Array {
    this.shape(layer, param);
    return this.decoder.values(this.name(layer, param)!) as Float32Array;
  }

  /** The build is over: the decoder's values and the model's bytes can go (decode-weights.ts release()). */
  release(): void {
    this.decoder.release();
    this.source = RELEASED; // a weight cache hit's arrays (~9 MB for MNv2 1.0)
  }

  /** A float32 tensor that outlives the build (freed by the model's dispose()): from the source, else `make`. */
  keep(key: string, shape: number[], make: () => tf.Tensor): tf.Tensor {
    const t = this.source.tensor(key, shape, 'float32', make);
    this.kept.push(tf.keep(t));
    return t;
  }
}
