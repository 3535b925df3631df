/**
 * `npm run package` (scripts/package.ts) on a small bundle folder (--dist: an edgehead.cjs that answers --version,
 * a few files, manifest.json with their sizes and sha256), with the real GNU tar, gzip, openssl and
 * firmware-scripts/update.sh on a fake root (--root, no service manager: unpack, verify, switch; no restart):
 * the layout and the .sha256 update.sh wants, byte-identical runs whatever the files' mtimes and modes, a signature
 * that openssl verifies (the very bytes `openssl pkeyutl -sign -rawin` makes), tampered tarballs refused, and the
 * one-line errors with exit 2 for bad keys. .ci/firmware-update.sh runs the same with the real dist/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { ROOT, tmpDir } from '../support/cli';

const VERSION = '1.2.3';
const NAME = `edgehead-${VERSION}.tar.gz`;
const BUILT_AT = '2024-01-02T03:04:05.000Z';
const FIRMWARE = path.join(ROOT, 'firmware-scripts');
const TSX = path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
let work: string;
let bundle: string;
let key: string;
let pub: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = work): Run {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 300_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** scripts/package.ts ARGS (no SOURCE_DATE_EPOCH, no key from the environment unless given). */
function pack(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  return run(process.execPath, [TSX, path.join(ROOT, 'scripts', 'package.ts'), ...args], { SOURCE_DATE_EPOCH: '', EDGEHEAD_PACKAGE_KEY: '', ...env });
}

function packOk(out: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): string {
  const r = pack(['--dist', bundle, '--out', out, ...args], env);
  assert.equal(r.code, 0, r.stderr);
  return path.join(out, NAME);
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A fake root with version 1.0.0 installed: all update.sh --root needs (no service manager: no restart). */
function fakeRoot(): string {
  const r = tmpDir('package-root-');
  const old = path.join(r, 'opt', 'edgehead', '1.0.0');
  fs.mkdirSync(old, { recursive: true });
  fs.writeFileSync(path.join(old, 'edgehead.cjs'), "console.log('1.0.0');\n");
  fs.symlinkSync('1.0.0', path.join(r, 'opt', 'edgehead', 'current'));
  return r;
}

function update(root: string, tarball: string, extra: string[] = []): Run {
  return run('bash', [path.join(FIRMWARE, 'update.sh'), '--root', root, ...extra, tarball], { FIRMWARE_SYSTEMCTL: '' });
}

before(() => {
  work = tmpDir('package-');
  bundle = path.join(work, 'bundle');
  // Created out of name order, with modes a builder's umask could give: the package must not depend on either.
  const files: [string, string, number][] = [
    ['wasm/b.bin', '\u0000\u0001binary', 0o666],
    ['edgehead.cjs', `#!/usr/bin/env node\nif (process.argv[2] === '--version') { console.log('${VERSION}'); process.exit(0); }\nprocess.exit(1);\n`, 0o755],
    ['assets/z/deep.txt', 'deep\n', 0o644],
    ['assets/a.txt', 'a\n', 0o600],
  ];
  const listed: Record<string, { bytes: number; sha256: string }> = {};
  for (const [f, text, mode] of files) {
    const p = path.join(bundle, f);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
    fs.chmodSync(p, mode);
    listed[f] = { bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
  }
  fs.writeFileSync(path.join(bundle, 'manifest.json'), JSON.stringify({ name: 'edgehead', version: VERSION, commit: 'unknown', builtAt: BUILT_AT, files: listed }, null, 2) + '\n');
  key = path.join(work, 'update.key');
  pub = path.join(work, 'update.pub');
  assert.equal(run('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]).code, 0);
  assert.equal(run('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]).code, 0);
});

test('edgehead-<version>.tar.gz holds the bundle in one folder, sorted, owned by 0, dated once; .sha256 in sha256sum format', () => {
  const out = path.join(work, 'layout');
  const r = pack(['--dist', bundle, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const tarball = path.join(out, NAME);
  assert.match(r.stdout, new RegExp(`${NAME} +0\\.00 MB  sha256 ${sha256(tarball)}\\n`));
  assert.match(r.stdout, new RegExp(`${NAME}\\.sha256 +\\d+ B\\n`));
  assert.deepEqual(fs.readdirSync(out).sort(), [NAME, `${NAME}.sha256`]);
  assert.equal(fs.readFileSync(`${tarball}.sha256`, 'utf8'), `${sha256(tarball)}  ${NAME}\n`);
  assert.equal(run('sha256sum', ['-c', `${NAME}.sha256`], {}, out).code, 0);

  const list = run('tar', ['--list', '--verbose', '--full-time', '--numeric-owner', '-zf', tarball], { TZ: 'UTC' });
  assert.equal(list.code, 0, list.stderr);
  const entries = list.stdout.trim().split('\n').map((l) => l.split(/\s+/));
  // mode, owner/group, size, date, time, name
  assert.deepEqual(entries.map((e) => `${e[0]} ${e[1]} ${e[3]}T${e[4]} ${e[5]}`), [
    'drwxr-xr-x 0/0 2024-01-02T03:04:05 edgehead-1.2.3/',
    'drwxr-xr-x 0/0 2024-01-02T03:04:05 edgehead-1.2.3/assets/',
    '-rw-r--r-- 0/0 2024-01-02T03:04:05 edgehead-1.2.3/assets/a.txt',
    'drwxr-xr-x 0/0 2024-01-02T03:04:05 edgehead-1.2.3/assets/z/',
    '-rw-r--r-- 0/0 2024-01-02T03:04:05 edgehead-1.2.3/assets/z/deep.txt',
    '-rwxr-xr-x 0/0 2024-01-02T03:04:05 edgehead-1.2.3/edgehead.cjs',
    '-rw-r--r-- 0/0 2024-01-02T03:04:05 edgehead-1.2.3/manifest.json',
    'drwxr-xr-x 0/0 2024-01-02T03:04:05 edgehead-1.2.3/wasm/',
    '-rw-r--r-- 0/0 2024-01-02T03:04:05 edgehead-1.2.3/wasm/b.bin',
  ]);
  // gzip -n: no file name (FLG 0) and no timestamp (MTIME 0) in the gzip header.
  const head = fs.readFileSync(tarball).subarray(0, 8);
  assert.deepEqual([head[0], head[1], head[3], head.readUInt32LE(4)], [0x1f, 0x8b, 0, 0]);
});

test('two runs give byte-identical files, also after the files were touched and their modes changed', () => {
  const a = packOk(path.join(work, 'repro-a'));
  const b = packOk(path.join(work, 'repro-b'));
  assert.equal(sha256(b), sha256(a));
  fs.utimesSync(path.join(bundle, 'assets', 'a.txt'), new Date(), new Date());
  fs.chmodSync(path.join(bundle, 'assets', 'z', 'deep.txt'), 0o664);
  const c = packOk(path.join(work, 'repro-c'));
  fs.chmodSync(path.join(bundle, 'assets', 'z', 'deep.txt'), 0o644);
  assert.equal(sha256(c), sha256(a));
  assert.equal(fs.readFileSync(`${c}.sha256`, 'utf8'), fs.readFileSync(`${a}.sha256`, 'utf8'));
  // SOURCE_DATE_EPOCH sets the date (and so the bytes).
  const d = packOk(path.join(work, 'repro-d'), [], { SOURCE_DATE_EPOCH: '1700000000' });
  assert.notEqual(sha256(d), sha256(a));
  const list = run('tar', ['--list', '--verbose', '--full-time', '-zf', d], { TZ: 'UTC' });
  assert.match(list.stdout.split('\n')[0]!, / 2023-11-14 22:13:20 edgehead-1\.2\.3\/$/);
});

test('the signature (--key or EDGEHEAD_PACKAGE_KEY) verifies with openssl and is what openssl pkeyutl -sign makes', () => {
  const out = path.join(work, 'signed');
  const r = pack(['--dist', bundle, '--out', out, '--key', key]);
  assert.equal(r.code, 0, r.stderr);
  const tarball = path.join(out, NAME);
  assert.match(r.stdout, new RegExp(`${NAME}\\.sig +64 B  Ed25519, key .*update\\.key`));
  assert.equal(fs.statSync(`${tarball}.sig`).size, 64);
  const v = run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', tarball, '-sigfile', `${tarball}.sig`]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /Signature Verified Successfully/);
  const theirs = path.join(work, 'openssl.sig');
  assert.equal(run('openssl', ['pkeyutl', '-sign', '-inkey', key, '-rawin', '-in', tarball, '-out', theirs]).code, 0);
  assert.deepEqual(fs.readFileSync(`${tarball}.sig`), fs.readFileSync(theirs));

  // The same from the environment; a later unsigned run removes the .sig that no longer belongs to the tarball.
  const out2 = path.join(work, 'signed-env');
  packOk(out2, [], { EDGEHEAD_PACKAGE_KEY: key });
  assert.deepEqual(fs.readFileSync(path.join(out2, `${NAME}.sig`)), fs.readFileSync(theirs));
  const unsigned = pack(['--dist', bundle, '--out', out2]);
  assert.equal(unsigned.code, 0, unsigned.stderr);
  assert.match(unsigned.stderr, /removed .*\.sig: it signed an earlier tarball/);
  assert.deepEqual(fs.readdirSync(out2).sort(), [NAME, `${NAME}.sha256`]);
});

test('update.sh --root accepts the signed package: sha256, signature, manifest, version folder, current switched', () => {
  const out = path.join(work, 'for-update');
  const tarball = packOk(out, ['--key', key]);
  const root = fakeRoot();
  const r = update(root, tarball, ['--signature', `${tarball}.sig`, '--pubkey', pub]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`sha256 ok: ${sha256(tarball)}  ${NAME}`));
  assert.match(r.stdout, /signature ok/);
  assert.match(r.stdout, /manifest\.json ok: 4 files, sizes and sha256 match/);
  assert.match(r.stdout, /version 1\.2\.3 \(edgehead\.cjs --version: 1\.2\.3\)/);
  const opt = path.join(root, 'opt', 'edgehead');
  assert.equal(fs.readlinkSync(path.join(opt, 'current')), VERSION);
  assert.equal(fs.readFileSync(path.join(opt, VERSION, 'assets', 'z', 'deep.txt'), 'utf8'), 'deep\n');
  assert.equal(fs.readFileSync(path.join(opt, VERSION, '.bundle.sha256'), 'utf8'), `${sha256(tarball)}  ${NAME}\n`);
});

test('a tampered tarball is refused by update.sh: by its sha256, and by the signature when the sha256 is redone', () => {
  const out = path.join(work, 'tampered');
  const tarball = packOk(out, ['--key', key]);
  const bytes = fs.readFileSync(tarball);
  bytes[bytes.length >> 1] ^= 0xff;
  fs.writeFileSync(tarball, bytes);
  const root = fakeRoot();
  const current = path.join(root, 'opt', 'edgehead', 'current');

  const bySum = update(root, tarball, ['--signature', `${tarball}.sig`, '--pubkey', pub]);
  assert.equal(bySum.code, 1, bySum.stdout + bySum.stderr);
  assert.match(bySum.stderr, /sha256 mismatch for .*edgehead-1\.2\.3\.tar\.gz: expected [0-9a-f]{64}, got [0-9a-f]{64}/);

  fs.writeFileSync(`${tarball}.sha256`, `${sha256(tarball)}  ${NAME}\n`);
  const bySig = update(root, tarball, ['--signature', `${tarball}.sig`, '--pubkey', pub]);
  assert.equal(bySig.code, 1, bySig.stdout + bySig.stderr);
  assert.match(bySig.stderr, /bad signature: .*\.sig does not verify/);
  assert.equal(fs.readlinkSync(current), '1.0.0');
  assert.ok(!fs.existsSync(path.join(root, 'opt', 'edgehead', VERSION)), 'nothing unpacked');
});

test('a missing or wrong signing key: one line naming it, exit 2, nothing written', () => {
  const out = path.join(work, 'bad-key');
  const missing = path.join(work, 'no-such.key');
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--key', missing], {}, /^package: error: cannot read the signing key .*no-such\.key \(--key\): no such file\n$/],
    [[], { EDGEHEAD_PACKAGE_KEY: missing }, /^package: error: cannot read the signing key .*no-such\.key \(EDGEHEAD_PACKAGE_KEY\): no such file\n$/],
    [['--key', pub], {}, /^package: error: the signing key .*update\.pub \(--key\) is a public key \(sign with the private key/],
    [['--key', path.join(bundle, 'manifest.json')], {}, /^package: error: the signing key .*manifest\.json \(--key\) is not a PEM private key/],
    [['--no-such-option'], {}, /^package: error: Unknown option '--no-such-option'/],
  ];
  for (const [args, env, re] of cases) {
    const r = pack(['--dist', bundle, '--out', out, ...args], env);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(r.stdout, '');
  }
  assert.ok(!fs.existsSync(out), 'no output folder');
});

test('a bundle whose files differ from its manifest.json is refused (exit 1), as update.sh would refuse it', () => {
  const copy = path.join(work, 'corrupt-bundle');
  fs.cpSync(bundle, copy, { recursive: true });
  fs.appendFileSync(path.join(copy, 'assets', 'a.txt'), 'x');
  const r = pack(['--dist', copy, '--out', path.join(work, 'corrupt')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^package: error: .*corrupt-bundle does not match its manifest\.json \(1 file\(s\): assets\/a\.txt: 3 bytes, manifest\.json says 2\)/);
  assert.ok(!fs.existsSync(path.join(work, 'corrupt')));
});
