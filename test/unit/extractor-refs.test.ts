import assert from 'node:assert/strict';
import { test } from 'node:test';
import { specKind } from '../../agent/extractors/load';
import { cacheFolderFor, modelJsonUrl } from '../../agent/extractors/remote';

test('extractor references: catalogue id, URL or folder path', () => {
  assert.equal(specKind('mobilenet_v2_140'), 'catalogue');
  assert.equal(specKind('mobilenet_v2_100'), 'catalogue');
  assert.equal(specKind('https://example.invalid/m'), 'url');
  assert.equal(specKind('HTTP://example.invalid/m'), 'url');
  assert.equal(specKind('./models/x'), 'path');
  assert.equal(specKind('mobilenet_v3'), 'path');
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
