/**
 * Backend selection. The agent runs on tfjs-backend-wasm (SIMD where the runtime supports it); tfjs-backend-cpu is
 * available for reference comparisons and tests. No tfjs-node, no WebGL.
 *
 * The .wasm binaries are located at run time whether we run from node_modules (development) or from the esbuild
 * bundle folder (dist/, where the build copies them next to edgehead.cjs).
 *
 * Threads: `threads` > 1 starts tfjs' threaded-SIMD build through the Node pthread shims of node-pthreads.ts (tfjs
 * alone refuses threads under Node); the count comes from threads.ts (the 'auto' policy); anything that prevents it
 * falls back to the single-threaded SIMD build with BackendInfo.threadsNote saying why. docs/threads.md explains.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import {
  glueDirCandidates,
  loadThreadedGlue,
  type PthreadModule,
  probeWorker,
  settleWorkers,
  type ThreadedGlue,
  withNodePthreads,
} from './node-pthreads';
import { AdaptiveThreads, adaptiveThreads, setAdaptiveThreads, type ThreadsStatus } from './adaptive-threads';
import { locatePoolSwitch, type PoolModule } from './pool-switch';
import { autoThreads, cpuCount, planThreads, threadSupportProblem } from './threads';

const log = createLogger('backend');

export type BackendName = 'wasm' | 'cpu';

export interface BackendOptions {
  backend: BackendName;
  /** 'auto' (threads.ts autoThreads) or an explicit count. */
  threads: 'auto' | number;
}

export interface BackendInfo {
  backend: BackendName;
  simd: boolean;
  /** Threads of the WASM module's XNNPACK pool, as the module reports it (get_threads_count; 1 = single-threaded). */
  threads: number;
  /** 'adaptive': `auto` switches frames between this pool and 1 thread at run time (threadsStatus() says which now). */
  threadsPolicy: 'fixed' | 'adaptive';
  /** Why fewer threads than requested (or, for 'auto', than CPUs) are used, if so. */
  threadsNote?: string;
  wasmBinary?: string;
  wasmDir?: string;
  tfjsVersion: string;
  node: string;
  arch: string;
  cpus: number;
}

const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'];

/** Folders that may hold the .wasm binaries, most specific first. */
function wasmDirCandidates(): string[] {
  const dirs: string[] = [];
  if (process.env.EDGEHEAD_WASM_DIR) dirs.push(process.env.EDGEHEAD_WASM_DIR);
  // Bundle layout: dist/edgehead.cjs + dist/wasm/*.wasm
  dirs.push(path.join(__dirname, 'wasm'), __dirname);
  try {
    dirs.push(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist'));
  } catch {
    // not resolvable inside the bundle: fine, the bundle carries its own copy
  }
  return dirs;
}

export function findWasmDir(): string {
  const candidates = wasmDirCandidates();
  for (const dir of candidates) {
    if (WASM_FILES.every((f) => fs.existsSync(path.join(dir, f)))) return dir;
  }
  throw new EdgeheadError('BACKEND', `tfjs WASM binaries not found (looked in ${candidates.join(', ')})`, {
    hint: 'set EDGEHEAD_WASM_DIR to a folder containing tfjs-backend-wasm*.wasm',
  });
}

let active: BackendInfo | undefined;
/** The WASM module can be initialised once per process: the first wasm initBackend() decides its threads. */
let wasmInfo: BackendInfo | undefined;

/**
 * Initialise the tfjs backend once per process. Later calls return the same info (switching between 'cpu' and
 * 'wasm' is allowed; the WASM module keeps the thread count of its first initialisation).
 */
export async function initBackend(opts: BackendOptions = { backend: 'wasm', threads: 'auto' }): Promise<BackendInfo> {
  if (active && active.backend === opts.backend) return active;
  // PROD silences tfjs' console banners (e.g. the CPU backend's "install tfjs-node" notice): libraries that print
  // on load garble the CLI's output. Our own logger reports what matters.
  tf.env().set('PROD', true);
  const base = {
    tfjsVersion: tf.version_core,
    node: process.versions.node,
    arch: process.arch,
    cpus: cpuCount(),
  };
  if (opts.backend === 'cpu') {
    await tf.setBackend('cpu');
    await tf.ready();
    active = { ...base, backend: 'cpu', simd: false, threads: 1, threadsPolicy: 'fixed' };
    return active;
  }
  if (wasmInfo) {
    await setBackendOrThrow();
    active = wasmInfo;
    return active;
  }
  // The Emscripten glue registers process-wide handlers while it starts (also in a failed threaded attempt).
  const listenersBefore = processListeners();
  try {
    wasmInfo = await startWasm(opts.threads, base);
  } finally {
    removeAddedListeners(listenersBefore);
  }
  active = wasmInfo;
  return active;
}

async function startWasm(requested: 'auto' | number, base: Omit<BackendInfo, 'backend' | 'simd' | 'threads' | 'threadsPolicy'>): Promise<BackendInfo> {
  const wasmDir = findWasmDir();
  setWasmPaths(wasmDir + path.sep);
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
  const plan = planThreads(requested, base.cpus);
  let threadsNote = plan.note;
  let threaded = false;
  let adaptive = false;
  if (plan.count > 1) {
    const started = simd ? await startThreaded(wasmDir, plan.count, plan.adaptive === true, base.cpus) : 'tfjs has no threaded build without WASM SIMD';
    if (typeof started === 'string') threadsNote = `${started}; running single-threaded`;
    else {
      threaded = true;
      adaptive = started.adaptive;
      if (started.note) threadsNote = started.note;
    }
  }
  if (!threaded) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    setThreadsCount(1);
    await setBackendOrThrow();
  }
  const threads = adaptive ? plan.count : actualThreads();
  if (!threadsNote && threads < plan.count) threadsNote = `tfjs started ${threads} of ${plan.count} threads`;
  const binary = simd ? (threaded ? WASM_FILES[2] : WASM_FILES[1]) : WASM_FILES[0];
  // A failed threaded start costs performance: say so (doctor, the birth message and telemetry carry the note too).
  if (plan.count > 1 && !threaded) log.warn(`WASM threads: ${threadsNote}`);
  log.debug(`WASM backend: ${binary}, ${threads} thread(s)${threadsNote ? ` (${threadsNote})` : ''}`);
  return { ...base, backend: 'wasm', simd, threads, threadsPolicy: adaptive ? 'adaptive' : 'fixed', ...(threadsNote ? { threadsNote } : {}), wasmBinary: binary, wasmDir };
}

/** Longest a threaded start may take before we give up and run single-threaded (a Pi 3 needs about 2 s). */
const THREADED_START_TIMEOUT_MS = 60_000;

/**
 * Tries the threaded-SIMD build with `threads` threads (see node-pthreads.ts). Resolves to what started, or to the
 * reason it could not; in that case nothing is left running and the caller starts the single-threaded build.
 * `adaptive`: also find the pool switch (pool-switch.ts) and install the run-time policy; without a switch, fall back
 * to the static 'auto' count (threads.ts autoThreads) while the spare pre-spawned workers still exist.
 */
async function startThreaded(wasmDir: string, threads: number, adaptive: boolean, cpus: number): Promise<{ adaptive: boolean; note?: string } | string> {
  const problem = threadSupportProblem();
  if (problem) return problem;
  let glue: ThreadedGlue;
  try {
    glue = loadThreadedGlue(glueDirCandidates(wasmDir));
  } catch (e) {
    return (e as Error).message;
  }
  const probe = await probeWorker(glue);
  if (probe) return probe;
  // Our runtime checks replace tfjs' "not in Node" answer (tfjs#3830); the count applies to the next init.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  try {
    const { spawned } = await withNodePthreads(glue, threads, setBackendOrThrow, THREADED_START_TIMEOUT_MS);
    let started: { adaptive: boolean; note?: string } = { adaptive: false };
    if (adaptive) started = startAdaptive(wasmModule() as unknown as PoolModule, cpus);
    const running = settleWorkers(wasmModule() as unknown as PthreadModule);
    log.debug(`WASM threads: ${spawned.length} workers spawned, ${running} kept for XNNPACK's pool`);
    return started;
  } catch (e) {
    return `the threaded WASM build failed to start (${(e as { message?: string }).message ?? e})`;
  }
}

/** Installs the adaptive policy on the started pool, or sets the static 'auto' count when the switch is not found. */
function startAdaptive(m: PoolModule, cpus: number): { adaptive: boolean; note?: string } {
  const pool = locatePoolSwitch(m);
  if (typeof pool !== 'string') {
    setAdaptiveThreads(new AdaptiveThreads(pool));
    return { adaptive: true };
  }
  const fixed = autoThreads(cpus);
  if (fixed !== m.tfjs.getThreadsCount()) m.tfjs.initWithThreadsCount(fixed);
  log.warn(`WASM threads: no run-time switch (${pool}); auto runs a fixed ${fixed} thread(s)`);
  return { adaptive: false, note: `auto without a run-time switch (${pool}): fixed ${fixed} of ${cpus} CPUs` };
}

/** The thread count frames run with now, and why (`auto`: the last decision of the run-time policy). */
export function threadsStatus(): ThreadsStatus | undefined {
  const info = active;
  if (!info) return undefined;
  const a = info.backend === 'wasm' ? adaptiveThreads() : undefined;
  return a ? a.status() : { policy: 'fixed', threads: info.threads, max: info.threads };
}

async function setBackendOrThrow(): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
    await tf.ready();
  } catch (e) {
    throw new EdgeheadError('BACKEND', `WASM backend failed to start: ${(e as { message?: string }).message ?? e}`, {
      cause: e,
    });
  }
  if (!ok || tf.getBackend() !== 'wasm') throw new EdgeheadError('BACKEND', 'WASM backend failed to initialise');
}

/** The Emscripten module behind the active WASM backend. */
function wasmModule(): { tfjs: { getThreadsCount(): number } } {
  return (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } }).wasm;
}

/** Threads the module's XNNPACK pool really has (backend.cc get_threads_count; -1 = no pool = 1 thread). */
function actualThreads(): number {
  return Math.max(1, wasmModule().tfjs.getThreadsCount());
}

type ProcessEvent = 'uncaughtException' | 'unhandledRejection';
const PROCESS_EVENTS: ProcessEvent[] = ['uncaughtException', 'unhandledRejection'];

type Listener = (...args: unknown[]) => void;
const listenersOf = (ev: ProcessEvent): Listener[] => process.listeners(ev as 'uncaughtException') as Listener[];

function processListeners(): Map<ProcessEvent, Listener[]> {
  return new Map(PROCESS_EVENTS.map((ev) => [ev, listenersOf(ev)]));
}

/**
 * The Emscripten glue registers process-wide handlers that rethrow every uncaught exception and unhandled rejection
 * (turning a recoverable error anywhere in the agent into a crash with a minified stack). The agent owns its process
 * edges, so those handlers are removed right after the module initialises.
 */
function removeAddedListeners(before: Map<ProcessEvent, Listener[]>): void {
  for (const ev of PROCESS_EVENTS) {
    const old = before.get(ev) ?? [];
    for (const l of listenersOf(ev)) if (!old.includes(l)) process.removeListener(ev, l);
  }
}

export function backendInfo(): BackendInfo | undefined {
  return active;
}
