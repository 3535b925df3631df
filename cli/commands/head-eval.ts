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
import { type Command, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { openExtractor, RUNTIME_OPTIONS, runtimeChoice } from '../runtime';

export const HEAD_EVAL_SPEC = {
  path: 'head eval',
  purpose: 'evaluate a head on a folder of labelled images and/or feature side-files',
  options: {
    head: { type: 'string', arg: 'FILE', required: true, description: 'the head file' },
    data: { type: 'string', arg: 'DIR', required: true, description: 'the test data: DIR/<class>/ (images and/or side-files, as for head train)' },
    quiet: { type: 'boolean', description: 'no progress on stderr' },
    json: { type: 'boolean', description: 'one object on stdout: accuracy, perClass, confusion, ece, errors, count, classes' },
    ...RUNTIME_OPTIONS,
    extractor: { ...RUNTIME_OPTIONS.extractor, default: "the head's extractor" },
  },
  details: `Runs the head like the device does (softmax of features · kernel + bias) on DIR/<class>/ (DIR/unlabeled/ is
ignored; every folder must be one of the head's classes) and prints accuracy, per-class precision/recall/support,
the confusion matrix, the expected calibration error (ECE, 10 equal-width bins of the top-1 score) and the
misclassified files with their scores.`,
  examples: ['edgehead head eval --head my.head --data testphotos/', 'edgehead head eval --json --head my.head --data testphotos/'],
} as const satisfies CommandSpec;

export const headEvalCommand: Command = defineCommand(HEAD_EVAL_SPEC, async ({ values }) => {
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
});
