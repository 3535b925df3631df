/**
 * pushHead() (operator/push.ts) against aedes in-process, connected through in-memory streams (no sockets), with
 * fake devices that answer head/set payloads with head/state messages.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type Duplex, duplexPair } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Aedes } from 'aedes';
import { type IClientOptions, MqttClient } from 'mqtt';
import { formatPushResult, type MqttConnect, pushHead, type PushOptions, type PushResult } from '../../operator/push';
import { encodeHead } from '../../protocol/head/format';
import type { HeadUpdateStatus } from '../../protocol/messages';
import { EdgeheadError } from '../../base/errors';
import { birthJson, headStateJson, kitchenHead } from '../support/push-fixtures';

function headBytes(version = 1): Uint8Array {
  return encodeHead(kitchenHead(version, new Date('2024-05-01T12:00:00Z')));
}

const cid = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

function state(device: string, status: HeadUpdateStatus, correlationId: string, reason?: string): string {
  return headStateJson(device, status, correlationId, { via: 'test', reason, at: '2024-05-01T12:00:00.000Z' });
}

let aedes: Aedes;
let connects = 0;
/**
 * An in-memory connection to aedes. duplexPair() sides do not see each other being destroyed (aedes destroys its
 * side on DISCONNECT), so that is forwarded, as a socket would.
 */
function memoryStream(): { client: Duplex; server: Duplex } {
  const [client, server] = duplexPair();
  server.once('close', () => client.destroy());
  client.once('close', () => server.destroy());
  return { client, server };
}

/** MQTT.js clients talking to aedes over in-memory streams. */
const connect: MqttConnect = (_url: string, opts: IClientOptions) => {
  connects++;
  return new MqttClient(() => {
    const { client, server } = memoryStream();
    aedes.handle(server);
    return client;
  }, opts);
};

async function client(id: string): Promise<MqttClient> {
  const c = connect('mqtt://memory', { clientId: id, reconnectPeriod: 0, protocolVersion: 4 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

type Behaviour = { status: HeadUpdateStatus; reason?: string } | 'silent' | 'stale-first' | 'garbage-first';

/** Answers every head/set payload on its topics with a retained head/state, like the agent. */
async function fakeDevice(device: string, behaviour: Behaviour, topics = [`edgehead/${device}/head/set`], prefix = 'edgehead') {
  const c = await client(`fake-${device}`);
  const received: Buffer[] = [];
  c.on('message', (_t, payload) => {
    received.push(payload);
    if (behaviour === 'silent') return;
    const stateTopic = `${prefix}/${device}/head/state`;
    const right = state(device, 'applied', cid(payload));
    if (behaviour === 'stale-first') {
      c.publish(stateTopic, state(device, 'rejected', 'ffffffffffffffff', 'an older push'), { qos: 1, retain: true }, () => c.publish(stateTopic, right, { qos: 1, retain: true }));
    } else if (behaviour === 'garbage-first') {
      c.publish(stateTopic, 'not json', { qos: 1, retain: true }, () => c.publish(stateTopic, right, { qos: 1, retain: true }));
    } else {
      c.publish(stateTopic, state(device, behaviour.status, cid(payload), behaviour.reason), { qos: 1, retain: true });
    }
  });
  await c.subscribeAsync(topics, { qos: 1 });
  return { received, close: () => c.endAsync() };
}

const base = (payload: Uint8Array, target: PushOptions['target'], extra: Partial<PushOptions> = {}): PushOptions => ({
  broker: 'mqtt://memory',
  target,
  payload,
  prefix: 'edgehead',
  timeoutMs: 5000,
  connect,
  ...extra,
});

before(async () => {
  aedes = await Aedes.createBroker();
});
after(() => new Promise<void>((r) => aedes.close(() => r())));

describe('pushHead', () => {
  test('device push: publishes the exact bytes, not retained, and reports the applied answer', async () => {
    const dev = await fakeDevice('dev-a', { status: 'applied' });
    const payload = headBytes(11);
    try {
      const r = await pushHead(base(payload, { kind: 'device', device: 'dev-a' }));
      assert.equal(r.ok, true);
      assert.equal(r.topic, 'edgehead/dev-a/head/set');
      assert.equal(r.retained, false);
      assert.equal(r.correlationId, cid(payload));
      assert.equal(r.expected, 1);
      assert.equal(r.timedOut, false);
      assert.deepEqual(r.answers.map((a) => [a.device, a.status, a.reason, a.ok]), [['dev-a', 'applied', null, true]]);
      assert.equal(typeof r.answers[0]!.latencyMs, 'number');
      assert.deepEqual(r.head, { id: 'kitchen', version: 11, signedBy: null, testVectors: 1 });
      assert.equal(dev.received.length, 1);
      assert.ok(Buffer.from(payload).equals(dev.received[0]!), 'the device got the file bytes unchanged');
    } finally {
      await dev.close();
    }
  });

  test('a rejected answer carries its reason and fails the push', async () => {
    const dev = await fakeDevice('dev-b', { status: 'rejected', reason: 'head expects 3-d features, extractor gives 1792-d' });
    try {
      const r = await pushHead(base(headBytes(12), { kind: 'device', device: 'dev-b' }));
      assert.equal(r.ok, false);
      assert.deepEqual(r.answers.map((a) => [a.status, a.reason, a.ok]), [['rejected', 'head expects 3-d features, extractor gives 1792-d', false]]);
    } finally {
      await dev.close();
    }
  });

  test('a state with another correlation id (sent live, before the right one) and unreadable states are not answers', async () => {
    const stale = await fakeDevice('dev-c', 'stale-first');
    const garbage = await fakeDevice('dev-g', 'garbage-first');
    try {
      const r1 = await pushHead(base(headBytes(13), { kind: 'device', device: 'dev-c' }));
      assert.deepEqual(r1.answers.map((a) => a.status), ['applied']);
      assert.ok(r1.ignored >= 1, `ignored ${r1.ignored}`);
      const r2 = await pushHead(base(headBytes(14), { kind: 'device', device: 'dev-g' }));
      assert.deepEqual(r2.answers.map((a) => a.status), ['applied']);
    } finally {
      await stale.close();
      await garbage.close();
    }
  });

  test('a device that never answers gets a "no answer" row at the timeout', async () => {
    const dev = await fakeDevice('dev-d', 'silent');
    try {
      const r = await pushHead(base(headBytes(15), { kind: 'device', device: 'dev-d' }, { timeoutMs: 300 }));
      assert.equal(r.ok, false);
      assert.equal(r.timedOut, true);
      assert.deepEqual(r.answers.map((a) => [a.device, a.status, a.latencyMs]), [['dev-d', 'no answer', null]]);
      assert.equal(dev.received.length, 1);
    } finally {
      await dev.close();
    }
  });

  test('retained old states are not answers; one with this correlation id is reported as earlier', async () => {
    const payload = headBytes(16);
    const seed = await client('seed');
    await seed.publishAsync('edgehead/dev-e/status', birthJson('dev-e', []), { qos: 1, retain: true });
    await seed.publishAsync('edgehead/dev-mute/status', birthJson('dev-mute', ['kitchens']), { qos: 1, retain: true });
    await seed.publishAsync('edgehead/dev-old/head/state', state('dev-old', 'applied', 'aaaaaaaaaaaaaaaa'), { qos: 1, retain: true });
    await seed.publishAsync('edgehead/dev-seen/head/state', state('dev-seen', 'rejected', cid(payload), 'seen before'), { qos: 1, retain: true });
    await seed.endAsync();
    const dev = await fakeDevice('dev-e', { status: 'applied' }, ['edgehead/all/head/set']);
    try {
      const r = await pushHead(base(payload, { kind: 'all' }, { timeoutMs: 400 }));
      assert.equal(r.retained, true);
      assert.equal(r.expected, 2, 'the online devices of the retained status are expected');
      assert.deepEqual(r.expectedDevices, ['dev-e', 'dev-mute']);
      assert.equal(r.timedOut, true, 'dev-mute never answers: the push waits for the whole timeout');
      assert.deepEqual(r.answers.map((a) => [a.device, a.status]), [['dev-e', 'applied'], ['dev-mute', 'no answer']]);
      assert.deepEqual(r.earlier.map((e) => [e.device, e.status]), [['dev-seen', 'rejected']]);
      assert.equal(r.ok, false);
      assert.match(formatPushResult(r), /note: dev-seen did not answer, but its retained state shows it processed this payload before \(rejected/);
    } finally {
      await dev.close();
      const clear = await client('clear');
      for (const t of ['edgehead/dev-old/head/state', 'edgehead/dev-seen/head/state', 'edgehead/all/head/set', 'edgehead/dev-e/status', 'edgehead/dev-mute/status']) {
        await clear.publishAsync(t, '', { qos: 1, retain: true });
      }
      await clear.endAsync();
    }
  });

  test('group push without waitAcks and no online device in the group: refused, nothing published', async () => {
    const seed = await client('seed-empty');
    await seed.publishAsync('edgehead/dev-x/status', birthJson('dev-x', ['garages']), { qos: 1, retain: true });
    await seed.endAsync();
    const dev = await fakeDevice('dev-y', { status: 'applied' }, ['edgehead/groups/kitchenz/head/set']);
    try {
      await assert.rejects(pushHead(base(headBytes(23), { kind: 'group', group: 'kitchenz' })), (e: unknown) => {
        assert.ok(e instanceof EdgeheadError);
        assert.match(e.message, /^no device to push to: no online device in group kitchenz has a retained status on edgehead\/\+\/status \(\d+ devices? under the prefix\); nothing was published$/);
        assert.match(e.hint ?? '', /check the group name/);
        return true;
      });
      assert.equal(dev.received.length, 0, 'nothing was published');
    } finally {
      await dev.close();
      const clear = await client('clear-empty');
      await clear.publishAsync('edgehead/dev-x/status', '', { qos: 1, retain: true });
      await clear.endAsync();
    }
  });

  test('group push with waitAcks: returns once N answered (shadow counts as success); fewer than N by the timeout fails', async () => {
    const a = await fakeDevice('dev-ga', { status: 'applied' }, ['edgehead/groups/kitchens/head/set']);
    const b = await fakeDevice('dev-gb', { status: 'shadow' }, ['edgehead/groups/kitchens/head/set']);
    try {
      const r = await pushHead(base(headBytes(17), { kind: 'group', group: 'kitchens' }, { waitAcks: 2, timeoutMs: 60_000 }));
      assert.equal(r.topic, 'edgehead/groups/kitchens/head/set');
      assert.equal(r.retained, true);
      assert.equal(r.timedOut, false);
      assert.equal(r.ok, true);
      assert.deepEqual(r.answers.map((x) => [x.device, x.status]), [['dev-ga', 'applied'], ['dev-gb', 'shadow']]);

      const short = await pushHead(base(headBytes(18), { kind: 'group', group: 'kitchens' }, { waitAcks: 3, timeoutMs: 400, retain: false }));
      assert.equal(short.retained, false);
      assert.equal(short.ok, false, '2 of 3 expected answers is a failure');
      assert.equal(short.answers.length, 2);
      assert.match(formatPushResult(short), /^FAILED: 2\/3 answered, timed out after/m);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a broken payload is refused before connecting', async () => {
    const payload = headBytes(19);
    payload[payload.length - 1]! ^= 0x01;
    const before = connects;
    await assert.rejects(pushHead(base(payload, { kind: 'all' })), (e: unknown) => {
      assert.ok(e instanceof EdgeheadError);
      assert.equal(e.code, 'BAD_HEAD');
      assert.match(e.message, /refusing to push a broken head: weight sha256 mismatch/);
      return true;
    });
    assert.equal(connects, before, 'no connection was attempted');
  });

  test('bad targets and options are refused before connecting', async () => {
    const before = connects;
    const p = headBytes(20);
    await assert.rejects(pushHead(base(p, { kind: 'device', device: 'a/b' })), /the device id must be 1 to 64 letters/);
    await assert.rejects(pushHead(base(p, { kind: 'group', group: '#' })), /the group name must be 1 to 64 letters/);
    // ids a device's config refuses are refused here too (the same rule, protocol/patterns.ts)
    await assert.rejects(pushHead(base(p, { kind: 'device', device: 'pi kitchen' })), /the device id must be 1 to 64 letters/);
    await assert.rejects(pushHead(base(p, { kind: 'group', group: 'x'.repeat(65) })), /the group name must be 1 to 64 letters/);
    await assert.rejects(pushHead(base(p, { kind: 'all' }, { prefix: 'edge+head' })), /topic prefix/);
    await assert.rejects(pushHead(base(p, { kind: 'all' }, { prefix: 'edge//head' })), /topic prefix/);
    await assert.rejects(pushHead(base(p, { kind: 'device', device: 'x' }, { waitAcks: 2 })), /waitAcks applies to a group/);
    await assert.rejects(pushHead(base(p, { kind: 'all' }, { broker: 'http://x' })), /--broker must start with mqtt:\/\//);
    assert.equal(connects, before);
  });

  test('a connection failure is one MQTT error naming the broker', async () => {
    const refusing: MqttConnect = (_url, opts) =>
      new MqttClient(() => {
        const [c] = duplexPair();
        process.nextTick(() => c.destroy(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })));
        return c;
      }, opts);
    await assert.rejects(pushHead(base(headBytes(21), { kind: 'all' }, { connect: refusing, broker: 'mqtt://127.0.0.1:1' })), (e: unknown) => {
      assert.ok(e instanceof EdgeheadError);
      assert.equal(e.code, 'MQTT');
      assert.equal(e.message, 'cannot connect: broker mqtt://127.0.0.1:1 refused the connection (is it running?)');
      return true;
    });
  });

  test('losing the connection while waiting is an error, not a silent partial result', async () => {
    let serverSide: ReturnType<Aedes['handle']> | undefined;
    const tracked: MqttConnect = (_url, opts) =>
      new MqttClient(() => {
        const { client: c, server: s } = memoryStream();
        serverSide = aedes.handle(s);
        return c;
      }, opts);
    await assert.rejects(
      pushHead(base(headBytes(22), { kind: 'all' }, { connect: tracked, waitAcks: 1, timeoutMs: 60_000, onPublished: () => serverSide!.close() })),
      /lost the connection to mqtt:\/\/memory/,
    );
    const clear = await client('clear2');
    await clear.publishAsync('edgehead/all/head/set', '', { qos: 1, retain: true });
    await clear.endAsync();
  });
});

describe('formatPushResult', () => {
  test('prints an aligned table and a summary line', () => {
    const r: PushResult = {
      ok: false,
      topic: 'edgehead/groups/kitchens/head/set',
      retained: true,
      qos: 1,
      target: { kind: 'group', group: 'kitchens' },
      head: { id: 'kitchen', version: 3, signedBy: '0123456789abcdef', testVectors: 1 },
      bytes: 634,
      payloadSha256: '06e6311b1c715eeb'.padEnd(64, '0'),
      correlationId: '06e6311b1c715eeb',
      expected: 3,
      expectedDevices: null,
      offline: [],
      answers: [
        { device: 'pi-hall', status: 'rejected', reason: 'unknown key id', latencyMs: 98.4, deviceLatencyMs: null, ok: false },
        { device: 'pi-kitchen', status: 'applied', reason: null, latencyMs: 112, deviceLatencyMs: 40, ok: true },
      ],
      earlier: [],
      ignored: 4,
      timedOut: true,
      elapsedMs: 10_000,
    };
    assert.equal(
      formatPushResult(r),
      [
        'pushed kitchen v3 (634 bytes, signed by key 0123456789abcdef, correlation id 06e6311b1c715eeb) to group kitchens',
        'topic edgehead/groups/kitchens/head/set (QoS 1, retained)',
        '',
        'device      status    reason          latency',
        'pi-hall     rejected  unknown key id  98 ms',
        'pi-kitchen  applied   -               112 ms',
        '',
        'FAILED: 2/3 answered, timed out after 10.0 s (1 applied, 1 rejected)',
      ].join('\n'),
    );
  });
});
