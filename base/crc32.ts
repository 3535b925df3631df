/** CRC-32 (ISO 3309 / zlib / PNG): zlib.crc32 where Node has it (>= 20.15), a table-driven fallback otherwise. */
import * as zlib from 'node:zlib';

type Crc32 = (data: Uint8Array, value?: number) => number;

let table: Uint32Array | undefined;
function jsCrc32(data: Uint8Array, value = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = ~value >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** crc32(data, previous) continues a running checksum, like zlib's. */
export const crc32: Crc32 = typeof (zlib as { crc32?: Crc32 }).crc32 === 'function' ? (zlib as unknown as { crc32: Crc32 }).crc32 : jsCrc32;
