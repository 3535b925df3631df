/**
 * HeadManager under 3,000 mutated payloads (bit flips, truncations, random bytes, spliced sections) with signatures
 * required: no crash, nothing but rejections, the active head never changes, tensors and memory stay flat.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { encodeHead, makeHeadFile } from './protocol/head/format';
import { generateKeyPair, signHead } from './protocol/head/signature';
import { HeadStore } from './agent/hot-swap/head-store';
import { configureLogging } from './base/log';
import { prng } from './base/prng';
import { defaultConfig } from './config/defaults';
import { tmpDir } from './test/support/cli';
import { testHeadManager } from './test/support/head-manager';

/** A real full GC whatever flags the test runner was started with: --expose-gc set at run time puts gc() on every
 * context created afterwards. Without it the heap numbers below would be whatever garbage happened to be around. */
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  gc(); // a second pass collects what the first one's finalizers released
  return process.memoryUsage().heapUsed;
};

before(async () => {
  tf.env().set('PROD', true);
  configureLogging({ level: 'silent' }); // 3,000 rejections would be 3,000 warnings
  await tf.setBackend('cpu');
});

test('3,000 mutated payloads: all rejected, active head unchanged, tensors and heap flat', async () => {
  const D = 16;
  const keys = generateKeyPair();
  const extractor = { id: 'x', fingerprint: 'cd'.repeat(32), featureDim: D };
  const rand = prng(2024);
  const kernel = Float32Array.from({ length: D * 3 }, () => rand() - 0.5);
  const make = (version: number) =>
    encodeHead(signHead(makeHeadFile({ id: 'h', version, classes: ['a', 'b', 'c'], extractor, kernel, bias: new Float32Array(3), testVectors: [{ features: Array(D).fill(0.5), logits: [0, 0, 0].map((_, j) => 0.5 * kernel.filter((_, i) => i % 3 === j).reduce((a, b) => a + b, 0)) }] }), keys.privateKeyPem));
  const cfg = { ...defaultConfig().head, rejectedKeep: 3 };
  const store = new HeadStore(tmpDir(), cfg.maxBytes, cfg.rejectedKeep);
  const { manager, states, current: active } = testHeadManager({ store, cfg, extractor, publicKeys: [keys.publicKeyPem], initialBytes: make(1), lastFeatures: () => new Float32Array(D).fill(0.25) });
  const v2 = make(2);
  await manager.handlePayload('t', v2, false);
  assert.equal(states.at(-1)!.lastUpdate.status, 'applied');

  const tensorsBefore = tf.memory().numTensors;
  states.length = 0; // from here on only the latest state is kept: the heap check must see the manager's memory, not ours
  const heapBefore = heapAfterGc();
  let fedBytes = 0;
  const statuses = new Map<string, number>();
  const N = Number(process.env.N); const mids: number[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 250 === 0) mids.push(heapAfterGc() - heapBefore);
    const b = Buffer.from(v2);
    let p: Buffer;
    switch (i % 5) {
      case 0: // bit flips
        for (let k = 0; k < 1 + Math.floor(rand() * 8); k++) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
        p = b;
        break;
      case 1: // truncation
        p = b.subarray(0, Math.floor(rand() * b.length));
        break;
      case 2: // random bytes
        p = Buffer.from(Array.from({ length: Math.floor(rand() * 3000) }, () => Math.floor(rand() * 256)));
        break;
      case 3: // random overwrite of a run of bytes
        {
          const at = Math.floor(rand() * b.length);
          for (let k = at; k < Math.min(b.length, at + 1 + Math.floor(rand() * 64)); k++) b[k] = Math.floor(rand() * 256);
          p = b;
        }
        break;
      default: // a section of another version spliced in
        p = Buffer.concat([b.subarray(0, Math.floor(rand() * b.length)), Buffer.from(make(3)).subarray(Math.floor(rand() * 500))]);
    }
    fedBytes += p.length;
    await manager.handlePayload('t', new Uint8Array(p), false);
    const s = states.splice(0).at(-1)!;
    statuses.set(s.lastUpdate.status, (statuses.get(s.lastUpdate.status) ?? 0) + 1);
    assert.ok(s.lastUpdate.status === 'rejected' || s.lastUpdate.status === 'duplicate', `payload ${i}: ${s.lastUpdate.status}`);
    assert.deepEqual([s.active.id, s.active.version], ['h', 2]);
  }
  assert.equal(tf.memory().numTensors, tensorsBefore, 'tensor count flat');
  console.log('MIDS', mids.map((m) => (m / 1024).toFixed(0)).join(' '));
  const grew = heapAfterGc() - heapBefore;
  const grewMB = grew / 1024 / 1024;
  // Keeping each payload (or anything as large) would grow the heap by at least fedBytes.
  assert.ok(grew < fedBytes / 4, `heap grew ${grewMB.toFixed(2)} MB over ${(fedBytes / 1024 / 1024).toFixed(2)} MB of payloads`);
  assert.ok((statuses.get('rejected') ?? 0) > 2900, JSON.stringify([...statuses]));
  process.stdout.write(`# statuses: ${JSON.stringify(Object.fromEntries(statuses))}, heap growth ${grewMB.toFixed(2)} MB of ${(fedBytes / 1024 / 1024).toFixed(2)} MB fed\n`);
  active().dispose();
  manager.dispose();
});

