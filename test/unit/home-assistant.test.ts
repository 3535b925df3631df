/**
 * Home Assistant discovery: every entity config carries what HA's MQTT platform requires (checked against the rules of
 * HA's documented schemas, written out below, not against our own constructors), the label options follow the head,
 * HA's `online` re-announces, switching discovery off clears the configs; on the service and on the in-process agent.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, test } from 'node:test';
import { type Agent, createAgent } from '../../agent/agent';
import { boardFacts, HomeAssistantDiscovery } from '../../agent/integrations/home-assistant';
import { MemoryQueue } from '../../agent/store/memory-queue';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { defaultConfig } from '../../config/defaults';
import { parseCommand } from '../../protocol/commands';
import { HA_ENTITIES, haConfigTopics, haDiscoveryMessages } from '../../protocol/home-assistant';
import { deviceTopics } from '../../protocol/topics';
import { FakeBroker } from '../support/fake-broker';
import { meanRgbExtractor, rgbHead, ScriptedSource, until } from '../support/agent-parts';
import { tmpDir } from '../support/cli';
import { DISCOVERY_TOPIC, haConfigErrors } from '../support/ha-schema';

configureLogging({ level: 'silent' });

type Json = Record<string, unknown>;

const topics = deviceTopics('edgehead', 'pi.kitchen');
const base = { haPrefix: 'homeassistant', deviceId: 'pi.kitchen', topics, origin: { name: 'edgehead', sw_version: '1.0.0' }, unknownLabel: 'unknown' };
const device = { identifiers: ['pi.kitchen'], name: 'pi.kitchen', manufacturer: 'edgehead', model: 'm', sw_version: '1.0.0' };
const byKey = (msgs: ReturnType<typeof haDiscoveryMessages>, key: string): Json => msgs.find((m) => m.key === key)!.config as unknown as Json;

test('every entity config has the fields its HA platform requires; topics and ids follow HA\'s rules', () => {
  const msgs = haDiscoveryMessages({ ...base, device, classes: ['cat', 'dog'] });
  assert.equal(msgs.length, HA_ENTITIES.length);
  assert.deepEqual(new Set(msgs.map((m) => m.platform)), new Set(['sensor', 'binary_sensor', 'button', 'switch', 'update', 'image']));
  for (const m of msgs) {
    const c = JSON.parse(JSON.stringify(m.config)) as Json;
    assert.deepEqual(haConfigErrors(m.platform, c), [], m.key);
    const match = DISCOVERY_TOPIC.exec(m.topic);
    assert.ok(match, m.topic);
    assert.equal(match[1], m.platform);
    assert.match(c.default_entity_id as string, new RegExp(`^${m.platform}\\.[a-z0-9_]+$`));
    assert.deepEqual(c.availability, [{ topic: 'edgehead/pi.kitchen/status', value_template: '{{ value_json.status }}', payload_available: 'online', payload_not_available: 'offline' }]);
  }
  assert.equal(new Set(msgs.map((m) => m.config.unique_id)).size, msgs.length, 'unique ids are unique');
  assert.deepEqual(msgs.map((m) => m.topic), haConfigTopics('homeassistant', 'pi.kitchen'));
  assert.equal(byKey(msgs, 'label').state_topic, topics.state);
  assert.deepEqual(byKey(msgs, 'label').options, ['cat', 'dog', 'unknown']);
  assert.equal(byKey(msgs, 'snapshot').image_topic, topics.snapshot);
  assert.equal(byKey(msgs, 'problem').device_class, 'problem');
});

test('buttons, the switch and the update entity publish real commands on cmd', () => {
  const msgs = haDiscoveryMessages({ ...base, device, classes: ['a', 'b'] });
  const cmdOf = (payload: unknown) => {
    const r = parseCommand(payload as string);
    assert.ok(r.ok, String(payload));
    return r.ok ? r.command.cmd : undefined;
  };
  for (const key of ['capture', 'rollback', 'promote', 'discard']) {
    assert.equal(byKey(msgs, key).command_topic, topics.cmd);
    assert.equal(cmdOf(byKey(msgs, key).payload_press), key);
  }
  const sw = byKey(msgs, 'schedule');
  assert.deepEqual([sw.command_topic, sw.state_topic, cmdOf(sw.payload_on), cmdOf(sw.payload_off), sw.state_on, sw.state_off], [topics.cmd, topics.schedule, 'resume', 'pause', 'running', 'paused']);
  const up = byKey(msgs, 'head');
  assert.deepEqual([up.state_topic, up.command_topic, cmdOf(up.payload_install)], [topics.headState, topics.cmd, 'promote']);
});

test('unique ids do not depend on the head; the label options do (and the unknown label is listed once)', () => {
  const a = haDiscoveryMessages({ ...base, device, classes: ['cat', 'dog'] });
  const b = haDiscoveryMessages({ ...base, device, classes: ['land', 'sea', 'unknown'] });
  assert.deepEqual(a.map((m) => [m.topic, m.config.unique_id, m.config.default_entity_id]), b.map((m) => [m.topic, m.config.unique_id, m.config.default_entity_id]));
  assert.deepEqual(byKey(b, 'label').options, ['land', 'sea', 'unknown']);
});

test('boardFacts: the device-tree model and cpuinfo revision, else the platform', () => {
  const root = tmpDir('ha-proc-');
  assert.match(boardFacts(root).model, /\S+ \S+/);
  assert.equal(boardFacts(root).hwVersion, undefined);
  fs.mkdirSync(path.join(root, 'device-tree'));
  fs.writeFileSync(path.join(root, 'device-tree', 'model'), 'Raspberry Pi 4 Model B Rev 1.4\0');
  fs.writeFileSync(path.join(root, 'cpuinfo'), 'processor\t: 0\nHardware\t: BCM2835\nRevision\t: c03114\n');
  assert.deepEqual(boardFacts(root), { model: 'Raspberry Pi 4 Model B Rev 1.4', hwVersion: 'c03114' });
});

function service(enabled: boolean, classes = ['cat', 'dog']) {
  const broker = new FakeBroker();
  const ha = new HomeAssistantDiscovery({ broker, enabled, haPrefix: 'ha', deviceId: 'pi.kitchen', topics, version: '1.0.0', classes: () => classes, unknownLabel: 'none', procRoot: tmpDir('ha-proc-') });
  ha.start();
  return { broker, ha, setClasses: (c: string[]) => (classes = c) };
}

test('service: retained configs on every connection; HA `online` re-announces, other payloads do not', async () => {
  const { broker, ha } = service(true);
  broker.connect();
  await until('configs', () => broker.sent.length === HA_ENTITIES.length);
  assert.ok(broker.sent.every((s) => s.opts.retain && s.opts.qos === 1 && s.topic.startsWith('ha/')));
  assert.equal(ha.statusTopic, 'ha/status');
  await ha.onHaStatus(Buffer.from('offline'));
  assert.equal(broker.sent.length, HA_ENTITIES.length);
  await ha.onHaStatus(Buffer.from('online'));
  assert.equal(broker.sent.length, 2 * HA_ENTITIES.length);
  broker.disconnect();
  broker.connect();
  await until('configs again', () => broker.sent.length === 3 * HA_ENTITIES.length);
});

test('service: discovery off publishes empty retained payloads on every config topic, and ignores HA', async () => {
  const { broker, ha } = service(false);
  broker.connect();
  await until('clears', () => broker.sent.length === HA_ENTITIES.length);
  assert.deepEqual(broker.sent.map((s) => s.topic), haConfigTopics('ha', 'pi.kitchen'));
  assert.ok(broker.sent.every((s) => s.text === '' && s.opts.retain));
  assert.equal(ha.statusTopic, undefined);
  await ha.onHaStatus(Buffer.from('online'));
  await ha.headChanged();
  assert.equal(broker.sent.length, HA_ENTITIES.length);
});

test('service: a head change re-announces with the new options; nothing is sent while disconnected', async () => {
  const { broker, ha, setClasses } = service(true);
  setClasses(['land', 'sea']);
  await ha.headChanged();
  assert.equal(broker.sent.length, 0);
  broker.connect();
  await until('configs', () => broker.sent.length === HA_ENTITIES.length);
  setClasses(['cat', 'dog', 'bird']);
  await ha.headChanged();
  const labels = broker.sentTo('ha/sensor/pi_kitchen/label/config').map((s) => (JSON.parse(s.text) as Json).options);
  assert.deepEqual(labels, [['land', 'sea', 'none'], ['cat', 'dog', 'bird', 'none']]);
});

let agent: Agent | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
});

async function inProcessAgent(enabled: boolean) {
  const dir = tmpDir('ha-agent-');
  fs.writeFileSync(path.join(dir, 'start.head'), rgbHead('colours', 1));
  const c = defaultConfig();
  c.device.id = 'dev1';
  c.stateDir = path.join(dir, 'state');
  c.backend.name = 'cpu';
  c.predictions.console = 'off';
  c.head.file = path.join(dir, 'start.head');
  c.homeassistant.enabled = enabled;
  const broker = new FakeBroker();
  agent = await createAgent({ config: c, broker, source: new ScriptedSource(), clock: new ManualClock(Date.UTC(2026, 0, 1)), queue: new MemoryQueue({ maxBytes: 1 << 20 }), extractor: meanRgbExtractor() });
  await agent.start();
  broker.connect();
  return broker;
}

test('in-process agent: announced on connect, subscribed to HA status; a head swap and HA `online` re-announce', async () => {
  const broker = await inProcessAgent(true);
  const labelTopic = 'homeassistant/sensor/dev1/label/config';
  const options = () => broker.sentTo(labelTopic).map((s) => (JSON.parse(s.text) as Json).options);
  await until('announced', () => options().length === 1);
  assert.deepEqual(options(), [['red', 'green', 'blue', 'unknown']]);
  assert.ok(broker.subscriptions.has('homeassistant/status'));
  broker.deliver('edgehead/dev1/head/set', rgbHead('pets', 1, ['cat', 'dog', 'bird']));
  await until('re-announced after the swap', () => options().length === 2);
  assert.deepEqual(options()[1], ['cat', 'dog', 'bird', 'unknown']);
  broker.deliver('homeassistant/status', 'online');
  await until('re-announced for HA', () => options().length === 3);
  assert.equal(broker.sentTo('homeassistant/update/dev1/head/config').length, 3);
});

test('in-process agent with discovery off: the configs are cleared, HA status is not subscribed', async () => {
  const broker = await inProcessAgent(false);
  await until('cleared', () => broker.sent.filter((s) => s.topic.startsWith('homeassistant/')).length === HA_ENTITIES.length);
  assert.ok(broker.sent.filter((s) => s.topic.startsWith('homeassistant/')).every((s) => s.text === '' && s.opts.retain));
  assert.ok(!broker.subscriptions.has('homeassistant/status'));
});
