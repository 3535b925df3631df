/**
 * `edgehead head keygen | sign | inspect` through the real CLI (a subprocess, like the operator runs it): key files
 * and modes, signing in place and to --out, verification against the right and a wrong key, tampered files.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { decodeHead, makeHeadFile } from '../../protocol/head/format';
import { writeHeadFile } from '../../protocol/head/files';
import { generateKeyPair, keyIdFromPublicKey, verifyHead } from '../../protocol/head/signature';
import { hasStackTrace, runCli, tmpDir } from '../support/cli';

function writeTestHead(file: string, version = 1): Uint8Array {
  return writeHeadFile(
    file,
    makeHeadFile({
      id: 'kitchen',
      version,
      classes: ['cat', 'dog', 'empty'],
      extractor: { id: 'mobilenet_v2_140', fingerprint: createHash('sha256').update('m').digest('hex') },
      kernel: new Float32Array([0.5, -0.5, 0, 1, 2, 0, -1, 0.25, 0]),
      bias: new Float32Array([0.1, -0.1, 0]),
      createdAt: new Date('2024-05-01T12:00:00Z'),
      testVectors: [
        { features: [1, 0, 0], logits: [0.6, -0.6, 0] },
        { features: [0, 1, 0], logits: [1.1, 1.9, 0] },
      ],
    }),
  );
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A key pair written the way keygen writes it (in-process: each CLI run costs seconds). */
function writeKeyPair(dir: string, name = 'edgehead-head'): void {
  const pair = generateKeyPair();
  fs.writeFileSync(path.join(dir, `${name}.key`), pair.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, `${name}.pub`), pair.publicKeyPem);
}

/** One line on stderr, prefixed, no stack trace. */
function assertOneLineError(stderr: string, re: RegExp): void {
  assert.equal(stderr.trim().split('\n').length, 1, stderr);
  assert.match(stderr, /^edgehead: error: /);
  assert.match(stderr, re);
  assert.ok(!hasStackTrace(stderr), stderr);
}

describe('edgehead head keygen', () => {
  test('writes NAME.key (PKCS#8, 0600) and NAME.pub (SPKI), prints the key id and the device config line', async () => {
    const dir = path.join(tmpDir(), 'keys');
    const r = await runCli(['head', 'keygen', '--out', dir, '--name', 'fleet']);
    assert.equal(r.code, 0, r.stderr);
    const key = fs.readFileSync(path.join(dir, 'fleet.key'), 'utf8');
    const pub = fs.readFileSync(path.join(dir, 'fleet.pub'), 'utf8');
    assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(pub, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(fs.statSync(path.join(dir, 'fleet.key')).mode & 0o777, 0o600);
    assert.match(r.stdout, new RegExp(`^key id: ${keyIdFromPublicKey(pub)}$`, 'm'));
    assert.match(r.stdout, /^ {2}head\.publicKeys: \[\/etc\/edgehead\/keys\/fleet\.pub\]$/m);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['fleet.key', 'fleet.pub'], 'no temporary files left behind');
  });

  test('default name edgehead-head; refuses to overwrite an existing key pair (exit 1, files unchanged) unless --force', async () => {
    const dir = tmpDir();
    assert.equal((await runCli(['head', 'keygen', '--out', dir])).code, 0);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['edgehead-head.key', 'edgehead-head.pub']);
    const before = fs.readFileSync(path.join(dir, 'edgehead-head.key'), 'utf8');
    const again = await runCli(['head', 'keygen', '--out', dir]);
    assert.equal(again.code, 1);
    assertOneLineError(again.stderr, /edgehead-head\.key and .*edgehead-head\.pub already exist; not overwriting \(pass --force/);
    assert.equal(fs.readFileSync(path.join(dir, 'edgehead-head.key'), 'utf8'), before);

    // Only the .pub left over from an earlier pair is refused too.
    fs.rmSync(path.join(dir, 'edgehead-head.key'));
    const half = await runCli(['head', 'keygen', '--out', dir]);
    assert.equal(half.code, 1);
    assert.match(half.stderr, /edgehead-head\.pub already exists;/);

    const forced = await runCli(['head', 'keygen', '--out', dir, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(fs.readFileSync(path.join(dir, 'edgehead-head.key'), 'utf8'), before);
    assert.equal(fs.statSync(path.join(dir, 'edgehead-head.key')).mode & 0o777, 0o600);
  });

  test('a bad --name is a usage error', async () => {
    const r = await runCli(['head', 'keygen', '--out', tmpDir(), '--name', '../x']);
    assert.equal(r.code, 2);
    assertOneLineError(r.stderr, /--name must be 1 to 64 letters, digits/);
  });
});

describe('edgehead head sign + inspect', () => {
  test('round trip: sign in place, inspect says valid with the right key and INVALID with another', async () => {
    const dir = tmpDir();
    assert.equal((await runCli(['head', 'keygen', '--out', dir, '--name', 'alice'])).code, 0);
    writeKeyPair(dir, 'bob');
    const alicePub = fs.readFileSync(path.join(dir, 'alice.pub'), 'utf8');
    const aliceId = keyIdFromPublicKey(alicePub);
    const bobId = keyIdFromPublicKey(fs.readFileSync(path.join(dir, 'bob.pub'), 'utf8'));
    const head = path.join(dir, 'kitchen.head');
    writeTestHead(head);

    const unsigned = await runCli(['head', 'inspect', head]);
    assert.equal(unsigned.code, 0, unsigned.stderr);
    assert.match(unsigned.stdout, /^signature +unsigned$/m);

    const s = await runCli(['head', 'sign', '--key', path.join(dir, 'alice.key'), head]);
    assert.equal(s.code, 0, s.stderr);
    const bytes = fs.readFileSync(head);
    assert.match(s.stdout, new RegExp(`^key id: +${aliceId}$`, 'm'));
    assert.match(s.stdout, new RegExp(`^sha256: +${sha(bytes)}$`, 'm'));
    assert.match(s.stdout, new RegExp(`^correlation id: +${sha(bytes).slice(0, 16)}$`, 'm'));
    assert.deepEqual(verifyHead(decodeHead(bytes), [alicePub]), { ok: true, keyId: aliceId });
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp')), [], 'atomic write leaves no temporary file');

    const good = await runCli(['head', 'inspect', head, '--key', path.join(dir, 'alice.pub')]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, new RegExp(`^signature +valid \\(key ${aliceId}\\)$`, 'm'));
    assert.match(good.stdout, new RegExp(`^correlationId +${sha(bytes).slice(0, 16)}$`, 'm'));
    assert.match(good.stdout, new RegExp(`^bytes +${bytes.byteLength}$`, 'm'));
    assert.match(good.stdout, /^testVectors +2$/m);
    assert.match(good.stdout, /^checksum +ok/m);

    const several = await runCli(['head', 'inspect', head, '--key', path.join(dir, 'bob.pub'), '--key', path.join(dir, 'alice.pub')]);
    assert.equal(several.code, 0, several.stderr);

    const wrong = await runCli(['head', 'inspect', head, '--key', path.join(dir, 'bob.pub')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, new RegExp(`^signature +INVALID: unknown key id "${aliceId}" \\(trusted: ${bobId}\\)$`, 'm'));

    const json = await runCli(['head', 'inspect', head, '--json', '--key', path.join(dir, 'alice.pub')]);
    assert.equal(json.code, 0, json.stderr);
    const j = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(j.signature, `valid (key ${aliceId})`);
    assert.equal(j.verified, true);
    assert.equal(j.correlationId, sha(bytes).slice(0, 16));
    assert.equal(j.bytes, bytes.byteLength);
    assert.equal(j.testVectors, 2);
    assert.equal(j.id, 'kitchen');
  });

  test('a signature that does not match the content is INVALID (exit 1); an unsigned head with --key exits 1', async () => {
    const dir = tmpDir();
    writeKeyPair(dir);
    const pub = path.join(dir, 'edgehead-head.pub');
    const a = path.join(dir, 'a.head');
    const b = path.join(dir, 'b.head');
    writeTestHead(a, 1);
    writeTestHead(b, 2);
    assert.equal((await runCli(['head', 'sign', '--key', path.join(dir, 'edgehead-head.key'), a])).code, 0);
    // Graft a's signature onto b (a valid file, but the signature covers another manifest).
    const signedA = decodeHead(fs.readFileSync(a));
    const headB = decodeHead(fs.readFileSync(b));
    writeHeadFile(b, { ...headB, manifest: { ...headB.manifest, signature: signedA.manifest.signature! } });
    const grafted = await runCli(['head', 'inspect', b, '--key', pub]);
    assert.equal(grafted.code, 1);
    assert.match(grafted.stdout, /^signature +INVALID: bad signature: does not verify with key [0-9a-f]{16}$/m);

    const c = path.join(dir, 'c.head');
    writeTestHead(c, 3);
    const unsigned = await runCli(['head', 'inspect', c, '--key', pub]);
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.stdout, /^signature +unsigned$/m);
  });

  test('sign --out leaves the input untouched', async () => {
    const dir = tmpDir();
    writeKeyPair(dir);
    const head = path.join(dir, 'in.head');
    const original = writeTestHead(head);
    const out = path.join(dir, 'sub', 'out.head');
    const r = await runCli(['head', 'sign', '--key', path.join(dir, 'edgehead-head.key'), head, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(new Uint8Array(fs.readFileSync(head)), original);
    assert.ok(decodeHead(fs.readFileSync(out)).manifest.signature);
  });

  test('a tampered file (one weight byte flipped, nothing fixed) is refused by inspect: checksum', async () => {
    const dir = tmpDir();
    const head = path.join(dir, 'k.head');
    writeTestHead(head);
    const bytes = fs.readFileSync(head);
    bytes[bytes.length - 5]! ^= 0x40; // inside the bias
    fs.writeFileSync(head, bytes);
    const r = await runCli(['head', 'inspect', head]);
    assert.equal(r.code, 1);
    assertOneLineError(r.stderr, /k\.head: weight sha256 mismatch: manifest says [0-9a-f]{64}, weights hash to [0-9a-f]{64}/);
    assert.equal(r.stdout, '');
  });

  test('bad key files give one-line errors', async () => {
    const dir = tmpDir();
    writeKeyPair(dir);
    const head = path.join(dir, 'k.head');
    writeTestHead(head);
    const before = fs.readFileSync(head);

    const pubAsKey = await runCli(['head', 'sign', '--key', path.join(dir, 'edgehead-head.pub'), head]);
    assert.notEqual(pubAsKey.code, 0);
    assertOneLineError(pubAsKey.stderr, /edgehead-head\.pub: signing key is not a valid PEM private key \(this is a public key; sign with the \.key file/);

    fs.writeFileSync(path.join(dir, 'junk.key'), 'not a key\n');
    const junk = await runCli(['head', 'sign', '--key', path.join(dir, 'junk.key'), head]);
    assert.notEqual(junk.code, 0);
    assertOneLineError(junk.stderr, /junk\.key: signing key is not a valid PEM private key \(expected an Ed25519 PKCS#8 PEM/);

    const missing = await runCli(['head', 'sign', '--key', path.join(dir, 'nope.key'), head]);
    assert.notEqual(missing.code, 0);
    assertOneLineError(missing.stderr, /cannot read signing key .*nope\.key: ENOENT/);
    assert.deepEqual(fs.readFileSync(head), before, 'a failed sign does not touch the head');

    const badPub = await runCli(['head', 'inspect', head, '--key', path.join(dir, 'edgehead-head.key')]);
    assert.notEqual(badPub.code, 0);
    assertOneLineError(badPub.stderr, /--key .*edgehead-head\.key: is a private key \(pass the \.pub file/);

    const junkPub = await runCli(['head', 'inspect', head, '--key', path.join(dir, 'junk.key')]);
    assert.notEqual(junkPub.code, 0);
    assertOneLineError(junkPub.stderr, /--key .*junk\.key: is not a valid PEM public key/);
  });
});
