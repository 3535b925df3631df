/**
 * The data loop's device side through the whole agent in-process (createAgent on a fake broker, scripted frames,
 * the mean-colour extractor): classified frames become samples carrying the very features the classifier computed,
 * the collect commands answer, features-only mode never writes or sends a JPEG, no tensor leaks, and
 * `dataset pull`'s library (operator/dataset/pull.ts) empties the device into a data folder, skipping a device
 * that does not answer and never duplicating a sample already in the folder.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import * as tf from '@tensorflow/tfjs-core';
import { type Agent, createAgent } from '../../agent/agent';
import { extractFeatures } from '../../agent/inference/features';
import { MemoryQueue } from '../../agent/store/memory-queue';
import { ManualClock } from '../../base/clock';
import type { PublishOptions } from '../../mqtt/broker';
import { configureLogging } from '../../base/log';
import { defaultConfig } from '../../config/defaults';
import type { Config } from '../../config/schema';
import { pullSamples } from '../../operator/dataset/pull';
import { type CollectFetchReply, CollectFetchReplySchema, CommandReplySchema } from '../../protocol/commands';
import { decodeFeatures, SampleSchema } from '../../protocol/dataset';
import { FakeBroker } from '../support/fake-broker';
import { meanRgbExtractor, rgbHead, SAMPLE_JPEG, ScriptedSource, until } from '../support/agent-parts';
import { tmpDir } from '../support/cli';

/** The agent's fake broker, also handing each publish to a listener (the operator side of the wire). */
class WiredBroker extends FakeBroker {
  forward: ((topic: string, payload: string | Uint8Array) => void) | undefined;
  override publish(topic: string, payload: string | Uint8Array, opts: PublishOptions): Promise<void> {
    const p = super.publish(topic, payload, opts);
    this.forward?.(topic, payload);
    return p;
  }
}

let broker: WiredBroker;
let clock: ManualClock;
let agent: Agent;
let cfg: Config;

async function startAgent(over: (c: Config) => void): Promise<void> {
  const dir = tmpDir('collect-agent-');
  fs.writeFileSync(path.join(dir, 'start.head'), rgbHead('colours', 1));
  cfg = defaultConfig();
  cfg.device.id = 'dev1';
  cfg.stateDir = path.join(dir, 'state');
  cfg.backend.name = 'cpu';
  cfg.predictions.console = 'off';
  cfg.schedule.intervalMs = 1000;
  cfg.head.file = path.join(dir, 'start.head');
  cfg.collect = { ...cfg.collect, enabled: true, belowScore: 0, onLabelChange: false, sampleEvery: 1, imageWidth: 64 };
  over(cfg);
  broker = new WiredBroker();
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  agent = await createAgent({ config: cfg, broker, source: new ScriptedSource(), clock, queue: new MemoryQueue({ maxBytes: 1 << 20 }), extractor: meanRgbExtractor() });
  await agent.start();
  broker.connect();
}

async function frames(n: number): Promise<void> {
  const ok = agent.stats.ok;
  for (let i = 1; i <= n; i++) {
    clock.advance(1000);
    await until(`frame ${i}`, () => agent.stats.ok >= ok + i);
  }
}

async function command(cmd: string, args?: object): Promise<Record<string, unknown>> {
  const before = broker.sentTo(agent.topics.cmdReply).length;
  broker.deliver(agent.topics.cmd, JSON.stringify({ id: `t-${before}`, cmd, ...(args ? { args } : {}) }));
  await until('command reply', () => broker.sentTo(agent.topics.cmdReply).length > before);
  const reply = JSON.parse(broker.sentTo(agent.topics.cmdReply).at(-1)!.text) as Record<string, unknown>;
  assert.ok(Value.Check(CommandReplySchema, reply), JSON.stringify(reply));
  return reply;
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

beforeEach(() => configureLogging({ level: 'silent' }));
afterEach(async () => {
  await agent?.stop();
});

test('kept frames are samples with the classifier\'s own features, its prediction and a downscaled JPEG; no tensor leaks', async () => {
  await startAgent((c) => (c.collect.images = true));
  await frames(1); // warm-up: the first frame may allocate what later ones reuse
  const tensors = tf.memory().numTensors;
  await frames(3);
  assert.equal(tf.memory().numTensors, tensors, 'tensors do not grow with collected frames');
  const status = await command('collect-status');
  assert.equal((status.data as { count: number }).count, 4);
  const reply = await command('collect-fetch');
  assert.ok(reply.ok, String(reply.error));
  const data = reply.data as CollectFetchReply;
  assert.ok(Value.Check(CollectFetchReplySchema, data));
  assert.deepEqual(data.samples.map((s) => s.id), [1, 2, 3, 4].map((f) => `${agent.run}-${f}`));
  const expected = extractFeatures(meanRgbExtractor(), SAMPLE_JPEG, { resize: cfg.preprocess.resize, maxPixels: cfg.preprocess.maxPixels }).features;
  const predictions = broker.sentTo(agent.topics.predictions).map((p) => JSON.parse(p.text) as { frameId: number; top: { label: string; score: number }[] });
  for (const s of data.samples) {
    assert.ok(Value.Check(SampleSchema, s));
    assert.deepEqual([s.device, s.reason, s.dtype, s.image, s.head], ['dev1', 'sample', 'float16', true, { id: 'colours', version: 1 }]);
    const got = decodeFeatures(s);
    assert.equal(got.length, 3);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-3, `feature ${i}: ${got[i]} vs ${expected[i]}`);
    const published = predictions.find((p) => `${agent.run}-${p.frameId}` === s.id);
    if (published) assert.deepEqual(s.prediction, { label: published.top[0]!.label, score: published.top[0]!.score });
    const jpg = Buffer.from(data.images[s.id]!, 'base64');
    assert.deepEqual([jpg[0], jpg[1]], [0xff, 0xd8], 'a JPEG');
    assert.ok(jpg.length < SAMPLE_JPEG.length, 'downscaled');
  }
  assert.equal(filesUnder(path.join(cfg.stateDir, 'collect')).filter((f) => f.endsWith('.jpg')).length, 4);
  const ack = await command('collect-ack', { ids: data.samples.slice(0, 3).map((s) => s.id) });
  assert.deepEqual(ack.data, { deleted: 3 });
  assert.equal(((await command('collect-status')).data as { count: number }).count, 1);
});

test('features only (collect.images false): no JPEG is written under the state dir nor sent', async () => {
  await startAgent((c) => (c.collect.images = false));
  await frames(3);
  const data = (await command('collect-fetch')).data as CollectFetchReply;
  assert.equal(data.samples.length, 3);
  assert.ok(data.samples.every((s) => !s.image));
  assert.deepEqual(data.images, {});
  assert.deepEqual(filesUnder(cfg.stateDir).filter((f) => /\.jpe?g$/i.test(f)), []);
});

test('collect disabled: the collect commands fail with an error naming collect.enabled', async () => {
  await startAgent((c) => (c.collect.enabled = false));
  await frames(1);
  for (const cmd of ['collect-status', 'collect-fetch', 'collect-ack']) {
    const r = await command(cmd, cmd === 'collect-ack' ? { ids: [] } : undefined);
    assert.equal(r.ok, false);
    assert.match(String(r.error), /collect\.enabled/);
  }
  assert.equal(fs.existsSync(path.join(cfg.stateDir, 'collect')), false);
});

test('pull: pages through the device, writes DIR/unlabeled/<device>-<id>.{json,jpg}, acks, skips a silent device, never duplicates', async () => {
  await startAgent((c) => (c.collect.images = true));
  await frames(5);
  const out = tmpDir('collect-pull-');
  // One sample was pulled and labelled before (its ack was lost): it is acknowledged again, not written again.
  const first = `${agent.run}-1`;
  fs.mkdirSync(path.join(out, 'red'));
  fs.writeFileSync(path.join(out, 'red', `dev1-${first}.json`), '{}');

  const pullClock = new ManualClock(0);
  const handlers: ((topic: string, payload: Buffer, retained: boolean) => void)[] = [];
  const subscribed = new Set<string>();
  const requested: string[] = [];
  broker.forward = (topic, payload) => {
    if (subscribed.has(topic)) for (const h of handlers) h(topic, Buffer.from(payload), false);
  };
  const wire = {
    onMessage: (h: (typeof handlers)[number]) => void handlers.push(h),
    subscribe: async (topics: string[]) => void topics.forEach((t) => subscribed.add(t)),
    publish: async (topic: string, payload: string | Uint8Array) => {
      requested.push(topic);
      if (topic === agent.topics.cmd) broker.deliver(topic, payload); // 'ghost' is nobody: no answer
    },
  };
  const progress: string[] = [];
  const pulling = pullSamples({ broker: wire, prefix: cfg.mqtt.topicPrefix, devices: ['ghost', 'dev1'], out, timeoutMs: 5000, maxBytes: 2048, clock: pullClock, progress: (l) => progress.push(l) });
  await until('the request to ghost', () => requested.some((t) => t.includes('/ghost/')));
  pullClock.advance(5000);
  const results = await pulling;

  assert.equal(results[0]!.ok, false);
  assert.match(results[0]!.error!, /no answer to collect-fetch/);
  assert.deepEqual(results[1], { device: 'dev1', ok: true, written: 4, images: 4, known: 1, deleted: 5 });
  assert.ok(requested.filter((t) => t === agent.topics.cmd).length > 3, 'several fetches (maxBytes pages) and acks');
  const unlabeled = fs.readdirSync(path.join(out, 'unlabeled')).sort();
  assert.equal(unlabeled.length, 8);
  for (const f of [2, 3, 4, 5]) assert.ok(unlabeled.includes(`dev1-${agent.run}-${f}.json`) && unlabeled.includes(`dev1-${agent.run}-${f}.jpg`));
  assert.ok(unlabeled.every((f) => !f.includes(`-${first}.`)), 'the labelled sample is not written again');
  assert.equal(((await command('collect-status')).data as { count: number }).count, 0, 'deleted on the device after the acks');
  assert.ok(progress.some((l) => l.startsWith('ghost: skipped')));
});
