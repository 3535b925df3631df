/** The directory source: sorted recursive listing, wrap-around, rescan at each wrap, bad folders. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { DirectorySource, listImages } from '../../agent/sources/directory';
import { ManualClock } from '../../base/clock';
import { rejectsWith } from '../support/assertions';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const JPEG = fs.readFileSync(path.join(FIXTURES, 'jpeg-baseline.jpg'));
const PNG = fs.readFileSync(path.join(FIXTURES, 'png-rgb8.png'));

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-dir-source-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;

/** A fresh folder holding these files (relative path -> content). */
function folder(files: Record<string, Uint8Array | string>): string {
  const dir = path.join(tmpRoot, `case${n++}`);
  fs.mkdirSync(dir);
  for (const [rel, content] of Object.entries(files)) write(dir, rel, content);
  return dir;
}

function write(dir: string, rel: string, content: Uint8Array | string): void {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), content);
}

function source(dir: string | undefined, clock = new ManualClock(1000)): DirectorySource {
  const settings = defaultConfig().source.directory;
  return new DirectorySource(dir === undefined ? settings : { ...settings, path: dir }, { clock });
}

async function origins(src: DirectorySource, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push((await src.capture()).origin);
  return out;
}


describe('directory source', { timeout: 60_000 }, () => {
  test('cycles JPEG/PNG files in sorted relative-path order (sub-folders included) and wraps around', async () => {
    const dir = folder({
      'b/2.png': PNG,
      'a.jpg': JPEG,
      'b/1.jpg': JPEG,
      'c.JPEG': JPEG,
      'b/sub/z.jpeg': JPEG,
      'notes.txt': 'not an image',
      '.hidden.jpg': 'AppleDouble junk',
      '.git/x.jpg': JPEG,
    });
    const src = source(dir);
    await src.start();
    const order = ['a.jpg', 'b/1.jpg', 'b/2.png', 'b/sub/z.jpeg', 'c.JPEG'].map((f) => `directory:${f}`);
    assert.deepEqual(await origins(src, 12), [...order, ...order, ...order.slice(0, 2)]);
    await src.stop();
  });

  test('frames carry the file bytes, the clock time and the time the read took', async () => {
    const clock = new ManualClock(5000);
    const src = source(folder({ 'one.png': PNG }), clock);
    await src.start();
    const f = await src.capture();
    assert.deepEqual(Buffer.from(f.bytes), PNG);
    assert.equal(f.capturedAt, 5000);
    assert.equal(f.captureMs, 0);
    assert.equal(f.origin, 'directory:one.png');
    await src.stop();
  });

  test('the listing is re-read at each wrap: added files join, removed files leave', async () => {
    const dir = folder({ 'a.jpg': JPEG, 'c.jpg': JPEG });
    const src = source(dir);
    await src.start();
    assert.deepEqual(await origins(src, 1), ['directory:a.jpg']);
    // Changes in the middle of a round show from the next round on.
    write(dir, 'b.jpg', JPEG);
    fs.rmSync(path.join(dir, 'a.jpg'));
    assert.deepEqual(await origins(src, 1), ['directory:c.jpg']);
    assert.deepEqual(await origins(src, 4), ['directory:b.jpg', 'directory:c.jpg', 'directory:b.jpg', 'directory:c.jpg']);
    await src.stop();
  });

  test('a file deleted before its turn is skipped', async () => {
    const dir = folder({ 'a.jpg': JPEG, 'b.jpg': JPEG, 'c.jpg': JPEG });
    const src = source(dir);
    await src.start();
    await src.capture();
    fs.rmSync(path.join(dir, 'b.jpg'));
    assert.deepEqual(await origins(src, 2), ['directory:c.jpg', 'directory:a.jpg']);
    await src.stop();
  });

  test('a folder emptied while running fails captures with CAPTURE, and recovers when images come back', async () => {
    const dir = folder({ 'a.jpg': JPEG });
    const src = source(dir);
    await src.start();
    await src.capture();
    fs.rmSync(path.join(dir, 'a.jpg'));
    await rejectsWith(src.capture(), 'CAPTURE', /no JPEG or PNG files left/);
    write(dir, 'new.png', PNG);
    assert.equal((await src.capture()).origin, 'directory:new.png');
    fs.rmSync(dir, { recursive: true });
    await rejectsWith(
      (async () => {
        await src.capture();
        return src.capture();
      })(),
      'CAPTURE',
      /cannot list/,
    );
    await src.stop();
  });

  test('a .jpg that is not an image fails its capture only', async () => {
    const src = source(folder({ 'a.jpg': '<html>', 'b.jpg': JPEG }));
    await src.start();
    await rejectsWith(src.capture(), 'CAPTURE', /a\.jpg is not a JPEG or PNG image \(6 bytes starting 3c 68 74 6d\)/);
    assert.equal((await src.capture()).origin, 'directory:b.jpg');
    await src.stop();
  });

  test('missing, empty, image-less or non-folder paths fail start() with BAD_CONFIG', async () => {
    await rejectsWith(source(path.join(tmpRoot, 'does-not-exist')).start(), 'BAD_CONFIG', /source\.directory\.path: cannot read folder .*does-not-exist/);
    await rejectsWith(source(folder({})).start(), 'BAD_CONFIG', /source\.directory\.path: no JPEG or PNG files in/);
    await rejectsWith(source(folder({ 'x.txt': 'hi', 'sub/y.gif': 'GIF89a' })).start(), 'BAD_CONFIG', /no JPEG or PNG files/);
    const file = path.join(folder({ 'a.jpg': JPEG }), 'a.jpg');
    await rejectsWith(source(file).start(), 'BAD_CONFIG', /not a folder/);
  });

  test('capture() before start() or after stop() fails with CAPTURE', async () => {
    const src = source(folder({ 'a.jpg': JPEG }));
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
    await src.start();
    await src.capture();
    await src.stop();
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
  });

  test('without a path it replays the bundled sample frames', async () => {
    const src = source(undefined);
    await src.start();
    const f = await src.capture();
    assert.equal(f.origin, `directory:${(await listImages(src.folder))[0]}`);
    assert.match(f.origin, /^directory:fish\/fish1\.jpg$/);
    assert.equal(src.folder, path.resolve(__dirname, '../../assets/samples'));
    await src.stop();
  });

  test('symbolic links are followed, a link cycle is listed once', async () => {
    const dir = folder({ 'real/a.jpg': JPEG });
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'));
    fs.symlinkSync(dir, path.join(dir, 'real', 'loop'));
    fs.symlinkSync(path.join(dir, 'real', 'a.jpg'), path.join(dir, 'b.jpg'));
    fs.symlinkSync(path.join(dir, 'gone.jpg'), path.join(dir, 'dangling.jpg'));
    // real/ is reached through link/ first (name order) and listed once; real/loop leads back to the root: skipped.
    assert.deepEqual(await listImages(dir), ['b.jpg', 'link/a.jpg']);
  });
});
