/** Extractor over a TF.js layers (Keras) model (tfjs-layers). */
import * as tf from '@tensorflow/tfjs-core';
import { type LayersModel, loadLayersModel } from '@tensorflow/tfjs-layers';
import { EdgeheadError } from '../util/errors';
import type { Extractor, ExtractorInfo } from './extractor';
import { type ModelFolder, toArtifacts } from './model-files';

export async function loadLayersExtractor(
  folder: ModelFolder,
  info: Omit<ExtractorInfo, 'featureDim' | 'inputSize'> & { inputSize?: [number, number] },
): Promise<Extractor> {
  let model: LayersModel;
  try {
    model = await loadLayersModel(tf.io.fromMemory(toArtifacts(folder)));
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `cannot load layers model from ${info.source}: ${(e as Error).message}`);
  }
  const shape = model.inputs[0]?.shape;
  const inputSize: [number, number] = info.inputSize ?? (shape && shape[1] && shape[2] ? [shape[1], shape[2]] : [224, 224]);
  const run = (input: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => tf.reshape(model.predict(input) as tf.Tensor, [input.shape[0], -1]) as tf.Tensor2D);
  const featureDim = tf.tidy(() => run(tf.zeros([1, inputSize[0], inputSize[1], 3])).shape[1]);
  return {
    info: { ...info, inputSize, featureDim },
    extract: run,
    dispose: () => model.dispose(),
  };
}
