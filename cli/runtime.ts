/** Shared CLI setup: backend + extractor + head from options, with the schema's defaults. */
import * as path from 'node:path';
import { defaultConfig } from '../config/defaults';
import { type BackendInfo, initBackend } from '../agent/backend/wasm';
import type { Extractor } from '../agent/extractors/extractor';
import { loadExtractor } from '../agent/extractors/load';
import { DEMO_HEAD_PATH, readHeadFile } from '../protocol/head/files';
import { initImageCodecs } from '../agent/image';
import type { HeadFile } from '../protocol/head/format';
import { progressBar } from '../base/progress';
import { choiceArg, intArg, type OptionSpec } from './args';

export const RUNTIME_OPTIONS = {
  extractor: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  resize: { type: 'string' },
  'max-pixels': { type: 'string' },
} satisfies OptionSpec;

export const RUNTIME_USAGE =
  '[--extractor ID|DIR|URL] [--backend wasm|cpu] [--threads auto|N] [--resize squash|crop] [--max-pixels N]';

type RuntimeValues = { [K in keyof typeof RUNTIME_OPTIONS]?: string };

export interface RuntimeChoice {
  backend: 'wasm' | 'cpu';
  threads: 'auto' | number;
  extractorRef: string;
  resize: 'squash' | 'crop';
  maxPixels: number;
}

export function runtimeChoice(values: RuntimeValues, fallbackExtractor?: string): RuntimeChoice {
  const d = defaultConfig();
  return {
    backend: choiceArg(values.backend, 'backend', ['wasm', 'cpu'] as const, d.backend.name),
    threads: values.threads === undefined || values.threads === 'auto' ? d.backend.threads : intArg(values.threads, 'threads', 1, 1),
    extractorRef: values.extractor ?? fallbackExtractor ?? d.extractor.ref,
    resize: choiceArg(values.resize, 'resize', ['squash', 'crop'] as const, d.preprocess.resize),
    maxPixels: intArg(values['max-pixels'], 'max-pixels', 1, d.preprocess.maxPixels),
  };
}

export async function openExtractor(choice: RuntimeChoice): Promise<{ backend: BackendInfo; extractor: Extractor }> {
  const backend = await initBackend({ backend: choice.backend, threads: choice.threads });
  initImageCodecs();
  let bar: ReturnType<typeof progressBar> | undefined;
  const extractor = await loadExtractor({
    ref: choice.extractorRef,
    cacheDir: path.join(process.cwd(), '.cache'),
    timeoutMs: defaultConfig().extractor.downloadTimeoutMs,
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
