/** Shared CLI setup: backend + extractor + head from options, with the schema's defaults and choices. */
import { defaultConfig } from '../config/defaults';
import { BackendSchema, type Config, PreprocessSchema } from '../config/schema';
import { type BackendInfo, initBackend } from '../agent/backend/wasm';
import type { Extractor } from '../agent/extractors/extractor';
import { loadExtractor } from '../agent/extractors/load';
import { userWeightCacheDir } from '../agent/extractors/weight-cache';
import { DEMO_HEAD_PATH, readHeadFile } from '../protocol/head/files';
import { initImageCodecs } from '../agent/image';
import type { HeadFile } from '../protocol/head/format';
import { progressBar } from '../base/progress';
import { choiceArg, intArg } from './args';
import type { OptionDefs } from './spec';

/** The values backend.name and preprocess.resize accept, read from the schema's unions. */
export const BACKEND_CHOICES = BackendSchema.properties.name.anyOf.map((s) => s.const);
export const RESIZE_CHOICES = PreprocessSchema.properties.resize.anyOf.map((s) => s.const);

export const RUNTIME_OPTIONS = {
  extractor: { type: 'string', arg: 'ID|DIR|URL', description: 'feature extractor: a catalogue id, a TF.js model folder or an http(s) URL (docs/extractors.md)', default: defaultConfig().extractor.ref },
  backend: { type: 'string', arg: BACKEND_CHOICES.join('|'), description: 'TensorFlow.js backend', default: defaultConfig().backend.name },
  threads: { type: 'string', arg: 'auto|N', description: 'WASM threads', default: 'auto' },
  resize: { type: 'string', arg: RESIZE_CHOICES.join('|'), description: 'how frames are fitted to the extractor input', default: defaultConfig().preprocess.resize },
  'max-pixels': { type: 'string', arg: 'N', description: 'refuse images with more pixels than N', default: defaultConfig().preprocess.maxPixels },
} as const satisfies OptionDefs;

type RuntimeValues = { [K in keyof typeof RUNTIME_OPTIONS]?: string };

export interface RuntimeChoice {
  backend: Config['backend']['name'];
  threads: Config['backend']['threads'];
  extractorRef: string;
  resize: Config['preprocess']['resize'];
  maxPixels: number;
}

export function runtimeChoice(values: RuntimeValues, fallbackExtractor?: string): RuntimeChoice {
  const d = defaultConfig();
  return {
    backend: choiceArg(values.backend, 'backend', BACKEND_CHOICES, d.backend.name),
    threads: values.threads === undefined || values.threads === 'auto' ? d.backend.threads : intArg(values.threads, 'threads', 1, 1),
    extractorRef: values.extractor ?? fallbackExtractor ?? d.extractor.ref,
    resize: choiceArg(values.resize, 'resize', RESIZE_CHOICES, d.preprocess.resize),
    maxPixels: intArg(values['max-pixels'], 'max-pixels', 1, d.preprocess.maxPixels),
  };
}

/** The backend and the extractor; a URL model is cached where the agent with default settings caches it. */
export async function openExtractor(choice: RuntimeChoice): Promise<{ backend: BackendInfo; extractor: Extractor }> {
  const backend = await initBackend({ backend: choice.backend, threads: choice.threads });
  initImageCodecs();
  let bar: ReturnType<typeof progressBar> | undefined;
  const extractor = await loadExtractor({
    ref: choice.extractorRef,
    weightCacheDir: userWeightCacheDir(), // per user, not ./state: CLI commands run from any folder
    onProgress: (done, total) => {
      bar ??= progressBar('download', total ?? 0, process.stderr.isTTY === true);
      bar.update(done);
    },
  });
  bar?.stop();
  return { backend, extractor };
}

export function loadHeadOrDemo(file: string | undefined): HeadFile {
  return readHeadFile(file ?? DEMO_HEAD_PATH(), defaultConfig().head.maxBytes);
}
