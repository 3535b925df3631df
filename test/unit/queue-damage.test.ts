/**
 * DiskQueue recovery from damaged segments (issue 11, item 1): one damaged record costs at most that record, valid
 * records are never removed from disk, skipped records are counted, logged and reported as a problem. Also the
 * resynchronisation rule itself (queue-segments.ts resync) on crafted bytes.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Problems } from '../../agent/problems';
import { ReliablePublisher } from '../../agent/publish/reliable-publisher';
import { DiskQueue, type DiskQueueOptions } from '../../agent/store/disk-queue';
import type { QueuedMessage } from '../../agent/store/queue';
import { encodeRecord } from '../../agent/store/queue-record';
import { resync, scanRecords } from '../../agent/store/queue-segments';
import { crc32 } from '../../base/crc32';
import { encodePayload, predictionMessage } from '../../protocol/messages';
import { FakeBroker } from '../support/fake-broker';
import { capturedLogs, queueDirs, range } from '../support/queue';

const freshDir = queueDirs('queue-damage');

const warnings = capturedLogs('warn');

const TOPIC = 'edgehead/dev1/predictions';
/** A prediction as the agent queues it (~330 bytes). */
function prediction(frameId: number, run = 7): QueuedMessage {
  const msg = predictionMessage({
    capturedAt: Date.UTC(2026, 0, 1, 0, 0, frameId),
    run,
    frameId,
    source: `webcam:/dev/video0`,
    top: [
      { label: 'goldfish', score: 0.91 },
      { label: 'hammer', score: 0.05 },
      { label: 'teapot', score: 0.02 },
    ],
    head: { id: 'shop-items', version: 3 },
    extractor: 'mobilenet_v2_100_224',
    ms: { capture: 180.1, decode: 5.2, resize: 1.1, extract: 61.7, head: 0.4 },
  });
  return { topic: TOPIC, payload: encodePayload('prediction', msg), qos: 1, retain: false };
}
const frameIds = (ms: readonly ({ payload: string } | { text: string })[]) =>
  ms.map((m) => (JSON.parse('payload' in m ? m.payload : m.text) as { frameId: number }).frameId);
const segFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();

async function openQ(dir: string, opts: Partial<DiskQueueOptions> = {}): Promise<DiskQueue> {
  const q = new DiskQueue({ dir, maxBytes: 50 * 1024 * 1024, ...opts }); // offline.maxMB's default
  await q.open();
  return q;
}

test('issue 11: 178 queued predictions, one byte flipped 5% into the first segment: 177 are delivered after a restart', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  for (const i of range(1, 179)) await q.push(prediction(i));
  await q.close();
  const first = path.join(dir, segFiles(dir)[0]!);
  const bytes = fs.readFileSync(first);
  const at = Math.floor(bytes.length * 0.05);
  bytes[at] ^= 0x01;
  fs.writeFileSync(first, bytes);

  const problems = new Problems();
  const q2 = await openQ(dir, { problems });
  assert.equal(q2.stats().depth, 177);
  assert.equal(q2.stats().skipped, 1);
  const queueWarnings = warnings.filter((w) => w.includes('[queue]'));
  assert.equal(queueWarnings.length, 1, warnings.join('\n'));
  assert.match(queueWarnings[0]!, /skipped damaged records/);
  assert.match(queueWarnings[0]!, /skipped=1\b/);
  assert.match(queueWarnings[0]!, /kept=177\b/);
  assert.ok(problems.has('queue-damaged'));
  assert.deepEqual(fs.readFileSync(first), bytes, 'the damaged segment is not rewritten');

  // Delivered through the publisher to a broker, as after a restart with the broker up.
  const broker = new FakeBroker();
  const publisher = new ReliablePublisher(broker, q2);
  broker.connect();
  for (;;) {
    const drained = publisher.drain();
    while (broker.pendingCount > 0 || q2.stats().depth > 0) {
      broker.ackAll();
      await new Promise((r) => setImmediate(r));
      if (broker.pendingCount === 0) break;
    }
    await drained;
    if (q2.stats().depth === 0) break;
  }
  const got = frameIds(broker.sentTo(TOPIC));
  assert.equal(got.length, 177);
  const lost = range(1, 179).filter((i) => !got.includes(i));
  assert.equal(lost.length, 1);
  assert.ok(lost[0]! >= 8 && lost[0]! <= 11, `the damaged record is the one ~5% in (lost ${lost[0]})`);
  assert.ok(!problems.has('queue-damaged'), 'cleared once the damaged records are behind the head');
  await q2.close();
});

test('damage in every segment: each costs one record; the problem clears once the head is past the damage', async () => {
  const dir = freshDir();
  const rec = encodeRecord(prediction(1)).length;
  const opts = { segmentBytes: rec * 10 + 20 }; // 10 records per segment (frameIds of two digits are one byte longer)
  const q = await openQ(dir, opts);
  for (const i of range(0, 40)) await q.push(prediction(i));
  await q.close();
  const files = segFiles(dir);
  assert.equal(files.length, 4);
  for (const [k, f] of files.entries()) {
    const b = fs.readFileSync(path.join(dir, f));
    b[rec * (k + 2) + 40] ^= 0xff; // inside the record at index k + 2 of segment k
    fs.writeFileSync(path.join(dir, f), b);
  }
  const problems = new Problems();
  const q2 = await openQ(dir, { ...opts, problems });
  const expected = range(0, 40).filter((i) => ![2, 13, 24, 35].includes(i));
  assert.deepEqual(frameIds(await q2.peek(100)), expected);
  assert.equal(q2.stats().skipped, 4);
  assert.equal(warnings.filter((w) => /\[queue\] offline queue: skipped damaged records/.test(w)).length, 4, 'one warning per damaged segment');
  await q2.shift(31); // the head is now record 34, just before the last damaged span (record 35)
  assert.ok(problems.has('queue-damaged'), 'record 35 is not reached yet');
  await q2.shift(1);
  assert.ok(!problems.has('queue-damaged'));
  await q2.close();
});

test('resync prefers a chain of valid records over a lone match that overlaps it', () => {
  const r1 = encodeRecord(prediction(1));
  const x = encodeRecord(prediction(2));
  const r3 = encodeRecord(prediction(3));
  const r4 = encodeRecord(prediction(4));
  const buf = Buffer.concat([r1, x, r3, r4]);
  const xOff = r1.length;
  buf[xOff + 4] ^= 0xff; // x's checksum: x is damaged
  // A fake record E that starts inside x and ends inside r3, with a correct CRC over the bytes it spans.
  const p = xOff + x.length - 20;
  const len = 40;
  buf.writeUInt32LE(len, p);
  buf[p + 8] = 1; // flags: qos 1
  buf.writeUInt16LE(0, p + 9); // topic length 0
  buf.writeUInt32LE(crc32(buf.subarray(p + 8, p + 8 + len), crc32(buf.subarray(p, p + 4))), p + 4);
  assert.notEqual(typeof scanRecords(buf, p).offs[0], 'undefined', 'E decodes on its own');
  assert.equal(resync(buf, xOff + 1), xOff + x.length, 'the chain r3, r4 wins');
  const { offs, spans } = scanRecords(buf, 0);
  assert.deepEqual(offs, [0, xOff + x.length, xOff + x.length + r3.length]);
  assert.equal(spans.length, 1);
});

test('a lone valid record between two damaged ones is kept', () => {
  const recs = range(1, 6).map((i) => encodeRecord(prediction(i)));
  recs[1]![20] ^= 0xff;
  recs[3]![20] ^= 0xff;
  const { offs, spans } = scanRecords(Buffer.concat(recs), 0);
  assert.equal(offs.length, 3);
  assert.equal(spans.length, 2);
});

test('garbage at the end of the last segment is copied aside (0600) before the cut; a torn final record is just cut', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  for (const i of range(0, 5)) await q.push(prediction(i));
  await q.close();
  const seg = path.join(dir, segFiles(dir)[0]!);
  const size = fs.statSync(seg).size;
  const garbage = Buffer.concat([Buffer.from([40, 0, 0, 0, 9, 9, 9, 9]), Buffer.alloc(40, 7)]); // right length, wrong CRC
  fs.appendFileSync(seg, garbage);
  const q2 = await openQ(dir);
  assert.deepEqual(frameIds(await q2.peek(10)), range(0, 5));
  assert.equal(fs.statSync(seg).size, size);
  const damaged = fs.readdirSync(path.join(dir, 'damaged'));
  assert.equal(damaged.length, 1);
  const kept = path.join(dir, 'damaged', damaged[0]!);
  assert.deepEqual(fs.readFileSync(kept), garbage);
  assert.equal(fs.statSync(kept).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(dir, 'damaged')).mode & 0o777, 0o700);
  assert.match(warnings.join('\n'), /copiedTo=/);
  await q2.close();

  fs.appendFileSync(seg, encodeRecord(prediction(5)).subarray(0, 30)); // torn
  const q3 = await openQ(dir);
  assert.equal(q3.stats().depth, 5);
  assert.equal(fs.readdirSync(path.join(dir, 'damaged')).length, 1, 'nothing copied for a torn record');
  assert.equal(fs.statSync(seg).size, size);
  await q3.close();
});

test('queue files are 0600 and its folder 0700, whatever the umask', async () => {
  const old = process.umask(0o000);
  try {
    const dir = freshDir();
    const q = await openQ(dir, { segmentBytes: 1000 });
    for (const i of range(0, 10)) await q.push(prediction(i));
    await q.close();
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const files = fs.readdirSync(dir);
    assert.ok(files.length >= 3);
    for (const f of files) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  } finally {
    process.umask(old);
  }
});

test('onRecovered sees every queued message at open (how the agent recovers its highest run)', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  for (const i of range(1, 6)) await q.push(prediction(i, 40 + i));
  await q.shift(1);
  await q.close();
  const seen: QueuedMessage[] = [];
  const q2 = await openQ(dir, { onRecovered: (m) => seen.push(m) });
  assert.deepEqual(frameIds(seen), [2, 3, 4, 5]);
  await q2.close();
});
