/** source.rpicam: the schema refuses settings that cannot work (all at once, with their key), env overrides, the
 * rpicam-still argv built from the settings, and createFrameSource choosing the rpicam source. No process is run. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RpicamSource, createFrameSource } from '../../agent/sources';
import { rpicamArgs } from '../../agent/sources/rpicam';
import { defaultConfig } from '../../config/defaults';
import { checkConfig } from '../../config/load';

const base = () => defaultConfig().source.rpicam;

describe('source.rpicam settings', () => {
  test('defaults: rpicam-still, camera 0, 640x480, automatic exposure and white balance', () => {
    const d = base();
    assert.equal(defaultConfig().source.type, 'directory', 'not the default source');
    assert.deepEqual(
      { command: d.command, camera: d.camera, width: d.width, height: d.height, awb: d.awb, shutterUs: d.shutterUs, gain: d.gain, extraArgs: d.extraArgs },
      { command: 'rpicam-still', camera: 0, width: 640, height: 480, awb: 'auto', shutterUs: 0, gain: 0, extraArgs: [] },
    );
  });

  test('bad settings are refused, every one with its key', () => {
    const rpicam = {
      command: 'rpicam-still -t 0',
      camera: -1,
      jpegQuality: 101,
      rotation: 90,
      awb: 'sunny',
      shutterUs: 1.5,
      extraArgs: ['--ev', '-0.5', '-o', '--signal', '--output=/tmp/x.jpg', '', '--width'],
      bogus: true,
    };
    const { errors } = checkConfig({ data: { version: 1, source: { type: 'rpicam', rpicam } }, env: {} });
    const rule = 'must not be empty, a short option, or an option the rpicam source sets itself (--signal, --output, --width...: use the source.rpicam settings)';
    assert.deepEqual(errors, [
      'source.rpicam.bogus: unknown key',
      'source.rpicam.command: must be a command name or path without spaces, e.g. "rpicam-still" or "libcamera-still" (got "rpicam-still -t 0")',
      'source.rpicam.camera: must be >= 0 (got -1)',
      'source.rpicam.jpegQuality: must be <= 100 (got 101)',
      'source.rpicam.rotation: must be one of: 0, 180 (got 90)',
      'source.rpicam.awb: must be one of: auto, incandescent, tungsten, fluorescent, indoor, daylight, cloudy (got "sunny")',
      'source.rpicam.shutterUs: must be an integer (got 1.5)',
      `source.rpicam.extraArgs[2]: ${rule} (got "-o")`,
      `source.rpicam.extraArgs[3]: ${rule} (got "--signal")`,
      `source.rpicam.extraArgs[4]: ${rule} (got "--output=/tmp/x.jpg")`,
      `source.rpicam.extraArgs[5]: ${rule} (got "")`,
      `source.rpicam.extraArgs[6]: ${rule} (got "--width")`,
    ]);
    assert.equal(checkConfig({ data: { version: 1, source: { type: 'webcam', rpicam: { rotation: 90 } } }, env: {} }).errors.length, 1, 'checked whatever source.type is');
  });

  test('good settings, and environment overrides', () => {
    const { errors, config } = checkConfig({
      data: { version: 1, source: { type: 'rpicam', rpicam: { command: '/usr/bin/libcamera-still', rotation: 180, extraArgs: ['--ev', '-0.5', '--tuning-file', '/usr/share/libcamera/ipa/rpi/vc4/imx219_noir.json'] } } },
      env: { EDGEHEAD_SOURCE_RPICAM_CAMERA: '1', EDGEHEAD_SOURCE_RPICAM_HFLIP: 'true' },
    });
    assert.deepEqual(errors, []);
    assert.equal(config!.source.rpicam.camera, 1);
    assert.equal(config!.source.rpicam.hflip, true);
    assert.equal(config!.source.rpicam.command, '/usr/bin/libcamera-still');
  });
});

describe('rpicam-still argv', () => {
  test('the managed options first, then the optional ones only when set, then extraArgs; a % in the output path is doubled', () => {
    assert.deepEqual(rpicamArgs(base(), '/tmp/a%b/still.jpg', '/tmp/a%b/latest.jpg'), [
      '-t', '0', '--signal', '-n', '--camera', '0', '--width', '640', '--height', '480', '-q', '90', '--encoding', 'jpg', '--thumb', 'none',
      '-o', '/tmp/a%%b/still.jpg', '--latest', '/tmp/a%b/latest.jpg',
    ]);
    const all = { ...base(), camera: 1, rotation: 180 as const, hflip: true, vflip: true, awb: 'cloudy' as const, shutterUs: 20000, gain: 2.5, extraArgs: ['--ev', '-0.5'] };
    assert.deepEqual(rpicamArgs(all, '/o.jpg', '/l.jpg').slice(20), ['--rotation', '180', '--hflip', '--vflip', '--awb', 'cloudy', '--shutter', '20000', '--gain', '2.5', '--ev', '-0.5']);
  });

  test('createFrameSource builds an RpicamSource for type rpicam (nothing runs before start())', () => {
    const src = createFrameSource({ ...defaultConfig().source, type: 'rpicam' });
    assert.ok(src instanceof RpicamSource);
    assert.equal(src.type, 'rpicam');
    assert.equal(src.pid, undefined);
    assert.equal(src.tempDir, undefined);
  });
});
