/** `edgehead classify [--head FILE] [--top K] [--json] IMAGE|DIR...` */
import * as fs from 'node:fs';
import type { BackendInfo } from '../../agent/backend/wasm';
import { DenseHead } from '../../agent/inference/dense-head';
import { type Classification, Classifier } from '../../agent/inference/classifier';
import { describeError, EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { defaultConfig } from '../../config/defaults';
import { type Command, defineCommand, intArg, usageError } from '../args';
import type { CommandSpec } from '../spec';
import { imageFiles } from '../image-files';
import { loadHeadOrDemo, openExtractor, RUNTIME_OPTIONS, runtimeChoice } from '../runtime';

const TOP_DEFAULT = defaultConfig().predictions.topK;

export const CLASSIFY_SPEC = {
  path: 'classify',
  purpose: 'classify image files with the extractor and a head',
  positionals: [{ name: 'IMAGE|DIR', variadic: true, description: 'JPEG/PNG files; a folder is walked recursively for *.jpg, *.jpeg, *.png (sorted)' }],
  options: {
    head: { type: 'string', arg: 'FILE', description: 'the head file', default: 'the bundled demo head' },
    top: { type: 'string', arg: 'K', description: 'labels per image (as predictions.topK)', default: TOP_DEFAULT },
    json: { type: 'boolean', description: 'one JSON object per image on stdout ({file, top, ms, backend: {name, threads}}; {file, error} for a failed one)' },
    ...RUNTIME_OPTIONS,
    extractor: { ...RUNTIME_OPTIONS.extractor, default: "the head's extractor" },
  },
  details: `Prints one line (or one JSON object with --json) per image: the top-k labels and scores and the milliseconds
spent per stage. An image that cannot be read or decoded is reported on stderr and the others continue (exit 1).`,
  examples: [
    'edgehead classify assets/samples/fish/fish1.jpg',
    'edgehead classify --json --top 2 assets/samples/   # every image under the folder',
    'edgehead classify --head my.head photo.jpg',
  ],
} as const satisfies CommandSpec;

export const classifyCommand: Command = defineCommand(CLASSIFY_SPEC, async ({ values, positionals }) => {
  if (positionals.length === 0) throw usageError(CLASSIFY_SPEC, 'no image given');
  const started = performance.now(); // ms since the process started: node's own start-up and loading the bundle
  const top = intArg(values.top, 'top', 1, TOP_DEFAULT);
  const headFile = loadHeadOrDemo(values.head);
  const choice = runtimeChoice(values, headFile.manifest.extractor.id);
  const { backend, extractor } = await openExtractor(choice);
  const opened = performance.now();
  const head = DenseHead.fromFile(headFile);
  const classifier = new Classifier(extractor, head, { resize: choice.resize, maxPixels: choice.maxPixels, topK: Math.min(top, head.numClasses) });
  let failed = 0;
  let first = true;
  const fail = (file: string, e: unknown) => {
    failed++;
    if (values.json) process.stdout.write(JSON.stringify({ file, error: describeError(e) }) + '\n');
    process.stderr.write(`edgehead: ${file}: ${describeError(e)}\n`);
  };
  for (const file of imageFiles(positionals, fail)) {
    try {
      const result = classifier.classify(readImageFile(file));
      if (first) first = coldStart(started, opened, result);
      process.stdout.write((values.json ? JSON.stringify(toJson(file, result, backend)) : toLine(file, result)) + '\n');
    } catch (e) {
      fail(file, e);
    }
  }
  head.dispose();
  extractor.dispose();
  return failed ? 1 : 0;
});

function readImageFile(file: string): Uint8Array {
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    throw new EdgeheadError('IO', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const log = createLogger('classify');

/** Debug log of the time to the first classified frame, by phase (docs/BENCHMARKS.md, "Cold start"); returns false. */
function coldStart(started: number, opened: number, r: Classification): false {
  const ms = (x: number) => round(x, 1);
  const now = performance.now();
  log.debug('cold start', {
    codeCache: (globalThis as { __edgeheadCodeCache?: string }).__edgeheadCodeCache ?? 'none (not the bundle)', // cli/loader.cjs
    ms: {
      nodeStart: ms(performance.nodeTiming.bootstrapComplete),
      bundleLoad: ms(started - performance.nodeTiming.bootstrapComplete),
      backendAndExtractor: ms(opened - started), // with the head file read before it
      ...Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [`firstFrame.${k}`, ms(v)])),
      headLoadAndRest: ms(now - opened - Object.values(r.timings).reduce((a, b) => a + b, 0)),
      total: ms(now),
    },
  });
  return false;
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** `backend` is what ran, not what was asked: the ms depend on it, and a threaded start can fall back to 1 thread. */
function toJson(file: string, r: Classification, backend: BackendInfo) {
  return {
    file,
    top: r.predictions.map((p) => ({ label: p.label, score: round(p.score, 4) })),
    ms: Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, round(v, 2)])),
    backend: { name: backend.backend, threads: backend.threads },
  };
}

function toLine(file: string, r: Classification): string {
  const preds = r.predictions.map((p) => `${p.label} ${p.score.toFixed(3)}`).join('  ');
  const t = r.timings;
  return `${file}  ${preds}  (decode ${t.decode.toFixed(1)} ms, resize ${t.resize.toFixed(1)} ms, extract ${t.extract.toFixed(1)} ms, head ${t.head.toFixed(1)} ms)`;
}
