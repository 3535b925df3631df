/**
 * The state dir (agent/state/state-dir.ts, state-lock.ts) and the run counter (agent/state/run-counter.ts):
 * issue 11 items 2, 3 and 7. The lock against live, dead, reused and previous-boot holders and against racing
 * processes; one-line errors naming stateDir and the real cause; modes; run numbers that never repeat.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, beforeEach, mock, test } from 'node:test';
import { Problems } from '../../agent/problems';
import { nextRunNumber } from '../../agent/state/run-counter';
import { openStateDir } from '../../agent/state/state-dir';
import { EdgeheadError } from '../../base/errors';
import { configureLogging } from '../../base/log';

const realFs = createRequire(__filename)('node:fs') as typeof fs;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-state-'));
fs.chmodSync(root, 0o755);
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(root, `s${n++}`);
const ROOT = path.resolve(__dirname, '..', '..');

const logs: string[] = [];
configureLogging({ level: 'info', format: 'text', sink: { write: (line) => logs.push(line) } });
beforeEach(() => void (logs.length = 0));
afterEach(() => mock.restoreAll());

const lockText = (dir: string) => fs.readFileSync(path.join(dir, 'lock'), 'utf8');
const startTicks = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
};
const bootId = () => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').replace(/[^0-9a-f]/g, '').slice(0, 8);
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;

test('open: creates the dir 0700 and a 0600 lock naming this process; a second open is refused; release frees it', () => {
  const dir = freshDir();
  const s = openStateDir(dir);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.match(lockText(dir), new RegExp(`^pid=${process.pid} `));
  assert.equal(fs.statSync(path.join(dir, 'lock')).mode & 0o777, 0o600);
  assert.throws(() => openStateDir(dir), (e) => e instanceof EdgeheadError && /is in use by this process/.test(e.message));
  s.release();
  s.release();
  assert.ok(!fs.existsSync(path.join(dir, 'lock')));
  openStateDir(dir).release();
  assert.deepEqual(fs.readdirSync(dir), [], 'no temporary files left');
});

test('an existing state dir readable by others is narrowed to 0700', () => {
  const dir = freshDir();
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  openStateDir(dir).release();
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
});

test('a lock held by a live process stops the start with one line naming its pid and the dir', async () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => child.once('spawn', r));
    fs.writeFileSync(path.join(dir, 'lock'), `pid=${child.pid} start=${startTicks(child.pid!)} boot=${bootId()}\n`);
    assert.throws(
      () => openStateDir(dir),
      (e) => e instanceof EdgeheadError && e.code === 'IO' && !e.message.includes('\n') && e.message.includes(`pid ${child.pid}`) && e.message.includes(dir),
    );
    assert.match(lockText(dir), new RegExp(`pid=${child.pid}`), 'the holder keeps its lock');
  } finally {
    child.kill('SIGKILL');
  }
});

for (const [name, line] of [
  ['a dead pid', () => `pid=${deadPid()}\n`],
  ['the previous boot', () => `pid=1 start=${startTicks(1)} boot=00000000\n`],
  ['a reused pid (another start time)', () => `pid=1 start=${startTicks(1) + 12345} boot=${bootId()}\n`],
  ['this pid (a restarted container)', () => `pid=${process.pid}\n`],
  ['unreadable content (a power cut before the line reached the disk)', () => ''],
] as const) {
  test(`a stale lock from ${name} is taken over, with a warning`, () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'lock'), line());
    const s = openStateDir(dir);
    assert.match(lockText(dir), new RegExp(`^pid=${process.pid} `));
    assert.match(logs.join('\n'), /took over a stale state dir lock/);
    assert.deepEqual(fs.readdirSync(dir), ['lock'], 'the stale lock is not left aside');
    s.release();
  });
}

test('racing processes: exactly one of 4 takes the lock, fresh or stale', async () => {
  const script = `
    const { openStateDir } = require(${JSON.stringify(path.join(ROOT, 'agent/state/state-dir.ts'))});
    try { openStateDir(process.argv[1]); process.stdout.write('won'); setTimeout(() => {}, 1500); }
    catch (e) { process.stdout.write(/in use/.test(e.message) ? 'lost' : 'error ' + e.message); }`;
  for (const stale of [false, true]) {
    const dir = freshDir();
    fs.mkdirSync(dir);
    if (stale) fs.writeFileSync(path.join(dir, 'lock'), `pid=${deadPid()}\n`);
    const outs = await Promise.all(
      Array.from({ length: 4 }, () => {
        const p = spawn(process.execPath, ['--import', 'tsx', '-e', script, dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        return new Promise<string>((r) => p.once('exit', () => r(out)));
      }),
    );
    assert.deepEqual(outs.sort(), ['lost', 'lost', 'lost', 'won'], `stale=${stale}`);
  }
});

test('a path under a regular file: one line naming stateDir and ENOTDIR', () => {
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'x');
  assert.throws(
    () => openStateDir(path.join(file, 'state')),
    (e) => e instanceof EdgeheadError && /^stateDir \S+a-file\/state cannot be created: ENOTDIR: not a directory$/.test(e.message) && !/tmp-/.test(e.message),
  );
  assert.throws(() => openStateDir(file), /stateDir \S+a-file is not a folder/);
});

const isRoot = process.getuid?.() === 0;
const canMount = (() => {
  if (!isRoot) return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-probe-'));
  const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
  if (ok) spawnSync('umount', [probe]);
  fs.rmSync(probe, { recursive: true, force: true });
  return ok;
})();

test('a read-only file system (a read-only tmpfs mount): one line naming stateDir and EROFS', { skip: !canMount && 'needs root to mount a tmpfs' }, () => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-ro-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
  try {
    fs.mkdirSync(path.join(mnt, 'state'));
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const existing = path.join(mnt, 'state');
    assert.throws(() => openStateDir(existing), (e) => e instanceof EdgeheadError && e.message === `stateDir ${existing} is not writable: EROFS: read-only file system`);
    const missing = path.join(mnt, 'new', 'state');
    assert.throws(() => openStateDir(missing), (e) => e instanceof EdgeheadError && e.message === `stateDir ${missing} cannot be created: EROFS: read-only file system`);
  } finally {
    execFileSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  }
});

const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
// nobody must be able to read the checkout (a clone inside a 0700 folder, as `mktemp -d` makes, is not).
const nobody =
  isRoot &&
  spawnSync('setpriv', [...asNobody, 'test', '-r', path.join(ROOT, 'agent', 'state', 'state-dir.ts')]).status === 0 &&
  spawnSync('setpriv', [...asNobody, 'test', '-r', path.join(ROOT, 'node_modules', 'tsx', 'package.json')]).status === 0;

test('a folder this user may not write (run as nobody with setpriv): one line naming stateDir and EACCES', { skip: !nobody && 'needs root, setpriv and a checkout that the nobody user can read' }, () => {
  const dir = freshDir();
  fs.mkdirSync(dir, { mode: 0o755 });
  const script = `
    const { openStateDir } = require(${JSON.stringify(path.join(ROOT, 'agent/state/state-dir.ts'))});
    for (const d of process.argv.slice(1)) { try { openStateDir(d); console.log('opened'); } catch (e) { console.log(e.message); } }`;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', '-e', script, dir, path.join(dir, 'sub')], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, HOME: '/tmp', TSX_TSCONFIG_PATH: path.join(ROOT, 'tsconfig.json') },
  });
  assert.deepEqual(r.stdout.trim().split('\n'), [`stateDir ${dir} is not writable: EACCES: permission denied`, `stateDir ${path.join(dir, 'sub')} cannot be created: EACCES: permission denied`], r.stderr);
});

test('a full disk (ENOSPC writing the lock line): the lock takes its symlink form; disk-full is reported', () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  const realWrite = realFs.writeSync;
  mock.method(realFs, 'writeSync', (fd: number, ...args: unknown[]) => {
    if (/lock\.tmp-/.test(realFs.readlinkSync(`/proc/self/fd/${fd}`))) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return (realWrite as (...a: unknown[]) => number)(fd, ...args);
  });
  const problems = new Problems();
  const s = openStateDir(dir, { problems });
  assert.ok(fs.lstatSync(path.join(dir, 'lock')).isSymbolicLink());
  assert.match(fs.readlinkSync(path.join(dir, 'lock')), new RegExp(`^pid=${process.pid} `));
  assert.ok(problems.has('disk-full'));
  assert.throws(() => openStateDir(dir), /in use/);
  s.release();
  assert.ok(!fs.existsSync(path.join(dir, 'lock')));
});

// ---- run counter ----

const NOW = Date.UTC(2026, 5, 1); // 1780272000 s
const run = (dir: string, over: Partial<Parameters<typeof nextRunNumber>[0]> = {}) =>
  nextRunNumber({ stateDir: dir, usedBefore: true, queuedRun: 0, now: NOW, ...over });

test('run numbers count up from 1 in a 0600 file', () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  assert.deepEqual([run(dir, { usedBefore: false }), run(dir), run(dir)], [1, 2, 3]);
  assert.equal(fs.readFileSync(path.join(dir, 'run'), 'utf8'), '3\n');
  assert.equal(fs.statSync(path.join(dir, 'run')).mode & 0o777, 0o600);
  assert.equal(run(dir, { queuedRun: 9 }), 10, 'a queued prediction with a higher run wins');
});

test('issue 11: a damaged run file does not restart at 1: it jumps to the clock, warns and reports run-counter', () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  for (let i = 0; i < 3; i++) run(dir);
  fs.writeFileSync(path.join(dir, 'run'), '\u0000\u0000\u0000');
  const problems = new Problems();
  const r = run(dir, { queuedRun: 3, problems });
  assert.equal(r, NOW / 1000);
  assert.ok(problems.has('run-counter'));
  assert.match(logs.join('\n'), /run counter: the run file \S+ is unreadable.*this run is 1780272000/);
  assert.equal(run(dir), NOW / 1000 + 1, 'and counts on from there');
});

test('unreadable with the clock not set: a random run in [2^40, 2^41); missing after use: a jump too; missing on a fresh dir: 1', () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'run'), 'garbage');
  assert.equal(run(dir, { now: 0, random: () => 0.5 }), 2 ** 40 + 2 ** 39);
  fs.rmSync(path.join(dir, 'run'));
  assert.equal(run(dir), NOW / 1000);
  fs.rmSync(path.join(dir, 'run'));
  assert.equal(run(dir, { usedBefore: false }), 1);
});

test('a full disk: the run file is overwritten in place; if even that fails the run jumps and run-counter is set', () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  run(dir, { usedBefore: false });
  run(dir);
  const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const realOpen = realFs.openSync;
  mock.method(realFs, 'openSync', (p: string, ...args: unknown[]) => {
    if (String(p).includes('.tmp-')) throw enospc();
    return (realOpen as (...a: unknown[]) => number)(p, ...args);
  });
  const problems = new Problems();
  assert.equal(run(dir, { problems }), 3);
  assert.equal(fs.readFileSync(path.join(dir, 'run'), 'utf8'), '3\n');
  assert.ok(problems.has('disk-full'));
  assert.ok(!problems.has('run-counter'));
  mock.method(realFs, 'openSync', () => {
    throw enospc();
  });
  const r = run(dir, { problems });
  assert.equal(r, NOW / 1000, 'not saved: the next start reads 3 again, so this one must not be 4');
  assert.ok(problems.has('run-counter'));
});
