/** TLS: Mosquitto with a test CA and require_certificate; the agent's client certificate; a wrong CA refused. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { makePki, type TestPki } from '../support/certs';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

describe('MQTT over TLS with client certificates', { skip: !MOSQUITTO && 'mosquitto not installed' }, () => {
  let pki: TestPki;
  let m: Mosquitto;
  const clientTls = () => ({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });

  before(async () => {
    pki = makePki();
    m = await Mosquitto.start({ tls: { cafile: pki.ca, certfile: pki.serverCert, keyfile: pki.serverKey, requireCertificate: true } });
  });
  after(() => m.stop());

  const watcher = () =>
    Collector.connect(m.url, ['edgehead/#'], { ca: require('node:fs').readFileSync(pki.ca), cert: require('node:fs').readFileSync(pki.clientCert), key: require('node:fs').readFileSync(pki.clientKey) });

  test('the agent connects with its client certificate and publishes', async () => {
    const sub = await watcher();
    const agent = AgentProcess.start(testConfig(m.url, { device: { id: 'dev-tls' }, mqtt: { tls: clientTls() } }));
    try {
      const p = await sub.waitFor('prediction over TLS', () => sub.json('edgehead/dev-tls/predictions')[0]);
      assert.equal(p.frameId, 1);
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
    }
  });

  test('a wrong CA is refused with a clear error and the agent never connects', async () => {
    const sub = await watcher();
    // debug: the client logs each reconnection attempt ("reconnecting ... attempt=N")
    const cfg = testConfig(m.url, { device: { id: 'dev-badca' }, mqtt: { tls: { ...clientTls(), ca: pki.rogueCa } }, log: { level: 'debug' } });
    const agent = AgentProcess.start(cfg);
    const attempts = () => [...agent.stderr.matchAll(/\[mqtt\] reconnecting .*attempt=(\d+)/g)].map((x) => Number(x[1]));
    try {
      await sub.waitFor('TLS error in the log', () => /TLS error talking to mqtts:\/\/127\.0\.0\.1:\d+: .*certificate/i.test(agent.stderr), 30_000);
      const seen = attempts().length;
      await sub.waitFor('two more connection attempts after the TLS error', () => attempts().length >= seen + 2 || !agent.running, 30_000);
      assert.ok(agent.running, 'the agent keeps running (and retrying) instead of crashing');
      assert.equal(sub.messages.filter((x) => x.topic.startsWith('edgehead/dev-badca/')).length, 0, 'nothing got through');
      assert.doesNotMatch(agent.stderr, /\[mqtt\] connected/, 'never connected');
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
    }
  });

  test('without the client certificate the broker refuses the agent', async () => {
    const sub = await watcher();
    const agent = AgentProcess.start(testConfig(m.url, { device: { id: 'dev-nocert' }, mqtt: { tls: { ca: pki.ca } } }));
    try {
      await sub.waitFor('an error in the log', () => /error/i.test(agent.stderr), 30_000);
      assert.equal(sub.messages.filter((x) => x.topic.startsWith('edgehead/dev-nocert/')).length, 0);
    } finally {
      await agent.kill('SIGKILL');
      await sub.close();
    }
  });
});
