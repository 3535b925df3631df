/** Extractor over a TF.js graph model (tfjs-converter), e.g. TF-Hub feature-vector models. */
import * as tf from '@tensorflow/tfjs-core';
import { type GraphModel, loadGraphModel } from '@tensorflow/tfjs-converter';
import { EdgeheadError } from '../util/errors';
import { type Extractor, makeExtractor, type PartialInfo } from './extractor';
import { type ModelFolder, toArtifacts } from './model-files';

export async function loadGraphExtractor(folder: ModelFolder, info: PartialInfo): Promise<Extractor> {
  let model: GraphModel;
  try {
    model = await loadGraphModel(tf.io.fromMemory(toArtifacts(folder)));
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `cannot load graph model from ${info.source}: ${(e as Error).message}`);
  }
  const inputSize = info.inputSize ?? staticInputSize(model.inputs[0]?.shape) ?? [224, 224];
  const { outputNode } = info;
  const forward = (x: tf.Tensor4D) => (outputNode ? model.execute(x, outputNode) : model.execute(x)) as tf.Tensor;
  return makeExtractor(info, inputSize, forward, () => model.dispose());
}

/** [n, h, w, c] with known h and w; TF Hub models often leave them dynamic (-1). */
export function staticInputSize(shape: (number | null)[] | undefined): [number, number] | undefined {
  if (!shape || shape.length !== 4) return undefined;
  const [, h, w] = shape;
  return h && w && h > 0 && w > 0 ? [h, w] : undefined;
}
