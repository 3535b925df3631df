/**
 * Backend selection. The agent runs on tfjs-backend-wasm (SIMD where the runtime supports it); tfjs-backend-cpu is
 * available for reference comparisons and tests. No tfjs-node, no WebGL.
 *
 * The .wasm binaries are located at run time whether we run from node_modules (development) or from the esbuild
 * bundle folder (dist/, where the build copies them next to edgehead.cjs).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { EdgeheadError } from '../util/errors';
import { createLogger } from '../util/log';

const log = createLogger('backend');

export type BackendName = 'wasm' | 'cpu';

export interface BackendOptions {
  backend: BackendName;
  /** 'auto' or an explicit count. */
  threads: 'auto' | number;
}

export interface BackendInfo {
  backend: BackendName;
  simd: boolean;
  /** Worker threads actually used by the WASM runtime (1 = single-threaded). */
  threads: number;
  /** Why fewer threads than requested are used, if so. */
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

/** Initialise the tfjs backend once per process. Later calls return the same info. */
export async function initBackend(opts: BackendOptions = { backend: 'wasm', threads: 'auto' }): Promise<BackendInfo> {
  if (active && active.backend === opts.backend) return active;
  // PROD silences tfjs' console banners (e.g. the CPU backend's "install tfjs-node" notice): libraries that print
  // on load garble the CLI's output. Our own logger reports what matters.
  tf.env().set('PROD', true);
  const base = {
    tfjsVersion: tf.version_core,
    node: process.versions.node,
    arch: process.arch,
    cpus: os.cpus().length,
  };
  if (opts.backend === 'cpu') {
    await tf.setBackend('cpu');
    await tf.ready();
    active = { ...base, backend: 'cpu', simd: false, threads: 1 };
    return active;
  }
  const wasmDir = findWasmDir();
  setWasmPaths(wasmDir + path.sep);
  let ok: boolean;
  const before = processListeners();
  try {
    ok = await tf.setBackend('wasm');
    await tf.ready();
    removeAddedListeners(before);
  } catch (e) {
    throw new EdgeheadError('BACKEND', `WASM backend failed to start: ${(e as { message?: string }).message ?? e}`, {
      cause: e,
    });
  }
  if (!ok || tf.getBackend() !== 'wasm') throw new EdgeheadError('BACKEND', 'WASM backend failed to initialise');
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
  const threadsSupported = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) as boolean;
  const threadsNote =
    !threadsSupported && opts.threads !== 1
      ? 'tfjs-backend-wasm disables WASM threads under Node (tfjs#3830); running single-threaded'
      : undefined;
  const binary = simd ? (threadsSupported ? WASM_FILES[2] : WASM_FILES[1]) : WASM_FILES[0];
  active = { ...base, backend: 'wasm', simd, threads: 1, threadsNote, wasmBinary: binary, wasmDir };
  if (threadsNote) log.debug(threadsNote);
  return active;
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
