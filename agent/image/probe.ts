/**
 * Image headers without pixels: format, size, colour channels and EXIF orientation, read from JPEG marker segments
 * (up to the first scan) or the PNG IHDR chunk (plus an eXIf chunk before the image data). Cost is independent of
 * the pixel count, so a caller can refuse an oversized image before anything big is allocated.
 */
import { EdgeheadError } from '../../base/errors';
import { orientationFromApp1, orientationFromTiff } from './exif';
import { crc32 } from '../../base/crc32';

export type ImageFormat = 'jpeg' | 'png';

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
  /** Colour channels stored in the file: JPEG components (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK); PNG 1 grey,
   * 2 grey+alpha, 3 RGB or palette, 4 RGBA. Decoding always yields 8-bit RGBA whatever this is. */
  channels: number;
  /** EXIF orientation 1..8; 1 when absent or unreadable. */
  orientation: number;
}

/** The JPEG facts the decoder needs beyond ImageInfo. */
export interface JpegDetails {
  /** Frame marker: 0xc0 baseline, 0xc1 extended, 0xc2 progressive; others (lossless, arithmetic) are not decodable. */
  sof: number;
  /** Bits per sample (8 for nearly every JPEG). */
  precision: number;
  componentIds: number[];
  /** Adobe APP14 colour transform (0: none, i.e. RGB or CMYK; 1: YCbCr; 2: YCCK); undefined without that segment. */
  adobeTransform: number | undefined;
  jfif: boolean;
  /** Byte offset of the first SOS marker; -1 when the data ends before it. */
  scanOffset: number;
}

/** The PNG facts the decoder needs beyond ImageInfo. */
export interface PngDetails {
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

export type ImageHeader =
  | (ImageInfo & { format: 'jpeg'; jpeg: JpegDetails })
  | (ImageInfo & { format: 'png'; png: PngDetails });

/** Reads only headers (JPEG SOFn markers / PNG IHDR) — never decodes pixels. Throws BAD_IMAGE for empty, unknown,
 * truncated-header data. */
export function probeImage(bytes: Uint8Array): ImageInfo {
  const { format, width, height, channels, orientation } = readImageHeader(bytes);
  return { format, width, height, channels, orientation };
}

/** 'jpeg' (starts with SOI FF D8), 'png' (the 8-byte PNG signature) or undefined. Looks at the first bytes only:
 * a cheap check for sources, which refuse anything else before it reaches the decoder. */
export function imageKind(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, JPEG_SOI)) return 'jpeg';
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  return undefined;
}

/** probeImage plus the format details that decoding needs. */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length === 0) throw bad('empty file (0 bytes)');
  // A signature cut short still picks the format, so that the error says "truncated JPEG/PNG".
  if (startsWith(bytes, JPEG_SOI) || startsWith(JPEG_SOI, bytes)) return readJpegHeader(bytes);
  if (startsWith(bytes, PNG_SIGNATURE) || startsWith(PNG_SIGNATURE, bytes)) return readPngHeader(bytes);
  throw bad(`not a JPEG or PNG image (${describeStart(bytes)})`, 'only JPEG and PNG files are supported');
}

// ---------------------------------------------------------------------------------------------------------------
// JPEG: SOI, then marker segments (FF xx, 2-byte big-endian length including itself, payload) up to the first SOS.

const JPEG_SOI = [0xff, 0xd8];
const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
const JFIF_ID = [0x4a, 0x46, 0x49, 0x46, 0x00]; // "JFIF\0"
const ADOBE_ID = [0x41, 0x64, 0x6f, 0x62, 0x65]; // "Adobe"

function readJpegHeader(b: Uint8Array): ImageHeader {
  if (b.length < 4) throw bad(`truncated JPEG: only ${b.length} byte${b.length === 1 ? '' : 's'}`);
  let frame: { sof: number; precision: number; width: number; height: number; componentIds: number[] } | undefined;
  let orientation: number | undefined;
  let adobeTransform: number | undefined;
  let jfif = false;
  let scanOffset = -1;
  let stop: 'scan' | 'eoi' | 'end' = 'end';

  let pos = 2;
  for (;;) {
    // Garbage between segments is skipped up to the next marker, as libjpeg does ("extraneous bytes before marker").
    if (pos < b.length && b[pos] !== 0xff) pos = b.indexOf(0xff, pos);
    if (pos < 0) break;
    while (pos < b.length && b[pos] === 0xff) pos++; // fill bytes
    if (pos >= b.length) break;
    const marker = b[pos++]!;
    if (marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue; // no length field
    if (marker === 0xd9) {
      stop = 'eoi';
      break;
    }
    if (marker === 0xda) {
      stop = 'scan';
      scanOffset = pos - 2;
      break;
    }
    if (pos + 2 > b.length) break;
    const length = u16be(b, pos);
    if (length < 2) throw bad(`corrupt JPEG: marker segment ${hex(marker)} at byte ${pos - 2} has length ${length}`);
    const end = pos + length;
    if (end > b.length) break;
    const payload = b.subarray(pos + 2, end);
    pos = end;

    if (SOF_MARKERS.has(marker)) {
      if (frame) continue; // hierarchical JPEGs have several frames; the first one describes the image
      if (payload.length < 6) throw bad('corrupt JPEG: frame header (SOF) too short');
      const count = payload[5]!;
      if (payload.length < 6 + 3 * count) throw bad('corrupt JPEG: frame header (SOF) too short');
      const componentIds = Array.from({ length: count }, (_, i) => payload[6 + 3 * i]!);
      frame = { sof: marker, precision: payload[0]!, height: u16be(payload, 1), width: u16be(payload, 3), componentIds };
    } else if (marker === 0xe1) {
      orientation ??= orientationFromApp1(payload);
    } else if (marker === 0xe0) {
      jfif ||= startsWith(payload, JFIF_ID);
    } else if (marker === 0xee && payload.length >= 12 && startsWith(payload, ADOBE_ID)) {
      adobeTransform = payload[11];
    }
  }

  if (!frame) {
    if (stop === 'scan') throw bad('corrupt JPEG: image data (SOS) comes before any frame header (SOF)');
    if (stop === 'eoi') throw bad('corrupt JPEG: end-of-image marker before any frame header (SOF)');
    throw bad(`truncated JPEG: data ends at byte ${b.length}, before the frame header (SOF)`);
  }
  const { width, height, componentIds } = frame;
  if (width === 0 || height === 0) {
    // height 0 means "defined later by a DNL marker", which jpeg-js cannot do either
    throw bad(`unsupported JPEG: frame header declares a ${width}x${height} image`);
  }
  if (componentIds.length < 1 || componentIds.length > 4) {
    throw bad(`unsupported JPEG: ${componentIds.length} colour components`);
  }
  return {
    format: 'jpeg',
    width,
    height,
    channels: componentIds.length,
    orientation: orientation ?? 1,
    jpeg: { sof: frame.sof, precision: frame.precision, componentIds, adobeTransform, jfif, scanOffset },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// PNG: 8-byte signature, then chunks (4-byte length, 4-byte type, data, CRC-32 of type+data). IHDR comes first.

export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_HEADER_BYTES = 8 + 8 + 13 + 4;
/** Allowed bit depths per colour type (PNG spec, table 11.1). */
const PNG_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 };
const PNG_MAX_DIMENSION = 0x7fffffff;

function readPngHeader(b: Uint8Array): ImageHeader {
  if (b.length < PNG_HEADER_BYTES) throw bad(`truncated PNG: only ${b.length} bytes, the header alone needs ${PNG_HEADER_BYTES}`);
  const type = chunkType(b, 12);
  if (type !== 'IHDR' || u32be(b, 8) !== 13) throw bad(`corrupt PNG: first chunk is "${printable(type)}", not a 13-byte IHDR`);
  if (crc32(b.subarray(12, 29)) !== u32be(b, 29)) throw bad('corrupt PNG: header (IHDR) checksum mismatch');
  const width = u32be(b, 16);
  const height = u32be(b, 20);
  const [bitDepth, colorType, compression, filter, interlace] = [b[24]!, b[25]!, b[26]!, b[27]!, b[28]!];
  if (width === 0 || height === 0 || width > PNG_MAX_DIMENSION || height > PNG_MAX_DIMENSION) {
    throw bad(`corrupt PNG: header declares a ${width}x${height} image`);
  }
  const depths = PNG_DEPTHS[colorType];
  if (!depths) throw bad(`corrupt PNG: unknown colour type ${colorType}`);
  if (!depths.includes(bitDepth)) throw bad(`corrupt PNG: bit depth ${bitDepth} is not valid for colour type ${colorType}`);
  if (compression !== 0 || filter !== 0 || interlace > 1) {
    throw bad(`corrupt PNG: unknown compression/filter/interlace method (${compression}/${filter}/${interlace})`);
  }
  return {
    format: 'png',
    width,
    height,
    channels: PNG_CHANNELS[colorType]!,
    orientation: pngOrientation(b),
    png: { bitDepth, colorType, interlaced: interlace === 1 },
  };
}

/** EXIF orientation from an eXIf chunk before the image data (PNG 1.5 extension); 1 if none. Never throws: a damaged
 * chunk list is the decoder's business, not the probe's. */
function pngOrientation(b: Uint8Array): number {
  let pos = 8;
  while (pos + 8 <= b.length) {
    const length = u32be(b, pos);
    const type = chunkType(b, pos + 4);
    if (type === 'IDAT' || type === 'IEND' || pos + 12 + length > b.length) break;
    if (type === 'eXIf') return orientationFromTiff(b.subarray(pos + 8, pos + 8 + length)) ?? 1;
    pos += 12 + length;
  }
  return 1;
}

// ---------------------------------------------------------------------------------------------------------------


export function chunkType(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
}

export function u32be(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function u16be(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function startsWith(bytes: ArrayLike<number>, prefix: ArrayLike<number>): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(2, '0');
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** A few words on what the data looks like instead, for the "not a JPEG or PNG" message. */
function describeStart(b: Uint8Array): string {
  const ascii = String.fromCharCode(...b.subarray(0, 12));
  if (ascii.startsWith('GIF8')) return 'looks like GIF';
  if (ascii.startsWith('RIFF') && ascii.slice(8, 12) === 'WEBP') return 'looks like WebP';
  if (ascii.startsWith('BM')) return 'looks like BMP';
  if (ascii.startsWith('II*\0') || ascii.startsWith('MM\0*')) return 'looks like TIFF';
  if (ascii.slice(4, 8) === 'ftyp') return 'looks like HEIF/AVIF';
  const head = b.subarray(0, 64);
  if (head.every((c) => c === 0x09 || c === 0x0a || c === 0x0d || (c >= 0x20 && c < 0x7f))) {
    return `looks like text: ${JSON.stringify(String.fromCharCode(...head.subarray(0, 20)))}${b.length > 20 ? '...' : ''}`;
  }
  return `starts with bytes ${Array.from(b.subarray(0, 4), (c) => c.toString(16).padStart(2, '0')).join(' ')}`;
}

function bad(message: string, hint?: string): EdgeheadError {
  return new EdgeheadError('BAD_IMAGE', message, { hint });
}
