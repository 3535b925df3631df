import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { applyOrientation, decodeImage, toModelInput, type DecodedImage, type PreprocessSpec } from '../../agent/image';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));
const LIMIT = { maxPixels: 1_000_000 };
const RAW: [number, number] = [0, 255];

before(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

/** A synthetic RGBA image from a function of (x, y) -> [r, g, b]; alpha 255. */
function synthetic(width: number, height: number, rgb: (x: number, y: number) => [number, number, number], orientation = 1): DecodedImage {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set([...rgb(x, y), 255], (y * width + x) * 4);
  }
  return { width, height, data, orientation, format: 'png', fileWidth: width, fileHeight: height, decoder: 'pngjs' };
}

/** Runs toModelInput and returns [shape, nested pixel values], disposing the tensor. */
function run(img: DecodedImage, spec: PreprocessSpec): { shape: number[]; px: number[][][] } {
  const t = toModelInput(img, spec);
  try {
    assert.equal(t.dtype, 'float32');
    return { shape: t.shape, px: (t.arraySync() as number[][][][])[0]! };
  } finally {
    t.dispose();
  }
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

const near = (got: number[], want: number[], tol: number, what: string): void =>
  assert.ok(got.every((v, i) => Math.abs(v - want[i]!) <= tol), `${what}: got [${got.map((v) => v.toFixed(3))}], want [${want}] ±${tol}`);

describe('applyOrientation: the 8 EXIF cases on a labelled 2x3 image', () => {
  // stored image (rows): a b c / d e f ; expected upright images per the EXIF 2.32 definitions
  const stored = [
    [1, 2, 3],
    [4, 5, 6],
  ];
  const expected: Record<number, number[][]> = {
    1: [[1, 2, 3], [4, 5, 6]],
    2: [[3, 2, 1], [6, 5, 4]], // mirror left-right
    3: [[6, 5, 4], [3, 2, 1]], // rotate 180
    4: [[4, 5, 6], [1, 2, 3]], // mirror top-bottom
    5: [[1, 4], [2, 5], [3, 6]], // transpose
    6: [[4, 1], [5, 2], [6, 3]], // stored is rotated 90° CCW: turn it 90° clockwise
    7: [[6, 3], [5, 2], [4, 1]], // transverse
    8: [[3, 6], [2, 5], [1, 4]], // stored is rotated 90° CW: turn it 90° counter-clockwise
  };
  for (let o = 1; o <= 8; o++) {
    test(`orientation ${o}`, () => {
      const input = tf.tensor4d(stored.flat(), [1, 2, 3, 1]);
      const out = applyOrientation(input, o);
      assert.deepEqual((out.arraySync() as number[][][][])[0]!.map((row) => row.map((p) => p[0])), expected[o]);
      assert.notEqual(out, input, 'returns a new tensor the caller owns');
      tf.dispose([input, out]);
    });
  }
  test('orientation outside 1..8 is a programming error', () => {
    const input = tf.zeros([1, 1, 1, 1]) as tf.Tensor4D;
    assert.throws(() => applyOrientation(input, 9), RangeError);
    input.dispose();
  });
});

describe('toModelInput: EXIF orientation fixtures all come out upright and identical', () => {
  const decoded = Array.from({ length: 8 }, (_, i) => decodeImage(fixture(`orient-${i + 1}.jpg`), LIMIT));

  for (const resize of ['squash', 'crop'] as const) {
    test(`${resize}: all 8 match orientation 1, and the chart's corners are where they belong`, () => {
      const inputSize: [number, number] = resize === 'squash' ? [48, 64] : [48, 48];
      const spec: PreprocessSpec = { inputSize, valueRange: RAW, resize };
      const reference = toModelInput(decoded[0]!, spec);
      const [, h, w] = reference.shape;
      const px = (reference.arraySync() as number[][][][])[0]!;
      // 64x48 chart of 16px cells; crop keeps columns 8..55, so corner cells are 8px wide there
      near(px[4]![4]!, [255, 0, 0], 6, 'top-left red');
      near(px[4]![w - 5]!, [0, 255, 0], 6, 'top-right green');
      near(px[h - 5]![4]!, [0, 0, 255], 6, 'bottom-left blue');
      near(px[h - 5]![w - 5]!, [255, 255, 0], 6, 'bottom-right yellow');
      near(px[24]![24]!, [128, 128, 128], 6, 'centre grey');
      for (let o = 2; o <= 8; o++) {
        const out = toModelInput(decoded[o - 1]!, spec);
        assert.deepEqual(out.shape, [1, ...inputSize, 3], `orientation ${o} shape`);
        // same pixels up to JPEG re-encoding noise (each file was compressed in its own rotation)
        const diff = maxAbsDiff(out, reference);
        assert.ok(diff <= 12, `orientation ${o}: max difference ${diff}`);
        out.dispose();
      }
      reference.dispose();
    });
  }
});

describe('toModelInput: resizing', () => {
  // 8x4: columns 0-1 red, 2-5 green, 6-7 blue
  const stripes = synthetic(8, 4, (x) => (x < 2 ? [255, 0, 0] : x < 6 ? [0, 255, 0] : [0, 0, 255]));

  test('squash keeps the whole width: red | green | green | blue', () => {
    const { shape, px } = run(stripes, { inputSize: [4, 4], valueRange: RAW, resize: 'squash' });
    assert.deepEqual(shape, [1, 4, 4, 3]);
    for (const row of px) assert.deepEqual(row, [[255, 0, 0], [0, 255, 0], [0, 255, 0], [0, 0, 255]]);
  });

  test('crop keeps the centre square: all green', () => {
    const { shape, px } = run(stripes, { inputSize: [4, 4], valueRange: RAW, resize: 'crop' });
    assert.deepEqual(shape, [1, 4, 4, 3]);
    for (const row of px) for (const p of row) assert.deepEqual(p, [0, 255, 0]);
  });

  test('non-square output sizes are [height, width]', () => {
    assert.deepEqual(run(stripes, { inputSize: [3, 5], valueRange: RAW, resize: 'squash' }).shape, [1, 3, 5, 3]);
    assert.deepEqual(run(stripes, { inputSize: [2, 7], valueRange: RAW, resize: 'crop' }).shape, [1, 2, 7, 3]);
    const rotated = { ...stripes, orientation: 6 };
    assert.deepEqual(run(rotated, { inputSize: [3, 5], valueRange: RAW, resize: 'squash' }).shape, [1, 3, 5, 3]);
  });

  test('bilinear with half-pixel centres: a 2-pixel ramp resized to 4 is [0, 64, 191, 255]... in 0..255', () => {
    const ramp = synthetic(2, 1, (x) => (x === 0 ? [0, 0, 0] : [255, 255, 255]));
    const { px } = run(ramp, { inputSize: [1, 4], valueRange: RAW, resize: 'squash' });
    // output centres at input x = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1)
    near(px[0]!.map((p) => p[0]!), [0, 63.75, 191.25, 255], 1e-3, 'ramp');
  });

  test('upscaling a single pixel fills the output', () => {
    const { px } = run(synthetic(1, 1, () => [10, 20, 30]), { inputSize: [3, 3], valueRange: RAW, resize: 'crop' });
    for (const row of px) for (const p of row) near(p, [10, 20, 30], 1e-4, 'pixel');
  });

  test('alpha is dropped, RGB kept as stored', () => {
    const img = synthetic(2, 2, () => [200, 100, 50]);
    img.data.fill(0, 3, 4); // first pixel fully transparent
    const { shape, px } = run(img, { inputSize: [2, 2], valueRange: RAW, resize: 'squash' });
    assert.deepEqual(shape, [1, 2, 2, 3]);
    near(px[0]![0]!, [200, 100, 50], 1e-4, 'transparent pixel');
  });
});

test('toModelInput equals the naive order (orient the full image, crop, resize) for every orientation', () => {
  // Odd sizes make the centre-crop offsets round; the implementation crops and resizes in stored coordinates
  // and orients only the small result, which must not change a single value.
  let seed = 7;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
  for (const [w, h] of [[7, 4], [5, 9], [6, 6]] as const) {
    const base = synthetic(w, h, () => [rand(), rand(), rand()]);
    for (let o = 1; o <= 8; o++) {
      const img = { ...base, orientation: o };
      for (const resize of ['squash', 'crop'] as const) {
        for (const inputSize of [[3, 4], [10, 5], [4, 4]] as [number, number][]) {
          const spec: PreprocessSpec = { inputSize, valueRange: [-1, 1], resize };
          const got = toModelInput(img, spec);
          const want = naive(img, spec);
          const diff = maxAbsDiff(got, want);
          assert.ok(diff < 1e-4, `${w}x${h} orientation ${o} ${resize} ${inputSize}: differs by ${diff}`);
          tf.dispose([got, want]);
        }
      }
    }
  }
});

/** The definition, step by step, on the full-size image. */
function naive(img: DecodedImage, spec: PreprocessSpec): tf.Tensor4D {
  return tf.tidy(() => {
    const rgb = tf.slice(tf.tensor4d(img.data, [1, img.height, img.width, 4], 'float32'), [0, 0, 0, 0], [1, img.height, img.width, 3]);
    let upright = applyOrientation(rgb, img.orientation);
    const [, h, w] = upright.shape;
    if (spec.resize === 'crop') {
      const s = Math.min(h, w);
      upright = tf.slice(upright, [0, Math.floor((h - s) / 2), Math.floor((w - s) / 2), 0], [1, s, s, 3]);
    }
    const resized = tf.image.resizeBilinear(upright, spec.inputSize, false, true);
    const [lo, hi] = spec.valueRange;
    return tf.add(tf.mul(resized, (hi - lo) / 255), lo) as tf.Tensor4D;
  });
}

describe('toModelInput: value range', () => {
  const img = synthetic(3, 1, (x) => [[0, 51, 255][x]!, 255, 0]);
  const cases: [[number, number], number[]][] = [
    [[0, 1], [0, 0.2, 1]],
    [[-1, 1], [-1, -0.6, 1]],
    [[0, 255], [0, 51, 255]],
    [[-123.5, 10], [-123.5, -96.8, 10]],
  ];
  for (const [range, want] of cases) {
    test(`[${range}]`, () => {
      const { px } = run(img, { inputSize: [1, 3], valueRange: range, resize: 'squash' });
      near(px[0]!.map((p) => p[0]!), want, 1e-4, 'red channel');
      near(px[0]!.map((p) => p[1]!), [range[1], range[1], range[1]], 1e-4, 'green channel (255)');
      near(px[0]!.map((p) => p[2]!), [range[0], range[0], range[0]], 1e-4, 'blue channel (0)');
    });
  }
});

describe('toModelInput: tensors and arguments', () => {
  test('no tensor leaks over 50 calls (squash, crop, rotated, real fixture)', () => {
    const images = [decodeImage(fixture('orient-6.jpg'), LIMIT), decodeImage(fixture('png-rgba8.png'), LIMIT)];
    const warm = toModelInput(images[0]!, { inputSize: [224, 224], valueRange: [-1, 1], resize: 'crop' });
    warm.dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) {
      const out = toModelInput(images[i % 2]!, { inputSize: [224, 224], valueRange: [-1, 1], resize: i % 3 === 0 ? 'squash' : 'crop' });
      assert.deepEqual(out.shape, [1, 224, 224, 3]);
      out.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });

  test('bad specs and images are programming errors (RangeError), and leak nothing', () => {
    const img = synthetic(2, 2, () => [1, 2, 3]);
    const ok: PreprocessSpec = { inputSize: [2, 2], valueRange: [0, 1], resize: 'squash' };
    const before = tf.memory().numTensors;
    const bad: [string, () => unknown][] = [
      ['size 0', () => toModelInput(img, { ...ok, inputSize: [0, 2] })],
      ['fractional size', () => toModelInput(img, { ...ok, inputSize: [2.5, 2] })],
      ['empty range', () => toModelInput(img, { ...ok, valueRange: [1, 1] })],
      ['NaN range', () => toModelInput(img, { ...ok, valueRange: [0, Number.NaN] })],
      ['resize mode', () => toModelInput(img, { ...ok, resize: 'stretch' as never })],
      ['short data', () => toModelInput({ ...img, data: img.data.subarray(1) }, ok)],
      ['orientation 0', () => toModelInput({ ...img, orientation: 0 }, ok)],
    ];
    for (const [name, fn] of bad) assert.throws(fn, RangeError, name);
    assert.equal(tf.memory().numTensors, before);
  });
});

const PHOTO = path.resolve(__dirname, '../../../shared/data/photos/fish/fish1.jpg');

test('smoke: a real photo to a MobileNet-style input', { skip: !existsSync(PHOTO) && `${PHOTO} not present` }, () => {
  const img = decodeImage(new Uint8Array(readFileSync(PHOTO)), LIMIT);
  for (const resize of ['squash', 'crop'] as const) {
    const t = toModelInput(img, { inputSize: [224, 224], valueRange: [-1, 1], resize });
    assert.deepEqual(t.shape, [1, 224, 224, 3]);
    const [min, max, mean] = tf.tidy(() => [tf.min(t), tf.max(t), tf.mean(t)].map((x) => x.dataSync()[0]!));
    assert.ok(min! >= -1 && max! <= 1, `range ${min}..${max}`);
    assert.ok(max! - min! > 1, 'a photo has contrast');
    // the photo's mean colour is about (117.5 + 124.8 + 129.4) / 3 = 123.9 of 255, i.e. -0.03 in [-1, 1]
    if (resize === 'squash') assert.ok(Math.abs(mean! - (123.9 / 127.5 - 1)) < 0.02, `mean ${mean}`);
    t.dispose();
  }
});

describe('toModelInput: the reused float32 buffer', () => {
  /** The reference: the same resize and scaling from a freshly converted tensor. */
  const reference = (img: DecodedImage) =>
    tf.tidy(() => tf.div(tf.slice(tf.image.resizeBilinear(tf.tensor4d(Float32Array.from(img.data), [1, img.height, img.width, 4]), [8, 8], false, true), [0, 0, 0, 0], [1, 8, 8, 3]), 255));
  const spec: PreprocessSpec = { inputSize: [8, 8], valueRange: [0, 1], resize: 'squash' };

  test('images of different sizes in turn (smaller after larger, then the larger again) each give their own result', () => {
    const big = synthetic(40, 30, (x, y) => [(x * 7) % 256, (y * 11) % 256, (x * y) % 256]);
    const small = synthetic(12, 10, (x, y) => [255 - x * 9, y * 20, 128]);
    const first = toModelInput(big, spec);
    for (const img of [small, big, small]) {
      const got = toModelInput(img, spec);
      const want = reference(img);
      assert.ok(maxAbsDiff(got, want) < 1e-5, `${img.width}x${img.height}`);
      tf.dispose([got, want]);
    }
    const again = toModelInput(big, spec);
    assert.equal(maxAbsDiff(first, again), 0, 'the first result was not changed by later calls');
    tf.dispose([first, again]);
  });

  test('an image above the buffer cap (2^21 values) is converted on its own, with the same result', () => {
    const wide = synthetic(1100, 480, (x, y) => [x % 256, y % 256, (x + y) % 256]); // 2,112,000 values
    const got = toModelInput(wide, spec);
    const want = reference(wide);
    assert.ok(maxAbsDiff(got, want) < 1e-4);
    tf.dispose([got, want]);
  });
});
