/**
 * The metrics endpoint for real: the HTTP server (only /metrics, only where it is told to bind, closed on stop), the
 * agent as a subprocess scraped by a real Prometheus (Debian's package, on a free loopback port, scraping every
 * second) with its exposition checked by `promtool check metrics`, and an agent that refuses a metrics.listen in use.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AgentMetrics } from '../../agent/metrics/metrics';
import { MetricsServer } from '../../agent/metrics/server';
import { FrameStats } from '../../agent/telemetry/stats';
import { configureLogging } from '../../base/log';
import { AgentProcess, testConfig } from '../support/agent-process';
import { rejectsWith } from '../support/assertions';
import { freePort, Mosquitto, MOSQUITTO } from '../support/mosquitto';
import { Prometheus, PROMETHEUS, PROMTOOL, promtoolCheckMetrics } from '../support/prometheus';

function someMetrics(): AgentMetrics {
  return new AgentMetrics({
    deviceId: 'cam1',
    version: '1.0.0',
    startedAt: Date.now(),
    frames: new FrameStats(),
    scheduler: () => ({ ticks: 0, skipped: 0, outsideWindow: 0, paused: 0 }),
    queue: () => ({ depth: 0, bytes: 0, dropped: 0, skipped: 0 }),
    broker: () => ({ connected: false, reconnects: 0 }),
    head: () => ({ id: 'demo', version: 1 }),
    extractor: { id: 'x', fingerprint: 'f' },
    backend: () => ({ name: 'cpu', simd: false, threads: 1 }),
    problems: () => [],
  });
}

function request(port: number, method: string, path: string, agent?: http.Agent): Promise<{ status: number; type?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('the metrics HTTP server', () => {
  before(() => configureLogging({ level: 'silent' }));

  test('serves /metrics only, on the address it was given, and closes on stop', async () => {
    const server = new MetricsServer('127.0.0.1:0', someMetrics());
    await server.start();
    const { address, port } = server.address!;
    assert.equal(address, '127.0.0.1', 'bound where told, not on every interface');
    const keepAlive = new http.Agent({ keepAlive: true });
    try {
      const ok = await request(port, 'GET', '/metrics', keepAlive);
      assert.equal(ok.status, 200);
      assert.match(ok.type!, /^text\/plain; version=0\.0\.4/);
      assert.match(ok.body, /^edgehead_head_info\{id="demo",version="1"\} 1$/m);
      assert.equal((await request(port, 'GET', '/metrics?x=1')).status, 200);
      const head = await request(port, 'HEAD', '/metrics');
      assert.deepEqual([head.status, head.body], [200, '']);
      for (const p of ['/', '/metric', '/metrics/', '/metrics/x', '/favicon.ico']) assert.equal((await request(port, 'GET', p)).status, 404, p);
      assert.equal((await request(port, 'POST', '/metrics')).status, 405);
    } finally {
      await server.stop();
      keepAlive.destroy();
    }
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), resolve('connected')));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    assert.equal(refused, 'ECONNREFUSED', 'nothing listens after stop');
    await server.stop(); // idempotent
  });

  test('an address in use is refused with a one-line error saying what to do', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      await rejectsWith(new MetricsServer(`127.0.0.1:${port}`, someMetrics()).start(), 'BAD_CONFIG', /^metrics\.listen 127\.0\.0\.1:\d+: the address is in use .*choose another metrics\.listen/);
    } finally {
      taken.close();
    }
  });
});

const missing = !PROMETHEUS || !PROMTOOL ? 'prometheus/promtool not installed (apt-get install prometheus)' : !MOSQUITTO ? 'mosquitto not installed' : false;

describe('the agent scraped by a real Prometheus', { skip: missing }, () => {
  let broker: Mosquitto;
  let agent: AgentProcess;
  let prometheus: Prometheus | undefined;
  let target: string;

  before(async () => {
    broker = await Mosquitto.start();
    target = `127.0.0.1:${await freePort()}`;
    agent = AgentProcess.start(testConfig(broker.url, { metrics: { listen: target } }));
  });

  after(async () => {
    await prometheus?.stop();
    await agent.kill();
    await broker.stop();
  });

  test('Prometheus scrapes frames, stage latencies and the head; promtool finds nothing to lint', async () => {
    prometheus = await Prometheus.start([target]);
    const frames = await prometheus.waitFor('edgehead_frames_total{outcome="ok"}', (r) => r.length === 1 && Number(r[0]!.value[1]) > 0);
    assert.deepEqual({ job: frames[0]!.metric.job, instance: frames[0]!.metric.instance }, { job: 'edgehead', instance: target });
    assert.equal(agent.running, true, agent.stderr);

    const up = await prometheus.query(`up{instance="${target}"}`);
    assert.equal(up[0]?.value[1], '1');
    const head = await prometheus.query('edgehead_head_info');
    assert.deepEqual([head.length, head[0]!.metric.id, head[0]!.value[1]], [1, 'demo', '1']);
    const extract = await prometheus.waitFor('edgehead_stage_duration_seconds_count{stage="extract"}', (r) => r.length === 1 && Number(r[0]!.value[1]) > 0);
    assert.equal(extract[0]!.metric.stage, 'extract');
    const connected = await prometheus.waitFor('edgehead_mqtt_connected', (r) => r[0]?.value[1] === '1');
    assert.equal(connected.length, 1);
    const p95 = await prometheus.query('histogram_quantile(0.95, edgehead_stage_duration_seconds_bucket{stage="total"})');
    assert.ok(Number(p95[0]!.value[1]) > 0, JSON.stringify(p95));

    const exposition = await request(Number(target.split(':')[1]), 'GET', '/metrics');
    assert.equal(exposition.status, 200);
    const lint = promtoolCheckMetrics(exposition.body);
    assert.deepEqual(lint, { status: 0, output: '' }, exposition.body);
  });

  test('promtool does lint: it rejects a counter without _total (the check above can fail)', () => {
    const lint = promtoolCheckMetrics('# HELP frames Frames.\n# TYPE frames counter\nframes 1\n');
    assert.notEqual(lint.status, 0);
    assert.match(lint.output, /_total/);
  });
});

describe('an agent whose metrics.listen is taken', () => {
  test('refuses to start and says so', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      // Never connected: the start stops at the metrics port, before the broker.
      const agent = AgentProcess.start(testConfig('mqtt://127.0.0.1:1', { metrics: { listen: `127.0.0.1:${port}` } }));
      const exit = await agent.exited;
      assert.notEqual(exit.code, 0, agent.stderr);
      assert.match(agent.stderr, new RegExp(`metrics\\.listen 127\\.0\\.0\\.1:${port}: the address is in use`));
    } finally {
      taken.close();
    }
  });
});
