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
import { encodeHead, makeHeadFile } from '../../protocol/head/format';
import { generateKeyPair, signHead } from '../../protocol/head/signature';
import { HeadStore } from '../../agent/hot-swap/head-store';
import { configureLogging } from '../../base/log';
import { prng } from '../../base/prng';
import { defaultConfig } from '../../config/defaults';
import { tmpDir } from '../support/cli';
import { testHeadManager } from '../support/head-manager';

/** A real full GC whatever flags the test runner was started with: --expose-gc set at run time puts gc() on every
 * context created afterwards. Without it the memory numbers below would be whatever garbage happened to be around. */
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/** JS heap + memory outside it (Buffer / Uint8Array contents), after a full GC. */
const memoryAfterGc = () => {
  gc();
  gc(); // a second pass collects what the first one's finalizers released
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

before(async () => {
  tf.env().set('PROD', true);
  configureLogging({ level: 'silent' }); // 3,000 rejections would be 3,000 warnings
  await tf.setBackend('cpu');
});

test('3,000 mutated payloads: all rejected, active head unchanged, tensors and memory flat', async () => {
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
  states.length = 0; // from here on only the latest state is kept: the memory check must see the manager's, not ours
  const statuses = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
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
    await manager.handlePayload('t', new Uint8Array(p), false);
    const s = states.splice(0).at(-1)!;
    statuses.set(s.lastUpdate.status, (statuses.get(s.lastUpdate.status) ?? 0) + 1);
    assert.ok(s.lastUpdate.status === 'rejected' || s.lastUpdate.status === 'duplicate', `payload ${i}: ${s.lastUpdate.status}`);
    assert.deepEqual([s.active.id, s.active.version], ['h', 2]);
  }
  assert.equal(tf.memory().numTensors, tensorsBefore, 'tensor count flat');
  assert.ok((statuses.get('rejected') ?? 0) > 2900, JSON.stringify([...statuses]));

  // Memory: after a full GC the heap moves by about 1 MB either way over these 3,000 small payloads (code, caches),
  // as much as they weigh together. So the leak check feeds 100 damaged heads padded to 256 KB (25 MB in all):
  // keeping any of them, or anything of their size, shows; the ~1 MB of noise does not.
  const memBefore = memoryAfterGc();
  const pad = Buffer.alloc(256 * 1024, 7);
  for (let i = 0; i < 100; i++) {
    const big = Buffer.concat([Buffer.from(v2), pad]);
    big[Math.floor((i * v2.length) / 100)] ^= 1;
    await manager.handlePayload('t', new Uint8Array(big), false);
    assert.equal(states.splice(0).at(-1)!.lastUpdate.status, 'rejected', `padded payload ${i}`);
  }
  const fedMB = (100 * (v2.length + pad.length)) / 1024 / 1024;
  const grewMB = (memoryAfterGc() - memBefore) / 1024 / 1024;
  assert.ok(grewMB < fedMB / 4, `memory grew ${grewMB.toFixed(2)} MB over ${fedMB.toFixed(1)} MB of rejected payloads`);
  process.stdout.write(`# statuses: ${JSON.stringify(Object.fromEntries(statuses))}; memory growth ${grewMB.toFixed(2)} MB over ${fedMB.toFixed(1)} MB fed\n`);
  active().dispose();
  manager.dispose();
});

test('precedence: a fleet head with another id does not replace a head pushed to the device; a group head does not either', async () => {
  const D = 4;
  const extractor = { id: 'x', fingerprint: 'ef'.repeat(32), featureDim: D };
  const mk = (id: string, version: number) => encodeHead(makeHeadFile({ id, version, classes: ['a', 'b'], extractor, kernel: new Float32Array(D * 2), bias: new Float32Array(2) }));
  const cfg = defaultConfig().head;
  const store = new HeadStore(tmpDir(), cfg.maxBytes, 0);
  const { manager, states, current: active } = testHeadManager({ store, cfg, extractor, initialBytes: mk('base', 1) });
  await manager.handlePayload('edgehead/all/head/set', mk('fleet', 1), false);
  assert.equal(states.at(-1)!.active.id, 'fleet', 'a fleet head replaces the initial head');
  await manager.handlePayload('edgehead/dev/head/set', mk('mine', 1), false);
  assert.equal(states.at(-1)!.active.id, 'mine');
  await manager.handlePayload('edgehead/all/head/set', mk('fleet2', 1), false);
  assert.equal(states.at(-1)!.lastUpdate.status, 'rejected');
  assert.match(states.at(-1)!.lastUpdate.reason!, /lower precedence/);
  await manager.handlePayload('edgehead/groups/g/head/set', mk('group', 1), false);
  assert.match(states.at(-1)!.lastUpdate.reason!, /lower precedence/);
  assert.equal(states.at(-1)!.active.id, 'mine');
  await manager.handlePayload('edgehead/dev/head/set', mk('mine', 2), false);
  assert.equal(states.at(-1)!.active.version, 2, 'the device topic still updates it');
  active().dispose();
});
