/**
 * The sample store (agent/collect/store.ts): atomic samples on disk, what a crash leaves is removed at open and
 * counted, the disk cap evicts the oldest, fetch pages in id order within maxBytes (at least one sample), ack deletes.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { SampleStore } from '../../agent/collect/store';
import { configureLogging } from '../../base/log';
import { CollectFetchReplySchema, CollectStatusReplySchema } from '../../protocol/commands';
import { encodeFeatures, type Sample } from '../../protocol/dataset';
import { tmpDir } from '../support/cli';

before(() => configureLogging({ level: 'silent' }));

function sample(id: string, image = false): Sample {
  return {
    id,
    device: 'dev1',
    ts: '2026-01-01T00:00:00.000Z',
    reason: 'sample',
    extractor: { id: 'mean-rgb', fingerprint: 'ab'.repeat(32) },
    featureDim: 4,
    dtype: 'float16',
    features: encodeFeatures([0.5, 0.25, 1, 2], 'float16'),
    prediction: { label: 'red', score: 0.5 },
    head: { id: 'colours', version: 1 },
    region: null,
    image,
  };
}
const JPEG = new Uint8Array([0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]);
const open = (dir: string, maxBytes = 1 << 20) => SampleStore.open({ dir, maxBytes });
const files = (dir: string) => fs.readdirSync(dir).sort();

test('add writes <id>.json (and <id>.jpg with an image); a reopened store sees the same samples', () => {
  const dir = path.join(tmpDir(), 'collect');
  const s = open(dir);
  s.add(sample('1-1'));
  s.add(sample('1-2', true), JPEG);
  assert.deepEqual(files(dir), ['1-1.json', '1-2.jpg', '1-2.json']);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, '1-1.json'), 'utf8')), sample('1-1'));
  const again = open(dir).status();
  assert.ok(Value.Check(CollectStatusReplySchema, again));
  assert.deepEqual({ ...again, bytes: 0 }, { count: 2, bytes: 0, evicted: 0, damaged: 0, oldest: '1-1', newest: '1-2' });
  assert.equal(again.bytes, s.status().bytes);
  assert.equal(again.bytes, fs.statSync(path.join(dir, '1-1.json')).size + fs.statSync(path.join(dir, '1-2.json')).size + JPEG.length);
});

test('add refuses an image flag without its JPEG (and a JPEG for a features-only sample)', () => {
  const s = open(path.join(tmpDir(), 'collect'));
  assert.throws(() => s.add(sample('1-1', true)), /image true but no JPEG/);
  assert.throws(() => s.add(sample('1-1'), JPEG), /image false but a JPEG/);
});

test('open removes and counts what a crash leaves: torn json, json without its jpg, stray jpg, temp files; keeps whole samples', () => {
  const dir = path.join(tmpDir(), 'collect');
  const s = open(dir);
  s.add(sample('1-1', true), JPEG);
  s.add(sample('1-2'));
  s.add(sample('1-3', true), JPEG);
  s.add(sample('1-4'));
  fs.rmSync(path.join(dir, '1-3.jpg')); // promised image missing
  fs.writeFileSync(path.join(dir, '1-4.json'), '{"id":"1-4","dev'); // torn
  fs.writeFileSync(path.join(dir, '1-5.jpg'), JPEG); // image written, crash before its json
  fs.writeFileSync(path.join(dir, '1-6.json.tmp-123'), '{'); // interrupted durable write
  const r = open(dir);
  assert.deepEqual(files(dir), ['1-1.jpg', '1-1.json', '1-2.json']);
  assert.equal(r.damaged, 3);
  assert.deepEqual([r.status().count, r.status().oldest, r.status().newest], [2, '1-1', '1-2']);
});

test('the cap evicts the oldest samples first and counts them; ids order by run, then frame', () => {
  const dir = path.join(tmpDir(), 'collect');
  const one = Buffer.byteLength(JSON.stringify(sample('9-9')));
  const s = open(dir, one * 3 + 8); // three samples (ids differ in length by a byte or two), not four
  for (const id of ['9-9', '9-10', '10-1', '10-2']) s.add(sample(id));
  assert.deepEqual(files(dir), ['10-1.json', '10-2.json', '9-10.json']);
  assert.deepEqual([s.status().evicted, s.status().oldest, s.status().newest], [1, '9-10', '10-2']);
});

test('fetch: id order after `after`, bounded by maxBytes but never empty, images as base64, more until the end', () => {
  const dir = path.join(tmpDir(), 'collect');
  const s = open(dir);
  for (let i = 1; i <= 12; i++) s.add(sample(`2-${i}`, i % 2 === 0), i % 2 === 0 ? JPEG : undefined);
  const seen: string[] = [];
  let after: string | undefined;
  let replies = 0;
  for (;;) {
    const r = s.fetch(after, 1500);
    assert.ok(Value.Check(CollectFetchReplySchema, r));
    assert.ok(r.samples.length >= 1);
    assert.ok(r.samples.length < 12, 'bounded');
    for (const x of r.samples) {
      assert.equal(x.id in r.images, x.image);
      if (x.image) assert.deepEqual(new Uint8Array(Buffer.from(r.images[x.id]!, 'base64')), JPEG);
    }
    seen.push(...r.samples.map((x) => x.id));
    replies++;
    if (!r.more) break;
    after = r.samples.at(-1)!.id;
  }
  assert.deepEqual(seen, Array.from({ length: 12 }, (_, i) => `2-${i + 1}`));
  assert.ok(replies > 1);
  const tiny = s.fetch(undefined, 1);
  assert.deepEqual([tiny.samples.length, tiny.more], [1, true], 'one sample even when it alone is larger than maxBytes');
  assert.deepEqual(s.fetch('2-12'), { samples: [], images: {}, more: false });
});

test('ack deletes those samples (both files) and ignores unknown ids; fetch does not delete', () => {
  const dir = path.join(tmpDir(), 'collect');
  const s = open(dir);
  s.add(sample('1-1', true), JPEG);
  s.add(sample('1-2'));
  s.fetch(undefined);
  assert.equal(s.status().count, 2);
  assert.equal(s.ack(['1-1', '7-7']), 1);
  assert.deepEqual(files(dir), ['1-2.json']);
  assert.equal(s.ack(['1-1']), 0);
  assert.deepEqual([s.status().count, s.status().oldest], [1, '1-2']);
});
