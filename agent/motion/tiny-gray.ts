/**
 * The motion gate's view of a frame: a tiny grayscale image of the region of interest (at most size x size pixels),
 * and the mean absolute difference between two of them.
 *
 * Cheap on purpose: a JPEG is decoded by decodeImage at the smallest DCT scale (libjpeg-turbo, M/8) whose region
 * still has `size` pixels a side (a 640x480 frame at 1/8 = 80x60 for 32x32: the inverse DCT of the DC coefficients
 * and little more), then the region (the same pixel math as toModelInput: agent/image/preprocess.ts storedBox) is
 * box-averaged into the grid in one pass over its bytes. No tensors. PNG and the jpeg-js fallback decode at full
 * size and are box-shrunk by decodeImage first.
 *
 * The grid is taken in the stored (not upright) orientation: the gate only compares frames of one camera with each
 * other, so rotating them first would change nothing.
 */
import type { Region } from '../../protocol/dataset';
import { decodeImage } from '../image/decode';
import { decodeTargetSize, storedBox } from '../image/preprocess';

export interface TinyGray {
  width: number;
  height: number;
  /** Luma 0..255, row-major. */
  data: Uint8Array;
  /** The region it shows (undefined: the whole frame); a grid of another region is never compared with it. */
  region: Region | undefined;
}

/** The tiny grayscale of a frame's region: at most size x size (fewer where the region has fewer decoded pixels). */
export function tinyGray(bytes: Uint8Array, opts: { size: number; maxPixels: number; region?: Region }): TinyGray {
  const { size, maxPixels, region } = opts;
  const img = decodeImage(bytes, { maxPixels, targetSize: decodeTargetSize([size, size], 'squash', region) });
  const box = storedBox(img.width, img.height, img.orientation, region);
  const gw = Math.min(size, box.width);
  const gh = Math.min(size, box.height);
  const sums = new Uint32Array(gw * gh);
  const counts = new Uint32Array(gw * gh);
  // grid column of each box column, once (the inner loop is then two lookups and an add per pixel)
  const colOf = new Uint32Array(box.width);
  for (let x = 0; x < box.width; x++) colOf[x] = Math.floor((x * gw) / box.width);
  const { data, width } = img;
  for (let y = 0; y < box.height; y++) {
    const rowBase = Math.floor((y * gh) / box.height) * gw;
    let p = ((box.top + y) * width + box.left) * 4;
    for (let x = 0; x < box.width; x++, p += 4) {
      const cell = rowBase + colOf[x]!;
      // ITU-R BT.601 luma in integers: (77 R + 150 G + 29 B) / 256
      sums[cell]! += (77 * data[p]! + 150 * data[p + 1]! + 29 * data[p + 2]!) >> 8;
      counts[cell]!++;
    }
  }
  const out = new Uint8Array(gw * gh);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(sums[i]! / counts[i]!);
  return { width: gw, height: gh, data: out, region };
}

/** Mean absolute difference per pixel (0..255) of two tiny images; Infinity when they cannot be compared (another
 * size or region: the frame counts as changed). */
export function meanAbsDiff(a: TinyGray, b: TinyGray): number {
  if (a.width !== b.width || a.height !== b.height || !sameRegion(a.region, b.region)) return Infinity;
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i]! - b.data[i]!);
  return sum / a.data.length;
}

export function sameRegion(a: Region | undefined, b: Region | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.every((v, i) => v === b[i]);
}
