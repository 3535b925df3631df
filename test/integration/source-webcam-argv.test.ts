/**
 * The webcam source runs fswebcam without a shell: node-webcam still writes the command line, and the device and the
 * output file go in as whole argv entries. A fake fswebcam records its arguments; device strings full of shell syntax
 * must arrive as one literal argument, with nothing executed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { type WebcamSettings, WebcamSource } from '../../agent/sources/webcam';

const JPEG_FILE = path.resolve(__dirname, '../fixtures/images/jpeg-baseline.jpg');
const JPEG = fs.readFileSync(JPEG_FILE);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead webcam argv '));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fake fswebcam (in a folder whose name has spaces) writing its arguments, NUL-separated, to argsFile, and the
 * name of its parent process to argsFile.parent. */
function fakeFswebcam(argsFile: string): string {
  const file = path.join(tmp, 'fake fswebcam');
  const body = [
    '#!/bin/sh',
    'for OUT; do :; done',
    `printf '%s\\0' "$@" > '${argsFile}'`,
    `cat /proc/$PPID/comm > '${argsFile}.parent'`,
    `cp '${JPEG_FILE}' "$OUT"`,
  ];
  fs.writeFileSync(file, body.join('\n') + '\n', { mode: 0o755 });
  return file;
}

function webcam(bin: string, over: Partial<WebcamSettings>): WebcamSource {
  return new WebcamSource({ ...defaultConfig().source.webcam, ...over }, { bin });
}

describe('webcam source without a shell', () => {
  test('node-webcam\'s options become fswebcam\'s argv; device and output file are single arguments', () => {
    const src = webcam('/usr/bin/fswebcam', { device: '/dev/video2', width: 1280, height: 720, skipFrames: 0, delaySec: 2, jpegQuality: 60 });
    assert.deepEqual(src.argv(), {
      bin: '/usr/bin/fswebcam',
      args: ['-q', '-r', '1280x720', '--jpeg', '60', '-D', '2', '-d', '/dev/video2', '--no-banner', src.tempFile],
    });
    assert.equal(new WebcamSource(defaultConfig().source.webcam).argv().bin, 'fswebcam', 'node-webcam\'s executable name by default');
  });

  test('device strings with shell syntax reach fswebcam as one literal argument and nothing is executed', async () => {
    const marker = path.join(tmp, 'executed');
    const devices = [
      `/dev/video0; touch '${marker}'`,
      `$(touch '${marker}')`,
      `\`touch '${marker}'\``,
      `/dev/video0 && touch '${marker}' || touch '${marker}'`,
      `/dev/video0\ntouch '${marker}'`,
      `'"; touch '${marker}'; echo "`,
      '--help',
    ];
    const argsFile = path.join(tmp, 'args');
    const bin = fakeFswebcam(argsFile);
    for (const device of devices) {
      const src = webcam(bin, { device });
      await src.start();
      const frame = await src.capture();
      assert.ok(Buffer.from(frame.bytes).equals(JPEG));
      assert.equal(frame.origin, `webcam:${device}`);
      const args = fs.readFileSync(argsFile, 'utf8').split('\0').slice(0, -1);
      assert.equal(args[args.indexOf('-d') + 1], device, `the device as one argument: ${JSON.stringify(device)}`);
      assert.equal(args.length, src.argv().args.length, 'no argument split or added');
      assert.equal(fs.existsSync(marker), false, `nothing executed for ${JSON.stringify(device)}`);
      assert.equal(fs.readFileSync(`${argsFile}.parent`, 'utf8').trim(), fs.readFileSync('/proc/self/comm', 'utf8').trim(), 'started by this process, no shell between');
      await src.stop();
    }
  });
});
