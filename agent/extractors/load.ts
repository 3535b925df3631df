/**
 * loadExtractor(): one entry point for the catalogue ids, local model folders and http(s) URLs.
 * The model is warmed up (one zero batch) before it is returned, unless the weight cache (weight-cache.ts) knows its
 * feature dimension: then the first real frame is the warm-up.
 * At debug level it logs how long each part of the load took (docs/BENCHMARKS.md, "Cold start").
 */
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { resourcePath } from '../../base/paths';
import { defaultConfig } from '../../config/defaults';
import { DEFAULT_VALUE_RANGE, EXTRACTOR_REF_RULE, extractorRefKind } from '../../config/extractor-ref';
import { CATALOGUE, catalogueEntry } from './catalogue';
import { type Extractor, type ExtractorInfo, fingerprintOf, paramCountOf } from './extractor';
import { loadGraphExtractor } from './graph-extractor';
import { loadLayersExtractor } from './layers-extractor';
import { type ModelFolder, readModelFolder } from './model-files';
import { type DownloadOptions, fetchModel } from './remote';
import { openExecutorCache } from './weight-cache';

const log = createLogger('extractor');

export interface ExtractorSpec {
  /** A catalogue id, a model folder path, or an http(s) URL of a TF.js model (config/extractor-ref.ts). */
  ref: string;
  /** Graph models: the node whose output is the feature vector (default: the model's output). */
  outputNode?: string;
  /** Overrides for models that do not declare them (catalogue models declare their own). */
  valueRange?: [number, number];
  inputSize?: [number, number];
  /** Run edgehead's executors (layers: BatchNorm folded, activations fused; graph: the converter's fused ops from a
   * plan made at load); false = tfjs-layers / tfjs-converter as shipped ("stock"). */
  fused?: boolean;
  /** Where URL models are cached (in <cacheDir>/models); default: the default stateDir. Also the default of
   * weightCacheDir (<cacheDir>/weights) when given. */
  cacheDir?: string;
  /** Where the fused executors' prepared weights are cached (weight-cache.ts); false = not cached. Default:
   * <cacheDir>/weights when cacheDir is given, else no cache. */
  weightCacheDir?: string | false;
  /** Timeout of each download request; default: extractor.downloadTimeoutMs's default. */
  timeoutMs?: number;
  onProgress?: DownloadOptions['onProgress'];
}

export async function loadExtractor(spec: ExtractorSpec): Promise<Extractor> {
  const started = performance.now();
  const kind = extractorRefKind(spec.ref);
  if (kind === 'catalogue') {
    const entry = catalogueEntry(spec.ref);
    if (!entry) {
      const ids = CATALOGUE.map((e) => e.id).join(', ');
      throw new EdgeheadError('MODEL_NOT_FOUND', `unknown extractor "${spec.ref}" (catalogue: ${ids})`, {
        hint: `give ${EXTRACTOR_REF_RULE}; a folder in the current directory is written ./${spec.ref}`,
      });
    }
    const dir = resourcePath('models', entry.id);
    let folder: ModelFolder;
    try {
      folder = readModelFolder(dir);
    } catch (e) {
      throw new EdgeheadError('MODEL_NOT_FOUND', `extractor ${entry.id} is not installed (${(e as Error).message})`, {
        hint: 'run `npm run models` (or npm ci) to convert the bundled weights',
      });
    }
    const extractor = await build(
      folder,
      { id: entry.id, source: 'catalogue', format: entry.format, valueRange: entry.valueRange, inputSize: entry.inputSize },
      spec,
      started,
    );
    if (extractor.info.featureDim !== entry.featureDim) {
      extractor.dispose();
      throw new EdgeheadError('BAD_MODEL', `${entry.id} gives ${extractor.info.featureDim}-d features, expected ${entry.featureDim}`);
    }
    return extractor;
  }
  let dir: string;
  if (kind === 'url') {
    const defaults = defaultConfig();
    dir = await fetchModel(spec.ref, {
      cacheDir: spec.cacheDir ?? path.resolve(defaults.stateDir),
      timeoutMs: spec.timeoutMs ?? defaults.extractor.downloadTimeoutMs,
      onProgress: spec.onProgress,
    });
  } else {
    dir = path.resolve(spec.ref);
  }
  const folder = readModelFolder(dir);
  const format = folder.json.format === 'graph-model' ? 'graph' : 'layers';
  return build(
    folder,
    { id: path.basename(dir), source: spec.ref, format, valueRange: spec.valueRange ?? [...DEFAULT_VALUE_RANGE], inputSize: spec.inputSize, outputNode: spec.outputNode },
    spec,
    started,
  );
}

async function build(
  folder: ModelFolder,
  base: Pick<ExtractorInfo, 'id' | 'source' | 'format' | 'valueRange'> & { inputSize?: [number, number]; outputNode?: string },
  spec: ExtractorSpec,
  started: number,
): Promise<Extractor> {
  const fused = spec.fused ?? true;
  const read = performance.now();
  const cacheDir = spec.weightCacheDir ?? (spec.cacheDir === undefined ? false : path.join(spec.cacheDir, 'weights'));
  const executor = base.format === 'graph' ? 'fused-graph' : 'fused-layers';
  const cache = fused && cacheDir ? openExecutorCache(cacheDir, base.id, folder, executor, { outputNode: base.outputNode ?? null, inputSize: base.inputSize ?? null }) : undefined;
  const hit = cache?.hit?.info;
  const cached = performance.now();
  const info = {
    ...base,
    fingerprint: hit?.fingerprint ?? fingerprintOf(folder, base.outputNode),
    paramCount: hit?.paramCount ?? paramCountOf(folder),
  };
  const fingerprinted = performance.now();
  const extractor = await (base.format === 'graph' ? loadGraphExtractor(folder, info, { fused, cache }) : loadLayersExtractor(folder, info, { fused, cache }));
  const done = performance.now();
  const ms = (a: number, b: number) => Math.round((b - a) * 10) / 10;
  log.debug('extractor loaded', {
    id: base.id,
    executor: extractor.info.executor?.kind,
    weightCache: cache ? (hit ? 'hit' : 'miss') : 'off',
    ms: { read: ms(started, read), cacheRead: ms(read, cached), fingerprint: ms(cached, fingerprinted), buildAndWarmup: ms(fingerprinted, done) },
  });
  return extractor;
}
