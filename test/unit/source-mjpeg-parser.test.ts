/**
 * The MJPEG splitter: whole frames out whatever the chunking, garbage skipped, an EXIF thumbnail (a JPEG inside APP1)
 * never taken for a frame boundary, oversized frames dropped with bounded memory, resync after broken frames.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { decodeImage } from '../../agent/image';
import { MjpegParser } from '../../agent/sources/mjpeg-parser';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));
const BASELINE = fixture('jpeg-baseline.jpg');
const PROGRESSIVE = fixture('jpeg-progressive.jpg'); // several scans with tables between them
const GREY = fixture('jpeg-gray.jpg');
const SAMPLE = new Uint8Array(readFileSync(path.resolve(__dirname, '../../assets/samples/fish/fish1.jpg')));
const BIG = 1 << 24;

const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const bytes = (...v: number[]): Uint8Array => new Uint8Array(v);

/** A copy of jpeg with an EXIF APP1 segment right after its SOI holding `thumb` as the IFD1 thumbnail. */
function withExifThumbnail(jpeg: Uint8Array, thumb: Uint8Array): Uint8Array {
  // TIFF (big-endian): header, empty IFD0 pointing to IFD1, IFD1 with JPEGInterchangeFormat (0x0201) and
  // JPEGInterchangeFormatLength (0x0202), then the thumbnail itself.
  const ifd1 = 14;
  const thumbOffset = ifd1 + 2 + 2 * 12 + 4;
  const tiff = Buffer.alloc(thumbOffset);
  tiff.write('MM', 0, 'latin1');
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4);
  tiff.writeUInt16BE(0, 8); // IFD0: no entries
  tiff.writeUInt32BE(ifd1, 10); // next IFD
  tiff.writeUInt16BE(2, ifd1);
  const entry = (at: number, tag: number, value: number): void => {
    tiff.writeUInt16BE(tag, at);
    tiff.writeUInt16BE(4, at + 2); // LONG
    tiff.writeUInt32BE(1, at + 4);
    tiff.writeUInt32BE(value, at + 8);
  };
  entry(ifd1 + 2, 0x0201, thumbOffset);
  entry(ifd1 + 14, 0x0202, thumb.length);
  tiff.writeUInt32BE(0, ifd1 + 26);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff, thumb]);
  const header = Buffer.from([0xff, 0xe1, 0, 0]);
  header.writeUInt16BE(payload.length + 2, 2);
  return concat(jpeg.subarray(0, 2), header, payload, jpeg.subarray(2));
}

function parseAll(chunks: Uint8Array[], maxFrameBytes = BIG): { frames: Uint8Array[]; parser: MjpegParser } {
  const parser = new MjpegParser({ maxFrameBytes });
  const frames = chunks.flatMap((c) => parser.push(c));
  return { frames, parser };
}

function assertFrames(got: Uint8Array[], want: Uint8Array[], context = ''): void {
  assert.equal(got.length, want.length, `${context}: ${got.length} frames, want ${want.length}`);
  got.forEach((g, i) => assert.ok(Buffer.from(g).equals(Buffer.from(want[i]!)), `${context}: frame ${i} differs (${g.length} vs ${want[i]!.length} bytes)`));
}

describe('MjpegParser', { timeout: 60_000 }, () => {
  test('back-to-back frames fed in one chunk come out whole, in order', () => {
    const { frames, parser } = parseAll([concat(BASELINE, PROGRESSIVE, SAMPLE, GREY)]);
    assertFrames(frames, [BASELINE, PROGRESSIVE, SAMPLE, GREY]);
    assert.deepEqual(parser.stats, { frames: 4, oversized: 0, broken: 0, garbageBytes: 0 });
    assert.equal(parser.buffered, 0);
    for (const f of frames) assert.ok(decodeImage(f, { maxPixels: 1e8 }).width > 0);
  });

  test('a stream split into two chunks at every offset gives the same frames', () => {
    const stream = concat(BASELINE, PROGRESSIVE);
    for (let k = 0; k <= stream.length; k++) {
      const { frames } = parseAll([stream.subarray(0, k), stream.subarray(k)]);
      assertFrames(frames, [BASELINE, PROGRESSIVE], `split at ${k}`);
    }
  });

  test('one byte at a time', () => {
    const stream = concat(GREY, BASELINE, GREY);
    const chunks = Array.from(stream, (v) => bytes(v));
    assertFrames(parseAll(chunks).frames, [GREY, BASELINE, GREY]);
  });

  test('frames are returned as soon as their EOI arrives, not when the next one starts', () => {
    const parser = new MjpegParser({ maxFrameBytes: BIG });
    assert.equal(parser.push(BASELINE.subarray(0, BASELINE.length - 1)).length, 0);
    assertFrames(parser.push(BASELINE.subarray(BASELINE.length - 1)), [BASELINE]);
  });

  test('garbage before, between and after frames is skipped and counted', () => {
    const junk1 = bytes(0x00, 0xff, 0xd9, 0x12, 0xff, 0x00, 0xff); // stray EOI, stuffed zero, trailing FF
    const junk2 = new Uint8Array(Buffer.from('--boundary\r\nContent-Type: image/jpeg\r\n\r\n'));
    const stream = concat(junk1, BASELINE, junk2, PROGRESSIVE, junk1);
    for (let k = 0; k <= stream.length; k += 7) {
      const { frames, parser } = parseAll([stream.subarray(0, k), stream.subarray(k)]);
      assertFrames(frames, [BASELINE, PROGRESSIVE], `split at ${k}`);
      // The stream's last byte, an FF, is held back (it could be the first half of an SOI), not yet counted.
      assert.equal(parser.stats.garbageBytes, junk1.length * 2 + junk2.length - 1, `split at ${k}`);
      assert.equal(parser.buffered, 1);
    }
  });

  test('an EXIF thumbnail (a whole JPEG inside APP1) does not end or split the frame', () => {
    const framed = withExifThumbnail(SAMPLE, BASELINE);
    // The fixture itself: a valid JPEG that the project's decoder reads, with the thumbnail's SOI and EOI inside.
    assert.equal(decodeImage(framed, { maxPixels: 1e8 }).width, decodeImage(SAMPLE, { maxPixels: 1e8 }).width);
    assert.ok(Buffer.from(framed).indexOf(Buffer.from(BASELINE)) > 0);
    const stream = concat(framed, GREY, framed);
    assertFrames(parseAll([stream]).frames, [framed, GREY, framed]);
    // Chunk boundaries anywhere around the thumbnail, including between its FF and D9.
    const thumbAt = Buffer.from(framed).indexOf(Buffer.from(BASELINE));
    for (let k = thumbAt - 8; k <= thumbAt + BASELINE.length + 8; k++) {
      assertFrames(parseAll([stream.subarray(0, k), stream.subarray(k)]).frames, [framed, GREY, framed], `split at ${k}`);
    }
  });

  test('restart markers, stuffed zeros and fill bytes inside a scan are not boundaries', () => {
    // A synthetic frame with the structure only: SOI, a DQT-like segment, SOS header, entropy data with FF 00 and RSTn,
    // fill bytes before EOI.
    const frame = bytes(
      0xff, 0xd8,
      0xff, 0xdb, 0x00, 0x04, 0xff, 0xd9, // segment payload may hold any bytes, even FF D9
      0xff, 0xda, 0x00, 0x03, 0x01,
      0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xd7, 0xff, 0x00,
      0xff, 0xff, 0xff, 0xd9,
    );
    for (let k = 0; k <= frame.length * 2; k++) {
      const stream = concat(frame, frame);
      assertFrames(parseAll([stream.subarray(0, k), stream.subarray(k)]).frames, [frame, frame], `split at ${k}`);
    }
  });

  test('a frame over maxFrameBytes is dropped, the rest still come through, memory stays bounded', () => {
    const max = Math.max(BASELINE.length, GREY.length) + 16;
    const big = withExifThumbnail(SAMPLE, GREY); // its thumbnail alone would fit: it must not be taken for a frame
    assert.ok(big.length > max && GREY.length <= max);
    const stream = concat(BASELINE, big, GREY, big, big, BASELINE);
    for (const chunk of [1, 100, 4096, stream.length]) {
      const parser = new MjpegParser({ maxFrameBytes: max });
      const frames: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += chunk) {
        frames.push(...parser.push(stream.subarray(at, at + chunk)));
        assert.ok(parser.buffered <= max + Math.min(chunk, max), `chunk ${chunk}: ${parser.buffered} bytes buffered`);
      }
      assertFrames(frames, [BASELINE, GREY, BASELINE], `chunk ${chunk}`);
      assert.equal(parser.stats.oversized, 3, `chunk ${chunk}`);
      assert.equal(parser.stats.frames, 3);
    }
  });

  test('a frame of exactly maxFrameBytes passes, one byte more is dropped', () => {
    assertFrames(parseAll([BASELINE], BASELINE.length).frames, [BASELINE]);
    const { frames, parser } = parseAll([BASELINE], BASELINE.length - 1);
    assert.equal(frames.length, 0);
    assert.equal(parser.stats.oversized, 1);
  });

  test('a frame cut short by the next SOI is dropped; the next frame is whole', () => {
    const cut = BASELINE.subarray(0, Math.floor(BASELINE.length / 2));
    const { frames, parser } = parseAll([concat(cut, PROGRESSIVE)]);
    assertFrames(frames, [PROGRESSIVE]);
    assert.equal(parser.stats.broken, 1);
  });

  test('an FF D8 inside garbage that starts a bogus segment does not swallow the real frame after it', () => {
    // "FF D8 FF E1 FF FF" looks like an SOI and a 65535-byte APP1: the real frames follow within those bytes.
    const bogus = bytes(0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff, 0x00, 0x01);
    const { frames, parser } = parseAll([concat(bogus, BASELINE, GREY, new Uint8Array(70_000))]);
    assertFrames(frames, [BASELINE, GREY]);
    assert.ok(parser.stats.broken >= 1);
    // And an SOI followed by something that is no marker at all.
    assertFrames(parseAll([concat(bytes(0xff, 0xd8, 0x41, 0x42), GREY)]).frames, [GREY]);
  });

  test('reset() forgets a partial frame', () => {
    const parser = new MjpegParser({ maxFrameBytes: BIG });
    parser.push(BASELINE.subarray(0, 100));
    parser.reset();
    assert.equal(parser.buffered, 0);
    assertFrames(parser.push(GREY), [GREY]);
  });

  test('refuses a nonsensical maxFrameBytes', () => {
    assert.throws(() => new MjpegParser({ maxFrameBytes: 0 }), RangeError);
    assert.throws(() => new MjpegParser({ maxFrameBytes: 1.5 }), RangeError);
  });
});
