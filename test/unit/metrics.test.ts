/**
 * The Prometheus registry (agent/metrics/metrics.ts): its exposition from fake sources, and from the whole agent
 * in-process after a few frames and a head swap. No socket: the HTTP server and a real Prometheus are tested in
 * test/integration/metrics-prometheus.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { type Agent, createAgent } from '../../agent/agent';
import { AgentMetrics, type MetricsSources } from '../../agent/metrics/metrics';
import { parseListen } from '../../agent/metrics/server';
import { MemoryQueue } from '../../agent/store/memory-queue';
import { FrameStats } from '../../agent/telemetry/stats';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { defaultConfig } from '../../config/defaults';
import { checkConfig } from '../../config/load';
import type { Problem } from '../../protocol/messages';
import { meanRgbExtractor, rgbHead, ScriptedSource, until } from '../support/agent-parts';
import { tmpDir } from '../support/cli';
import { FakeBroker } from '../support/fake-broker';

/** The value of the one sample `name{labels}` (labels exactly as printed), or undefined when there is none. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function fakeSources(over: Partial<MetricsSources> = {}) {
  const state = {
    head: { id: 'pets', version: 3 },
    problems: [] as Problem[],
    queue: { depth: 4, bytes: 1200, dropped: 2, skipped: 1 },
    broker: { connected: true, reconnects: 5 },
    skipped: 7,
  };
  const frames = new FrameStats();
  const sources: MetricsSources = {
    deviceId: 'cam1',
    version: '1.2.3',
    startedAt: Date.UTC(2026, 0, 1),
    frames,
    scheduler: () => ({ ticks: 0, skipped: state.skipped, outsideWindow: 0, paused: 0 }),
    queue: () => state.queue,
    broker: () => state.broker,
    head: () => state.head,
    extractor: { id: 'mobilenet_v2_140', fingerprint: 'ab'.repeat(32) },
    backend: () => ({ name: 'wasm', simd: true, threads: 3 }),
    problems: () => state.problems,
    cpuTemperatureC: () => 51.5,
    rssBytes: () => 123456789,
    ...over,
  };
  return { state, frames, metrics: new AgentMetrics(sources) };
}

test('frames by outcome, stage histograms in seconds, queue, mqtt, backend, machine', async () => {
  const { frames, metrics } = fakeSources();
  frames.ok = 3;
  frames.failed = 1;
  frames.published = 2;
  frames.suppressed = 1;
  frames.record({ capture: 2, decode: 8, resize: 1, extract: 120, head: 0.5, total: 131.5 });
  frames.record({ capture: 3, decode: 9, resize: 1, extract: 400, head: 0.5, total: 413.5 });
  const text = await metrics.exposition();

  assert.match(text, /^# TYPE edgehead_frames_total counter$/m);
  for (const [outcome, n] of [['ok', 3], ['failed', 1], ['published', 2], ['suppressed', 1], ['skipped', 7]] as const) {
    assert.equal(sample(text, `edgehead_frames_total{outcome="${outcome}"}`), n, outcome);
  }
  assert.match(text, /^# TYPE edgehead_stage_duration_seconds histogram$/m);
  for (const stage of ['capture', 'decode', 'resize', 'extract', 'head', 'total']) {
    assert.equal(sample(text, `edgehead_stage_duration_seconds_count{stage="${stage}"}`), 2, stage);
  }
  assert.ok(Math.abs(sample(text, 'edgehead_stage_duration_seconds_sum{stage="extract"}')! - 0.52) < 1e-9);
  assert.equal(sample(text, 'edgehead_stage_duration_seconds_bucket{le="0.25",stage="extract"}'), 1, 'milliseconds become seconds');
  assert.equal(sample(text, 'edgehead_stage_duration_seconds_bucket{le="0.5",stage="extract"}'), 2);

  assert.equal(sample(text, 'edgehead_offline_queue_messages'), 4);
  assert.equal(sample(text, 'edgehead_offline_queue_bytes'), 1200);
  assert.equal(sample(text, 'edgehead_offline_queue_dropped_total'), 2);
  assert.equal(sample(text, 'edgehead_offline_queue_skipped_total'), 1);
  assert.equal(sample(text, 'edgehead_mqtt_connected'), 1);
  assert.equal(sample(text, 'edgehead_mqtt_reconnects_total'), 5);
  assert.equal(sample(text, 'edgehead_backend_threads'), 3);
  assert.equal(sample(text, 'edgehead_backend_info{backend="wasm",simd="true"}'), 1);
  assert.equal(sample(text, `edgehead_extractor_info{id="mobilenet_v2_140",fingerprint="${'ab'.repeat(32)}"}`), 1);
  assert.equal(sample(text, 'edgehead_agent_info{device="cam1",version="1.2.3"}'), 1);
  assert.equal(sample(text, 'edgehead_cpu_temperature_celsius'), 51.5);
  assert.equal(sample(text, 'process_resident_memory_bytes'), 123456789);
  assert.equal(sample(text, 'process_start_time_seconds'), Date.UTC(2026, 0, 1) / 1000);
});

test('gauges follow the state at each scrape: head info replaced on a swap, problems appear and clear', async () => {
  const { state, metrics } = fakeSources();
  let text = await metrics.exposition();
  assert.equal(sample(text, 'edgehead_head_info{id="pets",version="3"}'), 1);
  assert.equal(sample(text, 'edgehead_problems'), 0);
  assert.doesNotMatch(text, /^edgehead_problem\{/m);

  state.head = { id: 'pets', version: 4 };
  state.problems = [{ key: 'camera', message: 'camera unplugged', since: '2026-01-01T00:00:00.000Z' }];
  state.broker = { connected: false, reconnects: 6 };
  state.queue = { depth: 9, bytes: 3000, dropped: 2, skipped: 1 };
  text = await metrics.exposition();
  assert.equal(sample(text, 'edgehead_head_info{id="pets",version="4"}'), 1);
  assert.equal(sample(text, 'edgehead_head_info{id="pets",version="3"}'), undefined, 'the old head series is removed');
  assert.equal(text.match(/^edgehead_head_info\{/gm)!.length, 1);
  assert.equal(sample(text, 'edgehead_problems'), 1);
  assert.equal(sample(text, 'edgehead_problem{key="camera"}'), 1);
  assert.equal(sample(text, 'edgehead_mqtt_connected'), 0);
  assert.equal(sample(text, 'edgehead_offline_queue_messages'), 9);

  state.problems = [];
  text = await metrics.exposition();
  assert.equal(sample(text, 'edgehead_problems'), 0);
  assert.doesNotMatch(text, /^edgehead_problem\{/m, 'a problem that is over leaves no series');
});

test('no CPU temperature series where the machine has no thermal zone (not a fake 0)', async () => {
  const { metrics } = fakeSources({ cpuTemperatureC: () => null });
  assert.doesNotMatch(await metrics.exposition(), /edgehead_cpu_temperature_celsius/);
});

test('metrics.listen: host:port, [v6]:port; anything else is refused by the config check', () => {
  assert.deepEqual(parseListen('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseListen('[::1]:9464'), { host: '::1', port: 9464 });
  assert.deepEqual(parseListen('localhost:0'), { host: 'localhost', port: 0 });
  assert.throws(() => parseListen('127.0.0.1:70000'), /metrics\.listen: must be host:port with a port 0-65535 \(got "127\.0\.0\.1:70000"\)/);
  const env = {};
  assert.deepEqual(checkConfig({ data: { version: 1, metrics: { listen: '127.0.0.1:9464' } }, env }).errors, []);
  assert.equal(checkConfig({ data: { version: 1 }, env }).config?.metrics.listen, undefined, 'off by default');
  const bad = checkConfig({ data: { version: 1, metrics: { listen: '9464' } }, env }).errors;
  assert.equal(bad.length, 1);
  assert.match(bad[0]!, /metrics\.listen: must be host:port/);
});

test('the in-process agent: frames, stage histograms and the head after a swap, as Prometheus would read them', async () => {
  configureLogging({ level: 'silent' });
  const headFile = `${tmpDir('metrics-head-')}/start.head`;
  fs.writeFileSync(headFile, rgbHead('colours', 1));
  const c = defaultConfig();
  c.device.id = 'dev1';
  c.stateDir = tmpDir('metrics-state-');
  c.backend.name = 'cpu';
  c.predictions.console = 'off';
  c.schedule.intervalMs = 1000;
  c.head.file = headFile;
  const broker = new FakeBroker();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const source = new ScriptedSource();
  const agent: Agent = await createAgent({ config: c, broker, source, clock, queue: new MemoryQueue({ maxBytes: 1 << 20 }), extractor: meanRgbExtractor() });
  try {
    await agent.start();
    broker.connect();
    source.next({ error: 'camera unplugged' });
    for (let i = 1; i <= 4; i++) {
      clock.advance(1000);
      await until(`frame ${i}`, () => agent.stats.ok + agent.stats.failed >= i);
    }
    let text = await agent.metrics.exposition();
    assert.equal(sample(text, 'edgehead_frames_total{outcome="ok"}'), 3);
    assert.equal(sample(text, 'edgehead_frames_total{outcome="failed"}'), 1);
    assert.equal(sample(text, 'edgehead_stage_duration_seconds_count{stage="total"}'), 3, 'one observation per classified frame');
    assert.equal(sample(text, 'edgehead_stage_duration_seconds_count{stage="extract"}'), 3);
    assert.equal(sample(text, 'edgehead_head_info{id="colours",version="1"}'), 1);
    assert.equal(sample(text, 'edgehead_extractor_info{id="mean-rgb",fingerprint="' + 'ab'.repeat(32) + '"}'), 1);
    assert.equal(sample(text, 'edgehead_mqtt_connected'), 1);

    broker.deliver('edgehead/dev1/head/set', rgbHead('colours', 2));
    await until('head v2 active', () => agent.birthMessage().head.version === 2);
    text = await agent.metrics.exposition();
    assert.equal(sample(text, 'edgehead_head_info{id="colours",version="2"}'), 1);
    assert.doesNotMatch(text, /edgehead_head_info\{id="colours",version="1"\}/);
  } finally {
    await agent.stop();
  }
});
