/**
 * The offline buffer for real: Mosquitto goes away for ~10 s while the agent classifies every 200 ms; every frame
 * produced during the outage must arrive, in order. Then the same with an agent restart in the middle of the outage.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const skip = !MOSQUITTO && 'mosquitto not installed';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Pred = { run: number; frameId: number };

/** A persistent-session subscriber (clean: false, QoS 1) so the broker queues what arrives while it reconnects. */
const subscribe = (m: Mosquitto, id: string) => Collector.connect(m.url, [`edgehead/${id}/predictions`], { clientId: `watcher-${id}`, clean: false });

/** Frame ids per run in arrival order, duplicates (at-least-once re-sends) removed. */
function arrivals(sub: Collector, device: string): Pred[] {
  const seen = new Set<string>();
  return sub.json<Pred>(`edgehead/${device}/predictions`).filter((p) => {
    const k = `${p.run}:${p.frameId}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

function dirBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir, { withFileTypes: true }).reduce((a, e) => a + (e.isDirectory() ? dirBytes(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0);
}

function assertComplete(preds: Pred[], run: number, upTo: number): void {
  const ids = preds.filter((p) => p.run === run).map((p) => p.frameId);
  const missing = [];
  for (let i = 1; i <= upTo; i++) if (!ids.includes(i)) missing.push(i);
  assert.deepEqual(missing, [], `run ${run}: frames missing`);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `run ${run}: out of order at ${ids[i - 1]} -> ${ids[i]}`);
}

test('broker outage of ~10 s: every frame produced meanwhile arrives, in order', { skip }, async () => {
  const m = await Mosquitto.start();
  const sub = await subscribe(m, 'dev-out');
  const cfg = testConfig(m.url, { device: { id: 'dev-out' } });
  const agent = AgentProcess.start(cfg);
  try {
    await sub.waitFor('first predictions', () => arrivals(sub, 'dev-out').length >= 3);
    await m.stop();
    await sleep(10_000);
    assert.ok(dirBytes(path.join(cfg.stateDir as string, 'queue')) > 10_000, 'predictions were buffered on disk during the outage');
    await m.restart();
    const before = arrivals(sub, 'dev-out').length;
    // After the restart, the agent drains its queue; wait until fresh frames (produced after the outage) arrive.
    const status = await sub.waitFor('drained + live frames', () => {
      const a = arrivals(sub, 'dev-out');
      return a.length >= before + 50 + 5 && a;
    }, 60_000);
    const last = status.at(-1)!.frameId;
    assertComplete(status, status[0]!.run, last);
    assert.ok(last > 50, `only ${last} frames in ~10 s at 200 ms`);
  } finally {
    await agent.kill('SIGKILL');
    await sub.close();
    await m.stop();
  }
});

test('agent restart during an outage: predictions queued before the restart still arrive', { skip }, async () => {
  const m = await Mosquitto.start();
  const sub = await subscribe(m, 'dev-rs');
  const cfg = testConfig(m.url, { device: { id: 'dev-rs' } });
  let agent = AgentProcess.start(cfg);
  try {
    await sub.waitFor('first predictions', () => arrivals(sub, 'dev-rs').length >= 3);
    await m.stop();
    await sleep(3000);
    const exit = await agent.kill('SIGTERM');
    assert.equal(exit.code, 0, agent.stderr);
    const firstRun = arrivals(sub, 'dev-rs')[0]!.run;
    const lastBefore = Number(/frames=(\d+)/.exec(agent.stderr)?.[1] ?? NaN);
    agent = AgentProcess.start(cfg, { configFile: agent.configFile });
    await sleep(3000);
    await m.restart();
    const got = await sub.waitFor('second run live', () => {
      const a = arrivals(sub, 'dev-rs');
      return a.some((p) => p.run === firstRun + 1 && p.frameId >= 20) && a;
    }, 60_000);
    const firstRunIds = got.filter((p) => p.run === firstRun).map((p) => p.frameId);
    const expected = Number.isFinite(lastBefore) ? lastBefore : Math.max(...firstRunIds);
    assertComplete(got, firstRun, expected);
    assertComplete(got, firstRun + 1, 20);
    // Across the restart, order holds too: every first-run frame arrived before any second-run frame.
    const lastFirst = got.map((p) => p.run).lastIndexOf(firstRun);
    const firstSecond = got.findIndex((p) => p.run === firstRun + 1);
    assert.ok(lastFirst < firstSecond, 'first run delivered before the second');
  } finally {
    await agent.kill('SIGKILL');
    await sub.close();
    await m.stop();
  }
});
