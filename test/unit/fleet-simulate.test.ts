/**
 * The fleet simulator in-process: a simulated device's answers to head payloads and commands (SimDeviceModel, no
 * I/O), the messages it builds (checked against the protocol schemas), and the fleet's wiring of timers and
 * connections on a ManualClock with in-memory FakeBroker connections. The real-broker test is
 * test/integration/fleet-simulate.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { ManualClock } from '../../base/clock';
import { sha256Hex } from '../../base/hash';
import { configureLogging } from '../../base/log';
import { type BirthMessage, BirthMessageSchema, correlationIdOf, type HeadStateMessage, HeadStateMessageSchema, type HeadUpdateStatus, OfflineMessageSchema, type PredictionMessage, PredictionMessageSchema, TelemetryMessageSchema } from '../../protocol/messages';
import { CommandReplySchema } from '../../protocol/commands';
import { encodeHead, makeHeadFile, type HeadManifest } from '../../protocol/head/format';
import { generateKeyPair, signHead } from '../../protocol/head/signature';
import { schemaErrors } from '../../protocol/validate';
import { deviceTopics, headSetTopic } from '../../protocol/topics';
import { checkLoopbackBroker, HeadChecker, SimDeviceModel, type SimClient, SimulatedFleet, type SimSink } from '../../operator/fleet/simulate';
import { FakeBroker } from '../support/fake-broker';
import { rejectsWith } from '../support/assertions';

configureLogging({ level: 'silent' });

const PREFIX = 'edgehead';
const DEVICE_TOPIC = headSetTopic(PREFIX, { kind: 'device', device: 'd1' });
const GROUP_TOPIC = headSetTopic(PREFIX, { kind: 'group', group: 'sim' });
const FLEET_TOPIC = headSetTopic(PREFIX, { kind: 'all' });

function valid(schema: TSchema, value: unknown, what: string): void {
  assert.deepEqual(schemaErrors(schema, value, what), [], `${what}: ${JSON.stringify(value)}`);
}

function head(version: number, opts: { id?: string; shadow?: HeadManifest['shadow']; kernel?: number[]; classes?: string[] } = {}): Uint8Array {
  const classes = opts.classes ?? ['land', 'sea'];
  return encodeHead(
    makeHeadFile({
      id: opts.id ?? 'landsea',
      version,
      classes,
      extractor: { id: 'mobilenet_v2_140', fingerprint: createHash('sha256').update('m').digest('hex') },
      kernel: new Float32Array(opts.kernel ?? [0.5, -0.5, 1, 2]),
      bias: new Float32Array(classes.map(() => 0)),
      createdAt: new Date('2026-01-01T00:00:00Z'),
      ...(opts.shadow ? { shadow: opts.shadow } : {}),
    }),
  );
}

class Recorder implements SimSink {
  states: HeadStateMessage[] = [];
  births: BirthMessage[] = [];
  predictions: PredictionMessage[] = [];
  answers: (HeadUpdateStatus | 'ignored')[] = [];
  headState(s: HeadStateMessage) {
    this.states.push(s);
  }
  birth(b: BirthMessage) {
    this.births.push(b);
  }
  prediction(p: PredictionMessage) {
    this.predictions.push(p);
  }
  answered(s: HeadUpdateStatus | 'ignored') {
    this.answers.push(s);
  }
  get last(): HeadStateMessage {
    return this.states.at(-1)!;
  }
}

function device(opts: { publicKeys?: string[]; rejectAll?: boolean; shadowAgreement?: number } = {}) {
  const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
  const sink = new Recorder();
  const model = new SimDeviceModel(
    { device: 'd1', groups: ['sim'], prefix: PREFIX, labels: ['cat', 'dog'], checker: new HeadChecker(opts.publicKeys ?? []), rejectAll: opts.rejectAll, shadowAgreement: opts.shadowAgreement, clock, random: () => 0.5 },
    sink,
  );
  return { model, sink, clock };
}

const cid = (bytes: Uint8Array) => correlationIdOf(sha256Hex(bytes));

test('the messages a simulated device builds validate against the protocol schemas', () => {
  const { model, sink, clock } = device();
  valid(BirthMessageSchema, model.birth(), 'birth');
  valid(HeadStateMessageSchema, model.headState(), 'head/state');
  assert.equal(model.headState().lastUpdate.via, 'startup');
  const t0 = model.telemetry();
  valid(TelemetryMessageSchema, t0, 'telemetry');
  assert.equal(t0.latencyMs.total, null, 'no frame yet: no latency');
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    model.frame();
  }
  assert.equal(sink.predictions.length, 3);
  for (const p of sink.predictions) valid(PredictionMessageSchema, p, 'prediction');
  assert.deepEqual(sink.predictions.map((p) => p.frameId), [1, 2, 3]);
  assert.ok(sink.predictions.every((p) => ['cat', 'dog'].includes(p.top[0]!.label)));
  const t1 = model.telemetry();
  valid(TelemetryMessageSchema, t1, 'telemetry');
  assert.equal(t1.frames.ok, 3);
  assert.equal(t1.uptimeSec, 3);
  assert.ok(t1.latencyMs.total !== null && t1.latencyMs.total.p95 >= t1.latencyMs.total.p50);
});

test('a valid head is applied: head/state with the correlation id, a new birth, predictions with its classes', () => {
  const { model, sink } = device();
  const bytes = head(2);
  assert.equal(model.onHead(GROUP_TOPIC, bytes, false), 'applied');
  const s = sink.last;
  valid(HeadStateMessageSchema, s, 'head/state');
  assert.equal(s.lastUpdate.status, 'applied');
  assert.equal(s.lastUpdate.correlationId, cid(bytes));
  assert.equal(s.lastUpdate.via, GROUP_TOPIC);
  assert.deepEqual(s.lastUpdate.head, { id: 'landsea', version: 2 });
  assert.equal(s.active.id, 'landsea');
  assert.equal(s.previous?.id, 'sim');
  assert.equal(sink.births.at(-1)!.head.id, 'landsea');
  model.frame();
  assert.ok(['land', 'sea'].includes(sink.predictions[0]!.top[0]!.label));
  assert.deepEqual(sink.predictions[0]!.head, { id: 'landsea', version: 2 });
});

test('same bytes again: duplicate when live, ignored when a retained re-delivery on the same topic', () => {
  const { model, sink } = device();
  const bytes = head(2);
  model.onHead(GROUP_TOPIC, bytes, true);
  const n = sink.states.length;
  assert.equal(model.onHead(GROUP_TOPIC, bytes, true), 'ignored');
  assert.equal(sink.states.length, n, 'no head/state for an ignored re-delivery');
  assert.equal(model.onHead(GROUP_TOPIC, bytes, false), 'duplicate');
  assert.equal(sink.last.lastUpdate.correlationId, cid(bytes));
  assert.equal(model.onHead(FLEET_TOPIC, bytes, true), 'duplicate', 'another topic is processed');
});

test('older or equal versions are rejected as a downgrade; a broken payload with its decode reason', () => {
  const { model, sink } = device();
  model.onHead(DEVICE_TOPIC, head(3), false);
  assert.equal(model.onHead(DEVICE_TOPIC, head(2), false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /^downgrade: head landsea v2 <= v3/);
  assert.equal(sink.last.active.version, 3, 'nothing changed');
  assert.equal(model.onHead(DEVICE_TOPIC, head(3, { kernel: [9, 9, 9, 9] }), false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /already active with other weights/);
  const junk = new TextEncoder().encode('not a head');
  assert.equal(model.onHead(DEVICE_TOPIC, junk, false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /too short|bad magic/);
  assert.equal(sink.last.lastUpdate.correlationId, cid(junk));
  valid(HeadStateMessageSchema, sink.last, 'head/state');
});

test('an empty payload on a group topic (a cleared retained head) is ignored', () => {
  const { model, sink } = device();
  assert.equal(model.onHead(GROUP_TOPIC, new Uint8Array(0), true), 'ignored');
  assert.equal(sink.states.length, 0);
});

test('a group head does not replace a head of another id that came on the device topic', () => {
  const { model, sink } = device();
  model.onHead(DEVICE_TOPIC, head(1, { id: 'mine' }), false);
  assert.equal(model.onHead(GROUP_TOPIC, head(1, { id: 'theirs' }), false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /^lower precedence/);
  assert.equal(model.onHead(GROUP_TOPIC, head(2, { id: 'mine' }), false), 'applied', 'the same id follows the version rules alone');
});

test('with public keys: unsigned and foreign-signed heads are rejected, signed ones applied', () => {
  const ours = generateKeyPair();
  const theirs = generateKeyPair();
  const { model, sink } = device({ publicKeys: [ours.publicKeyPem] });
  const file = makeHeadFile({ id: 'k', version: 2, classes: ['a', 'b'], extractor: { id: 'x', fingerprint: 'f'.repeat(64) }, kernel: new Float32Array([1, 2]), bias: new Float32Array([0, 0]) });
  assert.equal(model.onHead(GROUP_TOPIC, encodeHead(file), false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /^signature: unsigned/);
  assert.equal(model.onHead(GROUP_TOPIC, encodeHead(signHead(file, theirs.privateKeyPem)), false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /^signature: unknown key id/);
  assert.equal(model.onHead(GROUP_TOPIC, encodeHead(signHead(file, ours.privateKeyPem)), false), 'applied');
});

test('a device told to reject answers rejected to every head', () => {
  const { model, sink } = device({ rejectAll: true });
  assert.equal(model.onHead(GROUP_TOPIC, head(2), false), 'rejected');
  assert.match(sink.last.lastUpdate.reason!, /simulated rejection/);
  assert.equal(sink.last.active.id, 'sim');
});

test('a shadow head runs beside the active one; its agreement is counted over the frames, then promote', async () => {
  const { model, sink } = device({ shadowAgreement: 0.8 });
  const bytes = head(2, { shadow: { frames: 5 } });
  assert.equal(model.onHead(GROUP_TOPIC, bytes, false), 'shadow');
  assert.equal(sink.last.shadow?.seen, 0);
  assert.equal(sink.last.active.id, 'sim', 'not swapped in');
  for (let i = 0; i < 5; i++) model.frame();
  const done = sink.last;
  valid(HeadStateMessageSchema, done, 'head/state');
  assert.equal(done.lastUpdate.status, 'shadow');
  assert.equal(done.lastUpdate.via, 'shadow');
  assert.equal(done.lastUpdate.correlationId, cid(bytes));
  assert.match(done.lastUpdate.reason!, /shadow run complete: agreement 0\.800/);
  assert.deepEqual([done.shadow?.seen, done.shadow?.agreement], [5, 0.8]);
  const reply = await model.command(JSON.stringify({ id: 'p', cmd: 'promote' }));
  assert.equal(reply.ok, true, reply.error);
  assert.equal(sink.last.lastUpdate.status, 'promoted');
  assert.equal(sink.last.active.id, 'landsea');
  assert.equal(sink.last.shadow, null);
});

test('a shadow head with autoPromoteAgreement promotes itself when the agreement reaches it', () => {
  const { model, sink } = device({ shadowAgreement: 1 });
  model.onHead(GROUP_TOPIC, head(2, { shadow: { frames: 2, autoPromoteAgreement: 0.9 } }), false);
  model.frame();
  model.frame();
  assert.equal(sink.last.lastUpdate.status, 'promoted');
  assert.equal(sink.last.active.id, 'landsea');
});

test('commands: rollback, discard, status, unknown and malformed requests', async () => {
  const { model, sink } = device();
  const none = await model.command('{"id":"1","cmd":"rollback"}');
  assert.deepEqual([none.ok, none.error], [false, 'no previous head to roll back to']);
  model.onHead(GROUP_TOPIC, head(2), false);
  const rb = await model.command('{"id":"2","cmd":"rollback"}');
  valid(CommandReplySchema, rb, 'reply');
  assert.equal(rb.ok, true);
  assert.equal(sink.last.lastUpdate.status, 'rolled-back');
  assert.equal(sink.last.lastUpdate.correlationId, null);
  assert.equal(sink.last.lastUpdate.via, 'cmd');
  assert.equal(sink.last.active.id, 'sim');
  assert.equal(sink.last.previous?.id, 'landsea');
  assert.equal(sink.births.at(-1)!.head.id, 'sim');
  assert.equal((await model.command('{"id":"3","cmd":"discard"}')).error, 'no head in shadow mode');
  model.onHead(GROUP_TOPIC, head(3, { shadow: { frames: 10 } }), false);
  const d = await model.command('{"id":"4","cmd":"discard"}');
  assert.equal(d.ok, true);
  assert.equal(sink.last.lastUpdate.status, 'discarded');
  const st = await model.command('{"id":5,"cmd":"status"}');
  assert.equal(st.id, '5');
  const data = st.data as { birth: unknown; telemetry: unknown; head: unknown };
  valid(BirthMessageSchema, data.birth, 'status.birth');
  valid(TelemetryMessageSchema, data.telemetry, 'status.telemetry');
  valid(HeadStateMessageSchema, data.head, 'status.head');
  const unknown = await model.command('{"id":"6","cmd":"explode"}');
  assert.equal(unknown.ok, false);
  assert.match(unknown.error!, /unknown command "explode"/);
  const bad = await model.command('{"cmd":');
  assert.deepEqual([bad.ok, bad.id], [false, null]);
  assert.deepEqual(sink.answers.filter((a) => a !== 'applied'), ['rolled-back', 'shadow', 'discarded']);
});

test('pause stops scheduled predictions, capture still classifies', async () => {
  const { model, sink } = device();
  await model.command('{"id":"1","cmd":"pause"}');
  assert.equal(model.frame(), undefined);
  const r = await model.command('{"id":"2","cmd":"capture"}');
  assert.equal(r.ok, true);
  assert.equal(sink.predictions.length, 1);
  assert.equal(sink.predictions[0]!.reason, 'capture');
  await model.command('{"id":"3","cmd":"resume"}');
  assert.ok(model.frame());
});

test('the fleet refuses brokers that are not on loopback, and bad counts', () => {
  for (const url of ['mqtt://127.0.0.1:1883', 'mqtt://localhost:1', 'mqtt://[::1]:1883']) checkLoopbackBroker(url);
  assert.throws(() => checkLoopbackBroker('mqtt://10.0.0.1:1883'), (e: Error & { code?: string }) => e.code === 'BAD_ARGS' && /loopback/.test(e.message));
  assert.throws(() => checkLoopbackBroker('mqtt://broker.example.com'), /loopback/);
  const ok = { broker: 'mqtt://127.0.0.1:1', clientFactory: () => new FakeClient() };
  assert.throws(() => new SimulatedFleet({ ...ok, devices: 0 }), /1 to 5000/);
  assert.throws(() => new SimulatedFleet({ ...ok, devices: 5001 }), /1 to 5000/);
  assert.throws(() => new SimulatedFleet({ ...ok, devices: 2, rejectDevices: ['nope'] }), /not simulated: nope/);
  assert.throws(() => new SimulatedFleet({ ...ok, devices: 2, broker: 'mqtt://192.168.1.2:1883' }), /loopback/);
  assert.deepEqual(new SimulatedFleet({ ...ok, devices: 12 }).ids.slice(0, 2), ['sim-01', 'sim-02']);
});

/** A FakeBroker as a simulated device's connection. */
class FakeClient extends FakeBroker implements SimClient {
  killed = false;
  will: { topic: string; payload: string } | undefined;
  async open(): Promise<void> {
    this.start();
    this.connect();
  }
  kill(): void {
    this.killed = true;
    this.disconnect('killed');
  }
}

test('the fleet wiring: birth and head/state on connect, predictions and telemetry on the clock, heads answered, stop and kill', async () => {
  const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
  const clients = new Map<string, FakeClient>();
  const fleet = new SimulatedFleet({
    broker: 'mqtt://127.0.0.1:1',
    devices: 3,
    clock,
    telemetryIntervalMs: 5000,
    predictionIntervalMs: 1000,
    clientFactory: (device, will) => {
      const c = new FakeClient();
      c.will = will;
      clients.set(device, c);
      return c;
    },
  });
  await fleet.start();
  const t = deviceTopics(PREFIX, 'sim-1', ['sim']);
  const c1 = clients.get('sim-1')!;
  valid(OfflineMessageSchema, JSON.parse(c1.will!.payload), 'will');
  assert.deepEqual([c1.will!.topic, JSON.parse(c1.will!.payload).reason], [t.status, 'connection lost']);
  assert.deepEqual([...c1.subscriptions].sort(), [...t.headSet, t.cmd].sort());
  assert.deepEqual(c1.sent.map((s) => [s.topic, s.opts.retain]), [[t.status, true], [t.headState, true]]);
  clock.advance(10_000);
  await new Promise((r) => setImmediate(r));
  const preds = c1.sentTo(t.predictions);
  const tele = c1.sentTo(t.telemetry);
  assert.equal(preds.length, 10, 'one prediction a second');
  assert.equal(tele.length, 2, 'telemetry every 5 s');
  for (const p of preds) valid(PredictionMessageSchema, JSON.parse(p.text), 'prediction');
  for (const m of tele) valid(TelemetryMessageSchema, JSON.parse(m.text), 'telemetry');
  assert.equal(fleet.stats().published.predictions, 30);
  assert.equal(fleet.stats().connected, 3);

  const bytes = head(2);
  for (const c of clients.values()) c.deliver(GROUP_TOPIC, bytes, false);
  const state = JSON.parse(c1.sentTo(t.headState).at(-1)!.text) as HeadStateMessage;
  assert.deepEqual([state.lastUpdate.status, state.lastUpdate.correlationId], ['applied', cid(bytes)]);
  c1.deliver(t.cmd, '{"id":"r1","cmd":"rollback"}');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(JSON.parse(c1.sentTo(t.cmdReply).at(-1)!.text).ok, true);
  await new Promise((r) => setImmediate(r));
  assert.equal(fleet.stats().headAnswers.applied, 3);
  assert.equal(fleet.stats().headAnswers['rolled-back'], 1);

  fleet.kill(['sim-2']);
  assert.equal(clients.get('sim-2')!.killed, true);
  assert.equal(fleet.stats().connected, 2);
  const before = clients.get('sim-2')!.sent.length;
  clock.advance(5000);
  assert.equal(clients.get('sim-2')!.sent.length, before, 'a killed device publishes nothing more');

  await fleet.stop();
  await fleet.done;
  const last = c1.sent.at(-1)!;
  assert.equal(last.topic, t.status);
  assert.deepEqual([JSON.parse(last.text).status, JSON.parse(last.text).reason], ['offline', 'shutdown']);
  assert.equal(clock.pending, 0, 'every timer cancelled');
});

test('durationMs stops the fleet', async () => {
  const clock = new ManualClock(0);
  const fleet = new SimulatedFleet({ broker: 'mqtt://localhost:1', devices: 2, clock, durationMs: 60_000, clientFactory: () => new FakeClient() });
  await fleet.start();
  let stopped = false;
  void fleet.done.then(() => (stopped = true));
  clock.advance(59_999);
  await new Promise((r) => setImmediate(r));
  assert.equal(stopped, false);
  clock.advance(1);
  await fleet.done;
  assert.equal(clock.pending, 0);
});

test('an unreachable broker: start() rejects', async () => {
  class Refusing extends FakeClient {
    override async open(): Promise<void> {
      throw new (await import('../../base/errors')).EdgeheadError('MQTT', 'cannot connect: refused');
    }
  }
  const fleet = new SimulatedFleet({ broker: 'mqtt://127.0.0.1:1', devices: 2, clientFactory: () => new Refusing() });
  await rejectsWith(fleet.start(), 'MQTT', /cannot connect/);
});
