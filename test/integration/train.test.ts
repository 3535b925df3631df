/**
 * `head train` and `head eval` through the CLI: on the bundled samples (deterministic: two runs, the same bytes), on
 * feature side-files (no extraction; another extractor's features refused), and on the real photos
 * (../shared/data/photos, 4 classes, 82 images) when present.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { prng } from '../../base/prng';
import { encodeFeatures } from '../../protocol/dataset';
import { readHeadFile } from '../../protocol/head/files';
import { HAVE_SHARED, hasStackTrace, runCli, SAMPLES, SHARED_PHOTOS, tmpDir } from '../support/cli';

const CLASSES = ['fish', 'monument', 'renewable_energy', 'tool'];
const CREATED = ['--created-at', '2026-01-01T00:00:00Z'];
let fingerprint = '';

interface EvalJson {
  accuracy: number;
  perClass: { class: string; precision: number | null; recall: number | null; support: number }[];
  confusion: number[][];
  ece: number;
  errors: { file: string }[];
}

test('bundled samples: train twice -> identical head files; eval reports on the head\'s classes', { timeout: 600_000 }, async () => {
  const dir = tmpDir();
  const outs = [path.join(dir, 'a.head'), path.join(dir, 'b.head')];
  for (const out of outs) {
    const r = await runCli(['head', 'train', '--data', SAMPLES, '--out', out, '--id', 'samples', ...CREATED, '--quiet'], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^cross-validated accuracy: [\d.]+ \(16 samples, 4 folds; l2 [\d.e-]+, temperature [\d.]+, ECE [\d.]+\)$/m);
    assert.match(r.stdout, /true \\ predicted\s+fish\s+monument\s+renewable_energy\s+tool/);
  }
  assert.ok(fs.readFileSync(outs[0]!).equals(fs.readFileSync(outs[1]!)), 'two trainings gave different bytes');
  const head = readHeadFile(outs[0]!, 1 << 24);
  assert.deepEqual(head.manifest.classes, CLASSES);
  assert.equal(head.manifest.extractor.id, 'mobilenet_v2_140');
  assert.equal(head.manifest.featureDim, 1792);
  assert.equal(head.manifest.metrics?.augmentedCount, 16, 'mirrored images by default');
  fingerprint = head.manifest.extractor.fingerprint;

  const ev = await runCli(['head', 'eval', '--head', outs[0]!, '--data', SAMPLES, '--json', '--quiet'], { timeoutMs: 300_000 });
  assert.equal(ev.code, 0, ev.stderr);
  const report = JSON.parse(ev.stdout) as EvalJson;
  assert.deepEqual(report.perClass.map((p) => [p.class, p.support]), CLASSES.map((c) => [c, 4]));
  assert.equal(report.confusion.flat().reduce((a, b) => a + b, 0), 16);
  const diagonal = report.confusion.reduce((a, row, i) => a + row[i]!, 0);
  assert.equal(report.accuracy, diagonal / 16);
  assert.equal(report.errors.length, 16 - diagonal);
  assert.ok(report.ece >= 0 && report.ece <= 1);
});

test('side-files: trains without extracting, ignores unlabeled/, eval agrees; another extractor is refused', { timeout: 300_000 }, async (t) => {
  if (!fingerprint) return t.skip('needs the first test\'s extractor fingerprint');
  const data = tmpDir();
  const rand = prng(3);
  const write = (folder: string, name: string, centre: number, fp = fingerprint) => {
    const values = Array.from({ length: 1792 }, (_, i) => Math.max(0, (i % 2 === centre ? 1.5 : 0.2) + 0.3 * (rand() - 0.5)));
    const sample = {
      id: `1-${name}`,
      device: 'cam-1',
      ts: '2026-01-01T00:00:00.000Z',
      reason: 'sample',
      extractor: { id: 'mobilenet_v2_140', fingerprint: fp },
      featureDim: 1792,
      dtype: 'float16',
      features: encodeFeatures(values, 'float16'),
      prediction: { label: 'x', score: 0.5 },
      head: { id: 'demo', version: 1 },
      region: [0, 0, 0.5, 1],
      image: false,
    };
    fs.mkdirSync(path.join(data, folder), { recursive: true });
    fs.writeFileSync(path.join(data, folder, `cam-1-1-${name}.json`), JSON.stringify(sample));
  };
  for (let i = 0; i < 6; i++) {
    write('even', `${i}`, 0);
    write('odd', `${10 + i}`, 1);
  }
  write('unlabeled', '99', 0, 'f'.repeat(64)); // would be refused if it were read
  const out = path.join(tmpDir(), 'side.head');
  const r = await runCli(['head', 'train', '--data', data, '--out', out, '--quiet'], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cross-validated accuracy: 1\.000 \(12 samples, 5 folds/m);
  assert.match(r.stdout, /region \[0, 0, 0\.5, 1\]/);
  const head = readHeadFile(out, 1 << 24);
  assert.deepEqual(head.manifest.classes, ['even', 'odd']);
  assert.equal(head.manifest.metrics?.augmentedCount, 0, 'side-files have no mirror');
  assert.deepEqual(head.manifest.region, [0, 0, 0.5, 1]);

  const ev = await runCli(['head', 'eval', '--head', out, '--data', data, '--json'], { timeoutMs: 120_000 });
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal((JSON.parse(ev.stdout) as EvalJson).accuracy, 1);

  write('odd', '20', 1, 'e'.repeat(64));
  const bad = await runCli(['head', 'train', '--data', data, '--out', out, '--quiet'], { timeoutMs: 300_000 });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /cam-1-1-20\.json: features from extractor mobilenet_v2_140 \(fingerprint eeeeeeeeeeee…\), but the head is for mobilenet_v2_140 \(fingerprint [0-9a-f]{12}…\)/);
  assert.ok(!hasStackTrace(bad.stderr), bad.stderr);
});

test('shared photos: >= 0.85 cross-validated accuracy', { skip: !HAVE_SHARED && 'no ../shared/data/photos', timeout: 900_000 }, async () => {
  const out = path.join(tmpDir(), 'photos.head');
  const train = await runCli(['head', 'train', '--data', SHARED_PHOTOS, '--out', out, '--quiet'], { timeoutMs: 900_000 });
  assert.equal(train.code, 0, train.stderr);
  const m = /^cross-validated accuracy: ([\d.]+) \((\d+) samples, 5 folds/m.exec(train.stdout);
  assert.ok(m, train.stdout);
  process.stdout.write(`# cross-validated accuracy ${m[1]} on ${m[2]} photos\n`);
  assert.ok(Number(m[1]) >= 0.85, train.stdout);
  assert.equal((readHeadFile(out, 1 << 24).manifest.metrics?.cvAccuracy as number).toFixed(3), m[1]);
});

test('--region: images are cropped before extraction and the head carries the region; eval crops the same way', { timeout: 600_000 }, async () => {
  const dir = tmpDir();
  const fast = ['--no-flip', '--l2', '0.01', '--no-calibrate', ...CREATED, '--quiet'];
  const whole = path.join(dir, 'whole.head');
  const cropped = path.join(dir, 'cropped.head');
  for (const [out, extra] of [[whole, []], [cropped, ['--region', '0.25,0,0.5,0.5']]] as const) {
    const r = await runCli(['head', 'train', '--data', SAMPLES, '--out', out, '--id', 'samples', ...fast, ...extra], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
  }
  const a = readHeadFile(whole, 1 << 24);
  const b = readHeadFile(cropped, 1 << 24);
  assert.equal(a.manifest.region, undefined);
  assert.deepEqual(b.manifest.region, [0.25, 0, 0.5, 0.5]);
  assert.notEqual(a.manifest.sha256, b.manifest.sha256, 'the crop changed the features, so the weights');
  const ev = await runCli(['head', 'eval', '--head', cropped, '--data', SAMPLES, '--json', '--quiet'], { timeoutMs: 300_000 });
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal((JSON.parse(ev.stdout) as EvalJson).confusion.flat().reduce((x, y) => x + y, 0), 16);
  const bad = await runCli(['head', 'train', '--data', SAMPLES, '--out', path.join(dir, 'bad.head'), '--region', '0.6,0,0.5,1', '--quiet']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--region must be X,Y,W,H: .*x \+ w = 1\.1 > 1/);
});
