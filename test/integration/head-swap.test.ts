/**
 * Head hot-swap on the real agent (Mosquitto, directory source every 100 ms): push with mosquitto_pub -f,
 * predictions switch labels with no failed or skipped frame, rollback, shadow mode, group retained heads.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { correlationIdOf, type HeadStateMessage, type PredictionMessage } from '../../protocol/messages';
import { sha256Hex } from '../../base/hash';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { runCli, tmpDir } from '../support/cli';
import { decoded, rawEncode, trainLandSeaHead } from '../support/heads';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const PUB = '/usr/bin/mosquitto_pub';
const skip = (!MOSQUITTO || !fs.existsSync(PUB)) && 'mosquitto / mosquitto-clients not installed';

describe('head hot-swap over MQTT', { skip }, () => {
  let m: Mosquitto;
  let headB: Uint8Array;
  let fileB: string;
  const dir = tmpDir('heads-');

  before(async () => {
    m = await Mosquitto.start();
    fileB = path.join(dir, 'landsea.head');
    headB = await trainLandSeaHead(fileB);
  });
  after(() => m.stop());

  const pubFile = (topic: string, file: string, retain = false) =>
    execFileSync(PUB, ['-h', '127.0.0.1', '-p', String(m.port), '-q', '1', '-t', topic, '-f', file, ...(retain ? ['-r'] : [])]);
  const states = (c: Collector, dev: string) => c.json<HeadStateMessage>(`edgehead/${dev}/head/state`);
  const preds = (c: Collector, dev: string) => c.json<PredictionMessage>(`edgehead/${dev}/predictions`);
  const stateFor = (c: Collector, dev: string, corr: string, status?: string) =>
    c.waitFor(`head/state for ${corr}`, () => states(c, dev).find((s) => s.lastUpdate.correlationId === corr && (!status || s.lastUpdate.status === status)));

  test('mosquitto_pub -f: applied, predictions switch to the new labels, no frame failed or skipped; rollback restores', async () => {
    const dev = 'dev-hs';
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const agent = AgentProcess.start(testConfig(m.url, { device: { id: dev }, schedule: { intervalMs: 100 } }));
    try {
      await sub.waitFor('demo predictions', () => preds(sub, dev).length >= 5);
      const corr = correlationIdOf(sha256Hex(headB));
      pubFile(`edgehead/${dev}/head/set`, fileB);
      const st = await stateFor(sub, dev, corr);
      assert.equal(st.lastUpdate.status, 'applied', st.lastUpdate.reason);
      assert.deepEqual(st.active.id, 'landsea');
      assert.equal(st.previous?.id, 'demo');
      process.stdout.write(`# receipt -> applied: ${st.lastUpdate.latencyMs} ms\n`);
      const swapMsg = await sub.waitFor('head-swap prediction', () => preds(sub, dev).find((p) => p.reason === 'head-swap'));
      assert.equal(swapMsg.head.id, 'landsea');
      await sub.waitFor('5 frames after the swap', () => preds(sub, dev).filter((p) => p.frameId > swapMsg.frameId).length >= 5);
      // A frame that was being captured when the swap landed finishes on the old head (at most one: runs never
      // overlap); every frame after that uses the new head and its labels.
      const after = preds(sub, dev).filter((p) => p.frameId > swapMsg.frameId);
      const inFlight = after.filter((p) => p.head.id === 'demo');
      assert.ok(inFlight.length <= 1, `old-head frames after the swap: ${inFlight.map((p) => p.frameId)}`);
      if (inFlight.length) assert.equal(inFlight[0]!.frameId, swapMsg.frameId + 1);
      for (const p of after.filter((x) => x.head.id !== 'demo')) {
        assert.equal(p.head.id, 'landsea');
        assert.ok(['land', 'sea'].includes(p.top[0]!.label));
      }
      const firstNew = preds(sub, dev).find((p) => p.head.id === 'landsea' && !p.reason)!;
      assert.ok(preds(sub, dev).filter((p) => p.frameId > firstNew.frameId).every((p) => p.head.id === 'landsea'), 'no old-head frame after a new-head frame');

      // Rollback: the demo head (4 classes) is back.
      await sub.client.publishAsync(`edgehead/${dev}/cmd`, JSON.stringify({ id: 'rb', cmd: 'rollback' }), { qos: 1 });
      const rb = await sub.waitFor('rollback reply', () => sub.json<{ id: string; ok: boolean; error?: string }>(`edgehead/${dev}/cmd/reply`).find((r) => r.id === 'rb'));
      assert.equal(rb.ok, true, rb.error);
      const rolled = await sub.waitFor('rolled-back state', () => states(sub, dev).find((s) => s.lastUpdate.status === 'rolled-back'));
      assert.equal(rolled.active.id, 'demo');
      assert.equal(rolled.previous?.id, 'landsea');
      const back = await sub.waitFor('demo predictions again', () => preds(sub, dev).filter((p) => p.head.id === 'demo' && p.frameId > swapMsg.frameId).slice(0, 3).length === 3 && preds(sub, dev).filter((p) => p.head.id === 'demo' && p.frameId > swapMsg.frameId));
      assert.ok(back.some((p) => ['fish', 'monument', 'renewable_energy', 'tool'].includes(p.top[0]!.label)));

      // No frame failed, no frame id skipped (head-swap re-predictions take ids of their own).
      await agent.kill('SIGTERM');
      const ids = preds(sub, dev).map((p) => p.frameId);
      assert.deepEqual(ids, ids.map((_, i) => i + 1), 'contiguous frame ids');
      assert.match(agent.stderr, /agent stopped frames=\d+ failed=0/);
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
    }
  });

  test('edgehead head push --device against the real agent: table says applied, exit 0; a rejected push exits 1', async () => {
    const dev = 'dev-push';
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const agent = AgentProcess.start(testConfig(m.url, { device: { id: dev } }));
    try {
      await sub.waitFor('agent up', () => preds(sub, dev).length >= 1, 60_000);
      const ok = await runCli(['head', 'push', '--broker', m.url, '--device', dev, '--timeout', '30', fileB]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, new RegExp(`^${dev}\\s+applied\\b`, 'm'));
      await sub.waitFor('landsea predictions', () => preds(sub, dev).some((p) => p.head.id === 'landsea' && !p.reason));
      const again = await runCli(['head', 'push', '--broker', m.url, '--device', dev, '--timeout', '30', fileB]);
      assert.equal(again.code, 0, again.stdout);
      assert.match(again.stdout, new RegExp(`^${dev}\\s+duplicate\\b`, 'm'));
      // A head for another extractor: the device rejects it, push reports the reason and exits 1.
      const h = decoded(headB);
      const wrong = path.join(dir, 'wrong.head');
      fs.writeFileSync(wrong, rawEncode({ ...h.manifest, version: 5, extractor: { id: 'other', fingerprint: '12'.repeat(32) } }, h.kernel, h.bias));
      const bad = await runCli(['head', 'push', '--broker', m.url, '--device', dev, '--timeout', '30', wrong]);
      assert.equal(bad.code, 1, bad.stdout);
      assert.match(bad.stdout, /rejected\s+wrong extractor fingerprint/);
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
    }
  });

  test('shadow mode: the candidate runs beside the active head, agreement is published, auto-promotion', async () => {
    const dev = 'dev-shadow';
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const agent = AgentProcess.start(testConfig(m.url, { device: { id: dev }, schedule: { intervalMs: 100 } }));
    try {
      await sub.waitFor('predictions', () => preds(sub, dev).length >= 2);
      // A second demo-class head in shadow: same labels as the active demo head, so agreement is meaningful.
      const demo = decoded(new Uint8Array(fs.readFileSync(path.join(__dirname, '..', '..', 'assets', 'heads', 'demo.head'))));
      const candidate = rawEncode({ ...demo.manifest, version: 2, shadow: { frames: 6, autoPromoteAgreement: 0.5 } }, demo.kernel, demo.bias);
      const f = path.join(dir, 'shadow.head');
      fs.writeFileSync(f, candidate);
      pubFile(`edgehead/${dev}/head/set`, f);
      const corr = correlationIdOf(sha256Hex(candidate));
      const sh = await stateFor(sub, dev, corr, 'shadow');
      assert.equal(sh.shadow?.candidate.version, 2);
      assert.equal(sh.active.version, 1, 'the active head is untouched while in shadow');
      const promoted = await sub.waitFor('auto-promotion', () => states(sub, dev).find((s) => s.lastUpdate.status === 'promoted'));
      assert.equal(promoted.active.version, 2);
      assert.match(promoted.lastUpdate.reason!, /agreement 1\.000 >= 0\.5/);
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
    }
  });

  test('group head published retained: a device that starts later converges to it', async () => {
    const dev = 'dev-late';
    pubFile('edgehead/groups/late-group/head/set', fileB, true);
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const agent = AgentProcess.start(testConfig(m.url, { device: { id: dev, groups: ['late-group'] } }));
    try {
      const st = await stateFor(sub, dev, correlationIdOf(sha256Hex(headB)), 'applied');
      assert.equal(st.active.id, 'landsea');
      assert.equal(st.lastUpdate.via, 'edgehead/groups/late-group/head/set');
      await sub.waitFor('landsea predictions', () => preds(sub, dev).some((p) => p.head.id === 'landsea' && !p.reason));
      // Restart: the persisted head is loaded, and the retained re-delivery is not applied twice.
      await agent.kill('SIGTERM');
      const again = AgentProcess.start(testConfig(m.url, { device: { id: dev, groups: ['late-group'] }, stateDir: JSON.parse(fs.readFileSync(agent.configFile, 'utf8')).stateDir }), { configFile: agent.configFile });
      try {
        const n = preds(sub, dev).length;
        await sub.waitFor('predictions after restart', () => preds(sub, dev).length >= n + 3);
        assert.ok(preds(sub, dev).slice(n).every((p) => p.head.id === 'landsea'), 'persisted head used from the first frame');
        assert.ok(!/head applied/.test(again.stderr), 'retained re-delivery ignored');
      } finally {
        await again.kill('SIGKILL');
      }
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
      execFileSync(PUB, ['-h', '127.0.0.1', '-p', String(m.port), '-t', 'edgehead/groups/late-group/head/set', '-r', '-n']);
    }
  });
});
