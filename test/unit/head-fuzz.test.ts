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
}

/** One fuzz payload; `mustReject` when no decoder may accept it. */
interface Case {
  bytes: Uint8Array;
  label: string;
  mustReject?: boolean;
}

/** Decodes; fails the test on anything but success or EdgeheadError('BAD_HEAD'), or on accepting a mustReject case. */
function probe({ bytes, label, mustReject }: Case, tally: Tally): 'ok' | 'rejected' {
  tally.total++;
  try {
    const head = decodeHead(bytes);
    tally.accepted++;
    assert.ok(!mustReject, `${label} was accepted`);
    // An accepted head must be internally consistent.
    assert.equal(head.kernel.length, head.manifest.featureDim * head.manifest.classes.length, label);
    assert.equal(head.bias.length, head.manifest.classes.length, label);
    return 'ok';
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    if (!(e instanceof EdgeheadError) || e.code !== 'BAD_HEAD') {
      assert.fail(`${label}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
    assert.ok(e.message.length > 0 && !e.message.includes('\n'), `${label}: message must be one non-empty line`);
    tally.rejected++;
    return 'rejected';
  }
}

/** Probes every case of a corpus. */
function run(corpus: Iterable<Case>): Tally {
  const tally: Tally = { total: 0, rejected: 0, accepted: 0 };
  for (const c of corpus) probe(c, tally);
  return tally;
}

// Each corpus is a deterministic (seeded) generator, so every test builds its own payloads and none depends on
// another having run.

function* truncations(): Iterable<Case> {
  for (let len = 0; len < VALID.length; len++) yield { bytes: VALID.subarray(0, len), label: `truncated to ${len} bytes`, mustReject: true };
}

/** Every header bit, every weight bit, and random bits (mostly in the manifest, where a flip may be harmless). */
function* bitFlips(): Iterable<Case> {
  const rand = prng(1);
  const positions: number[] = [];
  for (let i = 0; i < 12 * 8; i++) positions.push(i);
  for (let i = 0; i < (VALID.length - MANIFEST_END) * 8; i++) positions.push(MANIFEST_END * 8 + i);
  for (let i = 0; i < 1200; i++) positions.push(Math.floor(rand() * VALID.length * 8));
  for (const bit of positions) {
    const bytes = VALID.slice();
    bytes[bit >> 3]! ^= 1 << (bit & 7);
    yield { bytes, label: `flip of bit ${bit}`, mustReject: bit < 96 || bit >= MANIFEST_END * 8 };
  }
}

function* overwrites(): Iterable<Case> {
  const rand = prng(2);
  for (let i = 0; i < 400; i++) {
    const bytes = VALID.slice();
    const n = 1 + Math.floor(rand() * 8);
    for (let j = 0; j < n; j++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    yield { bytes, label: `overwrite #${i}` };
  }
  for (let i = 0; i < 200; i++) {
    const at = Math.floor(rand() * VALID.length);
    const insert = Uint8Array.from({ length: 1 + Math.floor(rand() * 4) }, () => Math.floor(rand() * 256));
    yield { bytes: new Uint8Array([...VALID.subarray(0, at), ...insert, ...VALID.subarray(at)]), label: `insert at ${at}`, mustReject: true };
    const del = 1 + Math.floor(rand() * 4);
    yield { bytes: new Uint8Array([...VALID.subarray(0, at), ...VALID.subarray(at + del)]), label: `delete at ${at}`, mustReject: true };
  }
}

function* garbage(): Iterable<Case> {
  const rand = prng(3);
  for (let i = 0; i < 300; i++) {
    yield { bytes: Uint8Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)), label: `garbage #${i}`, mustReject: true };
  }
  for (let i = 0; i < 300; i++) {
    const bytes = Uint8Array.from({ length: 12 + Math.floor(rand() * 600) }, () => Math.floor(rand() * 256));
    bytes.set(VALID.subarray(0, 8), 0); // magic, version, flags
    const choices = [0, 1, bytes.length - 12, bytes.length - 11, Math.floor(rand() * 2 ** 32), 2 ** 20, 2 ** 20 + 1, 2 ** 32 - 1];
    new DataView(bytes.buffer).setUint32(8, choices[Math.floor(rand() * choices.length)]!, true);
    yield { bytes, label: `plausible garbage #${i}`, mustReject: true };
  }
}

/** A valid header and weights around `manifest`, serialised as plain JSON. */
function withManifest(manifest: unknown, weights: Uint8Array): Uint8Array {
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
  const bytes = new Uint8Array(12 + manifestBytes.length + weights.length);
  bytes.set(VALID.subarray(0, 8), 0);
  new DataView(bytes.buffer).setUint32(8, manifestBytes.length, true);
  bytes.set(manifestBytes, 12);
  bytes.set(weights, 12 + manifestBytes.length);
  return bytes;
}

/** Valid JSON, hostile values: one key anywhere in the manifest deleted or replaced. */
function* mutations(): Iterable<Case> {
  const rand = prng(4);
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
    if (rand() < 0.15) delete obj[last];
    else obj[last] = hostile[Math.floor(rand() * hostile.length)];
    yield { bytes: withManifest(m, weights), label: `mutation ${path.join('.')}` };
  }
}

function* deepNesting(): Iterable<Case> {
  const open = new TextEncoder().encode('['.repeat(2 ** 20));
  const bytes = new Uint8Array(12 + open.length);
  bytes.set(VALID.subarray(0, 8), 0);
  new DataView(bytes.buffer).setUint32(8, open.length, true);
  bytes.set(open, 12);
  yield { bytes, label: 'a 1 MiB manifest of nesting', mustReject: true };
}

describe('head decode fuzz', () => {
  test('the seed payload itself decodes', () => {
    assert.equal(decodeHead(VALID).manifest.id, 'fuzz-head');
  });

  test('truncation at every byte offset is rejected', () => {
    assert.equal(run(truncations()).rejected, VALID.length);
  });

  test('single bit flips: header and weight flips are always rejected', () => {
    const t = run(bitFlips());
    assert.ok(t.rejected >= 12 * 8 + (VALID.length - MANIFEST_END) * 8);
  });

  test('random multi-byte overwrites, insertions and deletions', () => {
    assert.equal(run(overwrites()).total, 800);
  });

  test('random garbage, with and without a plausible header', () => {
    assert.equal(run(garbage()).rejected, 600);
  });

  test('structured manifest mutations (valid JSON, hostile values): some accepted, most rejected', () => {
    const t = run(mutations());
    assert.ok(t.accepted > 0 && t.rejected > t.accepted, JSON.stringify(t));
  });

  test('a 1 MiB manifest of nesting is rejected', () => {
    assert.equal(run(deepNesting()).rejected, 1);
  });

  test('totals: the whole corpus is >= 2000 payloads, more rejected than accepted', () => {
    const t = run([truncations(), bitFlips(), overwrites(), garbage(), mutations(), deepNesting()].flatMap((c) => [...c]));
    assert.ok(t.total >= 2000, `only ${t.total} payloads`);
    assert.ok(t.rejected > t.accepted, JSON.stringify(t));
    // Visible in the TAP output, for the record.
    console.log(`# fuzz: ${t.total} payloads, ${t.rejected} rejected (BAD_HEAD), ${t.accepted} accepted`);
  });
});
