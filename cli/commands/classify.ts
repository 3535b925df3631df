/** `edgehead classify [--head FILE] [--top K] [--json] IMAGE...` */
import * as fs from 'node:fs';
import { DenseHead } from '../../agent/inference/dense-head';
import { type Classification, Classifier } from '../../agent/inference/classifier';
import { describeError, EdgeheadError } from '../../base/errors';
import { defaultConfig } from '../../config/defaults';
import { type Command, help, intArg, parseCommandArgs } from '../args';
import { loadHeadOrDemo, openExtractor, RUNTIME_OPTIONS, RUNTIME_USAGE, runtimeChoice } from '../runtime';

const TOP_DEFAULT = defaultConfig().predictions.topK;
const USAGE = `edgehead classify [--head FILE] [--top K] [--json] ${RUNTIME_USAGE} IMAGE...
  Classifies JPEG/PNG images: one line (or one JSON object with --json) per image, with the top-k labels (default
  ${TOP_DEFAULT}, as predictions.topK) and scores and the milliseconds spent per stage. Without --head, the bundled demo head is used. The extractor
  defaults to the one the head was trained on.`;

export const classifyCommand: Command = {
  name: 'classify',
  summary: 'classify image files with the extractor and a head',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      { ...RUNTIME_OPTIONS, head: { type: 'string' }, top: { type: 'string' }, json: { type: 'boolean' } },
      USAGE,
    );
    if (values.help) return help(USAGE);
    if (positionals.length === 0) throw new EdgeheadError('BAD_ARGS', 'no image given', { hint: `usage: ${USAGE.split('\n')[0]}` });
    const top = intArg(values.top, 'top', 1, TOP_DEFAULT);
    const headFile = loadHeadOrDemo(values.head);
    const choice = runtimeChoice(values, headFile.manifest.extractor.id);
    const { extractor } = await openExtractor(choice);
    const head = DenseHead.fromFile(headFile);
    const classifier = new Classifier(extractor, head, { resize: choice.resize, maxPixels: choice.maxPixels, topK: Math.min(top, head.numClasses) });
    let failed = 0;
    for (const file of positionals) {
      try {
        const result = classifier.classify(readImageFile(file));
        process.stdout.write((values.json ? JSON.stringify(toJson(file, result)) : toLine(file, result)) + '\n');
      } catch (e) {
        failed++;
        if (values.json) process.stdout.write(JSON.stringify({ file, error: describeError(e) }) + '\n');
        process.stderr.write(`edgehead: ${file}: ${describeError(e)}\n`);
      }
    }
    head.dispose();
    extractor.dispose();
    return failed ? 1 : 0;
  },
};

function readImageFile(file: string): Uint8Array {
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    throw new EdgeheadError('IO', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

function toJson(file: string, r: Classification) {
  return {
    file,
    top: r.predictions.map((p) => ({ label: p.label, score: round(p.score, 4) })),
    ms: Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, round(v, 2)])),
  };
}

function toLine(file: string, r: Classification): string {
  const preds = r.predictions.map((p) => `${p.label} ${p.score.toFixed(3)}`).join('  ');
  const t = r.timings;
  return `${file}  ${preds}  (decode ${t.decode.toFixed(1)} ms, resize ${t.resize.toFixed(1)} ms, extract ${t.extract.toFixed(1)} ms, head ${t.head.toFixed(1)} ms)`;
}
