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
 * Record (little-endian):  u32 bodyLen | u32 crc32(the 4 bodyLen bytes, then body) | body
 *   body:                  u8 flags (bits 0-1 qos, bit 2 retain, bits 3-7 zero) | u16 topicLen | topic UTF-8 | payload UTF-8
 * A torn or corrupt record (bad length, checksum, flags) ends the readable part of its segment: open() warns, skips
 * the rest of that segment and, for the last segment, truncates the file there so new records follow valid ones.
 * Only the last segment can be torn by a power cut: a segment is fdatasync'ed before the next one is started.
 *
 * meta: two 44-byte slots at offsets 0 and 4096 (different flash pages), written alternately in place (no rename,
 * no new inode): "EHQM" | u32 version 1 | u64 seq | u64 headSegment | u64 headOffset | u64 dropped | u32 crc32 of
 * the previous 40 bytes. open() uses the valid slot with the highest seq, so a torn meta write falls back to the state
 * before it. Meta is written on every shift and every cap drop (one small pwrite), so shifted records do not come
 * back after a process crash. Delivery is at-least-once: a crash between the broker's acknowledgement and shift()
 * (or a power cut before meta reaches the card) re-delivers those messages; the publisher tolerates duplicates.
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
import { crc32 } from '../../base/crc32';
import { fsyncDirAsync } from '../../base/durable-file';

const log = createLogger('queue');

/** Bytes of a record header (length + checksum). */
export const RECORD_HEADER_BYTES = 8;
const BODY_FIXED_BYTES = 3;
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const MAX_SEGMENT_BYTES = 1024 * 1024;
const MIN_AUTO_SEGMENT_BYTES = 64 * 1024;
const SYNC_INTERVAL_MS = 5000;
const META_FILE = 'meta';
const META_MAGIC = 'EHQM';
const META_VERSION = 1;
const META_SLOT_BYTES = 44;
const META_SLOT_STRIDE = 4096;
const SEGMENT_RE = /^(\d{16})\.seg$/;

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

// ---- record codec (shared with MemoryQueue so both apply the cap to the same sizes) ----


/** Size of a message's record on disk: what counts against the cap in both queue implementations. */
export function recordBytes(msg: QueuedMessage): number {
  return RECORD_HEADER_BYTES + BODY_FIXED_BYTES + Buffer.byteLength(msg.topic, 'utf8') + Buffer.byteLength(msg.payload, 'utf8');
}

export function encodeRecord(msg: QueuedMessage): Buffer {
  const topicLen = Buffer.byteLength(msg.topic, 'utf8');
  if (topicLen > 0xffff) throw new EdgeheadError('MQTT', `offline queue: topic of ${topicLen} bytes is longer than MQTT allows (65535)`);
  if (msg.qos !== 0 && msg.qos !== 1 && msg.qos !== 2) throw new EdgeheadError('MQTT', `offline queue: bad qos ${String(msg.qos)}`);
  const bodyLen = BODY_FIXED_BYTES + topicLen + Buffer.byteLength(msg.payload, 'utf8');
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLen);
  buf.writeUInt32LE(bodyLen, 0);
  buf[8] = msg.qos | (msg.retain ? 4 : 0);
  buf.writeUInt16LE(topicLen, 9);
  buf.write(msg.topic, 11, 'utf8');
  buf.write(msg.payload, 11 + topicLen, 'utf8');
  buf.writeUInt32LE(crc32(buf.subarray(8), crc32(buf.subarray(0, 4))), 4);
  return buf;
}

/** Decodes the record at `off`; a string says why it is not a valid record. */
export function decodeRecord(buf: Buffer, off: number): { msg: QueuedMessage; size: number } | string {
  const avail = buf.length - off;
  if (avail < RECORD_HEADER_BYTES) return `truncated header (${avail} bytes)`;
  const bodyLen = buf.readUInt32LE(off);
  if (bodyLen < BODY_FIXED_BYTES || bodyLen > MAX_BODY_BYTES) return `bad length ${bodyLen}`;
  if (bodyLen > avail - RECORD_HEADER_BYTES) return `truncated record (${avail - RECORD_HEADER_BYTES} of ${bodyLen} bytes)`;
  const body = buf.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + bodyLen);
  if (crc32(body, crc32(buf.subarray(off, off + 4))) !== buf.readUInt32LE(off + 4)) return 'checksum mismatch';
  const flags = body[0]!;
  if ((flags & ~7) !== 0 || (flags & 3) === 3) return `bad flags ${flags}`;
  const topicLen = body.readUInt16LE(1);
  if (BODY_FIXED_BYTES + topicLen > bodyLen) return `bad topic length ${topicLen}`;
  return {
    msg: {
      topic: body.toString('utf8', BODY_FIXED_BYTES, BODY_FIXED_BYTES + topicLen),
      payload: body.toString('utf8', BODY_FIXED_BYTES + topicLen),
      qos: (flags & 3) as 0 | 1 | 2,
      retain: (flags & 4) !== 0,
    },
    size: RECORD_HEADER_BYTES + bodyLen,
  };
}

/** peek/shift counts: non-negative integers. */
export function checkCount(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${what}: count must be a non-negative integer (got ${n})`);
}

export function oversizeError(size: number, maxBytes: number): EdgeheadError {
  return new EdgeheadError('IO', `offline queue: a message of ${size} bytes does not fit in the ${maxBytes}-byte buffer`, {
    hint: 'raise offline.maxMB',
  });
}

// ---- the queue ----

interface Segment {
  seq: number;
  /** Bytes in the file (valid records, plus unreadable bytes left in a non-last segment). */
  size: number;
  /** Record sizes in file order; records before `first` are consumed. */
  recs: number[];
  first: number;
}

interface Meta {
  seq: number;
  headSeg: number;
  headOff: number;
  dropped: number;
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
    return { depth: this.depth, bytes: this.bytes, dropped: this.dropped };
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
    return path.join(this.dir, `${String(seq).padStart(16, '0')}.seg`);
  }

  private async recover(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    const metaPath = path.join(this.dir, META_FILE);
    const meta = await readMeta(metaPath);
    this.metaFh = await fsp.open(metaPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.dropped = meta?.dropped ?? 0;
    this.metaSeq = meta?.seq ?? 0;

    const seqs = (await fsp.readdir(this.dir))
      .map((f) => SEGMENT_RE.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    let headSeg = meta?.headSeg ?? 0;
    let headOff = meta?.headOff ?? 0;
    let changed = meta === undefined;
    if (meta === undefined) this.dirty.dir = true; // the meta file may be new
    for (const seq of seqs.filter((s) => s < headSeg)) {
      // Consumed, but the process stopped between writing meta and deleting the file.
      await fsp.unlink(this.segPath(seq));
      this.dirty.dir = true;
    }
    const live = seqs.filter((s) => s >= headSeg);
    if (live[0] !== headSeg) {
      if (meta && live.length > 0) log.debug('offline queue: head segment is gone; starting at the next one', { headSeg, next: live[0] });
      headOff = 0;
      changed = true;
    }

    for (const [i, seq] of live.entries()) {
      const isHead = i === 0;
      const isTail = i === live.length - 1;
      const buf = await fsp.readFile(this.segPath(seq));
      let off = isHead ? Math.min(headOff, buf.length) : 0;
      if (isHead && off !== headOff) {
        headOff = off;
        changed = true;
      }
      const recs: number[] = [];
      while (off < buf.length) {
        const r = decodeRecord(buf, off);
        if (typeof r === 'string') {
          log.warn('offline queue: skipping a torn or corrupt record and the rest of its segment', {
            segment: path.basename(this.segPath(seq)),
            offset: off,
            skippedBytes: buf.length - off,
            reason: r,
          });
          break;
        }
        recs.push(r.size);
        off += r.size;
      }
      let size = buf.length;
      if (isTail && off < buf.length) {
        await fsp.truncate(this.segPath(seq), off);
        size = off;
        this.dirty.seg = true;
      }
      this.segments.push({ seq, size, recs, first: 0 });
      for (const s of recs) this.bytes += s;
      this.depth += recs.length;
    }

    if (this.segments.length === 0) {
      const seq = Math.max(headSeg, seqs.at(-1) ?? 0) + 1;
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
    const b = Buffer.alloc(META_SLOT_BYTES);
    b.write(META_MAGIC, 0, 'latin1');
    b.writeUInt32LE(META_VERSION, 4);
    b.writeBigUInt64LE(BigInt(this.metaSeq), 8);
    b.writeBigUInt64LE(BigInt(this.segments[0]!.seq), 16);
    b.writeBigUInt64LE(BigInt(this.headOff), 24);
    b.writeBigUInt64LE(BigInt(this.dropped), 32);
    b.writeUInt32LE(crc32(b.subarray(0, 40)), 40);
    await writeAll(this.metaFh!, b, (this.metaSeq % 2) * META_SLOT_STRIDE);
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
    const first = seg.first; // non-zero only in the head segment, where start is headOff
    let len = 0;
    for (let i = 0; i < count; i++) len += seg.recs[first + i]!;
    if (this.reader?.seq !== seg.seq) {
      const old = this.reader;
      this.reader = undefined;
      await old?.fh.close();
      this.reader = { seq: seg.seq, fh: await fsp.open(this.segPath(seg.seq), 'r') };
    }
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.reader.fh.read(buf, got, len - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const data = buf.subarray(0, got);
    const msgs: QueuedMessage[] = [];
    let off = 0;
    for (let i = 0; i < count; i++) {
      const r = decodeRecord(data, off);
      if (typeof r === 'string') return { msgs, error: r };
      if (r.size !== seg.recs[first + i]) return { msgs, error: 'record size changed' };
      msgs.push(r.msg);
      off += r.size;
    }
    return { msgs };
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

async function readMeta(file: string): Promise<Meta | undefined> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let best: Meta | undefined;
  for (const at of [0, META_SLOT_STRIDE]) {
    const slot = buf.subarray(at, at + META_SLOT_BYTES);
    if (slot.length < META_SLOT_BYTES || slot.toString('latin1', 0, 4) !== META_MAGIC) continue;
    if (crc32(slot.subarray(0, 40)) !== slot.readUInt32LE(40) || slot.readUInt32LE(4) !== META_VERSION) continue;
    const m: Meta = {
      seq: Number(slot.readBigUInt64LE(8)),
      headSeg: Number(slot.readBigUInt64LE(16)),
      headOff: Number(slot.readBigUInt64LE(24)),
      dropped: Number(slot.readBigUInt64LE(32)),
    };
    if (!best || m.seq > best.seq) best = m;
  }
  if (!best && buf.length > 0) {
    log.warn('offline queue: meta file unreadable; starting from the oldest segment (some messages may be sent again)', { file });
  }
  return best;
}
