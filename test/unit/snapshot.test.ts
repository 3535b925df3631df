/**
 * Snapshots (agent/frames/snapshot.ts) in-process: the encoder (downscale, upright, the maxBytes cap and its
 * refusal) and the service on a fake broker and the real scheduler on the manual clock (the run slot, the periodic
 * snapshot, paused, stop). The snapshot command through the whole agent is in agent-inprocess.test.ts.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as jpeg from 'jpeg-js';
import { encodeSnapshot, type SnapshotSettings, Snapshots } from '../../agent/frames/snapshot';
import { Scheduler } from '../../agent/schedule/scheduler';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { SAMPLE_JPEG, ScriptedSource, until } from '../support/agent-parts';
import { FakeBroker } from '../support/fake-broker';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
});

const SETTINGS: SnapshotSettings = { intervalSec: 0, width: 160, quality: 80, maxBytes: 256 * 1024, retain: false };
const decode = (b: Uint8Array) => jpeg.decode(b, { useTArray: true });

test('encode: downscaled to snapshot.width with the aspect ratio kept; a JPEG that decodes; never upscaled', () => {
  const tensors = tf.memory().numTensors;
  const s = encodeSnapshot(SAMPLE_JPEG, SETTINGS, 1e8); // the sample is 320x213
  assert.equal(tf.memory().numTensors, tensors, 'no tensor leaks');
  assert.deepEqual([s.width, s.height, s.quality], [160, 107, 80]);
  const img = decode(s.jpeg);
  assert.deepEqual([img.width, img.height], [160, 107]);
  const full = encodeSnapshot(SAMPLE_JPEG, { ...SETTINGS, width: 640 }, 1e8);
  assert.deepEqual([full.width, full.height], [320, 213]);
});

test('encode: over maxBytes it lowers the quality, then the width, until it fits; refuses when it cannot', () => {
  const big = encodeSnapshot(SAMPLE_JPEG, { ...SETTINGS, width: 320, quality: 95 }, 1e8);
  const lower = encodeSnapshot(SAMPLE_JPEG, { ...SETTINGS, width: 320, quality: 95, maxBytes: big.jpeg.byteLength - 1 }, 1e8);
  assert.ok(lower.jpeg.byteLength < big.jpeg.byteLength);
  assert.deepEqual([lower.width, lower.quality < 95], [320, true], 'the quality goes first');
  const atFloor = encodeSnapshot(SAMPLE_JPEG, { ...SETTINGS, width: 320, quality: 40 }, 1e8);
  const narrower = encodeSnapshot(SAMPLE_JPEG, { ...SETTINGS, width: 320, quality: 40, maxBytes: Math.floor(atFloor.jpeg.byteLength / 2) }, 1e8);
  assert.ok(narrower.width < 320 && narrower.jpeg.byteLength <= atFloor.jpeg.byteLength / 2);
  assert.equal(decode(narrower.jpeg).width, narrower.width);
  assert.throws(() => encodeSnapshot(SAMPLE_JPEG, { ...SETTINGS, maxBytes: 300 }, 1e8), /does not fit in snapshot\.maxBytes = 300 bytes \(\d+ bytes at 64 pixels wide, quality 40\)/);
  assert.throws(() => encodeSnapshot(new Uint8Array([1, 2, 3]), SETTINGS, 1e8), (e: Error & { code?: string }) => e.code === 'BAD_IMAGE');
});

test('encode: the EXIF orientation is applied (the JPEG written carries none): a rotated frame comes out upright', () => {
  // 32x16 stored, left half red, right half blue; orientation 6 = view rotated 90° clockwise: upright 16x32, red on top.
  const data = new Uint8Array(32 * 16 * 4);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 32; x++) data.set(x < 16 ? [255, 0, 0, 255] : [0, 0, 255, 255], (y * 32 + x) * 4);
  const exif = new Uint8Array([...Buffer.from('Exif\0\0', 'latin1'), 0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
  const rotated = new Uint8Array(jpeg.encode({ data, width: 32, height: 16, exifBuffer: exif } as Parameters<typeof jpeg.encode>[0], 95).data);
  const s = encodeSnapshot(rotated, { ...SETTINGS, width: 16 }, 1e8);
  assert.deepEqual([s.width, s.height], [16, 32]);
  const img = decode(s.jpeg);
  const px = (x: number, y: number) => [...img.data.subarray((y * img.width + x) * 4, (y * img.width + x) * 4 + 3)];
  assert.ok(px(8, 4)[0]! > 200 && px(8, 4)[2]! < 60, `top is red: ${px(8, 4)}`);
  assert.ok(px(8, 28)[2]! > 200 && px(8, 28)[0]! < 60, `bottom is blue: ${px(8, 28)}`);
});

function service(cfg: Partial<SnapshotSettings> = {}) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new FakeBroker();
  broker.connect();
  const source = new ScriptedSource();
  const scheduler = new Scheduler({ clock, intervalMs: 3_600_000, jitterMs: 0, onTick: async () => undefined });
  scheduler.start();
  const snapshots = new Snapshots({ cfg: { ...SETTINGS, ...cfg }, maxPixels: 1e8, grab: () => source.capture(), scheduler, broker, topic: 'edgehead/dev1/snapshot', clock });
  const sent = () => broker.sentTo('edgehead/dev1/snapshot');
  return { clock, broker, source, scheduler, snapshots, sent };
}

test('take(): publishes the JPEG on snapshot, QoS 0 not retained (snapshot.retain opts in), and says what it sent', async () => {
  const { snapshots, sent, source } = service();
  const info = await snapshots.take();
  assert.equal(sent().length, 1);
  const msg = sent()[0]!;
  assert.deepEqual(msg.opts, { qos: 0, retain: false });
  assert.equal(decode(msg.payload as Uint8Array).width, 160);
  assert.deepEqual(
    { ...info, capturedAt: undefined },
    { topic: 'edgehead/dev1/snapshot', bytes: (msg.payload as Uint8Array).byteLength, width: 160, height: 107, quality: 80, source: 'scripted:1', capturedAt: undefined, retained: false },
  );
  assert.equal(source.captures, 1);
  const retained = service({ retain: true });
  await retained.snapshots.take();
  assert.deepEqual(retained.sent()[0]!.opts, { qos: 0, retain: true });
});

test('take(): waits for the frame in flight (the run slot), never grabbing the camera beside it; errors are its own', async () => {
  const { snapshots, scheduler, source, sent, broker } = service();
  let release!: () => void;
  const inFlight = scheduler.runNow(() => new Promise<void>((r) => (release = r)));
  const taking = snapshots.take();
  await new Promise((r) => setImmediate(r));
  assert.equal(source.captures, 0, 'not while a frame runs');
  release();
  await inFlight;
  await taking;
  assert.deepEqual([source.captures, sent().length], [1, 1]);
  source.next({ error: 'no camera' });
  await assert.rejects(snapshots.take(), /no camera/);
  broker.disconnect();
  await assert.rejects(snapshots.take(), /not connected/);
  assert.equal(source.captures, 2, 'offline: the camera is not even used');
});

test('periodic (manual clock): one every snapshot.intervalSec; none while paused or offline; none after stop()', async () => {
  const { clock, snapshots, sent, scheduler, broker } = service({ intervalSec: 30 });
  snapshots.start();
  clock.advance(29_000);
  await new Promise((r) => setImmediate(r));
  assert.equal(sent().length, 0);
  clock.advance(1_000);
  await until('first periodic snapshot', () => sent().length === 1);
  clock.advance(30_000);
  await until('second periodic snapshot', () => sent().length === 2);
  scheduler.pause();
  clock.advance(30_000);
  broker.disconnect();
  scheduler.resume();
  clock.advance(30_000);
  broker.connect();
  snapshots.stop();
  clock.advance(300_000);
  await scheduler.idle();
  await new Promise((r) => setImmediate(r));
  assert.equal(sent().length, 2);
  const off = service({ intervalSec: 0 });
  off.snapshots.start();
  assert.equal(off.clock.pending, 1, 'only the scheduler\'s own timer: intervalSec 0 plans nothing');
});
