/**
 * How many WASM threads to use, and whether this Node process can run tfjs' threaded-SIMD build at all.
 * Pure functions of their inputs (CPU count, runtime facts) so the unit tests need no WASM; the mechanism that
 * actually starts the threads is in node-pthreads.ts, the orchestration in wasm.ts. Measurements: docs/threads.md.
 */
import * as os from 'node:os';

/**
 * tfjs-backend-wasm 4.22's backend.cc clamps the XNNPACK pool to 8 threads (max_num_threads; the Emscripten glue
 * also pre-spawns 8 pthread workers, PTHREAD_POOL_SIZE).
 */
export const TFJS_MAX_THREADS = 8;

/** Never more than this for 'auto': beyond 4 threads MobileNetV2 at batch 1 gains little. */
export const AUTO_MAX_THREADS = 4;

/** Logical CPUs the process may use. os.cpus() is empty on some ARM kernels and ignores CPU affinity. */
export function cpuCount(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, n);
}

/**
 * The static 'auto' choice, used when the thread count cannot change at run time (see autoPoolThreads): one core
 * fewer than the machine has, at least 1, at most AUTO_MAX_THREADS (1 CPU -> 1, 2 -> 1, 3 -> 2, 4 (Pi 4) -> 3, 8 -> 4).
 * Why not every core: XNNPACK ends each of the dozens of parallel ops of a MobileNetV2 frame with a barrier, so a pool
 * thread that loses its core to another process stalls the whole frame (docs/threads.md).
 */
export function autoThreads(cpus: number): number {
  return Math.max(1, Math.min(Math.floor(cpus) - 1, AUTO_MAX_THREADS));
}

/**
 * The pool 'auto' starts when it can switch at run time (adaptive-threads.ts): frames then run on the whole pool or
 * on 1 thread, whichever the measured latencies say is faster. 1 CPU -> 1 (nothing to adapt), 2 -> 2, 3 -> 2,
 * 4 -> 3, 8 -> 4: beyond two cores one is still left to the rest of the board, so that the pool's threads usually
 * have cores of their own; the switch to 1 thread covers the times they do not.
 */
export function autoPoolThreads(cpus: number): number {
  const n = Math.floor(cpus);
  return n < 2 ? 1 : Math.max(2, autoThreads(n));
}

export interface ThreadPlan {
  /** Threads to start (1 = the single-threaded SIMD build, no workers). */
  count: number;
  /** 'auto' with more than one thread: the count may drop to 1 and come back at run time (adaptive-threads.ts). */
  adaptive?: boolean;
  /** Why fewer than asked, if so. */
  note?: string;
}

/** `backend.threads` ('auto' | N) -> the count to start, clamped to what tfjs can do. */
export function planThreads(requested: 'auto' | number, cpus: number): ThreadPlan {
  if (requested === 'auto') {
    const count = autoPoolThreads(cpus);
    if (count === 1) return { count };
    if (count >= cpus) return { count, adaptive: true };
    const why = cpus - 1 > AUTO_MAX_THREADS ? `at most ${AUTO_MAX_THREADS}` : 'one is left to other work';
    return { count, adaptive: true, note: `auto: ${count} of ${cpus} CPUs, ${why}` };
  }
  const n = Math.max(1, Math.floor(requested));
  if (n > TFJS_MAX_THREADS) {
    return { count: TFJS_MAX_THREADS, note: `tfjs-backend-wasm caps its thread pool at ${TFJS_MAX_THREADS} (asked for ${n})` };
  }
  return { count: n };
}

/** The runtime facts threadSupportProblem() looks at (injectable for tests). */
export interface ThreadRuntime {
  nodeVersion: string;
  hasSharedArrayBuffer: boolean;
  /** WebAssembly.validate() of a module using shared memory and atomics. */
  wasmThreadsValid: boolean;
}

// A minimal module with a shared memory and an atomic op (same bytes as tfjs' own WASM_HAS_MULTITHREAD_SUPPORT test,
// from wasm-feature-detect).
const THREADS_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0, 254, 16, 2, 0, 26, 11,
]);

export function currentRuntime(): ThreadRuntime {
  let wasmThreadsValid = false;
  try {
    // (this project's lib settings declare WebAssembly's types but not the global object)
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    wasmThreadsValid = wasm.validate(THREADS_PROBE);
  } catch {
    // validate() throws on engines without the feature: same as invalid
  }
  return { nodeVersion: process.versions.node, hasSharedArrayBuffer: typeof SharedArrayBuffer === 'function', wasmThreadsValid };
}

/** Oldest Node the mechanism was checked on (data: URL ESM workers, cloneable Blob, os.availableParallelism). */
export const MIN_NODE_MAJOR = 18;

/** Why WASM threads cannot run in this runtime, or undefined if they can (as far as can be told without a worker). */
export function threadSupportProblem(rt: ThreadRuntime = currentRuntime()): string | undefined {
  const major = Number(rt.nodeVersion.split('.')[0]);
  if (!(major >= MIN_NODE_MAJOR)) return `Node ${rt.nodeVersion} is older than ${MIN_NODE_MAJOR}`;
  if (!rt.hasSharedArrayBuffer) return 'SharedArrayBuffer is unavailable (e.g. --no-harmony-sharedarraybuffer)';
  if (!rt.wasmThreadsValid) return 'this WebAssembly engine has no threads/atomics support';
  return undefined;
}
