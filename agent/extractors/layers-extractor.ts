/**
 * Extractor over a TF.js layers (Keras) model. By default the model runs on the fused executor (fused-layers.ts:
 * BatchNorm folded into the convs, ReLU6 fused, see docs/fusion.md); models it does not cover, and `fused: false`,
 * run on tfjs-layers ("stock"). Both give the same features; the fingerprint is that of the model files either way.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type Extractor, fusedOrStock, makeExtractor, type PartialInfo, withWeightCache } from './extractor';
import { buildFusedLayersModel } from './fused-layers';
import { KerasUnsupported } from './keras-graph';
import { type ModelFolder, toArtifacts } from './model-files';
import type { ExecutorCache, WeightSource } from './weight-cache';

const log = createLogger('extractor:layers');

export interface LayersExtractorOptions {
  /** Run on the fused executor when the model allows it (default true); false = tfjs-layers. */
  fused?: boolean;
  /** The fused executor's weight cache for this model (weight-cache.ts), if any. */
  cache?: ExecutorCache;
}

export async function loadLayersExtractor(folder: ModelFolder, info: PartialInfo, opts: LayersExtractorOptions = {}): Promise<Extractor> {
  return fusedOrStock(
    { fused: opts.fused, source: info.source, log, executor: 'fused executor', library: 'tfjs-layers', unsupported: KerasUnsupported },
    () => withWeightCache(opts.cache, log, true, (source, featureDim) => loadFusedLayersExtractor(folder, info, source, featureDim)),
    () => loadStockLayersExtractor(folder, info),
  );
}

/** The fused executor only: throws KerasUnsupported (or the build's error) instead of falling back. `source` and
 * `featureDim` come from the weight cache. */
export function loadFusedLayersExtractor(folder: ModelFolder, info: PartialInfo, source?: WeightSource, featureDim?: number): Extractor {
  const model = buildFusedLayersModel(folder, { source });
  try {
    const executor = { kind: 'fused-layers' as const, retention: model.retention };
    return makeExtractor({ ...info, executor }, [null, ...model.inputShape], (x) => model.predict(x), () => model.dispose(), featureDim);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** tfjs-layers' LayersModel, as a tfjs user would run it. tfjs-layers is loaded on first use: the fused executor
 * does not need it, and initialising it costs every start time. */
export async function loadStockLayersExtractor(folder: ModelFolder, info: PartialInfo): Promise<Extractor> {
  const { loadLayersModel } = await import('@tensorflow/tfjs-layers');
  let model: LayersModel;
  try {
    model = await loadLayersModel(tf.io.fromMemory(toArtifacts(folder)));
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `cannot load layers model from ${info.source}: ${(e as Error).message}`);
  }
  return makeExtractor({ ...info, executor: { kind: 'tfjs-layers' } }, model.inputs[0]?.shape, (x) => model.predict(x) as tf.Tensor, () => model.dispose());
}
