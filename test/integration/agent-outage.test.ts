/**
 * The offline buffer for real: Mosquitto goes away while the agent classifies every 200 ms; every frame produced
 * during the outage must arrive, in order. Then the same with an agent restart in the middle of the outage.
 * The outage lasts until the agent has buffered a given number of predictions on disk (read from its queue files),
 * however long that takes on a slow machine: counts, not durations.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { decodeRecord } from '../../agent/store/queue-record';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const skip = !MOSQUITTO && 'mosquitto not installed';
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

/** The predictions in the agent's disk queue, read (never written) from its segment files while it runs. */
function queued(cfg: Record<string, unknown>, device: string): Pred[] {
  const dir = path.join(cfg.stateDir as string, 'queue');
  if (!fs.existsSync(dir)) return [];
  const out: Pred[] = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).sort()) {
    const buf = fs.readFileSync(path.join(dir, f));
    for (let off = 0; ; ) {
      const r = decodeRecord(buf, off);
      if (typeof r === 'string') break; // the end, or a record still being written
      if (r.msg.topic === `edgehead/${device}/predictions`) out.push(JSON.parse(r.msg.payload) as Pred);
      off += r.size;
    }
  }
  return out;
}

function assertComplete(preds: Pred[], run: number, upTo: number): void {
  const ids = preds.filter((p) => p.run === run).map((p) => p.frameId);
  const missing = [];
  for (let i = 1; i <= upTo; i++) if (!ids.includes(i)) missing.push(i);
  assert.deepEqual(missing, [], `run ${run}: frames missing`);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `run ${run}: out of order at ${ids[i - 1]} -> ${ids[i]}`);
}

test('broker outage of 50 frames: every frame produced meanwhile arrives, in order', { skip }, async () => {
  const m = await Mosquitto.start();
  const sub = await subscribe(m, 'dev-out');
  const cfg = testConfig(m.url, { device: { id: 'dev-out' } });
  const agent = AgentProcess.start(cfg);
  try {
    await sub.waitFor('first predictions', () => arrivals(sub, 'dev-out').length >= 3);
    await m.stop();
    // 50 frames buffered on disk: at 200 ms a frame, an outage of about 10 s
    const buffered = await sub.waitFor('50 predictions in the disk queue', () => {
      const q = queued(cfg, 'dev-out');
      return q.length >= 50 && q;
    }, 120_000);
    await m.restart();
    const lastBuffered = Math.max(...buffered.map((p) => p.frameId));
    // After the restart, the agent drains its queue; wait until fresh frames (produced after the outage) arrive.
    const got = await sub.waitFor('drained + live frames', () => {
      const a = arrivals(sub, 'dev-out');
      return a.some((p) => p.frameId >= lastBuffered + 5) && a;
    }, 60_000);
    assertComplete(got, got[0]!.run, Math.max(...got.map((p) => p.frameId)));
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
    const firstRun = arrivals(sub, 'dev-rs')[0]!.run;
    await m.stop();
    await sub.waitFor('10 predictions in the disk queue', () => queued(cfg, 'dev-rs').length >= 10, 120_000);
    const exit = await agent.kill('SIGTERM');
    assert.equal(exit.code, 0, agent.stderr);
    const lastBefore = Number(/frames=(\d+)/.exec(agent.stderr)?.[1] ?? NaN);
    agent = AgentProcess.start(cfg, { configFile: agent.configFile });
    await sub.waitFor('10 predictions of the second run in the disk queue', () => queued(cfg, 'dev-rs').filter((p) => p.run === firstRun + 1).length >= 10, 120_000);
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
