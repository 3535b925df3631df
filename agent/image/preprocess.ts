/**
 * Decoded RGBA pixels -> the model's input tensor, entirely with tf ops and native copies (no per-pixel JavaScript).
 *
 * Semantics: drop alpha, apply the EXIF orientation, then either squash (resize the whole image, ignoring aspect) or
 * crop (centre square of the upright image, then resize), bilinear, then scale 0..255 linearly to valueRange.
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
import type { DecodedImage } from './decode';

export type ResizeMode = 'squash' | 'crop';

export interface PreprocessSpec {
  /** [height, width], e.g. [224, 224]. */
  inputSize: [number, number];
  /** Output values for pixel values 0 and 255, e.g. [0, 1] or [-1, 1]. */
  valueRange: [number, number];
  resize: ResizeMode;
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

/** Returns a float32 [1,h,w,3] tensor: RGBA->RGB, EXIF orientation applied (all 8 cases), then 'squash' (resize
 * whole image, ignore aspect) or 'crop' (centre square crop then resize) with bilinear interpolation, then linear
 * scaling of 0..255 to valueRange. All inside tf.tidy: no tensor may leak. */
export function toModelInput(img: DecodedImage, spec: PreprocessSpec): tf.Tensor4D {
  checkSpec(spec);
  const o = checkImage(img);
  const [outH, outW] = spec.inputSize;
  const [lo, hi] = spec.valueRange;
  const box = spec.resize === 'crop' ? storedCentreSquare(img.width, img.height, o) : undefined;
  const size: [number, number] = o.transpose ? [outW, outH] : [outH, outW];

  return tf.tidy(() => {
    const [h, w] = box ? [box.size, box.size] : [img.height, img.width];
    const bytes = box ? cropBytes(img, box) : img.data;
    const rgba = tf.tensor4d(asFloat32(bytes), [1, h, w, 4]);
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

/** The bytes of a square region of an RGBA image: a view when it spans whole rows, else one native copy per row. */
function cropBytes(img: DecodedImage, box: { top: number; left: number; size: number }): Uint8Array {
  const { width, data } = img;
  const { top, left, size } = box;
  if (left === 0 && size === width) return data.subarray(top * width * 4, (top + size) * width * 4);
  const out = new Uint8Array(size * size * 4);
  for (let row = 0; row < size; row++) {
    const from = ((top + row) * width + left) * 4;
    out.set(data.subarray(from, from + size * 4), row * size * 4);
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

/** The centre square of the upright image, expressed in stored coordinates. The offset is rounded down in the
 * upright image (so every orientation crops exactly the same pixels) and then mirrored where the orientation flips
 * that axis. */
function storedCentreSquare(width: number, height: number, o: Orientation): { top: number; left: number; size: number } {
  const size = Math.min(width, height);
  // upright rows/columns come from stored columns/rows when transposed
  const [uprightH, uprightW] = o.transpose ? [width, height] : [height, width];
  const fromTop = Math.floor((uprightH - size) / 2);
  const fromLeft = Math.floor((uprightW - size) / 2);
  const alongRows = o.flipRows ? uprightH - size - fromTop : fromTop; // offset along the stored axis shown as rows
  const alongCols = o.flipCols ? uprightW - size - fromLeft : fromLeft;
  return o.transpose ? { top: alongCols, left: alongRows, size } : { top: alongRows, left: alongCols, size };
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
}

function checkImage(img: DecodedImage): Orientation {
  const { width, height, data, orientation } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 1 && height >= 1)) {
    throw new RangeError(`image size must be positive integers (got ${width}x${height})`);
  }
  if (data.length !== width * height * 4) {
    throw new RangeError(`image data must hold ${width}x${height}x4 RGBA bytes (got ${data.length})`);
  }
  const o = ORIENTATIONS[orientation];
  if (!o) throw new RangeError(`EXIF orientation must be 1..8 (got ${orientation})`);
  return o;
}
