/**
 * One benchmark configuration in its own process (a process can initialise the WASM backend once):
 *   tsx bench/worker.ts '{"extractor":"mobilenet_v2_100","path":"stock","threads":1,"frames":40}'
 * Prints one JSON line with the result. Paths: "stock" = the model as a tfjs user runs it (tfjs-layers / the
 * converter's graph), "edgehead" = our extractor (fused layers executor), "cpu" = tfjs-backend-cpu.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import jpeg from 'jpeg-js';
import { initBackend } from '../agent/backend/wasm';
import { loadExtractor } from '../agent/extractors/load';
import { DenseHead } from '../agent/head/dense-head';
import { DEMO_HEAD_PATH, readHeadFile } from '../agent/head/files';
import { extractFeatures } from '../agent/inference/features';
import { resourcePath } from '../agent/util/paths';

interface Args {
  extractor: string;
  path: 'stock' | 'edgehead' | 'cpu';
  threads: number;
  frames: number;
}

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))]! * 100) / 100;
};

function sampleFrames(): Uint8Array[] {
  const root = resourcePath('assets', 'samples');
  const out: Uint8Array[] = [];
  for (const c of fs.readdirSync(root).sort()) {
    const d = path.join(root, c);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const f of fs.readdirSync(d).sort()) if (/\.jpe?g$/i.test(f)) out.push(new Uint8Array(fs.readFileSync(path.join(d, f))));
  }
  return out;
}

/** A 640x480 JPEG (quality 90) made from a sample frame, for the preprocessing target. */
function vgaJpeg(src: Uint8Array): Uint8Array {
  const img = jpeg.decode(src, { useTArray: true, formatAsRGBA: true });
  const rgba = tf.tidy(() => {
    const t = tf.cast(tf.tensor3d(img.data, [img.height, img.width, 4], 'int32'), 'float32') as tf.Tensor3D;
    return tf.round(tf.clipByValue(tf.image.resizeBilinear(t, [480, 640]), 0, 255)).dataSync();
  });
  const data = Buffer.from(Uint8Array.from(rgba));
  return new Uint8Array(jpeg.encode({ data, width: 640, height: 480 }, 90).data);
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]!) as Args;
  const backend = await initBackend({ backend: a.path === 'cpu' ? 'cpu' : 'wasm', threads: a.threads });
  const extractor = await loadExtractor({ ref: a.extractor, fused: a.path === 'edgehead' });
  const headFile = readHeadFile(DEMO_HEAD_PATH(), 1 << 24);
  const head = DenseHead.fromFile({ ...headFile, manifest: { ...headFile.manifest, featureDim: extractor.info.featureDim } , kernel: new Float32Array(extractor.info.featureDim * headFile.manifest.classes.length), bias: headFile.bias });
  const frames = sampleFrames();
  const opts = { resize: 'squash' as const, maxPixels: 40e6 };
  const stages: Record<'decode' | 'resize' | 'extract' | 'head' | 'total', number[]> = { decode: [], resize: [], extract: [], head: [], total: [] };
  let coldStartMs = 0;
  for (let i = 0; i < a.frames; i++) {
    const t0 = performance.now();
    const r = extractFeatures(extractor, frames[i % frames.length]!, opts);
    const t1 = performance.now();
    const f = tf.tensor2d(r.features, [1, r.features.length]);
    head.predict(f, 3);
    f.dispose();
    const t2 = performance.now();
    if (i === 0) coldStartMs = performance.now(); // ms since this process started
    if (i < 2) continue; // warm-up frames
    stages.decode.push(r.timings.decode);
    stages.resize.push(r.timings.resize);
    stages.extract.push(r.timings.extract);
    stages.head.push(t2 - t1);
    stages.total.push(t2 - t0);
  }
  // Preprocessing of a 640x480 JPEG: decode + resize + normalize, without the extractor.
  const vga = vgaJpeg(frames[0]!);
  const { decodeImage, toModelInput } = await import('../agent/image');
  const pre: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const img = decodeImage(vga, { maxPixels: 40e6 });
    const x = toModelInput(img, { inputSize: extractor.info.inputSize, valueRange: extractor.info.valueRange, resize: 'squash' });
    x.dataSync();
    x.dispose();
    pre.push(performance.now() - t0);
  }
  const stat = (xs: number[]) => ({ median: q(xs, 0.5), p95: q(xs, 0.95) });
  const totalMedian = q(stages.total, 0.5);
  process.stdout.write(
    JSON.stringify({
      extractor: a.extractor,
      path: a.path,
      threads: backend.threads,
      threadsRequested: a.threads,
      threadsNote: backend.threadsNote ?? null,
      simd: backend.simd,
      frames: stages.total.length,
      extractMs: stat(stages.extract),
      decodeMs: stat(stages.decode),
      resizeMs: stat(stages.resize),
      headMs: stat(stages.head),
      preprocessMs: { median: q(stages.decode.map((d, i) => d + stages.resize[i]!), 0.5) },
      preprocess640x480Ms: stat(pre),
      totalMs: stat(stages.total),
      framesPerSec: Math.round((1000 / totalMedian) * 10) / 10,
      coldStartMs: Math.round(coldStartMs),
      rssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    }) + '\n',
  );
  head.dispose();
  extractor.dispose();
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench worker failed: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
