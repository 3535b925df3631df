/**
 * Fuzzing decodeHead: whatever the bytes, it returns a valid head or throws EdgeheadError('BAD_HEAD'); never another
 * error, never a hang. Deterministic (seeded), so a failure reproduces.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EdgeheadError } from '../../base/errors';
import { prng } from '../../base/prng';
import { decodeHead, encodeHead, encodeWeights, makeHeadFile, type HeadFile } from '../../protocol/head/format';


function seedHead(): HeadFile {
  const head = makeHeadFile({
    id: 'fuzz-head',
    version: 3,
    classes: ['cat', 'dog', 'bird'],
    extractor: { id: 'mobilenet_v2_1.0_224', fingerprint: createHash('sha256').update('x').digest('hex') },
    kernel: Float32Array.from({ length: 4 * 3 }, (_, i) => (i - 6) / 7),
    bias: new Float32Array([0.1, -0.2, 0.3]),
    createdAt: new Date('2024-05-01T12:00:00Z'),
    metrics: { valAccuracy: 0.93, confusion: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] },
    testVectors: [{ features: [1, 2, 3, 4], logits: [0.5, -1, 2] }],
    shadow: { frames: 50, autoPromoteAgreement: 0.95 },
  });
  return head;
}

const VALID = encodeHead(seedHead());
const MANIFEST_END = 12 + new DataView(VALID.buffer).getUint32(8, true);

interface Tally {
  total: number;
  rejected: number;
  accepted: number;
  slowestMs: number;
}

/** Decodes; fails the test on anything but success or EdgeheadError('BAD_HEAD'). */
function probe(bytes: Uint8Array, tally: Tally, label: string): 'ok' | 'rejected' {
  tally.total++;
  const t0 = performance.now();
  try {
    const head = decodeHead(bytes);
    tally.accepted++;
    // An accepted head must be internally consistent.
    assert.equal(head.kernel.length, head.manifest.featureDim * head.manifest.classes.length, label);
    assert.equal(head.bias.length, head.manifest.classes.length, label);
    return 'ok';
  } catch (e) {
    if (!(e instanceof EdgeheadError) || e.code !== 'BAD_HEAD') {
      assert.fail(`${label}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
    assert.ok(e.message.length > 0 && !e.message.includes('\n'), `${label}: message must be one non-empty line`);
    tally.rejected++;
    return 'rejected';
  } finally {
    tally.slowestMs = Math.max(tally.slowestMs, performance.now() - t0);
  }
}

function newTally(): Tally {
  return { total: 0, rejected: 0, accepted: 0, slowestMs: 0 };
}

const grand = newTally();
function merge(t: Tally): void {
  grand.total += t.total;
  grand.rejected += t.rejected;
  grand.accepted += t.accepted;
  grand.slowestMs = Math.max(grand.slowestMs, t.slowestMs);
}

describe('head decode fuzz', () => {
  test('the seed payload itself decodes', () => {
    assert.equal(decodeHead(VALID).manifest.id, 'fuzz-head');
  });

  test('truncation at every byte offset is rejected', () => {
    const t = newTally();
    for (let len = 0; len < VALID.length; len++) {
      assert.equal(probe(VALID.subarray(0, len), t, `truncated to ${len}`), 'rejected', `truncated to ${len} bytes was accepted`);
    }
    // and every section boundary, +-1, explicitly
    for (const b of [0, 4, 6, 8, 12, MANIFEST_END, VALID.length - 12, VALID.length - 4]) {
      for (const len of [b - 1, b, b + 1]) if (len >= 0 && len < VALID.length) probe(VALID.subarray(0, len), t, `boundary ${len}`);
    }
    assert.ok(t.total >= VALID.length);
    merge(t);
  });

  test('single bit flips: header and weight flips are always rejected', () => {
    const rand = prng(1);
    const t = newTally();
    const positions: number[] = [];
    for (let i = 0; i < 12 * 8; i++) positions.push(i); // every header bit
    for (let i = 0; i < (VALID.length - MANIFEST_END) * 8; i++) positions.push(MANIFEST_END * 8 + i); // every weight bit
    for (let i = 0; i < 1200; i++) positions.push(Math.floor(rand() * VALID.length * 8)); // random, mostly manifest
    for (const bit of positions) {
      const bytes = VALID.slice();
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      const outcome = probe(bytes, t, `bit flip ${bit}`);
      if (bit < 96 || bit >= MANIFEST_END * 8) assert.equal(outcome, 'rejected', `flip of bit ${bit} was accepted`);
    }
    merge(t);
  });

  test('random multi-byte overwrites, insertions and deletions', () => {
    const rand = prng(2);
    const t = newTally();
    for (let i = 0; i < 400; i++) {
      const bytes = VALID.slice();
      const n = 1 + Math.floor(rand() * 8);
      for (let j = 0; j < n; j++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      probe(bytes, t, `overwrite #${i}`);
    }
    for (let i = 0; i < 200; i++) {
      const at = Math.floor(rand() * VALID.length);
      const insert = Uint8Array.from({ length: 1 + Math.floor(rand() * 4) }, () => Math.floor(rand() * 256));
      assert.equal(probe(new Uint8Array([...VALID.subarray(0, at), ...insert, ...VALID.subarray(at)]), t, `insert at ${at}`), 'rejected');
      const del = 1 + Math.floor(rand() * 4);
      assert.equal(probe(new Uint8Array([...VALID.subarray(0, at), ...VALID.subarray(at + del)]), t, `delete at ${at}`), 'rejected');
    }
    merge(t);
  });

  test('random garbage, with and without a plausible header', () => {
    const rand = prng(3);
    const t = newTally();
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256));
      assert.equal(probe(bytes, t, `garbage #${i}`), 'rejected');
    }
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from({ length: 12 + Math.floor(rand() * 600) }, () => Math.floor(rand() * 256));
      bytes.set(VALID.subarray(0, 8), 0); // magic, version, flags
      const view = new DataView(bytes.buffer);
      const choices = [0, 1, bytes.length - 12, bytes.length - 11, Math.floor(rand() * 2 ** 32), 2 ** 20, 2 ** 20 + 1, 2 ** 32 - 1];
      view.setUint32(8, choices[Math.floor(rand() * choices.length)]!, true);
      assert.equal(probe(bytes, t, `plausible garbage #${i}`), 'rejected');
    }
    merge(t);
  });

  test('structured manifest mutations (valid JSON, hostile values)', () => {
    const rand = prng(4);
    const t = newTally();
    const base = seedHead();
    const weights = encodeWeights(base.kernel, base.bias);
    const hostile: unknown[] = [
      null, true, false, 0, -1, 1.5, 1e308, -0, 2 ** 53 + 2, '', ' ', 'x'.repeat(5000), '\u0000', '\ud800', [], [null], {}, { a: 1 },
      [1, 2, 3], ['a', 'a'], 'float32', 'ed25519', [4, 3], [3], 3, 4, '2024-05-01T12:00:00Z',
      JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`), JSON.parse('{"__proto__": {"x": 1}}'),
    ];
    // Every path in the manifest tree.
    const paths: string[][] = [];
    const walk = (v: unknown, path: string[]) => {
      paths.push(path);
      if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], [...path, k]);
    };
    walk(JSON.parse(JSON.stringify(base.manifest)), []);
    for (let i = 0; i < 800; i++) {
      const m = JSON.parse(JSON.stringify(base.manifest)) as Record<string, unknown>;
      const path = paths[1 + Math.floor(rand() * (paths.length - 1))]!;
      let obj = m as Record<string, unknown>;
      for (const k of path.slice(0, -1)) obj = obj[k] as Record<string, unknown>;
      const last = path[path.length - 1]!;
      const r = rand();
      if (r < 0.15) delete obj[last];
      else obj[last] = hostile[Math.floor(rand() * hostile.length)];
      const manifestBytes = new TextEncoder().encode(JSON.stringify(m));
      const bytes = new Uint8Array(12 + manifestBytes.length + weights.length);
      bytes.set(VALID.subarray(0, 8), 0);
      new DataView(bytes.buffer).setUint32(8, manifestBytes.length, true);
      bytes.set(manifestBytes, 12);
      bytes.set(weights, 12 + manifestBytes.length);
      probe(bytes, t, `mutation ${path.join('.')}`);
    }
    merge(t);
  });

  test('a 1 MiB manifest of nesting is rejected quickly', () => {
    const t = newTally();
    const open = new TextEncoder().encode('['.repeat(2 ** 20));
    const bytes = new Uint8Array(12 + open.length);
    bytes.set(VALID.subarray(0, 8), 0);
    new DataView(bytes.buffer).setUint32(8, open.length, true);
    bytes.set(open, 12);
    assert.equal(probe(bytes, t, 'deep nesting'), 'rejected');
    merge(t);
  });

  test('totals: >= 2000 payloads, no hang', () => {
    assert.ok(grand.total >= 2000, `only ${grand.total} payloads`);
    assert.ok(grand.slowestMs < 2000, `slowest decode took ${grand.slowestMs.toFixed(1)} ms`);
    assert.ok(grand.rejected > grand.accepted);
    // Visible in the TAP output, for the record.
    console.log(`# fuzz: ${grand.total} payloads, ${grand.rejected} rejected (BAD_HEAD), ${grand.accepted} accepted, slowest ${grand.slowestMs.toFixed(1)} ms`);
  });
});
