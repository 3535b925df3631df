/**
 * The agent process against real brokers: Mosquitto (Debian) and aedes (in-process), the same assertions for both.
 * Predictions with the documented schema, retained birth, telemetry, commands, last will after kill -9, clean stop.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Aedes } from 'aedes';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { freePort, Mosquitto, MOSQUITTO } from '../support/mosquitto';

interface BrokerUnderTest {
  url: string;
  stop(): Promise<void>;
}

const BROKERS: Record<string, () => Promise<BrokerUnderTest>> = {
  mosquitto: async () => {
    const m = await Mosquitto.start();
    return { url: m.url, stop: () => m.stop() };
  },
  aedes: async () => {
    const aedes = await Aedes.createBroker();
    const server = net.createServer(aedes.handle);
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return { url: `mqtt://127.0.0.1:${port}`, stop: () => new Promise<void>((r) => aedes.close(() => server.close(() => r()))) };
  },
};

const isIso = (s: unknown) => typeof s === 'string' && !Number.isNaN(Date.parse(s)) && s.endsWith('Z');

export function assertPrediction(p: Record<string, unknown>): void {
  assert.ok(isIso(p.ts), `ts ${p.ts}`);
  assert.ok(Number.isInteger(p.run) && (p.run as number) >= 1);
  assert.ok(Number.isInteger(p.frameId) && (p.frameId as number) >= 1);
  assert.match(String(p.source), /^(directory|webcam|stream|http):/);
  const top = p.top as { label: string; score: number }[];
  assert.ok(Array.isArray(top) && top.length >= 1);
  for (const t of top) {
    assert.equal(typeof t.label, 'string');
    assert.ok(t.score >= 0 && t.score <= 1);
  }
  for (let i = 1; i < top.length; i++) assert.ok(top[i - 1]!.score >= top[i]!.score, 'top-k sorted');
  assert.equal(typeof (p.head as { id: string }).id, 'string');
  assert.ok(Number.isInteger((p.head as { version: number }).version));
  assert.equal(typeof p.extractor, 'string');
  for (const k of ['capture', 'decode', 'resize', 'extract', 'head']) assert.equal(typeof (p.ms as Record<string, number>)[k], 'number', `ms.${k}`);
}

for (const [kind, startBroker] of Object.entries(BROKERS)) {
  describe(`agent over ${kind}`, { skip: kind === 'mosquitto' && !MOSQUITTO && 'mosquitto not installed' }, () => {
    let broker: BrokerUnderTest;
    before(async () => {
      broker = await startBroker();
    });
    after(() => broker.stop());

    test('predictions, retained birth, telemetry and commands', async () => {
      const sub = await Collector.connect(broker.url, ['edgehead/dev1/#']);
      const agent = AgentProcess.start(testConfig(broker.url));
      try {
        const preds = await sub.waitFor('3 predictions', () => {
          const p = sub.json('edgehead/dev1/predictions');
          return p.length >= 3 && p;
        });
        preds.forEach(assertPrediction);
        assert.deepEqual(preds.slice(0, 3).map((p) => p.frameId), [1, 2, 3]);
        assert.deepEqual(preds[0]!.head, { id: 'demo', version: 1 });
        assert.equal(preds[0]!.extractor, 'mobilenet_v2_140');
        assert.match(String(preds[0]!.source), /^directory:fish\/fish1\.jpg$/);
        assert.equal((preds[0]!.top as { label: string }[])[0]!.label, 'fish');

        // A subscriber that arrives later still gets the retained birth message.
        const late = await Collector.connect(broker.url, ['edgehead/dev1/status']);
        const birth = await late.waitFor('retained birth', () => late.messages.find((m) => m.retain));
        await late.close();
        const b = JSON.parse(birth.text);
        assert.equal(b.status, 'online');
        assert.equal(b.device, 'dev1');
        assert.deepEqual(b.groups, ['g1']);
        assert.match(b.version, /^\d+\.\d+\.\d+/);
        assert.equal(b.extractor.id, 'mobilenet_v2_140');
        assert.match(b.extractor.fingerprint, /^[0-9a-f]{64}$/);
        assert.equal(b.head.id, 'demo');
        assert.match(b.head.sha256, /^[0-9a-f]{64}$/);
        assert.equal(b.backend.name, 'wasm');
        assert.ok(isIso(b.startedAt));

        const tel = await sub.waitFor('telemetry', () => sub.json('edgehead/dev1/telemetry')[0]);
        for (const k of ['uptimeSec', 'rssMB', 'heapMB', 'tensors']) assert.equal(typeof tel[k], 'number', k);
        assert.equal(typeof (tel.frames as Record<string, number>).ok, 'number');
        assert.equal(typeof (tel.frames as Record<string, number>).skipped, 'number');
        assert.deepEqual(Object.keys(tel.latencyMs as object).sort(), ['capture', 'decode', 'extract', 'head', 'resize', 'total']);
        assert.equal((tel.mqtt as { connected: boolean }).connected, true);
        assert.equal(typeof (tel.offlineQueue as { depth: number }).depth, 'number');
        assert.equal((tel.loadAvg as number[]).length, 3);

        // Commands: a good one, an unknown one, a malformed one, status.
        const replies = () => sub.json<{ id: string | null; ok: boolean; error?: string; data?: Record<string, unknown> }>('edgehead/dev1/cmd/reply');
        await sub.client.publishAsync('edgehead/dev1/cmd', JSON.stringify({ id: 'c1', cmd: 'capture' }), { qos: 1 });
        const cap = await sub.waitFor('capture reply', () => replies().find((r) => r.id === 'c1'));
        assert.equal(cap.ok, true, cap.error);
        assertPrediction(cap.data!);
        assert.equal(cap.data!.reason, 'capture');
        await sub.client.publishAsync('edgehead/dev1/cmd', JSON.stringify({ id: 'c2', cmd: 'self-destruct' }), { qos: 1 });
        const unknown = await sub.waitFor('unknown reply', () => replies().find((r) => r.id === 'c2'));
        assert.equal(unknown.ok, false);
        assert.match(unknown.error!, /unknown command "self-destruct"/);
        await sub.client.publishAsync('edgehead/dev1/cmd', '{not json', { qos: 1 });
        const bad = await sub.waitFor('malformed reply', () => replies().find((r) => r.id === null));
        assert.match(bad.error!, /not JSON/);
        await sub.client.publishAsync('edgehead/dev1/cmd', JSON.stringify({ id: 'c3', cmd: 'status' }), { qos: 1 });
        const status = await sub.waitFor('status reply', () => replies().find((r) => r.id === 'c3'));
        assert.equal(status.ok, true);
        assert.equal((status.data!.birth as { status: string }).status, 'online');
        assert.ok(agent.running, 'agent survived the bad commands');

        // SIGTERM: a clean stop (exit 0; the forced exit after FORCED_EXIT_MS would be exit 1), retained "offline".
        const exit = await agent.kill('SIGTERM');
        assert.equal(exit.code, 0, agent.stderr);
        assert.doesNotMatch(agent.stderr, /forcing exit/);
        const off = await sub.waitFor('offline', () => sub.json<{ status: string; reason: string }>('edgehead/dev1/status').find((s) => s.status === 'offline'));
        assert.equal(off.reason, 'shutdown');
      } finally {
        await agent.kill('SIGKILL');
        await sub.close();
      }
    });

    test('last will: kill -9 makes the broker publish a retained "offline"', async () => {
      const cfg = testConfig(broker.url, { device: { id: 'dev-lwt' } });
      const sub = await Collector.connect(broker.url, ['edgehead/dev-lwt/status']);
      const agent = AgentProcess.start(cfg);
      try {
        await sub.waitFor('online', () => sub.json<{ status: string }>('edgehead/dev-lwt/status').find((s) => s.status === 'online'));
        await agent.kill('SIGKILL');
        const will = await sub.waitFor('will', () => sub.json<{ status: string; reason: string }>('edgehead/dev-lwt/status').find((s) => s.status === 'offline'), 20_000);
        assert.equal(will.reason, 'connection lost');
        const late = await Collector.connect(broker.url, ['edgehead/dev-lwt/status']);
        const retained = await late.waitFor('retained will', () => late.messages.find((m) => m.retain));
        assert.equal(JSON.parse(retained.text).status, 'offline');
        await late.close();
      } finally {
        await agent.kill('SIGKILL');
        await sub.close();
      }
    });
  });
}
