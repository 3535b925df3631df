/** `edgehead head eval --head FILE --data DIR [--json]`: how a head does on labelled images and/or side-files. */
import * as tf from '@tensorflow/tfjs-core';
import { DenseHead } from '../../agent/inference/dense-head';
import { initBackend } from '../../agent/backend/wasm';
import { initImageCodecs } from '../../agent/image';
import { readHeadFile } from '../../protocol/head/files';
import { scanDataset } from '../../operator/training/dataset';
import { evaluateRows, type EvalRow, formatReport } from '../../operator/training/eval';
import { imageExtractor, loadSamples, needsExtractor } from '../../operator/training/sample-features';
import { formatConfusion } from '../../operator/training/train';
import { defaultConfig } from '../../config/defaults';
import { EdgeheadError } from '../../base/errors';
import { progressBar } from '../../base/progress';
import { type Command, help, parseCommandArgs } from '../args';
import { openExtractor, RUNTIME_OPTIONS, RUNTIME_USAGE, runtimeChoice } from '../runtime';

const USAGE = `edgehead head eval --head FILE --data DIR [--json] [--quiet] ${RUNTIME_USAGE}
  Runs the head like the device does (softmax of features · kernel + bias) on DIR/<class>/ (images and/or feature
  side-files, as for head train; DIR/unlabeled/ is ignored; every folder must be one of the head's classes) and
  prints accuracy, per-class precision/recall/support, the confusion matrix, the expected calibration error (ECE,
  10 equal-width bins of the top-1 score) and the misclassified files with their scores. --json: one object with
  accuracy, perClass, confusion, ece, errors (and count, classes). Images use the head's extractor unless --extractor.`;

export const headEvalCommand: Command = {
  name: 'eval',
  summary: 'evaluate a head on a folder of labelled images and/or feature side-files',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { ...RUNTIME_OPTIONS, head: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' } }, USAGE);
    if (values.help) return help(USAGE);
    if (!values.head || !values.data) throw new EdgeheadError('BAD_ARGS', 'head eval needs --head FILE and --data DIR');
    const file = readHeadFile(values.head, defaultConfig().head.maxBytes);
    const m = file.manifest;
    const dataset = scanDataset(values.data, { classes: m.classes });
    const choice = runtimeChoice(values, m.extractor.id);
    const expected = { id: m.extractor.id, fingerprint: m.extractor.fingerprint, featureDim: m.featureDim };
    let extractor: Awaited<ReturnType<typeof openExtractor>>['extractor'] | undefined;
    if (needsExtractor(dataset.items)) {
      extractor = (await openExtractor(choice)).extractor;
      if (extractor.info.fingerprint !== m.extractor.fingerprint) {
        extractor.dispose();
        throw new EdgeheadError('HEAD_MISMATCH', `extractor ${extractor.info.id} is not the one head ${m.id} was trained on (${m.extractor.id}, fingerprint ${m.extractor.fingerprint.slice(0, 12)}…)`, {
          hint: 'give --extractor with the head\'s extractor',
        });
      }
    } else {
      await initBackend({ backend: choice.backend, threads: choice.threads });
      initImageCodecs();
    }
    const bar = progressBar('features', dataset.items.length, !values.quiet && extractor !== undefined);
    let loaded;
    try {
      loaded = loadSamples(dataset.items, {
        expected,
        ...(extractor ? { extractImage: imageExtractor(extractor, { ...choice, ...(m.region ? { region: m.region } : {}) }, false) } : {}), // crops like a device running this head
        onProgress: (done) => bar.update(done),
        onSkip: (f, reason) => values.quiet || process.stderr.write(`\nskipping ${f}: ${reason}\n`),
      });
    } finally {
      bar.stop();
      extractor?.dispose();
    }
    const head = DenseHead.fromFile(file);
    const rows: EvalRow[] = [];
    try {
      const c = head.numClasses;
      loaded.forEach((s) => {
        // The device's arithmetic: DenseHead on the active backend, all classes' scores.
        const x = tf.tensor2d(s.features, [1, head.featureDim]);
        const preds = head.predict(x, c)[0]!;
        x.dispose();
        const probs = new Float64Array(c);
        for (const p of preds) probs[head.classes.indexOf(p.label)] = p.score;
        rows.push({ file: s.item.image ?? s.file, label: s.item.label, probs });
      });
    } finally {
      head.dispose();
    }
    if (rows.length === 0) throw new EdgeheadError('BAD_ARGS', `--data ${values.data}: no readable samples`);
    const report = evaluateRows(m.classes, rows);
    if (values.json) process.stdout.write(JSON.stringify({ head: { id: m.id, version: m.version }, classes: m.classes, ...report }) + '\n');
    else process.stdout.write(`head ${m.id} v${m.version} on ${values.data}\n` + formatReport(report, formatConfusion(report.confusion, m.classes)) + '\n');
    return 0;
  },
};
