/**
 * The Node pthread shims (agent/backend/node-pthreads.ts) without WASM: what each shim answers while tfjs initialises,
 * that everything is restored afterwards (also when the start fails), and the worker bookkeeping.
 * The real threaded start is in test/integration/threads.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  GLUE_MAIN,
  GLUE_WORKER,
  LazyWorker,
  loadThreadedGlue,
  type PthreadModule,
  settleWorkers,
  type ThreadedGlue,
  withNodePthreads,
  workerBootstrap,
} from '../../agent/backend/node-pthreads';
import { tmpDir } from '../support/cli';

// The real builtins, as the tfjs glue sees them (CommonJS exports, not an ES-import copy).
const nodeOs = require('node:os') as typeof os;
const workerThreads = require('node:worker_threads') as { Worker: typeof Worker };

const glue: ThreadedGlue = { mainScript: '/opt/edgehead/wasm/' + GLUE_MAIN, workerSource: 'var x = "a\nb"; importScripts(1);' };

/** Resolves once the worker has exited (threadId is -1 from then on). */
function ended(worker: Worker): Promise<void> {
  return new Promise((resolve) => (worker.threadId === -1 ? resolve() : worker.once('exit', () => resolve())));
}

function decode(url: URL): string {
  assert.equal(url.protocol, 'data:');
  return decodeURIComponent(url.href.slice('data:text/javascript,'.length));
}

describe('workerBootstrap', () => {
  test('an ES module that hands the worker source require/__filename and answers createObjectURL with the main script', () => {
    const code = decode(workerBootstrap(glue));
    assert.match(code, /import \{ createRequire \} from 'node:module'/);
    assert.ok(code.includes(`URL.createObjectURL = () => ${JSON.stringify(glue.mainScript)}`));
    assert.ok(code.includes(`createRequire(${JSON.stringify(glue.mainScript)}), ${JSON.stringify(glue.mainScript)})`));
    // newlines inside the source's string literals are escaped, as tfjs' locateFile does
    assert.ok(code.includes(JSON.stringify('var x = "a\\nb"; importScripts(1);')));
  });
});

describe('withNodePthreads', () => {
  const saved = () => ({ url: URL.createObjectURL, cpus: nodeOs.cpus, Worker: workerThreads.Worker, g: (globalThis as { Worker?: unknown }).Worker });

  test('during init: worker Blob -> bootstrap URL, other Blobs untouched, os.cpus() = 2 x threads; restored after', async () => {
    const before = saved();
    const { result } = await withNodePthreads(glue, 3, async () => {
      const workerUrl = URL.createObjectURL(new Blob(['w'], { type: 'application/javascript' })) as unknown;
      assert.ok(workerUrl instanceof URL, 'the worker Blob gives a URL object (new Worker() accepts it)');
      assert.equal((workerUrl as URL).href, workerBootstrap(glue).href);
      const other = URL.createObjectURL(new Blob(['m'], { type: 'text/javascript' }));
      assert.match(other, /^blob:/);
      URL.revokeObjectURL(other);
      assert.equal(nodeOs.cpus().length, 6);
      assert.notEqual(workerThreads.Worker, before.Worker);
      return 42;
    });
    assert.equal(result, 42);
    const after = saved();
    assert.equal(after.url, before.url);
    assert.equal(after.cpus, before.cpus);
    assert.equal(after.Worker, before.Worker);
    assert.equal(nodeOs.cpus().length, os.cpus().length);
  });

  test('workers spawned during init are tracked; the glue-set global Worker becomes the real class again', async () => {
    const before = saved();
    const { spawned } = await withNodePthreads(glue, 2, async () => {
      // what the Emscripten glue does
      (globalThis as { Worker?: unknown }).Worker = workerThreads.Worker;
      const W = (globalThis as unknown as { Worker: typeof Worker }).Worker;
      const ws = [0, 1, 2].map(() => new W('setTimeout(() => {}, 60_000)', { eval: true }));
      for (const w of ws) w.postMessage({ cmd: 'load' });
      // the last threads - 1 = 1 created is the pool's (Emscripten pops it): started at 'load'; the spares stay lazy
      assert.deepEqual(ws.map((w) => (w as unknown as LazyWorker).started), [false, false, true]);
      ws[0]!.postMessage({ cmd: 'run' }); // a spare given a pthread after all: started then
    });
    try {
      assert.equal(spawned.length, 2);
      assert.equal((globalThis as { Worker?: unknown }).Worker, before.Worker);
    } finally {
      await Promise.all(spawned.map((w) => w.terminate()));
      if (before.g === undefined) delete (globalThis as { Worker?: unknown }).Worker;
    }
  });

  test("a worker's error during init fails the start (instead of the glue rethrowing it) and ends the workers", async () => {
    let worker: Worker | undefined;
    await assert.rejects(
      withNodePthreads(glue, 2, () => {
        worker = new workerThreads.Worker('throw new Error("cannot load")', { eval: true });
        worker.on('error', () => assert.fail('the error must not reach the listeners during the start'));
        worker.postMessage({ cmd: 'run' });
        return new Promise<never>(() => {});
      }),
      /a pthread worker failed: cannot load/,
    );
    await ended(worker!);
  });

  test('an init that never answers is given up after the timeout, workers terminated', async () => {
    let worker: Worker | undefined;
    await assert.rejects(
      withNodePthreads(
        glue,
        2,
        () => {
          worker = new workerThreads.Worker('setInterval(() => {}, 1000)', { eval: true });
          worker.postMessage({ cmd: 'run' });
          return new Promise<never>(() => {});
        },
        200,
      ),
      /no answer within 200 ms/,
    );
    await ended(worker!);
  });

  test('a failing init is rethrown and everything is restored', async () => {
    const before = saved();
    await assert.rejects(
      withNodePthreads(glue, 2, async () => {
        throw new Error('init failed');
      }),
      /init failed/,
    );
    const after = saved();
    assert.equal(after.url, before.url);
    assert.equal(after.cpus, before.cpus);
    assert.equal(after.Worker, before.Worker);
  });
});

describe('LazyWorker', () => {
  // A worker that echoes what it receives, as the Emscripten worker answers 'load' with 'loaded'.
  const ECHO = `const { parentPort } = require('node:worker_threads');
    parentPort.on('message', (m) => parentPort.postMessage(m.cmd === 'load' ? { cmd: 'loaded' } : { echo: m }));`;

  test("answers 'load' at once without a thread; the first other message starts one, which gets the kept 'load' first", async () => {
    let starts = 0;
    const w = new LazyWorker(() => {
      starts++;
      return new Worker(ECHO, { eval: true });
    });
    const got: unknown[] = [];
    w.on('message', (m) => got.push(m));
    w.postMessage({ cmd: 'load', wasmMemory: 'm' });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, [{ cmd: 'loaded' }]);
    assert.equal(starts, 0);
    assert.equal(w.threadId, -1);
    w.postMessage({ cmd: 'run', pthread_ptr: 7 });
    assert.equal(starts, 1);
    assert.ok(w.started && w.threadId > 0);
    await new Promise<void>((resolve) => w.on('message', () => got.length === 2 && resolve()));
    // the real worker's own 'loaded' is not passed on (Emscripten had one already); the 'run' reached it after 'load'
    assert.deepEqual(got, [{ cmd: 'loaded' }, { echo: { cmd: 'run', pthread_ptr: 7 } }]);
    await w.terminate();
    await ended(w as unknown as Worker);
  });

  test('terminate() of a worker never started costs nothing', async () => {
    const w = new LazyWorker(() => assert.fail('must not start'));
    assert.equal(await w.terminate(), 0);
  });
});

describe('settleWorkers', () => {
  test('terminates the idle pre-spawned workers and unrefs the running ones', () => {
    const calls: string[] = [];
    const fake = (name: string) => ({ terminate: async () => calls.push(`terminate ${name}`), unref: () => calls.push(`unref ${name}`) }) as unknown as Worker;
    const module: PthreadModule = { PThread: { runningWorkers: [fake('r1')], unusedWorkers: [fake('u1'), fake('u2')] } };
    assert.equal(settleWorkers(module), 1);
    assert.deepEqual(calls.sort(), ['terminate u1', 'terminate u2', 'unref r1']);
    assert.equal(module.PThread.unusedWorkers.length, 0);
  });
});

describe('loadThreadedGlue', () => {
  test('names the missing files and where it looked', () => {
    const dir = tmpDir('glue-');
    assert.throws(() => loadThreadedGlue([dir]), (e: Error) => e.message.includes(GLUE_MAIN) && e.message.includes(GLUE_WORKER) && e.message.includes(dir));
  });
  test('rejects a worker file that does not export the Emscripten worker source', () => {
    const dir = tmpDir('glue-');
    fs.writeFileSync(path.join(dir, GLUE_MAIN), '');
    fs.writeFileSync(path.join(dir, GLUE_WORKER), 'module.exports.somethingElse = 1;');
    assert.throws(() => loadThreadedGlue([dir]), /does not export the Emscripten worker source/);
  });
  test('takes the first folder that has both files', () => {
    const empty = tmpDir('glue-');
    const dir = tmpDir('glue-');
    fs.writeFileSync(path.join(dir, GLUE_MAIN), '');
    fs.writeFileSync(path.join(dir, GLUE_WORKER), 'module.exports.wasmWorkerContents = `importScripts("x")`;');
    const g = loadThreadedGlue([empty, dir]);
    assert.equal(g.mainScript, path.join(dir, GLUE_MAIN));
    assert.equal(g.workerSource, 'importScripts("x")');
  });
});
