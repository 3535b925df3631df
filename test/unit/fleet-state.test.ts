/** FleetState (operator/fleet/state.ts): the device table from wire messages, and the `fleet status` table. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../base/clock';
import { FleetHistory } from '../../operator/fleet/history';
import { FleetState, SNAPSHOT_MAX_BYTES } from '../../operator/fleet/state';
import { formatFleetTable } from '../../operator/fleet/status';
import { birthMessage, type HeadStateMessage, offlineMessage, type TelemetryMessage } from '../../protocol/messages';

const SHA = 'a'.repeat(64);
const P = 'edgehead';
const T0 = Date.parse('2026-01-01T00:00:00Z');

function setup(maxDevices = 100, maxLabelsPerHead = 50) {
  const clock = new ManualClock(T0);
  const history = new FleetHistory({ resolutionSec: 60, retentionHours: 1, maxLabels: 4, clock });
  const state = new FleetState({ prefix: P, clock, history, maxDevices, maxLabelsPerHead });
  const send = (device: string, kind: string, msg: unknown, retained = false) =>
    state.handle(`${P}/${device}/${kind}`, Buffer.isBuffer(msg) ? msg : Buffer.from(typeof msg === 'string' ? msg : JSON.stringify(msg)), retained);
  return { clock, history, state, send };
}

function birth(device: string, groups: string[] = [], head = { id: 'demo', version: 1 }) {
  return birthMessage({
    device,
    groups,
    version: '1.2.3',
    startedAt: new Date(T0).toISOString(),
    extractor: { id: 'mobilenet_v2_140', fingerprint: SHA },
    head: { ...head, sha256: SHA },
    backend: { name: 'wasm', simd: true, threads: 1 },
  });
}

function telemetry(device: string, tsMs: number, ok: number, extra: Partial<TelemetryMessage> = {}): TelemetryMessage {
  const p = null;
  return {
    ts: new Date(tsMs).toISOString(),
    device,
    uptimeSec: 10,
    frames: { ok, skipped: 0, failed: 0, published: ok, suppressed: 0 },
    latencyMs: { capture: p, decode: p, resize: p, extract: p, head: p, total: { p50: 120, p95: 180 } },
    rssMB: 150.5,
    heapMB: 40,
    tensors: 10,
    cpuTempC: 55.5,
    loadAvg: [0.5, 0.4, 0.3],
    diskFreeMB: 1000,
    mqtt: { connected: true, reconnects: 0 },
    offlineQueue: { depth: 3, bytes: 100, dropped: 0, skipped: 0 },
    backend: { name: 'wasm', simd: true, threads: 1 },
    problems: [],
    ...extra,
  };
}

function prediction(label: string, tsMs: number, head = { id: 'demo', version: 1 }) {
  return {
    ts: new Date(tsMs).toISOString(),
    run: 1,
    frameId: 1,
    source: 'dir',
    top: [{ label, score: 0.9 }],
    head,
    extractor: 'mobilenet_v2_140',
    ms: { capture: 1, decode: 1, resize: 1, extract: 1, head: 1 },
  };
}

function headState(device: string, status: 'applied' | 'rejected', version = 2, reason?: string): HeadStateMessage {
  const ref = (v: number) => ({ id: 'demo', version: v, sha256: SHA, appliedAt: new Date(T0).toISOString() });
  return {
    device,
    active: ref(version),
    previous: version > 1 ? ref(version - 1) : null,
    lastUpdate: { status, ...(reason ? { reason } : {}), correlationId: '0123456789abcdef', via: 'edgehead/all/head/set', head: { id: 'demo', version }, receivedAt: new Date(T0).toISOString() },
    shadow: null,
  };
}

test('a birth makes an online row with groups, version and head; the last will flips it offline with the reason', () => {
  const { clock, state, send } = setup();
  const events: string[] = [];
  state.on('status', (d, online, retained) => events.push(`${d}:${online}:${retained}`));
  state.on('change', (d) => events.push(`change:${d}`));
  send('pi-1', 'status', birth('pi-1', ['kitchen', 'floor-1']), true);
  let row = state.row('pi-1')!;
  assert.equal(row.online, true);
  assert.deepEqual(row.groups, ['kitchen', 'floor-1']);
  assert.equal(row.agentVersion, '1.2.3');
  assert.equal(row.extractor, 'mobilenet_v2_140');
  assert.deepEqual(row.head, { id: 'demo', version: 1, sha256: SHA });
  assert.equal(row.statusSince, T0);
  assert.equal(row.lastSeen, null, 'a retained replay does not count as seen');

  clock.advance(5000);
  send('pi-1', 'status', offlineMessage('pi-1', 'connection lost'));
  row = state.row('pi-1')!;
  assert.equal(row.online, false);
  assert.equal(row.offlineReason, 'connection lost');
  assert.equal(row.statusSince, T0 + 5000);
  assert.equal(row.lastSeen, T0 + 5000);
  assert.deepEqual(events, ['pi-1:true:true', 'change:pi-1', 'pi-1:false:false', 'change:pi-1']);
});

test('an empty status payload (the retained status cleared) forgets the device and its history', () => {
  const { state, send, history } = setup();
  const removed: string[] = [];
  state.on('removed', (d) => removed.push(d));
  send('pi-1', 'status', birth('pi-1'), true);
  send('pi-1', 'predictions', prediction('cat', T0));
  assert.equal(history.devices, 1);
  send('pi-1', 'status', Buffer.alloc(0));
  assert.deepEqual(removed, ['pi-1']);
  assert.equal(state.row('pi-1'), undefined);
  assert.deepEqual(state.rows(), []);
  assert.equal(history.devices, 0);
  send('pi-2', 'status', Buffer.alloc(0)); // unknown device: nothing to remove
  assert.deepEqual(removed, ['pi-1']);
});

test('head/state sets head, previous head, last update and shadow, and emits headState with the retain flag', () => {
  const { state, send } = setup();
  const seen: [string, number, boolean][] = [];
  state.on('headState', (d, msg, retained) => seen.push([d, msg.active.version, retained]));
  send('pi-1', 'head/state', headState('pi-1', 'rejected', 3, 'bad signature'), true);
  const row = state.row('pi-1')!;
  assert.deepEqual(row.head, { id: 'demo', version: 3, sha256: SHA });
  assert.deepEqual(row.previousHead, { id: 'demo', version: 2, sha256: SHA });
  assert.equal(row.lastUpdate?.status, 'rejected');
  assert.equal(row.lastUpdate?.reason, 'bad signature');
  assert.equal(row.shadow, null);
  assert.deepEqual(seen, [['pi-1', 3, true]]);
});

test('telemetry: latency, temperature, RSS, queue, problems; fps from the frames.ok delta, null first and after a restart', () => {
  const { state, send, history } = setup();
  send('pi-1', 'telemetry', telemetry('pi-1', T0, 100));
  let row = state.row('pi-1')!;
  assert.equal(row.fps, null);
  assert.deepEqual(row.latencyMs, { p50: 120, p95: 180 });
  assert.equal(row.cpuTempC, 55.5);
  assert.equal(row.rssMB, 150.5);
  assert.equal(row.queueDepth, 3);
  send('pi-1', 'telemetry', telemetry('pi-1', T0 + 10_000, 130, { problems: [{ key: 'disk-full', message: 'disk full', since: new Date(T0).toISOString() }] }));
  row = state.row('pi-1')!;
  assert.equal(row.fps, 3);
  assert.equal(row.problems.length, 1);
  send('pi-1', 'telemetry', telemetry('pi-1', T0 + 20_000, 5)); // counter went backwards: the agent restarted
  assert.equal(state.row('pi-1')!.fps, null);
  send('pi-1', 'telemetry', telemetry('pi-1', T0 + 30_000, 25, { cpuTempC: null }));
  row = state.row('pi-1')!;
  assert.equal(row.fps, 2);
  assert.equal(row.cpuTempC, null);
  const h = history.get('pi-1');
  assert.equal(h.t.length, 1);
  assert.equal(h.fps[0], 2.5);
});

test('predictions: last frame, label and score; label counts bounded per head, the rest as "(other)"; reset on a new head', () => {
  const { state, send } = setup(100, 3);
  for (const label of ['cat', 'dog', 'cat', 'bird', 'fish', 'cow', 'cat']) send('pi-1', 'predictions', prediction(label, T0 + 1000));
  const row = state.row('pi-1')!;
  assert.equal(row.lastLabel, 'cat');
  assert.equal(row.lastScore, 0.9);
  assert.equal(row.lastFrameTs, T0 + 1000);
  const { head, counts } = state.labels('pi-1');
  assert.equal(head, 'demo@1');
  assert.deepEqual(Object.fromEntries(counts), { cat: 3, dog: 1, bird: 1, '(other)': 2 });
  send('pi-1', 'predictions', prediction('zebra', T0 + 2000, { id: 'demo', version: 2 }));
  assert.deepEqual(Object.fromEntries(state.labels('pi-1').counts), { zebra: 1 });
});

test('bad payloads never throw: they are counted as invalid by kind and leave the row as it was', () => {
  const { state, send } = setup();
  send('pi-1', 'status', birth('pi-1'), true);
  const before = state.row('pi-1');
  send('pi-1', 'status', 'not json');
  send('pi-1', 'status', { status: 'maybe' });
  send('pi-1', 'telemetry', { ts: 'x' });
  send('pi-1', 'predictions', { top: [] });
  send('pi-1', 'head/state', '{"device":');
  send('bad id!', 'status', birth('x'));
  state.handle(`${P}/groups/g/head/set`, Buffer.from('x'), true);
  state.handle('other/pi-1/status', Buffer.from('x'), false);
  assert.deepEqual({ ...state.row('pi-1'), lastSeen: null }, { ...before, lastSeen: null });
  const c = state.counts();
  assert.equal(c.invalid.status, 3);
  assert.equal(c.invalid.telemetry, 1);
  assert.equal(c.invalid.predictions, 1);
  assert.equal(c.invalid['head/state'], 1);
  assert.equal(c.messages.status, 4);
  assert.equal(c.messages.other, 2);
  assert.deepEqual(state.rows().map((r) => r.device), ['pi-1']);
});

test('cmd/reply is counted only; snapshots are kept (the last one) up to the size limit', () => {
  const { state, send } = setup();
  send('pi-1', 'cmd/reply', { id: '1', ok: true });
  assert.equal(state.counts().messages['cmd/reply'], 1);
  send('pi-1', 'snapshot', Buffer.from([0xff, 0xd8, 1]));
  send('pi-1', 'snapshot', Buffer.from([0xff, 0xd8, 2]));
  assert.deepEqual([...state.snapshot('pi-1')!], [0xff, 0xd8, 2]);
  send('pi-1', 'snapshot', Buffer.alloc(SNAPSHOT_MAX_BYTES + 1));
  assert.deepEqual([...state.snapshot('pi-1')!], [0xff, 0xd8, 2]);
  assert.equal(state.counts().invalid.snapshot, 1);
});

test('beyond maxDevices, new devices are ignored and counted; known ones still update', () => {
  const { state, send } = setup(2);
  for (const d of ['a', 'b', 'c', 'd']) send(d, 'status', birth(d), true);
  assert.deepEqual(state.rows().map((r) => r.device), ['a', 'b']);
  assert.equal(state.counts().ignored, 2);
  send('a', 'status', offlineMessage('a', 'shutdown'));
  assert.equal(state.row('a')!.online, false);
  assert.equal(state.row('a')!.offlineReason, 'shutdown');
});

test('rows() are sorted copies: changing one does not change the state', () => {
  const { state, send } = setup();
  send('b', 'status', birth('b', ['g']), true);
  send('a', 'status', birth('a'), true);
  const rows = state.rows();
  assert.deepEqual(rows.map((r) => r.device), ['a', 'b']);
  rows[1]!.groups.push('x');
  rows[1]!.online = false;
  assert.deepEqual(state.row('b')!.groups, ['g']);
  assert.equal(state.row('b')!.online, true);
});

test('the fleet status table: one padded row per device with group, online, agent, head, last update and problems', () => {
  const { state, send } = setup();
  send('pi-1', 'status', birth('pi-1', ['kitchen']), true);
  send('pi-1', 'head/state', headState('pi-1', 'applied', 2), true);
  send('pi-22', 'status', offlineMessage('pi-22', 'connection lost'), true);
  send('pi-22', 'head/state', headState('pi-22', 'rejected', 1, 'signature does not verify'), true);
  send('pi-3', 'head/state', headState('pi-3', 'applied', 1), true);
  const text = formatFleetTable(state.rows());
  assert.equal(
    text,
    [
      'DEVICE  GROUP    ONLINE                AGENT  HEAD     LAST UPDATE                          PROBLEMS',
      'pi-1    kitchen  yes                   1.2.3  demo v2  applied                              -',
      'pi-22   -        no (connection lost)  -      demo v1  rejected: signature does not verify  -',
      'pi-3    -        ?                     -      demo v1  applied                              -',
      '3 devices: 1 online, 1 offline, 1 unknown',
    ].join('\n'),
  );
  assert.match(formatFleetTable([]), /^no devices/);
});
