/** Presence in-process: birth and head/state on every connection, re-published on demand; telemetry on the manual clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { Presence } from '../../agent/presence';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { birthMessage, type HeadStateMessage, OfflineMessageSchema, type TelemetryMessage } from '../../protocol/messages';
import { deviceTopics } from '../../protocol/topics';
import { FakeBroker } from '../support/fake-broker';

configureLogging({ level: 'silent' });
const topics = deviceTopics('edgehead', 'd1');
const sha = 'a'.repeat(64);

function setup() {
  const broker = new FakeBroker();
  const clock = new ManualClock(0);
  let version = 1;
  let telemetryCalls = 0;
  const presence = new Presence({
    broker,
    topics,
    deviceId: 'd1',
    clock,
    telemetryIntervalSec: 30,
    birth: () => birthMessage({ device: 'd1', groups: [], version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z', extractor: { id: 'x', fingerprint: sha }, head: { id: 'h', version, sha256: sha }, backend: { name: 'cpu', simd: false, threads: 1 } }),
    headState: () => ({ device: 'd1', marker: version }) as unknown as HeadStateMessage,
    telemetry: () => ({ n: ++telemetryCalls }) as unknown as TelemetryMessage,
    schedulePaused: () => false,
  });
  return { broker, clock, presence, setVersion: (v: number) => (version = v) };
}

const texts = (b: FakeBroker, t: string) => b.sentTo(t).map((s) => JSON.parse(s.text) as Record<string, unknown>);

test('every connection publishes the retained birth and head/state', async () => {
  const { broker, presence } = setup();
  presence.start();
  broker.connect();
  await Promise.resolve();
  broker.disconnect();
  broker.connect();
  await Promise.resolve();
  assert.equal(texts(broker, topics.status).length, 2);
  assert.equal(texts(broker, topics.headState).length, 2);
  assert.ok(broker.sentTo(topics.status).every((s) => s.opts.retain && s.opts.qos === 1));
  assert.ok(broker.sentTo(topics.headState).every((s) => s.opts.retain && s.opts.qos === 1));
  presence.stop();
});

test('publishBirth names the head of the moment; nothing is sent while disconnected (it is sent on connect)', async () => {
  const { broker, presence, setVersion } = setup();
  presence.start();
  setVersion(2);
  await presence.publishBirth();
  assert.equal(broker.sent.length, 0);
  broker.connect();
  setVersion(3);
  await presence.publishBirth();
  const heads = texts(broker, topics.status).map((b) => (b.head as { version: number }).version);
  assert.deepEqual(heads, [2, 3]);
  presence.stop();
});

test('telemetry every telemetryIntervalSec on the clock, QoS 0, skipped while disconnected; stop() ends it', async () => {
  const { broker, clock, presence } = setup();
  presence.start();
  clock.advance(30_000);
  assert.equal(broker.sentTo(topics.telemetry).length, 0, 'not connected');
  broker.connect();
  clock.advance(30_000);
  clock.advance(30_000);
  assert.equal(broker.sentTo(topics.telemetry).length, 2);
  assert.equal(broker.sentTo(topics.telemetry)[0]!.opts.qos, 0);
  presence.stop();
  clock.advance(120_000);
  assert.equal(broker.sentTo(topics.telemetry).length, 2);
  assert.equal(clock.pending, 0, 'no timer left');
});

test('the shutdown message is a valid retained offline status', () => {
  const { presence } = setup();
  const m = presence.shutdownMessage();
  assert.equal(m.topic, topics.status);
  assert.deepEqual(m.opts, { qos: 1, retain: true });
  const body = JSON.parse(m.payload);
  assert.ok(Value.Check(OfflineMessageSchema, body));
  assert.equal(body.reason, 'shutdown');
});
