import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, mock, test } from 'node:test';
import { fsyncDir, fsyncDirAsync, stageFile, writeFileDurable } from '../../base/durable-file';

/** The node:fs module object itself (an import namespace cannot be patched): what base/durable-file.ts calls. */
const realFs = createRequire(__filename)('node:fs') as typeof fs;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-durable-'));
process.once('exit', () => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => fs.mkdtempSync(path.join(root, `${n++}-`));

describe('writeFileDurable', () => {
  afterEach(() => mock.restoreAll());

  test('writes a new file and replaces an existing one, leaving no temporary file', () => {
    const dir = freshDir();
    const file = path.join(dir, 'state.json');
    writeFileDurable(file, '{"a":1}');
    assert.equal(fs.readFileSync(file, 'utf8'), '{"a":1}');
    writeFileDurable(file, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...fs.readFileSync(file)], [1, 2, 3]);
    assert.deepEqual(fs.readdirSync(dir), ['state.json']);
  });

  test('fsyncs the data before the rename and the folder after it', () => {
    const dir = freshDir();
    const file = path.join(dir, 'run');
    const calls: string[] = [];
    const fdPaths = new Map<number, string>();
    const open = realFs.openSync;
    mock.method(realFs, 'openSync', (p: fs.PathLike, ...rest: unknown[]) => {
      const fd = (open as (...a: unknown[]) => number)(p, ...rest);
      fdPaths.set(fd, String(p));
      return fd;
    });
    const fsync = realFs.fsyncSync;
    mock.method(realFs, 'fsyncSync', (fd: number) => {
      calls.push(`fsync ${fdPaths.get(fd) === dir ? 'dir' : 'file'}`);
      fsync(fd);
    });
    const rename = realFs.renameSync;
    mock.method(realFs, 'renameSync', (a: fs.PathLike, b: fs.PathLike) => {
      calls.push('rename');
      rename(a, b);
    });
    writeFileDurable(file, '7\n');
    assert.deepEqual(calls, ['fsync file', 'rename', 'fsync dir']);
    assert.equal(fs.readFileSync(file, 'utf8'), '7\n');
  });

  test('mode is applied whatever the umask', () => {
    const dir = freshDir();
    const old = process.umask(0o077);
    try {
      writeFileDurable(path.join(dir, 'key.pub'), 'pub', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    writeFileDurable(path.join(dir, 'key'), 'secret', { mode: 0o600 });
    assert.equal(fs.statSync(path.join(dir, 'key.pub')).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.join(dir, 'key')).mode & 0o777, 0o600);
  });

  test('a failed rename keeps the old content and removes the temporary file', () => {
    const dir = freshDir();
    const target = path.join(dir, 'taken');
    fs.mkdirSync(path.join(target, 'child'), { recursive: true }); // a non-empty folder cannot be replaced by a file
    assert.throws(() => writeFileDurable(target, 'x'));
    assert.ok(fs.statSync(target).isDirectory());
    assert.deepEqual(fs.readdirSync(dir), ['taken']);
  });

  test('a missing folder is an error, not a silent success', () => {
    assert.throws(() => writeFileDurable(path.join(freshDir(), 'no', 'such', 'file'), 'x'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  });
});

describe('stageFile', () => {
  test('the target keeps its old content until commit; abort leaves it untouched', () => {
    const dir = freshDir();
    const file = path.join(dir, 'active.head');
    fs.writeFileSync(file, 'old');
    const staged = stageFile(file, 'new');
    assert.equal(path.dirname(staged.tmp), dir, 'the temporary file is in the same folder (rename stays atomic)');
    assert.equal(fs.readFileSync(file, 'utf8'), 'old');
    assert.equal(fs.readFileSync(staged.tmp, 'utf8'), 'new');
    staged.commit();
    assert.equal(fs.readFileSync(file, 'utf8'), 'new');
    const aborted = stageFile(file, 'newer');
    aborted.abort();
    assert.equal(fs.readFileSync(file, 'utf8'), 'new');
    assert.deepEqual(fs.readdirSync(dir), ['active.head']);
  });
});

describe('fsyncDir', () => {
  test('a folder that cannot be opened is ignored (the rename itself is what is atomic)', async () => {
    const missing = path.join(freshDir(), 'gone');
    assert.doesNotThrow(() => fsyncDir(missing));
    await assert.doesNotReject(fsyncDirAsync(missing));
  });
});
