/**
 * ReliablePublisher (agent/publish/reliable-publisher.ts) in-process: FakeBroker + MemoryQueue, acknowledgements held
 * and released by the test. Ordering, spill on disconnect and stop, the cap's drops during a drain, at-least-once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReliablePublisher } from '../../agent/publish/reliable-publisher';
import { recordBytes } from '../../agent/store/queue-record';
import { MemoryQueue } from '../../agent/store/memory-queue';
import type { QueuedMessage } from '../../agent/store/queue';
import { configureLogging } from '../../base/log';
import { FakeBroker } from '../support/fake-broker';

configureLogging({ level: 'error', sink: { write: () => undefined } });

const TOPIC = 'edgehead/dev1/prediction';
const msg = (payload: string, qos: 0 | 1 | 2 = 1): QueuedMessage => ({ topic: TOPIC, payload, qos, retain: false });
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);

/** Lets promise callbacks run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Waits (in event-loop turns, not time) until cond holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await flush();
  }
  assert.fail(`never happened: ${what}`);
}

function setup(maxBytes = 1 << 20) {
  const broker = new FakeBroker();
  const queue = new MemoryQueue({ maxBytes });
  const pub = new ReliablePublisher(broker, queue);
  const queued = async () => (await queue.peek(10_000)).map((m) => m.payload);
  return { broker, queue, pub, queued };
}

/** Connects and lets the (empty) drain that every connection starts finish: until then new messages are queued. */
async function connectIdle(broker: FakeBroker, pub: ReliablePublisher): Promise<void> {
  broker.connect();
  await pub.drain();
}

/**
 * stop(timeoutMs) races the acknowledgements against an unref'd timer; with nothing else pending the process would
 * exit before it fires, so a never-firing ref'd timer keeps the event loop alive meanwhile.
 */
async function stopPublisher(pub: ReliablePublisher, timeoutMs: number): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    await pub.stop(timeoutMs);
  } finally {
    clearInterval(keepAlive);
  }
}

async function publishAll(pub: ReliablePublisher, payloads: string[]): Promise<void> {
  for (const p of payloads) await pub.publish(msg(p));
}

test('connected with an empty queue: publishes directly, counted once acknowledged', async () => {
  const { broker, queue, pub } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await pub.publish({ topic: TOPIC, payload: 'a', qos: 2, retain: true });
  assert.deepEqual(
    broker.sent.map((s) => [s.topic, s.text, s.opts, s.status]),
    [[TOPIC, 'a', { qos: 2, retain: true }, 'pending']],
  );
  assert.equal(queue.stats().depth, 0);
  assert.equal(pub.publishedCount, 0);
  broker.ackAll();
  await until(() => pub.publishedCount === 1, 'counted after the ack');
});

test('offline: messages are queued, then drained oldest first when the connection comes up', async () => {
  const { broker, queue, pub, queued } = setup();
  await publishAll(pub, ['a', 'b', 'c']);
  assert.equal(broker.sent.length, 0);
  assert.equal(broker.refused, 0, 'does not even try while disconnected');
  assert.deepEqual(await queued(), ['a', 'b', 'c']);
  broker.connect();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b', 'c']);
  assert.equal(queue.stats().depth, 0);
  assert.equal(pub.publishedCount, 3);
});

test('a backlog longer than one batch is drained in order, each message once', async () => {
  const { broker, queue, pub } = setup();
  const backlog = names('m', 137);
  await publishAll(pub, backlog);
  broker.connect();
  await pub.drain();
  assert.deepEqual(broker.sent.map((s) => s.text), backlog);
  assert.equal(queue.stats().depth, 0);
  assert.equal(pub.publishedCount, backlog.length);
});

test('messages published during a drain queue behind it instead of overtaking', async () => {
  const { broker, pub, queued } = setup();
  await publishAll(pub, ['a', 'b', 'c']);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 3, 'the first batch is in flight');
  await pub.publish(msg('d'));
  assert.deepEqual(broker.sent.map((s) => s.text), ['a', 'b', 'c'], 'd is not sent directly while the drain runs');
  assert.deepEqual(await queued(), ['a', 'b', 'c', 'd']);
  broker.ackAll();
  await until(() => broker.pendingCount === 1, 'd is sent by the drain');
  broker.ackAll();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b', 'c', 'd']);
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 4);
});

test('a direct publish the broker fails goes to the queue and is sent before the next message', async () => {
  const { broker, pub, queued } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await pub.publish(msg('a'));
  broker.failPending(new Error('refused by the broker'));
  await until(() => broker.sent[0]?.status === 'failed', 'the failure is seen');
  await flush();
  assert.deepEqual(await queued(), ['a']);
  assert.equal(pub.publishedCount, 0);
  broker.holdAcks = false;
  await pub.publish(msg('b'));
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b']);
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 2);
});

test('disconnect: unacknowledged direct publishes move to the queue in order, ahead of later messages', async () => {
  const { broker, pub, queued } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await publishAll(pub, ['a', 'b', 'c']);
  broker.ackNext(1);
  await until(() => pub.publishedCount === 1, 'a acknowledged');
  broker.disconnect('network down');
  await flush();
  assert.deepEqual(await queued(), ['b', 'c']);
  await pub.publish(msg('d'));
  // A clean session: MQTT.js fails the QoS 1 publishes it still held; they must not be queued a second time.
  assert.equal(broker.failPending(), 2);
  await flush();
  assert.deepEqual(await queued(), ['b', 'c', 'd']);
  broker.holdAcks = false;
  broker.connect();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b', 'c', 'd']);
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 4);
});

test('disconnect with a persistent session: a late acknowledgement of a spilled message is not counted twice', async () => {
  const { broker, pub, queued } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await pub.publish(msg('a'));
  broker.disconnect();
  await flush();
  assert.deepEqual(await queued(), ['a']);
  broker.connect(); // MQTT.js re-sends its held copy; the drain sends the queued one: a duplicate, as documented
  await until(() => broker.pendingCount === 2, 'both copies in flight');
  broker.ackAll();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'a']);
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 1);
});

test('disconnect: a QoS 0 publish that MQTT.js fails on close is queued once', async () => {
  const { broker, pub, queued } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await pub.publish(msg('a', 0));
  broker.disconnect();
  await until(() => broker.sent[0]?.status === 'failed', 'MQTT.js failed the QoS 0 publish');
  await flush();
  assert.deepEqual(await queued(), ['a']);
});

test('stop() writes what is still unacknowledged to the queue, oldest first', async () => {
  const { broker, pub, queued } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await publishAll(pub, ['a', 'b', 'c']);
  broker.ackNext(1);
  await until(() => pub.publishedCount === 1, 'a acknowledged');
  await stopPublisher(pub, 0);
  assert.deepEqual(await queued(), ['b', 'c']);
});

test('stop() waits for acknowledgements that arrive in time, then has nothing to queue', async () => {
  const { broker, pub, queued } = setup();
  await connectIdle(broker, pub);
  broker.holdAcks = true;
  await publishAll(pub, ['a', 'b']);
  let stopped = false;
  const stopping = stopPublisher(pub, 600_000).then(() => (stopped = true));
  await flush();
  assert.equal(stopped, false, 'waits while acknowledgements are outstanding');
  broker.ackAll();
  await stopping;
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 2);
});

test('stop() during a drain leaves the unacknowledged batch queued exactly once', async () => {
  const { broker, pub, queued } = setup();
  await publishAll(pub, ['a', 'b']);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 2, 'batch in flight');
  await stopPublisher(pub, 0);
  assert.deepEqual(await queued(), ['a', 'b']);
});

test('the cap drops the head of the batch in flight: only the rest of the batch is removed afterwards', async () => {
  const { broker, queue, pub, queued } = setup(3 * recordBytes(msg('a')));
  await publishAll(pub, ['a', 'b', 'c']);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 3, 'batch a,b,c in flight');
  await publishAll(pub, ['d', 'e']); // the queue is full: a and b are dropped to make room
  assert.deepEqual(await queued(), ['c', 'd', 'e']);
  assert.equal(queue.stats().dropped, 2);
  broker.ackAll();
  await until(() => broker.pendingCount === 2, 'd and e in flight');
  broker.ackAll();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b', 'c', 'd', 'e'], 'd and e are not lost');
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 5);
});

test('the cap drops more than the batch in flight: nothing newer is removed in its place', async () => {
  const { broker, queue, pub, queued } = setup(3 * recordBytes(msg('a')));
  await publishAll(pub, ['a', 'b', 'c']);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 3, 'batch a,b,c in flight');
  await publishAll(pub, ['d', 'e', 'f', 'g']); // a, b, c and d are dropped
  assert.deepEqual(await queued(), ['e', 'f', 'g']);
  assert.equal(queue.stats().dropped, 4);
  broker.holdAcks = false;
  broker.ackAll();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b', 'c', 'e', 'f', 'g']);
  assert.deepEqual(await queued(), []);
});

test('at-least-once: a disconnect in the middle of a drain batch (clean session) loses nothing', async () => {
  const { broker, pub, queued } = setup();
  const backlog = names('m', 5);
  await publishAll(pub, backlog);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 5, 'batch in flight');
  broker.ackNext(2);
  broker.disconnect();
  broker.failPending();
  await pub.drain(); // the interrupted drain ends
  assert.deepEqual(await queued(), backlog, 'the whole batch stays queued until it is acknowledged in full');
  await pub.publish(msg('late'));
  broker.holdAcks = false;
  broker.connect();
  await pub.drain();
  assert.deepEqual(await queued(), []);
  const second = broker.sent.filter((s) => s.connection === 2 && s.status === 'acked').map((s) => s.text);
  assert.deepEqual(second, [...backlog, 'late'], 're-sent in order on the next connection');
});

test('at-least-once: a disconnect in the middle of a drain batch (persistent session) resumes the same drain', async () => {
  const { broker, pub, queued } = setup();
  const backlog = names('m', 5);
  await publishAll(pub, backlog);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 5, 'batch in flight');
  broker.ackNext(2);
  broker.disconnect(); // QoS 1 publishes stay in flight, MQTT.js re-sends them after reconnecting
  await pub.publish(msg('late'));
  broker.connect();
  broker.ackAll();
  await until(() => broker.pendingCount === 1, 'the drain goes on with the message queued while offline');
  broker.ackAll();
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), [...backlog, 'late']);
  assert.deepEqual(await queued(), []);
  assert.equal(pub.publishedCount, 6);
});

test('a drain the broker fails while still connected keeps the batch; the next publish resumes it in order', async () => {
  const { broker, pub, queued } = setup();
  await publishAll(pub, ['a', 'b']);
  broker.holdAcks = true;
  broker.connect();
  await until(() => broker.pendingCount === 2, 'batch in flight');
  broker.failPending(new Error('quota exceeded'));
  await until(() => broker.sent.every((s) => s.status === 'failed'), 'failures seen');
  await flush();
  assert.deepEqual(await queued(), ['a', 'b']);
  broker.holdAcks = false;
  await pub.publish(msg('c'));
  await pub.drain();
  assert.deepEqual(broker.ackedTexts(), ['a', 'b', 'c']);
  assert.deepEqual(await queued(), []);
});
