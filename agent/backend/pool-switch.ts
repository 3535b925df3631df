/**
 * Switching the threaded WASM module between its XNNPACK pool and one thread, at a frame boundary, without
 * re-initialising anything.
 *
 * tfjs-backend-wasm's backend.cc keeps the pool in one global, `pthreadpool_t threadpool`, and every kernel passes it
 * to XNNPACK on each call (`xnn_run_operator(op, threadpool)`). `init_with_threads_count(n)` (exported) stores a new
 * `pthreadpool_create(n)` there; `get_threads_count()` (exported) reads it back. A pool of 1 starts no thread: XNNPACK
 * then runs every operator on the calling thread. So:
 *   1. snapshot the module's static data (the globals live in the first pages of linear memory),
 *   2. call init_with_threads_count(1): the global now points to a new 1-thread pool (a few hundred bytes, kept),
 *   3. the words that changed are candidates; the global is the one that, set back to its old value, makes
 *      get_threads_count() answer the pool's count again, and set to the new value answers 1. Exactly one word must
 *      pass both checks, else nothing is used (the pool stays as it was).
 * Switching is then one 32-bit store. The pool's worker threads stay alive (asleep when not used), so going back
 * costs nothing; the workers are never re-created (after start-up Node could not spawn one synchronously anyway).
 * Only between frames: no operator is running then (tfjs runs them on the main thread, one at a time).
 */

/** The parts of the Emscripten module this uses. */
export interface PoolModule {
  HEAPU32: Uint32Array;
  tfjs: { initWithThreadsCount(n: number): void; getThreadsCount(): number };
}

export interface PoolSwitch {
  /** The pool's thread count (the `high` of the policy). */
  readonly poolThreads: number;
  /** Threads the module runs with now. */
  current(): number;
  /** 1 or poolThreads. */
  use(threads: number): void;
}

/** How much of the low memory is searched: static data of backend.cc is in the first KBs (the global was at 23564). */
const SEARCH_WORDS = 1 << 16;

/** Locates the pool global (see above); a string says why it could not, and then the module is as it was. */
export function locatePoolSwitch(m: PoolModule): PoolSwitch | string {
  const heap = () => m.HEAPU32; // the view is replaced when memory grows: always read it through the module
  const poolThreads = m.tfjs.getThreadsCount();
  if (!(poolThreads > 1)) return `the module runs ${poolThreads} thread(s): nothing to switch`;
  const n = Math.min(SEARCH_WORDS, heap().length);
  const before = heap().slice(0, n);
  m.tfjs.initWithThreadsCount(1);
  if (m.tfjs.getThreadsCount() !== 1) return 'init_with_threads_count(1) did not give a 1-thread pool';
  const found: { index: number; pool: number; single: number }[] = [];
  for (let i = 0; i < n; i++) {
    const now = heap()[i]!;
    if (now === before[i]) continue;
    heap()[i] = before[i]!;
    const restored = m.tfjs.getThreadsCount() === poolThreads;
    heap()[i] = now;
    if (restored && m.tfjs.getThreadsCount() === 1) found.push({ index: i, pool: before[i]!, single: now });
  }
  if (found.length !== 1) {
    // Put the pool back if its word is known; otherwise the module keeps 1 thread (correct, only slower).
    if (found[0]) heap()[found[0].index] = found[0].pool;
    return `the pool global of backend.cc was not found (${found.length} candidates)`;
  }
  const { index, pool, single } = found[0]!;
  heap()[index] = pool;
  return {
    poolThreads,
    current: () => m.tfjs.getThreadsCount(),
    use(threads) {
      if (threads !== 1 && threads !== poolThreads) throw new Error(`the pool switch runs 1 or ${poolThreads} threads, not ${threads}`);
      heap()[index] = threads === 1 ? single : pool;
    },
  };
}
