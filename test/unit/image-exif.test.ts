import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { orientationFromApp1, orientationFromTiff } from '../../agent/image/exif';
import { probeImage } from '../../agent/image';

const FIXTURES = path.resolve(__dirname, '../fixtures/images');
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path.join(FIXTURES, name)));
const EXIF = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

interface Entry {
  tag: number;
  type: number;
  count: number;
  value: number;
}

/** A TIFF block: header, then IFD0 at `ifdOffset` with the given entries (values stored in the value field). */
function tiff(order: 'II' | 'MM', entries: Entry[], opts: { ifdOffset?: number; magic?: number; declaredCount?: number } = {}): Uint8Array {
  const little = order === 'II';
  const ifd = opts.ifdOffset ?? 8;
  const buf = new Uint8Array(ifd + 2 + entries.length * 12 + 4);
  const v = new DataView(buf.buffer);
  buf.set([order.charCodeAt(0), order.charCodeAt(1)], 0);
  v.setUint16(2, opts.magic ?? 42, little);
  v.setUint32(4, ifd, little);
  v.setUint16(ifd, opts.declaredCount ?? entries.length, little);
  entries.forEach((e, i) => {
    const at = ifd + 2 + i * 12;
    v.setUint16(at, e.tag, little);
    v.setUint16(at + 2, e.type, little);
    v.setUint32(at + 4, e.count, little);
    if (e.type === 3) v.setUint16(at + 8, e.value, little);
    else v.setUint32(at + 8, e.value, little);
  });
  return buf;
}

const orientation = (value: number, type = 3): Entry => ({ tag: 0x0112, type, count: 1, value });
const OTHER: Entry[] = [
  { tag: 0x010f, type: 2, count: 9, value: 1000 }, // Make, at an offset (never followed)
  { tag: 0x0110, type: 2, count: 3, value: 0x41424300 }, // Model, inline
];
const app1 = (t: Uint8Array): Uint8Array => new Uint8Array([...EXIF, ...t]);

describe('orientationFromTiff / orientationFromApp1', () => {
  for (const order of ['II', 'MM'] as const) {
    test(`${order}: every orientation 1..8, after other entries`, () => {
      for (let o = 1; o <= 8; o++) {
        assert.equal(orientationFromApp1(app1(tiff(order, [...OTHER, orientation(o)]))), o);
        assert.equal(orientationFromTiff(tiff(order, [orientation(o), ...OTHER])), o);
      }
    });
  }

  test('the two byte orders really differ (a SHORT 6 read the wrong way would be 1536)', () => {
    const ii = tiff('II', [orientation(6)]);
    const mm = tiff('MM', [orientation(6)]);
    assert.notDeepEqual(ii.subarray(2), mm.subarray(2));
    assert.equal(orientationFromTiff(ii), 6);
    assert.equal(orientationFromTiff(mm), 6);
  });

  test('a LONG orientation (some writers) is accepted', () => {
    assert.equal(orientationFromTiff(tiff('MM', [orientation(8, 4)])), 8);
  });

  test('IFD0 somewhere other than right after the header', () => {
    assert.equal(orientationFromTiff(tiff('II', [orientation(3)], { ifdOffset: 40 })), 3);
  });

  test('"Exif\\0\\0" prefix is optional for TIFF blocks (PNG eXIf writers differ)', () => {
    assert.equal(orientationFromTiff(app1(tiff('II', [orientation(5)]))), 5);
  });

  test('absent or invalid gives undefined, never an exception', () => {
    const cases: [string, Uint8Array][] = [
      ['no orientation tag', app1(tiff('II', OTHER))],
      ['orientation 0', app1(tiff('II', [orientation(0)]))],
      ['orientation 9', app1(tiff('MM', [orientation(9)]))],
      ['unexpected type (ASCII)', app1(tiff('II', [{ tag: 0x0112, type: 2, count: 1, value: 6 }]))],
      ['count 0', app1(tiff('II', [{ tag: 0x0112, type: 3, count: 0, value: 6 }]))],
      ['XMP, not EXIF', new TextEncoder().encode('http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>')],
      ['bad byte order', app1(new Uint8Array([0x49, 0x4d, 42, 0, 8, 0, 0, 0, 0, 0]))],
      ['bad magic', app1(tiff('II', [orientation(6)], { magic: 43 }))],
      ['IFD offset past the end', app1(tiff('II', [orientation(6)], { ifdOffset: 8 }).map((b, i) => (i === 4 ? 200 : b)))],
      ['IFD offset inside the header', app1(tiff('MM', [orientation(6)]).map((b, i) => (i === 7 ? 2 : b)))],
      ['empty', new Uint8Array(0)],
      ['only the prefix', new Uint8Array(EXIF)],
    ];
    for (const [name, bytes] of cases) assert.equal(orientationFromApp1(bytes), undefined, name);
  });

  test('an entry count larger than the block only reads the entries that fit', () => {
    const t = tiff('MM', [...OTHER, orientation(7)], { declaredCount: 0xffff });
    assert.equal(orientationFromTiff(t), 7);
    assert.equal(orientationFromTiff(t.subarray(0, t.length - 4 - 12)), undefined); // orientation entry cut off
  });

  test('every truncation and 2000 random corruptions of a valid block return 1..8 or undefined', () => {
    const good = app1(tiff('II', [...OTHER, orientation(6)]));
    for (let n = 0; n <= good.length; n++) {
      const got = orientationFromApp1(good.subarray(0, n));
      assert.ok(got === undefined || got === 6, `prefix ${n}: ${got}`);
    }
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    for (let i = 0; i < 2000; i++) {
      const bytes = good.slice();
      for (let k = 0; k < 3; k++) bytes[6 + Math.floor(rand() * (bytes.length - 6))] = Math.floor(rand() * 256);
      const got = orientationFromApp1(bytes);
      assert.ok(got === undefined || (Number.isInteger(got) && got >= 1 && got <= 8), `got ${got}`);
    }
  });
});

describe('EXIF in probeImage', () => {
  test('orientation fixtures 1..8 (odd ones big-endian, even ones little-endian)', () => {
    for (let o = 1; o <= 8; o++) {
      const info = probeImage(fixture(`orient-${o}.jpg`));
      assert.equal(info.orientation, o);
      assert.deepEqual([info.width, info.height], o >= 5 ? [48, 64] : [64, 48]);
    }
  });

  test('a corrupt EXIF block does not stop the probe: orientation 1', () => {
    const b = fixture('orient-6.jpg').slice();
    const at = indexOf(b, EXIF) + 6; // TIFF header
    const ifdOffset = b.slice();
    ifdOffset.set([0xff, 0xff, 0xff, 0xff], at + 4); // IFD0 offset 0xffffffff, far outside the segment
    assert.equal(probeImage(ifdOffset).orientation, 1);
    const byteOrder = b.slice();
    byteOrder.set([0x58, 0x58], at);
    assert.equal(probeImage(byteOrder).orientation, 1);
    assert.equal(probeImage(b).orientation, 6);
  });

  test('a JPEG without EXIF has orientation 1', () => {
    assert.equal(probeImage(fixture('jpeg-baseline.jpg')).orientation, 1);
  });

  test('the first EXIF APP1 wins; an XMP APP1 before it is skipped', () => {
    const b = fixture('orient-3.jpg');
    const xmp = new TextEncoder().encode('http://ns.adobe.com/xap/1.0/\0<x/>');
    const seg = new Uint8Array([0xff, 0xe1, 0, xmp.length + 2, ...xmp]);
    const withXmp = new Uint8Array([...b.subarray(0, 2), ...seg, ...b.subarray(2)]);
    assert.equal(probeImage(withXmp).orientation, 3);
  });
});

function indexOf(haystack: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error('not found');
}
