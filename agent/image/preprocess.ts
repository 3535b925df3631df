/**
 * Decoded RGBA pixels -> the model's input tensor, entirely with tf ops and native copies (no per-pixel JavaScript).
 *
 * Semantics: drop alpha, apply the EXIF orientation, cut out the region of interest if one is set (fractions of the
 * upright frame, preprocess.region or the active head's), then either squash (resize the region, ignoring aspect) or
 * crop (centre square of the region, then resize), bilinear, then scale 0..255 linearly to valueRange.
 *
 * Region pixels: each edge is rounded to the nearest pixel of the image as decoded (x * width, (x + w) * width, ...),
 * clamped to the image, and the box keeps at least one pixel on each side. The same math maps the region into the
 * stored image for the motion gate (agent/motion/), so both look at the same pixels.
 *
 * Order of work (same result, less of it): the crop box and the target size are mapped back into the stored,
 * un-rotated image; the stored bytes are cropped (row by row) and resized there, and only the small resized result
 * is converted to RGB in range and flipped/transposed upright. Flips and transposes commute with half-pixel-centre
 * bilinear resizing (its sampling grid is symmetric), so this equals orienting the full image first, without
 * transposing megapixels. The unit tests check it against that naive order for all 8 orientations, both modes and
 * odd sizes.
 *
 * Resizing is tf.image.resizeBilinear with alignCorners=false, halfPixelCenters=true: output pixel centres map to
 * input pixel centres ((i + 0.5) * in/out - 0.5), the convention of TF2's tf.image.resize, Keras preprocessing,
 * PIL and OpenCV, i.e. what most models were trained with. tf.image.cropAndResize would crop and resize in one op,
 * but its sampling grid puts the first and last output samples exactly on the crop's edge pixels (the
 * align-corners convention, shifting the image by up to half an output pixel against training-time resizing),
 * and it fills samples outside the image with an extrapolation value instead of clamping. Cropping the bytes
 * before they become a tensor costs less than either.
 *
 * Op choices are measured (640x480 input -> 224x224, WASM backend and CPU backend): tf.slice of channels and
 * tf.reverse walk element by element in both backends (WASM 2-6 ms, CPU 70-100 ms each at 224x224x3), while
 * tf.image.flipLeftRight and a [N,4]x[4,3] matMul are tight loops (~0.3 ms / ~1 ms on WASM). The RGBA tensor is
 * made float32 straight from the bytes: an int32 one would be cast again inside WASM's resizeBilinear, in JS
 * (median 14 ms against 1 ms for tensor + resize).
 *
 * Like TF's default resize there is no antialiasing: downscaling a large photo by a big factor samples only some
 * of its pixels. Alpha is dropped, not composited (transparent PNG areas show whatever colour they store).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Region } from '../../protocol/dataset';
import type { DecodedImage } from './decode';

export type ResizeMode = 'squash' | 'crop';

export interface PreprocessSpec {
  /** [height, width], e.g. [224, 224]. */
  inputSize: [number, number];
  /** Output values for pixel values 0 and 255, e.g. [0, 1] or [-1, 1]. */
  valueRange: [number, number];
  resize: ResizeMode;
  /** [x, y, w, h] as fractions of the upright frame: cropped to before resizing. Undefined: the whole frame. */
  region?: Region;
}

/** A rectangle of pixels: columns [left, left + width), rows [top, top + height). */
export interface PixelBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** How a viewer makes the upright image from the stored pixels for each EXIF orientation: optionally transpose
 * (swap rows and columns), then reverse the order of the rows (flip top-bottom) and/or of the columns (flip
 * left-right). E.g. 6 ("rotate 90° clockwise to view") = transpose, then flip left-right. */
interface Orientation {
  transpose: boolean;
  flipRows: boolean;
  flipCols: boolean;
}

const ORIENTATIONS: Record<number, Orientation> = {
  1: { transpose: false, flipRows: false, flipCols: false },
  2: { transpose: false, flipRows: false, flipCols: true }, // mirrored
  3: { transpose: false, flipRows: true, flipCols: true }, // rotated 180°
  4: { transpose: false, flipRows: true, flipCols: false }, // mirrored vertically
  5: { transpose: true, flipRows: false, flipCols: false }, // mirrored along the main diagonal
  6: { transpose: true, flipRows: false, flipCols: true }, // view rotated 90° clockwise
  7: { transpose: true, flipRows: true, flipCols: true }, // mirrored along the anti-diagonal
  8: { transpose: true, flipRows: true, flipCols: false }, // view rotated 90° counter-clockwise
};

/** Returns a float32 [1,h,w,3] tensor: RGBA->RGB, EXIF orientation applied (all 8 cases), cut to spec.region if set,
 * then 'squash' (resize the region, ignore aspect) or 'crop' (centre square crop of the region, then resize) with bilinear interpolation, then linear
 * scaling of 0..255 to valueRange. All inside tf.tidy: no tensor may leak. */
export function toModelInput(img: DecodedImage, spec: PreprocessSpec): tf.Tensor4D {
  checkSpec(spec);
  checkImage(img);
  const [outH, outW] = spec.inputSize;
  const [lo, hi] = spec.valueRange;
  const box = storedBox(img.width, img.height, img.orientation, spec.region, spec.resize);
  const whole = box.width === img.width && box.height === img.height;
  const size: [number, number] = ORIENTATIONS[img.orientation]!.transpose ? [outW, outH] : [outH, outW];

  return tf.tidy(() => {
    const bytes = whole ? img.data : cropBytes(img, box);
    const rgba = tf.tensor4d(asFloat32(bytes), [1, box.height, box.width, 4]);
    const resized = tf.image.resizeBilinear(rgba, size, false, true);
    return applyOrientation(toRgbInRange(resized, lo, hi), img.orientation);
  });
}

let scratch = new Float32Array(0);
/** Largest input kept in the reusable buffer (8 MB of float32): DCT-scaled camera frames are far below it. */
const SCRATCH_MAX = 1 << 21;

/** The bytes as float32 (one native conversion) in a buffer reused from call to call: a 320x240 frame would
 * otherwise leave 1.2 MB of garbage per frame (2.4 MB at 640x480 if not DCT-scaled), and the garbage collections
 * that triggers land in some frames' preprocessing time. Safe because the tensor made from it never outlives
 * toModelInput's tidy: WASM copies the values into its heap at once, the CPU backend reads them during the resize.
 * (`Float32Array.from` of a Uint8Array is a native conversion too.) */
function asFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.length > SCRATCH_MAX) return Float32Array.from(bytes); // a rare big image: not kept for ever
  if (scratch.length < bytes.length) scratch = new Float32Array(bytes.length);
  const f = scratch.subarray(0, bytes.length);
  f.set(bytes);
  return f;
}

/** [1,h,w,4] 0..255 -> [1,h,w,3] in [lo,hi], as one matrix product with bias: rgba · M + lo, where M (4x3) holds
 * (hi - lo) / 255 on its diagonal and a zero row for alpha. Exact: the extra terms are all 0 * value. */
function toRgbInRange(rgba: tf.Tensor4D, lo: number, hi: number): tf.Tensor4D {
  const [n, h, w] = rgba.shape;
  const s = (hi - lo) / 255;
  const m = tf.tensor2d([s, 0, 0, 0, s, 0, 0, 0, s, 0, 0, 0], [4, 3]);
  const rgb = tf.fused.matMul({ a: tf.reshape(rgba, [n * h * w, 4]), b: m, bias: tf.fill([3], lo) });
  return tf.reshape(rgb, [n, h, w, 3]);
}

/** The bytes of a rectangle of an RGBA image: a view when it spans whole rows, else one native copy per row. */
export function cropBytes(img: Pick<DecodedImage, 'width' | 'data'>, box: PixelBox): Uint8Array {
  const { width, data } = img;
  const { top, left, width: w, height: h } = box;
  if (left === 0 && w === width) return data.subarray(top * width * 4, (top + h) * width * 4);
  const out = new Uint8Array(w * h * 4);
  for (let row = 0; row < h; row++) {
    const from = ((top + row) * width + left) * 4;
    out.set(data.subarray(from, from + w * 4), row * w * 4);
  }
  return out;
}

/** Makes a float32 [1,h,w,c] image upright for an EXIF orientation 1..8 (5-8 swap height and width). Returns a new
 * tensor (a copy for orientation 1) that the caller owns. */
export function applyOrientation(image: tf.Tensor4D, orientation: number): tf.Tensor4D {
  const o = ORIENTATIONS[orientation];
  if (!o) throw new RangeError(`EXIF orientation must be 1..8 (got ${orientation})`);
  return tf.tidy(() => {
    let t = o.transpose ? tf.transpose(image, [0, 2, 1, 3]) : image;
    if (o.flipCols) t = tf.image.flipLeftRight(t);
    if (o.flipRows) t = flipTopBottom(t);
    return t === image ? tf.clone(image) : t;
  });
}

/** flipLeftRight on the image seen as a single row of h "pixels", each holding a whole row of w*c values: that
 * reverses the rows. (tf.reverse does the same, 20x slower: see the measurements above.) */
function flipTopBottom(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.reshape(tf.image.flipLeftRight(tf.reshape(x, [n, 1, h, w * c])), [n, h, w, c]);
}

/**
 * A region (fractions of an upright image of uprightW x uprightH pixels) as pixels of that image: each edge rounded to
 * the nearest pixel, clamped to the image, at least one pixel wide and high. Undefined: the whole image.
 */
export function regionPixels(uprightW: number, uprightH: number, region: Region | undefined): PixelBox {
  if (!region) return { left: 0, top: 0, width: uprightW, height: uprightH };
  const [x, y, w, h] = region;
  const [left, width] = edges(x, w, uprightW);
  const [top, height] = edges(y, h, uprightH);
  return { left, top, width, height };
}

/** [start, length] in pixels of the span [from, from + size) (fractions) of `n` pixels. */
function edges(from: number, size: number, n: number): [number, number] {
  const clamp = (v: number) => Math.min(n, Math.max(0, v));
  let a = clamp(Math.round(from * n));
  let b = clamp(Math.round((from + size) * n));
  if (b <= a) {
    // thinner than a pixel at this scale: the one pixel it lies on
    b = Math.min(n, a + 1);
    a = b - 1;
  }
  return [a, b - a];
}

/** The centre square of a box (offsets rounded down). */
export function centreSquare(box: PixelBox): PixelBox {
  const size = Math.min(box.width, box.height);
  return { left: box.left + Math.floor((box.width - size) / 2), top: box.top + Math.floor((box.height - size) / 2), width: size, height: size };
}

/**
 * The pixels a frame is resized from, as a box of the *stored* image (width x height as decoded, before the EXIF
 * orientation): the region (or the whole frame), then its centre square for 'crop'. Worked out in the upright image
 * (so every orientation crops exactly the same pixels), then mirrored where the orientation flips an axis and
 * transposed back.
 */
export function storedBox(width: number, height: number, orientation: number, region: Region | undefined, resize: ResizeMode = 'squash'): PixelBox {
  const o = ORIENTATIONS[orientation];
  if (!o) throw new RangeError(`EXIF orientation must be 1..8 (got ${orientation})`);
  // upright rows/columns come from stored columns/rows when transposed
  const [uprightH, uprightW] = o.transpose ? [width, height] : [height, width];
  const inRegion = regionPixels(uprightW, uprightH, region);
  const b = resize === 'crop' ? centreSquare(inRegion) : inRegion;
  const alongRows = o.flipRows ? uprightH - b.height - b.top : b.top; // offset along the stored axis shown as rows
  const alongCols = o.flipCols ? uprightW - b.width - b.left : b.left;
  return o.transpose ? { top: alongCols, left: alongRows, width: b.height, height: b.width } : { top: alongRows, left: alongCols, width: b.width, height: b.height };
}

/**
 * The [height, width] to decode the upright frame at (decodeImage's targetSize) so that what toModelInput resizes
 * from (the region, or its centre square) still covers inputSize: a region of a quarter of the width needs a frame
 * decoded four times as wide. Never less than 1.
 */
export function decodeTargetSize(inputSize: [number, number], resize: ResizeMode, region?: Region): [number, number] {
  const [h, w] = inputSize;
  // 'crop' resizes a square: both sides of the region must cover the larger input side
  const [needH, needW] = resize === 'crop' ? [Math.max(h, w), Math.max(h, w)] : [h, w];
  const [fw, fh] = region ? [region[2], region[3]] : [1, 1];
  return [Math.max(1, Math.ceil(needH / fh - 1e-9)), Math.max(1, Math.ceil(needW / fw - 1e-9))];
}

function checkSpec(spec: PreprocessSpec): void {
  const [h, w] = spec.inputSize;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1)) {
    throw new RangeError(`inputSize must be two positive integers [height, width] (got ${JSON.stringify(spec.inputSize)})`);
  }
  const [lo, hi] = spec.valueRange;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) {
    throw new RangeError(`valueRange must be two finite numbers [low, high] with low < high (got ${JSON.stringify(spec.valueRange)})`);
  }
  if (spec.resize !== 'squash' && spec.resize !== 'crop') {
    throw new RangeError(`resize must be 'squash' or 'crop' (got ${JSON.stringify(spec.resize)})`);
  }
  const r = spec.region;
  if (r !== undefined) {
    const ok = r.length === 4 && r.every((v) => Number.isFinite(v) && v >= 0 && v <= 1) && r[2] > 0 && r[3] > 0 && r[0] + r[2] <= 1 + 1e-9 && r[1] + r[3] <= 1 + 1e-9;
    if (!ok) throw new RangeError(`region must be [x, y, w, h] fractions of the frame with w, h > 0, x + w <= 1 and y + h <= 1 (got ${JSON.stringify(r)})`);
  }
}

function checkImage(img: DecodedImage): void {
  const { width, height, data, orientation } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 1 && height >= 1)) {
    throw new RangeError(`image size must be positive integers (got ${width}x${height})`);
  }
  if (data.length !== width * height * 4) {
    throw new RangeError(`image data must hold ${width}x${height}x4 RGBA bytes (got ${data.length})`);
  }
  if (!ORIENTATIONS[orientation]) throw new RangeError(`EXIF orientation must be 1..8 (got ${orientation})`);
}
