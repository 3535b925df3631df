/**
 * Fleet ingestion on a real Mosquitto: two replicas (FleetState + FleetIngest, each its own MQTT 5 connection, the
 * same share group) split the live streams so each message is counted exactly once, while both see every retained
 * status and head/state; a replica started later rebuilds the same table from retained messages alone; a last will
 * flips a device offline; `fleet status` reads the same table.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { systemClock } from '../../base/clock';
import { defaultFleetConfig, fleetBrokerSettings } from '../../operator/fleet/config';
import { FleetHistory } from '../../operator/fleet/history';
import { FleetIngest } from '../../operator/fleet/ingest';
import type { DeviceRow } from '../../operator/fleet/model';
import { FleetState } from '../../operator/fleet/state';
import { fetchFleetStatus, formatFleetTable } from '../../operator/fleet/status';
import { MqttJsClient } from '../../mqtt/mqttjs-client';
import { RETAINED } from '../../mqtt/broker';
import { birthMessage, type HeadStateMessage, offlineMessage } from '../../protocol/messages';
import { deviceTopic } from '../../protocol/topics';
import { waitUntil } from '../support/assertions';
import { MOSQUITTO, Mosquitto } from '../support/mosquitto';

const PREFIX = 'fleet-test';
const SHA = 'c'.repeat(64);
const GROUP = 'replicas';

let broker: Mosquitto;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  if (MOSQUITTO) broker = await Mosquitto.start();
});
after(async () => {
  for (const stop of stops.reverse()) await stop();
  await broker?.stop();
});

function settings() {
  const cfg = defaultFleetConfig();
  cfg.broker.url = broker.url;
  return fleetBrokerSettings(cfg);
}

async function replica(name: string) {
  const client = new MqttJsClient({ cfg: settings(), clientId: `replica-${name}-${process.pid}`, reconnect: false, protocolVersion: 5 });
  const history = new FleetHistory({ resolutionSec: 60, retentionHours: 1, maxLabels: 16, clock: systemClock });
  const state = new FleetState({ prefix: PREFIX, clock: systemClock, history, maxDevices: 1000 });
  const ingest = new FleetIngest({ broker: client, state, prefix: PREFIX, shared: true, shareGroup: GROUP });
  await client.open();
  stops.push(() => client.stop());
  await ingest.start();
  return { client, state, ingest };
}

async function publisher() {
  const client = new MqttJsClient({ cfg: settings(), clientId: `publisher-${process.pid}`, reconnect: false });
  await client.open();
  stops.push(() => client.stop());
  return client;
}

const birth = (device: string, groups: string[]) =>
  birthMessage({
    device,
    groups,
    version: '9.9.9',
    startedAt: new Date().toISOString(),
    extractor: { id: 'mobilenet_v2_140', fingerprint: SHA },
    head: { id: 'demo', version: 1, sha256: SHA },
    backend: { name: 'wasm', simd: true, threads: 1 },
  });

const headState = (device: string, version: number): HeadStateMessage => ({
  device,
  active: { id: 'demo', version, sha256: SHA, appliedAt: new Date().toISOString() },
  previous: null,
  lastUpdate: { status: 'applied', correlationId: null, via: 'startup', head: { id: 'demo', version }, receivedAt: new Date().toISOString() },
  shadow: null,
});

const telemetry = (device: string, i: number) => ({
  ts: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
  device,
  uptimeSec: i,
  frames: { ok: i, skipped: 0, failed: 0, published: i, suppressed: 0 },
  latencyMs: { capture: null, decode: null, resize: null, extract: null, head: null, total: { p50: 100, p95: 200 } },
  rssMB: 100,
  heapMB: 10,
  tensors: 1,
  cpuTempC: 50,
  loadAvg: [0, 0, 0],
  diskFreeMB: null,
  mqtt: { connected: true, reconnects: 0 },
  offlineQueue: { depth: 0, bytes: 0, dropped: 0, skipped: 0 },
  backend: { name: 'wasm', simd: true, threads: 1 },
  problems: [],
});

const prediction = (i: number) => ({
  ts: new Date().toISOString(),
  run: 1,
  frameId: i + 1,
  source: 'sim',
  top: [{ label: i % 2 ? 'cat' : 'dog', score: 0.8 }],
  head: { id: 'demo', version: 1 },
  extractor: 'mobilenet_v2_140',
  ms: { capture: 1, decode: 1, resize: 1, extract: 1, head: 1 },
});

/** The fields a replica derives from retained messages alone. */
const retainedView = (rows: DeviceRow[]) =>
  rows.map((r) => ({ device: r.device, groups: r.groups, online: r.online, offlineReason: r.offlineReason, agentVersion: r.agentVersion, extractor: r.extractor, head: r.head, previousHead: r.previousHead, lastUpdate: r.lastUpdate, shadow: r.shadow }));

const live = (s: FleetState) => {
  const m = s.counts().messages;
  return m.telemetry + m.predictions;
};

test('two replicas: live streams counted once across both, retained state seen by both; a late replica converges; LWT flips online', { skip: MOSQUITTO ? false : 'mosquitto is not installed' }, async () => {
  const pub = await publisher();
  const devices = ['cam-1', 'cam-2', 'cam-3'];
  for (const [i, d] of devices.entries()) {
    await pub.publish(deviceTopic(PREFIX, d, 'status'), JSON.stringify(birth(d, i === 0 ? ['kitchen'] : [])), RETAINED);
    await pub.publish(deviceTopic(PREFIX, d, 'head/state'), JSON.stringify(headState(d, i + 1)), RETAINED);
  }
  const a = await replica('a');
  const b = await replica('b');
  assert.ok(a.ingest.filters().includes(`$share/${GROUP}/${PREFIX}/+/telemetry`));
  assert.ok(a.ingest.filters().includes(`${PREFIX}/+/status`));
  for (const r of [a, b]) await waitUntil('both replicas have the retained table', () => r.state.rows().filter((row) => row.online && row.head).length === devices.length);

  // The live streams: N messages in all, QoS 1.
  const N = 300;
  for (let i = 0; i < N; i++) {
    const d = devices[i % devices.length]!;
    const kind = i % 3 === 0 ? 'telemetry' : 'predictions';
    await pub.publish(deviceTopic(PREFIX, d, kind), JSON.stringify(kind === 'telemetry' ? telemetry(d, i) : prediction(i)), { qos: 1, retain: false });
  }
  await waitUntil(`${N} live messages ingested`, () => live(a.state) + live(b.state) >= N);
  // A plain (non-shared) message both replicas receive after the stream: anything duplicated would have arrived first.
  await pub.publish(deviceTopic(PREFIX, 'cam-3', 'head/state'), JSON.stringify(headState('cam-3', 7)), RETAINED);
  for (const r of [a, b]) await waitUntil('the marker', () => r.state.row('cam-3')?.head?.version === 7);
  assert.equal(live(a.state) + live(b.state), N, `a=${live(a.state)} b=${live(b.state)}`);
  // Mosquitto hands shared-subscription messages out round robin, so with N = 300 each replica gets a share.
  assert.ok(live(a.state) > 0 && live(b.state) > 0, `a=${live(a.state)} b=${live(b.state)}`);
  for (const r of [a, b]) {
    const c = r.state.counts();
    assert.equal(c.messages.other, 0, 'shared-subscription messages arrive under their real topic');
    assert.deepEqual(Object.values(c.invalid).filter((n) => n > 0), []);
    assert.equal(c.messages.status, devices.length);
  }

  // A replica started later rebuilds the device table from retained messages alone.
  const c = await replica('c');
  await waitUntil('the late replica converged', () => JSON.stringify(retainedView(c.state.rows())) === JSON.stringify(retainedView(a.state.rows())) && c.state.rows());
  assert.deepEqual(retainedView(c.state.rows()), retainedView(b.state.rows()));
  assert.equal(c.state.row('cam-1')!.lastSeen, null, 'retained replays do not count as seen');

  // A device with a last will whose connection dies: every replica sees it go offline.
  const willTopic = deviceTopic(PREFIX, 'cam-will', 'status');
  const dev = mqtt.connect(broker.url, {
    clientId: 'cam-will',
    reconnectPeriod: 0,
    will: { topic: willTopic, payload: Buffer.from(JSON.stringify(offlineMessage('cam-will', 'connection lost'))), qos: 1, retain: true },
  });
  await new Promise<void>((resolve, reject) => {
    dev.once('connect', () => resolve());
    dev.once('error', reject);
  });
  await dev.publishAsync(willTopic, JSON.stringify(birth('cam-will', [])), { qos: 1, retain: true });
  for (const r of [a, b, c]) await waitUntil('cam-will online', () => r.state.row('cam-will')?.online === true);
  dev.stream.destroy();
  for (const r of [a, b, c]) await waitUntil('cam-will offline by its last will', () => r.state.row('cam-will')?.online === false);
  assert.equal(a.state.row('cam-will')!.offlineReason, 'connection lost');
  dev.end(true);

  // `edgehead fleet status`: the same table from the retained topics.
  const rows = await fetchFleetStatus({ settings: settings(), prefix: PREFIX, timeoutMs: 5000 });
  // cam-will's retained status is now its will alone (the birth was replaced): no version or head from retained.
  const others = (rs: DeviceRow[]) => retainedView(rs.filter((r) => r.device !== 'cam-will'));
  assert.deepEqual(others(rows), others(a.state.rows()));
  assert.deepEqual(retainedView(rows.filter((r) => r.device === 'cam-will')), [
    { device: 'cam-will', groups: [], online: false, offlineReason: 'connection lost', agentVersion: null, extractor: null, head: null, previousHead: null, lastUpdate: null, shadow: null },
  ]);
  const table = formatFleetTable(rows);
  assert.match(table, /^cam-1 +kitchen +yes +9\.9\.9 +demo v1 +applied/m);
  assert.match(table, /^cam-will +- +no \(connection lost\) +- +- +-/m);
  assert.match(table, /^4 devices: 3 online, 1 offline, 0 unknown$/m);

  // Clearing a retained status removes the device on every replica.
  await pub.publish(deviceTopic(PREFIX, 'cam-2', 'status'), '', RETAINED);
  for (const r of [a, b, c]) await waitUntil('cam-2 removed', () => r.state.row('cam-2') === undefined);
});
