/**
 * A model's weights decoded on demand, one by name, with the values tf.io.decodeWeights gives (uint8/uint16
 * dequantized as `q * scale + min`, the same expression, so the same float32 values).
 *
 * Why not tf.io.decodeWeights: it decodes every weight up front, copies each one's bytes out of the shards first, and
 * allocates one array per weight; for the 1.4 graph model that was ~17 MB in ~260 arrays, and the garbage collection
 * it set off cost as much as the decoding (docs/BENCHMARKS.md, "Cold start"). Here the float32 values of all weights
 * share one array, allocated on first use, and weights nobody asks for (pruned graph nodes) are never decoded.
 * Dtypes and quantizations other than float32/int32 with none/uint8/uint16 go through tf.io.decodeWeights, one entry.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { io } from '@tensorflow/tfjs-core';
import { storedByteSize } from './model-files';

interface Slot {
  spec: io.WeightsManifestEntry;
  /** Byte offset of the stored weight in the concatenated weight data. */
  byteOffset: number;
  /** Element offset in the float32 arena, for float32 weights. */
  arenaOffset?: number;
  decoded?: boolean;
  int32?: Int32Array;
}

export class WeightDecoder {
  private readonly slots = new Map<string, Slot>();
  private arena?: Float32Array;
  private readonly arenaSize: number;

  /** The model's stored bytes; undefined after release(). */
  private weightData: Uint8Array | undefined;

  constructor(weightData: Uint8Array, specs: io.WeightsManifestEntry[]) {
    this.weightData = weightData;
    let byteOffset = 0;
    let arenaOffset = 0;
    for (const spec of specs) {
      const slot: Slot = { spec, byteOffset };
      if (spec.dtype === 'float32' && fastPath(spec)) {
        slot.arenaOffset = arenaOffset;
        arenaOffset += size(spec);
      }
      this.slots.set(spec.name, slot);
      byteOffset += storedByteSize(spec);
    }
    this.arenaSize = arenaOffset;
  }

  /** The manifest entry of a weight, if the model has one by that name. */
  spec(name: string): io.WeightsManifestEntry | undefined {
    return this.slots.get(name)?.spec;
  }

  names(): string[] {
    return [...this.slots.keys()];
  }

  /** A new tensor of the weight's decoded values (the caller owns it). */
  tensor(name: string): tf.Tensor {
    const { spec } = this.slot(name);
    if (!fastPath(spec)) return tf.io.decodeWeights(copyOf(this.stored(name)), [spec])[spec.name]!;
    return tf.tensor(this.values(name), spec.shape, spec.dtype);
  }

  /** The decoded values of a float32 or int32 weight (decoded once; read only: tensors may share them). */
  values(name: string): Float32Array | Int32Array {
    const slot = this.slot(name);
    const { spec } = slot;
    if (!fastPath(spec)) return tf.io.decodeWeights(copyOf(this.stored(name)), [spec])[spec.name]!.dataSync() as Float32Array | Int32Array;
    const n = size(spec);
    if (spec.dtype === 'int32') return (slot.int32 ??= dequantize(this.stored(name), spec, new Int32Array(n)));
    this.arena ??= new Float32Array(this.arenaSize);
    const out = this.arena.subarray(slot.arenaOffset!, slot.arenaOffset! + n);
    if (!slot.decoded) dequantize(this.stored(name), spec, out);
    slot.decoded = true;
    return out;
  }

  /**
   * Lets go of the decoded values and the stored bytes once the build has made its tensors: the WASM backend copied
   * them into its heap, so holding them on would keep ~20 MB of the process (MobileNetV2 1.4) for nothing (tensors of
   * the CPU backend keep the views they were made from). Every later call throws.
   */
  release(): void {
    this.weightData = undefined;
    this.arena = undefined;
    for (const slot of this.slots.values()) {
      slot.int32 = undefined;
      slot.decoded = false;
    }
  }

  private slot(name: string): Slot {
    const slot = this.slots.get(name);
    if (!slot) throw new Error(`no weight named ${name}`);
    return slot;
  }

  private stored(name: string): Uint8Array {
    const { spec, byteOffset } = this.slot(name);
    if (!this.weightData) throw new Error(`weight ${name} read after the build released the model's weights`);
    return this.weightData.subarray(byteOffset, byteOffset + storedByteSize(spec));
  }
}

const size = (spec: io.WeightsManifestEntry) => spec.shape.reduce((a, b) => a * b, 1);

function fastPath(spec: io.WeightsManifestEntry): boolean {
  const q = spec.quantization?.dtype;
  return (spec.dtype === 'float32' || spec.dtype === 'int32') && (q === undefined || q === 'uint8' || q === 'uint16');
}

function copyOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** tfjs-core's io_utils decodeWeight, for the fast-path cases, into `out`. */
function dequantize<T extends Float32Array | Int32Array>(stored: Uint8Array, spec: io.WeightsManifestEntry, out: T): T {
  const q = spec.quantization;
  if (!q) {
    // Stored values of the weight's own dtype: a byte copy (offsets in the shards need not be 4-byte aligned).
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(stored);
    return out;
  }
  if (q.min === undefined || q.scale === undefined) throw new Error(`weight ${spec.name} with quantization ${q.dtype} has no min and scale`);
  const { scale, min } = q;
  const values = q.dtype === 'uint8' ? stored : new Uint16Array(copyOf(stored));
  if (out instanceof Int32Array) for (let i = 0; i < values.length; i++) out[i] = Math.round(values[i]! * scale + min);
  else for (let i = 0; i < values.length; i++) out[i] = values[i]! * scale + min;
  return out;
}
