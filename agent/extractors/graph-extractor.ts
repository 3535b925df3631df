/** Extractor over a TF.js graph model (tfjs-converter), e.g. TF-Hub feature-vector models. */
import * as tf from '@tensorflow/tfjs-core';
import { GraphModel, loadGraphModel } from '@tensorflow/tfjs-converter';
import { EdgeheadError } from '../util/errors';
import type { Extractor, ExtractorInfo } from './extractor';
import { type ModelFolder, toArtifacts } from './model-files';

export async function loadGraphExtractor(
  folder: ModelFolder,
  info: Omit<ExtractorInfo, 'featureDim' | 'inputSize'> & { inputSize?: [number, number] },
): Promise<Extractor> {
  let model: GraphModel;
  try {
    model = await loadGraphModel(tf.io.fromMemory(toArtifacts(folder)));
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `cannot load graph model from ${info.source}: ${(e as Error).message}`);
  }
  const inputSize = info.inputSize ?? staticInputSize(model.inputs[0]?.shape) ?? [224, 224];
  const outputNode = info.outputNode;
  const run = (input: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      const out = (outputNode ? model.execute(input, outputNode) : model.execute(input)) as tf.Tensor;
      return tf.reshape(out, [input.shape[0], -1]) as tf.Tensor2D;
    });
  // Warm-up: compiles the kernels once and tells us the feature dimension.
  const featureDim = tf.tidy(() => run(tf.zeros([1, inputSize[0], inputSize[1], 3])).shape[1]);
  return {
    info: { ...info, inputSize, featureDim },
    extract: run,
    dispose: () => model.dispose(),
  };
}

function staticInputSize(shape: number[] | undefined): [number, number] | undefined {
  if (!shape || shape.length !== 4) return undefined;
  const [, h, w] = shape;
  return h && w && h > 0 && w > 0 ? [h, w] : undefined;
}
