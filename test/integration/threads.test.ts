/**
 * WASM threads under Node (agent/backend/node-pthreads.ts, docs/threads.md), for real: the threaded-SIMD build with
 * 2 threads reports 2 from the module itself, gives the same features as the single-threaded build for both
 * catalogue extractors, lets the process exit on its own, and falls back to 1 thread with a reason when it cannot
 * start (no SharedArrayBuffer; a pool worker that fails). A process initialises the WASM backend once, so each thread count runs in its own child process
 * (node --import tsx -e CHILD) that prints one JSON line and then simply returns.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { GLUE_MAIN, GLUE_WORKER } from '../../agent/backend/node-pthreads';
import type { BackendInfo } from '../../agent/backend/wasm';
import { autoPoolThreads, cpuCount, planThreads } from '../../agent/backend/threads';
import { CATALOGUE } from '../../agent/extractors/catalogue';
import { ROOT, SAMPLES, tmpDir } from '../support/cli';

const CHILD = `
const fs = require('node:fs');
const tf = require('@tensorflow/tfjs-core');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const { initBackend } = require(${JSON.stringify(path.join(ROOT, 'agent', 'backend', 'wasm.ts'))});
const { loadExtractor } = require(${JSON.stringify(path.join(ROOT, 'agent', 'extractors', 'load.ts'))});
const { decodeImage, toModelInput } = require(${JSON.stringify(path.join(ROOT, 'agent', 'image', 'index.ts'))});
async function main() {
  const info = await initBackend({ backend: 'wasm', threads: JSON.parse(process.env.THREADS) });
  const features = {};
  const executors = {};
  const img = decodeImage(new Uint8Array(fs.readFileSync(process.env.PHOTO)), { maxPixels: 1e8 });
  for (const ref of JSON.parse(process.env.EXTRACTORS)) {
    const ex = await loadExtractor({ ref });
    const input = toModelInput(img, { inputSize: ex.info.inputSize, valueRange: ex.info.valueRange, resize: 'squash' });
    const out = ex.extract(input);
    features[ref] = Array.from(out.dataSync());
    executors[ref] = ex.info.executor;
    out.dispose();
    input.dispose();
    ex.dispose();
  }
  // SWITCH: the same frames again on 1 thread through the pool switch (agent/backend/pool-switch.ts), then back.
  const featuresAt1 = {};
  let tensorsAfterSwitch = null;
  if (process.env.SWITCH) {
    const { locatePoolSwitch } = require(${JSON.stringify(path.join(ROOT, 'agent', 'backend', 'pool-switch.ts'))});
    const sw = locatePoolSwitch(tf.backend().wasm);
    if (typeof sw === 'string') throw new Error(sw);
    const before = tf.memory().numTensors;
    for (const ref of JSON.parse(process.env.EXTRACTORS)) {
      const ex = await loadExtractor({ ref });
      const input = toModelInput(img, { inputSize: ex.info.inputSize, valueRange: ex.info.valueRange, resize: 'squash' });
      sw.use(1);
      const out = ex.extract(input);
      featuresAt1[ref] = { threads: tf.backend().wasm.tfjs.getThreadsCount(), values: Array.from(out.dataSync()) };
      sw.use(sw.poolThreads);
      out.dispose();
      input.dispose();
      ex.dispose();
    }
    tensorsAfterSwitch = tf.memory().numTensors - before;
  }
  const { threadsStatus } = require(${JSON.stringify(path.join(ROOT, 'agent', 'backend', 'wasm.ts'))});
  const report = { info, moduleThreads: tf.backend().wasm.tfjs.getThreadsCount(), packageThreads: wasm.getThreadsCount(), features, executors, featuresAt1, tensorsAfterSwitch, status: threadsStatus() };
  process.stdout.write(JSON.stringify(report) + '\\n');
  // and return: no process.exit(), the pool's workers must not keep the process alive
}
main().catch((e) => { console.error(e); process.exitCode = 1; });
`;

interface ChildReport {
  info: BackendInfo;
  moduleThreads: number;
  packageThreads: number;
  features: Record<string, number[]>;
  executors: Record<string, { kind: string; retention?: string }>;
  featuresAt1: Record<string, { threads: number; values: number[] }>;
  tensorsAfterSwitch: number | null;
  status: { policy: string; threads: number; max: number };
}

interface ChildRun {
  report: ChildReport;
  /** Set when the child did not end by itself and the hang guard killed it. */
  killedByGuard: boolean;
  code: number | null;
  stderr: string;
}

const EXTRACTORS = CATALOGUE.map((e) => e.id);

/** `nodeArgs` replaces the default ['--import', 'tsx']. */
function runChild(threads: 'auto' | number, opts: { extractors?: string[]; nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? ['--import', 'tsx']), '-e', CHILD], {
      cwd: ROOT,
      env: {
        ...process.env,
        EDGEHEAD_LOG_LEVEL: undefined,
        THREADS: JSON.stringify(threads),
        EXTRACTORS: JSON.stringify(opts.extractors ?? EXTRACTORS),
        PHOTO: path.join(SAMPLES, 'fish', 'fish1.jpg'),
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killedByGuard = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // A hang guard, generous for a slow shared CI machine: a child kept alive by its workers would never end, and
    // being killed here fails the exit tests (it is the only way they can tell "never" from "not yet").
    const timer = setTimeout(() => {
      killedByGuard = true;
      child.kill('SIGKILL');
    }, 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!stdout.includes('\n')) return reject(new Error(`child (threads ${threads}) printed no report (code ${code}, ${signal ?? 'no signal'}):\n${stderr}`));
      resolve({ report: JSON.parse(stdout.split('\n')[0]!) as ChildReport, killedByGuard, code, stderr });
    });
  });
}

function maxAbsDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('WASM threads under Node', () => {
  let one: ChildRun;
  let two: ChildRun;

  test('threads: 2 starts the threaded-SIMD build with 2 threads, as the module itself reports', async () => {
    two = await runChild(2);
    assert.equal(two.code, 0, two.stderr);
    const { info } = two.report;
    assert.equal(info.threads, 2);
    assert.equal(two.report.moduleThreads, 2, 'tf.backend().wasm.tfjs.getThreadsCount()');
    assert.equal(two.report.packageThreads, 2, "tfjs-backend-wasm's getThreadsCount()");
    assert.equal(info.wasmBinary, 'tfjs-backend-wasm-threaded-simd.wasm');
    assert.equal(info.threadsNote, undefined);
  });

  test('the process exits by itself once main returns (no process.exit(): the pool must not keep it alive)', () => {
    assert.ok(two, 'needs the threads: 2 run');
    assert.equal(two.killedByGuard, false, 'still running 120 s after start: killed');
    assert.equal(two.code, 0);
  });

  test('threads: 1 uses the single-threaded SIMD build (no workers)', async () => {
    one = await runChild(1);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.report.info.threads, 1);
    assert.equal(one.report.moduleThreads, 1);
    assert.equal(one.report.info.wasmBinary, 'tfjs-backend-wasm-simd.wasm');
    assert.equal(one.report.info.threadsNote, undefined);
  });

  for (const id of EXTRACTORS) {
    test(`${id}: features with 2 threads equal 1-thread features within 1e-5`, (t) => {
      assert.ok(one && two, 'needs both runs');
      const a = one.report.features[id]!;
      const b = two.report.features[id]!;
      assert.ok(a.length > 0);
      const d = maxAbsDiff(a, b);
      t.diagnostic(`max |2 threads - 1 thread| = ${d}`);
      assert.ok(d <= 1e-5, `max |2 threads - 1 thread| = ${d}`);
    });
  }

  test("edgehead's executors keep a frame's values until its end with 2 threads, free them at last use with 1", () => {
    assert.ok(one && two, 'needs both runs');
    for (const id of EXTRACTORS) {
      assert.equal(one.report.executors[id]!.retention, 'lastUse', id);
      assert.equal(two.report.executors[id]!.retention, 'frame', id);
    }
    assert.deepEqual(Object.values(two.report.executors).map((e) => e.kind).sort(), ['fused-graph', 'fused-layers']);
  });

  test(`threads: 'auto' starts a pool of autoPoolThreads(cpus) = ${autoPoolThreads(cpuCount())} here, adaptive, and says why if fewer than the CPUs`, async () => {
    const run = await runChild('auto', { extractors: [] });
    assert.equal(run.code, 0, run.stderr);
    const plan = planThreads('auto', cpuCount());
    assert.equal(run.report.info.threads, plan.count);
    assert.equal(run.report.moduleThreads, plan.count);
    assert.equal(run.report.info.threadsNote, plan.note);
    assert.equal(run.report.info.threadsPolicy, plan.adaptive ? 'adaptive' : 'fixed');
    assert.deepEqual(run.report.status, { policy: plan.adaptive ? 'adaptive' : 'fixed', threads: plan.count, max: plan.count }, 'no decision before any frame');
  });

  test('the pool switch: the same frame on 1 thread (one store, no new pool) gives the same features as on the pool', async () => {
    const run = await runChild(2, { env: { SWITCH: '1' } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.report.moduleThreads, 2, 'back on the pool after the switch');
    for (const id of EXTRACTORS) {
      const at1 = run.report.featuresAt1[id]!;
      assert.equal(at1.threads, 1, `${id} ran on 1 thread`);
      const pool = run.report.features[id]!;
      assert.equal(at1.values.length, pool.length);
      const diff = Math.max(...pool.map((v, i) => Math.abs(v - at1.values[i]!)));
      assert.ok(diff <= 1e-5, `${id}: max |diff| ${diff}`);
    }
    assert.equal(run.report.tensorsAfterSwitch, 0, 'no tensor left behind');
    assert.equal(run.killedByGuard, false, 'the idle pool worker does not keep the process alive');
  });

  test('without SharedArrayBuffer: single-threaded SIMD, and threadsNote says why', async () => {
    // tsx's ES-module hooks need SharedArrayBuffer themselves: this child loads TypeScript through tsx's CommonJS hook.
    const nodeArgs = ['--no-harmony-sharedarraybuffer', '--require', 'tsx/cjs'];
    const run = await runChild(2, { nodeArgs, extractors: ['mobilenet_v2_100'] });
    assert.equal(run.code, 0, run.stderr);
    const { info } = run.report;
    assert.equal(info.threads, 1);
    assert.equal(run.report.moduleThreads, 1);
    assert.equal(info.wasmBinary, 'tfjs-backend-wasm-simd.wasm');
    assert.match(info.threadsNote ?? '', /SharedArrayBuffer is unavailable.*running single-threaded/);
    assert.match(run.stderr, /WASM threads: SharedArrayBuffer is unavailable/, 'the fallback is logged as a warning');
    assert.equal(run.report.features.mobilenet_v2_100!.length, 1280, 'inference still works');
  });

  test('a pool worker that fails to start: single-threaded SIMD with the reason, nothing left running', async () => {
    // A .wasm folder whose worker glue throws as soon as it runs (the probe worker only checks the main script).
    const dir = tmpDir('broken-glue-');
    const wasmDist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
    for (const f of fs.readdirSync(wasmDist).filter((f) => f.endsWith('.wasm'))) fs.copyFileSync(path.join(wasmDist, f), path.join(dir, f));
    fs.copyFileSync(path.join(wasmDist, '..', 'wasm-out', GLUE_MAIN), path.join(dir, GLUE_MAIN));
    fs.writeFileSync(path.join(dir, GLUE_WORKER), 'module.exports.wasmWorkerContents = "importScripts; throw new Error(\'worker start failed\')";');
    const run = await runChild(2, { env: { EDGEHEAD_WASM_DIR: dir }, extractors: ['mobilenet_v2_100'] });
    assert.equal(run.code, 0, run.stderr);
    const { info } = run.report;
    assert.equal(info.threads, 1);
    assert.equal(info.wasmBinary, 'tfjs-backend-wasm-simd.wasm');
    assert.match(info.threadsNote ?? '', /threaded WASM build failed to start \(a pthread worker failed: .*\); running single-threaded/);
    assert.equal(run.report.features.mobilenet_v2_100!.length, 1280, 'inference still works');
    assert.equal(run.killedByGuard, false, 'failed workers must not keep the process alive');
  });
});
