/**
 * libjpeg-turbo's TurboJPEG decompressor, compiled to WebAssembly: the 139 KB jpeg-turbo.wasm of the npm package
 * @cwasm/jpeg-turbo (libjpeg-turbo 2.0, built for wasm32 with no JavaScript glue). Only the .wasm file is used; this
 * module is its loader. Synchronous: reading, compiling and instantiating the 139 KB module takes ~20 ms, once.
 *
 * Why WASM: one portable binary for every Pi (arm64, armv7) inside the single-file bundle, 4-6x faster than jpeg-js,
 * and libjpeg's DCT-domain scaling (decode at M/8 of the size, M = 1..8) which no pure-JS decoder offers. See
 * docs/preprocessing.md.
 *
 * Failure model. The module was built with setjmp stubbed out: libjpeg's fatal errors (error_exit -> longjmp) reach
 * us as a JavaScript exception thrown *through* the WASM frames. That skips their epilogues, so the module's shadow
 * stack pointer and heap are left in an unknown state; the instance is therefore discarded after any failure and a
 * fresh one (same compiled module, new memory) made on the next call. libjpeg warnings (corrupt but decodable
 * data) make tjDecompress2 return -1 after a complete decode; they count as failures too, so the caller can fall back
 * to a decoder with known behaviour. The decoder runs inside the WASM sandbox: a malformed file can at worst corrupt
 * the module's own linear memory, which is thrown away.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const JPEG_TURBO_WASM = 'jpeg-turbo.wasm';

/** TurboJPEG pixel format TJPF_RGBA (alpha filled with 255). */
const TJPF_RGBA = 7;
/** TJFLAG_FASTUPSAMPLE: subsampled chroma is replicated, not interpolated ("fancy upsampling"). That is what jpeg-js
 * does, so both decoders give the same pixels (up to IDCT rounding) and heads trained through either agree: with
 * fancy upsampling 1 of the 82 test photos changed its top-1 label, without it none did (docs/preprocessing.md). It is
 * also ~20% faster. The DCT method stays libjpeg's accurate integer IDCT (the default). */
const TJFLAG_FASTUPSAMPLE = 256;
/** WASM memory never shrinks: an instance that grew past this (a large image) is replaced by a fresh one. */
const MAX_KEPT_MEMORY = 64 << 20;

/** The slice of the WebAssembly JS API used here (tsconfig's lib has no DOM/WebAssembly typings). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface TurboExports {
  memory: { buffer: ArrayBuffer };
  malloc(size: number): number;
  free(ptr: number): void;
  tjInitDecompress(): number;
  tjDecompressHeader3(handle: number, buf: number, size: number, w: number, h: number, subsamp: number, cs: number): number;
  tjDecompress2(handle: number, buf: number, size: number, dst: number, w: number, pitch: number, h: number, pf: number, flags: number): number;
  tjDestroy(handle: number): number;
}

const EXPORTS: (keyof TurboExports)[] = ['memory', 'malloc', 'free', 'tjInitDecompress', 'tjDecompressHeader3', 'tjDecompress2', 'tjDestroy'];

export interface TurboDecoded {
  width: number;
  height: number;
  /** RGBA, width*height*4 bytes, a copy owned by the caller. */
  data: Uint8Array;
}

/** Folders that may hold jpeg-turbo.wasm, most specific first: the bundle's dist/wasm/ (next to edgehead.cjs), the
 * EDGEHEAD_WASM_DIR override shared with the tfjs binaries, then the npm package (development). */
export function jpegTurboCandidates(): string[] {
  const files: string[] = [];
  if (process.env.EDGEHEAD_WASM_DIR) files.push(path.join(process.env.EDGEHEAD_WASM_DIR, JPEG_TURBO_WASM));
  files.push(path.join(__dirname, 'wasm', JPEG_TURBO_WASM), path.join(__dirname, JPEG_TURBO_WASM));
  try {
    files.push(require.resolve(`@cwasm/jpeg-turbo/${JPEG_TURBO_WASM}`));
  } catch {
    // not resolvable inside the bundle: the bundle carries its own copy
  }
  return files;
}

export class JpegTurbo {
  private instance: TurboExports | undefined;

  private constructor(
    private readonly module: object,
    /** Where the binary was loaded from. */
    readonly wasmPath: string,
  ) {}

  /** Compiles the module at wasmPath (first existing file of jpegTurboCandidates() by default). Throws if there is
   * none or it is not a TurboJPEG build. */
  static load(wasmPath: string | undefined = jpegTurboCandidates().find((f) => fs.existsSync(f))): JpegTurbo {
    if (!wasmPath) throw new Error(`${JPEG_TURBO_WASM} not found (looked in ${jpegTurboCandidates().join(', ')})`);
    const turbo = new JpegTurbo(new (wasmApi().Module)(fs.readFileSync(wasmPath)), wasmPath);
    turbo.exports(); // instantiate now: a wrong file fails here, not on the first frame
    return turbo;
  }

  /**
   * Decodes a whole JPEG (SOI..EOI) to RGBA at scale/8 of its size (scale 1..8; 8 = full size), each side rounded up
   * as libjpeg does. `expected` is the frame size the caller read from the header: a decoder that sees another one
   * fails. Throws on any libjpeg error or warning; the caller decides what to do then.
   */
  decode(jpeg: Uint8Array, expected: { width: number; height: number }, scale = 8): TurboDecoded {
    if (!(Number.isInteger(scale) && scale >= 1 && scale <= 8)) throw new RangeError(`scale must be 1..8 eighths (got ${scale})`);
    const x = this.exports();
    let ok = false;
    let input = 0;
    let meta = 0;
    let handle = 0;
    let output = 0;
    try {
      input = alloc(x, jpeg.length);
      new Uint8Array(x.memory.buffer, input, jpeg.length).set(jpeg);
      meta = alloc(x, 16);
      handle = x.tjInitDecompress();
      if (!handle) throw new Error('libjpeg-turbo: cannot create a decompressor');
      if (x.tjDecompressHeader3(handle, input, jpeg.length, meta, meta + 4, meta + 8, meta + 12) !== 0) {
        throw new Error('libjpeg-turbo: cannot read the JPEG header');
      }
      const [w, h] = new Int32Array(x.memory.buffer, meta, 2) as unknown as [number, number];
      if (w !== expected.width || h !== expected.height) {
        throw new Error(`libjpeg-turbo reads a ${w}x${h} frame, the header says ${expected.width}x${expected.height}`);
      }
      const width = scaled(w, scale);
      const height = scaled(h, scale);
      output = alloc(x, width * height * 4);
      // Asked for exactly this size, tjDecompress2 picks the largest of its M/8 factors that fits: scale/8.
      if (x.tjDecompress2(handle, input, jpeg.length, output, width, width * 4, height, TJPF_RGBA, TJFLAG_FASTUPSAMPLE) !== 0) {
        throw new Error('libjpeg-turbo: corrupt JPEG data (decoder warning)');
      }
      const data = new Uint8Array(x.memory.buffer, output, width * height * 4).slice();
      ok = true;
      return { width, height, data };
    } finally {
      if (ok) {
        x.tjDestroy(handle);
        for (const p of [input, meta, output]) x.free(p);
      }
      // After a failure the instance may be mid-unwind (see the header comment): start afresh next time.
      if (!ok || x.memory.buffer.byteLength > MAX_KEPT_MEMORY) this.instance = undefined;
    }
  }

  private exports(): TurboExports {
    if (this.instance) return this.instance;
    const fail = (what: string) => (): never => {
      throw new Error(`libjpeg-turbo: ${what}`);
    };
    const imports = {
      env: { setjmp: () => 0, longjmp: fail('fatal decoder error') },
      wasi_snapshot_preview1: {
        environ_sizes_get: () => 0,
        environ_get: fail('environ_get called'),
        proc_exit: fail('exit called'),
        fd_close: fail('fd_close called'),
        fd_seek: fail('fd_seek called'),
        fd_write: fail('fd_write called'),
      },
    };
    const exports = new (wasmApi().Instance)(this.module, imports).exports as Partial<TurboExports>;
    const missing = EXPORTS.filter((k) => !exports[k]);
    if (missing.length) throw new Error(`${this.wasmPath} is not a TurboJPEG build (missing ${missing.join(', ')})`);
    this.instance = exports as TurboExports;
    return this.instance;
  }
}

/** libjpeg's scaled size: ceil(size * scale / 8). */
export function scaled(size: number, scale: number): number {
  return Math.ceil((size * scale) / 8);
}

function alloc(x: TurboExports, size: number): number {
  const p = x.malloc(size);
  if (!p) throw new Error(`libjpeg-turbo: out of memory (${size} bytes)`);
  return p;
}

function wasmApi(): WasmApi {
  return (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
}
