/**
 * What a rejected head payload leaves on disk (issue 11, item 6): an excerpt of its first bytes and a record (sha256,
 * size, reason, topic), bounded in count and in total size, and nothing while the state dir is low on space.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { headInspectCommand } from '../../cli/commands/head-inspect';
import { HeadStore, type HeadStoreOptions, type RejectedRecord } from '../../agent/hot-swap/head-store';
import { sha256Hex } from '../../base/hash';
import { configureLogging } from '../../base/log';
import { prng } from '../../base/prng';
import { defaultConfig } from '../../config/defaults';
import { encodeHead, makeHeadFile } from '../../protocol/head/format';
import { generateKeyPair } from '../../protocol/head/signature';
import { tmpDir } from '../support/cli';
import { testHeadManager } from '../support/head-manager';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
});

const D = 4;
const extractor = { id: 'x', fingerprint: 'ab'.repeat(32), featureDim: D };
const initialBytes = encodeHead(makeHeadFile({ id: 'base', version: 1, classes: ['a', 'b'], extractor, kernel: new Float32Array(D * 2), bias: new Float32Array(2) }));
const TOPIC = 'edgehead/dev/head/set';
/** The documented bounds (docs/head-format.md): the first 4 KiB of each payload, 1 MiB for the folder. */
const EXCERPT = 4096;
const TOTAL = 1024 * 1024;

function setup(rejectedKeep: number, opts: HeadStoreOptions = {}, dir = tmpDir('rejected-')) {
  const cfg = { ...defaultConfig().head, rejectedKeep };
  const store = new HeadStore(dir, cfg.maxBytes, rejectedKeep, opts);
  // Signatures required, as on a fleet: the payloads below are refused before anything else is looked at.
  const t = testHeadManager({ store, cfg, extractor, publicKeys: [generateKeyPair().publicKeyPem], initialBytes });
  const rejectedDir = path.join(dir, 'heads', 'rejected');
  const files = () => fs.readdirSync(rejectedDir).sort();
  const bytesOnDisk = () => files().reduce((n, f) => n + fs.statSync(path.join(rejectedDir, f)).size, 0);
  return { ...t, dir, rejectedDir, files, bytesOnDisk, close: () => (t.current().dispose(), t.manager.dispose()) };
}

function garbage(size: number, seed: number): Uint8Array {
  const rand = prng(seed);
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

test('a 2 MB garbage payload leaves only its first 4 KiB and a record with its sha256, size, reason and topic', async () => {
  const d = setup(10);
  const payload = garbage(2_000_000, 1);
  await d.manager.handlePayload(TOPIC, payload, false);
  assert.equal(d.states.at(-1)!.lastUpdate.status, 'rejected');
  const files = d.files();
  assert.equal(files.length, 2, files.join(', '));
  const bin = files.find((f) => f.endsWith('.bin'))!;
  const excerpt = fs.readFileSync(path.join(d.rejectedDir, bin));
  assert.equal(excerpt.byteLength, EXCERPT);
  assert.deepEqual(new Uint8Array(excerpt), payload.subarray(0, EXCERPT));
  const record = JSON.parse(fs.readFileSync(path.join(d.rejectedDir, bin.replace(/\.bin$/, '.json')), 'utf8')) as RejectedRecord;
  assert.equal(record.bytes, 2_000_000);
  assert.equal(record.excerptBytes, EXCERPT);
  assert.equal(record.sha256, sha256Hex(payload));
  assert.equal(record.correlationId, record.sha256.slice(0, 16));
  assert.equal(record.topic, TOPIC);
  assert.match(record.reason, /magic/);
  assert.ok(d.bytesOnDisk() < EXCERPT + 1024, `${d.bytesOnDisk()} bytes on disk`);
  for (const f of files) assert.equal(fs.statSync(path.join(d.rejectedDir, f)).mode & 0o777, 0o600, f);
  d.close();
});

test('many rejections stay under the total cap (1 MiB), oldest removed first, whatever head.rejectedKeep says', async () => {
  const d = setup(100_000);
  let last = '';
  for (let i = 0; i < 300; i++) {
    const payload = garbage(64 * 1024, 100 + i);
    last = sha256Hex(payload).slice(0, 16);
    await d.manager.handlePayload(TOPIC, payload, false);
    assert.ok(d.bytesOnDisk() <= TOTAL, `after ${i + 1} rejections: ${d.bytesOnDisk()} bytes`);
  }
  const kept = d.files().filter((f) => f.endsWith('.bin'));
  assert.ok(kept.length > 100 && kept.length < 300, `${kept.length} kept`);
  assert.ok(kept.at(-1)!.endsWith(`${last}.bin`), 'the newest is kept');
  d.close();
});

test('the count bound still applies (head.rejectedKeep), and 0 keeps nothing', async () => {
  const d = setup(3);
  for (let i = 0; i < 7; i++) await d.manager.handlePayload(TOPIC, garbage(100, i), false);
  assert.equal(d.files().length, 6);
  d.close();
  const none = setup(0);
  await none.manager.handlePayload(TOPIC, garbage(100, 1), false);
  assert.deepEqual(none.files(), []);
  none.close();
});

test('nothing is kept while the state dir has less free space than the reserve; the payload is still answered', async () => {
  const d = setup(10, { freeBytes: () => 1024 * 1024 });
  await d.manager.handlePayload(TOPIC, garbage(50_000, 9), false);
  assert.equal(d.states.at(-1)!.lastUpdate.status, 'rejected');
  assert.deepEqual(d.files(), []);
  d.close();
});

test('whole payloads kept by an older agent are pruned into bounds at start', () => {
  const dir = tmpDir('rejected-');
  const rejectedDir = path.join(dir, 'heads', 'rejected');
  fs.mkdirSync(rejectedDir, { recursive: true });
  for (let i = 0; i < 4; i++) {
    fs.writeFileSync(path.join(rejectedDir, `2024-01-0${i + 1}T00-00-00-000Z-${String(i).repeat(16)}.bin`), Buffer.alloc(2 * 1024 * 1024));
    fs.writeFileSync(path.join(rejectedDir, `2024-01-0${i + 1}T00-00-00-000Z-${String(i).repeat(16)}.json`), '{}');
  }
  new HeadStore(dir, 1 << 24, 10);
  assert.deepEqual(fs.readdirSync(rejectedDir), []);
});

test('edgehead head inspect --rejected reads a kept record and what its excerpt shows', async () => {
  const d = setup(10);
  // A head for another extractor: its manifest fits in the excerpt, so id, version and key id can be read back.
  const other = encodeHead(makeHeadFile({ id: 'shop', version: 7, classes: ['a', 'b'], extractor: { id: 'y', fingerprint: 'cd'.repeat(32) }, kernel: new Float32Array(D * 2), bias: new Float32Array(2) }));
  await d.manager.handlePayload(TOPIC, other, false);
  const json = d.files().find((f) => f.endsWith('.json'))!;
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
  try {
    assert.equal(await headInspectCommand.run(['--rejected', '--json', path.join(d.rejectedDir, json)]), 0);
  } finally {
    process.stdout.write = write;
  }
  const shown = JSON.parse(out.join('')) as { reason: string; bytes: number; excerpt: { magic: string; manifest: { id: string; version: number } } };
  assert.match(shown.reason, /wrong extractor fingerprint/);
  assert.equal(shown.bytes, other.byteLength);
  assert.equal(shown.excerpt.magic, 'EHED');
  assert.deepEqual([shown.excerpt.manifest.id, shown.excerpt.manifest.version], ['shop', 7]);
  d.close();
});
