/** The stream-level payload limit (mqtt/publish-guard.ts): byte-exact pass-through of everything within the limits,
 * however the stream is chunked; oversize PUBLISH payloads skipped, acknowledged and reported. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { prng } from '../../base/prng';
import { PublishGuard, type RefusedPublish, encodeLength } from '../../mqtt/publish-guard';

const LIMITS: Record<string, number> = { 'dev/cmd': 64, 'dev/head/set': 1000 };
const gen = (p: Packet): Buffer => mqttPacket.generate(p, { protocolVersion: 4 });
const publish = (topic: string, size: number, qos: 0 | 1 | 2 = 0, messageId?: number, retain = false): Buffer =>
  gen({ cmd: 'publish', topic, payload: Buffer.alloc(size, 0x61), qos, retain, dup: false, ...(messageId === undefined ? {} : { messageId }) } as Packet);

/** Feeds `input` in chunks of the given sizes (cycled); returns what passed, the replies and the refusals. */
async function run(input: Buffer, chunkSizes: number[]) {
  const replies: Buffer[] = [];
  const refused: RefusedPublish[] = [];
  const guard = new PublishGuard({ maxPayloadBytes: (t) => LIMITS[t] ?? 1 << 20, reply: (b) => replies.push(b), onRefused: (r) => refused.push(r) });
  const out: Buffer[] = [];
  guard.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise((r) => guard.on('end', r));
  for (let at = 0, i = 0; at < input.length; i++) {
    const n = chunkSizes[i % chunkSizes.length]!;
    guard.write(input.subarray(at, at + n));
    at += n;
  }
  guard.end();
  await ended;
  return { out: Buffer.concat(out), replies, refused };
}

function parseAll(bytes: Buffer): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  parser.on('error', (e) => assert.fail(e));
  parser.parse(bytes);
  return packets;
}

test('packets within the limits pass byte for byte, whatever the chunking', async () => {
  const input = Buffer.concat([
    gen({ cmd: 'connack', returnCode: 0, sessionPresent: false }),
    publish('dev/cmd', 64, 1, 7),
    gen({ cmd: 'suback', messageId: 1, granted: [1] }),
    publish('dev/head/set', 1000, 1, 8, true),
    publish('other/topic', 200_000), // 3-byte remaining length
    gen({ cmd: 'pingresp' }),
    publish('dev/cmd', 0),
  ]);
  const random = prng(7);
  for (const sizes of [[1], [2, 3, 5], [input.length], Array.from({ length: 50 }, () => 1 + Math.floor(random() * 300))]) {
    const r = await run(input, sizes);
    assert.ok(r.out.equals(input), `chunks ${sizes.slice(0, 5).join(',')}`);
    assert.deepEqual([r.replies.length, r.refused.length], [0, 0]);
  }
});

test('an oversize payload is skipped and reported; QoS 1 is acknowledged here; what follows is intact', async () => {
  const input = Buffer.concat([
    publish('dev/cmd', 65, 1, 0x1234, true),
    publish('dev/cmd', 10, 1, 9),
    publish('dev/head/set', 300_000, 0),
    gen({ cmd: 'pingresp' }),
  ]);
  for (const sizes of [[1], [7, 1000], [input.length]]) {
    const r = await run(input, sizes);
    const packets = parseAll(r.out);
    assert.deepEqual(packets.map((p) => p.cmd), ['publish', 'pingresp']);
    assert.equal((packets[0] as { payload: Buffer }).payload.length, 10);
    assert.deepEqual(r.replies, [Buffer.from([0x40, 0x02, 0x12, 0x34])], 'PUBACK with the packet id');
    assert.deepEqual(r.refused, [
      { topic: 'dev/cmd', bytes: 65, limit: 64, retained: true, qos: 1 },
      { topic: 'dev/head/set', bytes: 300_000, limit: 1000, retained: false, qos: 0 },
    ]);
  }
});

test('QoS 2: handed on without its payload (MQTT.js runs the handshake), the packet id reported', async () => {
  const r = await run(publish('dev/cmd', 5000, 2, 42), [100]);
  const [p] = parseAll(r.out) as { cmd: string; topic: string; qos: number; messageId: number; payload: Buffer }[];
  assert.deepEqual([p!.cmd, p!.topic, p!.qos, p!.messageId, p!.payload.length], ['publish', 'dev/cmd', 2, 42, 0]);
  assert.deepEqual(r.refused, [{ topic: 'dev/cmd', bytes: 5000, limit: 64, retained: false, qos: 2, messageId: 42 }]);
  assert.deepEqual(r.replies, []);
});

test('encodeLength: MQTT remaining-length bytes', () => {
  assert.deepEqual([...encodeLength(0)], [0]);
  assert.deepEqual([...encodeLength(127)], [0x7f]);
  assert.deepEqual([...encodeLength(128)], [0x80, 0x01]);
  assert.deepEqual([...encodeLength(268_435_455)], [0xff, 0xff, 0xff, 0x7f]);
});
