/**
 * The MessageQueue contract: one set of behaviour tests run against every implementation (as MQTT.js does for its
 * stores). Disk-only behaviour (restarts, crashes, segments) is in queue-disk.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { DiskQueue } from '../../agent/store/disk-queue';
import { recordBytes } from '../../agent/store/queue-record';
import { MemoryQueue } from '../../agent/store/memory-queue';
import type { MessageQueue, QueuedMessage } from '../../agent/store/queue';
import { EdgeheadError } from '../../base/errors';
import { configureLogging } from '../../base/log';

configureLogging({ sink: { write: () => {} } }); // "queue full" warnings are expected here

interface Impl {
  name: string;
  make(maxBytes: number): Promise<MessageQueue>;
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-queue-contract-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(tmpRoot, `q${n++}`);

const impls: Impl[] = [
  { name: 'MemoryQueue', make: async (maxBytes) => new MemoryQueue({ maxBytes }) },
  { name: 'DiskQueue', make: async (maxBytes) => new DiskQueue({ dir: freshDir(), maxBytes }) },
  // Tiny segments: every behaviour also holds when messages span many segment files.
  { name: 'DiskQueue (100-byte segments)', make: async (maxBytes) => new DiskQueue({ dir: freshDir(), maxBytes, segmentBytes: 100 }) },
];

const msg = (i: number, extra: Partial<QueuedMessage> = {}): QueuedMessage => ({
  topic: `edgehead/dev/predictions`,
  payload: JSON.stringify({ i: String(i).padStart(6, '0') }), // fixed size: byte arithmetic stays simple
  qos: 1,
  retain: false,
  ...extra,
});
const ids = (ms: QueuedMessage[]) => ms.map((m) => Number((JSON.parse(m.payload) as { i: string }).i));
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

for (const impl of impls) {
  describe(`MessageQueue contract: ${impl.name}`, () => {
    const open = async (maxBytes = 1 << 20) => {
      const q = await impl.make(maxBytes);
      await q.open();
      return q;
    };

    test('a new queue is empty', async () => {
      const q = await open();
      assert.deepEqual(q.stats(), { depth: 0, bytes: 0, dropped: 0, skipped: 0 });
      assert.deepEqual(await q.peek(10), []);
      await q.close();
    });

    test('FIFO: messages come back in push order with every field intact', async () => {
      const q = await open();
      const sent: QueuedMessage[] = [
        { topic: 'a/b', payload: '{"x":1}', qos: 0, retain: false },
        { topic: 'a/ü/ç', payload: 'héllo ✓ 🐦', qos: 1, retain: true },
        { topic: 'c', payload: '', qos: 2, retain: false },
        { topic: 'd', payload: 'x'.repeat(5000), qos: 1, retain: true },
      ];
      for (const m of sent) await q.push(m);
      assert.deepEqual(await q.peek(10), sent);
      await q.close();
    });

    test('peek does not remove; peek(n) returns at most n, oldest first', async () => {
      const q = await open();
      for (const i of range(0, 5)) await q.push(msg(i));
      assert.deepEqual(ids(await q.peek(3)), [0, 1, 2]);
      assert.deepEqual(ids(await q.peek(3)), [0, 1, 2]);
      assert.deepEqual(await q.peek(0), []);
      assert.equal(q.stats().depth, 5);
      await q.close();
    });

    test('returned messages are copies: mutating them does not change the queue', async () => {
      const q = await open();
      const m = msg(1);
      await q.push(m);
      m.payload = 'changed';
      const [got] = await q.peek(1);
      got!.topic = 'changed';
      assert.deepEqual(await q.peek(1), [msg(1)]);
      await q.close();
    });

    test('shift removes from the head; shifting more than the depth empties the queue', async () => {
      const q = await open();
      for (const i of range(0, 6)) await q.push(msg(i));
      await q.shift(2);
      assert.deepEqual(ids(await q.peek(10)), [2, 3, 4, 5]);
      await q.shift(0);
      assert.equal(q.stats().depth, 4);
      await q.shift(100);
      assert.deepEqual(await q.peek(10), []);
      assert.deepEqual(q.stats(), { depth: 0, bytes: 0, dropped: 0, skipped: 0 });
      await q.push(msg(6));
      assert.deepEqual(ids(await q.peek(10)), [6]);
      await q.close();
    });

    test('stats: depth and bytes follow pushes and shifts (bytes = record sizes)', async () => {
      const q = await open();
      const ms = [msg(1), msg(2, { payload: 'x'.repeat(300) }), msg(3, { topic: 'ü' })];
      for (const m of ms) await q.push(m);
      const sizes = ms.map(recordBytes);
      assert.deepEqual(q.stats(), { depth: 3, bytes: sizes[0]! + sizes[1]! + sizes[2]!, dropped: 0, skipped: 0 });
      await q.shift(1);
      assert.deepEqual(q.stats(), { depth: 2, bytes: sizes[1]! + sizes[2]!, dropped: 0, skipped: 0 });
      await q.close();
    });

    test('cap: when full, the oldest are dropped and counted; bytes never exceed the cap', async () => {
      const size = recordBytes(msg(0));
      const q = await open(size * 5);
      for (const i of range(0, 8)) {
        await q.push(msg(i));
        assert.ok(q.stats().bytes <= size * 5);
      }
      assert.deepEqual(ids(await q.peek(10)), [3, 4, 5, 6, 7]);
      assert.deepEqual(q.stats(), { depth: 5, bytes: size * 5, dropped: 3, skipped: 0 });
      await q.close();
    });

    test('cap: a large message drops as many old ones as it needs, no more', async () => {
      const small = recordBytes(msg(0));
      const q = await open(small * 10);
      for (const i of range(0, 10)) await q.push(msg(i));
      const big = msg(99, { topic: msg(0).topic + 'x'.repeat(small * 2 + 1) }); // one byte over 3 small records
      assert.equal(recordBytes(big), small * 3 + 1);
      await q.push(big);
      assert.deepEqual(ids(await q.peek(20)), [4, 5, 6, 7, 8, 9, 99]);
      assert.equal(q.stats().dropped, 4);
      await q.close();
    });

    test('a message larger than the whole cap is refused and changes nothing', async () => {
      const q = await open(200);
      await q.push(msg(1));
      await assert.rejects(q.push(msg(2, { payload: 'x'.repeat(300) })), (e) => e instanceof EdgeheadError && /does not fit/.test(e.message));
      assert.deepEqual(ids(await q.peek(10)), [1]);
      assert.equal(q.stats().dropped, 0);
      await q.close();
    });

    test('bad counts are refused', async () => {
      const q = await open();
      await assert.rejects(q.peek(-1), RangeError);
      await assert.rejects(q.shift(1.5), RangeError);
      await q.close();
    });

    test('concurrent calls (not awaited one by one) behave as if serialized in call order', async () => {
      const q = await open();
      const ops: Promise<unknown>[] = [];
      for (const i of range(0, 50)) ops.push(q.push(msg(i)));
      const peeked = q.peek(5);
      ops.push(q.shift(10));
      const after = q.peek(100);
      for (const i of range(50, 60)) ops.push(q.push(msg(i)));
      await Promise.all(ops);
      assert.deepEqual(ids(await peeked), [0, 1, 2, 3, 4]);
      assert.deepEqual(ids(await after), range(10, 50));
      assert.deepEqual(ids(await q.peek(100)), range(10, 60));
      await q.close();
    });

    test('a random mix of pushes, peeks and shifts matches a reference model', async () => {
      const size = recordBytes(msg(0));
      const cap = size * 40;
      const q = await open(cap);
      let model: number[] = [];
      let dropped = 0;
      let seed = 7;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % 1000) / 1000;
      for (let i = 0; i < 600; i++) {
        const r = rnd();
        if (r < 0.6) {
          await q.push(msg(i));
          model.push(i);
          while (model.length > 40) {
            model.shift();
            dropped++;
          }
        } else if (r < 0.8) {
          const k = Math.floor(rnd() * 15);
          assert.deepEqual(ids(await q.peek(k)), model.slice(0, k));
        } else {
          const k = Math.floor(rnd() * 15);
          await q.shift(k);
          model = model.slice(k);
        }
        assert.deepEqual(q.stats(), { depth: model.length, bytes: model.length * size, dropped, skipped: 0 });
      }
      assert.deepEqual(ids(await q.peek(1000)), model);
      await q.close();
    });
  });
}
