/**
 * DiskQueue: the offline buffer. While the broker is unreachable, predictions are pushed here; on reconnection they
 * are peeked, published and shifted, oldest first. Bounded by bytes (oldest dropped and counted), durable across
 * restarts, kill -9 and power cuts, and written append-only so an SD card is not rewritten per message.
 *
 * Files in `dir`:
 *   0000000000000001.seg ...  segments: append-only, named by an increasing 16-digit number, rolled at ~segmentBytes
 *                              (default 1 MiB; smaller for small caps). A segment is deleted once fully consumed.
 *   meta                      where the head is (segment number + byte offset) and the dropped count.
 *
 * Modules: queue-record.ts (the record format, shared with MemoryQueue for sizes), queue-meta.ts (the meta file's
 * format), queue-segments.ts (segment files: naming, loading on open, reading records back); this file is the queue.
 *
 * Each segment is a sequence of records, one per message. A torn or corrupt record (bad length, checksum, flags) ends
 * the readable part of its segment: open() warns, skips the rest of that segment and, for the last segment, truncates
 * the file there so new records follow valid ones. Only the last segment can be torn by a power cut: a segment is
 * fdatasync'ed before the next one is started.
 *
 * meta: two checksummed slots written alternately in place; open() uses the newer valid one, so a torn meta write
 * falls back to the state before it. Meta is written on every shift and every cap drop (one small pwrite), so shifted
 * records do not come back after a process crash. Delivery is at-least-once: a crash between the broker's
 * acknowledgement and shift() (or a power cut before meta reaches the card) re-delivers those messages; the publisher
 * tolerates duplicates.
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
 * Disk use: `bytes` (and the cap) counts the records still queued; files can hold up to one extra segment of
 * already-consumed records (the head segment is deleted as a whole). One process per directory (no lock file).
 * All operations are serialized internally, so concurrent push/peek/shift calls are safe.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { MessageQueue, QueuedMessage, QueueStats } from './queue';
import { fsyncDirAsync } from '../../base/durable-file';
import { checkCount, encodeRecord, oversizeError } from './queue-record';
import { META_FILE, encodeMeta, metaSlotOffset, readMeta } from './queue-meta';
import { type Segment, loadSegments, readRecordRun, segmentPath } from './queue-segments';

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
}

export class DiskQueue implements MessageQueue {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly syncIntervalMs: number;

  private state: 'new' | 'open' | 'closed' = 'new';
  private chain: Promise<unknown> = Promise.resolve();
  /** Oldest first; never empty while open (the last one is the tail being appended to). */
  private segments: Segment[] = [];
  /** Byte offset of the first unconsumed record in segments[0]. */
  private headOff = 0;
  private depth = 0;
  private bytes = 0;
  private dropped = 0;
  /** Damaged records skipped since open() (recovery and reads). */
  private skipped = 0;
  private metaSeq = 0;
  private tailFh?: fsp.FileHandle;
  private metaFh?: fsp.FileHandle;
  private reader?: { seq: number; fh: fsp.FileHandle };
  private dirty = { seg: false, meta: false, dir: false };
  private syncTimer?: NodeJS.Timeout;
  private capWarned = false;
  /** Segments released by consume(), deleted once the new head is in meta. */
  private toDelete: number[] = [];

  constructor(opts: DiskQueueOptions) {
    if (!(opts.maxBytes > 0) || !Number.isFinite(opts.maxBytes)) {
      throw new EdgeheadError('BAD_CONFIG', `offline queue: maxBytes must be a positive number (got ${opts.maxBytes})`);
    }
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.segmentBytes = Math.max(1, opts.segmentBytes ?? Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_AUTO_SEGMENT_BYTES, Math.floor(opts.maxBytes / 8))));
    this.syncIntervalMs = Math.max(0, opts.syncIntervalMs ?? SYNC_INTERVAL_MS);
  }

  open(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'new') throw new Error('DiskQueue: open() may be called once');
      try {
        await this.recover();
      } catch (e) {
        await this.closeFiles().catch(() => undefined);
        if (e instanceof EdgeheadError) throw e;
        throw new EdgeheadError('IO', `offline queue: cannot open ${this.dir}: ${describeError(e)}`, {
          hint: 'check that stateDir exists and is writable',
          cause: e,
        });
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
        if (!this.capWarned) {
          this.capWarned = true;
          log.warn('offline queue full: dropping the oldest messages', { maxBytes: this.maxBytes, dropped: this.dropped });
        }
        // Head and dropped count reach the file before the new record: a crash in between loses nothing queued.
        await this.headMoved();
      }
      await this.append(rec);
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
        const count = Math.min(n - out.length, seg.recs.length - seg.first);
        if (count === 0) continue;
        const got = await this.readRecords(seg, i === 0 ? this.headOff : 0, count);
        out.push(...got.msgs);
        if (got.msgs.length === count) continue;
        if (out.length > 0) break; // a damaged record ends the batch; it reaches the head later
        // The head record itself became unreadable after open (media damage): drop it (counted) rather than
        // blocking the queue forever, then start over.
        log.warn('offline queue: dropping a record that became unreadable', { segment: seg.seq, offset: this.headOff, reason: got.error });
        this.consume(1);
        this.dropped++;
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
        if (wasOpen) await this.sync();
      } finally {
        await this.closeFiles();
      }
    });
  }

  // ---- internals ----

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new Error(`DiskQueue: not open (${this.state})`);
  }

  private segPath(seq: number): string {
    return segmentPath(this.dir, seq);
  }

  private async recover(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    const metaPath = path.join(this.dir, META_FILE);
    const meta = await readMeta(metaPath);
    this.metaFh = await fsp.open(metaPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.dropped = meta?.dropped ?? 0;
    this.metaSeq = meta?.seq ?? 0;

    const loaded = await loadSegments(this.dir, meta);
    this.segments = loaded.segments;
    for (const seg of this.segments) {
      for (const size of seg.recs) this.bytes += size;
      this.depth += seg.recs.length;
    }
    let headSeg: number;
    let headOff = loaded.headOff;
    let changed = meta === undefined || loaded.headChanged;
    if (meta === undefined) this.dirty.dir = true; // the meta file may be new
    if (loaded.deleted) this.dirty.dir = true;
    if (loaded.truncated) this.dirty.seg = true;

    if (this.segments.length === 0) {
      const seq = loaded.lastSeq + 1;
      this.tailFh = await fsp.open(this.segPath(seq), 'w', 0o644);
      this.segments.push({ seq, size: 0, recs: [], first: 0 });
      this.dirty.dir = true;
      headSeg = seq;
      headOff = 0;
      changed = true;
    } else {
      this.tailFh = await fsp.open(this.segPath(this.segments.at(-1)!.seq), 'a', 0o644);
      headSeg = this.segments[0]!.seq;
    }
    this.headOff = headOff;
    if (changed || meta?.headSeg !== headSeg) await this.writeMeta();
    if (this.dirty.dir || this.dirty.meta || this.dirty.seg) await this.sync();
    log.debug('offline queue opened', { dir: this.dir, depth: this.depth, bytes: this.bytes, dropped: this.dropped, segments: this.segments.length });
  }

  /** Marks up to n head records consumed (in memory); returns how many. Fully consumed older segments are released. */
  private consume(n: number): number {
    let done = 0;
    while (done < n && this.depth > 0) {
      const seg = this.segments[0]!;
      if (seg.first >= seg.recs.length) {
        this.releaseHeadSegment();
        continue;
      }
      const size = seg.recs[seg.first++]!;
      this.headOff += size;
      this.bytes -= size;
      this.depth--;
      done++;
    }
    while (this.segments.length > 1 && this.segments[0]!.first >= this.segments[0]!.recs.length) this.releaseHeadSegment();
    return done;
  }

  private releaseHeadSegment(): void {
    const seg = this.segments.shift()!;
    this.toDelete.push(seg.seq);
    this.headOff = 0;
  }

  /** Persists the head (meta first, so a crash never points it at a deleted segment), then deletes consumed segments. */
  private async headMoved(): Promise<void> {
    await this.writeMeta();
    for (const seq of this.toDelete.splice(0)) {
      if (this.reader?.seq === seq) {
        await this.reader.fh.close();
        this.reader = undefined;
      }
      await fsp.unlink(this.segPath(seq)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') log.warn('offline queue: cannot delete a consumed segment', { seq, error: describeError(e) });
      });
      this.dirty.dir = true;
    }
  }

  private async writeMeta(): Promise<void> {
    this.metaSeq++;
    const slot = encodeMeta({ seq: this.metaSeq, headSeg: this.segments[0]!.seq, headOff: this.headOff, dropped: this.dropped });
    await writeAll(this.metaFh!, slot, metaSlotOffset(this.metaSeq));
    this.dirty.meta = true;
  }

  private async append(rec: Buffer): Promise<void> {
    let tail = this.segments.at(-1)!;
    try {
      if (tail.size > 0 && tail.size + rec.length > this.segmentBytes) tail = await this.roll();
      await writeAll(this.tailFh!, rec, null);
    } catch (e) {
      // Leave no partial record behind (e.g. ENOSPC): later records must follow a valid one.
      await this.tailFh!.truncate(tail.size).catch(() => undefined);
      throw new EdgeheadError('IO', `offline queue: cannot write to ${this.dir}: ${describeError(e)}`, { cause: e });
    }
    tail.size += rec.length;
    tail.recs.push(rec.length);
    this.depth++;
    this.bytes += rec.length;
    this.dirty.seg = true;
  }

  /** Starts a new tail segment; the old one is flushed first, so only the newest segment can ever be torn. */
  private async roll(): Promise<Segment> {
    const old = this.segments.at(-1)!;
    await this.tailFh!.datasync();
    this.dirty.seg = false;
    const seg: Segment = { seq: old.seq + 1, size: 0, recs: [], first: 0 };
    const fh = await fsp.open(this.segPath(seg.seq), 'w', 0o644);
    const oldFh = this.tailFh!;
    this.tailFh = fh;
    this.segments.push(seg);
    this.dirty.dir = true;
    await oldFh.close();
    return seg;
  }

  private async afterWrite(): Promise<void> {
    if (this.syncIntervalMs === 0) {
      await this.sync();
      return;
    }
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.serial(() => this.sync()).catch((e) => log.warn('offline queue: fdatasync failed', { error: describeError(e) }));
    }, this.syncIntervalMs);
    this.syncTimer.unref();
  }

  private async sync(): Promise<void> {
    if (this.dirty.seg && this.tailFh) {
      this.dirty.seg = false;
      await this.tailFh.datasync();
    }
    if (this.dirty.meta && this.metaFh) {
      this.dirty.meta = false;
      await this.metaFh.datasync();
    }
    if (this.dirty.dir) {
      this.dirty.dir = false;
      await fsyncDirAsync(this.dir);
    }
  }

  /** Reads `count` records of `seg` starting at byte `start`; stops early at a record that does not decode. */
  private async readRecords(seg: Segment, start: number, count: number): Promise<{ msgs: QueuedMessage[]; error?: string }> {
    if (this.reader?.seq !== seg.seq) {
      const old = this.reader;
      this.reader = undefined;
      await old?.fh.close();
      this.reader = { seq: seg.seq, fh: await fsp.open(this.segPath(seg.seq), 'r') };
    }
    // seg.first is non-zero only in the head segment, where start is headOff.
    return readRecordRun(this.reader.fh, start, seg.recs.slice(seg.first, seg.first + count));
  }

  private async closeFiles(): Promise<void> {
    const handles = [this.tailFh, this.metaFh, this.reader?.fh];
    this.tailFh = this.metaFh = undefined;
    this.reader = undefined;
    for (const fh of handles) await fh?.close();
  }
}

async function writeAll(fh: fsp.FileHandle, buf: Buffer, position: number | null): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position === null ? null : position + off);
    off += bytesWritten;
  }
}
