/**
 * The webcam source against fake fswebcam executables (shell scripts): the command line node-webcam builds from the
 * settings, the temp file's life cycle, the timeout that kills a hung capture, and each failure fswebcam can show.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { type WebcamSettings, WebcamSource } from '../../agent/sources/webcam';
import { rejectsWith, waitUntil } from '../support/assertions';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const JPEG_FILE = path.join(FIXTURES, 'jpeg-baseline.jpg');
const JPEG = fs.readFileSync(JPEG_FILE);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-webcam-source-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** An executable fake fswebcam running this shell body; "$OUT" is its last argument (the output file). */
function fake(body: string): string {
  const file = path.join(tmp, `fswebcam-${n++}`);
  fs.writeFileSync(file, `#!/bin/sh\nfor OUT; do :; done\n${body}\n`, { mode: 0o755 });
  return file;
}

function webcam(bin: string | undefined, over: Partial<WebcamSettings> = {}): WebcamSource {
  return new WebcamSource({ ...defaultConfig().source.webcam, ...over }, { bin });
}


/** Whether pid is a live process (a zombie waiting for an init that may not reap it in a container counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('webcam source', { timeout: 60_000 }, () => {
  test('node-webcam turns the settings into fswebcam arguments; the frame is read and the temp file deleted', async () => {
    const argsFile = path.join(tmp, 'args.txt');
    const bin = fake(`printf '%s\\n' "$@" > '${argsFile}'; cp '${JPEG_FILE}' "$OUT"`);
    const src = webcam(bin, { device: "/dev/my cam's", width: 320, height: 240, skipFrames: 3, delaySec: 1, jpegQuality: 77 });
    await src.start();
    const f = await src.capture();
    assert.ok(Buffer.from(f.bytes).equals(JPEG));
    assert.equal(f.origin, "webcam:/dev/my cam's");
    assert.ok(f.captureMs >= 0);
    const args = fs.readFileSync(argsFile, 'utf8').trimEnd().split('\n');
    assert.deepEqual(args, ['-q', '-r', '320x240', '--jpeg', '77', '-D', '1', '-d', "/dev/my cam's", '--no-banner', '--skip', '3', src.tempFile]);
    assert.equal(path.dirname(src.tempFile), os.tmpdir());
    assert.equal(fs.existsSync(src.tempFile), false, 'temp file deleted after reading');
    await src.stop();
  });

  test('device "test" is passed as -d test; zero skip and delay are left out', () => {
    const src = webcam(undefined, { device: 'test', skipFrames: 0, delaySec: 0 });
    const line = src.commandLine();
    assert.match(line, /^fswebcam -q -r 640x480 --jpeg 90 -d test --no-banner /);
    assert.doesNotMatch(line, /--skip|-D /);
  });

  test('each instance has its own temp file', () => {
    assert.notEqual(webcam(undefined).tempFile, webcam(undefined).tempFile);
  });

  test('a hung fswebcam is killed after timeoutMs (its whole process group) and the source stays usable', async () => {
    const pidFile = path.join(tmp, 'hung.pid');
    // The real sleep is a grandchild of our shell: killing only the shell would leave it holding the pipes.
    const bin = fake(`sleep 1000 & echo $! > '${pidFile}'; wait`);
    const src = webcam(bin, { timeoutMs: 300 });
    await src.start();
    await rejectsWith(src.capture(), 'CAPTURE', /fswebcam on \/dev\/video0 did not finish within 300 ms and was killed/);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    assert.equal(alive(pid), false, 'the hung process is gone');
    await src.stop();
  });

  test('stop() kills a capture in flight', async () => {
    const pidFile = path.join(tmp, 'in-flight.pid');
    const src = webcam(fake(`echo $$ > '${pidFile}.tmp'; mv '${pidFile}.tmp' '${pidFile}'; exec sleep 1000`), { timeoutMs: 600_000 });
    await src.start();
    const capture = rejectsWith(src.capture(), 'CAPTURE', /stopped/);
    const pid = await waitUntil('the fake fswebcam to run', () => fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')));
    await src.stop();
    await capture;
    assert.equal(alive(pid), false, 'the capture process is gone');
  });

  test('fswebcam missing: a clear CAPTURE error', async () => {
    const src = webcam(path.join(tmp, 'no-such-fswebcam'));
    await src.start();
    await rejectsWith(src.capture(), 'CAPTURE', /^fswebcam not found: apt-get install fswebcam$/);
    await src.stop();
  });

  test('no device: fswebcam exits 0 without writing a file -> CAPTURE naming the device', async () => {
    const bin = fake(`printf '\\033[31mstat: No such file or directory\\n\\033[0m' >&2; exit 0`);
    const src = webcam(bin, { device: '/dev/video9' });
    await src.start();
    const err = await rejectsWith(src.capture(), 'CAPTURE', /^no webcam at \/dev\/video9: stat: No such file or directory$/);
    assert.match(err.hint ?? '', /source\.webcam\.device/);
    await src.stop();
  });

  test('an empty or non-JPEG output file, or a failing exit, is a CAPTURE error; the temp file is removed', async () => {
    const cases: [string, RegExp][] = [
      [': > "$OUT"', /did not write a JPEG \(0 bytes\)/],
      ['printf "GIF89a" > "$OUT"', /did not write a JPEG \(6 bytes starting 47 49 46 38\)/],
      ['echo "VIDIOC_DQBUF: Input/output error" >&2; exit 1', /fswebcam on \/dev\/video0 failed \(exit code 1\): VIDIOC_DQBUF: Input\/output error/],
      ['kill -SEGV $$', /failed \(exit code 139 \(SIGSEGV\)\)/],
    ];
    for (const [body, re] of cases) {
      const src = webcam(fake(body));
      await src.start();
      await rejectsWith(src.capture(), 'CAPTURE', re);
      assert.equal(fs.existsSync(src.tempFile), false, body);
      await src.stop();
    }
  });

  test('a stale file from an earlier run is never returned', async () => {
    const src = webcam(fake('exit 0'));
    fs.copyFileSync(JPEG_FILE, src.tempFile);
    await src.start();
    await rejectsWith(src.capture(), 'CAPTURE', /wrote no image/);
    await src.stop();
  });

  test('captures on one instance run one at a time', async () => {
    const log = path.join(tmp, 'overlap.log');
    const bin = fake(`echo start >> '${log}'; sleep 0.1; cp '${JPEG_FILE}' "$OUT"; echo end >> '${log}'`);
    const src = webcam(bin);
    await src.start();
    const frames = await Promise.all([src.capture(), src.capture(), src.capture()]);
    assert.equal(frames.length, 3);
    assert.equal(fs.readFileSync(log, 'utf8'), 'start\nend\n'.repeat(3));
    await src.stop();
  });

  test('a delay that cannot fit in the timeout is refused at start()', async () => {
    await rejectsWith(webcam(undefined, { delaySec: 10, timeoutMs: 10_000 }).start(), 'BAD_CONFIG', /source\.webcam\.timeoutMs \(10000\) must be longer than source\.webcam\.delaySec \(10 s\)/);
  });

  test('capture() before start() or after stop() fails with CAPTURE', async () => {
    const src = webcam(fake(`cp '${JPEG_FILE}' "$OUT"`));
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
    await src.start();
    await src.capture();
    await src.stop();
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
  });
});
