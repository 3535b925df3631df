/** `edgehead head train --data DIR --out FILE ...`: features from side-files or images, then the convex trainer. */
import * as path from 'node:path';
import type { Region } from '../../protocol/dataset';
import { makeHeadFile } from '../../protocol/head/format';
import { regionOutside } from '../../protocol/head/manifest';
import { makeTestVectors } from '../../protocol/head/test-vectors';
import { writeHeadFile } from '../../protocol/head/files';
import { DEFAULT_TRAIN_OPTIONS, formatConfusion, L2_GRID, trainHead, type TrainSample } from '../../operator/training/train';
import { scanDataset } from '../../operator/training/dataset';
import { commonRegion, imageExtractor, loadSamples } from '../../operator/training/sample-features';
import { EdgeheadError } from '../../base/errors';
import { progressBar } from '../../base/progress';
import { type Command, defineCommand, intArg, numberArg } from '../args';
import { openExtractor, RUNTIME_OPTIONS, runtimeChoice } from '../runtime';
import type { CommandSpec } from '../spec';

const D = DEFAULT_TRAIN_OPTIONS;
const HIDDEN = { type: 'string', hidden: true, description: 'the Adam trainer\'s option: accepted so old scripts keep running, ignored with a note' } as const;

export const HEAD_TRAIN_SPEC = {
  path: 'head train',
  purpose: 'train a Dense head on a folder of labelled images and/or feature side-files',
  options: {
    data: { type: 'string', arg: 'DIR', required: true, description: 'the data: DIR/<class>/ with images (*.jpg, *.jpeg, *.png) and/or feature side-files (<name>.json)' },
    out: { type: 'string', arg: 'FILE', required: true, description: 'the head file to write' },
    'no-flip': { type: 'boolean', description: 'do not also train on mirrored images' },
    'no-balance': { type: 'boolean', description: 'do not weight the classes equally' },
    'no-calibrate': { type: 'boolean', description: 'do not fit a temperature on the out-of-fold predictions' },
    l2: { type: 'string', arg: 'F', description: 'fix the L2 strength', default: `chosen by cross-validation over ${L2_GRID[0]}..${L2_GRID[L2_GRID.length - 1]}` },
    folds: { type: 'string', arg: 'N', description: 'cross-validation folds (at most)', default: D.maxFolds },
    seed: { type: 'string', arg: 'N', description: 'random seed (folds, initialisation)', default: D.seed },
    id: { type: 'string', arg: 'ID', description: 'the head id', default: 'the --out file name without extension' },
    version: { type: 'string', arg: 'N', description: 'the head version', default: 1 },
    'test-vectors': { type: 'string', arg: 'N', description: 'test vectors stored in the head (devices check them)', default: 1 },
    'created-at': { type: 'string', arg: 'ISO', description: 'the manifest\'s creation time', default: 'now' },
    region: { type: 'string', arg: 'X,Y,W,H', description: 'crop the images (fractions of the frame) before extraction; written into the head' },
    quiet: { type: 'boolean', description: 'no progress on stderr' },
    json: { type: 'boolean', description: 'the result as one JSON object on stdout (errors too: {"error": {...}})' },
    ...RUNTIME_OPTIONS,
    epochs: HIDDEN,
    'val-split': HIDDEN,
    lr: HIDDEN,
    patience: HIDDEN,
  },
  details: `DIR/<class>/: one sub-folder per class with images and/or feature side-files (<name>.json, as
\`edgehead dataset pull\` writes them; a side-file is used instead of its image; DIR/unlabeled/ is ignored).
Fits class-balanced multinomial logistic regression (L-BFGS), the L2 strength chosen by stratified ${D.maxFolds}-fold
cross-validation (--l2 fixes it), refits on all samples, scales the scores with a temperature fitted on the
out-of-fold predictions and writes the head file. --region crops the images before extraction and is written into
the head, so devices crop their frames the same way; side-files carry the region they were collected with, and
every sample must share one. Prints the cross-validated accuracy and confusion matrix. Same data and options give
the same weights, bit for bit. See docs/training.md.`,
  examples: [
    'edgehead head train --data photos/ --out shop.head',
    'edgehead head train --data photos/ --out shop.head --id shop --version 3 --region 0.25,0,0.5,1',
    'edgehead head train --json --quiet --data photos/ --out shop.head > result.json',
  ],
  jsonErrors: true,
} as const satisfies CommandSpec;

export const headTrainCommand: Command = defineCommand(HEAD_TRAIN_SPEC, async ({ values }) => {
  if (!values.data || !values.out) throw new EdgeheadError('BAD_ARGS', 'head train needs --data DIR and --out FILE');
  const obsolete = (['epochs', 'val-split', 'lr', 'patience'] as const).filter((k) => values[k] !== undefined);
  if (obsolete.length > 0) process.stderr.write(`note: ${obsolete.map((k) => `--${k}`).join(', ')} ignored: the trainer is a convex fit with cross-validation now (docs/training.md)\n`);
  const flip = !values['no-flip'];
  const opts = {
    ...D,
    balanced: !values['no-balance'],
    calibrate: !values['no-calibrate'],
    l2: values.l2 === undefined ? undefined : numberArg(values.l2, 'l2', 0, 1e3, 0),
    maxFolds: intArg(values.folds, 'folds', 2, D.maxFolds),
    seed: intArg(values.seed, 'seed', 0, D.seed),
  };
  let createdAt: Date | undefined;
  if (values['created-at'] !== undefined) {
    createdAt = new Date(values['created-at']);
    if (Number.isNaN(createdAt.getTime())) throw new EdgeheadError('BAD_ARGS', `--created-at must be an ISO 8601 time (got "${values['created-at']}")`);
  }
  const id = values.id ?? path.basename(values.out).replace(/\.[^.]*$/, '');
  const version = intArg(values.version, 'version', 1, HEAD_TRAIN_SPEC.options.version.default);
  const nTestVectors = intArg(values['test-vectors'], 'test-vectors', 0, HEAD_TRAIN_SPEC.options['test-vectors'].default);
  const dataset = scanDataset(values.data);
  const choice = runtimeChoice(values);
  const imageRegion = values.region === undefined ? null : regionArg(values.region);
  const say = (s: string) => values.quiet || process.stderr.write(s + '\n');
  // The extractor is opened even for side-files only: its fingerprint is what the head (and the samples) are bound to.
  const { extractor } = await openExtractor(choice);
  const info = extractor.info;
  const images = dataset.items.filter((i) => !i.sideFile).length;
  say(
    `extractor ${info.id} (${info.featureDim}-d), ${dataset.items.length} samples (${dataset.items.length - images} side-files, ${images} images${flip && images ? ', + mirrored' : ''}) in ${dataset.classes.length} classes: ${dataset.classes.join(', ')}`,
  );
  const bar = progressBar('features', dataset.items.length, !values.quiet && images > 0);
  let loaded;
  try {
    loaded = loadSamples(dataset.items, {
      expected: { id: info.id, fingerprint: info.fingerprint, featureDim: info.featureDim },
      extractImage: imageExtractor(extractor, { ...choice, ...(imageRegion ? { region: imageRegion } : {}) }, flip),
      imageRegion,
      onProgress: (done) => bar.update(done),
      onSkip: (file, reason) => say(`\nskipping ${file}: ${reason}`),
    });
  } finally {
    bar.stop();
    extractor.dispose();
  }
  const region = commonRegion(loaded);
  const samples: TrainSample[] = [];
  for (const s of loaded) {
    samples.push({ features: s.features, label: s.item.label, group: s.item.key });
    if (s.mirror) samples.push({ features: s.mirror, label: s.item.label, group: s.item.key, augmented: true });
  }
  const present = new Set(samples.map((s) => s.label));
  const missing = dataset.classes.filter((_, j) => !present.has(j));
  if (missing.length > 0) throw new EdgeheadError('BAD_ARGS', `no readable samples for class(es) ${missing.join(', ')}`);

  let fitBar: ReturnType<typeof progressBar> | undefined; // created at the first step, when the count is known
  const result = trainHead(samples, dataset.classes.length, {
    ...opts,
    onStep: (done, total, what) => {
      fitBar ??= progressBar('fit', total, !values.quiet);
      fitBar.update(done, what);
    },
  });
  fitBar?.stop();
  const m = result.metrics;
  const testVectors = makeTestVectors(loaded.slice(0, nTestVectors).map((s) => s.features), result.kernel, result.bias);
  const head = makeHeadFile({
    id,
    version,
    classes: dataset.classes,
    extractor: { id: info.id, fingerprint: info.fingerprint },
    kernel: result.kernel,
    bias: result.bias,
    ...(createdAt ? { createdAt } : {}),
    metrics: { trainer: 'lbfgs-logistic-v1', ...m, balanced: opts.balanced, flip, seed: opts.seed, resize: choice.resize },
    testVectors,
    ...(region ? { region } : {}),
  });
  const bytes = writeHeadFile(values.out, head);
  const summary =
    m.cvAccuracy !== null
      ? `cross-validated accuracy: ${m.cvAccuracy.toFixed(3)} (${m.sampleCount} samples, ${m.folds} folds; l2 ${m.l2}, temperature ${m.temperature.toFixed(3)}, ECE ${m.cvEce!.toFixed(3)})`
      : `training accuracy: ${m.trainAccuracy.toFixed(3)} (${m.sampleCount} samples; too few per class to cross-validate: l2 ${m.l2}, no temperature)`;
  if (values.json) {
    const result = {
      file: values.out,
      head: { id, version, classes: dataset.classes, region: region ?? null, bytes: bytes.byteLength },
      extractor: { id: info.id, featureDim: info.featureDim },
      samples: { total: dataset.items.length, sideFiles: dataset.items.length - images, images, mirrored: flip && images > 0 },
      metrics: m,
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(
    [
      summary,
      formatConfusion(m.confusion, dataset.classes),
      `wrote ${values.out}: head ${id} v${version}, ${dataset.classes.length} classes${region ? `, region [${region.join(', ')}]` : ''}, ${bytes.byteLength} bytes`,
    ].join('\n') + '\n',
  );
  return 0;
});

/** --region X,Y,W,H: four fractions of the frame, inside it (x + w <= 1, y + h <= 1). */
export function regionArg(value: string): Region {
  const parts = value.split(',').map((v) => Number(v.trim()));
  const bad = parts.length !== 4 || parts.some((v) => !Number.isFinite(v)) || parts[0]! < 0 || parts[1]! < 0 || !(parts[2]! > 0) || !(parts[3]! > 0);
  const outside = bad ? undefined : regionOutside(parts);
  if (bad || outside) {
    throw new EdgeheadError('BAD_ARGS', `--region must be X,Y,W,H: fractions of the frame with w, h > 0${outside ? `; it ${outside}` : ''} (got "${value}")`);
  }
  return parts as Region;
}
