/**
 * The fleet server end to end: real Mosquitto, two real agents, simulated devices, `edgehead fleet serve` as a
 * process, and a real Prometheus scraping its /metrics. Fleet state from retained messages, the last will flipping
 * `up` to 0, a rollout whose canary rejects the head halting before the rest, and one that completes.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { generateKeyPair } from '../../protocol/head/signature';
import { SimulatedFleet } from '../../operator/fleet/simulate';
import { AgentProcess, testConfig } from '../support/agent-process';
import { runCli, tmpDir } from '../support/cli';
import { FleetServerProcess } from '../support/fleet-server';
import { trainLandSeaHead } from '../support/heads';
import { Mosquitto } from '../support/mosquitto';
import { PROMETHEUS, Prometheus } from '../support/prometheus';
import type { DeviceRow, RolloutView } from '../../operator/fleet/model';

const SIMS = ['sim-1', 'sim-2', 'sim-3'];

describe('fleet serve: Mosquitto, two agents, three simulated devices, Prometheus', { skip: !PROMETHEUS && 'prometheus is not installed' }, () => {
  let broker: Mosquitto;
  let agentA: AgentProcess;
  let agentB: AgentProcess;
  let sims: SimulatedFleet;
  let server: FleetServerProcess;
  let prom: Prometheus;
  let head: Uint8Array;
  let doneRollout = '';

  before(async () => {
    broker = await Mosquitto.start();
    const dir = tmpDir('fleet-serve-');
    head = await trainLandSeaHead(path.join(dir, 'landsea.head'), { id: 'landsea', version: 1 });
    const keys = generateKeyPair();
    const pub = path.join(dir, 'fleet.pub');
    fs.writeFileSync(pub, keys.publicKeyPem);
    agentA = AgentProcess.start(testConfig(broker.url, { device: { id: 'pi-a', groups: ['kitchen'] } }));
    // pi-b trusts only signed heads: it rejects the unsigned one the canary test rolls out.
    agentB = AgentProcess.start(testConfig(broker.url, { device: { id: 'pi-b', groups: ['kitchen'] }, head: { publicKeys: [pub] } }));
    sims = new SimulatedFleet({ broker: broker.url, prefix: 'edgehead', devices: SIMS.length, idPrefix: 'sim-', groups: () => ['kitchen'], telemetryIntervalMs: 1000, predictionIntervalMs: 500 });
    await sims.start();
    server = await FleetServerProcess.start(broker.url, { history: { resolutionSec: 1 } });
    prom = await Prometheus.start([server.hostPort]);
  });

  after(async () => {
    await prom?.stop();
    await server?.stop();
    await sims?.stop();
    await agentA?.kill();
    await agentB?.kill();
    await broker?.stop();
  });

  const row = (rows: DeviceRow[], id: string) => rows.find((r) => r.device === id);

  it('builds the fleet table from the wire: both agents and the simulated devices, online, with their heads', async () => {
    const rows = await server.waitFor('5 online devices with telemetry', async () => {
      const r = await server.devices();
      return r.length === 5 && r.every((d) => d.online === true && d.head && d.latencyMs) ? r : undefined;
    });
    assert.deepEqual(rows.map((r) => r.device), ['pi-a', 'pi-b', ...SIMS]);
    const a = row(rows, 'pi-a')!;
    assert.deepEqual(a.groups, ['kitchen']);
    assert.equal(a.head!.id, 'demo');
    assert.match(a.agentVersion ?? '', /^\d+\.\d+\.\d+/);
    assert.ok(a.latencyMs!.p95 >= a.latencyMs!.p50);
    const detail = await server.get<{ history: { t: number[]; latencyP50: (number | null)[] } }>('/api/devices/pi-a');
    assert.ok(detail.history.latencyP50.some((v) => v !== null), 'the history has latency points');
  });

  it('exports the fleet to a real Prometheus: up, head info, latency, predictions by label', async () => {
    const up = await prom.waitFor('edgehead_device_up', (r) => r.length === 5 && r.every((s) => s.value[1] === '1'));
    assert.deepEqual(up.map((s) => s.metric.device).sort(), ['pi-a', 'pi-b', ...SIMS]);
    assert.ok(up.every((s) => s.metric.group === 'kitchen'));
    const info = await prom.waitFor('edgehead_device_head_info{device="pi-a"}', (r) => r.length === 1);
    assert.equal(info[0]!.metric.head_id, 'demo');
    await prom.waitFor('edgehead_device_latency_p95_seconds{device="pi-a"}', (r) => r.length === 1 && Number(r[0]!.value[1]) > 0);
    await prom.waitFor('sum by (device) (edgehead_device_predictions_total{device="pi-a"})', (r) => r.length === 1 && Number(r[0]!.value[1]) > 0);
  });

  it('edgehead fleet status prints the same table from retained messages', async () => {
    const r = await runCli(['fleet', 'status', '--broker', broker.url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const devices = (JSON.parse(r.stdout) as { devices: DeviceRow[] }).devices;
    assert.deepEqual(devices.map((d) => d.device), ['pi-a', 'pi-b', ...SIMS]);
    assert.ok(devices.every((d) => d.online === true));
  });

  it('halts a rollout whose canary rejects the head, before anything reaches the rest of the group', async () => {
    const { status, body } = await server.startRollout('target=group:kitchen&canary=pi-b', head);
    assert.equal(status, 201, JSON.stringify(body));
    const view = await server.waitFor('the rollout to halt', async () => {
      const v = await server.get<RolloutView>(`/api/rollouts/${body.id}`);
      return v.phase === 'halted' ? v : undefined;
    });
    assert.match(view.haltReason ?? '', /pi-b.*reject.*signature/);
    const canary = view.devices.find((d) => d.device === 'pi-b')!;
    assert.equal(canary.state, 'rejected');
    // Nothing was published to the group: no retained head on its topic, and no other device answered.
    const retained = await retainedOn(broker.url, 'edgehead/groups/kitchen/head/set');
    assert.equal(retained, undefined, 'no retained head on the group topic');
    const rows = await server.devices();
    for (const id of ['pi-a', ...SIMS]) assert.notEqual(row(rows, id)!.head!.id, 'landsea', `${id} did not get the head`);
    const audit = fs.readFileSync(path.join(server.dataDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; rollout: string });
    assert.ok(audit.filter((e) => e.rollout === body.id).some((e) => /halt/.test(e.action)), 'the halt is in the audit log');
  });

  it('rolls a head out to a canary and then the rest; every device applies it', async () => {
    const { status, body } = await server.startRollout(`target=devices:${['pi-a', ...SIMS].join(',')}&canary=pi-a`, head);
    assert.equal(status, 201, JSON.stringify(body));
    const view = await server.waitFor('the rollout to finish', async () => {
      const v = await server.get<RolloutView>(`/api/rollouts/${body.id}`);
      if (v.phase === 'halted') throw new Error(`halted: ${v.haltReason}`);
      return v.phase === 'done' ? v : undefined;
    });
    assert.deepEqual(view.devices.map((d) => [d.device, d.stage, d.state]).sort(), [
      ['pi-a', 'canary', 'applied'],
      ...SIMS.map((s) => [s, 'rest', 'applied']),
    ]);
    const rows = await server.waitFor('the table to show the new head', async () => {
      const r = await server.devices();
      return ['pi-a', ...SIMS].every((id) => row(r, id)!.head?.id === 'landsea') ? r : undefined;
    });
    assert.equal(row(rows, 'pi-b')!.head!.id, 'demo');
    doneRollout = body.id;
  });

  it('edgehead fleet rollout: lists the rollouts and rolls the finished one back in one action', async () => {
    const list = await runCli(['fleet', 'rollout', 'list', '--server', server.url, '--json']);
    assert.equal(list.code, 0, list.stderr);
    const views = JSON.parse(list.stdout) as { rollouts: RolloutView[] } | RolloutView[];
    const ids = (Array.isArray(views) ? views : views.rollouts).map((v) => [v.id, v.phase]);
    assert.deepEqual(ids.slice(0, 2).map((x) => x[1]), ['done', 'halted'], 'newest first');
    const r = await runCli(['fleet', 'rollout', 'rollback', '--server', server.url, '--wait', doneRollout]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const view = await server.get<RolloutView>(`/api/rollouts/${doneRollout}`);
    assert.equal(view.phase, 'rolled-back');
    assert.ok(view.devices.every((d) => d.state === 'rolled-back'), JSON.stringify(view.devices));
    const rows = await server.waitFor('the devices back on their previous heads', async () => {
      const rs = await server.devices();
      return ['pi-a', ...SIMS].every((id) => row(rs, id)!.head?.id !== 'landsea') ? rs : undefined;
    });
    assert.equal(row(rows, 'pi-a')!.head!.id, 'demo');
    assert.equal(row(rows, 'sim-1')!.head!.id, 'sim');
  });

  it('turns edgehead_device_up to 0 when a device dies (its last will)', async () => {
    await agentA.kill('SIGKILL');
    await prom.waitFor('edgehead_device_up{device="pi-a"}', (r) => r.length === 1 && r[0]!.value[1] === '0');
    const rows = await server.devices();
    assert.equal(row(rows, 'pi-a')!.online, false);
    assert.equal(row(rows, 'pi-a')!.offlineReason, 'connection lost');
    assert.equal(row(rows, 'pi-b')!.online, true);
  });
});

/** The retained message on `topic`, or undefined: subscribes and waits for the SUBACK plus a moment. */
async function retainedOn(url: string, topic: string): Promise<Buffer | undefined> {
  const c = await mqtt.connectAsync(url);
  let got: Buffer | undefined;
  c.on('message', (t, p, packet) => {
    if (t === topic && packet.retain && p.length > 0) got = p;
  });
  await c.subscribeAsync(topic, { qos: 1 });
  // Retained messages are sent before the SUBACK is processed by most brokers; a ping round trip makes sure.
  await c.publishAsync(`${topic}/probe-${Date.now()}`, 'x', { qos: 1 });
  await c.endAsync();
  return got;
}
