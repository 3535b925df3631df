/**
 * `edgehead doctor`'s probes against fakes: a fake /dev + /sys tree (doctor --root), test/support/fakes/v4l2-ctl,
 * rpicam-hello (the fake rpicam-still under that name) and vcgencmd on PATH, a TCP server on 127.0.0.1 as the broker;
 * then the CLI itself, text and --json.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { probeLibcamera } from '../../agent/sources/probe-libcamera';
import { probeV4l2 } from '../../agent/sources/probe-v4l2';
import { THROTTLED_SYSFS, probeThrottled } from '../../agent/telemetry/throttled';
import { probeBroker } from '../../mqtt/probe';
import { runCli, tmpDir } from '../support/cli';

const FAKES = path.resolve(__dirname, '../support/fakes');
const tmp = tmpDir('edgehead-doctor-');

/** An executable running `target` with these environment variables. */
function wrapper(name: string, target: string, env: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'bin-'));
  const file = path.join(dir, name);
  const vars = Object.entries(env).map(([k, v]) => `${k}='${v}' `).join('');
  fs.writeFileSync(file, `#!/bin/sh\n${vars}exec '${target}' "$@"\n`, { mode: 0o755 });
  return file;
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** A root with three V4L2 nodes (a webcam's capture and metadata nodes, a codec) and the firmware's get_throttled. */
function fakeRoot(throttled?: string): string {
  const root = fs.mkdtempSync(path.join(tmp, 'root-'));
  write(path.join(root, 'dev/video0'), 'YUYV:YUYV 4:2:2\nMJPG:Motion-JPEG, compressed\n');
  write(path.join(root, 'dev/video1'), '');
  write(path.join(root, 'dev/video10'), 'NV12:Y/UV 4:2:0\n');
  write(path.join(root, 'dev/media0'), '');
  write(path.join(root, 'sys/class/video4linux/video0/name'), 'UVC Camera (046d:0825)\n');
  write(path.join(root, 'sys/class/video4linux/video1/name'), 'UVC Camera (046d:0825)\n');
  if (throttled !== undefined) write(path.join(root, THROTTLED_SYSFS), throttled);
  return root;
}

let server: net.Server;
let openPort = 0;
let closedPort = 0;
before(async () => {
  server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  openPort = (server.address() as AddressInfo).port;
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
});
after(async () => {
  await new Promise((r) => server.close(r));
});

describe('doctor probes', () => {
  test('V4L2: every /dev/videoN in numeric order, its sysfs name, formats from v4l2-ctl', async () => {
    const root = fakeRoot();
    const opts = { devDir: path.join(root, 'dev'), sysDir: path.join(root, 'sys/class/video4linux'), v4l2ctl: path.join(FAKES, 'v4l2-ctl') };
    assert.deepEqual(await probeV4l2(opts), {
      devices: [
        { path: path.join(root, 'dev/video0'), name: 'UVC Camera (046d:0825)', formats: ['YUYV', 'MJPG'] },
        { path: path.join(root, 'dev/video1'), name: 'UVC Camera (046d:0825)', formats: [] },
        { path: path.join(root, 'dev/video10'), name: null, formats: ['NV12'] },
      ],
    });
    const without = await probeV4l2({ ...opts, v4l2ctl: path.join(tmp, 'no-v4l2-ctl') });
    assert.equal(without.note, 'install v4l-utils');
    assert.deepEqual(without.devices.map((d) => d.formats), [null, null, null]);
    assert.deepEqual(await probeV4l2({ devDir: path.join(tmp, 'no-dev'), sysDir: path.join(tmp, 'no-sys') }), { devices: [] });
  });

  test('libcamera: the cameras rpicam-hello --list-cameras lists; none; not installed', async () => {
    const two = await probeLibcamera({ tools: [wrapper('rpicam-hello', path.join(FAKES, 'rpicam-still'), { FAKE_RPICAM_CAMERAS: '2' })] });
    assert.equal(two.tool, 'rpicam-hello --list-cameras');
    assert.deepEqual(two.cameras.map((c) => `${c.index}:${c.sensor}`), ['0:imx708', '1:imx219']);
    assert.deepEqual(two.cameras[0]!.modes, ['1536x864@120.13', '2304x1296@56.03', '4608x2592@14.35']);
    const none = await probeLibcamera({ tools: [wrapper('rpicam-hello', path.join(FAKES, 'rpicam-still'), { FAKE_RPICAM_CAMERAS: '0' })] });
    assert.deepEqual(none, { tool: 'rpicam-hello --list-cameras', cameras: [] });
    // The first of the names found on PATH: here only rpicam-still.
    const onPath = await probeLibcamera({ pathEnv: path.dirname(wrapper('rpicam-still', path.join(FAKES, 'rpicam-still'))) });
    assert.equal(onPath.tool, 'rpicam-still --list-cameras');
    assert.equal(onPath.cameras.length, 1);
    assert.deepEqual(await probeLibcamera({ pathEnv: path.join(tmp, 'empty') }), { tool: null, cameras: [] });
    const broken = await probeLibcamera({ tools: [wrapper('rpicam-hello', '/bin/false')] });
    assert.match(broken.error ?? '', /exited with code 1/);
  });

  test('throttling: sysfs first, then vcgencmd; nothing on other machines', async () => {
    const root = fakeRoot('50005\n');
    const vcgencmd = wrapper('vcgencmd', path.join(FAKES, 'vcgencmd'), { FAKE_THROTTLED: '0x20002' });
    const sysfsFile = path.join(root, THROTTLED_SYSFS);
    assert.deepEqual(await probeThrottled({ sysfsFile, vcgencmd }), {
      state: { now: ['under-voltage', 'throttled'], occurred: ['under-voltage', 'throttled'], raw: '0x50005' },
      source: sysfsFile,
    });
    const absent = path.join(tmp, 'no-get_throttled');
    assert.deepEqual(await probeThrottled({ sysfsFile: absent, vcgencmd }), {
      state: { now: ['arm-frequency-capped'], occurred: ['arm-frequency-capped'], raw: '0x20002' },
      source: 'vcgencmd get_throttled',
    });
    assert.deepEqual(await probeThrottled({ sysfsFile: absent, vcgencmd: path.join(tmp, 'no-vcgencmd') }), { state: null, source: null });
    const failing = await probeThrottled({ sysfsFile: absent, vcgencmd: wrapper('vcgencmd', path.join(FAKES, 'vcgencmd'), { FAKE_VCGENCMD_FAIL: '1' }) });
    assert.equal(failing.state, null);
    assert.match(failing.error ?? '', /exited with code 1: VCHI initialization failed$/);
  });

  test('broker: TCP connect ok or failed with the error; loopback with embeddedBroker auto: embedded', async () => {
    const ok = await probeBroker({ url: `mqtts://user:s3cret@127.0.0.1:${openPort}`, embeddedBroker: 'off' });
    assert.equal(ok.status, 'ok');
    assert.equal(ok.url, `mqtts://user:***@127.0.0.1:${openPort}`, 'password redacted');
    assert.match(ok.detail, new RegExp(`^127\\.0\\.0\\.1:${openPort} accepts TCP connections \\(\\d+ ms; TLS and credentials not checked\\)$`));
    const refused = await probeBroker({ url: `mqtt://127.0.0.1:${closedPort}`, embeddedBroker: 'off' });
    assert.deepEqual(refused, { url: `mqtt://127.0.0.1:${closedPort}`, status: 'failed', detail: `connect ECONNREFUSED 127.0.0.1:${closedPort}` });
    const embedded = await probeBroker({ url: `mqtt://127.0.0.1:${closedPort}`, embeddedBroker: 'auto' });
    assert.equal(embedded.status, 'embedded');
    assert.match(embedded.detail, /the agent starts its embedded broker there/);
    assert.equal((await probeBroker({ url: `mqtt://localhost:${openPort}`, embeddedBroker: 'auto' })).status, 'ok', 'a broker already listening wins');
  });
});

describe('edgehead doctor (CLI)', { timeout: 180_000 }, () => {
  const bin = fs.mkdtempSync(path.join(tmp, 'path-'));
  fs.symlinkSync(path.join(FAKES, 'v4l2-ctl'), path.join(bin, 'v4l2-ctl'));
  fs.symlinkSync(path.join(FAKES, 'rpicam-still'), path.join(bin, 'rpicam-hello'));
  fs.symlinkSync(path.join(FAKES, 'vcgencmd'), path.join(bin, 'vcgencmd'));
  const env = { PATH: `${bin}:${process.env.PATH}`, FAKE_THROTTLED: '0x10000', EDGEHEAD_CONFIG: undefined };
  const config = (url: string, embeddedBroker = 'off'): string => {
    const file = path.join(fs.mkdtempSync(path.join(tmp, 'cfg-')), 'config.yaml');
    fs.writeFileSync(file, `version: 1\nmqtt:\n  url: ${url}\n  embeddedBroker: ${embeddedBroker}\n`);
    return file;
  };

  test('lists cameras, throttling and the broker; --json has all of it', async () => {
    const root = fakeRoot('50005\n');
    const r = await runCli(['doctor', '--root', root, '--config', config(`mqtt://127.0.0.1:${openPort}`)], { env });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const at = lines.findIndex((l) => l.startsWith('v4l2 '));
    assert.deepEqual(lines.slice(at, at + 3), [
      `v4l2         ${root}/dev/video0 "UVC Camera (046d:0825)": YUYV, MJPG`,
      `             ${root}/dev/video1 "UVC Camera (046d:0825)": no capture formats`,
      `             ${root}/dev/video10: NV12`,
    ]);
    assert.match(r.stdout, /^libcamera    0: imx708 4608x2592 10-bit RGGB, modes 1536x864@120\.13 2304x1296@56\.03 4608x2592@14\.35 \(rpicam-hello --list-cameras\)$/m);
    assert.match(r.stdout, /^throttled    now: under-voltage, throttled; since boot: under-voltage, throttled \(0x50005\)$/m);
    assert.match(r.stdout, new RegExp(`^broker       mqtt://127\\.0\\.0\\.1:${openPort}: ok: 127\\.0\\.0\\.1:${openPort} accepts TCP connections`, 'm'));
    assert.match(r.stdout, /^backend\s+wasm/m, 'the earlier rows are still there');

    const json = await runCli(['doctor', '--json', '--root', root, '--config', config(`mqtt://127.0.0.1:${openPort}`)], { env });
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.deepEqual(report.cameras.v4l2.devices.map((d: { formats: string[] }) => d.formats), [['YUYV', 'MJPG'], [], ['NV12']]);
    assert.equal(report.cameras.libcamera.cameras[0].sensor, 'imx708');
    assert.deepEqual(report.throttled.state, { now: ['under-voltage', 'throttled'], occurred: ['under-voltage', 'throttled'], raw: '0x50005' });
    assert.equal(report.broker.status, 'ok');
    assert.equal(report.backend, 'wasm');
  });

  test('an unreachable broker is reported and makes the exit code 1; without sysfs, vcgencmd answers', async () => {
    const root = fakeRoot();
    const r = await runCli(['doctor', '--root', root, '--config', config(`mqtt://127.0.0.1:${closedPort}`)], { env });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^broker       mqtt://127\\.0\\.0\\.1:${closedPort}: failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${closedPort}$`, 'm'));
    assert.match(r.stdout, /^throttled    now: none; since boot: under-voltage \(0x10000\)$/m);
    const noTools = await runCli(['doctor', '--root', root, '--config', config(`mqtt://127.0.0.1:${closedPort}`, 'auto')], {
      env: { PATH: path.dirname(process.execPath), EDGEHEAD_CONFIG: undefined },
    });
    assert.equal(noTools.code, 0, noTools.stderr);
    assert.match(noTools.stdout, /^broker .*: embedded: nothing listens/m);
    assert.match(noTools.stdout, /\/dev\/video0 "UVC Camera \(046d:0825\)": formats: install v4l-utils$/m);
    assert.match(noTools.stdout, /^libcamera    rpicam-apps not installed/m);
    assert.match(noTools.stdout, /^throttled    not reported/m);
  });

  test('a bad config is refused with its errors (exit 2)', async () => {
    const r = await runCli(['doctor', '--config', config('ftp://nowhere')], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /mqtt\.url/);
  });
});
