/**
 * The fleet simulator against a real Mosquitto: 20 simulated devices seen by a plain MQTT subscriber (retained
 * births and head/states, telemetry, predictions, all checked against the protocol schemas); a real signed head
 * pushed with operator/push.ts to their group (applied, then duplicate, with the push's correlation id); an unsigned
 * head refused by devices that hold public keys; a device told to reject; kill() making the broker publish the last
 * will; stop() publishing the shutdown message; and the `edgehead fleet simulate` command itself.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import mqtt, { type MqttClient } from 'mqtt';
import { configureLogging } from '../../base/log';
import { encodeHead } from '../../protocol/head/format';
import { generateKeyPair, signHead } from '../../protocol/head/signature';
import { BirthMessageSchema, HeadStateMessageSchema, OfflineMessageSchema, PredictionMessageSchema, TelemetryMessageSchema } from '../../protocol/messages';
import { parseTopic } from '../../protocol/topics';
import { schemaErrors } from '../../protocol/validate';
import { pushHead } from '../../operator/push';
import { SimulatedFleet } from '../../operator/fleet/simulate';
import { waitUntil } from '../support/assertions';
import { hasStackTrace, runCli, tmpDir } from '../support/cli';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';
import { kitchenHead } from '../support/push-fixtures';

configureLogging({ level: 'silent' });

const N = 20;

function valid(schema: TSchema, value: unknown, what: string): void {
  assert.deepEqual(schemaErrors(schema, value, what), [], what);
}

/** A plain subscriber: the last message per topic (and whether it came retained), and counts per kind. */
class Watcher {
  readonly last = new Map<string, { json: Record<string, unknown>; retained: boolean }>();
  readonly counts = new Map<string, number>();
  readonly errors: string[] = [];
  private constructor(
    readonly client: MqttClient,
    private readonly prefix: string,
  ) {
    client.on('message', (topic, payload, packet) => {
      const t = parseTopic(prefix, topic);
      if (!t || t.kind === 'head/set') return;
      this.counts.set(t.kind, (this.counts.get(t.kind) ?? 0) + 1);
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      } catch {
        this.errors.push(`${topic}: not JSON`);
        return;
      }
      const schema = { telemetry: TelemetryMessageSchema, predictions: PredictionMessageSchema, 'head/state': HeadStateMessageSchema, status: json.status === 'online' ? BirthMessageSchema : OfflineMessageSchema }[t.kind as string];
      if (schema) this.errors.push(...schemaErrors(schema, json, topic));
      this.last.set(topic, { json, retained: packet.retain });
    });
  }

  static async open(url: string, prefix: string): Promise<Watcher> {
    const client = mqtt.connect(url, { clientId: `watch-${prefix}`, reconnectPeriod: 0, protocolVersion: 4 });
    await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
    const w = new Watcher(client, prefix);
    await client.subscribeAsync(`${prefix}/#`, { qos: 1 });
    return w;
  }

  count(kind: string): number {
    return this.counts.get(kind) ?? 0;
  }

  of(kind: string): { device: string; json: Record<string, unknown>; retained: boolean }[] {
    return [...this.last.entries()].flatMap(([topic, v]) => {
      const t = parseTopic(this.prefix, topic);
      return t && t.kind === kind && 'device' in t ? [{ device: t.device, ...v }] : [];
    });
  }

  close(): Promise<void> {
    return this.client.endAsync();
  }
}

describe('fleet simulate against Mosquitto', { skip: MOSQUITTO ? false : 'mosquitto not installed' }, () => {
  let broker: Mosquitto;
  const keys = generateKeyPair();
  const signed = (version: number) => encodeHead(signHead(kitchenHead(version), keys.privateKeyPem));

  before(async () => {
    broker = await Mosquitto.start();
  });
  after(async () => {
    await broker?.stop();
  });

  test('20 devices: retained births and head/states, telemetry, predictions; a signed group push applied, then duplicate; unsigned rejected; kill -> last will; stop -> shutdown', async () => {
    const prefix = 'simtest';
    const fleet = new SimulatedFleet({ broker: broker.url, prefix, devices: N, publicKeys: [keys.publicKeyPem], telemetryIntervalMs: 300, predictionIntervalMs: 100 });
    let watcher: Watcher | undefined;
    try {
      await fleet.start();
      assert.equal(fleet.stats().connected, N);
      watcher = await Watcher.open(broker.url, prefix);
      const w = watcher;

      // Retained state, as a new subscriber sees it.
      const births = await waitUntil('20 retained births', () => {
        const b = w.of('status').filter((s) => s.retained && s.json.status === 'online');
        return b.length === N && b;
      });
      assert.deepEqual(births.map((b) => b.device).sort(), fleet.ids);
      assert.ok(births.every((b) => (b.json.groups as string[]).join() === 'sim'));
      const states = await waitUntil('20 retained head/states', () => {
        const s = w.of('head/state').filter((x) => x.retained);
        return s.length === N && s;
      });
      assert.ok(states.every((s) => (s.json.active as { id: string }).id === 'sim'));
      await waitUntil('telemetry and predictions from every device', () => w.of('telemetry').length === N && w.of('predictions').length === N);
      await waitUntil('frames counters that grow', () => w.of('telemetry').every((t) => (t.json.frames as { ok: number }).ok > 0));
      assert.deepEqual(w.errors, [], 'every payload validates');

      // A signed head to the group: every device applies it and answers with the push's correlation id.
      const bytes = signed(2);
      const first = await pushHead({ broker: broker.url, prefix, target: { kind: 'group', group: 'sim' }, payload: bytes, waitAcks: N, timeoutMs: 30_000 });
      assert.equal(first.ok, true, JSON.stringify(first.answers.filter((a) => a.status !== 'applied')));
      assert.equal(first.answers.length, N);
      assert.ok(first.answers.every((a) => a.status === 'applied'));
      await waitUntil('head/states carrying the correlation id', () =>
        w.of('head/state').filter((s) => (s.json.lastUpdate as { correlationId: string }).correlationId === first.correlationId).length === N,
      );
      await waitUntil('births naming the new head', () => w.of('status').every((s) => (s.json.head as { id: string }).id === 'kitchen'));
      await waitUntil('predictions with the new head', () => w.of('predictions').every((p) => (p.json.head as { id: string }).id === 'kitchen'));
      assert.ok(w.of('predictions').every((p) => ['cat', 'dog'].includes((p.json.top as { label: string }[])[0]!.label)));

      // The same bytes again: duplicate.
      const again = await pushHead({ broker: broker.url, prefix, target: { kind: 'group', group: 'sim' }, payload: bytes, waitAcks: N, timeoutMs: 30_000 });
      assert.equal(again.answers.length, N);
      assert.ok(again.answers.every((a) => a.status === 'duplicate'), JSON.stringify(again.answers[0]));

      // An unsigned head: every device holds the public key, so every device rejects it.
      const unsigned = encodeHead(kitchenHead(3));
      const refused = await pushHead({ broker: broker.url, prefix, target: { kind: 'group', group: 'sim' }, payload: unsigned, waitAcks: N, timeoutMs: 30_000 });
      assert.equal(refused.ok, false);
      assert.ok(refused.answers.every((a) => a.status === 'rejected' && /^signature: unsigned/.test(a.reason ?? '')), JSON.stringify(refused.answers[0]));
      assert.equal(fleet.stats().headAnswers.applied, N);

      // kill(): no DISCONNECT, so the broker publishes the retained last will.
      const victim = fleet.ids[2]!;
      fleet.kill([victim]);
      const will = await waitUntil('the last will', () => {
        const s = w.last.get(`${prefix}/${victim}/status`);
        return s?.json.status === 'offline' && s;
      });
      valid(OfflineMessageSchema, will.json, 'will');
      assert.equal(will.json.reason, 'connection lost');
      assert.equal(fleet.stats().connected, N - 1);

      await fleet.stop();
      await waitUntil('shutdown messages', () => w.of('status').filter((s) => s.json.reason === 'shutdown').length === N - 1);
      assert.equal(w.last.get(`${prefix}/${victim}/status`)!.json.reason, 'connection lost', 'a killed device sends no shutdown');
      assert.deepEqual(w.errors, []);
    } finally {
      await fleet.stop();
      await watcher?.close();
    }
  });

  test('a device told to reject answers rejected; the others apply', async () => {
    const prefix = 'simrej';
    const fleet = new SimulatedFleet({ broker: broker.url, prefix, devices: 3, rejectDevices: ['sim-2'] });
    try {
      await fleet.start();
      const r = await pushHead({ broker: broker.url, prefix, target: { kind: 'group', group: 'sim' }, payload: encodeHead(kitchenHead(5)), waitAcks: 3, timeoutMs: 30_000 });
      assert.deepEqual(
        r.answers.map((a) => [a.device, a.status]),
        [
          ['sim-1', 'applied'],
          ['sim-2', 'rejected'],
          ['sim-3', 'applied'],
        ],
      );
      assert.match(r.answers[1]!.reason!, /simulated rejection/);
      // A device (re)connecting later gets the retained group head and answers it too.
      const late = new SimulatedFleet({ broker: broker.url, prefix, devices: 1, idPrefix: 'late-' });
      const watcher = await Watcher.open(broker.url, prefix);
      try {
        await late.start();
        const s = await waitUntil('the late device answering the retained group head', () => {
          const st = watcher.last.get(`${prefix}/late-1/head/state`);
          return st && (st.json.lastUpdate as { correlationId: string | null }).correlationId === r.correlationId && st;
        });
        assert.equal((s.json.lastUpdate as { status: string }).status, 'applied');
        assert.equal((s.json.active as { id: string }).id, 'kitchen');
      } finally {
        await late.stop();
        await watcher.close();
      }
    } finally {
      await fleet.stop();
    }
  });

  test('`edgehead fleet simulate`: runs for --duration, prints progress and a JSON summary; refuses a non-loopback broker', async () => {
    const dir = tmpDir('sim-cli-');
    const pub = path.join(dir, 'fleet.pub');
    fs.writeFileSync(pub, keys.publicKeyPem);
    const r = await runCli(['fleet', 'simulate', '--broker', broker.url, '--devices', '5', '--duration', '2', '--prefix', 'simcli', '--prediction-interval', '0.2', '--stats-interval', '0.5', '--public-key', pub, '--json-stats']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; connected: number; devices: number; published: { predictions: number; offline: number } });
    const summary = lines.at(-1)!;
    assert.equal(summary.event, 'summary');
    assert.equal(summary.devices, 5);
    assert.ok(summary.published.predictions > 0);
    assert.equal(summary.published.offline, 5);
    assert.match(r.stderr, /5 simulated devices connected/);
    assert.match(r.stderr, /simulate done after [\d.]+ s: \d\/5 connected/);

    const bad = await runCli(['fleet', 'simulate', '--broker', 'mqtt://192.0.2.1:1883', '--devices', '2']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /only connect to a loopback broker/);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.ok(!hasStackTrace(bad.stderr));
  });
});
