/**
 * Emscripten pthreads for tfjs-backend-wasm's threaded-SIMD build under Node, without touching node_modules.
 *
 * tfjs 4.x never tries threads in Node (flag WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE, tfjs#3830), and
 * when forced it fails because its init() is written for browsers:
 *   1. locateFile('...worker.js') returns URL.createObjectURL(new Blob([workerSource])): a blob: URL, which Node's
 *      worker_threads.Worker rejects (it takes a file path or a file:/data: URL object);
 *   2. mainScriptUrlOrBlob, the script each worker importScripts()es to get the Emscripten factory, is a Blob holding
 *      `wasmFactoryThreadedSimd.toString()`: a function cut out of tfjs' rollup (or our esbuild) bundle that refers
 *      to the bundle's own variables (require$$0, commonjsGlobal, tslib helpers...) and cannot run on its own;
 *   3. backend.cc clamps the pool to emscripten_num_logical_cores() / 2, i.e. os.cpus().length / 2 in Node
 *      (1 thread on a 2-core machine, 2 on a Pi 4), whatever setThreadsCount() asked for.
 * The package ships the stand-alone Emscripten output in wasm-out/ (the main script and the worker source), which is
 * what the workers need (the approach of the unmerged tfjs PR #8059). So, for the duration of tf.setBackend('wasm')
 * only (withNodePthreads), we:
 *   1. make URL.createObjectURL return, for the worker Blob, a data: URL of a small ES-module bootstrap that gives the
 *      Emscripten worker source its CommonJS `require`/`__filename` and evals it (workerBootstrap below);
 *   2. inside each worker, make URL.createObjectURL(the main-script Blob) return the path of wasm-out's stand-alone
 *      main script, which the worker's own importScripts() polyfill reads and evals;
 *   3. make os.cpus() report 2 x the wanted count, so the clamp in 3. equals the wanted count;
 *   4. replace worker_threads.Worker with a *lazy* worker (LazyWorker below): Emscripten pre-spawns 8 workers
 *      whatever the pool size and waits until each has loaded the module, but a pool of n threads runs n - 1 of
 *      them. A lazy worker answers the 'load' at once and starts a real thread only when it is given a pthread to run
 *      (then sends it the saved 'load' first). The real ones are tracked, so that a failed start can terminate them
 *      (otherwise they keep the process alive), and a worker's 'error' during the start becomes a failed start (the
 *      glue's own listener rethrows it, which would crash the process).
 * Everything is restored when setBackend settles. Afterwards settleWorkers() unrefs the pool's running workers
 * (Emscripten ref()s a worker while it runs a pthread, and XNNPACK's threads run forever, so the process would never
 * exit) and drops the idle ones (never started).
 * test/unit/backend-pin.test.ts checks every tfjs internal named here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';

/**
 * Node's own CommonJS require, for builtins whose exports we patch (os.cpus, worker_threads.Worker): an ES
 * `import * as os` gives a copy of the exports in this project's build, so assigning to it would change nothing.
 */
const nodeRequire: NodeRequire = require;

/** The stand-alone Emscripten output of the threaded-SIMD build (package folder wasm-out/, or dist/wasm/). */
export const GLUE_MAIN = 'tfjs-backend-wasm-threaded-simd.js';
export const GLUE_WORKER = 'tfjs-backend-wasm-threaded-simd.worker.js';
/** The global the main script defines; the worker source calls it. */
export const GLUE_FACTORY = 'WasmBackendModuleThreadedSimd';

export interface ThreadedGlue {
  /** Absolute path of the stand-alone main script. */
  mainScript: string;
  /** The Emscripten pthread worker source (wasm-out's .worker.js exports it as `wasmWorkerContents`). */
  workerSource: string;
}

/** Where the glue may be, most specific first: the .wasm folder (the bundle's dist/wasm/), then the package. */
export function glueDirCandidates(wasmDir: string): string[] {
  const dirs = [wasmDir];
  try {
    dirs.push(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out'));
  } catch {
    // inside the bundle there is no node_modules: dist/wasm/ carries the glue
  }
  return dirs;
}

/** Reads the glue from the first folder that has both files. Throws an Error saying what is missing or wrong. */
export function loadThreadedGlue(dirs: string[]): ThreadedGlue {
  const dir = dirs.find((d) => fs.existsSync(path.join(d, GLUE_MAIN)) && fs.existsSync(path.join(d, GLUE_WORKER)));
  if (!dir) throw new Error(`threaded-SIMD glue (${GLUE_MAIN}, ${GLUE_WORKER}) not found in ${dirs.join(', ')}`);
  // The .worker.js is a CommonJS module `module.exports.wasmWorkerContents = \`...\``. Evaluated here rather than
  // require()d so that a "type": "module" package.json above dist/ cannot turn it into an ES module.
  const mod = { exports: {} as Record<string, unknown> };
  new Function('module', 'exports', fs.readFileSync(path.join(dir, GLUE_WORKER), 'utf8'))(mod, mod.exports);
  const source = mod.exports.wasmWorkerContents;
  if (typeof source !== 'string' || !source.includes('importScripts')) {
    throw new Error(`${path.join(dir, GLUE_WORKER)} does not export the Emscripten worker source (wasmWorkerContents)`);
  }
  return { mainScript: path.join(dir, GLUE_MAIN), workerSource: source };
}

/**
 * The ES module each pthread worker starts from (a data: URL, so no file is written). The Emscripten worker source is
 * CommonJS-flavoured: it needs `require` and `__filename`, polyfills importScripts(f) as eval(readFileSync(f)), and
 * on 'load' turns the main-script Blob it is sent into an object URL to importScripts(): we answer with the file.
 */
export function workerBootstrap(glue: ThreadedGlue): URL {
  const main = JSON.stringify(glue.mainScript);
  // tfjs' own locateFile() escapes the newlines of the source the same way (they sit inside string literals).
  const source = JSON.stringify(glue.workerSource.replace(/\n/g, '\\n'));
  const code = [
    `import { createRequire } from 'node:module';`,
    `URL.createObjectURL = () => ${main};`,
    `URL.revokeObjectURL = () => {};`,
    `new Function('require', '__filename', ${source})(createRequire(${main}), ${main});`,
  ].join('\n');
  return new URL('data:text/javascript,' + encodeURIComponent(code));
}

/**
 * Starts one worker the way the pool's will start (data: URL ES module, the main script evaluated, shared memory) and
 * resolves to undefined if it works, or to the reason it does not. Cheap insurance: a pool worker that fails to start
 * makes the Emscripten glue throw from an event handler, which would crash the process instead of falling back.
 */
export async function probeWorker(glue: ThreadedGlue, timeoutMs = 15_000): Promise<string | undefined> {
  const code = [
    `import { readFileSync } from 'node:fs';`,
    `import { parentPort } from 'node:worker_threads';`,
    `(0, eval)(readFileSync(${JSON.stringify(glue.mainScript)}, 'utf8'));`,
    `const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });`,
    `parentPort.postMessage(typeof ${GLUE_FACTORY} !== 'function' ? '${GLUE_FACTORY} not defined by ${GLUE_MAIN}'`,
    `  : !(mem.buffer instanceof SharedArrayBuffer) ? 'no shared WebAssembly memory in workers' : 'ok');`,
  ].join('\n');
  let worker: Worker;
  try {
    worker = new Worker(new URL('data:text/javascript,' + encodeURIComponent(code)));
  } catch (e) {
    return `cannot start a worker thread: ${(e as Error).message}`;
  }
  return new Promise((resolve) => {
    const done = (reason: string | undefined) => {
      clearTimeout(timer);
      worker.removeAllListeners();
      worker.on('error', () => {});
      void worker.terminate();
      resolve(reason);
    };
    const timer = setTimeout(() => done(`a worker thread did not start within ${timeoutMs} ms`), timeoutMs);
    worker.once('message', (m: unknown) => done(m === 'ok' ? undefined : String(m)));
    worker.once('error', (e: Error) => done(`a worker thread failed: ${e.message.split('\n')[0]}`));
    worker.once('exit', (code) => done(`a worker thread exited early (code ${code})`));
  });
}

/** The parts of the threaded Emscripten module that settleWorkers() uses. */
export interface PthreadModule {
  PThread: { runningWorkers: Worker[]; unusedWorkers: Worker[] };
}

/**
 * Runs `init` (tf.setBackend('wasm') with the multithread flag on) with the shims described at the top of this file,
 * then restores them. Resolves to init's result and every worker spawned meanwhile; rejects if init does, if a worker
 * fails meanwhile, or after `timeoutMs`, having terminated every worker it spawned (nothing is left running).
 */
export async function withNodePthreads<T>(
  glue: ThreadedGlue,
  threads: number,
  init: () => Promise<T>,
  timeoutMs = 60_000,
): Promise<{ result: T; spawned: Worker[] }> {
  const os = nodeRequire('node:os') as typeof import('node:os');
  const wt = nodeRequire('node:worker_threads') as { Worker: typeof Worker };
  const g = globalThis as { Worker?: unknown };
  const saved = { createObjectURL: URL.createObjectURL, cpus: os.cpus, Worker: wt.Worker, hadGlobalWorker: 'Worker' in g, globalWorker: g.Worker };
  const spawned: Worker[] = [];
  const boot = workerBootstrap(glue);

  // 1. The worker Blob (tfjs' locateFile: type 'application/javascript') -> the bootstrap. The glue passes
  //    locateFile's result straight to `new Worker()`, which accepts a URL object.
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === 'application/javascript' ? (boot as unknown as string) : saved.createObjectURL(obj);
  // (2. happens inside each worker: see workerBootstrap.)
  // 3. backend.cc: pool = min(wanted, os.cpus().length / 2) -> report 2 x wanted (only the length is read).
  os.cpus = () => {
    const real = saved.cpus.call(os);
    return Array.from({ length: 2 * threads }, (_, i) => real[i % Math.max(1, real.length)] ?? real[0]!);
  };
  // 4. The glue does `global.Worker = require("worker_threads").Worker` then `new Worker(...)`. While tfjs starts, a
  //    worker that fails (its 'error' event) would make the glue's listener rethrow and crash the process: the
  //    subclass turns that into a failed start instead (and keeps the workers of a failed start quiet for good).
  let state: 'starting' | 'started' | 'failed' = 'starting';
  let failStart: (e: Error) => void = () => {};
  const workerFailed = new Promise<never>((_, reject) => (failStart = reject));
  workerFailed.catch(() => {}); // observed through the race below
  class TrackedWorker extends saved.Worker {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      spawned.push(this);
    }
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (state !== 'started' && event === 'error') {
        failStart(new Error(`a pthread worker failed: ${String((args[0] as Error | undefined)?.message ?? args[0]).split('\n')[0]}`));
        return true;
      }
      return super.emit(event, ...args);
    }
  }
  // Emscripten creates all its workers first, then loads them, and starts a pthread on the last one created
  // (unusedWorkers.pop()): the last `threads - 1` are the pool's, so they start at once (a worker that cannot start
  // fails the start here, while the main thread still listens); the others stay lazy.
  const created: LazyWorker[] = [];
  wt.Worker = function LazyPthreadWorker(...args: ConstructorParameters<typeof Worker>) {
    const w: LazyWorker = new LazyWorker(
      () => new TrackedWorker(...args),
      () => created.indexOf(w) >= created.length - (threads - 1),
    );
    created.push(w);
    return w;
  } as unknown as typeof Worker;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const result = await Promise.race([init(), workerFailed, timedOut]);
    state = 'started';
    return { result, spawned };
  } catch (e) {
    state = 'failed';
    terminateWorkers(spawned);
    throw e;
  } finally {
    clearTimeout(timer);
    URL.createObjectURL = saved.createObjectURL;
    os.cpus = saved.cpus;
    const tracked = wt.Worker;
    wt.Worker = saved.Worker;
    if (g.Worker === tracked) {
      // The glue set it; leave the real class there, as the glue itself would have.
      g.Worker = saved.hadGlobalWorker ? saved.globalWorker : saved.Worker;
    }
  }
}

/**
 * What Emscripten sees as a pthread worker, without a thread until one is needed. Emscripten (main thread) does, per
 * worker: on('message'|'error'|'detachedExit'), postMessage({cmd: 'load', wasmModule, wasmMemory, ...}), waits for
 * {cmd: 'loaded'}, unref(); later, to start a pthread, postMessage({cmd: 'run', ...}) (possibly while the main thread
 * busy-waits for the thread: XNNPACK's pool creation does). So, unless `eager()` says this worker will run a pthread
 * (then it is a plain worker from its 'load' on), 'load' is kept and answered with 'loaded' at once; the first other
 * message starts the real worker synchronously and sends it the kept 'load', then the message (a Node worker queues
 * messages until it runs, in order). That real worker's own 'loaded' is not passed on (Emscripten had one already);
 * everything else is. terminate() of a worker never started costs nothing.
 */
export class LazyWorker extends EventEmitter {
  private real: Worker | undefined;
  private load: unknown;
  private refed = true;

  constructor(
    private readonly start: () => Worker,
    private readonly eager: () => boolean = () => false,
  ) {
    super();
  }

  /** Whether a real thread was started. */
  get started(): boolean {
    return this.real !== undefined;
  }

  /** The real worker's (-1 when none was started, as for a worker that has ended). */
  get threadId(): number {
    return this.real?.threadId ?? -1;
  }

  postMessage(message: unknown, transfer?: Parameters<Worker['postMessage']>[1]): void {
    if (!this.real && (message as { cmd?: string } | null)?.cmd === 'load') {
      if (this.eager()) {
        this.ensureStarted(true).postMessage(message, transfer);
        return;
      }
      this.load = message;
      setImmediate(() => this.emit('message', { cmd: 'loaded' }));
      return;
    }
    const real = this.ensureStarted(false);
    real.postMessage(message, transfer);
  }

  private ensureStarted(passLoaded: boolean): Worker {
    if (this.real) return this.real;
    const real = this.start();
    this.real = real;
    let loadedSeen = passLoaded;
    real.on('message', (m: unknown) => {
      if (!loadedSeen && (m as { cmd?: string } | null)?.cmd === 'loaded') {
        loadedSeen = true;
        return;
      }
      this.emit('message', m);
    });
    for (const ev of ['error', 'exit', 'detachedExit', 'online', 'messageerror']) real.on(ev, (...a: unknown[]) => this.emit(ev, ...a));
    if (!this.refed) real.unref();
    if (this.load !== undefined) real.postMessage(this.load);
    return real;
  }

  ref(): void {
    this.refed = true;
    this.real?.ref();
  }

  unref(): void {
    this.refed = false;
    this.real?.unref();
  }

  terminate(): Promise<number> {
    return this.real ? this.real.terminate() : Promise.resolve(0);
  }
}

/**
 * After a successful start: the pool's running workers must not keep the process alive, and the idle pre-spawned
 * ones are only memory (XNNPACK creates its pool once, in init_with_threads_count). Returns how many were running.
 */
export function settleWorkers(module: PthreadModule): number {
  for (const w of module.PThread.unusedWorkers.splice(0)) void w.terminate();
  for (const w of module.PThread.runningWorkers) w.unref();
  return module.PThread.runningWorkers.length;
}

/** After a failed start: nothing may be left running. */
export function terminateWorkers(workers: Worker[]): void {
  for (const w of workers) {
    w.on('error', () => {});
    void w.terminate();
  }
}
