/**
 * The offline queue's segment files: naming (`0000000000000001.seg`, a 16-digit increasing number), loading them when
 * a DiskQueue opens (drop consumed files, index the records, skip damaged ones, cut off a torn tail) and reading
 * records back. The in-memory index they build (Segment) is kept and updated by DiskQueue; the design (rolling,
 * deletion, fsync policy) is described in disk-queue.ts, the record format in queue-record.ts.
 *
 * Damage (a flipped bit, a zeroed block, two processes writing one file) costs only the damaged records: every record
 * carries its length and a CRC, so after a record that does not decode, recovery resynchronises on the next offset
 * where a record checks out (length in range, flags and topic length sane, CRC correct; see resync() for how a chain
 * of valid records is preferred over a lone match) and carries on from there. The damaged span stays in its file
 * (the file is not rewritten) and is skipped; each span counts as one skipped record. Only at the end of the last
 * segment is the file cut, so that new records follow valid ones: a torn final record (a power cut mid-write) is
 * simply cut off, any other damaged tail is first copied to `<dir>/damaged/<segment>-<offset>.bin` (the newest
 * DAMAGED_KEEP copies are kept). Valid records are never removed from disk by recovery.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { QueuedMessage } from './queue';
import type { QueueMeta } from './queue-meta';
import { decodeRecord, RECORD_HEADER_BYTES } from './queue-record';

const log = createLogger('queue');

const SEGMENT_RE = /^(\d{16})\.seg$/;
/** Folder (in the queue's folder) where damaged tails are copied before the last segment is cut. */
export const DAMAGED_DIR = 'damaged';
const DAMAGED_KEEP = 8;
/** Mode of every file and folder the queue creates (the state dir is private: agent/state/state-dir.ts). */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

export interface Segment {
  seq: number;
  /** Bytes in the file (valid records, plus damaged spans left in a segment that is not the last). */
  size: number;
  /** Byte offset and size of each valid record, in file order; records before `first` are consumed. */
  offs: number[];
  sizes: number[];
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
  /** The last segment was cut after its last valid record: it needs a sync. */
  truncated: boolean;
  /** The highest segment number on disk or in meta: a new segment takes the next one. */
  lastSeq: number;
  /** Damaged spans skipped (each counts as one record), their bytes, and where the last one ends. */
  damage: { spans: number; bytes: number; until?: { seq: number; off: number } };
}

/** A span of bytes that holds no valid record: from `off` (where `reason` was found) to `end`. */
export interface DamagedSpan {
  off: number;
  end: number;
  reason: string;
}

/**
 * Loads the segments of `dir` given the head recorded in meta (none: start at the oldest segment). Segments before
 * the head are deleted (consumed, but the process stopped between writing meta and deleting them). Every valid
 * record from the head on is indexed (and passed to onRecord); damaged spans are skipped as described above.
 */
export async function loadSegments(dir: string, meta: QueueMeta | undefined, onRecord?: (msg: QueuedMessage) => void): Promise<LoadedSegments> {
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
  const damage: LoadedSegments['damage'] = { spans: 0, bytes: 0 };
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
    const start = isHead ? Math.min(headOff, buf.length) : 0;
    if (isHead && start !== headOff) {
      headOff = start;
      headChanged = true;
    }
    const { offs, sizes, spans } = scanRecords(buf, start, onRecord);
    let size = buf.length;
    let cut: Record<string, unknown> = {};
    const last = spans.at(-1);
    if (isTail && last && last.end === buf.length) {
      // The end of the last segment: cut it so that new records follow a valid one.
      const torn = last.reason.startsWith('truncated');
      if (!torn) cut = await keepDamaged(dir, seq, last.off, buf.subarray(last.off));
      await fsp.truncate(file, last.off);
      size = last.off;
      truncated = true;
      cut = { cutAt: size, ...cut };
    }
    if (spans.length > 0) {
      const bytes = spans.reduce((s, sp) => s + sp.end - sp.off, 0);
      damage.spans += spans.length;
      damage.bytes += bytes;
      damage.until = { seq, off: Math.min(spans.at(-1)!.end, size) };
      log.warn('offline queue: skipped damaged records (torn or corrupt); the valid records around them are kept', {
        segment: path.basename(file),
        skipped: spans.length,
        skippedBytes: bytes,
        kept: offs.length,
        offsets: spans.map((s) => s.off).slice(0, 10).join(','),
        reason: spans[0]!.reason,
        ...cut,
      });
    }
    if (isHead && offs.length > 0 && offs[0] !== headOff) {
      headOff = offs[0]!; // the head record is past a damaged span: meta should say so
      headChanged = true;
    }
    segments.push({ seq, size, offs, sizes, first: 0 });
  }
  return { segments, headOff, headChanged, deleted, truncated, lastSeq: Math.max(headSeg, seqs.at(-1) ?? 0), damage };
}

/** Indexes the valid records of `buf` from `start`, resynchronising after each damaged span. */
export function scanRecords(
  buf: Buffer,
  start: number,
  onRecord?: (msg: QueuedMessage) => void,
): { offs: number[]; sizes: number[]; spans: DamagedSpan[] } {
  const offs: number[] = [];
  const sizes: number[] = [];
  const spans: DamagedSpan[] = [];
  let off = start;
  while (off < buf.length) {
    const r = decodeRecord(buf, off);
    if (typeof r !== 'string') {
      offs.push(off);
      sizes.push(r.size);
      onRecord?.(r.msg);
      off += r.size;
      continue;
    }
    const next = resync(buf, off + 1);
    spans.push({ off, end: next ?? buf.length, reason: r });
    if (next === undefined) break;
    off = next;
  }
  return { offs, sizes, spans };
}

/**
 * The offset (>= from) where reading resumes after a damaged record: the first offset where a valid record starts
 * that is followed by another valid record or by the end of the data (a chain). A lone valid record (followed by more
 * damage) is accepted only if no chain starts inside it: a match inside a damaged record's bytes that overlaps the
 * real records after it is a false positive. A false match needs a plausible length, flags and topic length and a
 * matching CRC-32 at once (and JSON payloads cannot contain the control bytes a header needs). undefined: no record.
 */
export function resync(buf: Buffer, from: number): number | undefined {
  const size = (p: number): number => {
    const r = decodeRecord(buf, p);
    return typeof r === 'string' ? 0 : r.size;
  };
  const chained = (p: number, n: number): boolean => p + n === buf.length || size(p + n) > 0;
  for (let p = from; p + RECORD_HEADER_BYTES <= buf.length; p++) {
    const n = size(p);
    if (n === 0) continue;
    if (chained(p, n)) return p;
    for (let q = p + 1; q < p + n && q + RECORD_HEADER_BYTES <= buf.length; q++) {
      const m = size(q);
      if (m > 0 && chained(q, m)) return q;
    }
    return p;
  }
  return undefined;
}

/** Copies a damaged tail aside before the segment is cut; says where, or why it could not (e.g. a full disk). */
async function keepDamaged(dir: string, seq: number, off: number, bytes: Buffer): Promise<Record<string, string>> {
  const folder = path.join(dir, DAMAGED_DIR);
  const file = path.join(folder, `${String(seq).padStart(16, '0')}-${off}.bin`);
  try {
    await fsp.mkdir(folder, { recursive: true, mode: DIR_MODE });
    await fsp.writeFile(file, bytes, { mode: FILE_MODE });
    const kept = (await fsp.readdir(folder)).filter((f) => f.endsWith('.bin')).sort();
    for (const old of kept.slice(0, Math.max(0, kept.length - DAMAGED_KEEP))) await fsp.rm(path.join(folder, old), { force: true });
    return { copiedTo: file };
  } catch (e) {
    await fsp.rm(file, { force: true }).catch(() => undefined);
    return { notCopied: describeError(e) }; // cut anyway: the tail holds no valid record
  }
}

/**
 * Reads the records at `offs` (sizes `sizes`, ascending offsets) from `fh`; stops early at a record that does not
 * decode (or no longer has the size it had when it was indexed) and says why.
 */
export async function readRecordRun(
  fh: fsp.FileHandle,
  offs: readonly number[],
  sizes: readonly number[],
): Promise<{ msgs: QueuedMessage[]; error?: string }> {
  if (offs.length === 0) return { msgs: [] };
  const start = offs[0]!;
  const len = offs.at(-1)! + sizes.at(-1)! - start;
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  const data = buf.subarray(0, got);
  const msgs: QueuedMessage[] = [];
  for (const [i, off] of offs.entries()) {
    const r = decodeRecord(data, off - start);
    if (typeof r === 'string') return { msgs, error: r };
    if (r.size !== sizes[i]) return { msgs, error: 'record size changed' };
    msgs.push(r.msg);
  }
  return { msgs };
}
