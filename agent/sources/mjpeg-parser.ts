/**
 * Splits an MJPEG byte stream (JPEG images written back to back, as `ffmpeg -f mjpeg`, rpicam-vid and libcamera-vid
 * produce) into whole JPEG files, fed one chunk at a time in whatever pieces the pipe delivers.
 *
 * It follows the JPEG structure rather than searching for FF D9: after SOI (FF D8) come marker segments with a 2-byte
 * length, which are skipped whole, so an EXIF thumbnail (a complete JPEG with its own SOI/EOI inside APP1) is never
 * mistaken for a frame boundary; after SOS the entropy-coded data is scanned for the next marker (0xFF there is
 * always stuffed as FF 00 or is a restart marker FF D0..D7), and EOI (FF D9) ends the frame. Progressive JPEGs (several
 * scans with tables between them) follow the same rules.
 *
 * Bytes before an SOI are skipped (garbage). A new SOI where a marker is expected means the previous frame was cut
 * short: it is dropped and the new frame starts there. Anything else that breaks the structure (no marker where one
 * must be, a segment length below 2) means the "frame" was not one, e.g. an FF D8 inside garbage: the search for an SOI
 * resumes just after the false one, so the real frame that follows is still found. A frame larger than maxFrameBytes is dropped while its bytes
 * go by (the parser keeps following its structure without buffering it), so memory stays bounded by maxFrameBytes plus
 * one chunk.
 */

export interface MjpegParserOptions {
  /** Frames longer than this (SOI to EOI inclusive) are dropped. */
  maxFrameBytes: number;
}

export interface MjpegStats {
  /** Complete frames returned. */
  frames: number;
  /** Frames dropped for exceeding maxFrameBytes. */
  oversized: number;
  /** Frames abandoned because a new SOI began before their EOI, or their structure was invalid. */
  broken: number;
  /** Bytes skipped outside any frame. */
  garbageBytes: number;
}

const enum State {
  /** Looking for FF D8. */
  Seek,
  /** Inside a frame, expecting a marker at pos. */
  Marker,
  /** Inside entropy-coded data, scanning for the next marker. */
  Scan,
}

const INITIAL_CAPACITY = 64 * 1024;

export class MjpegParser {
  private readonly maxFrameBytes: number;
  private buf = new Uint8Array(INITIAL_CAPACITY);
  /** Bytes held in buf. */
  private len = 0;
  /** Next byte to look at (may lie beyond len while a segment is being skipped). */
  private pos = 0;
  private state = State.Seek;
  /** Offset of the current frame's SOI in buf. */
  private frameStart = 0;
  /** The current frame is too big: follow it to its end without keeping its bytes. */
  private dropping = false;
  /** Bytes of the current frame already discarded (while dropping). */
  private discarded = 0;
  private readonly counters: MjpegStats = { frames: 0, oversized: 0, broken: 0, garbageBytes: 0 };

  constructor(opts: MjpegParserOptions) {
    if (!(Number.isInteger(opts.maxFrameBytes) && opts.maxFrameBytes >= 4)) {
      throw new RangeError(`MjpegParser: maxFrameBytes must be an integer >= 4 (got ${opts.maxFrameBytes})`);
    }
    this.maxFrameBytes = opts.maxFrameBytes;
  }

  get stats(): Readonly<MjpegStats> {
    return { ...this.counters };
  }

  /** Bytes currently buffered (for tests and diagnostics). */
  get buffered(): number {
    return this.len;
  }

  /** Forgets any partial frame (e.g. when the producing process restarts). Counters are kept. */
  reset(): void {
    this.buf = new Uint8Array(INITIAL_CAPACITY);
    this.len = 0;
    this.pos = 0;
    this.frameStart = 0;
    this.state = State.Seek;
    this.dropping = false;
    this.discarded = 0;
  }

  /** Feeds the next chunk; returns the frames it completed, oldest first (each a copy the caller owns). */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let offset = 0;
    // A chunk is fed in slices no larger than maxFrameBytes so that the buffer never holds much more than that.
    while (offset < chunk.length) {
      const piece = chunk.subarray(offset, offset + this.maxFrameBytes);
      offset += piece.length;
      this.append(piece);
      this.parse(frames);
      this.compact();
    }
    return frames;
  }

  private append(piece: Uint8Array): void {
    if (this.len + piece.length > this.buf.length) {
      let cap = this.buf.length;
      while (cap < this.len + piece.length) cap *= 2;
      const bigger = new Uint8Array(cap);
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(piece, this.len);
    this.len += piece.length;
  }

  /** Size of the current frame so far, counting up to position p. */
  private frameSize(p: number): number {
    return this.discarded + p - this.frameStart;
  }

  private parse(out: Uint8Array[]): void {
    const b = this.buf;
    for (;;) {
      // Every byte before pos belongs to the frame, so it is known to be too big as soon as pos passes the limit.
      if (this.state !== State.Seek && !this.dropping && this.frameSize(this.pos) > this.maxFrameBytes) {
        this.dropping = true;
      }
      switch (this.state) {
        case State.Seek: {
          let i = this.pos;
          while (i + 1 < this.len && !(b[i] === 0xff && b[i + 1] === 0xd8)) i++;
          if (i + 1 >= this.len) {
            // Keep a trailing 0xFF: it may be the first half of an SOI.
            const next = this.len > this.pos && b[this.len - 1] === 0xff ? this.len - 1 : Math.max(this.pos, this.len);
            this.counters.garbageBytes += next - this.pos;
            this.pos = next;
            return;
          }
          this.counters.garbageBytes += i - this.pos;
          this.beginFrame(i);
          continue;
        }
        case State.Marker: {
          if (this.pos + 2 > this.len) return;
          if (b[this.pos] !== 0xff) {
            // Not a marker where one must be: this was no JPEG (an FF D8 in garbage) or it is corrupt. libjpeg would
            // skip to the next marker, but in a stream that risks gluing frames together; start over after its SOI.
            this.resync();
            continue;
          }
          const m = b[this.pos + 1]!;
          if (m === 0xff) {
            this.pos++; // fill byte
            continue;
          }
          if (m === 0xd9) {
            this.endFrame(this.pos + 2, out);
            continue;
          }
          if (m === 0xd8) {
            // A new image began before this one ended: the previous one was cut short.
            this.counters.broken++;
            this.beginFrame(this.pos);
            continue;
          }
          if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            this.pos += 2; // markers without a length: TEM, RSTn
            continue;
          }
          if (m === 0x00) {
            this.resync(); // FF 00 only exists inside entropy-coded data
            continue;
          }
          if (this.pos + 4 > this.len) return;
          const length = (b[this.pos + 2]! << 8) | b[this.pos + 3]!;
          if (length < 2) {
            this.resync();
            continue;
          }
          this.pos += 2 + length;
          if (m === 0xda) this.state = State.Scan;
          // The segment may end beyond the bytes held so far: Marker/Scan wait until pos is reached.
          if (this.pos > this.len) return;
          continue;
        }
        case State.Scan: {
          if (this.pos > this.len) return;
          let i = this.pos;
          for (;;) {
            i = b.subarray(0, this.len).indexOf(0xff, i);
            if (i < 0) {
              this.pos = this.len;
              return;
            }
            if (i + 1 >= this.len) {
              this.pos = i;
              return;
            }
            const next = b[i + 1]!;
            if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
              i += 2;
              continue;
            }
            if (next === 0xff) {
              i += 1;
              continue;
            }
            break;
          }
          this.pos = i;
          this.state = State.Marker;
          continue;
        }
      }
    }
  }

  private beginFrame(at: number): void {
    this.frameStart = at;
    this.pos = at + 2;
    this.discarded = 0;
    this.dropping = false;
    this.state = State.Marker;
  }

  private endFrame(end: number, out: Uint8Array[]): void {
    if (this.dropping || this.frameSize(end) > this.maxFrameBytes) {
      this.counters.oversized++;
    } else {
      out.push(this.buf.slice(this.frameStart, end));
      this.counters.frames++;
    }
    this.pos = end;
    this.dropping = false;
    this.discarded = 0;
    this.state = State.Seek;
  }

  /** The frame's structure is invalid: abandon it and look for the next SOI after its own. */
  private resync(): void {
    this.counters.broken++;
    if (this.dropping) {
      this.pos = Math.min(this.pos, this.len);
    } else {
      this.pos = this.frameStart + 2;
    }
    this.dropping = false;
    this.discarded = 0;
    this.state = State.Seek;
  }

  /** Drops bytes that are no longer needed so the buffer holds at most the current frame plus the unparsed tail. */
  private compact(): void {
    let keepFrom: number;
    if (this.state === State.Seek) {
      keepFrom = Math.min(this.pos, this.len);
    } else if (this.dropping) {
      // Only the bytes from pos on can still matter (a marker split across chunks).
      keepFrom = Math.min(this.pos, this.len);
      this.discarded += keepFrom - this.frameStart;
      this.frameStart = keepFrom;
    } else {
      keepFrom = this.frameStart;
    }
    if (keepFrom === 0) return;
    this.buf.copyWithin(0, keepFrom, this.len);
    this.len -= keepFrom;
    this.pos -= keepFrom;
    this.frameStart -= keepFrom;
    if (this.buf.length > INITIAL_CAPACITY && this.len <= INITIAL_CAPACITY / 2 && this.state === State.Seek) {
      // Give back memory after a large frame has gone by.
      this.buf = this.buf.slice(0, INITIAL_CAPACITY);
    }
  }
}
