/**
 * Extractor over a TF.js graph model (tfjs-converter), e.g. TF-Hub feature-vector models. By default the model runs
 * on the fused graph executor (fused-graph.ts); graphs it does not cover, and `fused: false`, run on tfjs-converter's
 * GraphModel ("stock"). Both give the same features; the fingerprint is that of the model files either way.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type Extractor, fusedOrStock, makeExtractor, type PartialInfo, withWeightCache } from './extractor';
import { buildFusedGraphModel, GraphUnsupported } from './fused-graph';
import { type ModelFolder, toArtifacts } from './model-files';
import type { ExecutorCache, WeightSource } from './weight-cache';

const log = createLogger('extractor:graph');

export interface GraphExtractorOptions {
  /** Run on the fused graph executor when the graph allows it (default true); false = tfjs-converter. */
  fused?: boolean;
  /** The fused executor's weight cache for this model (weight-cache.ts), if any. */
  cache?: ExecutorCache;
}

export async function loadGraphExtractor(folder: ModelFolder, info: PartialInfo, opts: GraphExtractorOptions = {}): Promise<Extractor> {
  return fusedOrStock(
    { fused: opts.fused, source: info.source, log, executor: 'fused graph executor', library: 'tfjs-converter', unsupported: GraphUnsupported },
    () => withWeightCache(opts.cache, log, false, (source, featureDim) => loadFusedGraphExtractor(folder, info, source, featureDim)),
    () => loadStockGraphExtractor(folder, info),
  );
}

/** The fused graph executor only: throws GraphUnsupported (or the build's error) instead of falling back. `source`
 * and `featureDim` come from the weight cache. */
export function loadFusedGraphExtractor(folder: ModelFolder, info: PartialInfo, source?: WeightSource, featureDim?: number): Extractor {
  const model = buildFusedGraphModel(folder, { outputNode: info.outputNode, source });
  try {
    const placeholder = (folder.json.modelTopology as { node: { name: string; attr?: { shape?: { shape?: { dim?: { size?: string }[] } } } }[] }).node.find(
      (n) => n.name === model.input,
    );
    const dims = placeholder?.attr?.shape?.shape?.dim?.map((d) => Number(d.size ?? -1));
    const executor = { kind: 'fused-graph' as const, retention: model.retention };
    return makeExtractor({ ...info, executor }, dims, (x) => model.predict(x), () => model.dispose(), featureDim);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** tfjs-converter's GraphModel, as a tfjs user would run it. tfjs-converter is loaded on first use: the fused
 * executor does not need it, and initialising it costs every start time. */
export async function loadStockGraphExtractor(folder: ModelFolder, info: PartialInfo): Promise<Extractor> {
  const { loadGraphModel } = await import('@tensorflow/tfjs-converter');
  let model: GraphModel;
  try {
    model = await loadGraphModel(tf.io.fromMemory(toArtifacts(folder)));
  } catch (e) {
    throw new EdgeheadError('BAD_MODEL', `cannot load graph model from ${info.source}: ${(e as Error).message}`);
  }
  const { outputNode } = info;
  const forward = (x: tf.Tensor4D) => (outputNode ? model.execute(x, outputNode) : model.execute(x)) as tf.Tensor;
  return makeExtractor({ ...info, executor: { kind: 'tfjs-converter' } }, model.inputs[0]?.shape, forward, () => model.dispose());
}
