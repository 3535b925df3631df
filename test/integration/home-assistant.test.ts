/**
 * Home Assistant discovery on the real agent and Mosquitto: the full retained set is valid JSON with what each HA
 * platform requires, its templates render (with Jinja2, HA's engine, when python3-jinja2 is installed) on the
 * agent's real payloads, the label options follow a head swap, HA's `online` re-announces, and a restart with
 * homeassistant.enabled=false leaves no retained config behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HA_ENTITIES } from '../../protocol/home-assistant';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { tmpDir } from '../support/cli';
import { DISCOVERY_TOPIC, haConfigErrors } from '../support/ha-schema';
import { trainLandSeaHead } from '../support/heads';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const skip = !MOSQUITTO && 'mosquitto not installed';
const DEV = 'dev-ha';
type Json = Record<string, unknown>;

/** Renders HA-style value templates with Jinja2 (value, value_json, to_json); undefined without python3-jinja2. */
function renderJinja(cases: { template: string; payload: string }[]): string[] | undefined {
  const script = `
import json, sys
try:
    import jinja2
except ImportError:
    print("null"); sys.exit(0)
env = jinja2.Environment()
env.filters["to_json"] = lambda v: json.dumps(v)
out = []
for c in json.load(sys.stdin):
    out.append(str(env.from_string(c["template"]).render(value=c["payload"], value_json=json.loads(c["payload"]))))
print(json.dumps(out))`;
  try {
    return (JSON.parse(execFileSync('python3', ['-c', script], { input: JSON.stringify(cases) }).toString()) as string[] | null) ?? undefined;
  } catch {
    return undefined;
  }
}

describe('Home Assistant discovery over MQTT', { skip }, () => {
  let m: Mosquitto;
  before(async () => {
    m = await Mosquitto.start();
  });
  after(() => m.stop());

  const configs = (c: Collector) => c.messages.filter((x) => x.topic.startsWith('homeassistant/') && x.topic.includes(`/${DEV}/`) && x.text !== '');
  const labelOptions = (c: Collector) => configs(c).filter((x) => x.topic === `homeassistant/sensor/${DEV}/label/config`).map((x) => (JSON.parse(x.text) as Json).options as string[]);

  test('retained configs, templates, options after a head swap, HA online, cleared when disabled', async () => {
    const stateDir = tmpDir('ha-state-');
    const headFile = path.join(tmpDir('ha-head-'), 'landsea.head');
    const head = await trainLandSeaHead(headFile);
    const sub = await Collector.connect(m.url, ['homeassistant/#', `edgehead/${DEV}/#`]);
    const cfg = testConfig(m.url, { device: { id: DEV }, stateDir, schedule: { intervalMs: 200 } });
    let agent = AgentProcess.start(cfg);
    try {
      await sub.waitFor('every entity config', () => new Set(configs(sub).map((x) => x.topic)).size === HA_ENTITIES.length);
      // A fresh subscriber gets the whole set as retained messages.
      const fresh = await Collector.connect(m.url, ['homeassistant/#']);
      const retained = await fresh.waitFor('retained set', () => configs(fresh).length === HA_ENTITIES.length && configs(fresh));
      await fresh.close();
      for (const msg of retained) {
        assert.equal(msg.retain, true, msg.topic);
        const platform = DISCOVERY_TOPIC.exec(msg.topic)?.[1];
        assert.ok(platform, msg.topic);
        const config = JSON.parse(msg.text) as Json;
        assert.deepEqual(haConfigErrors(platform, config), [], msg.topic);
        assert.deepEqual((config.device as Json).identifiers, [DEV]);
      }
      assert.deepEqual(labelOptions(sub)[0], ['fish', 'monument', 'renewable_energy', 'tool', 'unknown']);

      // The templates render on the agent's real payloads.
      const last = (topic: string) => sub.waitFor(topic, () => sub.messages.filter((x) => x.topic === `edgehead/${DEV}/${topic}`).at(-1)?.text);
      const payloads: Record<string, string> = { telemetry: await last('telemetry'), predictions: await last('predictions'), 'head/state': await last('head/state'), status: await last('status') };
      const cases: { key: string; template: string; payload: string }[] = [];
      for (const msg of retained) {
        const c = JSON.parse(msg.text) as Json;
        const kind = (t: unknown) => String(t).slice(`edgehead/${DEV}/`.length);
        if (typeof c.value_template === 'string') cases.push({ key: msg.topic, template: c.value_template, payload: payloads[kind(c.state_topic)]! });
        for (const a of c.availability as Json[]) cases.push({ key: `${msg.topic} availability`, template: a.value_template as string, payload: payloads[kind(a.topic)]! });
      }
      const rendered = renderJinja(cases);
      if (rendered) {
        const byKey = Object.fromEntries(cases.map((c, i) => [c.key, rendered[i]!]));
        assert.ok(cases.filter((c) => c.key.endsWith('availability')).every((c) => byKey[c.key] === 'online'));
        assert.match(byKey[`homeassistant/sensor/${DEV}/confidence/config`]!, /^\d+(\.\d)?$/);
        assert.match(byKey[`homeassistant/sensor/${DEV}/rss/config`]!, /^\d+(\.\d+)?$/);
        assert.match(byKey[`homeassistant/sensor/${DEV}/latency_p95/config`]!, /^(\d+(\.\d+)?|None)$/);
        assert.equal(byKey[`homeassistant/sensor/${DEV}/failed_frames/config`], '0');
        assert.equal(byKey[`homeassistant/binary_sensor/${DEV}/problem/config`], 'OFF');
        assert.deepEqual(JSON.parse(byKey[`homeassistant/update/${DEV}/head/config`]!), { installed_version: 'demo v1', latest_version: 'demo v1' });
      } else {
        process.stdout.write('# python3-jinja2 not installed: templates not rendered\n');
      }

      // A head with other classes: the label options follow.
      await sub.client.publishAsync(`edgehead/${DEV}/head/set`, Buffer.from(head), { qos: 1 });
      await sub.waitFor('options of the new head', () => labelOptions(sub).some((o) => o.join() === 'land,sea,unknown'));

      // Home Assistant restarts: every config again.
      const before = configs(sub).length;
      await sub.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
      await sub.waitFor('re-announcement', () => configs(sub).length >= before + HA_ENTITIES.length);

      // Discovery off: the restarted agent clears every config it published.
      await agent.kill('SIGTERM');
      agent = AgentProcess.start({ ...cfg, homeassistant: { enabled: false } });
      await sub.waitFor('empty payloads', () => sub.messages.filter((x) => x.topic.startsWith('homeassistant/') && x.text === '').length === HA_ENTITIES.length);
      const after = await Collector.connect(m.url, ['homeassistant/#']);
      await after.client.publishAsync('homeassistant/zz-marker', 'x', { qos: 1 }); // delivered after any retained message
      await after.waitFor('marker', () => after.messages.some((x) => x.topic === 'homeassistant/zz-marker'));
      assert.deepEqual(after.messages.filter((x) => x.retain).map((x) => x.topic), []);
      await after.close();
    } finally {
      await agent.kill('SIGTERM');
      await sub.close();
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
