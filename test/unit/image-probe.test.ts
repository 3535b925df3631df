import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { probeImage, type ImageInfo } from '../../agent/image';
import { crc32 } from '../../base/crc32';
import { EdgeheadError } from '../../base/errors';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));

function assertBad(bytes: Uint8Array, re: RegExp): void {
  assert.throws(
    () => probeImage(bytes),
    (e: unknown) => {
      assert.ok(e instanceof EdgeheadError, String(e));
      assert.equal(e.code, 'BAD_IMAGE');
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    },
  );
}

describe('probeImage: headers of every fixture', () => {
  const chart = (format: 'jpeg' | 'png', channels: number, orientation = 1): ImageInfo => ({ format, width: 64, height: 48, channels, orientation });
  const expected: Record<string, ImageInfo> = {
    'jpeg-baseline.jpg': chart('jpeg', 3),
    'jpeg-progressive.jpg': chart('jpeg', 3),
    'jpeg-gray.jpg': chart('jpeg', 1),
    'jpeg-rgb.jpg': chart('jpeg', 3),
    'jpeg-cmyk.jpg': chart('jpeg', 4),
    'jpeg-ycck.jpg': chart('jpeg', 4),
    'jpeg-arithmetic.jpg': chart('jpeg', 3), // not decodable, but its header is fine
    'png-rgb8.png': chart('png', 3),
    'png-rgb16.png': chart('png', 3),
    'png-interlaced.png': chart('png', 3),
    'png-palette.png': chart('png', 3),
    'png-gray8.png': chart('png', 1),
    'png-gray1.png': chart('png', 1),
    'png-gray16.png': chart('png', 1),
    'png-graya8.png': chart('png', 2),
    'png-rgba8.png': chart('png', 4),
    'png-exif-6.png': { format: 'png', width: 48, height: 64, channels: 3, orientation: 6 },
    'png-bomb.png': { format: 'png', width: 100000, height: 100000, channels: 4, orientation: 1 },
    'orient-6.jpg': { format: 'jpeg', width: 48, height: 64, channels: 3, orientation: 6 },
  };
  for (const [name, info] of Object.entries(expected)) {
    test(name, () => assert.deepEqual(probeImage(fixture(name)), info));
  }
});

describe('probeImage reads headers only', () => {
  test('a JPEG cut right after its frame header still probes', () => {
    const b = fixture('jpeg-baseline.jpg');
    const sof = b.findIndex((v, i) => v === 0xff && b[i + 1] === 0xc0);
    assert.deepEqual(probeImage(b.subarray(0, sof + 19)), { format: 'jpeg', width: 64, height: 48, channels: 3, orientation: 1 });
  });

  test('a PNG cut right after IHDR still probes', () => {
    assert.deepEqual(probeImage(fixture('png-rgba8.png').subarray(0, 33)), { format: 'png', width: 64, height: 48, channels: 4, orientation: 1 });
  });

  test('the 10-gigapixel bomb probes without its image data: junk in place of everything after IHDR changes nothing', () => {
    const b = fixture('png-bomb.png');
    const bomb: ImageInfo = { format: 'png', width: 100_000, height: 100_000, channels: 4, orientation: 1 };
    assert.deepEqual(probeImage(b), bomb);
    const junkAfterIhdr = new Uint8Array([...b.subarray(0, 33), ...new Uint8Array(40).fill(7)]); // no IDAT, no valid chunk at all
    assert.deepEqual(probeImage(junkAfterIhdr), bomb);
  });

  test('garbage between JPEG segments is skipped like libjpeg does', () => {
    const b = fixture('jpeg-gray.jpg');
    const withJunk = new Uint8Array([...b.subarray(0, 20), 0x00, 0x12, 0x34, ...b.subarray(20)]); // after APP0
    assert.equal(probeImage(withJunk).width, 64);
  });
});

describe('probeImage: bad data', () => {
  test('empty', () => assertBad(new Uint8Array(0), /^empty file/));
  test('text', () => assertBad(new TextEncoder().encode('hello\n'), /^not a JPEG or PNG image \(looks like text: "hello\\n"\)$/));
  test('binary junk', () => assertBad(new Uint8Array([0, 1, 2, 3, 4, 5]), /^not a JPEG or PNG image \(starts with bytes 00 01 02 03\)$/));
  test('other image formats are named', () => {
    assertBad(new TextEncoder().encode('GIF89a\x01\x00\x01\x00'), /\(looks like GIF\)/);
    assertBad(new TextEncoder().encode('RIFF\x10\x00\x00\x00WEBPVP8 '), /\(looks like WebP\)/);
  });
  test('JPEG cut before its frame header', () => {
    assertBad(fixture('jpeg-baseline.jpg').subarray(0, 100), /^truncated JPEG: data ends at byte 100, before the frame header \(SOF\)$/);
    assertBad(new Uint8Array([0xff, 0xd8]), /^truncated JPEG: only 2 bytes$/);
  });
  test('JPEG with scan data before any frame header', () => {
    assertBad(new Uint8Array([0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 0xff, 0xd9]), /^corrupt JPEG: image data \(SOS\) comes before any frame header/);
  });
  test('JPEG with a zero-length segment', () => {
    assertBad(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x00, 0xff, 0xd9]), /^corrupt JPEG: marker segment 0xe0 at byte 2 has length 0$/);
  });
  test('JPEG frame of height 0 (DNL)', () => {
    const sof = [0xff, 0xc0, 0x00, 0x0b, 8, 0, 0, 0, 16, 1, 1, 0x11, 0];
    assertBad(new Uint8Array([0xff, 0xd8, ...sof, 0xff, 0xd9]), /^unsupported JPEG: frame header declares a 16x0 image$/);
  });
  test('PNG cut inside its header', () => {
    assertBad(fixture('png-rgb8.png').subarray(0, 20), /^truncated PNG: only 20 bytes, the header alone needs 33$/);
    assertBad(fixture('png-rgb8.png').subarray(0, 4), /^truncated PNG/);
  });
  test('PNG header fields outside the spec', () => {
    // rewrite IHDR fields of a real PNG and fix its CRC, so only the field check can object
    const withIhdr = (patch: (ihdr: DataView) => void): Uint8Array => {
      const b = fixture('png-rgb8.png').slice();
      const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
      patch(new DataView(b.buffer, b.byteOffset + 16, 13));
      view.setUint32(29, crc32(b.subarray(12, 29)));
      return b;
    };
    assertBad(withIhdr((v) => v.setUint8(8, 4)), /^corrupt PNG: bit depth 4 is not valid for colour type 2$/);
    assertBad(withIhdr((v) => v.setUint8(9, 5)), /^corrupt PNG: unknown colour type 5$/);
    assertBad(withIhdr((v) => v.setUint32(0, 0)), /^corrupt PNG: header declares a 0x48 image$/);
    assertBad(withIhdr((v) => v.setUint8(12, 2)), /^corrupt PNG: unknown compression\/filter\/interlace method \(0\/0\/2\)$/);
    assert.equal(probeImage(withIhdr((v) => v.setUint32(4, 7))).height, 7); // the CRC fix-up itself is right
  });

  test('PNG with a damaged IHDR', () => {
    const crc = fixture('png-rgb8.png').slice();
    crc[17] ^= 1; // width, without fixing the CRC
    assertBad(crc, /^corrupt PNG: header \(IHDR\) checksum mismatch$/);
    const first = fixture('png-rgb8.png').slice();
    first.set([0x49, 0x44, 0x41, 0x54], 12); // "IDAT" where IHDR should be
    assertBad(first, /^corrupt PNG: first chunk is "IDAT", not a 13-byte IHDR$/);
  });
});
