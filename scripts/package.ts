/**
 * `npm run package`: the release files that firmware-scripts/update.sh and install.sh take, made from the bundle of
 * `npm run build` (dist/):
 *
 *   <out>/edgehead-<version>.tar.gz         dist/ in one folder, edgehead-<version>/ (update.sh accepts that layout)
 *   <out>/edgehead-<version>.tar.gz.sha256  `sha256sum` format with the bare file name (update.sh requires it)
 *   <out>/edgehead-<version>.tar.gz.sig     only with --key FILE or EDGEHEAD_PACKAGE_KEY: the raw 64-byte Ed25519
 *                                           signature of the tarball's bytes, exactly what
 *                                           `openssl pkeyutl -verify -rawin` (update.sh) checks
 *
 * <version> is dist/manifest.json's, which update.sh also reads. Options: --out DIR (default release/), --key FILE
 * (an Ed25519 private key, PKCS#8 PEM: `openssl genpkey -algorithm ed25519`), --no-build, --dist DIR (package another
 * bundle folder as it is, e.g. a modified copy in CI; never built). Relative paths are taken from where npm was run.
 *
 * dist/ is built first (`npm run build`) when it is missing or stale: no manifest.json, a manifest.json of another
 * version than package.json's, or a build input (package.json, package-lock.json, the source folders, assets/,
 * models/, scripts/build.ts) changed after it. --no-build packages dist/ as it is (and says when it looks stale).
 * Every file must match manifest.json's size and sha256, as update.sh checks on the device: a bundle it would refuse
 * is refused here.
 *
 * Reproducible: the same dist/ gives the same bytes (a new build does not: manifest.json records its build time).
 * The system's GNU tar (--sort=name, one mtime for every entry, owner and group 0, modes u=rwX,go=rX, gnu format: no
 * atime/ctime) piped into `gzip -n` (no name, no timestamp). The mtime is SOURCE_DATE_EPOCH when set, else the time
 * of the commit manifest.json names, else its builtAt. Not node's zlib + a tar writer of our own: GNU tar already
 * does all of this, and the devices unpack with it.
 *
 * Exit status: 0 done, 1 failed (build, tar, a bundle that does not match its manifest.json), 2 bad arguments
 * (unknown option, a signing key that cannot be read or is not an Ed25519 private key).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileDurable } from '../base/durable-file';
import { describeError, EdgeheadError } from '../base/errors';

const ROOT = path.resolve(__dirname, '..');
const PROG = 'package';
/** Where `npm run` was started (npm runs scripts from the package root). */
const CWD = process.env.INIT_CWD ?? process.cwd();
/** What `npm run build` reads: a change in any of them after dist/manifest.json was written makes dist/ stale. */
const BUILD_INPUTS = ['package.json', 'package-lock.json', 'base', 'protocol', 'mqtt', 'config', 'agent', 'operator', 'cli', 'assets', 'models', 'scripts/build.ts', 'scripts/convert-models.ts', 'scripts/shims'];
/** firmware-scripts/lib.sh valid_version: a version names a folder of /opt/edgehead. */
const VALID_VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$/;

const USAGE = `Usage: npm run package -- [--out DIR] [--key FILE] [--no-build] [--dist DIR]

  --out DIR    where to write edgehead-<version>.tar.gz, .sha256 (and .sig); default release/
  --key FILE   sign with this Ed25519 private key (PEM); default: $EDGEHEAD_PACKAGE_KEY when set
  --no-build   package dist/ as it is (default: npm run build first when dist/ is missing or stale)
  --dist DIR   package this bundle folder instead of dist/ (never built)`;

interface Manifest {
  version: string;
  commit?: string;
  builtAt?: string;
  files?: Record<string, { bytes: number; sha256: string }>;
}

const badArgs = (message: string, hint?: string) => new EdgeheadError('BAD_ARGS', message, hint ? { hint } : {});
const failed = (message: string, hint?: string) => new EdgeheadError('IO', message, hint ? { hint } : {});
const note = (text: string) => process.stderr.write(`${PROG}: ${text}\n`);
const shown = (p: string) => (path.relative(CWD, p).startsWith('..') ? p : path.relative(CWD, p) || '.');

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { out: { type: 'string' }, key: { type: 'string' }, 'no-build': { type: 'boolean' }, dist: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw badArgs(describeError(e), 'npm run package -- --help');
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // The key first: a typo should not cost a build.
  const keyArg = values.key ?? (process.env.EDGEHEAD_PACKAGE_KEY || undefined);
  const key = keyArg === undefined ? undefined : loadKey(path.resolve(CWD, keyArg), values.key !== undefined ? '--key' : 'EDGEHEAD_PACKAGE_KEY');
  const out = path.resolve(CWD, values.out ?? path.join(ROOT, 'release'));
  const dist = values.dist === undefined ? path.join(ROOT, 'dist') : path.resolve(CWD, values.dist);
  if (values.dist !== undefined && !fs.statSync(dist, { throwIfNoEntry: false })?.isDirectory()) throw badArgs(`--dist: no such folder ${values.dist}`);

  if (values.dist === undefined) {
    const stale = whyStale(dist);
    if (stale && values['no-build']) {
      if (!fs.existsSync(path.join(dist, 'edgehead.cjs'))) throw failed('dist/ holds no bundle', 'run npm run build, or leave out --no-build');
      note(`warning: dist/ looks stale (${stale}); packaging it anyway (--no-build)`);
    } else if (stale) {
      note(`building dist/ first: ${stale}`);
      const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', process.stderr, process.stderr] });
      if (r.status !== 0) throw failed(`npm run build failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`);
    }
  }

  const manifest = readManifest(dist);
  verifyFiles(dist, manifest);
  const mtime = sourceDateEpoch(manifest);
  const name = `edgehead-${manifest.version}`;
  const tarball = await tarGz(dist, name, mtime.seconds);
  const sha = createHash('sha256').update(tarball).digest('hex');

  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, `${name}.tar.gz`);
  writeFileDurable(file, tarball, { mode: 0o644 });
  writeFileDurable(`${file}.sha256`, `${sha}  ${name}.tar.gz\n`, { mode: 0o644 });
  let signed = '';
  if (key) {
    const sig = sign(null, tarball, key.privateKey);
    if (!verify(null, tarball, createPublicKey(key.privateKey), sig)) throw failed('the signature just made does not verify (a bug)');
    writeFileDurable(`${file}.sig`, sig, { mode: 0o644 });
    signed = `Ed25519, key ${shown(key.file)} (public key sha256 ${key.publicId})`;
  } else if (fs.existsSync(`${file}.sig`)) {
    fs.rmSync(`${file}.sig`);
    note(`removed ${shown(file)}.sig: it signed an earlier tarball (no --key this time)`);
  }

  const commit = manifest.commit && manifest.commit !== 'unknown' ? `, commit ${manifest.commit.slice(0, 12)}${manifest.commit.endsWith('-dirty') ? '-dirty' : ''}` : '';
  note(`${shown(dist)}: edgehead ${manifest.version}${commit}, ${Object.keys(manifest.files ?? {}).length} files; entries dated ${new Date(mtime.seconds * 1000).toISOString()} (${mtime.from})`);
  if (manifest.commit?.endsWith('-dirty')) note('warning: this bundle was built from a checkout with uncommitted changes');
  const rows: [string, string][] = [
    [shown(file), `${mb(tarball.length)}  sha256 ${sha}`],
    [`${shown(file)}.sha256`, `${fs.statSync(`${file}.sha256`).size} B`],
    ...(key ? [[`${shown(file)}.sig`, `${fs.statSync(`${file}.sig`).size} B  ${signed}`] as [string, string]] : []),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [p, info] of rows) process.stdout.write(`${p.padEnd(w)}  ${info}\n`);
  return 0;
}

interface SigningKey {
  file: string;
  privateKey: KeyObject;
  /** First 16 hex digits of the sha256 of the public key's DER (SPKI): to tell keys apart in the output. */
  publicId: string;
}

/** Reads and checks the signing key; every problem is a one-line BAD_ARGS error naming the file and where it came from. */
function loadKey(file: string, from: string): SigningKey {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : describeError(e);
    throw badArgs(`cannot read the signing key ${file} (${from}): ${why}`);
  }
  if (/-----BEGIN PUBLIC KEY-----/.test(pem)) {
    throw badArgs(`the signing key ${file} (${from}) is a public key`, 'sign with the private key (update.key); update.pub goes on the devices');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    // OpenSSL 3 reports a missing passphrase as "interrupted or cancelled": the PEM label says it plainly.
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(pem) || (e as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE') throw badArgs(`the signing key ${file} (${from}) is encrypted with a passphrase: not supported`, 'use an unencrypted key kept on the build machine');
    throw badArgs(`the signing key ${file} (${from}) is not a PEM private key`, 'expected Ed25519 PKCS#8 PEM from: openssl genpkey -algorithm ed25519 -out update.key');
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw badArgs(`the signing key ${file} (${from}) is not an Ed25519 key (it is ${(privateKey.asymmetricKeyType ?? 'unknown').toUpperCase()})`, 'update.sh verifies Ed25519 signatures only: openssl genpkey -algorithm ed25519');
  }
  const der = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return { file, privateKey, publicId: createHash('sha256').update(der).digest('hex').slice(0, 16) };
}

/** Why dist/ needs a build, or undefined when it is up to date. */
function whyStale(dist: string): string | undefined {
  const manifestFile = path.join(dist, 'manifest.json');
  if (!fs.existsSync(path.join(dist, 'edgehead.cjs')) || !fs.existsSync(manifestFile)) return `${shown(dist)} has no bundle`;
  let version: unknown;
  try {
    version = (JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { version?: unknown }).version;
  } catch {
    return `${shown(manifestFile)} is not valid JSON`;
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  if (version !== pkg.version) return `it holds version ${String(version)}, package.json says ${pkg.version}`;
  const builtMs = fs.statSync(manifestFile).mtimeMs;
  let newest = { ms: 0, file: '' };
  const visit = (p: string): void => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p)) if (!e.startsWith('.') && e !== 'node_modules') visit(path.join(p, e));
    } else if (st.mtimeMs > newest.ms) newest = { ms: st.mtimeMs, file: p };
  };
  for (const input of BUILD_INPUTS) visit(path.join(ROOT, input));
  return newest.ms > builtMs ? `${path.relative(ROOT, newest.file)} changed after the last build` : undefined;
}

function readManifest(dist: string): Manifest {
  const file = path.join(dist, 'manifest.json');
  if (!fs.existsSync(path.join(dist, 'edgehead.cjs'))) throw failed(`${shown(dist)} holds no edgehead.cjs: not a bundle of npm run build`);
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Manifest>;
  } catch (e) {
    throw failed(`${shown(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing (npm run build writes it)' : `not valid JSON: ${describeError(e)}`}`);
  }
  if (typeof m.version !== 'string' || !VALID_VERSION.test(m.version) || m.version === 'current' || m.version === 'firmware') {
    throw failed(`${shown(file)}: "version" ${JSON.stringify(m.version)} is not a plain version string (update.sh names a folder after it)`);
  }
  return m as Manifest;
}

/** Every file manifest.json lists has its size and sha256 (update.sh refuses the bundle otherwise). */
function verifyFiles(dist: string, m: Manifest): void {
  if (!m.files) {
    note(`warning: ${shown(path.join(dist, 'manifest.json'))} lists no files: the devices will not verify the contents`);
    return;
  }
  const bad: string[] = [];
  for (const [f, want] of Object.entries(m.files)) {
    if (path.isAbsolute(f) || f.split('/').includes('..')) {
      bad.push(`${f}: unsafe path`);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(path.join(dist, f));
    } catch {
      bad.push(`${f}: missing`);
      continue;
    }
    if (bytes.length !== want.bytes) bad.push(`${f}: ${bytes.length} bytes, manifest.json says ${want.bytes}`);
    else if (createHash('sha256').update(bytes).digest('hex') !== want.sha256) bad.push(`${f}: sha256 differs from manifest.json`);
  }
  if (bad.length) {
    throw failed(`${shown(dist)} does not match its manifest.json (${bad.length} file(s): ${bad.slice(0, 3).join('; ')}${bad.length > 3 ? '; ...' : ''})`, 'update.sh would refuse it: run npm run build again');
  }
}

/** The one mtime of every tar entry, and where it came from. */
function sourceDateEpoch(m: Manifest): { seconds: number; from: string } {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') {
    if (!/^\d{1,12}$/.test(env)) throw badArgs(`SOURCE_DATE_EPOCH must be whole seconds since 1970 (got "${env}")`);
    return { seconds: Number(env), from: 'SOURCE_DATE_EPOCH' };
  }
  const commit = m.commit?.replace(/-dirty$/, '');
  if (commit && /^[0-9a-f]{7,40}$/.test(commit)) {
    try {
      const out = execFileSync('git', ['show', '-s', '--format=%ct', commit], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (/^\d+$/.test(out)) return { seconds: Number(out), from: `the time of commit ${commit.slice(0, 12)}` };
    } catch {
      // not a git checkout, or a commit this checkout does not have: the build time below
    }
  }
  const built = m.builtAt ? Date.parse(m.builtAt) : NaN;
  if (Number.isFinite(built)) return { seconds: Math.floor(built / 1000), from: "manifest.json's builtAt" };
  throw failed('no date for the tar entries: manifest.json names no commit this checkout has and no builtAt', 'set SOURCE_DATE_EPOCH');
}

/** `tar -c ... | gzip -n -9` of `dir` as the folder `name`, in memory. */
async function tarGz(dir: string, name: string, mtime: number): Promise<Buffer> {
  const v = spawnSync('tar', ['--version'], { encoding: 'utf8' });
  if (v.error || !/GNU tar/.test(v.stdout ?? '')) throw failed(`needs GNU tar (for --sort=name): ${v.error ? v.error.message : (v.stdout ?? '').split('\n')[0]}`, 'apt-get install tar');
  const tarArgs = [
    '--create', '--format=gnu', '--sort=name', `--mtime=@${mtime}`, '--owner=0', '--group=0', '--numeric-owner',
    '--mode=u=rwX,go=rX', `--transform=s,^\\.,${name},S`, '-C', dir, '.',
  ];
  const env = { ...process.env, LC_ALL: 'C' };
  const tar = spawn('tar', tarArgs, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const gzip = spawn('gzip', ['-n', '-9'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  tar.stdout.pipe(gzip.stdin);
  const chunks: Buffer[] = [];
  gzip.stdout.on('data', (c: Buffer) => chunks.push(c));
  const errs = { tar: '', gzip: '' };
  tar.stderr.on('data', (d) => (errs.tar += d));
  gzip.stderr.on('data', (d) => (errs.gzip += d));
  const exit = (p: ChildProcess, what: string) =>
    new Promise<void>((resolve, reject) => {
      p.on('error', (e) => reject(failed(`cannot run ${what}: ${e.message}`)));
      p.on('close', (code, signal) =>
        code === 0 ? resolve() : reject(failed(`${what} failed (${code ?? signal}): ${(what === 'tar' ? errs.tar : errs.gzip).trim().split('\n')[0] ?? ''}`)));
    });
  await Promise.all([exit(tar, 'tar'), exit(gzip, 'gzip')]);
  return Buffer.concat(chunks);
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MB`;

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${PROG}: error: ${describeError(e)}\n`);
    if (!(e instanceof EdgeheadError)) process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(e instanceof EdgeheadError && e.code === 'BAD_ARGS' ? 2 : 1);
  },
);
