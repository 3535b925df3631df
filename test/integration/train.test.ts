/**
 * `head train` on the real photos (../shared/data/photos, 4 classes, 82 images) with the default extractor, then
 * `classify` with the trained head on the photos the trainer held out for validation.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { readHeadFile } from '../../protocol/head/files';
import { DEFAULT_TRAIN_OPTIONS, splitStratified } from '../../operator/training/train';
import { scanDataset } from '../../operator/training/dataset';
import { HAVE_SHARED, runCli, SHARED_PHOTOS, tmpDir } from '../support/cli';

test('head train reaches >= 0.85 validation accuracy; classify gets the held-out photos right', { skip: !HAVE_SHARED && 'no ../shared/data/photos' }, async () => {
  const out = path.join(tmpDir(), 'photos.head');
  const train = await runCli(['head', 'train', '--data', SHARED_PHOTOS, '--out', out, '--quiet'], { timeoutMs: 600_000 });
  assert.equal(train.code, 0, train.stderr);
  const m = /^validation accuracy: ([\d.]+) \((\d+) images/m.exec(train.stdout);
  assert.ok(m, train.stdout);
  const acc = Number(m[1]);
  process.stdout.write(`# measured validation accuracy ${acc} on ${m[2]} images\n`);
  assert.ok(acc >= 0.85, `validation accuracy ${acc}`);
  assert.match(train.stdout, /true \\ predicted\s+fish\s+monument\s+renewable_energy\s+tool/, 'confusion matrix with class names');

  const head = readHeadFile(out, 1 << 24);
  assert.deepEqual(head.manifest.classes, ['fish', 'monument', 'renewable_energy', 'tool']);
  assert.equal(head.manifest.extractor.id, 'mobilenet_v2_140');
  assert.equal(head.manifest.featureDim, 1792);
  assert.equal((head.manifest.metrics?.valAccuracy as number).toFixed(3), acc.toFixed(3));

  // The photos the trainer held out: the same deterministic split the command used.
  const dataset = scanDataset(SHARED_PHOTOS);
  const { val } = splitStratified(dataset.images.map((i) => i.label), DEFAULT_TRAIN_OPTIONS.valSplit, DEFAULT_TRAIN_OPTIONS.seed);
  assert.equal(val.length, Number(m[2]));
  const heldOut = val.map((i) => dataset.images[i]!);
  const r = await runCli(['classify', '--json', '--head', out, ...heldOut.map((h) => h.file)]);
  assert.equal(r.code, 0, r.stderr);
  const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; top: { label: string }[] });
  assert.equal(results.length, heldOut.length);
  const correct = results.filter((res, i) => res.top[0]!.label === dataset.classes[heldOut[i]!.label]).length;
  process.stdout.write(`# held-out top-1 via classify: ${correct}/${heldOut.length}\n`);
  // classify (file -> decode -> extract -> head) must agree with the trainer's own evaluation of the same photos.
  assert.equal(correct, Math.round(acc * heldOut.length));
  assert.ok(correct / heldOut.length >= 0.85);
});
