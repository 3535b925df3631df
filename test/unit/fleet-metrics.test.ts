/** The fleet server's /metrics (operator/fleet/metrics.ts): exposition, absent samples, bounded cardinality. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../base/clock';
import { FleetHistory } from '../../operator/fleet/history';
import { createFleetMetrics, fleetMetricNames, ROLLOUTS_SHOWN } from '../../operator/fleet/metrics';
import type { RolloutView } from '../../operator/fleet/model';
import { FleetState } from '../../operator/fleet/state';
import { birthMessage, offlineMessage } from '../../protocol/messages';
import { PROMTOOL, promtoolCheckMetrics } from '../support/prometheus';

const FLEET_METRIC_NAMES = fleetMetricNames();

const SHA = 'b'.repeat(64);
const T0 = Date.parse('2026-01-01T00:00:00Z');

function setup(rollouts: RolloutView[] = [], maxLabelsPerHead = 50) {
  const clock = new ManualClock(T0);
  const history = new FleetHistory({ resolutionSec: 60, retentionHours: 1, maxLabels: 4, clock });
  const state = new FleetState({ prefix: 'edgehead', clock, history, maxDevices: 100, maxLabelsPerHead });
  const metrics = createFleetMetrics({ state, rollouts: () => rollouts, clock, maxLabelsPerHead });
  const send = (device: string, kind: string, msg: unknown, retained = false) => state.handle(`edgehead/${device}/${kind}`, Buffer.from(JSON.stringify(msg)), retained);
  return { clock, state, metrics, send };
}

const birth = (device: string, groups: string[]) =>
  birthMessage({
    device,
    groups,
    version: '1.0.0',
    startedAt: new Date(T0).toISOString(),
    extractor: { id: 'mobilenet_v2_140', fingerprint: SHA },
    head: { id: 'birds', version: 7, sha256: SHA },
    backend: { name: 'wasm', simd: true, threads: 1 },
  });

const telemetry = (device: string, ts: number, ok: number, cpuTempC: number | null) => ({
  ts: new Date(ts).toISOString(),
  device,
  uptimeSec: 1,
  frames: { ok, skipped: 0, failed: 0, published: ok, suppressed: 0 },
  latencyMs: { capture: null, decode: null, resize: null, extract: null, head: null, total: { p50: 120.5, p95: 300 } },
  rssMB: 100,
  heapMB: 10,
  tensors: 1,
  cpuTempC,
  loadAvg: [0, 0, 0],
  diskFreeMB: null,
  mqtt: { connected: true, reconnects: 0 },
  offlineQueue: { depth: 4, bytes: 0, dropped: 0, skipped: 0 },
  backend: { name: 'wasm', simd: true, threads: 1 },
  problems: [{ key: 'disk-full', message: 'x', since: new Date(T0).toISOString() }],
});

const prediction = (label: string) => ({
  ts: new Date(T0).toISOString(),
  run: 1,
  frameId: 1,
  source: 'dir',
  top: [{ label, score: 0.5 }],
  head: { id: 'birds', version: 7 },
  extractor: 'm',
  ms: { capture: 1, decode: 1, resize: 1, extract: 1, head: 1 },
});

function rollout(id: string, createdAt: number, phase: RolloutView['phase'], states: RolloutView['devices'][number]['state'][]): RolloutView {
  return {
    id,
    createdAt,
    actor: 'local',
    head: { id: 'birds', version: 8, sha256: SHA, bytes: 100, fileSha256: SHA, correlationId: '0123456789abcdef', signedBy: null },
    target: { kind: 'all' },
    topic: 'edgehead/all/head/set',
    phase,
    haltReason: phase === 'halted' ? 'pi-1 rejected' : null,
    devices: states.map((state, i) => ({ device: `pi-${i}`, stage: i === 0 ? 'canary' : 'rest', state, reason: null, agreement: null, answeredAt: null })),
    updatedAt: createdAt,
  };
}

const sample = (text: string, series: string) => text.split('\n').find((l) => l.startsWith(series + ' '))?.slice(series.length + 1);

test('the exposition has every device and fleet metric, read from the state at scrape time', async () => {
  const { clock, metrics, send } = setup([rollout('r1', T0, 'halted', ['rejected', 'pending', 'waiting'])]);
  send('pi-1', 'status', birth('pi-1', ['kitchen', 'floor-1']), true);
  send('pi-2', 'status', birth('pi-2', []), true);
  send('pi-2', 'status', offlineMessage('pi-2', 'connection lost'));
  send('pi-3', 'cmd/reply', { id: '1', ok: true });
  send('pi-1', 'telemetry', telemetry('pi-1', T0, 100, 61.5));
  send('pi-1', 'telemetry', telemetry('pi-1', T0 + 10_000, 150, 61.5));
  send('pi-1', 'predictions', prediction('robin'));
  send('pi-1', 'predictions', prediction('robin'));
  send('pi-1', 'predictions', prediction('wren'));
  send('pi-1', 'telemetry', { nope: true });
  clock.advance(30_000);
  const text = await metrics.metrics();
  assert.match(metrics.contentType, /^text\/plain/);
  const expect: Record<string, string> = {
    'edgehead_device_up{device="pi-1",group="kitchen,floor-1"}': '1',
    'edgehead_device_up{device="pi-2",group=""}': '0',
    'edgehead_device_last_seen_seconds{device="pi-1"}': '30',
    'edgehead_device_latency_p50_seconds{device="pi-1"}': '0.1205',
    'edgehead_device_latency_p95_seconds{device="pi-1"}': '0.3',
    'edgehead_device_frames_per_second{device="pi-1"}': '5',
    'edgehead_device_cpu_temperature_celsius{device="pi-1"}': '61.5',
    'edgehead_device_rss_bytes{device="pi-1"}': String(100 * 1024 * 1024),
    'edgehead_device_queue_depth{device="pi-1"}': '4',
    'edgehead_device_problems{device="pi-1"}': '1',
    'edgehead_device_head_info{device="pi-1",head_id="birds",head_version="7"}': '1',
    'edgehead_device_predictions_total{device="pi-1",label="robin"}': '2',
    'edgehead_device_predictions_total{device="pi-1",label="wren"}': '1',
    'edgehead_fleet_devices{state="online"}': '1',
    'edgehead_fleet_devices{state="offline"}': '1',
    'edgehead_fleet_devices{state="unknown"}': '1',
    'edgehead_fleet_messages_total{kind="telemetry"}': '3',
    'edgehead_fleet_messages_total{kind="status"}': '3',
    'edgehead_fleet_invalid_messages_total{kind="telemetry"}': '1',
    'edgehead_rollout_devices{rollout="r1",state="rejected"}': '1',
    'edgehead_rollout_devices{rollout="r1",state="applied"}': '0',
    'edgehead_rollout_halted{rollout="r1"}': '1',
    'edgehead_rollout_phase_info{rollout="r1",phase="halted"}': '1',
  };
  for (const [series, value] of Object.entries(expect)) assert.equal(sample(text, series), value, series);
  // No value, no sample: pi-2 sent no telemetry, pi-3 no status.
  assert.doesNotMatch(text, /edgehead_device_cpu_temperature_celsius\{device="pi-2"\}/);
  assert.doesNotMatch(text, /edgehead_device_problems\{device="pi-2"\}/);
  assert.doesNotMatch(text, /edgehead_device_up\{device="pi-3"/);
  for (const name of ['edgehead_device_up', 'edgehead_device_predictions_total', 'edgehead_rollout_phase_info']) assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'));
});

test('a device without a CPU temperature has no temperature sample; a forgotten device has no series at all', async () => {
  const { state, metrics, send } = setup();
  send('pi-1', 'status', birth('pi-1', []), true);
  send('pi-1', 'telemetry', telemetry('pi-1', T0, 1, null));
  let text = await metrics.metrics();
  assert.doesNotMatch(text, /edgehead_device_cpu_temperature_celsius\{/);
  assert.match(text, /edgehead_device_rss_bytes\{device="pi-1"\}/);
  state.handle('edgehead/pi-1/status', Buffer.alloc(0), false);
  text = await metrics.metrics();
  assert.doesNotMatch(text, /device="pi-1"/);
});

test('label cardinality stays bounded when a device reports 1000 distinct labels', async () => {
  const { metrics, send } = setup([], 50);
  send('pi-1', 'status', birth('pi-1', []), true);
  for (let i = 0; i < 1000; i++) send('pi-1', 'predictions', prediction(`label-${i}`));
  const text = await metrics.metrics();
  const series = text.split('\n').filter((l) => l.startsWith('edgehead_device_predictions_total{'));
  assert.equal(series.length, 51);
  assert.equal(sample(text, 'edgehead_device_predictions_total{device="pi-1",label="(other)"}'), '950');
  const total = series.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  assert.equal(total, 1000);
});

test(`only the last ${ROLLOUTS_SHOWN} rollouts are exported`, async () => {
  const rollouts = Array.from({ length: 8 }, (_, i) => rollout(`r${i}`, T0 + i, i === 7 ? 'canary' : 'done', ['applied']));
  const { metrics } = setup(rollouts);
  const text = await metrics.metrics();
  const ids = new Set([...text.matchAll(/edgehead_rollout_halted\{rollout="(r\d)"\}/g)].map((m) => m[1]));
  assert.deepEqual([...ids].sort(), ['r3', 'r4', 'r5', 'r6', 'r7']);
  assert.equal(sample(text, 'edgehead_rollout_phase_info{rollout="r7",phase="canary"}'), '1');
  assert.equal(sample(text, 'edgehead_rollout_devices{rollout="r7",state="applied"}'), '1');
});

test('FLEET_METRIC_NAMES lists every metric of the exposition, once each', async () => {
  const { clock, metrics, send } = setup([rollout('r1', T0, 'rest', ['applied'])]);
  send('pi-1', 'status', birth('pi-1', ['g']), true);
  send('pi-1', 'telemetry', telemetry('pi-1', T0, 1, 50));
  send('pi-1', 'predictions', prediction('robin'));
  clock.advance(1000);
  const text = await metrics.metrics();
  const exposed = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  assert.deepEqual([...FLEET_METRIC_NAMES].sort(), [...exposed].sort());
  assert.equal(new Set(FLEET_METRIC_NAMES).size, FLEET_METRIC_NAMES.length);
  assert.ok(FLEET_METRIC_NAMES.includes('edgehead_device_latency_p50_seconds') && FLEET_METRIC_NAMES.includes('edgehead_device_latency_p95_seconds'));
  assert.ok(Object.isFrozen(FLEET_METRIC_NAMES));
});

test('promtool check metrics passes on the exposition', { skip: PROMTOOL ? false : 'promtool is not installed' }, async () => {
  const { metrics, send } = setup([rollout('r1', T0, 'rest', ['applied', 'pending'])]);
  send('pi-1', 'status', birth('pi-1', ['g']), true);
  send('pi-1', 'telemetry', telemetry('pi-1', T0, 1, 50));
  send('pi-1', 'predictions', prediction('robin'));
  const r = promtoolCheckMetrics(await metrics.metrics());
  // Clean: exit 0 and no lint findings (exit 3 would be lint findings only, 1 a parse error).
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.trim(), '', r.output);
});
