/**
 * Bad head payloads against the real agent (signatures required): each rejected with its own reason, the active
 * head untouched, the agent alive; 200 mutated payloads over MQTT; kill -9 in the middle of persisting a head.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeHead, type HeadFile } from '../../protocol/head/format';
import { generateKeyPair, signHead } from '../../protocol/head/signature';
import { encodeHead } from '../../protocol/head/format';
import { correlationIdOf, type HeadStateMessage, type PredictionMessage, type TelemetryMessage } from '../../protocol/messages';
import { sha256Hex } from '../../base/hash';
import { prng } from '../../base/prng';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { tmpDir } from '../support/cli';
import { rawEncode, trainLandSeaHead } from '../support/heads';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const skip = !MOSQUITTO && 'mosquitto not installed';

describe('rejected head payloads', { skip }, () => {
  let m: Mosquitto;
  let sub: Collector;
  let agent: AgentProcess;
  let base: HeadFile;
  let stateDir: string;
  const dev = 'dev-rej';
  const keys = generateKeyPair();
  const otherKeys = generateKeyPair();
  const sign = (h: HeadFile, k = keys) => encodeHead(signHead(h, k.privateKeyPem));
  const states = () => sub.json<HeadStateMessage>(`edgehead/${dev}/head/state`);

  async function send(bytes: Uint8Array): Promise<HeadStateMessage> {
    const corr = correlationIdOf(sha256Hex(bytes));
    const n = states().length;
    await sub.client.publishAsync(`edgehead/${dev}/head/set`, Buffer.from(bytes), { qos: 1 });
    return sub.waitFor(`state for ${corr}`, () => states().slice(n).find((s) => s.lastUpdate.correlationId === corr));
  }

  before(async () => {
    m = await Mosquitto.start();
    const dir = tmpDir('rej-');
    const trained = await trainLandSeaHead(path.join(dir, 'b.head'), { id: 'landsea', version: 1 });
    base = decodeHead(trained, { maxBytes: 1 << 24 });
    fs.writeFileSync(path.join(dir, 'key.pub'), keys.publicKeyPem);
    sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const cfg = testConfig(m.url, { device: { id: dev }, head: { publicKeys: [path.join(dir, 'key.pub')], maxBytes: 300_000, rejectedKeep: 5 } });
    stateDir = cfg.stateDir as string;
    agent = AgentProcess.start(cfg);
    await sub.waitFor('agent up', () => sub.json(`edgehead/${dev}/predictions`).length >= 1, 60_000);
    const v2 = await send(sign({ ...base, manifest: { ...base.manifest, version: 2 } }));
    assert.equal(v2.lastUpdate.status, 'applied', v2.lastUpdate.reason);
  });
  after(async () => {
    await agent.kill('SIGKILL');
    await sub.close();
    await m.stop();
  });

  const valid = () => sign({ ...base, manifest: { ...base.manifest, version: 3 } });
  const mutate = (fn: (b: Buffer) => Buffer) => () => new Uint8Array(fn(Buffer.from(valid())));
  const manifestLen = (b: Uint8Array) => Buffer.from(b).readUInt32LE(8);
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['empty', () => new Uint8Array(0), /empty/i],
    ['garbage bytes', () => new Uint8Array(Buffer.from('x'.repeat(40) + 'not a head at all, just text')), /magic/i],
    ['truncated inside the header', mutate((b) => b.subarray(0, 8)), /header/i],
    ['truncated inside the manifest', mutate((b) => b.subarray(0, 12 + 20)), /manifest/i],
    ['truncated after the manifest', () => { const v = valid(); return v.subarray(0, 12 + manifestLen(v)); }, /truncated weights/i],
    ['truncated inside the weights', () => { const v = valid(); return v.subarray(0, v.length - 100); }, /truncated weights/i],
    ['wrong magic', mutate((b) => { b.write('NOPE', 0, 'latin1'); return b; }), /magic/i],
    ['wrong format version', mutate((b) => { b.writeUInt16LE(9, 4); return b; }), /format version.*9/i],
    ['manifest not JSON', mutate((b) => { b.write('{{{{', 12, 'latin1'); return b; }), /JSON/i],
    ['wrong feature dimension', () => sign({ manifest: { ...base.manifest, testVectors: undefined, version: 3, featureDim: 1280, tensors: { kernel: { shape: [1280, 2] }, bias: { shape: [2] } } }, kernel: new Float32Array(2560), bias: new Float32Array(2) }), /wrong feature dimension.*1280-d.*1792-d/],
    ['wrong extractor fingerprint', () => sign({ ...base, manifest: { ...base.manifest, version: 3, extractor: { id: 'mobilenet_v2_140', fingerprint: 'ab'.repeat(32) } } }), /wrong extractor fingerprint/],
    ['sha256 mismatch', mutate((b) => { b[b.length - 3] ^= 0x40; return b; }), /sha256/i],
    ['bad signature (another key)', () => sign({ ...base, manifest: { ...base.manifest, version: 3 } }, otherKeys), /signature: unknown key id/],
    ['bad signature (manifest changed after signing)', () => { const h = signHead({ ...base, manifest: { ...base.manifest, version: 3 } }, keys.privateKeyPem); return encodeHead({ ...h, manifest: { ...h.manifest, classes: ['land', 'ocean'] } }); }, /signature: bad signature/],
    ['unsigned while keys are configured', () => encodeHead({ ...base, manifest: { ...base.manifest, version: 3 } }), /signature: unsigned/],
    ['NaN weights', () => { const k = Float32Array.from(base.kernel); k[7] = NaN; return rawEncode({ ...base.manifest, version: 3 }, k, base.bias); }, /NaN|finite/i],
    ['Inf weights', () => { const bias = Float32Array.from(base.bias); bias[1] = Infinity; return rawEncode({ ...base.manifest, version: 3 }, base.kernel, bias); }, /Inf|finite/i],
    ['oversize', () => new Uint8Array(300_001), /too large.*300001.*300000/],
    ['older version', () => sign({ ...base, manifest: { ...base.manifest, version: 1 } }), /older version.*v1 < active v2/],
    ['test-vector mismatch', () => sign({ ...base, manifest: { ...base.manifest, version: 3, testVectors: base.manifest.testVectors!.map((t) => ({ ...t, logits: t.logits.map((l) => l + 0.5) })) } }), /test vectors not reproduced/],
  ];

  for (const [name, make, reason] of cases) {
    test(name, async () => {
      const st = await send(make());
      assert.equal(st.lastUpdate.status, 'rejected');
      assert.match(st.lastUpdate.reason ?? '', reason);
      assert.deepEqual([st.active.id, st.active.version], ['landsea', 2], 'active head untouched');
      assert.ok(agent.running);
    });
  }

  test('each case was rejected for a reason of its own', () => {
    const reasons = states().filter((s) => s.lastUpdate.status === 'rejected').map((s) => s.lastUpdate.reason);
    assert.ok(new Set(reasons).size >= cases.length - 3, `distinct reasons: ${new Set(reasons).size}`);
  });

  test('an equal version with the same sha256 is a duplicate delivery: acknowledged, nothing changes', async () => {
    const st = await send(sign({ ...base, manifest: { ...base.manifest, version: 2 } }));
    assert.equal(st.lastUpdate.status, 'duplicate');
  });

  test('rejected payloads are kept aside, bounded', () => {
    const kept = fs.readdirSync(path.join(stateDir, 'heads', 'rejected'));
    assert.equal(kept.filter((f) => f.endsWith('.bin')).length, 5);
    assert.equal(kept.filter((f) => f.endsWith('.json')).length, 5);
  });

  test('200 randomly mutated payloads: all answered, no crash, head unchanged, tensors flat', async () => {
    const tel = () => sub.json<TelemetryMessage>(`edgehead/${dev}/telemetry`);
    const t0 = await sub.waitFor('telemetry', () => tel().at(-1));
    const rand = prng(7);
    const original = valid();
    let answered = 0;
    for (let i = 0; i < 200; i++) {
      const b = Buffer.from(original);
      const kind = i % 3;
      let payload: Buffer;
      if (kind === 0) {
        for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
        payload = b;
      } else if (kind === 1) payload = b.subarray(0, Math.floor(rand() * b.length));
      else payload = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 2000) }, () => Math.floor(rand() * 256)));
      const st = await send(new Uint8Array(payload));
      assert.notEqual(st.lastUpdate.status, 'applied');
      assert.deepEqual([st.active.id, st.active.version], ['landsea', 2]);
      answered++;
    }
    assert.equal(answered, 200);
    const n = tel().length;
    const t1 = await sub.waitFor('fresh telemetry', () => tel().length > n && tel().at(-1));
    assert.equal(t1.tensors, t0.tensors, 'tensor count flat');
    assert.ok(t1.rssMB - t0.rssMB < 64, `rss grew ${t1.rssMB - t0.rssMB} MB`);
    assert.ok(agent.running);
    const p = sub.json<PredictionMessage>(`edgehead/${dev}/predictions`).at(-1)!;
    assert.equal(p.head.id, 'landsea');
  });
});

describe('kill -9 while a head is being persisted', { skip }, () => {
  test('the restarted agent loads a valid head', async () => {
    const m = await Mosquitto.start();
    const dev = 'dev-crash';
    const dir = tmpDir('crash-');
    const b1 = await trainLandSeaHead(path.join(dir, 'v1.head'), { version: 1 });
    const h = decodeHead(b1, { maxBytes: 1 << 24 });
    const b2 = encodeHead({ ...h, manifest: { ...h.manifest, version: 2 } });
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const cfg = testConfig(m.url, { device: { id: dev } });
    let agent = AgentProcess.start(cfg, { env: { EDGEHEAD_TEST_PERSIST_PAUSE_MS: '0' } });
    try {
      await sub.waitFor('up', () => sub.json(`edgehead/${dev}/predictions`).length >= 1, 60_000);
      await sub.client.publishAsync(`edgehead/${dev}/head/set`, Buffer.from(b1), { qos: 1 });
      await sub.waitFor('v1 applied', () => sub.json<HeadStateMessage>(`edgehead/${dev}/head/state`).find((s) => s.active.version === 1 && s.active.id === 'landsea'));
      await agent.kill('SIGTERM');
      agent = AgentProcess.start(cfg, { configFile: agent.configFile, env: { EDGEHEAD_TEST_PERSIST_PAUSE_MS: '30000' } });
      await sub.waitFor('restarted', () => /agent started/.test(agent.stderr), 60_000);
      await sub.client.publishAsync(`edgehead/${dev}/head/set`, Buffer.from(b2), { qos: 1 });
      await sub.waitFor('paused between renames', () => /paused before renaming the new head into place/.test(agent.stderr));
      assert.ok(!fs.existsSync(path.join(cfg.stateDir as string, 'heads', 'active.head')), 'caught with no active.head on disk');
      await agent.kill('SIGKILL');
      const n = sub.json(`edgehead/${dev}/predictions`).length;
      agent = AgentProcess.start(cfg, { configFile: agent.configFile });
      await sub.waitFor('predictions after the crash', () => sub.json(`edgehead/${dev}/predictions`).length >= n + 3, 60_000);
      const after = sub.json<PredictionMessage>(`edgehead/${dev}/predictions`).slice(n);
      assert.ok(after.every((p) => p.head.id === 'landsea' && p.head.version === 1), JSON.stringify(after.map((p) => p.head)));
      assert.match(agent.stderr, /no valid active head on disk; starting from the previous one/);
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
      await m.stop();
    }
  });
});
