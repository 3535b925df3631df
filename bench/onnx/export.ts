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
 * The planners are export-graph.ts and export-layers.ts; both build on onnx-graph.ts, this file writes the model.
 *
 * The ONNX graph takes the same NHWC float32 input as our extractor (a Transpose to NCHW is its first node) and gives
 * the same [n, featureDim] features. Shapes are static (batch 1 unless asked): pads are computed from them, as TF's
 * 'same' padding depends on the input size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type ModelFolder, toArtifacts } from '../../agent/extractors/model-files';
import { planGraphModel } from './export-graph';
import { planLayersModel } from './export-layers';
import { OnnxGraph, OnnxUnsupported } from './onnx-graph';
import { DataType, encodeModel } from './onnx-schema';

export { OnnxUnsupported } from './onnx-graph';

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
