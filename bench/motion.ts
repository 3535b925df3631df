/**
 * `npm run bench -- motion [--frames 50] [--extractor mobilenet_v2_140] [--threads 1]`. Not a test.
 *
 * The motion/change gate (motion.gate, agent/motion/) through the real frame code in-process: FrameLoop ->
 * Classifier (the real extractor on the WASM backend) -> PredictionFilter, with the gate off and on, side by side in
 * one run, on three scenes generated as 640x480 JPEG files by ffmpeg into a temp folder:
 *   - moving: `testsrc` at 5 fps (every frame differs),
 *   - static: one testsrc frame repeated,
 *   - change: the static frame N/2 times, then the same frame with a dark box drawn in (1/16 of the frame, ffmpeg
 *     drawbox): how many ticks after the change until a frame is classified again (1 = the tick of the change
 *     itself) and how long that tick took.
 * Per tick: process CPU time (process.cpuUsage, user + system) and wall time, medians; the share of ticks the gate
 * skipped (frames.unchanged / ticks). Prints a table; the figures go to docs/preprocessing.md by hand.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ManualClock } from '../base/clock';
import { configureLogging } from '../base/log';
import { initBackend } from '../agent/backend/wasm';
import { EventBus } from '../agent/events';
import { loadExtractor } from '../agent/extractors/load';
import { FrameLoop } from '../agent/frames/frame-loop';
import { PredictionFilter } from '../agent/frames/prediction-filter';
import { Classifier } from '../agent/inference/classifier';
import { DenseHead } from '../agent/inference/dense-head';
import { MotionGate } from '../agent/motion/gate';
import type { Frame, FrameSource } from '../agent/sources/source';
import { FrameStats } from '../agent/telemetry/stats';
import { DEMO_HEAD_PATH, readHeadFile } from '../protocol/head/files';

const round2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? round2(s[Math.floor((s.length - 1) / 2)]!) : NaN;
};

/** Frames from memory, in order, then again from the start. */
class ListSource implements FrameSource {
  readonly type = 'bench';
  private next = 0;
  constructor(private readonly frames: Uint8Array[]) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async capture(): Promise<Frame> {
    const i = this.next++ % this.frames.length;
    return { bytes: this.frames[i]!, capturedAt: Date.now(), origin: `bench:${i}`, captureMs: 0 };
  }
}

function generateFrames(dir: string, count: number): { moving: Uint8Array[]; still: Uint8Array; changed: Uint8Array } {
  const moveDir = path.join(dir, 'moving');
  fs.mkdirSync(moveDir);
  execFileSync('ffmpeg', ['-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=640x480:rate=5', '-frames:v', String(count), '-q:v', '3', path.join(moveDir, '%03d.jpg')]);
  const files = fs.readdirSync(moveDir).filter((f) => f.endsWith('.jpg')).sort();
  const moving = files.map((f) => new Uint8Array(fs.readFileSync(path.join(moveDir, f))));
  // the still frame with an object in it: a dark 160x120 box (1/16 of the frame)
  const changedFile = path.join(dir, 'changed.jpg');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-i', path.join(moveDir, files[0]!), '-vf', 'drawbox=x=240:y=180:w=160:h=120:color=black:t=fill', '-q:v', '3', changedFile]);
  return { moving, still: moving[0]!, changed: new Uint8Array(fs.readFileSync(changedFile)) };
}

interface RunResult {
  scene: string;
  gate: boolean;
  ticks: number;
  skippedPercent: number;
  cpuMsPerTick: number;
  wallMsPerTick: number;
  /** change scene: ticks from the change to the next classified frame (1 = the change's own tick), and its wall ms. */
  changeTicks?: number;
  changeMs?: number;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { frames: { type: 'string', default: '50' }, extractor: { type: 'string', default: 'mobilenet_v2_140' }, threads: { type: 'string', default: '1' } } });
  const count = Number(values.frames);
  configureLogging({ level: 'error' });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-bench-motion-'));
  try {
    const { moving, still, changed } = generateFrames(tmp, count);
    const backend = await initBackend({ backend: 'wasm', threads: Number(values.threads) });
    const extractor = await loadExtractor({ ref: values.extractor! });
    const demo = readHeadFile(DEMO_HEAD_PATH(), 1 << 24);
    const dim = extractor.info.featureDim;
    const headFile = { ...demo, manifest: { ...demo.manifest, featureDim: dim, extractor: { id: extractor.info.id, fingerprint: extractor.info.fingerprint } }, kernel: new Float32Array(dim * demo.manifest.classes.length) };
    const half = Math.floor(count / 2);
    const scenes: Record<string, Uint8Array[]> = {
      static: Array.from({ length: count }, () => still),
      moving,
      change: [...Array.from({ length: half }, () => still), ...Array.from({ length: count - half }, () => changed)],
    };
    const results: RunResult[] = [];
    process.stderr.write(`bench motion: ${extractor.info.id}, ${backend.backend} ${backend.threads} thread(s), ${count} frames per scene\n`);
    // warm-up: JIT, XNNPACK operators, WASM memory
    await runScene('warmup', moving.slice(0, 5), false);
    for (const [scene, frames] of Object.entries(scenes)) {
      for (const gate of [false, true]) results.push(await runScene(scene, frames, gate, scene === 'change' ? half : undefined));
    }
    print(results);

    async function runScene(scene: string, frames: Uint8Array[], gate: boolean, changeAt?: number): Promise<RunResult> {
      const classifier = new Classifier(extractor, DenseHead.fromFile(headFile), { resize: 'squash', maxPixels: 40e6, topK: 3 });
      const stats = new FrameStats();
      const clock = new ManualClock(0);
      const loop = new FrameLoop({
        source: new ListSource(frames),
        classifier,
        filter: new PredictionFilter({ minScore: 0, onlyOnChange: true, debounce: 1, unknownLabel: 'unknown', maxIntervalSec: 300 }, () => clock.now()),
        publish: async () => undefined,
        events: new EventBus(),
        stats,
        run: 1,
        extractorId: extractor.info.id,
        gate: gate ? new MotionGate({ threshold: 4, size: 32, maxPixels: 40e6, maxAgeMs: 300_000, now: () => clock.now() }) : undefined,
      });
      const cpu: number[] = [];
      const wall: number[] = [];
      const classifiedAt: boolean[] = [];
      for (let i = 0; i < frames.length; i++) {
        const okBefore = stats.ok;
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await loop.tick();
        wall.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
        classifiedAt.push(stats.ok > okBefore);
        clock.advance(200); // 5 fps
      }
      loop.dispose();
      const r: RunResult = { scene, gate, ticks: frames.length, skippedPercent: round2((100 * stats.unchanged) / frames.length), cpuMsPerTick: median(cpu), wallMsPerTick: median(wall) };
      if (changeAt !== undefined) {
        const first = classifiedAt.findIndex((c, i) => i >= changeAt && c);
        r.changeTicks = first < 0 ? undefined : first - changeAt + 1;
        r.changeMs = first < 0 ? undefined : round2(wall[first]!);
      }
      if (stats.failed) throw new Error(`${scene}: ${stats.failed} frames failed`);
      return r;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function print(results: RunResult[]): void {
  const rows = [['scene', 'gate', 'ticks', 'skipped', 'CPU ms/tick (median)', 'wall ms/tick (median)', 'change -> classified']];
  for (const r of results) {
    rows.push([r.scene, r.gate ? 'on' : 'off', String(r.ticks), `${r.skippedPercent}%`, String(r.cpuMsPerTick), String(r.wallMsPerTick), r.changeTicks === undefined ? '' : `tick ${r.changeTicks} (${r.changeMs} ms)`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) process.stdout.write(`| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |\n`);
}

export { main };
