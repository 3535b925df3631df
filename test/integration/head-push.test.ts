/**
 * `edgehead head push` (the real CLI, a subprocess) against a real Mosquitto, with fake devices: small MQTT.js
 * clients that subscribe to head/set topics and answer with a retained head/state, as the agent does. The agent
 * itself is tested elsewhere.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { writeHeadFile } from '../../protocol/head/files';
import type { HeadUpdateStatus } from '../../protocol/messages';
import { hasStackTrace, runCli, tmpDir } from '../support/cli';
import { freePort, Mosquitto, MOSQUITTO } from '../support/mosquitto';
import { birthJson, headStateJson, kitchenHead, offlineJson } from '../support/push-fixtures';

const dir = tmpDir('head-push-');
let version = 0;

/** A fresh head file (a new version each time, so every push has its own correlation id). */
function headFile(): { file: string; bytes: Buffer; cid: string } {
  version++;
  const file = path.join(dir, `kitchen-v${version}.head`);
  writeHeadFile(file, kitchenHead(version));
  const bytes = fs.readFileSync(file);
  return { file, bytes, cid: createHash('sha256').update(bytes).digest('hex').slice(0, 16) };
}

function stateJson(device: string, status: HeadUpdateStatus, correlationId: string, via: string, reason?: string): string {
  return headStateJson(device, status, correlationId, { via, reason, at: new Date().toISOString() });
}

async function connect(url: string, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect(url, { clientId, reconnectPeriod: 0, protocolVersion: 4 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

type Behaviour = { status: HeadUpdateStatus; reason?: string } | 'silent' | 'stale-first' | 'shutdown';

/**
 * Announces itself as the agent does (a retained birth on <prefix>/<device>/status with its groups), then answers
 * each payload on its head/set topics with a retained head/state on <prefix>/<device>/head/state ('shutdown': it
 * publishes its retained offline status instead, as an agent stopped mid-update).
 */
async function fakeDevice(url: string, prefix: string, device: string, behaviour: Behaviour, groups: string[] = []) {
  const c = await connect(url, `fake-${prefix}-${device}`);
  await c.publishAsync(`${prefix}/${device}/status`, birthJson(device, groups), { qos: 1, retain: true });
  const received: { topic: string; payload: Buffer }[] = [];
  c.on('message', (topic, payload) => {
    received.push({ topic, payload });
    if (behaviour === 'silent') return;
    if (behaviour === 'shutdown') {
      c.publish(`${prefix}/${device}/status`, offlineJson(device, 'shutdown'), { qos: 1, retain: true });
      return;
    }
    const cid = createHash('sha256').update(payload).digest('hex').slice(0, 16);
    const stateTopic = `${prefix}/${device}/head/state`;
    if (behaviour === 'stale-first') {
      // An answer for some other payload first (as after an earlier push), then the right one.
      c.publish(stateTopic, stateJson(device, 'rejected', 'ffffffffffffffff', topic, 'an older payload'), { qos: 1, retain: true }, () =>
        c.publish(stateTopic, stateJson(device, 'applied', cid, topic), { qos: 1, retain: true }),
      );
    } else {
      c.publish(stateTopic, stateJson(device, behaviour.status, cid, topic, behaviour.reason), { qos: 1, retain: true });
    }
  });
  const topics = [`${prefix}/${device}/head/set`, `${prefix}/all/head/set`, ...groups.map((g) => `${prefix}/groups/${g}/head/set`)];
  await c.subscribeAsync(topics, { qos: 1 });
  return { received, close: () => c.endAsync() };
}

/**
 * The retained messages a subscriber that connects now gets on `topic`. Deterministic: the broker sends retained
 * messages for a subscription before it handles our next packet, so once our own marker message comes back, every
 * retained message has arrived.
 */
async function retainedOn(url: string, topic: string): Promise<Buffer[]> {
  const c = await connect(url, `late-${Math.random().toString(16).slice(2)}`);
  const marker = `test/marker/${Math.random().toString(16).slice(2)}`;
  const got: Buffer[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      c.on('message', (t, payload, packet) => {
        if (t === marker) resolve();
        else if (t === topic && packet.retain) got.push(payload);
      });
      c.subscribeAsync([topic, marker], { qos: 1 })
        .then(() => c.publishAsync(marker, 'x', { qos: 1 }))
        .catch(reject);
    });
  } finally {
    await c.endAsync();
  }
  return got;
}

/** Table rows of the push output: [device, status, reason, latency]. */
function rows(stdout: string): string[][] {
  const lines = stdout.split('\n');
  const start = lines.findIndex((l) => /^device +status +reason +latency$/.test(l));
  if (start < 0) return [];
  const out: string[][] = [];
  for (const l of lines.slice(start + 1)) {
    if (l.trim() === '') break;
    out.push(l.split(/ {2,}/));
  }
  return out;
}

const skip = MOSQUITTO ? false : 'mosquitto is not installed';

describe('edgehead head push (Mosquitto, fake devices)', { skip }, () => {
  let broker: Mosquitto;
  before(async () => {
    broker = await Mosquitto.start();
  });
  after(async () => {
    await broker?.stop();
  });

  test('--device: applied -> exit 0, one table row with the latency; the payload arrives byte for byte, not retained', async () => {
    const h = headFile();
    const dev = await fakeDevice(broker.url, 't1', 'pi-kitchen', { status: 'applied' });
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't1', '--device', 'pi-kitchen', h.file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`correlation id ${h.cid}\\) to device pi-kitchen`));
      assert.match(r.stdout, /^topic t1\/pi-kitchen\/head\/set \(QoS 1, not retained\)$/m);
      const table = rows(r.stdout);
      assert.equal(table.length, 1, r.stdout);
      assert.deepEqual(table[0]!.slice(0, 3), ['pi-kitchen', 'applied', '-']);
      assert.match(table[0]![3]!, /^\d+ ms$/);
      assert.match(r.stdout, /^OK: 1\/1 answered in \d+\.\d s \(1 applied\)$/m);
      assert.equal(dev.received.length, 1);
      assert.ok(dev.received[0]!.payload.equals(h.bytes), 'payload byte-identical to the file');
      assert.deepEqual(await retainedOn(broker.url, 't1/pi-kitchen/head/set'), [], 'a device push is not retained');
    } finally {
      await dev.close();
    }
  });

  test('--device: rejected with a reason -> exit 1 and the reason in the table', async () => {
    const h = headFile();
    const dev = await fakeDevice(broker.url, 't2', 'pi-hall', { status: 'rejected', reason: 'head expects 3-d features, extractor gives 1792-d' });
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't2', '--device', 'pi-hall', h.file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(rows(r.stdout).map((x) => x.slice(0, 3)), [['pi-hall', 'rejected', 'head expects 3-d features, extractor gives 1792-d']]);
      assert.match(r.stdout, /^FAILED: 1\/1 answered in .* \(1 rejected\)$/m);
    } finally {
      await dev.close();
    }
  });

  test('--device: a device that never answers -> "no answer" row at --timeout, exit 1', async () => {
    const h = headFile();
    const dev = await fakeDevice(broker.url, 't3', 'pi-garage', 'silent');
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't3', '--device', 'pi-garage', '--timeout', '1', h.file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(rows(r.stdout), [['pi-garage', 'no answer', '-', '-']]);
      assert.match(r.stdout, /^FAILED: 0\/1 answered, timed out after 1\.\d s \(1 no answer\)$/m);
      assert.equal(dev.received.length, 1, 'the device did get the payload');
    } finally {
      await dev.close();
    }
  });

  test('--device: a state with a stale correlation id first is skipped; the matching one counts', async () => {
    const h = headFile();
    const dev = await fakeDevice(broker.url, 't4', 'pi-porch', 'stale-first');
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't4', '--device', 'pi-porch', h.file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(rows(r.stdout).map((x) => x.slice(0, 3)), [['pi-porch', 'applied', '-']]);
    } finally {
      await dev.close();
    }
  });

  test('--group --wait-acks 2: both answers in the table, a rejection -> exit 1; retained for late subscribers, byte-identical', async () => {
    const h = headFile();
    const a = await fakeDevice(broker.url, 't5', 'pi-a', { status: 'applied' }, ['kitchens']);
    const b = await fakeDevice(broker.url, 't5', 'pi-b', { status: 'rejected', reason: 'unknown key id "0123456789abcdef" (trusted: none)' }, ['kitchens']);
    const other = await fakeDevice(broker.url, 't5', 'pi-c', { status: 'applied' }, ['garages']);
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't5', '--group', 'kitchens', '--wait-acks', '2', '--timeout', '30', h.file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /^topic t5\/groups\/kitchens\/head\/set \(QoS 1, retained\)$/m);
      assert.deepEqual(rows(r.stdout).map((x) => x.slice(0, 3)), [
        ['pi-a', 'applied', '-'],
        ['pi-b', 'rejected', 'unknown key id "0123456789abcdef" (trusted: none)'],
      ]);
      assert.match(r.stdout, /^FAILED: 2\/2 answered in .* \(1 applied, 1 rejected\)$/m);
      assert.equal(other.received.length, 0, 'a device of another group got nothing');
      const retained = await retainedOn(broker.url, 't5/groups/kitchens/head/set');
      assert.equal(retained.length, 1);
      assert.ok(retained[0]!.equals(h.bytes), 'the retained payload is the file, byte for byte');
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });

  test('--all: an old retained state (other correlation id) is not counted; --json; retained fleet head', async () => {
    const h = headFile();
    const seed = await connect(broker.url, 'seed-t6');
    await seed.publishAsync('t6/pi-old/head/state', stateJson('pi-old', 'applied', '0123456789abcdef', 't6/all/head/set'), { qos: 1, retain: true });
    await seed.endAsync();
    const dev = await fakeDevice(broker.url, 't6', 'pi-new', { status: 'applied' });
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't6', '--all', '--wait-acks', '2', '--timeout', '2', '--json', h.file]);
      assert.equal(r.code, 1, 'pi-old\'s old state must not count as the second answer: ' + r.stdout + r.stderr);
      const j = JSON.parse(r.stdout) as { ok: boolean; topic: string; retained: boolean; correlationId: string; expected: number; answers: { device: string; status: string }[]; ignored: number };
      assert.equal(j.ok, false);
      assert.equal(j.topic, 't6/all/head/set');
      assert.equal(j.retained, true);
      assert.equal(j.correlationId, h.cid);
      assert.equal(j.expected, 2);
      assert.deepEqual(j.answers.map((x) => [x.device, x.status]), [['pi-new', 'applied']]);
      assert.ok(j.ignored >= 1);
      const retained = await retainedOn(broker.url, 't6/all/head/set');
      assert.equal(retained.length, 1);
      assert.ok(retained[0]!.equals(h.bytes));

      // Without --wait-acks, the devices with an online retained status are expected (pi-old has none).
      const h2 = headFile();
      const r2 = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't6', '--all', '--timeout', '60', h2.file]);
      assert.equal(r2.code, 0, r2.stdout + r2.stderr);
      assert.deepEqual(rows(r2.stdout).map((x) => x.slice(0, 2)), [['pi-new', 'applied']]);
      assert.match(r2.stdout, /^OK: 1\/1 answered in .* \(1 applied\); retained: devices that connect later get it too$/m);
    } finally {
      await dev.close();
    }
  });

  test('--no-retain: a group push that late subscribers do not get', async () => {
    const h = headFile();
    const dev = await fakeDevice(broker.url, 't7', 'pi-g1', { status: 'applied' }, ['g1']);
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't7', '--group', 'g1', '--no-retain', h.file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^topic t7\/groups\/g1\/head\/set \(QoS 1, not retained\)$/m);
      assert.match(r.stdout, /^OK: 1\/1 answered in .* \(1 applied\)$/m);
      assert.deepEqual(await retainedOn(broker.url, 't7/groups/g1/head/set'), []);
    } finally {
      await dev.close();
    }
  });

  test('--group without --wait-acks: expects the online devices of the group (retained status); a rejection and a missing answer -> exit 1', async () => {
    const h = headFile();
    const seed = await connect(broker.url, 'seed-t8');
    await seed.publishAsync('t8/pi-gone/status', offlineJson('pi-gone'), { qos: 1, retain: true });
    await seed.endAsync();
    const devs = await Promise.all([
      fakeDevice(broker.url, 't8', 'pi-a', { status: 'applied' }, ['kitchens']),
      fakeDevice(broker.url, 't8', 'pi-b', { status: 'rejected', reason: 'signature required' }, ['kitchens', 'ground-floor']),
      fakeDevice(broker.url, 't8', 'pi-c', 'silent', ['kitchens']),
      fakeDevice(broker.url, 't8', 'pi-d', { status: 'applied' }, ['garages']),
    ]);
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't8', '--group', 'kitchens', '--timeout', '2', h.file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /waiting up to 2 s for the 3 online devices of the group \(pi-a, pi-b, pi-c\)/);
      assert.deepEqual(rows(r.stdout).map((x) => x.slice(0, 3)), [
        ['pi-a', 'applied', '-'],
        ['pi-b', 'rejected', 'signature required'],
        ['pi-c', 'no answer', '-'],
      ]);
      assert.match(r.stdout, /^FAILED: 2\/3 answered, timed out after 2\.\d s \(1 applied, 1 rejected, 1 no answer\); retained: devices that connect later get it too$/m);
      assert.equal(devs[3]!.received.length, 0, 'pi-d is in another group');

      // --json: the expected devices and each answer.
      const h2 = headFile();
      const j = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't8', '--group', 'kitchens', '--timeout', '2', '--json', h2.file]);
      assert.equal(j.code, 1, j.stdout + j.stderr);
      const out = JSON.parse(j.stdout) as { ok: boolean; expected: number; expectedDevices: string[]; answers: { device: string; status: string; ok: boolean }[] };
      assert.equal(out.ok, false);
      assert.equal(out.expected, 3);
      assert.deepEqual(out.expectedDevices, ['pi-a', 'pi-b', 'pi-c']);
      assert.deepEqual(out.answers.map((a) => [a.device, a.status, a.ok]), [['pi-a', 'applied', true], ['pi-b', 'rejected', false], ['pi-c', 'no answer', false]]);
    } finally {
      await Promise.all(devs.map((d) => d.close()));
    }
  });

  test('--all without --wait-acks: every online device accepts -> exit 0 before the timeout; offline devices are listed, not expected', async () => {
    const h = headFile();
    const seed = await connect(broker.url, 'seed-t9');
    await seed.publishAsync('t9/pi-gone/status', offlineJson('pi-gone'), { qos: 1, retain: true });
    await seed.endAsync();
    const devs = await Promise.all([
      fakeDevice(broker.url, 't9', 'pi-a', { status: 'applied' }, ['kitchens']),
      fakeDevice(broker.url, 't9', 'pi-b', { status: 'duplicate' }, []),
      fakeDevice(broker.url, 't9', 'pi-c', { status: 'shadow' }, ['garages']),
    ]);
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't9', '--all', '--timeout', '600', h.file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(rows(r.stdout).map((x) => x.slice(0, 2)), [['pi-a', 'applied'], ['pi-b', 'duplicate'], ['pi-c', 'shadow']]);
      assert.match(r.stdout, /^note: pi-gone is offline \(connection lost\): not expected; it gets the retained head when it connects$/m);
      assert.match(r.stdout, /^OK: 3\/3 answered in \d+\.\d s \(1 applied, 1 duplicate, 1 shadow\); retained/m);
    } finally {
      await Promise.all(devs.map((d) => d.close()));
    }
  });

  test('--group: a device that goes offline instead of answering -> "no answer (went offline)", no wait for the timeout', async () => {
    const h = headFile();
    const devs = await Promise.all([fakeDevice(broker.url, 't10', 'pi-a', { status: 'applied' }, ['hall']), fakeDevice(broker.url, 't10', 'pi-b', 'shutdown', ['hall'])]);
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't10', '--group', 'hall', '--timeout', '600', h.file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(rows(r.stdout).map((x) => x.slice(0, 3)), [['pi-a', 'applied', '-'], ['pi-b', 'no answer', 'went offline (shutdown)']]);
      assert.match(r.stdout, /^FAILED: 1\/2 answered in /m);
    } finally {
      await Promise.all(devs.map((d) => d.close()));
    }
  });

  test('--group with no online device in it: says so, publishes nothing, exit 1', async () => {
    const h = headFile();
    const dev = await fakeDevice(broker.url, 't11', 'pi-a', { status: 'applied' }, ['kitchens']);
    try {
      const r = await runCli(['head', 'push', '--broker', broker.url, '--prefix', 't11', '--group', 'kitchen', h.file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^edgehead: error: no device to push to: no online device in group kitchen has a retained status on t11\/\+\/status \(1 device under the prefix\); nothing was published/);
      assert.match(r.stderr, /check the group name/);
      assert.deepEqual(await retainedOn(broker.url, 't11/groups/kitchen/head/set'), []);
      assert.equal(dev.received.length, 0);
    } finally {
      await dev.close();
    }
  });

  test('no broker listening -> one-line error, exit 1', async () => {
    const h = headFile();
    const port = await freePort();
    const r = await runCli(['head', 'push', '--broker', `mqtt://127.0.0.1:${port}`, '--device', 'x', h.file]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `edgehead: error: cannot connect: broker mqtt://127.0.0.1:${port} refused the connection (is it running?)`);
    assert.equal(r.stdout, '');
  });

  test('a corrupt file is refused before connecting', async () => {
    const h = headFile();
    const bytes = Buffer.from(h.bytes);
    bytes[bytes.length - 1]! ^= 0x01; // a weight byte: the checksum no longer matches
    const bad = path.join(dir, 'corrupt.head');
    fs.writeFileSync(bad, bytes);
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const r = await runCli(['head', 'push', '--broker', `mqtt://127.0.0.1:${port}`, '--all', bad]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^edgehead: error: .*corrupt\.head: refusing to push a broken head: weight sha256 mismatch/);
      assert.ok(!hasStackTrace(r.stderr));
      assert.equal(connections, 0, 'no connection to the broker was made');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
