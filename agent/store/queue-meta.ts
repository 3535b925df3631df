/**
 * The offline queue's meta file: where the head of a DiskQueue is (segment number + byte offset) and how many
 * messages were dropped, written so that a torn write can never lose the previous state.
 *
 * Format: two 44-byte slots at offsets 0 and 4096 (different flash pages), written alternately in place (no rename,
 * no new inode; the slot is chosen by seq, see metaSlotOffset):
 *   "EHQM" | u32 version 1 | u64 seq | u64 headSegment | u64 headOffset | u64 dropped | u32 crc32 of the previous 40 bytes
 * (integers little-endian). readMeta() uses the valid slot with the highest seq, so a torn meta write falls back to
 * the state before it. When and how often the queue writes meta is described in disk-queue.ts.
 */
import * as fsp from 'node:fs/promises';
import { createLogger } from '../../base/log';
import { crc32 } from '../../base/crc32';

const log = createLogger('queue');

/** Name of the meta file in the queue's folder. */
export const META_FILE = 'meta';
const META_MAGIC = 'EHQM';
const META_VERSION = 1;
const META_SLOT_BYTES = 44;
const META_SLOT_STRIDE = 4096;
/** Size of a meta file with both slots: DiskQueue writes it whole when it creates the file, so that later slot
 * writes land on allocated blocks (they then succeed on a full disk). */
export const META_FILE_BYTES = META_SLOT_STRIDE + META_SLOT_BYTES;

export interface QueueMeta {
  /** Increases with every write; the slot with the highest valid seq is the current one. */
  seq: number;
  headSeg: number;
  headOff: number;
  dropped: number;
}

/** One slot's bytes for `m`. */
export function encodeMeta(m: QueueMeta): Buffer {
  const b = Buffer.alloc(META_SLOT_BYTES);
  b.write(META_MAGIC, 0, 'latin1');
  b.writeUInt32LE(META_VERSION, 4);
  b.writeBigUInt64LE(BigInt(m.seq), 8);
  b.writeBigUInt64LE(BigInt(m.headSeg), 16);
  b.writeBigUInt64LE(BigInt(m.headOff), 24);
  b.writeBigUInt64LE(BigInt(m.dropped), 32);
  b.writeUInt32LE(crc32(b.subarray(0, 40)), 40);
  return b;
}

/** File offset of the slot that the write with this seq goes to: the two slots alternate. */
export function metaSlotOffset(seq: number): number {
  return (seq % 2) * META_SLOT_STRIDE;
}

/** The slot at `at` in the file's bytes, or undefined when it is missing, torn, corrupt or of another version. */
function decodeSlot(buf: Buffer, at: number): QueueMeta | undefined {
  const slot = buf.subarray(at, at + META_SLOT_BYTES);
  if (slot.length < META_SLOT_BYTES || slot.toString('latin1', 0, 4) !== META_MAGIC) return undefined;
  if (crc32(slot.subarray(0, 40)) !== slot.readUInt32LE(40) || slot.readUInt32LE(4) !== META_VERSION) return undefined;
  return {
    seq: Number(slot.readBigUInt64LE(8)),
    headSeg: Number(slot.readBigUInt64LE(16)),
    headOff: Number(slot.readBigUInt64LE(24)),
    dropped: Number(slot.readBigUInt64LE(32)),
  };
}

/** The valid slot with the highest seq in the meta file's bytes, if any. */
export function chooseMeta(buf: Buffer): QueueMeta | undefined {
  let best: QueueMeta | undefined;
  for (const at of [0, META_SLOT_STRIDE]) {
    const m = decodeSlot(buf, at);
    if (m && (!best || m.seq > best.seq)) best = m;
  }
  return best;
}

/** Reads the meta file: undefined when it does not exist, or (with a warning) when neither slot is valid. */
export async function readMeta(file: string): Promise<QueueMeta | undefined> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const best = chooseMeta(buf);
  if (!best && buf.length > 0) {
    log.warn('offline queue: meta file unreadable; starting from the oldest segment (some messages may be sent again)', { file });
  }
  return best;
}
