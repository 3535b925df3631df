/**
 * The open files of a DiskQueue: the tail segment being appended to, the meta file, one reader, and what needs an
 * fdatasync. No policy here (what to write, when to flush, what to do on a full disk: disk-queue.ts); every file is
 * created 0600 (FILE_MODE), whatever the umask.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncDirAsync } from '../../base/durable-file';
import type { QueuedMessage } from './queue';
import { META_FILE, META_FILE_BYTES, metaSlotOffset } from './queue-meta';
import { FILE_MODE, readRecordRun, type Segment, segmentPath } from './queue-segments';

export class QueueFiles {
  private tailFh?: fsp.FileHandle;
  private metaFh?: fsp.FileHandle;
  private reader?: { seq: number; fh: fsp.FileHandle };
  /** What the next sync() flushes. */
  readonly dirty = { seg: false, meta: false, dir: false };

  constructor(readonly dir: string) {}

  /** Opens (or creates) the meta file. */
  async openMeta(): Promise<void> {
    this.metaFh = await fsp.open(path.join(this.dir, META_FILE), fs.constants.O_RDWR | fs.constants.O_CREAT, FILE_MODE);
  }

  /** Writes the meta file whole (zeros where no slot is yet) so that slot writes never need new blocks. */
  async fillMeta(): Promise<void> {
    const size = (await this.metaFh!.stat()).size;
    if (size < META_FILE_BYTES) await writeAll(this.metaFh!, Buffer.alloc(META_FILE_BYTES - size), size);
  }

  async writeMetaSlot(slot: Buffer, seq: number): Promise<void> {
    this.dirty.meta = true;
    await writeAll(this.metaFh!, slot, metaSlotOffset(seq));
  }

  /** Opens segment `seq` as the tail: created empty, or appended to. */
  async openTail(seq: number, create: boolean): Promise<void> {
    const fh = await fsp.open(segmentPath(this.dir, seq), create ? 'w' : 'a', FILE_MODE);
    const old = this.tailFh;
    this.tailFh = fh;
    if (create) this.dirty.dir = true;
    await old?.close();
  }

  /** Appends rec to the tail (whose current size is tail.size); on failure, cuts off whatever part was written. */
  async append(tail: Segment, rec: Buffer): Promise<void> {
    try {
      await writeAll(this.tailFh!, rec, null);
    } catch (e) {
      // Leave no partial record behind (e.g. ENOSPC): later records must follow a valid one.
      await this.tailFh!.truncate(tail.size).catch(() => undefined);
      throw e;
    }
    this.dirty.seg = true;
  }

  /** fdatasync of the tail now (before a roll: only the newest segment can then be torn). */
  async flushTail(): Promise<void> {
    await this.tailFh!.datasync();
    this.dirty.seg = false;
  }

  async sync(): Promise<void> {
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

  /** Reads `count` unconsumed records of `seg`, from seg.first on; stops early at a record that does not decode. */
  async read(seg: Segment, count: number): Promise<{ msgs: QueuedMessage[]; error?: string }> {
    if (this.reader?.seq !== seg.seq) {
      const old = this.reader;
      this.reader = undefined;
      await old?.fh.close();
      this.reader = { seq: seg.seq, fh: await fsp.open(segmentPath(this.dir, seg.seq), 'r') };
    }
    return readRecordRun(this.reader.fh, seg.offs.slice(seg.first, seg.first + count), seg.sizes.slice(seg.first, seg.first + count));
  }

  /** Bytes available to this process on the queue's file system; undefined when it cannot be told. */
  async freeBytes(): Promise<number | undefined> {
    const st = await fsp.statfs(this.dir).catch(() => undefined);
    return st && st.bavail * st.bsize;
  }

  /** Deletes a consumed segment (ENOENT is fine). */
  async unlinkSegment(seq: number): Promise<void> {
    if (this.reader?.seq === seq) {
      await this.reader.fh.close();
      this.reader = undefined;
    }
    this.dirty.dir = true;
    await fsp.unlink(segmentPath(this.dir, seq)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  async close(): Promise<void> {
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
