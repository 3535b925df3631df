/**
 * Pin check for WASM threads under Node. agent/backend/node-pthreads.ts works around tfjs-backend-wasm 4.22.0's
 * browser-only threaded start by relying on internals of its Emscripten glue (docs/threads.md). A tfjs upgrade may
 * move any of them; each assertion below names the assumption that broke, so the failure says where to look.
 * When it fails after an upgrade: read docs/threads.md, re-check the mechanism against the new glue, then update
 * the pins here.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import * as wasmBackend from '@tensorflow/tfjs-backend-wasm';
import { GLUE_FACTORY, GLUE_MAIN, GLUE_WORKER, glueDirCandidates, loadThreadedGlue } from '../../agent/backend/node-pthreads';
import { TFJS_MAX_THREADS } from '../../agent/backend/threads';

const PINNED = '4.22.0';
const pkgDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));
const WASM_PKG = pkgDir('@tensorflow/tfjs-backend-wasm');
const version = (name: string) => (JSON.parse(fs.readFileSync(path.join(pkgDir(name), 'package.json'), 'utf8')) as { version: string }).version;
const read = (...p: string[]) => fs.readFileSync(path.join(WASM_PKG, ...p), 'utf8');

/** Asserts that `text` (from `file`) contains `needle`, explaining which assumption depends on it. */
function pin(file: string, text: string, needle: string | RegExp, assumption: string): void {
  const found = typeof needle === 'string' ? text.includes(needle) : needle.test(text);
  assert.ok(found, `tfjs internals changed: ${assumption}\n  expected ${String(needle)} in ${file}\n  (WASM threads under Node rely on it: docs/threads.md)`);
}

describe(`pin: tfjs ${PINNED} (the WASM threads mechanism was written against it)`, () => {
  test('package versions', () => {
    for (const name of ['@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-core']) {
      assert.equal(version(name), PINNED, `${name} is ${version(name)}, not ${PINNED}: re-check agent/backend/node-pthreads.ts against it (docs/threads.md), then update this pin`);
    }
  });

  test('the package exports setThreadsCount/getThreadsCount', () => {
    assert.equal(typeof wasmBackend.setThreadsCount, 'function', 'setThreadsCount() is gone: the thread count can no longer be set before init');
    assert.equal(typeof wasmBackend.getThreadsCount, 'function', 'getThreadsCount() is gone');
  });

  test('wasm-out/ ships the stand-alone threaded glue that pthread workers load', () => {
    const dirs = glueDirCandidates(path.join(WASM_PKG, 'dist'));
    assert.ok(dirs.includes(path.join(WASM_PKG, 'wasm-out')), 'glueDirCandidates() no longer finds the package folder wasm-out/');
    const glue = loadThreadedGlue(dirs); // throws naming the missing file
    const main = fs.readFileSync(glue.mainScript, 'utf8');
    pin(GLUE_MAIN, main, `var ${GLUE_FACTORY} =`, `the main script defines the global factory ${GLUE_FACTORY} that the worker source calls`);
    pin(GLUE_MAIN, main, 'if(ENVIRONMENT_IS_NODE)return require("os").cpus().length', 'emscripten_num_logical_cores() reads os.cpus() in Node');
    const w = glue.workerSource;
    pin(GLUE_WORKER, w, 'require("worker_threads")', 'the worker source runs under Node worker_threads with a CommonJS require');
    pin(GLUE_WORKER, w, 'location:{href:__filename}', 'the worker source reads __filename (the bootstrap passes it)');
    pin(GLUE_WORKER, w, 'importScripts:function(f){(0,eval)(fs.readFileSync(f,"utf8")', 'the worker polyfills importScripts(file) as eval(readFileSync(file))');
    pin(GLUE_WORKER, w, 'var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl)', "on 'load' the worker turns the main-script Blob into an object URL and importScripts() it (the bootstrap answers with the file)");
    pin(GLUE_WORKER, w, `${GLUE_FACTORY}(Module)`, `the worker source calls ${GLUE_FACTORY}(Module)`);
    pin(GLUE_WORKER, w, 'var instance=new WebAssembly.Instance(Module["wasmModule"],info)', "on 'load' the module is instantiated synchronously, so a 'run' queued right behind the 'load' finds it (LazyWorker)");
  });

  test('the worker glue can instantiate the shipped threaded binary (same Emscripten build as the main-thread glue)', () => {
    const bytes = fs.readFileSync(path.join(WASM_PKG, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm'));
    const W = (globalThis as unknown as { WebAssembly: { Module: { new (b: Uint8Array): object; imports(m: object): { module: string; name: string }[] } } }).WebAssembly;
    const imports = W.Module.imports(new W.Module(bytes));
    const workerGlue = read('wasm-out', GLUE_MAIN);
    const nodeBundle = read('dist', 'tf-backend-wasm.node.js');
    for (const imp of imports.filter((i) => i.module === 'env' || i.module === 'wasi_snapshot_preview1')) {
      if (imp.name === 'memory') continue;
      pin(GLUE_MAIN, workerGlue, `"${imp.name}":`, `the threaded .wasm imports ${imp.name}; the worker glue must provide it`);
      pin('dist/tf-backend-wasm.node.js', nodeBundle, `"${imp.name}":`, `the threaded .wasm imports ${imp.name}; the main-thread glue must provide it`);
    }
  });

  test('tf-backend-wasm.node.js (what tsx and the esbuild bundle run) starts threads the way the shims expect', () => {
    const file = 'dist/tf-backend-wasm.node.js';
    const js = read('dist', 'tf-backend-wasm.node.js');
    pin(file, js, "ENV.registerFlag('WASM_HAS_MULTITHREAD_SUPPORT'", 'threads are decided by the env flag WASM_HAS_MULTITHREAD_SUPPORT (we set it to true)');
    pin(file, js, "tfjsCore.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')", 'init() reads the multithread flag');
    pin(file, js, 'if (threadsSupported && simdSupported && wasmPath == null) {', 'init() picks the threaded-SIMD factory from the flags (and setWasmPaths, not the deprecated setWasmPath)');
    pin(file, js, /if \(path\.endsWith\('\.worker\.js'\)\) \{[\s\S]{0,400}new Blob\(\[response\], \{ type: 'application\/javascript' \}\);\s*return URL\.createObjectURL\(blob\);/, "locateFile('...worker.js') returns URL.createObjectURL(Blob of type application/javascript): the shim answers that call");
    pin(file, js, 'factoryConfig.mainScriptUrlOrBlob = new Blob(', 'mainScriptUrlOrBlob is a Blob (the worker bootstrap answers its object URL with the stand-alone main script)');
    pin(file, js, '"urlOrBlob": Module["mainScriptUrlOrBlob"] || _scriptDir', "the 'load' message carries mainScriptUrlOrBlob to the worker");
    pin(file, js, 'nodeWorkerThreads = require("worker_threads");', 'the glue takes Worker from require("worker_threads") (the tracking subclass is installed there)');
    pin(file, js, 'commonjsGlobal.Worker = nodeWorkerThreads.Worker;', 'the glue publishes worker_threads.Worker as the global Worker');
    pin(file, js, 'var pthreadMainJs = locateFile("tfjs-backend-wasm-threaded-simd.worker.js"); worker = new Worker(pthreadMainJs);', 'each pool worker is new Worker(locateFile(worker.js)) (the bootstrap URL object is passed through)');
    pin(file, js, `var pthreadPoolSize = ${TFJS_MAX_THREADS};`, `Emscripten pre-spawns ${TFJS_MAX_THREADS} workers (LazyWorker starts only the pool's; settleWorkers drops the idle ones)`);
    pin(file, js, /runningWorkers: \[\]|PThread\.runningWorkers/, 'PThread.runningWorkers lists the workers running pthreads (settleWorkers unrefs them)');
    pin(file, js, 'PThread.unusedWorkers', 'PThread.unusedWorkers lists the idle pool (settleWorkers terminates them)');
    pin(file, js, 'Module["PThread"] = PThread;', 'the module exposes PThread (read through tf.backend().wasm)');
    pin(file, js, /worker\.runPthread = function \(\) \{ if \(ENVIRONMENT_IS_NODE\) \{\s*worker\.ref\(\);/, 'a worker running a pthread is ref()ed (why settleWorkers must unref it)');
    pin(file, js, /function _emscripten_num_logical_cores\(\) \{ if \(ENVIRONMENT_IS_NODE\)\s*return require\$\$4\.cpus\(\)\.length;/, 'emscripten_num_logical_cores() reads os.cpus().length on the main thread (backend.cc caps the pool at half of it; the shim reports 2 x wanted)');
    pin(file, js, "var require$$4 = require('os');", 'the os module the glue reads cpus() from is require("os") (the object the shim patches)');
    pin(file, js, "getThreadsCount: module.cwrap('get_threads_count', 'number', [])", 'the module exposes tfjs.getThreadsCount() (BackendInfo.threads reads it)');
    pin(file, js, /_this\.wasm\.tfjs\.initWithThreadsCount\(threadsCount\);/, 'the backend creates its XNNPACK pool with setThreadsCount()\'s count at construction');
    pin(file, js, 'PThread.unusedWorkers.push(worker); }', 'workers join the idle pool in creation order (the last threads - 1 are started at once: LazyWorker)');
    pin(file, js, 'return PThread.unusedWorkers.pop(); }', 'a pthread gets the last idle worker (LazyWorker starts those eagerly)');
    pin(file, js, /cmd === "loaded"\) \{\s*worker\.loaded = true;/, "a worker is ready when it answers 'loaded' (LazyWorker answers for the idle ones)");
    pin(file, js, "initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number'])", 'the module exposes init_with_threads_count (pool-switch.ts makes the 1-thread pool with it)');
  });
});
