/**
 * DiskQueue: the offline buffer. While the broker is unreachable, predictions are pushed here; on reconnection they
 * are peeked, published and shifted, oldest first. Bounded by bytes (oldest dropped and counted), durable across
 * restarts, kill -9 and power cuts, and written append-only so an SD card is not rewritten per message.
 *
 * Files in `dir` (folders 0700, files 0600):
 *   0000000000000001.seg ...  segments: append-only, named by an increasing 16-digit number, rolled at ~segmentBytes
 *                              (default 1 MiB; smaller for small caps). A segment is deleted once fully consumed.
 *   meta                      where the head is (segment number + byte offset) and the dropped count.
 *   damaged/                  damaged segment tails copied aside before a cut (queue-segments.ts).
 *
 * Modules: queue-record.ts (record format, shared with MemoryQueue for sizes), queue-meta.ts (meta format),
 * queue-segments.ts (loading segments on open, resynchronising after damage), queue-files.ts (the open files).
 *
 * Damage costs only the damaged records: open() resynchronises on the next valid record, counts each damaged span in
 * `skipped`, warns and sets the 'queue-damaged' problem until the head has passed the damage. Only the last
 * segment can be torn by a power cut: a segment is fdatasync'ed before the next one is started.
 *
 * meta (two checksummed slots written alternately in place) is written on every shift and every drop, so shifted
 * records do not come back after a process crash. Delivery is at-least-once: a crash between the broker's
 * acknowledgement and shift() (or a power cut before meta reaches the card) re-delivers those messages.
 *
 * fsync policy (the trade-off): every push is one write() straight to the segment, so when push() resolves the record
 * is in the kernel page cache and survives the agent crashing or being killed (-9, OOM, systemd timeout). Flushing to
 * the card is coalesced: the first write after a flush arms a timer, and after syncIntervalMs (default 5 s) one
 * fdatasync covers the tail segment, meta and (after a segment was created or deleted) the directory; a segment
 * roll and close() flush immediately. A power cut therefore loses at most the last ~5 s of pushes and may re-deliver
 * the last ~5 s of shifts. fdatasync per push would lose nothing, but at one prediction per second that is 86,400
 * synchronous flushes a day, each forcing the card's controller to program (often read-modify-write) a flash page
 * plus an ext4 journal commit: write amplification that wears cheap SD cards out. 5 s matches ext4's default
 * journal commit interval, so the explicit flushes add little beyond what the kernel writes anyway, while bounding
 * the loss window even on mounts with longer commit intervals. `syncIntervalMs: 0` gives fdatasync on every push.
 *
 * A full disk (ENOSPC, EDQUOT) never stops the queue: a push that does not fit sets the 'disk-full' problem (cleared
 * once a write succeeds with room for two segments left), drops the oldest segment (only a deleted file frees space; a lone segment is
 * first replaced by a new one; its records counted in `dropped`, a warning) and tries again. With nothing left to
 * drop, the message is counted as dropped and push() rejects with NotQueuedError (the publisher then sends it live
 * if it can). The meta file is written whole at creation, so head moves still work on a full disk.
 *
 * Disk use: `bytes` (and the cap) counts the records still queued; files can hold up to one extra segment of
 * already-consumed records. One process per directory: the agent locks the state dir (agent/state/state-dir.ts).
 * All operations are serialized internally, so concurrent push/peek/shift calls are safe.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { Problems } from '../problems';
import { type MessageQueue, NotQueuedError, type QueuedMessage, type QueueStats } from './queue';
import { isNoSpaceError } from '../../base/durable-file';
import { checkCount, encodeRecord, oversizeError } from './queue-record';
import { META_FILE, encodeMeta, readMeta } from './queue-meta';
import { DIR_MODE, type Segment, loadSegments } from './queue-segments';
import { QueueFiles } from './queue-files';

const log = createLogger('queue');

const MAX_SEGMENT_BYTES = 1024 * 1024;
const MIN_AUTO_SEGMENT_BYTES = 64 * 1024;
const SYNC_INTERVAL_MS = 5000;

export interface DiskQueueOptions {
  /** Folder of the queue (created if missing). */
  dir: string;
  /** Cap on queued record bytes (offline.maxMB * 1024 * 1024). */
  maxBytes: number;
  /** Segment size; default min(1 MiB, max(64 KiB, maxBytes / 8)). */
  segmentBytes?: number;
  /** Coalescing window of fdatasync; 0 = fdatasync before every push resolves. Default 5000. */
  syncIntervalMs?: number;
  /** Where 'disk-full' and 'queue-damaged' are reported. */
  problems?: Problems;
  /** Called by open() for every queued message it finds (e.g. to recover the highest run number). */
  onRecovered?: (msg: QueuedMessage) => void;
}

export class DiskQueue implements MessageQueue {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly syncIntervalMs: number;
  private readonly files: QueueFiles;

  private state: 'new' | 'open' | 'closed' = 'new';
  private chain: Promise<unknown> = Promise.resolve();
  /** Oldest first; never empty while open (the last one is the tail being appended to). */
  private segments: Segment[] = [];
  /** Byte offset of the first unconsumed record in segments[0] (or of the end of the last consumed one). */
  private headOff = 0;
  private depth = 0;
  private bytes = 0;
  private dropped = 0;
  /** Damaged records skipped since open() (recovery and reads). */
  private skipped = 0;
  /** Where the last damaged span skipped at open ends: 'queue-damaged' lasts until the head is past it. */
  private damagedUntil?: { seq: number; off: number };
  private metaSeq = 0;
  private syncTimer?: NodeJS.Timeout;
  private capWarned = false;
  /** A write failed for lack of space and none has succeeded since ('disk-full' is set). */
  private noSpace = false;
  private notQueuedWarned = false;
  /** Segments released by consume(), deleted once the new head is in meta. */
  private toDelete: number[] = [];

  constructor(private readonly opts: DiskQueueOptions) {
    if (!(opts.maxBytes > 0) || !Number.isFinite(opts.maxBytes)) {
      throw new EdgeheadError('BAD_CONFIG', `offline queue: maxBytes must be a positive number (got ${opts.maxBytes})`);
    }
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.segmentBytes = Math.max(1, opts.segmentBytes ?? Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_AUTO_SEGMENT_BYTES, Math.floor(opts.maxBytes / 8))));
    this.syncIntervalMs = Math.max(0, opts.syncIntervalMs ?? SYNC_INTERVAL_MS);
    this.files = new QueueFiles(this.dir);
  }

  open(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'new') throw new Error('DiskQueue: open() may be called once');
      try {
        await this.recover();
      } catch (e) {
        await this.files.close().catch(() => undefined);
        if (e instanceof EdgeheadError) throw e;
        throw new EdgeheadError('IO', `offline queue: cannot open ${this.dir}: ${describeError(e)}`, { hint: 'check that stateDir exists and is writable', cause: e });
      }
      this.state = 'open';
    });
  }

  push(msg: QueuedMessage): Promise<void> {
    return this.serial(async () => {
      this.assertOpen();
      const rec = encodeRecord(msg);
      if (rec.length > this.maxBytes) throw oversizeError(rec.length, this.maxBytes);
      if (this.bytes + rec.length > this.maxBytes) {
        let n = 0;
        while (this.bytes + rec.length > this.maxBytes) n += this.consume(1);
        this.dropped += n;
        if (!this.capWarned) log.warn('offline queue full: dropping the oldest messages', { maxBytes: this.maxBytes, dropped: this.dropped });
        this.capWarned = true;
        // Head and dropped count reach the file before the new record: a crash in between loses nothing queued.
        await this.headMoved();
      }
      await this.appendMakingRoom(rec);
      await this.afterWrite();
    });
  }

  peek(n: number): Promise<QueuedMessage[]> {
    return this.serial(async () => {
      this.assertOpen();
      checkCount('peek', n);
      const out: QueuedMessage[] = [];
      for (let i = 0; i < this.segments.length && out.length < n; i++) {
        const seg = this.segments[i]!;
        const count = Math.min(n - out.length, seg.sizes.length - seg.first);
        if (count === 0) continue;
        const got = await this.files.read(seg, count);
        out.push(...got.msgs);
        if (got.msgs.length === count) continue;
        if (out.length > 0) break; // a damaged record ends the batch; it reaches the head later
        // The head record itself became unreadable after open (media damage, another writer): skip it (counted)
        // rather than blocking the queue forever, then start over.
        log.warn('offline queue: skipping a record that became unreadable', { segment: seg.seq, offset: this.headOff, reason: got.error });
        this.consume(1);
        this.skipped++;
        await this.headMoved();
        i = -1;
      }
      return out;
    });
  }

  shift(n: number): Promise<void> {
    return this.serial(async () => {
      this.assertOpen();
      checkCount('shift', n);
      if (n === 0 || this.depth === 0) return;
      this.consume(n);
      if (this.depth === 0) this.capWarned = false;
      await this.headMoved();
      await this.afterWrite();
    });
  }

  stats(): QueueStats {
    return { depth: this.depth, bytes: this.bytes, dropped: this.dropped, skipped: this.skipped };
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'closed') return;
      const wasOpen = this.state === 'open';
      this.state = 'closed';
      if (this.syncTimer) clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
      try {
        if (wasOpen) await this.files.sync();
      } finally {
        await this.files.close();
      }
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new Error(`DiskQueue: not open (${this.state})`);
  }

  private async recover(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
    const meta = await readMeta(path.join(this.dir, META_FILE));
    await this.files.openMeta();
    await this.tolerateNoSpace('meta', () => this.files.fillMeta());
    this.dropped = meta?.dropped ?? 0;
    this.metaSeq = meta?.seq ?? 0;

    const loaded = await loadSegments(this.dir, meta, this.opts.onRecovered);
    this.segments = loaded.segments;
    for (const seg of this.segments) {
      for (const size of seg.sizes) this.bytes += size;
      this.depth += seg.sizes.length;
    }
    this.skipped = loaded.damage.spans;
    if (loaded.damage.spans > 0) {
      this.damagedUntil = loaded.damage.until;
      this.opts.problems?.set('queue-damaged', `offline queue: ${loaded.damage.spans} damaged record(s) skipped (${loaded.damage.bytes} bytes) in ${this.dir}`);
    }
    const dirty = this.files.dirty;
    if (meta === undefined || loaded.deleted) dirty.dir = true; // the meta file may be new
    if (loaded.truncated) dirty.seg = true;
    this.headOff = loaded.headOff;
    if (this.segments.length === 0) {
      const seq = loaded.lastSeq + 1;
      await this.files.openTail(seq, true);
      this.segments.push({ seq, size: 0, offs: [], sizes: [], first: 0 });
      this.headOff = 0;
    } else await this.files.openTail(this.segments.at(-1)!.seq, false);
    if (meta === undefined || loaded.headChanged || meta.headSeg !== this.segments[0]!.seq || meta.headOff !== this.headOff) await this.writeMeta();
    if (dirty.dir || dirty.meta || dirty.seg) await this.tolerateNoSpace('sync', () => this.files.sync());
    log.debug('offline queue opened', { dir: this.dir, depth: this.depth, bytes: this.bytes, dropped: this.dropped, segments: this.segments.length });
  }

  /** Marks up to n head records consumed (in memory); returns how many. Fully consumed older segments are released. */
  private consume(n: number): number {
    let done = 0;
    while (done < n && this.depth > 0) {
      const seg = this.segments[0]!;
      if (seg.first >= seg.sizes.length) {
        this.releaseHeadSegment();
        continue;
      }
      const i = seg.first++;
      const size = seg.sizes[i]!;
      this.headOff = seg.offs[i + 1] ?? seg.offs[i]! + size;
      this.bytes -= size;
      this.depth--;
      done++;
    }
    while (this.segments.length > 1 && this.segments[0]!.first >= this.segments[0]!.sizes.length) this.releaseHeadSegment();
    return done;
  }

  private releaseHeadSegment(): void {
    const seg = this.segments.shift()!;
    this.toDelete.push(seg.seq);
    const next = this.segments[0];
    this.headOff = next?.offs[next.first] ?? 0;
  }

  /** Persists the head (meta first, so a crash never points it at a deleted segment), then deletes consumed segments. */
  private async headMoved(): Promise<void> {
    await this.writeMeta();
    for (const seq of this.toDelete.splice(0)) {
      await this.files.unlinkSegment(seq).catch((e) => log.warn('offline queue: cannot delete a consumed segment', { seq, error: describeError(e) }));
    }
    const d = this.damagedUntil;
    const head = this.segments[0]!;
    if (d && (head.seq > d.seq || (head.seq === d.seq && this.headOff >= d.off))) {
      this.damagedUntil = undefined;
      this.opts.problems?.clear('queue-damaged');
    }
  }

  /**
   * Writes the head to meta. Out of space (the file was not written whole at creation) it is left as it was, which is
   * safe: a head segment that is gone is skipped at open, an older head only re-delivers messages.
   */
  private async writeMeta(): Promise<void> {
    this.metaSeq++;
    const slot = encodeMeta({ seq: this.metaSeq, headSeg: this.segments[0]!.seq, headOff: this.headOff, dropped: this.dropped });
    await this.tolerateNoSpace('meta', () => this.files.writeMetaSlot(slot, this.metaSeq));
  }

  /** Runs fn; a lack of space is reported ('disk-full', a warning) instead of thrown. */
  private async tolerateNoSpace(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      if (!isNoSpaceError(e)) throw e;
      this.diskFull(`${what}: ${describeError(e)}`);
    }
  }

  private diskFull(detail: string): void {
    if (!this.noSpace) log.warn('offline queue: disk full', { dir: this.dir, detail });
    this.noSpace = true;
    this.opts.problems?.set('disk-full', `disk full: the offline queue in ${this.dir} cannot write`);
  }

  /** Appends rec; out of space, drops the oldest segment and tries again (see the file head). */
  private async appendMakingRoom(rec: Buffer): Promise<void> {
    for (;;) {
      try {
        await this.append(rec);
        break;
      } catch (e) {
        if (!isNoSpaceError(e)) throw new EdgeheadError('IO', `offline queue: cannot write to ${this.dir}: ${describeError(e)}`, { cause: e });
        this.diskFull(describeError(e));
        const freed = await this.dropHeadSegment();
        if (freed !== undefined) {
          log.warn('offline queue: disk full; dropped the oldest queued messages to make room', { dropped: freed, droppedTotal: this.dropped, depth: this.depth });
          continue;
        }
        this.dropped++;
        await this.writeMeta();
        if (!this.notQueuedWarned) log.warn('offline queue: disk full and nothing left to drop; messages are not queued (counted as dropped)', { dir: this.dir });
        this.notQueuedWarned = true;
        throw new NotQueuedError(`offline queue: disk full, message not queued (${this.dir})`, e);
      }
    }
    // Hysteresis: 'disk-full' ends when there is room for two more segments (or the free space is unknown).
    if (this.noSpace && ((await this.files.freeBytes()) ?? Infinity) >= 2 * this.segmentBytes) {
      this.noSpace = this.notQueuedWarned = false;
      log.info('offline queue: the disk has room again', { dir: this.dir });
      this.opts.problems?.clear('disk-full');
    }
  }

  /** Deletes the oldest segment, its records dropped (counted; a lone one is first rolled): how many, or undefined. */
  private async dropHeadSegment(): Promise<number | undefined> {
    const head = this.segments[0]!;
    if (this.segments.length === 1) {
      if (head.size === 0) return undefined;
      const started = await this.startSegment().catch((e) => log.debug('offline queue: cannot start a segment', { error: describeError(e) }));
      if (!started) return undefined;
    }
    const n = this.consume(head.sizes.length - head.first);
    this.dropped += n;
    await this.headMoved();
    return n;
  }

  private async append(rec: Buffer): Promise<void> {
    let tail = this.segments.at(-1)!;
    if (tail.size > 0 && tail.size + rec.length > this.segmentBytes) {
      await this.files.flushTail(); // only the newest segment can be torn
      tail = await this.startSegment();
    }
    await this.files.append(tail, rec);
    tail.offs.push(tail.size);
    tail.sizes.push(rec.length);
    tail.size += rec.length;
    this.depth++;
    this.bytes += rec.length;
  }

  private async startSegment(): Promise<Segment> {
    const seg: Segment = { seq: this.segments.at(-1)!.seq + 1, size: 0, offs: [], sizes: [], first: 0 };
    await this.files.openTail(seg.seq, true);
    this.segments.push(seg);
    return seg;
  }

  private async afterWrite(): Promise<void> {
    if (this.syncIntervalMs === 0) {
      await this.files.sync();
      return;
    }
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.serial(() => this.files.sync()).catch((e) => {
        if (isNoSpaceError(e)) this.diskFull(`fdatasync: ${describeError(e)}`);
        log.warn('offline queue: fdatasync failed', { error: describeError(e) });
      });
    }, this.syncIntervalMs);
    this.syncTimer.unref();
  }
}
