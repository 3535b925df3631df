/**
 * Decode memory bounds: every decoder path gets a pixel limit derived from one memory budget, checked from the
 * header before anything big is allocated, and a decoded image larger than the model needs is shrunk (box filter,
 * integer factor) before it becomes a float tensor. Why: a 105 KB 6000x6000 PNG (under the 40 Mpx default of
 * preprocess.maxPixels) peaked at 1.4 GB RSS: pngjs decodes at full size, and the float32 RGBA tensor of 36 Mpx is
 * 576 MB, copied again into the WASM heap. The measurements behind the per-pixel costs are in docs/preprocessing.md.
 */
import { EdgeheadError } from '../../base/errors';
import type { PngDetails } from './probe';

/**
 * Bytes one decode may hold at its peak on top of what the process already holds. The agent runs near 220 MB RSS
 * (the CLI near 100 MB), so 220 + 380 keeps any accepted image's peak near 600 MB on a 1 GB Pi.
 */
export const DECODE_BUDGET_BYTES = 380_000_000;

/** Samples per pixel in stored PNG data, by colour type (palette: one index). */
const PNG_SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const PNG_KIND: Record<number, string> = { 0: 'grey', 2: 'RGB', 3: 'palette', 4: 'grey+alpha', 6: 'RGBA' };

/**
 * pngjs's peak bytes per pixel: it inflates all image data (the raw samples, plus a filter byte per row), unfilters
 * it into a second buffer of that size, then builds 8-bit RGBA (4 bytes per pixel), going through a Uint16Array
 * (8 bytes per pixel) for 16-bit samples. An interlaced PNG is inflated once more before (decode.ts checks its
 * decompressed size) and its passes cost about one byte per pixel more. Measured with `edgehead classify` at each
 * kind's limit (peak RSS minus the CLI's 207 MB; docs/preprocessing.md): 10.0 bytes per pixel for 8-bit RGB
 * (model: 10), 11.6 for 8-bit RGBA (12), 22.4 for 16-bit RGB (24), 13.9 for interlaced 8-bit RGB (14).
 */
export function pngBytesPerPixel(png: PngDetails): number {
  const raw = (PNG_SAMPLES[png.colorType]! * png.bitDepth) / 8;
  return (png.interlaced ? 3 : 2) * raw + 4 + (png.bitDepth === 16 ? 8 : 0) + (png.interlaced ? 1 : 0);
}

/** jpeg-js's own worst-case accounting per pixel (4 components, no subsampling): Int32 coefficient blocks (16),
 * component lines (4), interleaved samples (4), RGBA output (4). */
export const JPEG_JS_BYTES_PER_PIXEL = 28;

/** The largest pixel count a decoder may take on within the budget (the compressed input counts too). */
export function budgetPixels(bytesPerPixel: number, inputBytes: number): number {
  return Math.max(0, Math.floor((DECODE_BUDGET_BYTES - inputBytes) / bytesPerPixel));
}

/** IMAGE_TOO_LARGE for an image over a decoder's own budget, naming that limit (not preprocess.maxPixels). */
export function overBudget(what: string, width: number, height: number, limit: number, bytesPerPixel: number): EdgeheadError {
  return new EdgeheadError(
    'IMAGE_TOO_LARGE',
    `${what} is ${width}x${height} = ${count(width * height)} pixels, over the limit of ${count(limit)} pixels for that kind of ` +
      `image (its decoder needs ~${bytesPerPixel} bytes per pixel; decode memory budget ${DECODE_BUDGET_BYTES / 1e6} MB)`,
    { hint: 'downscale the image, or send it as a JPEG (decoded at a reduced scale)' },
  );
}

/** "16-bit RGBA PNG". */
export function describePng(png: PngDetails): string {
  return `${png.bitDepth}-bit ${PNG_KIND[png.colorType] ?? `colour type ${png.colorType}`}${png.interlaced ? ' interlaced' : ''} PNG`;
}

/**
 * The largest integer factor k by which a width x height image (stored orientation) can be shrunk while its upright
 * size (orientations 5-8 swap the sides) still covers target [height, width]: ceil(side / k) >= target side, like
 * libjpeg's M/8 sizes. 1 when no shrinking is possible.
 */
export function shrinkFactor(width: number, height: number, orientation: number, target: [number, number]): number {
  const [uprightW, uprightH] = orientation >= 5 && orientation <= 8 ? [height, width] : [width, height];
  let k = Math.max(1, Math.min(Math.floor(uprightW / target[1]), Math.floor(uprightH / target[0])));
  while (k > 1 && (Math.ceil(uprightW / k) < target[1] || Math.ceil(uprightH / k) < target[0])) k--;
  return k;
}

/**
 * RGBA bytes shrunk by an integer factor k: each output pixel is the rounded mean of its k x k block (the blocks of
 * the last row and column may be smaller). Averaging, like the DCT-domain scaling of JPEGs, so no aliasing. Memory:
 * the output plus one row of sums.
 */
export function boxShrink(data: Uint8Array, width: number, height: number, k: number): { width: number; height: number; data: Uint8Array } {
  const ow = Math.ceil(width / k);
  const oh = Math.ceil(height / k);
  const out = new Uint8Array(ow * oh * 4);
  const sums = new Uint32Array(ow * 4);
  const lastW = width - (ow - 1) * k; // width of the last column's blocks
  for (let oy = 0; oy < oh; oy++) {
    sums.fill(0);
    const y0 = oy * k;
    const y1 = Math.min(height, y0 + k);
    for (let y = y0; y < y1; y++) {
      let src = y * width * 4;
      for (let ox = 0, o = 0; ox < ow; ox++, o += 4) {
        const n = ox === ow - 1 ? lastW : k;
        let r = 0;
        let g = 0;
        let b = 0;
        let a = 0;
        for (let i = 0; i < n; i++, src += 4) {
          r += data[src]!;
          g += data[src + 1]!;
          b += data[src + 2]!;
          a += data[src + 3]!;
        }
        sums[o] += r;
        sums[o + 1] += g;
        sums[o + 2] += b;
        sums[o + 3] += a;
      }
    }
    const rows = y1 - y0;
    for (let ox = 0, o = 0, dst = oy * ow * 4; ox < ow; ox++, o += 4, dst += 4) {
      const n = (ox === ow - 1 ? lastW : k) * rows;
      const half = n >> 1;
      out[dst] = ((sums[o]! + half) / n) | 0;
      out[dst + 1] = ((sums[o + 1]! + half) / n) | 0;
      out[dst + 2] = ((sums[o + 2]! + half) / n) | 0;
      out[dst + 3] = ((sums[o + 3]! + half) / n) | 0;
    }
  }
  return { width: ow, height: oh, data: out };
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}
