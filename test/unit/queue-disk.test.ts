/**
 * DiskQueue-only behaviour: restarts, torn and corrupt records, meta fallback, segment files. The behaviour shared
 * with MemoryQueue is in queue-contract.test.ts; a real kill -9 of a writing process in
 * test/integration/queue-disk-kill.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as zlib from 'node:zlib';
import { DiskQueue, type DiskQueueOptions } from '../../agent/store/disk-queue';
import { recordBytes } from '../../agent/store/queue-record';
import { EdgeheadError } from '../../base/errors';
import { capturedLogs, ids, msg, queueDirs, range } from '../support/queue';

const freshDir = queueDirs('queue-disk');

const warnings = capturedLogs('warn');

const SIZE = recordBytes(msg(0));

async function openQ(dir: string, opts: Partial<DiskQueueOptions> = {}): Promise<DiskQueue> {
  const q = new DiskQueue({ dir, maxBytes: 1 << 20, ...opts });
  await q.open();
  return q;
}
const segFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
const lastSeg = (dir: string) => path.join(dir, segFiles(dir).at(-1)!);
async function all(q: DiskQueue): Promise<number[]> {
  return ids(await q.peek(q.stats().depth + 10));
}

test('the record format on disk: u32 length, crc32, flags, u16 topic length, topic, payload', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  await q.push({ topic: 'a/b', payload: '{"x":1}', qos: 2, retain: true });
  await q.close();
  assert.deepEqual(fs.readdirSync(dir).sort(), ['0000000000000001.seg', 'meta']);
  const b = fs.readFileSync(path.join(dir, '0000000000000001.seg'));
  const body = Buffer.concat([Buffer.from([2 | 4, 3, 0]), Buffer.from('a/b'), Buffer.from('{"x":1}')]);
  assert.equal(b.readUInt32LE(0), body.length);
  assert.equal(b.readUInt32LE(4), zlib.crc32(body, zlib.crc32(b.subarray(0, 4))));
  assert.deepEqual(b.subarray(8), body);
});

for (const syncIntervalMs of [0, 5000]) {
  test(`reopen after close keeps the contents, their order and the dropped count (syncIntervalMs ${syncIntervalMs})`, async () => {
    const dir = freshDir();
    const q = await openQ(dir, { maxBytes: SIZE * 20, segmentBytes: SIZE * 3, syncIntervalMs });
    for (const i of range(0, 25)) await q.push(msg(i));
    await q.shift(2);
    const before = q.stats();
    assert.deepEqual(before, { depth: 18, bytes: SIZE * 18, dropped: 5, skipped: 0 });
    await q.close();
    const q2 = await openQ(dir, { maxBytes: SIZE * 20, segmentBytes: SIZE * 3, syncIntervalMs });
    assert.deepEqual(q2.stats(), before);
    assert.deepEqual(await all(q2), range(7, 25));
    for (const i of range(25, 28)) await q2.push(msg(i));
    assert.deepEqual(await all(q2), range(8, 28), 'appending after a reopen continues the same order (and cap)');
    assert.equal(q2.stats().dropped, 6);
    await q2.close();
    assert.deepEqual(warnings.filter((w) => !/queue full/.test(w)), [], 'no recovery warnings after a clean close');
  });
}

test('shifted and dropped records stay gone after a crash (reopen without close)', async () => {
  const dir = freshDir();
  const q = await openQ(dir, { maxBytes: SIZE * 8, segmentBytes: SIZE * 2 });
  for (const i of range(0, 10)) await q.push(msg(i)); // drops 0, 1
  await q.shift(3); // 2, 3, 4
  // No close(): a second instance reads what a killed process leaves behind.
  const q2 = await openQ(dir, { maxBytes: SIZE * 8, segmentBytes: SIZE * 2 });
  assert.deepEqual(await all(q2), [5, 6, 7, 8, 9]);
  assert.equal(q2.stats().dropped, 2);
  await q.close();
  await q2.close();
});

test('a torn last record (power cut mid-write) is skipped with a warning; new records follow the valid ones', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  for (const i of range(0, 10)) await q.push(msg(i));
  await q.close();
  const file = lastSeg(dir);
  fs.truncateSync(file, fs.statSync(file).size - 5);

  const q2 = await openQ(dir);
  assert.deepEqual(await all(q2), range(0, 9));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /torn or corrupt/);
  assert.match(warnings[0]!, /truncated record/);
  assert.equal(fs.statSync(file).size, SIZE * 9, 'the torn bytes are cut off');
  await q2.push(msg(9));
  await q2.close();

  warnings.length = 0;
  const q3 = await openQ(dir);
  assert.deepEqual(await all(q3), range(0, 10));
  assert.deepEqual(warnings, []);
  await q3.close();
});

for (const [name, garbage] of [
  ['random bytes', Buffer.from([0x20, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])],
  ['a zero-filled block', Buffer.alloc(4096)],
  ['a plausible header with a wrong checksum', Buffer.concat([Buffer.from([10, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(10, 1)])],
] as const) {
  test(`${name} after the last record: every complete record is recovered`, async () => {
    const dir = freshDir();
    const q = await openQ(dir);
    for (const i of range(0, 10)) await q.push(msg(i));
    await q.close();
    fs.appendFileSync(lastSeg(dir), garbage);
    const q2 = await openQ(dir);
    assert.deepEqual(await all(q2), range(0, 10));
    assert.equal(warnings.length, 1);
    await q2.push(msg(10));
    await q2.close();
    const q3 = await openQ(dir);
    assert.deepEqual(await all(q3), range(0, 11));
    await q3.close();
  });
}

test('a corrupt record inside an older segment loses only that record; the file is left as it was', async () => {
  const dir = freshDir();
  const opts = { segmentBytes: SIZE * 3 };
  const q = await openQ(dir, opts);
  for (const i of range(0, 12)) await q.push(msg(i));
  await q.close();
  const files = segFiles(dir);
  assert.equal(files.length, 4);
  const second = path.join(dir, files[1]!);
  const b = fs.readFileSync(second);
  b[SIZE + 12] ^= 0xff; // inside record 4's body
  fs.writeFileSync(second, b);

  const q2 = await openQ(dir, opts);
  assert.deepEqual(await all(q2), [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(q2.stats().skipped, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /checksum mismatch/);
  assert.deepEqual(fs.readFileSync(second), b, 'recovery does not rewrite a damaged segment');
  for (let left = q2.stats().depth; left > 0; left = q2.stats().depth) await q2.shift(3);
  assert.equal(segFiles(dir).length, 1, 'consumed segments, the damaged one included, are deleted');
  await q2.close();
});

test('a record damaged after open is skipped (counted) when it reaches the head, instead of blocking the queue', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  for (const i of range(0, 6)) await q.push(msg(i));
  const file = lastSeg(dir);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 2 * SIZE + 12); // inside record 2
  fs.closeSync(fd);
  assert.deepEqual(ids(await q.peek(10)), [0, 1], 'the batch ends before the damaged record');
  await q.shift(2);
  assert.deepEqual(ids(await q.peek(10)), [3, 4, 5]);
  assert.deepEqual(q.stats(), { depth: 3, bytes: 3 * SIZE, dropped: 0, skipped: 1 });
  assert.match(warnings.join('\n'), /became unreadable/);
  await q.close();
});

test('meta: a torn newest slot falls back to the previous state (re-delivery); an unreadable meta restarts from the oldest record', async () => {
  const dir = freshDir();
  const q = await openQ(dir);
  for (const i of range(0, 10)) await q.push(msg(i));
  await q.shift(3);
  await q.shift(2);
  await q.close();
  const metaFile = path.join(dir, 'meta');
  const meta = fs.readFileSync(metaFile);
  const seqAt = (at: number) => Number(meta.readBigUInt64LE(at + 8));
  const newest = seqAt(0) > seqAt(4096) ? 0 : 4096;
  meta[newest + 20] ^= 0xff;
  fs.writeFileSync(metaFile, meta);

  const q2 = await openQ(dir);
  assert.deepEqual(await all(q2), range(3, 10), 'the head from before the last shift');
  await q2.close();
  assert.deepEqual(warnings, []);

  fs.writeFileSync(metaFile, Buffer.alloc(8192, 0x55));
  const q3 = await openQ(dir);
  assert.deepEqual(await all(q3), range(0, 10));
  assert.match(warnings.join('\n'), /meta file unreadable/);
  await q3.shift(4);
  await q3.close();
  const q4 = await openQ(dir);
  assert.deepEqual(await all(q4), range(4, 10), 'meta is rewritten and used again');
  await q4.close();
});

test('segments left behind by a crash between meta and delete are removed at open', async () => {
  const dir = freshDir();
  const opts = { segmentBytes: SIZE * 2 };
  const q = await openQ(dir, opts);
  for (const i of range(0, 8)) await q.push(msg(i));
  const first = path.join(dir, segFiles(dir)[0]!);
  const stale = fs.readFileSync(first);
  await q.shift(5);
  await q.close();
  assert.ok(!fs.existsSync(first));
  fs.writeFileSync(first, stale);
  const q2 = await openQ(dir, opts);
  assert.ok(!fs.existsSync(first));
  assert.deepEqual(await all(q2), [5, 6, 7]);
  await q2.close();
});

test('20,000 small messages: bytes stay within the cap, segment files are deleted as they are consumed', async () => {
  const dir = freshDir();
  const cap = 256 * 1024;
  const segmentBytes = 16 * 1024;
  const q = await openQ(dir, { maxBytes: cap, segmentBytes });
  const N = 20_000;
  for (let i = 0; i < N; i++) {
    await q.push(msg(i));
    if (i % 1000 === 999) {
      assert.ok(q.stats().bytes <= cap);
      const files = segFiles(dir);
      assert.ok(files.length <= cap / segmentBytes + 2, `${files.length} segment files`);
      const onDisk = files.reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
      assert.ok(onDisk <= cap + segmentBytes, `${onDisk} bytes of segments on disk`);
    }
  }
  const { depth, bytes, dropped } = q.stats();
  assert.equal(depth, Math.floor(cap / SIZE));
  assert.equal(bytes, depth * SIZE);
  assert.equal(depth + dropped, N);
  await q.close();

  const q2 = await openQ(dir, { maxBytes: cap, segmentBytes });
  let next = dropped;
  for (;;) {
    const batch = await q2.peek(500);
    if (batch.length === 0) break;
    assert.deepEqual(ids(batch), range(next, next + batch.length));
    next += batch.length;
    await q2.shift(batch.length);
  }
  assert.equal(next, N);
  assert.deepEqual(q2.stats(), { depth: 0, bytes: 0, dropped, skipped: 0 });
  assert.equal(segFiles(dir).length, 1, 'only the tail segment is left');
  await q2.close();
});

test('open() fails with an IO error when the folder cannot be created; use before open() or after close() is refused', async () => {
  const file = `${freshDir()}-not-a-folder`;
  fs.writeFileSync(file, 'x');
  await assert.rejects(new DiskQueue({ dir: path.join(file, 'q'), maxBytes: 1000 }).open(), (e) => e instanceof EdgeheadError && e.code === 'IO');
  const q = new DiskQueue({ dir: freshDir(), maxBytes: 1000 });
  await assert.rejects(q.push(msg(1)), /not open/);
  await q.open();
  await q.close();
  await assert.rejects(q.peek(1), /not open/);
  assert.throws(() => new DiskQueue({ dir: freshDir(), maxBytes: 0 }), (e) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG');
});
