/**
 * Bytes -> 8-bit RGBA pixels, refusing oversized images from their header before anything big is allocated.
 *
 * JPEG: libjpeg-turbo compiled to WASM (./jpeg-turbo.ts) when it can: 4-6x faster than jpeg-js, and able to decode
 * at a reduced scale in the DCT domain (DecodeOptions.targetSize). jpeg-js (pure JS) decodes everything else: CMYK
 * and YCCK (TurboJPEG cannot convert them to RGB), files libjpeg rejects or warns about (jpeg-js decodes slightly
 * malformed camera files tolerantly, or fails with the messages below), and any JPEG when the .wasm file is
 * missing. PNG: pngjs. This module wraps the decoders' loose error strings into one-line EdgeheadErrors and adds the
 * structural checks they skip (a JPEG's end marker, an interlaced PNG's decompressed size). Memory is bounded per
 * decoder (./budget.ts): pngjs and jpeg-js decode at full size, so each has its own pixel limit derived from one
 * memory budget, and an image larger than the model needs is shrunk before it leaves. docs/preprocessing.md has the
 * measurements.
 */
import { inflateSync } from 'node:zlib';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { EdgeheadError, describeError } from '../../base/errors';
import { crc32 } from '../../base/crc32';
import { createLogger } from '../../base/log';
import { JPEG_JS_BYTES_PER_PIXEL, boxShrink, budgetPixels, describePng, overBudget, pngBytesPerPixel, shrinkFactor } from './budget';
import { JpegTurbo, scaled } from './jpeg-turbo';
import { type ImageFormat, type ImageHeader, chunkType, readImageHeader, u32be } from './probe';

const log = createLogger('image');

export interface DecodeOptions {
  /** Largest width*height accepted; bigger images fail with IMAGE_TOO_LARGE before decoding. */
  maxPixels: number;
  /**
   * [height, width] the caller will resize the upright image to (for a centre crop: the square's side, twice).
   * A JPEG is then decoded at the smallest libjpeg scale M/8 (M = 1..8) whose upright size is still at least this
   * large, e.g. a 640x480 frame at 1/2 = 320x240 for [224, 224]: the inverse DCT does the downscaling (averaging, so
   * no aliasing) and most of the decoding work is skipped. Never upscales. Any decoded image (PNG, the jpeg-js
   * fallback, a JPEG still too large at 1/8) is then shrunk by the largest integer factor whose upright size still
   * covers this (box filter, averaging too), so no full-size float tensor is ever built. Without it: full size.
   */
  targetSize?: [number, number];
}

export type ImageDecoder = 'libjpeg-turbo' | 'jpeg-js' | 'pngjs';

export interface DecodedImage {
  /** Size of `data`: the file's size, or less when the image was decoded or shrunk to a reduced scale (targetSize). */
  width: number;
  height: number;
  /** RGBA 8-bit, row-major, width*height*4 bytes, as stored (EXIF orientation not applied yet). */
  data: Uint8Array;
  /** EXIF orientation 1..8 (1 when absent); toModelInput applies it. */
  orientation: number;
  format: ImageFormat;
  /** The size stored in the file (the frame's size, whatever scale it was decoded at). */
  fileWidth: number;
  fileHeight: number;
  /** Which decoder made the pixels. */
  decoder: ImageDecoder;
}

/** probe -> refuse width*height > maxPixels with IMAGE_TOO_LARGE *before* decoding -> decode JPEG (libjpeg-turbo
 * WASM, else jpeg-js), at a reduced scale if targetSize allows, or PNG (pngjs). Throws BAD_IMAGE for anything that
 * is not a decodable JPEG or PNG. */
export function decodeImage(bytes: Uint8Array, opts: DecodeOptions): DecodedImage {
  const { maxPixels, targetSize } = opts;
  if (!(Number.isFinite(maxPixels) && maxPixels >= 1)) {
    throw new RangeError(`decodeImage: maxPixels must be a number >= 1 (got ${maxPixels})`);
  }
  if (targetSize !== undefined && !(targetSize.length === 2 && targetSize.every((n) => Number.isInteger(n) && n >= 1))) {
    throw new RangeError(`decodeImage: targetSize must be two positive integers [height, width] (got ${JSON.stringify(targetSize)})`);
  }
  const header = readImageHeader(bytes);
  const { width, height, format, orientation } = header;
  if (width * height > maxPixels) {
    throw new EdgeheadError(
      'IMAGE_TOO_LARGE',
      `${format.toUpperCase()} image is ${width}x${height} = ${count(width * height)} pixels, ` +
        `over the limit of ${count(maxPixels)} pixels`,
      { hint: 'downscale the image, or raise the pixel limit' },
    );
  }
  if (header.format === 'png') {
    const perPixel = pngBytesPerPixel(header.png);
    const limit = budgetPixels(perPixel, bytes.length);
    if (width * height > limit) throw overBudget(describePng(header.png), width, height, limit, perPixel);
  }
  let out =
    header.format === 'jpeg'
      ? decodeJpeg(bytes, header, maxPixels, targetSize)
      : { width, height, data: decodePng(bytes, header), decoder: 'pngjs' as const };
  if (out.data.length !== out.width * out.height * 4) {
    // Every decoder is asked for exactly this size; anything else is a decoder/header disagreement.
    throw bad(`corrupt ${format.toUpperCase()}: decoded ${out.data.length} bytes, expected ${out.width}x${out.height}x4`);
  }
  const k = targetSize ? shrinkFactor(out.width, out.height, orientation, targetSize) : 1;
  if (k > 1) out = { ...boxShrink(out.data, out.width, out.height, k), decoder: out.decoder };
  return { ...out, orientation, format, fileWidth: width, fileHeight: height };
}

export interface ImageCodecs {
  /** The JPEG decoder used where it can be: libjpeg-turbo (WASM), or jpeg-js alone if the .wasm is missing. */
  jpeg: 'libjpeg-turbo' | 'jpeg-js';
  /** Where the libjpeg-turbo binary was loaded from. */
  wasmPath?: string;
  /** Why libjpeg-turbo is not used. */
  note?: string;
}

/** Loads the JPEG codec now instead of on the first frame (synchronous; ~20 ms on the dev VM: read, compile,
 * instantiate) and says which one is in use. Optional: decodeImage loads it on first use. */
export function initImageCodecs(): ImageCodecs {
  const t = jpegTurbo();
  return t ? { jpeg: 'libjpeg-turbo', wasmPath: t.wasmPath } : { jpeg: 'jpeg-js', note: turboNote };
}

// ---------------------------------------------------------------------------------------------------------------
// JPEG

type JpegHeader = Extract<ImageHeader, { format: 'jpeg' }>;

const JPEG_PROCESS: Record<number, string> = {
  0xc3: 'lossless',
  0xc5: 'hierarchical',
  0xc6: 'hierarchical progressive',
  0xc7: 'hierarchical lossless',
  0xc9: 'arithmetic-coded',
  0xca: 'arithmetic-coded progressive',
  0xcb: 'arithmetic-coded lossless',
  0xcd: 'hierarchical arithmetic-coded',
  0xce: 'hierarchical arithmetic-coded progressive',
  0xcf: 'hierarchical arithmetic-coded lossless',
};

/** Quantisation/Huffman tables and other small allocations jpeg-js counts. */
const JPEG_SLACK_BYTES = 4 << 20;

let turbo: JpegTurbo | null | undefined; // undefined: not loaded yet; null: unavailable
let turboNote: string | undefined;

function jpegTurbo(): JpegTurbo | null {
  if (turbo === undefined) {
    try {
      turbo = JpegTurbo.load();
    } catch (e) {
      turbo = null;
      turboNote = describeError(e);
      log.warn('libjpeg-turbo (WASM) unavailable: decoding JPEG with jpeg-js, about 5x slower', { reason: turboNote });
    }
  }
  return turbo;
}

/** The smallest libjpeg scale M/8 at which the upright image (orientations 5-8 swap the stored sides) still covers
 * target [height, width]; 8 (full size) when no smaller one does. */
export function jpegScale(width: number, height: number, orientation: number, target: [number, number]): number {
  const [uprightW, uprightH] = orientation >= 5 && orientation <= 8 ? [height, width] : [width, height];
  for (let m = 1; m < 8; m++) if (scaled(uprightW, m) >= target[1] && scaled(uprightH, m) >= target[0]) return m;
  return 8;
}

interface Pixels {
  width: number;
  height: number;
  data: Uint8Array;
  decoder: ImageDecoder;
}

function decodeJpeg(bytes: Uint8Array, header: JpegHeader, maxPixels: number, targetSize?: [number, number]): Pixels {
  const { sof, precision, adobeTransform, scanOffset } = header.jpeg;
  const process = JPEG_PROCESS[sof];
  if (process) {
    throw bad(`unsupported JPEG: ${process} (SOF${sof - 0xc0}); only baseline and progressive JPEGs can be decoded`, {
      hint: 're-encode it as an ordinary (baseline) JPEG',
    });
  }
  if (precision !== 8) throw bad(`unsupported JPEG: ${precision}-bit samples; only 8-bit JPEGs can be decoded`);
  if (header.channels === 2) throw bad('unsupported JPEG: 2 colour components');
  if (header.channels === 4 && adobeTransform === undefined) {
    throw bad('unsupported JPEG: 4 colour components (CMYK) without an Adobe APP14 marker');
  }
  if (scanOffset < 0) throw truncatedJpeg(`data ends at byte ${bytes.length}, before the image data starts`);
  const end = findJpegEnd(bytes, scanOffset);
  // jpeg-js fails on a missing end marker too, but with messages like "unknown JPEG marker 0", and only after
  // decoding garbage; a cut-off file is by far the most common cause, so say so up front.
  if (end < 0) throw truncatedJpeg(`no end-of-image marker in ${bytes.length} bytes (file cut short?)`);

  // Fast path. TurboJPEG cannot turn 4-component (CMYK/YCCK) data into RGB: those go to jpeg-js directly.
  const fast = header.channels !== 4 ? jpegTurbo() : null;
  if (fast) {
    const scale = targetSize ? jpegScale(header.width, header.height, header.orientation, targetSize) : 8;
    try {
      return { ...fast.decode(bytes.subarray(0, end), header, scale), decoder: 'libjpeg-turbo' };
    } catch (e) {
      // libjpeg refused the file or warned about it: jpeg-js decides, exactly as before the fast path existed
      // (tolerant decoding of slightly malformed camera files, or the error messages below).
      log.debug('libjpeg-turbo could not decode the JPEG cleanly; trying jpeg-js', { reason: describeError(e) });
    }
  }

  // jpeg-js decodes at full size and needs up to 28 bytes per pixel: its own pixel limit, within the decode budget.
  const budget = budgetPixels(JPEG_JS_BYTES_PER_PIXEL, bytes.length);
  if (header.width * header.height > budget) {
    const which = header.channels === 4 ? 'CMYK/YCCK JPEG' : 'JPEG that libjpeg-turbo cannot decode';
    throw overBudget(`${which} (decoded by jpeg-js)`, header.width, header.height, budget, JPEG_JS_BYTES_PER_PIXEL);
  }
  // Defence in depth if jpeg-js ever reads a frame differently from our probe: its own limits, derived from the
  // same budget. Memory: MCUs pad each dimension up to a multiple of at most 32 pixels.
  const padded = Math.ceil(header.width / 32) * 32 * Math.ceil(header.height / 32) * 32;
  const memoryBytes = JPEG_JS_BYTES_PER_PIXEL * Math.max(padded, Math.min(maxPixels, budget)) + JPEG_SLACK_BYTES;
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes.subarray(0, end), {
      useTArray: true,
      formatAsRGBA: true,
      tolerantDecoding: true, // jpeg-js's default: skip blocks missing from slightly malformed camera files
      colorTransform: jpegColorTransform(header),
      // jpeg-js multiplies this back by 1e6 and refuses frames above it: the half pixel absorbs the rounding
      // (21 / 1e6 * 1e6 is 20.999999999999996, which would refuse a 7x3 image at maxPixels 21)
      maxResolutionInMP: (maxPixels + 0.5) / 1e6,
      maxMemoryUsageInMB: Math.ceil(memoryBytes / (1 << 20)),
    });
  } catch (e) {
    const msg = describeError(e);
    if (/maxResolutionInMP|maxMemoryUsageInMB|allocate enough memory/.test(msg)) {
      throw new EdgeheadError('IMAGE_TOO_LARGE', `JPEG decoder refused the image: ${msg}`, {
        hint: 'downscale the image, or raise the pixel limit',
        cause: e,
      });
    }
    throw truncatedJpeg(msg, e);
  }
  if (decoded.width !== header.width || decoded.height !== header.height) {
    throw bad(`corrupt JPEG: decoded ${decoded.width}x${decoded.height}, header says ${header.width}x${header.height}`);
  }
  return { width: decoded.width, height: decoded.height, data: decoded.data, decoder: 'jpeg-js' };
}

/** Whether 3-component data is YCbCr (convert to RGB) or already RGB, by libjpeg's rules: a JFIF marker means
 * YCbCr; else an Adobe marker's transform flag decides (0 = RGB); else component ids 'R','G','B' mean RGB.
 * jpeg-js alone assumes YCbCr unless told otherwise, which turns RGB JPEGs (e.g. `cjpeg -rgb`) into false colours.
 * For 4 components jpeg-js already follows the Adobe flag (0 CMYK, 2 YCCK): undefined leaves it to that. */
function jpegColorTransform(header: JpegHeader): boolean | undefined {
  if (header.channels !== 3) return undefined;
  const { jfif, adobeTransform, componentIds } = header.jpeg;
  if (jfif) return true;
  if (adobeTransform !== undefined) return adobeTransform !== 0;
  return !(componentIds[0] === 0x52 && componentIds[1] === 0x47 && componentIds[2] === 0x42);
}

/** Offset just past the EOI marker, walking from the first SOS over entropy-coded data (where 0xFF is always
 * followed by 0x00 or a restart marker) and any further segments (progressive scans, tables); -1 if the data ends
 * first. Uses native indexOf, so the cost is per 0xFF byte, not per byte. Bytes after EOI (e.g. a phone's appended
 * video) are not part of the image. */
function findJpegEnd(b: Uint8Array, sos: number): number {
  let at = sos; // at a marker with a length field
  for (;;) {
    if (at + 4 > b.length) return -1;
    let p = at + 2 + ((b[at + 2]! << 8) | b[at + 3]!);
    for (;;) {
      const ff = b.indexOf(0xff, p);
      if (ff < 0 || ff + 1 >= b.length) return -1;
      const m = b[ff + 1]!;
      if (m === 0xd9) return ff + 2;
      if (m === 0x00 || m === 0xff || m === 0x01 || (m >= 0xd0 && m <= 0xd8)) {
        p = ff + 1; // stuffed byte, fill byte or a marker without a length
        continue;
      }
      at = ff;
      break;
    }
  }
}

function truncatedJpeg(detail: string, cause?: unknown): EdgeheadError {
  return new EdgeheadError('BAD_IMAGE', `truncated or corrupt JPEG: ${detail}`, { cause });
}

// ---------------------------------------------------------------------------------------------------------------
// PNG

type PngHeader = Extract<ImageHeader, { format: 'png' }>;

/** Chunks a decoder must understand (upper-case first letter); ancillary ones may be skipped. */
const KNOWN_CRITICAL = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']);
/** Samples per pixel in the stored data (palette: one index). */
const PNG_SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7 passes: [x0, y0, dx, dy]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

function decodePng(bytes: Uint8Array, header: PngHeader): Uint8Array {
  const { end, idat } = walkPngChunks(bytes);
  // pngjs bounds decompression by the declared size for non-interlaced images, but inflates interlaced ones
  // without a limit: a tiny interlaced PNG could expand to gigabytes. Check that case ourselves, first.
  if (header.png.interlaced) checkInflatedSize(idat, interlacedSize(header));

  let png: { width: number; height: number; data: Buffer };
  try {
    // skipRescale false: 1/2/4/16-bit samples are scaled to 8 bits; palette, grey and alpha come out as RGBA.
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, end), { checkCRC: true, skipRescale: false });
  } catch (e) {
    // pngjs's sync reader often reports the symptom ("unrecognised content at end of stream": its parser stopped
    // early) instead of the cause, e.g. a CRC error. So look for a bad checksum ourselves first (error path only).
    const msg = describeError(e);
    const badCrc = findBadCrc(bytes, end);
    if (badCrc) throw bad(`corrupt PNG: ${badCrc}`, { cause: e });
    throw bad(`corrupt PNG: ${/unrecognised content at end/.test(msg) ? 'invalid chunk contents or order' : msg}`, { cause: e });
  }
  if (png.width !== header.width || png.height !== header.height) {
    throw bad(`corrupt PNG: decoded ${png.width}x${png.height}, header says ${header.width}x${header.height}`);
  }
  return new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
}

/** Checks the chunk structure (lengths, truncation) up to IEND. Returns where IEND ends — trailing bytes, which
 * pngjs rejects but viewers ignore, are dropped — and the IDAT payloads. */
function walkPngChunks(b: Uint8Array): { end: number; idat: Uint8Array[] } {
  const idat: Uint8Array[] = [];
  let pos = 8;
  for (;;) {
    if (pos + 12 > b.length) throw bad(`truncated PNG: data ends at byte ${b.length}, before the IEND chunk`);
    const length = u32be(b, pos);
    const type = chunkType(b, pos + 4);
    if (length > 0x7fffffff) throw bad(`corrupt PNG: chunk at byte ${pos} declares ${length} bytes`);
    const next = pos + 12 + length;
    if (next > b.length) {
      throw bad(`truncated PNG: the ${type} chunk at byte ${pos} needs ${12 + length} bytes, only ${b.length - pos} remain`);
    }
    if (!(b[pos + 4]! & 0x20) && !KNOWN_CRITICAL.has(type)) {
      throw bad(`unsupported PNG: unknown critical chunk "${type.replace(/[^\x20-\x7e]/g, '?')}" at byte ${pos}`);
    }
    if (type === 'IDAT') idat.push(b.subarray(pos + 8, pos + 8 + length));
    if (type === 'IEND') return { end: next, idat };
    pos = next;
  }
}

function interlacedSize(header: PngHeader): number {
  const bitsPerPixel = PNG_SAMPLES[header.png.colorType]! * header.png.bitDepth;
  let size = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil(Math.max(0, header.width - x0) / dx);
    const h = Math.ceil(Math.max(0, header.height - y0) / dy);
    if (w > 0 && h > 0) size += h * (1 + Math.ceil((w * bitsPerPixel) / 8)); // each row: filter byte + samples
  }
  return size;
}

function checkInflatedSize(idat: Uint8Array[], expected: number): void {
  try {
    inflateSync(Buffer.concat(idat), { maxOutputLength: Math.max(expected, 1) });
  } catch (e) {
    if (e instanceof RangeError || (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw bad(`corrupt PNG: image data expands to more than the ${expected} bytes its header implies`, { cause: e });
    }
    throw bad(`corrupt PNG: image data does not decompress (${describeError(e)})`, { cause: e });
  }
}

/** Names the first chunk whose CRC is wrong, if any (error path only: a JS loop over every byte). */
function findBadCrc(b: Uint8Array, end: number): string | undefined {
  for (let pos = 8; pos + 12 <= end; ) {
    const length = u32be(b, pos);
    if (crc32(b.subarray(pos + 4, pos + 8 + length)) !== u32be(b, pos + 8 + length)) {
      return `checksum (CRC) mismatch in the ${chunkType(b, pos + 4)} chunk at byte ${pos}`;
    }
    pos += 12 + length;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function bad(message: string, options: { hint?: string; cause?: unknown } = {}): EdgeheadError {
  return new EdgeheadError('BAD_IMAGE', message, options);
}
