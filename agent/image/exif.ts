/**
 * EXIF orientation, and nothing else from EXIF. The input is untrusted: every read is bounds-checked and any
 * inconsistency means "no orientation" (undefined), never an exception, so a corrupt EXIF block cannot make an
 * otherwise decodable image fail.
 *
 * Layout (EXIF 2.32 / TIFF 6.0): a TIFF header — byte order "II" (little-endian) or "MM" (big-endian), the number 42,
 * the offset of IFD0 — then IFD0: a 2-byte entry count, 12-byte entries (tag, type, count, value-or-offset), and the
 * offset of the next IFD. Offsets count from the start of the TIFF header. Orientation is IFD0 tag 0x0112, one SHORT.
 */

const EXIF_PREFIX = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"
const TAG_ORIENTATION = 0x0112;
const TYPE_SHORT = 3;
const TYPE_LONG = 4;

/** Orientation 1..8 from a JPEG APP1 payload (the bytes after the segment length); undefined if the payload is not
 * EXIF (e.g. XMP also lives in APP1) or holds no valid orientation. */
export function orientationFromApp1(payload: Uint8Array): number | undefined {
  if (!startsWith(payload, EXIF_PREFIX)) return undefined;
  return orientationFromTiff(payload.subarray(EXIF_PREFIX.length));
}

/** Orientation 1..8 from a TIFF-structured EXIF block (the body of JPEG APP1 after "Exif\0\0", or a PNG eXIf chunk,
 * which some writers also prefix with "Exif\0\0"); undefined when absent, out of range or unreadable. */
export function orientationFromTiff(tiff: Uint8Array): number | undefined {
  if (startsWith(tiff, EXIF_PREFIX)) tiff = tiff.subarray(EXIF_PREFIX.length);
  if (tiff.length < 8) return undefined;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  let little: boolean;
  if (tiff[0] === 0x49 && tiff[1] === 0x49) little = true; // "II"
  else if (tiff[0] === 0x4d && tiff[1] === 0x4d) little = false; // "MM"
  else return undefined;
  if (view.getUint16(2, little) !== 42) return undefined;

  const ifd = view.getUint32(4, little);
  if (ifd < 8 || ifd + 2 > tiff.length) return undefined;
  const declared = view.getUint16(ifd, little);
  // A corrupt count cannot make us read past the block: only entries that fit are looked at.
  const entries = Math.min(declared, Math.floor((tiff.length - ifd - 2) / 12));
  for (let i = 0; i < entries; i++) {
    const at = ifd + 2 + i * 12;
    if (view.getUint16(at, little) !== TAG_ORIENTATION) continue;
    const type = view.getUint16(at + 2, little);
    const count = view.getUint32(at + 4, little);
    if (count < 1) return undefined;
    // A SHORT (or a LONG, which some writers use) fits in the 4-byte value field, left-justified.
    const value =
      type === TYPE_SHORT ? view.getUint16(at + 8, little) : type === TYPE_LONG ? view.getUint32(at + 8, little) : 0;
    return value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  if (bytes.length < prefix.length) return false;
  return prefix.every((b, i) => bytes[i] === b);
}
