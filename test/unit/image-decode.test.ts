import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import * as jpeg from 'jpeg-js';
import { decodeImage, type DecodedImage } from '../../agent/image';
import { EdgeheadError } from '../../base/errors';

// Fixtures: see test/fixtures/images/README.md. All are drawn from one 64x48 chart of 16x16 cells: top-left red,
// top-right green, bottom-left blue, bottom-right yellow, the rest grey 128.
const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));
const LIMIT = { maxPixels: 1_000_000 };

type RGBA = [number, number, number, number];
const RED: RGBA = [255, 0, 0, 255];
const GREEN: RGBA = [0, 255, 0, 255];
const BLUE: RGBA = [0, 0, 255, 255];
const YELLOW: RGBA = [255, 255, 0, 255];
const GREY: RGBA = [128, 128, 128, 255];
/** Cell centres of the chart: [x, y]. */
const AT = { topLeft: [8, 8], topRight: [56, 8], bottomLeft: [8, 40], bottomRight: [56, 40], inner: [24, 24] } as const;
const CHART = { topLeft: RED, topRight: GREEN, bottomLeft: BLUE, bottomRight: YELLOW, inner: GREY };
const grey = (v: number, a = 255): RGBA => [v, v, v, a];
/** Rec.601 luma of the chart colours, as JPEG/PIL greyscale conversion computes it. */
const CHART_LUMA = { topLeft: grey(76), topRight: grey(150), bottomLeft: grey(29), bottomRight: grey(226), inner: grey(128) };

function pixel(img: DecodedImage, x: number, y: number): RGBA {
  const i = (y * img.width + x) * 4;
  return Array.from(img.data.subarray(i, i + 4)) as RGBA;
}

function assertChart(img: DecodedImage, expected: Record<keyof typeof AT, RGBA>, tolerance: number): void {
  assert.equal(img.width, 64);
  assert.equal(img.height, 48);
  assert.equal(img.data.length, 64 * 48 * 4);
  for (const [name, [x, y]] of Object.entries(AT) as [keyof typeof AT, readonly [number, number]][]) {
    const got = pixel(img, x, y);
    const want = expected[name];
    const off = Math.max(...got.map((v, i) => Math.abs(v - want[i]!)));
    assert.ok(off <= tolerance, `${name} (${x},${y}): got [${got}], want [${want}] ±${tolerance}`);
  }
}

/** Runs fn, which must throw an EdgeheadError with this code and a one-line message matching re. */
function assertFails(fn: () => unknown, code: string, re: RegExp): EdgeheadError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof EdgeheadError, `expected an EdgeheadError, got ${err instanceof Error ? err.stack : String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, re);
  assert.ok(!err.message.includes('\n'), 'message must be one line');
  return err;
}

describe('decodeImage: JPEG colour models', () => {
  test('baseline YCbCr 4:2:0', () => {
    const img = decodeImage(fixture('jpeg-baseline.jpg'), LIMIT);
    assert.equal(img.format, 'jpeg');
    assert.equal(img.orientation, 1);
    assertChart(img, CHART, 4);
  });

  test('progressive', () => assertChart(decodeImage(fixture('jpeg-progressive.jpg'), LIMIT), CHART, 4));

  test('greyscale (1 component) comes out as R=G=B luma', () => {
    assertChart(decodeImage(fixture('jpeg-gray.jpg'), LIMIT), CHART_LUMA, 3);
  });

  test('RGB JPEG (Adobe transform 0) is not run through YCbCr conversion', () => {
    // jpeg-js on its own turns the red corner into [75,255,28]
    assertChart(decodeImage(fixture('jpeg-rgb.jpg'), LIMIT), CHART, 4);
  });

  test('CMYK JPEG (Adobe, inverted CMYK): red square is red', () => {
    assertChart(decodeImage(fixture('jpeg-cmyk.jpg'), LIMIT), CHART, 4);
  });

  test('YCCK JPEG (Adobe transform 2): red square is red', () => {
    assertChart(decodeImage(fixture('jpeg-ycck.jpg'), LIMIT), CHART, 4);
  });

  test('arithmetic-coded JPEG is refused by name, not with a decoder stack trace', () => {
    assertFails(() => decodeImage(fixture('jpeg-arithmetic.jpg'), LIMIT), 'BAD_IMAGE', /^unsupported JPEG: arithmetic-coded \(SOF9\)/);
  });

  test('bytes after the end-of-image marker are ignored', () => {
    const b = fixture('jpeg-baseline.jpg');
    const padded = new Uint8Array([...b, ...new TextEncoder().encode('ftypmp42 appended video or junk')]);
    assertChart(decodeImage(padded, LIMIT), CHART, 4);
  });
});

describe('decodeImage: PNG colour types, all to 8-bit RGBA', () => {
  test('RGB 8-bit', () => {
    const img = decodeImage(fixture('png-rgb8.png'), LIMIT);
    assert.equal(img.format, 'png');
    assertChart(img, CHART, 0);
  });
  test('RGB 16-bit', () => assertChart(decodeImage(fixture('png-rgb16.png'), LIMIT), CHART, 0));
  test('RGB interlaced (Adam7)', () => assertChart(decodeImage(fixture('png-interlaced.png'), LIMIT), CHART, 0));
  test('palette', () => assertChart(decodeImage(fixture('png-palette.png'), LIMIT), CHART, 0));
  test('grey 8-bit', () => assertChart(decodeImage(fixture('png-gray8.png'), LIMIT), CHART_LUMA, 0));
  test('grey 1-bit (threshold 128: red and blue black, the rest white)', () => {
    const [black, white] = [grey(0), grey(255)];
    const expected = { topLeft: black, topRight: white, bottomLeft: black, bottomRight: white, inner: white };
    assertChart(decodeImage(fixture('png-gray1.png'), LIMIT), expected, 0);
  });
  test('grey 16-bit: 0xffff -> 255, 0x8080 -> 128, 0 -> 0', () => {
    const expected = { topLeft: grey(255), topRight: grey(128), bottomLeft: grey(128), bottomRight: grey(0), inner: grey(128) };
    assertChart(decodeImage(fixture('png-gray16.png'), LIMIT), expected, 0);
  });
  test('grey + alpha keeps the alpha', () => {
    const a = (c: RGBA): RGBA => [c[0], c[1], c[2], 200];
    const expected = Object.fromEntries(Object.entries(CHART_LUMA).map(([k, v]) => [k, a(v)])) as typeof CHART_LUMA;
    assertChart(decodeImage(fixture('png-graya8.png'), LIMIT), expected, 0);
  });
  test('RGBA keeps alpha and does not premultiply', () => {
    assertChart(decodeImage(fixture('png-rgba8.png'), LIMIT), { ...CHART, inner: [0, 255, 0, 128] }, 0);
  });
  test('eXIf chunk orientation is reported', () => {
    const img = decodeImage(fixture('png-exif-6.png'), LIMIT);
    assert.deepEqual([img.width, img.height, img.orientation], [48, 64, 6]);
  });
  test('bytes after IEND are ignored', () => {
    const padded = new Uint8Array([...fixture('png-rgb8.png'), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assertChart(decodeImage(padded, LIMIT), CHART, 0);
  });
});

describe('decodeImage: size limits', () => {
  test('PNG bomb (IHDR 100000x100000) is refused from its header alone, naming size and limit', () => {
    const bomb = fixture('png-bomb.png');
    const refusal = /^PNG image is 100000x100000 = 10,000,000,000 pixels, over the limit of 4,000,000 pixels$/;
    assertFails(() => decodeImage(bomb, { maxPixels: 4_000_000 }), 'IMAGE_TOO_LARGE', refusal);
    // Nothing after IHDR is needed for the refusal: a decoder that had started would find the cut file truncated,
    // as it does for a small PNG cut at the same byte.
    const IHDR_END = 33;
    assertFails(() => decodeImage(bomb.subarray(0, IHDR_END), { maxPixels: 4_000_000 }), 'IMAGE_TOO_LARGE', refusal);
    assertFails(() => decodeImage(fixture('png-rgb8.png').subarray(0, IHDR_END), LIMIT), 'BAD_IMAGE', /^truncated PNG/);
  });

  test('the limit is inclusive: width*height == maxPixels decodes, one pixel less refuses', () => {
    assert.equal(decodeImage(fixture('jpeg-baseline.jpg'), { maxPixels: 64 * 48 }).width, 64);
    assert.equal(decodeImage(fixture('png-rgb8.png'), { maxPixels: 64 * 48 }).width, 64);
    assertFails(() => decodeImage(fixture('jpeg-baseline.jpg'), { maxPixels: 64 * 48 - 1 }), 'IMAGE_TOO_LARGE', /64x48/);
    assertFails(() => decodeImage(fixture('png-rgb8.png'), { maxPixels: 64 * 48 - 1 }), 'IMAGE_TOO_LARGE', /64x48/);
  });

  test('the limit is exact for JPEG even where pixels / 1e6 * 1e6 rounds down (7x3 at maxPixels 21)', () => {
    const rgba = new Uint8Array(7 * 3 * 4).fill(200);
    const small = new Uint8Array(jpeg.encode({ width: 7, height: 3, data: rgba }, 90).data);
    const img = decodeImage(small, { maxPixels: 21 });
    assert.deepEqual([img.width, img.height], [7, 3]);
    assert.ok(Math.abs(img.data[0]! - 200) <= 2);
  });

  test("jpeg-js's own limits back up the probe (a second, huge frame header is refused, not decoded)", () => {
    // Splice a second SOF0 declaring 100000x100000 right after the real one. The probe reports the first frame;
    // jpeg-js reads every frame header and must stop at its maxResolutionInMP, which we derive from maxPixels.
    const b = fixture('jpeg-baseline.jpg');
    const sof = findMarker(b, 0xc0);
    const end = sof + 2 + ((b[sof + 2]! << 8) | b[sof + 3]!);
    const huge = [0xff, 0xc0, 0x00, 0x11, 0x08, 0x86, 0xa0, 0x86, 0xa0, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01];
    const spliced = new Uint8Array([...b.subarray(0, end), ...huge, ...b.subarray(end)]);
    assertFails(() => decodeImage(spliced, LIMIT), 'IMAGE_TOO_LARGE', /^JPEG decoder refused the image: maxResolutionInMP/);
  });

  test('maxPixels must be a positive number', () => {
    assert.throws(() => decodeImage(fixture('png-rgb8.png'), { maxPixels: 0 }), RangeError);
    assert.throws(() => decodeImage(fixture('png-rgb8.png'), { maxPixels: Number.NaN }), RangeError);
  });
});

describe('decodeImage: bad input gives one clean BAD_IMAGE line', () => {
  test('empty data', () => {
    assertFails(() => decodeImage(new Uint8Array(0), LIMIT), 'BAD_IMAGE', /^empty file \(0 bytes\)$/);
  });

  test('a text file', () => {
    const text = new TextEncoder().encode('label,file\nfish,fish1.jpg\n');
    assertFails(() => decodeImage(text, LIMIT), 'BAD_IMAGE', /^not a JPEG or PNG image \(looks like text: "label,file\\nfish,fish"\.\.\.\)$/);
  });

  test('JPEG truncated mid-scan', () => {
    const b = fixture('jpeg-baseline.jpg');
    const sos = findMarker(b, 0xda);
    const cut = b.subarray(0, sos + Math.floor((b.length - sos) / 2));
    assertFails(() => decodeImage(cut, LIMIT), 'BAD_IMAGE', /^truncated or corrupt JPEG: no end-of-image marker in \d+ bytes/);
  });

  test('progressive JPEG truncated between scans', () => {
    const b = fixture('jpeg-progressive.jpg');
    const secondScan = findMarker(b, 0xda, findMarker(b, 0xda) + 2);
    assertFails(() => decodeImage(b.subarray(0, secondScan), LIMIT), 'BAD_IMAGE', /^truncated or corrupt JPEG: /);
  });

  test('JPEG with a damaged scan but an intact end marker: jpeg-js errors are wrapped', () => {
    // "ff d0" (a restart marker where none is expected) inside the scan makes jpeg-js throw
    const b = fixture('jpeg-baseline.jpg').slice();
    const scan = findMarker(b, 0xda) + 14;
    b.set([0xff, 0xd0, 0xff, 0xd0], scan + 20);
    assertFails(() => decodeImage(b, LIMIT), 'BAD_IMAGE', /^truncated or corrupt JPEG: /);
  });

  test('PNG truncated inside the image data', () => {
    const b = fixture('png-rgb8.png');
    assertFails(() => decodeImage(b.subarray(0, 60), LIMIT), 'BAD_IMAGE', /^truncated PNG: the IDAT chunk at byte 33 needs \d+ bytes, only 27 remain$/);
  });

  test('PNG without its IEND chunk', () => {
    const b = fixture('png-rgb8.png');
    assertFails(() => decodeImage(b.subarray(0, b.length - 12), LIMIT), 'BAD_IMAGE', /^truncated PNG: data ends at byte \d+, before the IEND chunk$/);
  });

  test('PNG with a bad CRC names the chunk', () => {
    const b = fixture('png-rgb8.png').slice();
    b[33 + 8 + 5]! ^= 0x01; // a bit inside IDAT's data
    assertFails(() => decodeImage(b, LIMIT), 'BAD_IMAGE', /^corrupt PNG: checksum \(CRC\) mismatch in the IDAT chunk at byte 33$/);
  });

  test('interlaced PNG whose data inflates far beyond its 1x1 header is refused before pngjs inflates it', () => {
    const ihdr = [0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 1]; // 1x1, 8-bit RGB, Adam7
    const png = makePng([
      ['IHDR', new Uint8Array(ihdr)],
      ['IDAT', deflateSync(Buffer.alloc(4 << 20))],
      ['IEND', new Uint8Array(0)],
    ]);
    assertFails(() => decodeImage(png, LIMIT), 'BAD_IMAGE', /^corrupt PNG: image data expands to more than the 4 bytes its header implies$/);
  });

  test('every truncation of every fixture fails cleanly (BAD_IMAGE, never a raw decoder error)', () => {
    let checked = 0;
    for (const name of readdirSync(FIXTURES).filter((f) => /\.(jpe?g|png)$/.test(f) && f !== 'png-bomb.png')) {
      const b = fixture(name);
      for (let n = 0; n < b.length; n++) {
        assertFails(() => decodeImage(b.subarray(0, n), LIMIT), 'BAD_IMAGE', /./);
        checked++;
      }
    }
    assert.ok(checked > 5000, `only ${checked} prefixes checked`);
  });
});

const PHOTO = path.resolve(__dirname, '../../../shared/data/photos/fish/fish1.jpg');

test('smoke: a real photo (shared/data/photos/fish/fish1.jpg, 320x213)', { skip: !existsSync(PHOTO) && `${PHOTO} not present` }, () => {
  const img = decodeImage(new Uint8Array(readFileSync(PHOTO)), { maxPixels: 320 * 213 });
  assert.deepEqual([img.format, img.width, img.height, img.orientation], ['jpeg', 320, 213, 1]);
  // per-channel means as PIL (libjpeg-turbo) decodes the same file: 117.5, 124.8, 129.4
  const sums = [0, 0, 0];
  for (let i = 0; i < img.data.length; i += 4) for (let c = 0; c < 3; c++) sums[c] += img.data[i + c]!;
  const means = sums.map((s) => s / (320 * 213));
  [117.5, 124.8, 129.4].forEach((want, c) => assert.ok(Math.abs(means[c]! - want) < 1.5, `channel ${c}: mean ${means[c]} vs ${want}`));
});

// ---------------------------------------------------------------------------------------------------------------

/** Offset of the first FF <marker> at or after `from` (test fixtures only: no stuffing concerns before the scan). */
function findMarker(b: Uint8Array, marker: number, from = 2): number {
  for (let i = from; i + 1 < b.length; i++) if (b[i] === 0xff && b[i + 1] === marker) return i;
  throw new Error(`marker ${marker.toString(16)} not found`);
}

function makePng(chunks: [string, Uint8Array][]): Uint8Array {
  const parts: Buffer[] = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
  for (const [type, data] of chunks) {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    parts.push(head, body, crc);
  }
  return new Uint8Array(Buffer.concat(parts));
}

function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
