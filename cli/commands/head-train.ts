/** `edgehead head train --data DIR --out FILE ...`: features on the WASM backend, softmax-regression head. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeHeadFile } from '../../protocol/head/format';
import { makeTestVectors } from '../../protocol/head/test-vectors';
import { writeHeadFile } from '../../protocol/head/files';
import { DEFAULT_TRAIN_OPTIONS, formatConfusion, trainSoftmaxHead } from '../../operator/training/train';
import { extractFeatures } from '../../agent/inference/features';
import { scanDataset } from '../../operator/training/dataset';
import { describeError, EdgeheadError } from '../../base/errors';
import { progressBar } from '../../base/progress';
import { type Command, help, intArg, numberArg, parseCommandArgs } from '../args';
import { openExtractor, RUNTIME_OPTIONS, RUNTIME_USAGE, runtimeChoice } from '../runtime';

const D = DEFAULT_TRAIN_OPTIONS;
const USAGE = `edgehead head train --data DIR --out FILE [--extractor ID] [--epochs N] [--val-split F] [--l2 F] [--lr F]
       [--patience N] [--seed N] [--id ID] [--version N] [--test-vectors N] ${RUNTIME_USAGE}
  DIR/<class>/*.{jpg,png}: one sub-folder per class. Computes features with a progress bar, trains a softmax-
  regression head (Adam, L2 ${D.l2}, early stopping on the validation split), prints validation accuracy and a
  confusion matrix, and writes the head file (docs/head-format.md). Defaults: epochs ${D.epochs}, val-split ${D.valSplit},
  lr ${D.learningRate}, patience ${D.patience}, seed ${D.seed}, id = file name, version 1, test-vectors 1.`;

export const headTrainCommand: Command = {
  name: 'train',
  summary: 'train a Dense head on a folder of labelled images',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandArgs(
      argv,
      {
        ...RUNTIME_OPTIONS,
        data: { type: 'string' },
        out: { type: 'string' },
        epochs: { type: 'string' },
        'val-split': { type: 'string' },
        l2: { type: 'string' },
        lr: { type: 'string' },
        patience: { type: 'string' },
        seed: { type: 'string' },
        id: { type: 'string' },
        version: { type: 'string' },
        'test-vectors': { type: 'string' },
        quiet: { type: 'boolean' },
      },
      USAGE,
    );
    if (values.help) return help(USAGE);
    if (!values.data || !values.out) throw new EdgeheadError('BAD_ARGS', 'head train needs --data DIR and --out FILE');
    const opts = {
      ...D,
      epochs: intArg(values.epochs, 'epochs', 1, D.epochs),
      valSplit: numberArg(values['val-split'], 'val-split', 0, 0.9, D.valSplit),
      l2: numberArg(values.l2, 'l2', 0, 10, D.l2),
      learningRate: numberArg(values.lr, 'lr', 1e-6, 10, D.learningRate),
      patience: intArg(values.patience, 'patience', 0, D.patience),
      seed: intArg(values.seed, 'seed', 0, D.seed),
    };
    const id = values.id ?? path.basename(values.out).replace(/\.[^.]*$/, '');
    const version = intArg(values.version, 'version', 1, 1);
    const nTestVectors = intArg(values['test-vectors'], 'test-vectors', 0, 1);
    const dataset = scanDataset(values.data);
    const choice = runtimeChoice(values);
    const { extractor } = await openExtractor(choice);
    const say = (s: string) => values.quiet || process.stderr.write(s + '\n');
    say(`extractor ${extractor.info.id} (${extractor.info.featureDim}-d), ${dataset.images.length} images in ${dataset.classes.length} classes: ${dataset.classes.join(', ')}`);

    const features: Float32Array[] = [];
    const labels: number[] = [];
    const bar = progressBar('features', dataset.images.length, !values.quiet);
    let extractMs = 0;
    dataset.images.forEach((img, i) => {
      try {
        const r = extractFeatures(extractor, new Uint8Array(fs.readFileSync(img.file)), choice);
        features.push(r.features);
        labels.push(img.label);
        extractMs += r.timings.decode + r.timings.resize + r.timings.extract;
      } catch (e) {
        say(`\nskipping ${img.file}: ${describeError(e)}`);
      }
      bar.update(i + 1, `${(extractMs / Math.max(1, features.length)).toFixed(0)} ms/image`);
    });
    bar.stop();
    extractor.dispose();
    if (new Set(labels).size < 2) throw new EdgeheadError('BAD_ARGS', 'fewer than two classes have readable images');

    const result = await trainSoftmaxHead(features, labels, dataset.classes.length, {
      ...opts,
      onEpoch: (e) => {
        if (e.epoch % 10 === 0) say(`epoch ${e.epoch}: loss ${e.loss.toFixed(4)}${e.valLoss !== undefined ? ` val_loss ${e.valLoss.toFixed(4)} val_acc ${e.valAccuracy?.toFixed(3)}` : ''}`);
      },
    });
    const m = result.metrics;
    const testVectors = makeTestVectors(features.slice(0, nTestVectors), result.kernel, result.bias);
    const head = makeHeadFile({
      id,
      version,
      classes: dataset.classes,
      extractor: { id: extractor.info.id, fingerprint: extractor.info.fingerprint },
      kernel: result.kernel,
      bias: result.bias,
      metrics: { ...m, l2: opts.l2, learningRate: opts.learningRate, seed: opts.seed, resize: choice.resize },
      testVectors,
    });
    const bytes = writeHeadFile(values.out, head);
    const acc = m.valAccuracy ?? m.trainAccuracy;
    process.stdout.write(
      [
        `${m.valAccuracy !== null ? 'validation' : 'training'} accuracy: ${acc.toFixed(3)} (${m.valAccuracy !== null ? m.valCount : m.trainCount} images; train ${m.trainCount}, best epoch ${m.bestEpoch}/${m.epochsRun})`,
        formatConfusion(m.confusion, dataset.classes),
        `wrote ${values.out}: head ${id} v${version}, ${dataset.classes.length} classes, ${bytes.byteLength} bytes`,
      ].join('\n') + '\n',
    );
    return 0;
  },
};
