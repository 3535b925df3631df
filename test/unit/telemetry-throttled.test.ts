/**
 * Raspberry Pi throttling: decoding the firmware's bit field, parsing both spellings (sysfs "50005", vcgencmd
 * "throttled=0x50005"), reading a fake sysfs file, and the telemetry field (valid against the protocol schema; null
 * where the file does not exist). Also the parsers behind `edgehead doctor`'s camera list. No process is run.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { parseListCameras } from '../../agent/sources/probe-libcamera';
import { parseV4l2Formats } from '../../agent/sources/probe-v4l2';
import { telemetrySnapshot, type TelemetrySources } from '../../agent/telemetry/snapshot';
import { FrameStats } from '../../agent/telemetry/stats';
import { decodeThrottled, parseThrottled, readThrottledSync } from '../../agent/telemetry/throttled';
import { libcameraLines, throttledLine, v4l2Lines } from '../../cli/commands/doctor';
import { TelemetryMessageSchema } from '../../protocol/messages';
import { schemaErrors } from '../../protocol/validate';
import { tmpDir } from '../support/cli';

before(async () => {
  await tf.setBackend('cpu'); // telemetry counts tensors
});

describe('throttled', () => {
  test('bits 0-3 are now, 16-19 since boot', () => {
    assert.deepEqual(decodeThrottled(0x50005), { now: ['under-voltage', 'throttled'], occurred: ['under-voltage', 'throttled'], raw: '0x50005' });
    assert.deepEqual(decodeThrottled(0), { now: [], occurred: [], raw: '0x0' });
    assert.deepEqual(decodeThrottled(0xf000f), {
      now: ['under-voltage', 'arm-frequency-capped', 'throttled', 'soft-temperature-limit'],
      occurred: ['under-voltage', 'arm-frequency-capped', 'throttled', 'soft-temperature-limit'],
      raw: '0xf000f',
    });
    assert.deepEqual(decodeThrottled(0x80000), { now: [], occurred: ['soft-temperature-limit'], raw: '0x80000' });
    assert.deepEqual(decodeThrottled(0xfff0fff0), { now: [], occurred: [], raw: '0xfff0fff0' }, 'other bits are not conditions');
  });

  test('parses the sysfs and the vcgencmd spelling, refuses anything else', () => {
    assert.equal(parseThrottled('50005\n'), 0x50005);
    assert.equal(parseThrottled('throttled=0x50005'), 0x50005);
    assert.equal(parseThrottled('0x0'), 0);
    for (const bad of ['', 'throttled=', 'error=1 error_msg="Command not registered"', '0x123456789', 'zz']) assert.equal(parseThrottled(bad), null, bad);
  });

  test('readThrottledSync: the file\'s value, null without the file or with garbage in it', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'get_throttled');
    assert.equal(readThrottledSync(file), null);
    fs.writeFileSync(file, '20002\n');
    assert.deepEqual(readThrottledSync(file), { now: ['arm-frequency-capped'], occurred: ['arm-frequency-capped'], raw: '0x20002' });
    fs.writeFileSync(file, 'garbage\n');
    assert.equal(readThrottledSync(file), null);
  });

  test('telemetry carries it (valid against the protocol schema), or null when the board does not report it', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'get_throttled');
    fs.writeFileSync(file, '50005\n');
    const sources: TelemetrySources = {
      now: Date.parse('2026-12-01T00:00:00Z'),
      startedAt: Date.parse('2026-12-01T00:00:00Z') - 60_000,
      deviceId: 'pi-test',
      stateDir: dir,
      frames: new FrameStats(),
      scheduler: { ticks: 0, skipped: 0, outsideWindow: 0, paused: 0 } as TelemetrySources['scheduler'],
      queue: { depth: 0, bytes: 0, dropped: 0, skipped: 0 } as TelemetrySources['queue'],
      broker: { connected: true, reconnects: 0 },
      backend: { name: 'cpu', simd: false, threads: 1 },
      problems: [],
      throttledFile: file,
    };
    const t = telemetrySnapshot(sources);
    assert.deepEqual(t.throttled, { now: ['under-voltage', 'throttled'], occurred: ['under-voltage', 'throttled'], raw: '0x50005' });
    assert.deepEqual(schemaErrors(TelemetryMessageSchema, t, 'telemetry'), []);
    const none = telemetrySnapshot({ ...sources, throttledFile: path.join(dir, 'absent') });
    assert.equal(none.throttled, null);
    assert.deepEqual(schemaErrors(TelemetryMessageSchema, none, 'telemetry'), []);
    const { throttled: _, ...older } = none;
    assert.deepEqual(schemaErrors(TelemetryMessageSchema, older, 'telemetry'), [], 'absent (agents before it existed) is valid');
    assert.notDeepEqual(schemaErrors(TelemetryMessageSchema, { ...none, throttled: { now: ['brownout'], occurred: [], raw: '0x1' } }, 'telemetry'), []);
  });

  test('doctor\'s line', () => {
    assert.equal(throttledLine({ state: decodeThrottled(0x50005), source: 'x' }), 'now: under-voltage, throttled; since boot: under-voltage, throttled (0x50005)');
    assert.equal(throttledLine({ state: decodeThrottled(0x10000), source: 'x' }), 'now: none; since boot: under-voltage (0x10000)');
    assert.equal(throttledLine({ state: decodeThrottled(0), source: 'x' }), 'none (0x0)');
    assert.match(throttledLine({ state: null, source: null }), /^not reported \(not a Raspberry Pi/);
    assert.equal(throttledLine({ state: null, source: null, error: 'vcgencmd exited with code 1: VCHI initialization failed' }), 'unknown: vcgencmd exited with code 1: VCHI initialization failed');
  });
});

describe('doctor\'s camera parsers', () => {
  test('v4l2-ctl --list-formats', () => {
    const text = "ioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture\n\n\t[0]: 'YUYV' (YUYV 4:2:2)\n\t[1]: 'MJPG' (Motion-JPEG, compressed)\n";
    assert.deepEqual(parseV4l2Formats(text), ['YUYV', 'MJPG']);
    assert.deepEqual(parseV4l2Formats('ioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture\n\n'), []);
    assert.deepEqual(
      v4l2Lines({ devices: [{ path: '/dev/video0', name: 'UVC Camera', formats: ['YUYV', 'MJPG'] }, { path: '/dev/video1', name: null, formats: [] }] }),
      ['/dev/video0 "UVC Camera": YUYV, MJPG', '/dev/video1: no capture formats'],
    );
    assert.deepEqual(v4l2Lines({ devices: [{ path: '/dev/video0', name: 'x', formats: null }], note: 'install v4l-utils' }), ['/dev/video0 "x": formats: install v4l-utils']);
    assert.deepEqual(v4l2Lines({ devices: [] }), ['none (no /dev/video*)']);
  });

  test('rpicam-hello --list-cameras', () => {
    const text = [
      'Available cameras',
      '-----------------',
      '0 : imx708_wide [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)',
      "    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]",
      '                             2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]',
      '',
      '1 : imx219 [3280x2464 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@80000/imx219@10)',
      "    Modes: 'SRGGB10_CSI2P' : 640x480 [103.33 fps - (1000, 752)/1280x960 crop]",
      "           'SRGGB8' : 640x480 [103.33 fps - (1000, 752)/1280x960 crop]",
      '',
    ].join('\n');
    const cams = parseListCameras(text);
    assert.deepEqual(cams, [
      { index: 0, sensor: 'imx708_wide', summary: '4608x2592 10-bit RGGB', path: '/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a', modes: ['1536x864@120.13', '2304x1296@56.03'] },
      { index: 1, sensor: 'imx219', summary: '3280x2464 10-bit RGGB', path: '/base/axi/pcie@120000/rp1/i2c@80000/imx219@10', modes: ['640x480@103.33'] },
    ]);
    assert.deepEqual(parseListCameras('No cameras available!\n'), []);
    assert.deepEqual(libcameraLines({ tool: 'rpicam-hello --list-cameras', cameras: cams.slice(1) }), ['1: imx219 3280x2464 10-bit RGGB, modes 640x480@103.33 (rpicam-hello --list-cameras)']);
    assert.deepEqual(libcameraLines({ tool: 'rpicam-hello --list-cameras', cameras: [] }), ['none (rpicam-hello --list-cameras)']);
    assert.match(libcameraLines({ tool: null, cameras: [] })[0]!, /^rpicam-apps not installed \(apt-get install rpicam-apps/);
  });
});
