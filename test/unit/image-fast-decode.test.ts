import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import * as jpeg from 'jpeg-js';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { decodeImage, initImageCodecs, toModelInput, type DecodedImage } from '../../agent/image';
import { jpegScale } from '../../agent/image/decode';
import { JpegTurbo } from '../../agent/image/jpeg-turbo';
import { EdgeheadError } from '../../base/errors';

// The fast JPEG path (libjpeg-turbo in WASM, DCT-domain scaling) and its fallbacks to jpeg-js. The chart fixtures
// are described in test/fixtures/images/README.md: 64x48, 16x16 cells, red/green/blue/yellow corners, grey inside.
const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const SAMPLES = path.resolve(__dirname, '../../assets/samples');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));
const LIMIT = { maxPixels: 1_000_000 };
const samplePhotos = (): string[] =>
  readdirSync(SAMPLES, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => readdirSync(path.join(SAMPLES, d.name)).filter((f) => f.endsWith('.jpg')).map((f) => path.join(SAMPLES, d.name, f)));

/** The same decode through jpeg-js alone: the reference the fast path must match. */
function referenceDecode(bytes: Uint8Array): { width: number; height: number; data: Uint8Array } {
  return jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, tolerantDecoding: true });
}

/** Mean and max absolute difference over the RGB channels of two same-sized RGBA buffers. */
function rgbDiff(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    if (i % 4 === 3) continue;
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / ((a.length / 4) * 3), max };
}

function pixel(img: DecodedImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 4;
  return Array.from(img.data.subarray(i, i + 4));
}

/** A 640x480 camera-like frame: smooth gradients, edges and some noise, encoded by jpeg-js at quality 90. */
function frame640(): Uint8Array {
  const [w, h] = [640, 480];
  const data = new Uint8Array(w * h * 4);
  let seed = 1;
  const noise = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 17) - 8;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      const stripe = ((x >> 5) + (y >> 5)) % 2 ? 60 : 0;
      data[i] = Math.max(0, Math.min(255, (x * 255) / w + noise()));
      data[i + 1] = Math.max(0, Math.min(255, (y * 255) / h - stripe + 60 + noise()));
      data[i + 2] = Math.max(0, Math.min(255, 128 + stripe + noise()));
      data[i + 3] = 255;
    }
  }
  return new Uint8Array(jpeg.encode({ width: w, height: h, data }, 90).data);
}

function assertFails(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof EdgeheadError && e.code === code && re.test(e.message));
}

function findMarker(b: Uint8Array, marker: number, from = 2): number {
  for (let i = from; i + 1 < b.length; i++) if (b[i] === 0xff && b[i + 1] === marker) return i;
  throw new Error(`marker ${marker.toString(16)} not found`);
}

describe('decodeImage: libjpeg-turbo (WASM) fast path', () => {
  test('is available from node_modules, as in the bundle', () => {
    const codecs = initImageCodecs();
    assert.equal(codecs.jpeg, 'libjpeg-turbo', codecs.note);
    assert.match(codecs.wasmPath ?? '', /jpeg-turbo\.wasm$/);
  });

  test('decodes baseline, progressive, greyscale, RGB and EXIF-rotated JPEGs; PNG stays with pngjs', () => {
    for (const name of ['jpeg-baseline.jpg', 'jpeg-progressive.jpg', 'jpeg-gray.jpg', 'jpeg-rgb.jpg', 'orient-6.jpg']) {
      const img = decodeImage(fixture(name), LIMIT);
      assert.equal(img.decoder, 'libjpeg-turbo', name);
      assert.deepEqual([img.fileWidth, img.fileHeight], [img.width, img.height], name);
    }
    assert.equal(decodeImage(fixture('png-rgb8.png'), LIMIT).decoder, 'pngjs');
  });

  test('matches jpeg-js on every bundled sample photo: mean difference under 1 level, max 8', () => {
    // Both use replicated (not interpolated) chroma; what remains is IDCT rounding (measured: mean ~0.5, max 3-4)
    const photos = samplePhotos();
    assert.ok(photos.length >= 10, `only ${photos.length} sample photos`);
    for (const file of photos) {
      const bytes = new Uint8Array(readFileSync(file));
      const img = decodeImage(bytes, { maxPixels: 1e7 });
      const ref = referenceDecode(bytes);
      assert.equal(img.decoder, 'libjpeg-turbo');
      assert.deepEqual([img.width, img.height], [ref.width, ref.height]);
      const { mean, max } = rgbDiff(img.data, ref.data);
      assert.ok(mean < 1 && max <= 8, `${path.basename(file)}: mean ${mean.toFixed(3)}, max ${max}`);
    }
  });

  test('matches jpeg-js on a 640x480 frame, and on the chart fixtures exactly', () => {
    const bytes = frame640();
    const { mean, max } = rgbDiff(decodeImage(bytes, LIMIT).data, referenceDecode(bytes).data);
    assert.ok(mean < 1 && max <= 8, `mean ${mean.toFixed(3)}, max ${max}`);
    for (const name of ['jpeg-baseline.jpg', 'jpeg-progressive.jpg', 'jpeg-gray.jpg']) {
      assert.deepEqual(rgbDiff(decodeImage(fixture(name), LIMIT).data, referenceDecode(fixture(name)).data).max, 0, name);
    }
  });
});

describe('decodeImage: DCT-domain scaling (targetSize)', () => {
  test('jpegScale: the smallest M/8 whose upright size still covers the target', () => {
    assert.equal(jpegScale(640, 480, 1, [224, 224]), 4); // 320x240
    assert.equal(jpegScale(1280, 720, 1, [224, 224]), 3); // 480x270; 1/4 would be 320x180
    assert.equal(jpegScale(1920, 1080, 1, [224, 224]), 2); // 480x270
    assert.equal(jpegScale(320, 240, 1, [224, 224]), 8); // 7/8 is 280x210: too short
    assert.equal(jpegScale(320, 256, 1, [224, 224]), 7); // 280x224: just covers it
    assert.equal(jpegScale(64, 48, 1, [1000, 1000]), 8, 'never upscales');
    // stored 480x640 shown rotated (orientation 6) is 640 wide: the wide target side needs 5/8, not 7/8
    assert.equal(jpegScale(480, 640, 6, [300, 400]), 5);
    assert.equal(jpegScale(480, 640, 1, [300, 400]), 7);
  });

  test('a 640x480 frame for a 224x224 model decodes at 1/2 = 320x240, close to a 2x2 average of the full decode', () => {
    const bytes = frame640();
    const half = decodeImage(bytes, { ...LIMIT, targetSize: [224, 224] });
    assert.deepEqual([half.width, half.height, half.fileWidth, half.fileHeight, half.decoder], [320, 240, 640, 480, 'libjpeg-turbo']);
    const full = decodeImage(bytes, LIMIT);
    const box = new Uint8Array(320 * 240 * 4);
    for (let y = 0; y < 240; y++) {
      for (let x = 0; x < 320; x++) {
        for (let c = 0; c < 4; c++) {
          const at = (dy: number, dx: number): number => full.data[((2 * y + dy) * 640 + 2 * x + dx) * 4 + c]!;
          box[(y * 320 + x) * 4 + c] = Math.round((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4);
        }
      }
    }
    const { mean } = rgbDiff(half.data, box);
    assert.ok(mean < 1.5, `mean difference to the 2x2 average: ${mean.toFixed(3)}`);
  });

  test('sizes round up like libjpeg, and the chart survives 3/8 scaling', () => {
    const img = decodeImage(fixture('jpeg-baseline.jpg'), { ...LIMIT, targetSize: [18, 24] });
    assert.deepEqual([img.width, img.height, img.fileWidth, img.fileHeight], [24, 18, 64, 48]); // ceil(64*3/8), ceil(48*3/8)
    // 16px cells are 6px now: cell centres at 3 and 21 (x), 3 and 15 (y)
    const near = (got: number[], want: number[]): boolean => got.every((v, i) => Math.abs(v - want[i]!) <= 8);
    assert.ok(near(pixel(img, 3, 3), [255, 0, 0, 255]), `top-left ${pixel(img, 3, 3)}`);
    assert.ok(near(pixel(img, 21, 3), [0, 255, 0, 255]), `top-right ${pixel(img, 21, 3)}`);
    assert.ok(near(pixel(img, 3, 15), [0, 0, 255, 255]), `bottom-left ${pixel(img, 3, 15)}`);
    assert.ok(near(pixel(img, 21, 15), [255, 255, 0, 255]), `bottom-right ${pixel(img, 21, 15)}`);
  });

  test('the EXIF orientation decides which stored side must cover which target side', () => {
    // orient-6.jpg is stored 48x64 and shown 64x48; [30, 40] upright is covered at 5/8: stored 30x40
    const img = decodeImage(fixture('orient-6.jpg'), { ...LIMIT, targetSize: [30, 40] });
    assert.deepEqual([img.width, img.height, img.orientation], [30, 40, 6]);
    // and the model input comes out upright, like the unscaled orientation-1 file
    const spec = { inputSize: [24, 32] as [number, number], valueRange: [0, 255] as [number, number], resize: 'squash' as const };
    const [got, want] = [toModelInput(img, spec), toModelInput(decodeImage(fixture('orient-1.jpg'), LIMIT), spec)];
    const diff = tf.tidy(() => tf.mean(tf.abs(tf.sub(got, want))).dataSync()[0]!);
    tf.dispose([got, want]);
    assert.ok(diff < 6, `mean difference ${diff}`);
  });

  test('where the fast path is not used (CMYK goes to jpeg-js) and for PNG: full size, then shrunk by a whole factor', () => {
    // 64x48 for [8, 8]: factor 6 (48 / 6 = 8) gives ceil(64 / 6) x 8 = 11x8
    const cmyk = decodeImage(fixture('jpeg-cmyk.jpg'), { ...LIMIT, targetSize: [8, 8] });
    assert.deepEqual([cmyk.width, cmyk.height, cmyk.fileWidth, cmyk.decoder], [11, 8, 64, 'jpeg-js']);
    const png = decodeImage(fixture('png-rgb8.png'), { ...LIMIT, targetSize: [8, 8] });
    assert.deepEqual([png.width, png.height, png.fileWidth, png.decoder], [11, 8, 64, 'pngjs']);
    const full = decodeImage(fixture('png-rgb8.png'), { ...LIMIT, targetSize: [25, 8] }); // 48 / 2 < 25
    assert.deepEqual([full.width, full.height], [64, 48]);
  });

  test('targetSize must be two positive integers', () => {
    for (const targetSize of [[0, 10], [1.5, 2], [10], [Number.NaN, 3]]) {
      assert.throws(() => decodeImage(fixture('jpeg-baseline.jpg'), { ...LIMIT, targetSize: targetSize as [number, number] }), RangeError);
    }
  });
});

describe('decodeImage: falling back to jpeg-js', () => {
  test('CMYK and YCCK (TurboJPEG cannot convert them to RGB)', () => {
    for (const name of ['jpeg-cmyk.jpg', 'jpeg-ycck.jpg']) {
      const img = decodeImage(fixture(name), LIMIT);
      assert.equal(img.decoder, 'jpeg-js', name);
      assert.deepEqual(pixel(img, 8, 8).map((v, i) => Math.abs(v - [255, 0, 0, 255][i]!) <= 4), [true, true, true, true], name);
    }
  });

  test('data libjpeg warns about but jpeg-js tolerates (junk before the end marker) still decodes, via jpeg-js', () => {
    const b = fixture('jpeg-baseline.jpg');
    const junk = new Uint8Array([...b.subarray(0, b.length - 2), 1, 2, 3, 0xff, 0xd9]);
    const img = decodeImage(junk, LIMIT);
    assert.equal(img.decoder, 'jpeg-js');
    assert.deepEqual(pixel(img, 56, 40).slice(0, 2).map((v) => v > 250), [true, true], 'bottom-right yellow');
  });

  test('data both refuse fails with jpeg-js\'s BAD_IMAGE message, as before the fast path', () => {
    const b = fixture('jpeg-baseline.jpg');
    const sos = findMarker(b, 0xda);
    const cut = new Uint8Array([...b.subarray(0, sos + Math.floor((b.length - sos) / 2)), 0xff, 0xd9]);
    assertFails(() => decodeImage(cut, { ...LIMIT, targetSize: [24, 32] }), 'BAD_IMAGE', /^truncated or corrupt JPEG: /);
  });

  test('the decoder recovers from fatal libjpeg errors: 300 in a row, then a clean decode', () => {
    // A second frame header is fatal in libjpeg (jpeg-js then refuses its size). Each fatal error unwinds the WASM
    // stack by a JavaScript exception; reusing that instance would crash after ~225 of them (measured), so the
    // decoder must start a fresh one after every failure.
    const b = fixture('jpeg-baseline.jpg');
    const sof = findMarker(b, 0xc0);
    const end = sof + 2 + ((b[sof + 2]! << 8) | b[sof + 3]!);
    const huge = [0xff, 0xc0, 0x00, 0x11, 0x08, 0x86, 0xa0, 0x86, 0xa0, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01];
    const spliced = new Uint8Array([...b.subarray(0, end), ...huge, ...b.subarray(end)]);
    const turbo = JpegTurbo.load();
    const clean = turbo.decode(b, { width: 64, height: 48 }).data;
    for (let i = 0; i < 300; i++) {
      assert.throws(() => turbo.decode(spliced, { width: 64, height: 48 }), /libjpeg-turbo: fatal decoder error/);
      assertFails(() => decodeImage(spliced, LIMIT), 'IMAGE_TOO_LARGE', /maxResolutionInMP/);
    }
    assert.deepEqual(turbo.decode(b, { width: 64, height: 48 }).data, clean);
    assert.equal(decodeImage(b, LIMIT).decoder, 'libjpeg-turbo');
  });
});

describe('JpegTurbo', () => {
  test('load names what it looked for when the .wasm is missing', () => {
    assert.throws(() => JpegTurbo.load('/nonexistent/jpeg-turbo.wasm'), /ENOENT.*jpeg-turbo\.wasm/);
  });

  test('refuses a frame whose size differs from the caller\'s header, and scales outside 1..8', () => {
    const turbo = JpegTurbo.load();
    assert.throws(() => turbo.decode(fixture('jpeg-baseline.jpg'), { width: 65, height: 48 }), /reads a 64x48 frame, the header says 65x48/);
    assert.throws(() => turbo.decode(fixture('jpeg-baseline.jpg'), { width: 64, height: 48 }, 0), RangeError);
    assert.throws(() => turbo.decode(fixture('jpeg-baseline.jpg'), { width: 64, height: 48 }, 9), RangeError);
  });
});
