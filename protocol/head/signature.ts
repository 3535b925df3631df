/**
 * Detached Ed25519 signatures for heads, stored in manifest.signature.
 *
 * Signed bytes = header(12 bytes, manifest length = length of the canonical manifest)
 *              || canonical manifest (the manifest without its "signature" key, see canonicalJson)
 *              || weight bytes (kernel then bias, float32 LE)
 * A publisher in another language can reproduce this; docs/head-format.md spells it out.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { canonicalJson, encodeHeader, encodeWeights, HEAD_HEADER_BYTES, headSha256, validateManifest, type HeadFile, type HeadManifest } from './format';

export type VerifyResult = { ok: true; keyId: string } | { ok: false; reason: string };

/** keyId = first 16 hex digits of sha256 over the raw 32-byte Ed25519 public key. */
function keyIdOf(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  const raw = Buffer.from(jwk.x, 'base64url');
  return sha256Hex(raw).slice(0, 16);
}

/** The key id of an Ed25519 public key given as PEM (SPKI). */
export function keyIdFromPublicKey(publicKeyPem: string): string {
  return keyIdOf(parsePublicKey(publicKeyPem, 'public key'));
}

export function generateKeyPair(): { publicKeyPem: string; privateKeyPem: string; keyId: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

function parsePublicKey(pem: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new EdgeheadError('BAD_CONFIG', `${what} is not a valid PEM public key`, { cause: e, hint: 'expected an Ed25519 SPKI PEM ("-----BEGIN PUBLIC KEY-----")' });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new EdgeheadError('BAD_CONFIG', `${what} is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, not Ed25519`);
  }
  return key;
}

function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', 'signing key is not a valid PEM private key', { cause: e, hint: 'expected an Ed25519 PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----")' });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new EdgeheadError('BAD_ARGS', `signing key is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, not Ed25519`);
  }
  return key;
}

/** The manifest without its signature, as canonical JSON. */
export function canonicalUnsignedManifest(manifest: HeadManifest): string {
  const { signature: _signature, ...unsigned } = manifest;
  return canonicalJson(unsigned);
}

/** Exactly the bytes an Ed25519 signature covers (see the module comment). */
export function signedBytes(head: HeadFile): Uint8Array {
  const manifestBytes = new TextEncoder().encode(canonicalUnsignedManifest(head.manifest));
  const weights = encodeWeights(head.kernel, head.bias);
  const out = new Uint8Array(HEAD_HEADER_BYTES + manifestBytes.length + weights.length);
  out.set(encodeHeader(manifestBytes.length), 0);
  out.set(manifestBytes, HEAD_HEADER_BYTES);
  out.set(weights, HEAD_HEADER_BYTES + manifestBytes.length);
  return out;
}

/**
 * Returns a copy of the head with manifest.sha256 recomputed from the weights and manifest.signature set.
 * Validates the head first (BAD_HEAD), so a signature is never put on a head the agent would reject.
 */
export function signHead(head: HeadFile, privateKeyPem: string): HeadFile {
  const key = parsePrivateKey(privateKeyPem);
  const { signature: _old, ...rest } = head.manifest;
  const unsigned: HeadManifest = { ...rest, sha256: headSha256(head) };
  validateManifest(unsigned);
  const copy: HeadFile = { manifest: unsigned, kernel: head.kernel.slice(), bias: head.bias.slice() };
  const expectedKernel = unsigned.featureDim * unsigned.classes.length;
  if (copy.kernel.length !== expectedKernel || copy.bias.length !== unsigned.classes.length) {
    throw new EdgeheadError('BAD_HEAD', `weights do not match the manifest shapes (kernel ${copy.kernel.length} values, bias ${copy.bias.length})`);
  }
  const value = sign(null, signedBytes(copy), key).toString('base64');
  copy.manifest = { ...unsigned, signature: { alg: 'ed25519', keyId: keyIdOf(createPublicKey(key)), value } };
  return copy;
}

/**
 * Verifies manifest.signature against a list of trusted public keys (PEM). Never throws for a bad head; throws
 * BAD_CONFIG if one of the trusted keys is not an Ed25519 public key.
 */
export function verifyHead(head: HeadFile, publicKeysPem: string[]): VerifyResult {
  const trusted = new Map<string, KeyObject[]>();
  publicKeysPem.forEach((pem, i) => {
    const key = parsePublicKey(pem, `trusted key #${i + 1}`);
    const id = keyIdOf(key);
    trusted.set(id, [...(trusted.get(id) ?? []), key]);
  });
  const sig = head.manifest.signature;
  if (sig === undefined) return { ok: false, reason: 'unsigned: the head has no signature' };
  if (sig === null || typeof sig !== 'object' || sig.alg !== 'ed25519' || typeof sig.keyId !== 'string' || typeof sig.value !== 'string') {
    return { ok: false, reason: 'bad signature: malformed manifest.signature' };
  }
  const keys = trusted.get(sig.keyId);
  if (keys === undefined) {
    const known = [...trusted.keys()].join(', ') || 'none';
    return { ok: false, reason: `unknown key id ${JSON.stringify(sig.keyId.slice(0, 32))} (trusted: ${known})` };
  }
  let message: Uint8Array;
  try {
    message = signedBytes(head);
  } catch (e) {
    return { ok: false, reason: `bad signature: manifest cannot be canonicalised (${e instanceof Error ? e.message : String(e)})` };
  }
  const sigBytes = Buffer.from(sig.value, 'base64');
  for (const key of keys) {
    let ok = false;
    try {
      ok = verify(null, message, key, sigBytes);
    } catch {
      ok = false;
    }
    if (ok) return { ok: true, keyId: sig.keyId };
  }
  return { ok: false, reason: `bad signature: does not verify with key ${sig.keyId}` };
}
