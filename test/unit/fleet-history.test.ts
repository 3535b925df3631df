/** FleetHistory (operator/fleet/history.ts): bounded per-device rings of buckets. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../base/clock';
import { FleetHistory } from '../../operator/fleet/history';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const point = (latency: number, fps: number | null = null) => ({ latencyP50: latency, latencyP95: latency * 2, cpuTempC: null, fps });

function setup(maxLabels = 3) {
  const clock = new ManualClock(T0);
  const history = new FleetHistory({ resolutionSec: 60, retentionHours: 1, maxLabels, clock });
  return { clock, history };
}

test('samples in one bucket are averaged; empty buckets in between are null; series are aligned with t', () => {
  const { clock, history } = setup();
  history.addTelemetry('pi', T0 + 1000, point(100, 2));
  history.addTelemetry('pi', T0 + 30_000, point(200));
  history.addTelemetry('pi', T0 + 180_000, point(50, 4));
  clock.advance(180_000);
  const h = history.get('pi');
  assert.equal(h.resolutionSec, 60);
  assert.deepEqual(h.t, [T0, T0 + 60_000, T0 + 120_000, T0 + 180_000]);
  assert.deepEqual(h.latencyP50, [150, null, null, 50]);
  assert.deepEqual(h.latencyP95, [300, null, null, 100]);
  assert.deepEqual(h.fps, [2, null, null, 4]);
  assert.deepEqual(h.cpuTempC, [null, null, null, null]);
});

test('the series run up to the current bucket even when the device went quiet', () => {
  const { clock, history } = setup();
  history.addTelemetry('pi', T0, point(10));
  clock.advance(5 * 60_000);
  const h = history.get('pi');
  assert.equal(h.t.length, 6);
  assert.deepEqual(h.latencyP50, [10, null, null, null, null, null]);
});

test('retention: the ring keeps retentionHours of buckets; older data is overwritten and late samples dropped', () => {
  const { clock, history } = setup();
  assert.equal(history.size, 60);
  for (let m = 0; m < 150; m++) history.addTelemetry('pi', T0 + m * 60_000, point(m));
  clock.advance(149 * 60_000);
  const h = history.get('pi');
  assert.equal(h.t.length, 60);
  assert.equal(h.t[0], T0 + 90 * 60_000);
  assert.equal(h.latencyP50[0], 90);
  assert.equal(h.latencyP50[59], 149);
  history.addTelemetry('pi', T0 + 10 * 60_000, point(999)); // older than the slot's bucket
  assert.deepEqual(history.get('pi').latencyP50, h.latencyP50);
});

test('predictions per bucket by label, bounded per device: labels beyond maxLabels are summed as "(other)"', () => {
  const { clock, history } = setup(2);
  for (const l of ['cat', 'dog', 'cat', 'bird', 'fish']) history.addPrediction('pi', T0 + 5000, l);
  history.addPrediction('pi', T0 + 65_000, 'dog');
  history.addPrediction('pi', T0 + 65_000, 'bird');
  clock.advance(65_000);
  const h = history.get('pi');
  assert.deepEqual(h.labels, { cat: [2, 0], dog: [1, 1], '(other)': [2, 1] });
  for (let i = 0; i < 1000; i++) history.addPrediction('pi', T0 + 65_000, `label-${i}`);
  assert.equal(Object.keys(history.get('pi').labels).length, 3);
});

test('at most maxDevices devices get a history', () => {
  const history = new FleetHistory({ resolutionSec: 60, retentionHours: 1, maxLabels: 3, maxDevices: 2, clock: new ManualClock(T0) });
  for (const d of ['a', 'b', 'c']) history.addPrediction(d, T0, 'cat');
  assert.equal(history.devices, 2);
  assert.deepEqual(history.get('c').t, []);
  history.forget('a');
  history.addTelemetry('c', T0, point(1));
  assert.deepEqual(history.get('c').latencyP50, [1]);
});

test('unknown devices have an empty history; forget() drops a device', () => {
  const { history } = setup();
  assert.deepEqual(history.get('nope').t, []);
  history.addPrediction('pi', T0, 'cat');
  assert.equal(history.devices, 1);
  history.forget('pi');
  assert.equal(history.devices, 0);
  assert.deepEqual(history.get('pi').t, []);
});

test('memory per device at the defaults (24 h at 60 s, 17 label series) stays under 90 KiB', () => {
  assert.equal(FleetHistory.bytesPerDevice(1440, 0), 1440 * 24);
  assert.ok(FleetHistory.bytesPerDevice(1440, 17) < 90 * 1024);
});
