/**
 * The offline queue's record: how one queued MQTT message is laid out in a DiskQueue segment file, and the size that
 * counts against the byte cap in both queue implementations (DiskQueue and MemoryQueue apply the cap to the same sizes).
 *
 * Record (little-endian):  u32 bodyLen | u32 crc32(the 4 bodyLen bytes, then body) | body
 *   body:                  u8 flags (bits 0-1 qos, bit 2 retain, bits 3-7 zero) | u16 topicLen | topic UTF-8 | payload UTF-8
 * decodeRecord() rejects a torn or corrupt record (short header or body, bad length, flags, topic length or checksum)
 * and says why; what the queue does with such a record (resynchronisation) is described in queue-segments.ts.
 */
import { EdgeheadError } from '../../base/errors';
import { crc32 } from '../../base/crc32';
import type { QueuedMessage } from './queue';

/** Bytes of a record header (length + checksum). */
export const RECORD_HEADER_BYTES = 8;
const BODY_FIXED_BYTES = 3;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

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

/** Decodes the record at `off`; a string says why it is not a valid record ("truncated ..." when it runs past the end). */
export function decodeRecord(buf: Buffer, off: number): { msg: QueuedMessage; size: number } | string {
  const avail = buf.length - off;
  if (avail < RECORD_HEADER_BYTES) return `truncated header (${avail} bytes)`;
  const bodyLen = buf.readUInt32LE(off);
  if (bodyLen < BODY_FIXED_BYTES || bodyLen > MAX_BODY_BYTES) return `bad length ${bodyLen}`;
  if (bodyLen > avail - RECORD_HEADER_BYTES) return `truncated record (${avail - RECORD_HEADER_BYTES} of ${bodyLen} bytes)`;
  const body = buf.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + bodyLen);
  // The cheap checks first: recovery tries decodeRecord at every byte of a damaged span (queue-segments.ts).
  const flags = body[0]!;
  if ((flags & ~7) !== 0 || (flags & 3) === 3) return `bad flags ${flags}`;
  const topicLen = body.readUInt16LE(1);
  if (BODY_FIXED_BYTES + topicLen > bodyLen) return `bad topic length ${topicLen}`;
  if (crc32(body, crc32(buf.subarray(off, off + 4))) !== buf.readUInt32LE(off + 4)) return 'checksum mismatch';
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

/** A single message whose record is larger than the whole cap: refused by push() in both implementations. */
export function oversizeError(size: number, maxBytes: number): EdgeheadError {
  return new EdgeheadError('IO', `offline queue: a message of ${size} bytes does not fit in the ${maxBytes}-byte buffer`, {
    hint: 'raise offline.maxMB',
  });
}
