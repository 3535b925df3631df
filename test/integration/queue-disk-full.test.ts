/**
 * DiskQueue on a full disk (issue 11, item 6): a push that does not fit drops the oldest segment (counted) and is
 * retried, 'disk-full' is reported while it lasts, and with nothing left to drop the message is counted as dropped
 * (NotQueuedError) and sent live by the publisher when it can be. ENOSPC is injected into the segment appends (no
 * root needed); the last test fills a real 512 KiB tmpfs when this process may mount one (root), and is skipped
 * otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, test } from 'node:test';
import { Problems } from '../../agent/problems';
import { ReliablePublisher } from '../../agent/publish/reliable-publisher';
import { DiskQueue, type DiskQueueOptions } from '../../agent/store/disk-queue';
import { NotQueuedError, type QueuedMessage } from '../../agent/store/queue';
import { recordBytes } from '../../agent/store/queue-record';
import { FakeBroker } from '../support/fake-broker';
import { capturedLogs, ids, msg, queueDirs, range } from '../support/queue';

const freshDir = queueDirs('queue-full');

const logs = capturedLogs('info');

const SIZE = recordBytes(msg(0));

/** Makes appends to segment files (writes at the current position) fail with ENOSPC while `failing` says so. */
let failing: () => boolean = () => false;
const fhProto = (async () => {
  const fh = await fsp.open(__filename, 'r');
  await fh.close();
  return Object.getPrototypeOf(fh) as { write: (...args: unknown[]) => Promise<unknown> };
})();
const realWrite = fhProto.then((p) => p.write);
fhProto.then(async (proto) => {
  const orig = await realWrite;
  proto.write = function (this: unknown, ...args: unknown[]) {
    if (args[3] === null && failing()) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }));
    return orig.apply(this, args);
  };
});
after(async () => void ((await fhProto).write = await realWrite));
afterEach(() => void (failing = () => false));

async function openQ(opts: Partial<DiskQueueOptions> = {}): Promise<DiskQueue> {
  await fhProto;
  const q = new DiskQueue({ dir: freshDir(), maxBytes: 1 << 20, segmentBytes: SIZE * 5, ...opts });
  await q.open();
  return q;
}

function problemLog(problems: Problems): string[] {
  const seen: string[] = [];
  problems.onChange((list) => seen.push(list.map((p) => p.key).join(',')));
  return seen;
}

test('ENOSPC on a push: the oldest segment is dropped (counted, warned), the push retried; disk-full set, then cleared', async () => {
  const problems = new Problems();
  const changes = problemLog(problems);
  const q = await openQ({ problems });
  for (const i of range(0, 12)) await q.push(msg(i)); // segments of 5, 5, 2
  let failures = 1;
  failing = () => failures-- > 0;
  await q.push(msg(12));
  assert.deepEqual(ids(await q.peek(100)), range(5, 13));
  assert.deepEqual(q.stats(), { depth: 8, bytes: 8 * SIZE, dropped: 5, skipped: 0 });
  assert.deepEqual(changes, ['disk-full', ''], 'set by the failure, cleared by the retry that succeeded (the real disk has room)');
  assert.match(logs.join('\n'), /disk full; dropped the oldest queued messages to make room.*dropped=5/);
  await q.close();
});

test('ENOSPC with a single segment: it is replaced by a new one and the old one deleted', async () => {
  const problems = new Problems();
  const q = await openQ({ problems, segmentBytes: SIZE * 100 });
  for (const i of range(0, 10)) await q.push(msg(i));
  await q.shift(4);
  let failures = 1;
  failing = () => failures-- > 0;
  await q.push(msg(10));
  assert.deepEqual(ids(await q.peek(100)), [10]);
  assert.equal(q.stats().dropped, 6);
  await q.close();
});

test('nothing left to drop: NotQueuedError, counted as dropped; the queue works again once the disk has room', async () => {
  const problems = new Problems();
  const q = await openQ({ problems });
  failing = () => true;
  await assert.rejects(q.push(msg(0)), (e) => e instanceof NotQueuedError);
  await assert.rejects(q.push(msg(1)), (e) => e instanceof NotQueuedError);
  assert.deepEqual(q.stats(), { depth: 0, bytes: 0, dropped: 2, skipped: 0 });
  assert.ok(problems.has('disk-full'));
  assert.equal(logs.filter((l) => /nothing left to drop/.test(l)).length, 1, 'warned once, not per message');
  failing = () => false;
  await q.push(msg(2));
  assert.deepEqual(ids(await q.peek(10)), [2]);
  assert.ok(!problems.has('disk-full'));
  await q.close();
});

test('the publisher sends an unqueueable message live when connected, and keeps going when not', async () => {
  const q = await openQ();
  const broker = new FakeBroker();
  const pub = new ReliablePublisher(broker, q);
  failing = () => true;
  await pub.publish(msg(0)); // offline: counted as dropped by the queue, no throw
  assert.equal(q.stats().dropped, 1);
  broker.connect(); // starts a drain: while it runs, publish() goes through the queue
  const p = pub.publish(msg(1));
  for (let i = 0; i < 100 && broker.pendingCount === 0; i++) await new Promise((r) => setImmediate(r));
  broker.ackAll();
  await p;
  assert.deepEqual(broker.sentTo('t/x').map((s) => s.text), [msg(1).payload], 'sent live');
  assert.equal(q.stats().dropped, 2);
  assert.equal(pub.publishedCount, 1);
  await q.close();
});

const mountable = (() => {
  if (process.getuid?.() !== 0) return false;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
})();

test('a real full disk (512 KiB tmpfs): pushes never fail, the oldest are dropped, the newest kept in order', { skip: !mountable && 'cannot mount a tmpfs here (needs root)' }, async () => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
  const queues: DiskQueue[] = [];
  try {
    const problems = new Problems();
    const dir = path.join(mnt, 'queue');
    const big = (i: number): QueuedMessage => ({ ...msg(i), payload: JSON.stringify({ i: String(i).padStart(6, '0'), pad: 'x'.repeat(300) }) });
    const q = new DiskQueue({ dir, maxBytes: 10 << 20, segmentBytes: 32 * 1024, problems });
    queues.push(q);
    await q.open();
    const N = 4000; // ~1.3 MB of records into 512 KiB
    for (let i = 0; i < N; i++) await q.push(big(i));
    const { depth, dropped } = q.stats();
    assert.ok(dropped > 0, 'the oldest were dropped');
    assert.equal(depth + dropped, N);
    assert.ok(problems.has('disk-full'), 'still nearly full: the problem stays (hysteresis)');
    await q.close();
    const q2 = new DiskQueue({ dir, maxBytes: 10 << 20, segmentBytes: 32 * 1024 });
    queues.push(q2);
    await q2.open(); // restarts cleanly on the full disk
    const got = ids(await q2.peek(N));
    assert.deepEqual(got, range(N - depth, N));
    await q2.shift(depth);
    await q2.push(big(N));
    await q2.close();
  } finally {
    for (const q of queues) await q.close().catch(() => undefined);
    execFileSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  }
});
