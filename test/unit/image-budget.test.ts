/** Decode memory bounds (agent/image/budget.ts): per-decoder pixel limits from one memory budget, checked from the
 * header, and the integer box shrink that keeps full-size float tensors from being built. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { crc32 } from '../../base/crc32';
import { EdgeheadError } from '../../base/errors';
import { decodeImage } from '../../agent/image';
import { DECODE_BUDGET_BYTES, JPEG_JS_BYTES_PER_PIXEL, boxShrink, budgetPixels, pngBytesPerPixel, shrinkFactor } from '../../agent/image/budget';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));
/** The default of preprocess.maxPixels: every image below is under it, so only the per-decoder budget can refuse. */
const DEFAULT_MAX_PIXELS = { maxPixels: 40_000_000 };

/** The signature and IHDR of a PNG, nothing more: enough for a refusal from the header. */
function pngHeader(width: number, height: number, bitDepth: number, colorType: number, interlace = 0): Uint8Array {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(width, 8);
  ihdr.writeUInt32BE(height, 12);
  ihdr.set([bitDepth, colorType, 0, 0, interlace], 16);
  ihdr.writeUInt32BE(crc32(ihdr.subarray(4, 21)), 21);
  return new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...ihdr]);
}

function refusal(fn: () => unknown): EdgeheadError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdgeheadError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  assert.fail('expected a refusal');
}

describe('decode budget: refused from the header, naming which limit', () => {
  test('a 16-bit RGBA PNG under preprocess.maxPixels but over the PNG budget', () => {
    const limit = budgetPixels(28, 33);
    assert.equal(pngBytesPerPixel({ bitDepth: 16, colorType: 6, interlaced: false }), 28);
    const e = refusal(() => decodeImage(pngHeader(6000, 6000, 16, 6), DEFAULT_MAX_PIXELS));
    assert.equal(e.code, 'IMAGE_TOO_LARGE');
    assert.equal(
      e.message,
      `16-bit RGBA PNG is 6000x6000 = 36,000,000 pixels, over the limit of ${limit.toLocaleString('en-US')} pixels for that kind of ` +
        `image (its decoder needs ~28 bytes per pixel; decode memory budget ${DECODE_BUDGET_BYTES / 1e6} MB)`,
    );
    assert.match(e.hint ?? '', /JPEG/);
  });

  test('the limit depends on what the PNG stores: interlaced and deeper PNGs get fewer pixels', () => {
    const perPixel = (bitDepth: number, colorType: number, interlaced = false) => pngBytesPerPixel({ bitDepth, colorType, interlaced });
    assert.deepEqual([perPixel(8, 0), perPixel(8, 3), perPixel(8, 2), perPixel(8, 6), perPixel(16, 2)], [6, 6, 10, 12, 24]);
    assert.equal(perPixel(8, 2, true), 14);
    // 6000x6000 8-bit RGB (the 105 KB file of issue 11) is accepted; interlaced, it is refused
    assert.ok(36_000_000 <= budgetPixels(perPixel(8, 2), 200_000));
    const e = refusal(() => decodeImage(pngHeader(6000, 6000, 8, 2, 1), DEFAULT_MAX_PIXELS));
    assert.match(e.message, /^8-bit RGB interlaced PNG is 6000x6000 = 36,000,000 pixels, over the limit of [\d,]+ pixels for that kind/);
  });

  test('preprocess.maxPixels still refuses first, with its own message', () => {
    const e = refusal(() => decodeImage(pngHeader(6000, 6000, 16, 6), { maxPixels: 1_000_000 }));
    assert.equal(e.message, 'PNG image is 6000x6000 = 36,000,000 pixels, over the limit of 1,000,000 pixels');
  });

  test('a CMYK JPEG (decoded by jpeg-js at full size) over the jpeg-js budget', () => {
    // The fixture's frame header with its size set to 4000x4000 (16 Mpx: under maxPixels, over 380 MB / 28)
    const b = fixture('jpeg-cmyk.jpg');
    let sof = -1;
    for (let i = 2; i + 9 < b.length; i++) if (b[i] === 0xff && (b[i + 1] === 0xc0 || b[i + 1] === 0xc2)) {
      sof = i;
      break;
    }
    assert.ok(sof > 0);
    const big = new Uint8Array(b);
    big.set([0x0f, 0xa0, 0x0f, 0xa0], sof + 5); // height, width
    const e = refusal(() => decodeImage(big, DEFAULT_MAX_PIXELS));
    assert.equal(e.code, 'IMAGE_TOO_LARGE');
    const limit = budgetPixels(JPEG_JS_BYTES_PER_PIXEL, big.length).toLocaleString('en-US');
    assert.match(e.message, new RegExp(`^CMYK/YCCK JPEG \\(decoded by jpeg-js\\) is 4000x4000 = 16,000,000 pixels, over the limit of ${limit} pixels`));
  });
});

describe('shrinking a decoded image before it becomes a tensor', () => {
  test('shrinkFactor: the largest whole factor whose upright size still covers the target', () => {
    assert.equal(shrinkFactor(6000, 6000, 1, [224, 224]), 26); // ceil(6000 / 26) = 231
    assert.equal(shrinkFactor(640, 480, 1, [224, 224]), 2);
    assert.equal(shrinkFactor(320, 240, 1, [224, 224]), 1);
    assert.equal(shrinkFactor(1000, 300, 1, [224, 224]), 1); // 300 / 2 < 224
    // orientation 6: stored 1000x300 is upright 300x1000 (w x h)
    assert.equal(shrinkFactor(1000, 300, 6, [500, 150]), 2);
    assert.equal(shrinkFactor(1000, 300, 1, [500, 150]), 1);
    // ceil lets a factor count a partial last block: ceil(450 / 2) = 225 covers 224
    assert.equal(shrinkFactor(450, 450, 1, [224, 224]), 2);
  });

  test('boxShrink averages each k x k block, the last row and column over the pixels they have', () => {
    const w = 5;
    const h = 3;
    const data = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) data.set([i * 10, 255 - i * 10, i % 2 ? 255 : 0, 255], i * 4);
    const out = boxShrink(data, w, h, 2);
    assert.deepEqual([out.width, out.height], [3, 2]);
    const px = (x: number, y: number) => Array.from(out.data.subarray((y * 3 + x) * 4, (y * 3 + x) * 4 + 4));
    // block (0,0): pixels 0, 1, 5, 6 -> red (0+10+50+60)/4 = 30, green 225, blue (0+255+255+0)/4 = 127.5 -> 128
    assert.deepEqual(px(0, 0), [30, 225, 128, 255]);
    // last column, first row: pixels 4 and 9 -> red 65, green 190, blue (0+255)/2 -> 128
    assert.deepEqual(px(2, 0), [65, 190, 128, 255]);
    // last row: pixels 10, 11 -> red 105, green 150
    assert.deepEqual(px(0, 1).slice(0, 2), [105, 150]);
    // corner: pixel 14 alone
    assert.deepEqual(px(2, 1), [140, 115, 0, 255]);
  });

  test('decodeImage with a targetSize returns the shrunk pixels and the file size', () => {
    const img = decodeImage(fixture('png-rgb8.png'), { maxPixels: 1_000_000, targetSize: [16, 16] });
    assert.deepEqual([img.width, img.height, img.fileWidth, img.fileHeight], [22, 16, 64, 48]); // factor 3
    assert.equal(img.data.length, 22 * 16 * 4);
    // the chart's top-left cell is red 16x16: block (1,1) covers pixels 3..5 of it, all red
    assert.deepEqual(Array.from(img.data.subarray((1 * 22 + 1) * 4, (1 * 22 + 1) * 4 + 4)), [255, 0, 0, 255]);
  });
});
