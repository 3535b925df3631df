import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { EdgeheadError } from '../../base/errors';
import { decodeHead, encodeHead, encodeWeights, makeHeadFile, type HeadFile } from '../../protocol/head/format';
import { generateKeyPair, keyIdFromPublicKey, signHead, signedBytes, verifyHead } from '../../protocol/head/signature';

function tinyHead(): HeadFile {
  return makeHeadFile({
    id: 'demo',
    version: 1,
    classes: ['cat', 'dog'],
    extractor: { id: 'mobilenet_v2_1.0_224', fingerprint: createHash('sha256').update('m').digest('hex') },
    kernel: new Float32Array([0.5, -0.5, 1, 2, -1, 0.25]),
    bias: new Float32Array([0.1, -0.1]),
    createdAt: new Date('2024-05-01T12:00:00Z'),
    metrics: { valAccuracy: 0.5 },
  });
}

const alice = generateKeyPair();
const bob = generateKeyPair();

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Re-encodes a manifest + weights as a raw payload (what an attacker who edits bytes and fixes the hash sends). */
function rawPayload(manifest: unknown, weights: Uint8Array, pretty = false): Uint8Array {
  const mb = new TextEncoder().encode(JSON.stringify(manifest, null, pretty ? 2 : undefined));
  const out = new Uint8Array(12 + mb.length + weights.length);
  out.set([0x45, 0x48, 0x45, 0x44, 1, 0, 0, 0], 0);
  new DataView(out.buffer).setUint32(8, mb.length, true);
  out.set(mb, 12);
  out.set(weights, 12 + mb.length);
  return out;
}

describe('head signatures', () => {
  test('keyId is the first 16 hex digits of sha256 over the raw 32-byte public key', () => {
    const der = createPublicKey(alice.publicKeyPem).export({ type: 'spki', format: 'der' });
    const rawKey = der.subarray(der.length - 32);
    assert.equal(alice.keyId, sha256Hex(rawKey).slice(0, 16));
    assert.equal(keyIdFromPublicKey(alice.publicKeyPem), alice.keyId);
    assert.notEqual(alice.keyId, bob.keyId);
  });

  test('a signed head verifies, also after encode -> decode', () => {
    const head = tinyHead();
    const signed = signHead(head, alice.privateKeyPem);
    assert.equal(head.manifest.signature, undefined, 'signHead must not mutate its input');
    assert.deepEqual(verifyHead(signed, [alice.publicKeyPem]), { ok: true, keyId: alice.keyId });
    const decoded = decodeHead(encodeHead(signed));
    assert.deepEqual(decoded.manifest.signature, signed.manifest.signature);
    assert.deepEqual(verifyHead(decoded, [bob.publicKeyPem, alice.publicKeyPem]), { ok: true, keyId: alice.keyId });
  });

  test('the signature covers header(canonical length) || canonical manifest without signature || weights', () => {
    const signed = signHead(tinyHead(), alice.privateKeyPem);
    const { signature, ...unsigned } = signed.manifest;
    // Canonicalise independently, the way a foreign publisher would: sort keys recursively.
    const sortDeep = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(sortDeep) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortDeep((v as Record<string, unknown>)[k])])) : v;
    const manifestBytes = new TextEncoder().encode(JSON.stringify(sortDeep(unsigned)));
    const header = new Uint8Array(12);
    header.set([0x45, 0x48, 0x45, 0x44, 1, 0, 0, 0]);
    new DataView(header.buffer).setUint32(8, manifestBytes.length, true);
    const expected = new Uint8Array([...header, ...manifestBytes, ...encodeWeights(signed.kernel, signed.bias)]);
    assert.deepEqual(signedBytes(signed), expected);
    assert.ok(verify(null, expected, createPublicKey(alice.publicKeyPem), Buffer.from(signature!.value, 'base64')));
  });

  test('a publisher may send the manifest in any key order and whitespace: verification canonicalises', () => {
    const signed = signHead(tinyHead(), alice.privateKeyPem);
    const reversed = Object.fromEntries(Object.entries(signed.manifest).reverse());
    const decoded = decodeHead(rawPayload(reversed, encodeWeights(signed.kernel, signed.bias), true));
    assert.deepEqual(verifyHead(decoded, [alice.publicKeyPem]), { ok: true, keyId: alice.keyId });
  });

  test('tampered weight byte (hash fixed up by the attacker) -> bad signature', () => {
    const signed = signHead(tinyHead(), alice.privateKeyPem);
    const weights = encodeWeights(signed.kernel, signed.bias);
    weights[5]! ^= 0x10;
    const decoded = decodeHead(rawPayload({ ...signed.manifest, sha256: sha256Hex(weights) }, weights));
    const r = verifyHead(decoded, [alice.publicKeyPem]);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /^bad signature/);
  });

  test('tampered weights in memory -> bad signature', () => {
    const signed = signHead(tinyHead(), alice.privateKeyPem);
    signed.kernel[0] = 0.75;
    const r = verifyHead(signed, [alice.publicKeyPem]);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /^bad signature/);
  });

  test('tampered manifest fields -> bad signature', () => {
    const signed = signHead(tinyHead(), alice.privateKeyPem);
    const weights = encodeWeights(signed.kernel, signed.bias);
    const tampered = [
      { ...signed.manifest, classes: ['dog', 'cat'] },
      { ...signed.manifest, version: 2 },
      { ...signed.manifest, metrics: { valAccuracy: 0.99 } },
      { ...signed.manifest, extra: 'unknown keys are signed too' },
    ];
    for (const m of tampered) {
      const r = verifyHead(decodeHead(rawPayload(m, weights)), [alice.publicKeyPem]);
      assert.equal(r.ok, false, JSON.stringify(m).slice(0, 80));
      assert.match((r as { reason: string }).reason, /^bad signature/);
    }
  });

  test('forged signature value with the right key id -> bad signature', () => {
    const signed = signHead(tinyHead(), alice.privateKeyPem);
    const forged: HeadFile = { ...signed, manifest: { ...signed.manifest, signature: { ...signed.manifest.signature!, value: Buffer.alloc(64, 7).toString('base64') } } };
    const r = verifyHead(forged, [alice.publicKeyPem]);
    assert.deepEqual(r.ok, false);
    assert.match((r as { reason: string }).reason, /^bad signature/);
  });

  test('signed by a key that is not trusted -> unknown key id', () => {
    const signed = signHead(tinyHead(), bob.privateKeyPem);
    const r = verifyHead(signed, [alice.publicKeyPem]);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, new RegExp(`^unknown key id "${bob.keyId}" \\(trusted: ${alice.keyId}\\)`));
  });

  test('a key id claimed by the attacker does not help: the trusted key must verify', () => {
    const signed = signHead(tinyHead(), bob.privateKeyPem);
    const claimed: HeadFile = { ...signed, manifest: { ...signed.manifest, signature: { ...signed.manifest.signature!, keyId: alice.keyId } } };
    const r = verifyHead(claimed, [alice.publicKeyPem]);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /^bad signature/);
  });

  test('unsigned head -> unsigned', () => {
    const r = verifyHead(tinyHead(), [alice.publicKeyPem]);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /^unsigned/);
  });

  test('re-signing replaces the signature', () => {
    const twice = signHead(signHead(tinyHead(), alice.privateKeyPem), bob.privateKeyPem);
    assert.equal(twice.manifest.signature!.keyId, bob.keyId);
    assert.deepEqual(verifyHead(twice, [alice.publicKeyPem, bob.publicKeyPem]), { ok: true, keyId: bob.keyId });
  });

  test('signHead recomputes sha256 and refuses invalid heads', () => {
    const head = tinyHead();
    head.manifest.sha256 = '0'.repeat(64);
    const signed = signHead(head, alice.privateKeyPem);
    assert.equal(signed.manifest.sha256, sha256Hex(encodeWeights(head.kernel, head.bias)));
    assert.doesNotThrow(() => decodeHead(encodeHead(signed)));
    assert.throws(() => signHead({ ...head, manifest: { ...head.manifest, classes: ['a'] } }, alice.privateKeyPem), (e) => e instanceof EdgeheadError && e.code === 'BAD_HEAD');
    assert.throws(() => signHead({ ...head, kernel: new Float32Array(2) }, alice.privateKeyPem), (e) => e instanceof EdgeheadError && e.code === 'BAD_HEAD');
  });

  test('bad keys are EdgeheadErrors', () => {
    assert.throws(() => signHead(tinyHead(), 'not a pem'), (e) => e instanceof EdgeheadError && e.code === 'BAD_ARGS');
    assert.throws(() => signHead(tinyHead(), alice.publicKeyPem), (e) => e instanceof EdgeheadError);
    assert.throws(() => verifyHead(tinyHead(), ['garbage']), (e) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && /trusted key #1/.test(e.message));
  });
});
