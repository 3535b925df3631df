/**
 * The region of interest (preprocess.region, a head's manifest.region): the pixel math (rounding, clamping, the
 * stored box under every EXIF orientation), the crop before resizing in both modes against a naive reference, the
 * decode size a region needs, the manifest field's validation, and which region a frame uses (its head's, else the
 * config's). CPU backend, synthetic images.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { EventBus } from '../../agent/events';
import { FrameLoop } from '../../agent/frames/frame-loop';
import { PredictionFilter } from '../../agent/frames/prediction-filter';
import { type DecodedImage, toModelInput } from '../../agent/image';
import { centreSquare, decodeTargetSize, regionPixels, storedBox } from '../../agent/image/preprocess';
import { Classifier } from '../../agent/inference/classifier';
import { DenseHead } from '../../agent/inference/dense-head';
import { FrameStats } from '../../agent/telemetry/stats';
import { configureLogging } from '../../base/log';
import type { Region } from '../../protocol/dataset';
import { decodeHead, encodeHead, makeHeadFile } from '../../protocol/head/format';
import { regionOutside, validateManifest } from '../../protocol/head/manifest';
import { MEAN_RGB_INFO, meanRgbExtractor, ScriptedSource } from '../support/agent-parts';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
  await tf.ready();
});

describe('regionPixels: fractions -> pixels', () => {
  test('edges round to the nearest pixel', () => {
    assert.deepEqual(regionPixels(640, 480, [0.1, 0.2, 0.5, 0.5]), { left: 64, top: 96, width: 320, height: 240 });
    // 10 px: [1.4, 2.6) -> [1, 3)
    assert.deepEqual(regionPixels(10, 10, [0.14, 0.14, 0.12, 0.12]), { left: 1, top: 1, width: 2, height: 2 });
    // 0.35 * 10 = 3.5 -> 4 (round half up), 0.75 * 10 = 7.5 -> 8
    assert.deepEqual(regionPixels(10, 4, [0.35, 0, 0.4, 1]), { left: 4, top: 0, width: 4, height: 4 });
  });

  test('no region is the whole image; a region thinner than a pixel keeps one pixel, inside the image', () => {
    assert.deepEqual(regionPixels(7, 5, undefined), { left: 0, top: 0, width: 7, height: 5 });
    assert.deepEqual(regionPixels(10, 10, [0.5, 0, 0.01, 1]), { left: 5, top: 0, width: 1, height: 10 });
    assert.deepEqual(regionPixels(10, 10, [0.99, 0.99, 0.01, 0.01]), { left: 9, top: 9, width: 1, height: 1 });
  });

  test('float rounding past the edge is clamped to the image', () => {
    assert.deepEqual(regionPixels(3, 3, [0.7, 0.7, 0.30000000001, 0.30000000001]), { left: 2, top: 2, width: 1, height: 1 });
    assert.deepEqual(regionPixels(100, 100, [0, 0, 1, 1]), { left: 0, top: 0, width: 100, height: 100 });
  });

  test('centreSquare of a region: offsets rounded down', () => {
    assert.deepEqual(centreSquare({ left: 10, top: 20, width: 7, height: 4 }), { left: 11, top: 20, width: 4, height: 4 });
    assert.deepEqual(centreSquare({ left: 0, top: 0, width: 3, height: 8 }), { left: 0, top: 2, width: 3, height: 3 });
  });
});

describe('storedBox: the region in the stored image for every EXIF orientation', () => {
  // orientation 6 (view rotated 90° clockwise): a stored 4x2 (w x h) image is upright 2x4; upright pixel (col c,
  // row r) is stored (col r, row 1 - c). The upright top half [0, 0, 1, 0.5] = upright rows 0..1 = stored columns 0..1.
  test('orientation 6: the upright top half is the stored left half', () => {
    assert.deepEqual(storedBox(4, 2, 6, [0, 0, 1, 0.5]), { left: 0, top: 0, width: 2, height: 2 });
    // upright left column (c = 0) = stored row 1
    assert.deepEqual(storedBox(4, 2, 6, [0, 0, 0.5, 1]), { left: 0, top: 1, width: 4, height: 1 });
  });

  test('orientation 3 (180°): mirrored on both axes', () => {
    assert.deepEqual(storedBox(10, 10, 3, [0, 0, 0.3, 0.2]), { left: 7, top: 8, width: 3, height: 2 });
  });

  test('an unknown orientation is refused', () => {
    assert.throws(() => storedBox(4, 4, 9, undefined), /orientation must be 1..8/);
  });
});

/** A synthetic RGBA image; alpha 255. */
function synthetic(width: number, height: number, rgb: (x: number, y: number) => [number, number, number], orientation = 1): DecodedImage {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([...rgb(x, y), 255], (y * width + x) * 4);
  return { width, height, data, orientation, format: 'png', fileWidth: width, fileHeight: height, decoder: 'pngjs' };
}

/** EXIF: upright = flip(transpose(stored)) with these steps (the standard's table, written out independently). */
const EXIF: Record<number, [transpose: boolean, flipRows: boolean, flipCols: boolean]> = {
  1: [false, false, false], 2: [false, false, true], 3: [false, true, true], 4: [false, true, false],
  5: [true, false, false], 6: [true, false, true], 7: [true, true, true], 8: [true, true, false],
};

/** The naive order: turn the whole stored image upright in JavaScript, then cut the region's pixels out of it. */
function uprightCrop(img: DecodedImage, region: Region): DecodedImage {
  const [transpose, flipRows, flipCols] = EXIF[img.orientation]!;
  const [uw, uh] = transpose ? [img.height, img.width] : [img.width, img.height];
  const box = regionPixels(uw, uh, region);
  return synthetic(box.width, box.height, (x, y) => {
    let r = box.top + y;
    let c = box.left + x;
    if (flipRows) r = uh - 1 - r;
    if (flipCols) c = uw - 1 - c;
    const [sx, sy] = transpose ? [r, c] : [c, r];
    const p = (sy * img.width + sx) * 4;
    return [img.data[p]!, img.data[p + 1]!, img.data[p + 2]!];
  });
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('toModelInput with a region', () => {
  const pattern = (x: number, y: number): [number, number, number] => [(x * 37 + y * 11) % 256, (x * 5 + y * 53) % 256, (x * y) % 256];
  const region: Region = [0.15, 0.3, 0.6, 0.45];

  for (const resize of ['squash', 'crop'] as const) {
    test(`${resize}: equals orienting the whole image, cropping the region, then resizing (all 8 orientations)`, () => {
      for (let o = 1; o <= 8; o++) {
        const img = synthetic(23, 17, pattern, o);
        const spec = { inputSize: [6, 5] as [number, number], valueRange: [0, 1] as [number, number], resize };
        const got = toModelInput(img, { ...spec, region });
        const want = toModelInput(uprightCrop(img, region), spec);
        try {
          assert.deepEqual(got.shape, [1, 6, 5, 3]);
          assert.ok(maxAbsDiff(got, want) < 1e-5, `orientation ${o}: max difference ${maxAbsDiff(got, want)}`);
        } finally {
          got.dispose();
          want.dispose();
        }
      }
    });
  }

  test('the crop changes what the model sees: the right half of a red|blue frame is all blue', () => {
    const img = synthetic(40, 20, (x) => (x < 20 ? [255, 0, 0] : [0, 0, 255]));
    const spec = { inputSize: [4, 4] as [number, number], valueRange: [0, 255] as [number, number], resize: 'squash' as const };
    const mean = (r?: Region) => tf.tidy(() => Array.from(tf.mean(toModelInput(img, { ...spec, region: r }), [0, 1, 2]).dataSync()));
    assert.deepEqual(mean([0.5, 0, 0.5, 1]), [0, 0, 255]);
    assert.deepEqual(mean([0, 0, 0.5, 1]), [255, 0, 0]);
    const whole = mean();
    assert.ok(whole[0]! > 100 && whole[2]! > 100, `the whole frame has both: ${whole}`);
  });

  test('no tensor leaks; a region outside the frame is refused', () => {
    const img = synthetic(8, 8, pattern);
    const before = tf.memory().numTensors;
    toModelInput(img, { inputSize: [3, 3], valueRange: [0, 1], resize: 'crop', region: [0.25, 0.25, 0.5, 0.5] }).dispose();
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => toModelInput(img, { inputSize: [3, 3], valueRange: [0, 1], resize: 'squash', region: [0.5, 0, 0.6, 1] }), /x \+ w <= 1/);
    assert.throws(() => toModelInput(img, { inputSize: [3, 3], valueRange: [0, 1], resize: 'squash', region: [0, 0, 0, 1] }), /w, h > 0/);
  });
});

test('decodeTargetSize: a region needs the frame decoded larger, so the region still covers the input', () => {
  assert.deepEqual(decodeTargetSize([224, 224], 'squash'), [224, 224]);
  assert.deepEqual(decodeTargetSize([224, 224], 'squash', [0, 0, 0.5, 0.25]), [896, 448]);
  assert.deepEqual(decodeTargetSize([224, 160], 'crop'), [224, 224]);
  assert.deepEqual(decodeTargetSize([224, 160], 'crop', [0.2, 0, 0.4, 1]), [224, 560]);
  assert.deepEqual(decodeTargetSize([224, 224], 'squash', [0, 0, 0.7, 0.7]), [320, 320], 'no float noise: 224 / 0.7 is 320');
});

describe('manifest.region', () => {
  const input = (region?: Region) => ({
    id: 'h',
    version: 1,
    classes: ['a', 'b'],
    extractor: { id: MEAN_RGB_INFO.id, fingerprint: MEAN_RGB_INFO.fingerprint },
    kernel: new Float32Array(6),
    bias: new Float32Array(2),
    createdAt: new Date('2026-01-01T00:00:00Z'),
    ...(region ? { region } : {}),
  });

  test('makeHeadFile writes it; it survives encode -> decode; a head without it has none', () => {
    const head = decodeHead(encodeHead(makeHeadFile(input([0.25, 0, 0.5, 1]))));
    assert.deepEqual(head.manifest.region, [0.25, 0, 0.5, 1]);
    assert.equal('region' in decodeHead(encodeHead(makeHeadFile(input()))).manifest, false);
  });

  test('validation: 4 numbers in range, inside the frame', () => {
    const manifest = (region: unknown) => ({ ...makeHeadFile(input()).manifest, region });
    assert.doesNotThrow(() => validateManifest(manifest([0.7, 0, 0.3, 1])), 'float rounding at the edge is fine');
    assert.throws(() => validateManifest(manifest([0.5, 0.2, 0.6, 0.5])), /manifest\.region: must lie inside the frame: x \+ w = 1\.1 > 1/);
    assert.throws(() => validateManifest(manifest([0, 0.5, 1, 0.75])), /y \+ h = 1\.25 > 1/);
    assert.throws(() => validateManifest(manifest([0, 0, 0, 1])), /manifest\.region/);
    assert.throws(() => validateManifest(manifest([0, 0, 1])), /manifest\.region/);
    assert.throws(() => validateManifest(manifest('all')), /manifest\.region/);
    assert.throws(() => validateManifest(manifest([-0.1, 0, 0.5, 0.5])), /manifest\.region/);
  });

  test('regionOutside ignores what the schema reports', () => {
    assert.equal(regionOutside(undefined), undefined);
    assert.equal(regionOutside([1, 2]), undefined);
    assert.equal(regionOutside([0, 0, 1, 1]), undefined);
    assert.match(regionOutside([0.5, 0.5, 0.5, 0.6])!, /y \+ h = 1\.1 > 1 \(got \[0\.5,0\.5,0\.5,0\.6\]\)/);
  });
});

test('a frame uses its head\'s region; a swap to a head without one goes back to preprocess.region', () => {
  const headWith = (version: number, region?: Region) => {
    const kernel = new Float32Array(9);
    return DenseHead.fromFile(decodeHead(encodeHead(makeHeadFile({ id: 'r', version, classes: ['red', 'green', 'blue'], extractor: { id: MEAN_RGB_INFO.id, fingerprint: MEAN_RGB_INFO.fingerprint }, kernel, bias: new Float32Array(3), ...(region ? { region } : {}) }))));
  };
  const classifier = new Classifier(meanRgbExtractor(), headWith(1), { resize: 'squash', maxPixels: 1e8, topK: 1 });
  const frames = new FrameLoop({
    source: new ScriptedSource(),
    classifier,
    filter: new PredictionFilter({ minScore: 0, onlyOnChange: false, debounce: 1, unknownLabel: 'unknown', maxIntervalSec: 0 }),
    publish: async () => undefined,
    events: new EventBus(),
    stats: new FrameStats(),
    run: 1,
    extractorId: MEAN_RGB_INFO.id,
    region: [0, 0, 0.5, 0.5],
  });
  assert.deepEqual(frames.regionFor(classifier.head), [0, 0, 0.5, 0.5], 'no head region: the config\'s');
  frames.install(headWith(2, [0.5, 0.5, 0.5, 0.5]));
  assert.deepEqual(frames.regionFor(classifier.head), [0.5, 0.5, 0.5, 0.5], 'the swapped-in head\'s region');
  frames.install(headWith(3));
  assert.deepEqual(frames.regionFor(classifier.head), [0, 0, 0.5, 0.5], 'back to the config\'s');
  frames.dispose();
});

test('the prediction follows the head\'s region: the same frame is "red" on the left half, "blue" on the right', async () => {
  const { PNG } = await import('pngjs');
  const png = new PNG({ width: 64, height: 32 });
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 64; x++) {
      const i = (y * 64 + x) * 4;
      png.data[i] = x < 32 ? 255 : 0;
      png.data[i + 2] = x < 32 ? 0 : 255;
      png.data[i + 3] = 255;
    }
  }
  const frame = new Uint8Array(PNG.sync.write(png));
  const head = (version: number, region?: Region) => {
    const kernel = new Float32Array(9);
    for (let i = 0; i < 3; i++) kernel[i * 3 + i] = 10;
    return DenseHead.fromFile(decodeHead(encodeHead(makeHeadFile({ id: 'r', version, classes: ['red', 'green', 'blue'], extractor: { id: MEAN_RGB_INFO.id, fingerprint: MEAN_RGB_INFO.fingerprint }, kernel, bias: new Float32Array(3), ...(region ? { region } : {}) }))));
  };
  const left = head(1, [0, 0, 0.5, 1]);
  const right = head(2, [0.5, 0, 0.5, 1]);
  const plain = head(3);
  const classifier = new Classifier(meanRgbExtractor(), left, { resize: 'squash', maxPixels: 1e8, topK: 1 });
  // preprocess.region applies to a head without one
  const configured = new Classifier(meanRgbExtractor(), plain, { resize: 'squash', maxPixels: 1e8, topK: 1, region: [0.5, 0, 0.5, 1] });
  const before = tf.memory().numTensors;
  assert.equal(classifier.classify(frame, left).predictions[0]!.label, 'red');
  assert.equal(classifier.classify(frame, right).predictions[0]!.label, 'blue');
  assert.equal(configured.classify(frame).predictions[0]!.label, 'blue');
  assert.equal(configured.classify(frame, left).predictions[0]!.label, 'red', 'the head\'s region beats preprocess.region');
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked by classify');
  for (const h of [left, right, plain]) h.dispose();
});
