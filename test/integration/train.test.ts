/**
 * `head train` on the real photos (../shared/data/photos, 4 classes) with the default extractor, then `classify`
 * with the trained head on photos it never saw.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readHeadFile } from '../../agent/head/files';
import { HAVE_SHARED, runCli, SHARED_PHOTOS, tmpDir } from '../support/cli';

test('head train reaches >= 0.85 validation accuracy; classify gets held-out photos right', { skip: !HAVE_SHARED && 'no ../shared/data/photos' }, async () => {
  const data = tmpDir();
  const heldOut: { file: string; cls: string }[] = [];
  for (const cls of fs.readdirSync(SHARED_PHOTOS).filter((c) => fs.statSync(path.join(SHARED_PHOTOS, c)).isDirectory())) {
    fs.mkdirSync(path.join(data, cls));
    fs.readdirSync(path.join(SHARED_PHOTOS, cls))
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .forEach((f, i) => {
        const src = path.join(SHARED_PHOTOS, cls, f);
        if (i % 6 === 5) heldOut.push({ file: src, cls });
        else fs.symlinkSync(src, path.join(data, cls, f));
      });
  }
  const out = path.join(data, 'photos.head');
  const train = await runCli(['head', 'train', '--data', data, '--out', out, '--quiet'], { timeoutMs: 600_000 });
  assert.equal(train.code, 0, train.stderr);
  const m = /^validation accuracy: ([\d.]+) \((\d+) images/m.exec(train.stdout);
  assert.ok(m, train.stdout);
  const acc = Number(m[1]);
  process.stdout.write(`# measured validation accuracy ${acc} on ${m[2]} images\n`);
  assert.ok(acc >= 0.85, `validation accuracy ${acc}`);
  assert.match(train.stdout, /fish\s.*\n.*monument/s, 'confusion matrix printed with class names');

  const head = readHeadFile(out, 1 << 24);
  assert.deepEqual(head.manifest.classes, ['fish', 'monument', 'renewable_energy', 'tool']);
  assert.equal(head.manifest.extractor.id, 'mobilenet_v2_140');
  assert.equal(head.manifest.featureDim, 1792);
  assert.equal(head.manifest.metrics?.valAccuracy, acc);

  const r = await runCli(['classify', '--json', '--head', out, ...heldOut.map((h) => h.file)]);
  assert.equal(r.code, 0, r.stderr);
  const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; top: { label: string }[] });
  assert.equal(results.length, heldOut.length);
  const correct = results.filter((res, i) => res.top[0]!.label === heldOut[i]!.cls).length;
  process.stdout.write(`# held-out top-1: ${correct}/${heldOut.length}\n`);
  assert.ok(correct / heldOut.length >= 0.85, `held-out top-1 ${correct}/${heldOut.length}`);
});
