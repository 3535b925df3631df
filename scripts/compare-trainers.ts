/**
 * The old trainer (Adam + early stopping on a 20% validation split, operator/training/adam-baseline.ts) against the
 * new one (operator/training/train.ts: L-BFGS, CV-chosen L2, flips, balanced weights, temperature) on the SAME
 * stratified folds of a labelled folder (default ../shared/data/photos), with the default extractor. Features (and
 * the mirrored images' features) are extracted once and kept in memory. Prints accuracy and ECE per fold and the
 * mean; the figures are in docs/training.md.
 *
 *   npx tsx scripts/compare-trainers.ts [DIR] [--folds N]
 */
import * as path from 'node:path';
import { openExtractor, runtimeChoice } from '../cli/runtime';
import { scanDataset } from '../operator/training/dataset';
import { imageExtractor, loadSamples } from '../operator/training/sample-features';
import { assignFolds } from '../operator/training/cv';
import { evaluateRows, softmaxRows } from '../operator/training/eval';
import { logitsOf } from '../operator/training/fit';
import { DEFAULT_TRAIN_OPTIONS, trainHead, type TrainSample } from '../operator/training/train';
import { ADAM_BASELINE_OPTIONS, trainAdamBaseline } from '../operator/training/adam-baseline';
import { progressBar } from '../base/progress';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const foldsAt = args.indexOf('--folds');
  const k = foldsAt >= 0 ? Number(args[foldsAt + 1]) : 5;
  const dir = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--folds') ?? path.resolve(__dirname, '..', '..', 'shared', 'data', 'photos');
  const dataset = scanDataset(dir);
  const choice = runtimeChoice({});
  const { extractor } = await openExtractor(choice);
  const info = extractor.info;
  const bar = progressBar('features', dataset.items.length);
  const loaded = loadSamples(dataset.items, {
    expected: { id: info.id, fingerprint: info.fingerprint, featureDim: info.featureDim },
    extractImage: imageExtractor(extractor, choice, true),
    onProgress: (d) => bar.update(d),
  });
  bar.stop();
  const c = dataset.classes.length;
  const labels = loaded.map((s) => s.item.label);
  const folds = assignFolds(loaded.map((s) => s.item.key), labels, k, DEFAULT_TRAIN_OPTIONS.seed);
  process.stdout.write(`${dir}: ${loaded.length} samples, ${c} classes, extractor ${info.id}, ${k} folds (seed ${DEFAULT_TRAIN_OPTIONS.seed})\n`);

  type Method = { name: string; fit: (train: number[]) => Promise<{ kernel: Float32Array; bias: Float32Array }> };
  const samplesOf = (train: number[], flip: boolean): TrainSample[] =>
    train.flatMap((i) => {
      const s = loaded[i]!;
      const out: TrainSample[] = [{ features: s.features, label: s.item.label, group: s.item.key }];
      if (flip && s.mirror) out.push({ features: s.mirror, label: s.item.label, group: s.item.key, augmented: true });
      return out;
    });
  const methods: Method[] = [
    { name: 'old: Adam, early stopping', fit: async (train) => trainAdamBaseline(train.map((i) => loaded[i]!.features), train.map((i) => labels[i]!), c, ADAM_BASELINE_OPTIONS) },
    { name: 'new: L-BFGS, CV l2, flip, T', fit: async (train) => trainHead(samplesOf(train, true), c, DEFAULT_TRAIN_OPTIONS) },
    { name: 'new without flip', fit: async (train) => trainHead(samplesOf(train, false), c, DEFAULT_TRAIN_OPTIONS) },
    { name: 'new without temperature', fit: async (train) => trainHead(samplesOf(train, true), c, { ...DEFAULT_TRAIN_OPTIONS, calibrate: false }) },
  ];
  const results = methods.map(() => [] as { acc: number; ece: number }[]);
  for (let f = 0; f < k; f++) {
    const train = loaded.map((_, i) => i).filter((i) => folds[i] !== f);
    const test = loaded.map((_, i) => i).filter((i) => folds[i] === f);
    for (const [mi, method] of methods.entries()) {
      const t0 = performance.now();
      const { kernel, bias } = await method.fit(train);
      const ms = performance.now() - t0;
      const params = new Float64Array(kernel.length + bias.length);
      params.set(kernel);
      params.set(bias, kernel.length);
      const x = new Float32Array(test.length * info.featureDim);
      test.forEach((i, r) => x.set(loaded[i]!.features, r * info.featureDim));
      const probs = softmaxRows(logitsOf(params, x, test.length, info.featureDim, c), c);
      const report = evaluateRows(dataset.classes, test.map((i, r) => ({ file: loaded[i]!.file, label: labels[i]!, probs: probs.subarray(r * c, (r + 1) * c) })));
      results[mi]!.push({ acc: report.accuracy, ece: report.ece });
      process.stdout.write(`fold ${f + 1} (${test.length} test): ${method.name.padEnd(28)} accuracy ${report.accuracy.toFixed(3)}  ECE ${report.ece.toFixed(3)}  (${(ms / 1000).toFixed(1)} s)\n`);
    }
  }
  extractor.dispose();
  process.stdout.write('\nmethod                        | ' + results[0]!.map((_, f) => `fold ${f + 1}`).join(' | ') + ' | mean accuracy | mean ECE\n');
  methods.forEach((m, mi) => {
    const r = results[mi]!;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    process.stdout.write(`${m.name.padEnd(29)} | ${r.map((x) => `${x.acc.toFixed(3)}/${x.ece.toFixed(3)}`).join(' | ')} | ${mean(r.map((x) => x.acc)).toFixed(3)} | ${mean(r.map((x) => x.ece)).toFixed(3)}\n`);
  });
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
