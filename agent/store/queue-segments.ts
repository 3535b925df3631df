/**
 * The offline queue's segment files: naming (`0000000000000001.seg`, a 16-digit increasing number), loading them when
 * a DiskQueue opens (drop consumed files, index the records, skip torn or corrupt ones, truncate a torn tail) and
 * reading a run of records back. The in-memory index they build (Segment) is kept and updated by DiskQueue; the
 * design (rolling, deletion, fsync policy) is described in disk-queue.ts, the record format in queue-record.ts.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createLogger } from '../../base/log';
import type { QueuedMessage } from './queue';
import type { QueueMeta } from './queue-meta';
import { decodeRecord } from './queue-record';

const log = createLogger('queue');

const SEGMENT_RE = /^(\d{16})\.seg$/;

export interface Segment {
  seq: number;
  /** Bytes in the file (valid records, plus unreadable bytes left in a non-last segment). */
  size: number;
  /** Record sizes in file order; records before `first` are consumed. */
  recs: number[];
  first: number;
}

export function segmentPath(dir: string, seq: number): string {
  return path.join(dir, `${String(seq).padStart(16, '0')}.seg`);
}

export interface LoadedSegments {
  /** The segments from the head on, oldest first; empty when there is none. */
  segments: Segment[];
  /** Byte offset of the first unconsumed record in segments[0]. */
  headOff: number;
  /** The head is not where meta says (its segment is gone, or it was past the end of the file): write meta again. */
  headChanged: boolean;
  /** Consumed segment files were deleted: the directory needs a sync. */
  deleted: boolean;
  /** The last segment was truncated after a torn record: it needs a sync. */
  truncated: boolean;
  /** The highest segment number on disk or in meta: a new segment takes the next one. */
  lastSeq: number;
}

/**
 * Loads the segments of `dir` given the head recorded in meta (none: start at the oldest segment). Segments before
 * the head are deleted (consumed, but the process stopped between writing meta and deleting them). A torn or corrupt
 * record ends the readable part of its segment: a warning, the rest of that segment is skipped and, in the last
 * segment, the file is truncated there so new records follow valid ones.
 */
export async function loadSegments(dir: string, meta: QueueMeta | undefined): Promise<LoadedSegments> {
  const seqs = (await fsp.readdir(dir))
    .map((f) => SEGMENT_RE.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const headSeg = meta?.headSeg ?? 0;
  let headOff = meta?.headOff ?? 0;
  let headChanged = false;
  let deleted = false;
  let truncated = false;
  for (const seq of seqs.filter((s) => s < headSeg)) {
    await fsp.unlink(segmentPath(dir, seq));
    deleted = true;
  }
  const live = seqs.filter((s) => s >= headSeg);
  if (live[0] !== headSeg) {
    if (meta && live.length > 0) log.debug('offline queue: head segment is gone; starting at the next one', { headSeg, next: live[0] });
    headOff = 0;
    headChanged = true;
  }

  const segments: Segment[] = [];
  for (const [i, seq] of live.entries()) {
    const isHead = i === 0;
    const isTail = i === live.length - 1;
    const file = segmentPath(dir, seq);
    const buf = await fsp.readFile(file);
    let off = isHead ? Math.min(headOff, buf.length) : 0;
    if (isHead && off !== headOff) {
      headOff = off;
      headChanged = true;
    }
    const recs: number[] = [];
    while (off < buf.length) {
      const r = decodeRecord(buf, off);
      if (typeof r === 'string') {
        log.warn('offline queue: skipping a torn or corrupt record and the rest of its segment', {
          segment: path.basename(file),
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
      await fsp.truncate(file, off);
      size = off;
      truncated = true;
    }
    segments.push({ seq, size, recs, first: 0 });
  }
  return { segments, headOff, headChanged, deleted, truncated, lastSeq: Math.max(headSeg, seqs.at(-1) ?? 0) };
}

/**
 * Reads the records whose sizes are `sizes` from `fh`, the first at byte `start`; stops early at a record that does
 * not decode (or no longer has the size it had when it was indexed) and says why.
 */
export async function readRecordRun(
  fh: fsp.FileHandle,
  start: number,
  sizes: readonly number[],
): Promise<{ msgs: QueuedMessage[]; error?: string }> {
  let len = 0;
  for (const s of sizes) len += s;
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  const data = buf.subarray(0, got);
  const msgs: QueuedMessage[] = [];
  let off = 0;
  for (const size of sizes) {
    const r = decodeRecord(data, off);
    if (typeof r === 'string') return { msgs, error: r };
    if (r.size !== size) return { msgs, error: 'record size changed' };
    msgs.push(r.msg);
    off += r.size;
  }
  return { msgs };
}
