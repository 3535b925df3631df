import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { EdgeheadError } from '../../base/errors';
import { extractorRefKind } from '../../config/extractor-ref';
import { checkConfig } from '../../config/load';
import { loadExtractor } from '../../agent/extractors/load';
import { cacheFolderFor, modelJsonUrl } from '../../agent/extractors/remote';

test('extractor references: URL, folder path or catalogue id, from the spelling alone', () => {
  assert.equal(extractorRefKind('mobilenet_v2_140'), 'catalogue');
  assert.equal(extractorRefKind('mobilenet_v2_100'), 'catalogue');
  assert.equal(extractorRefKind('mobilenet_v3'), 'catalogue'); // an unknown id: the loader names the catalogue
  assert.equal(extractorRefKind('https://example.invalid/m'), 'url');
  assert.equal(extractorRefKind('HTTP://example.invalid/m'), 'url');
  for (const p of ['./models/x', '../x', '.hidden', 'models/x', '/opt/models/x', '~/models/x', 'a\\b']) assert.equal(extractorRefKind(p), 'path', p);
});

test('the config loader resolves exactly the references that are paths, against the config folder', () => {
  const base = '/etc/edgehead';
  const cases: [string, string][] = [
    ['mobilenet_v2_100', 'mobilenet_v2_100'],
    ['mobilenet_v3', 'mobilenet_v3'],
    ['https://hub.example/m/1', 'https://hub.example/m/1'],
    ['./m', path.join(base, 'm')],
    ['models/m', path.join(base, 'models', 'm')],
    ['/opt/m', '/opt/m'],
  ];
  for (const [ref, expected] of cases) {
    const r = checkConfig({ data: { version: 1, extractor: { ref } }, baseDir: base, env: {} });
    assert.deepEqual(r.errors, []);
    assert.equal(r.config!.extractor.ref, expected, ref);
  }
});

test('an unknown catalogue id is refused naming the catalogue and how to write a folder', async () => {
  await assert.rejects(loadExtractor({ ref: 'mobilenet_v3' }), (e: unknown) => {
    assert.ok(e instanceof EdgeheadError && e.code === 'MODEL_NOT_FOUND', String(e));
    assert.match(e.message, /^unknown extractor "mobilenet_v3" \(catalogue: mobilenet_v2_140, mobilenet_v2_100\)$/);
    assert.match(e.hint ?? '', /\.\/mobilenet_v3/);
    return true;
  });
});

test('TF Hub style URLs get /model.json?tfjs-format=file; explicit .json URLs are kept', () => {
  assert.equal(modelJsonUrl('https://hub.example/m/feature_vector/3/default/1').toString(), 'https://hub.example/m/feature_vector/3/default/1/model.json?tfjs-format=file');
  assert.equal(modelJsonUrl('https://hub.example/m/1/').toString(), 'https://hub.example/m/1/model.json?tfjs-format=file');
  assert.equal(modelJsonUrl('https://cdn.example/m/model.json').toString(), 'https://cdn.example/m/model.json');
});

test('cache folders are per URL', () => {
  assert.notEqual(cacheFolderFor('http://a/x', '/c'), cacheFolderFor('http://a/y', '/c'));
  assert.equal(cacheFolderFor('http://a/x', '/c'), cacheFolderFor('http://a/x', '/c'));
});
