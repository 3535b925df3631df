/** Extractor over a TF.js layers (Keras) model (tfjs-layers). */
import * as tf from '@tensorflow/tfjs-core';
import { type LayersModel, loadLayersModel } from '@tensorflow/tfjs-layers';
import { EdgeheadError } from '../util/errors';
import { type Extractor, makeExtractor, type PartialInfo } from './extractor';
import { staticInputSize } from './graph-extractor';
import { type ModelFolder, toArtifacts } from './model-files';

export async function loadLayersExtractor(folder: ModelFolder, info: PartialInfo): Promise<Extractor> {
  let model: LayersModel;
  try {
    model = await loadLayersModel(tf.io.fromMemory(toArtifacts(folder)));
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `cannot load layers model from ${info.source}: ${(e as Error).message}`);
  }
  const inputSize = info.inputSize ?? staticInputSize(model.inputs[0]?.shape) ?? [224, 224];
  return makeExtractor(info, inputSize, (x) => model.predict(x) as tf.Tensor, () => model.dispose());
}
