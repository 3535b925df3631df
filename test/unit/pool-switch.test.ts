import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { locatePoolSwitch, type PoolModule } from '../../agent/backend/pool-switch';
import { OtherCpuLoad } from '../../agent/telemetry/cpu-time';
import { warmUntilSteady } from '../../bench/warmup';

/**
 * A stand-in for backend.cc's globals in WASM memory: `threadpool` at word GLOBAL; init_with_threads_count allocates a
 * pool (its address from a bump allocator whose top lives at word BUMP) and, like malloc, leaves a copy of the
 * address elsewhere (word COPY), so more than one word changes. `readers` = the words get_threads_count reads.
 */
function fakeModule(poolThreads: number, readers = [1234]) {
  const GLOBAL = readers[0]!;
  const BUMP = 40;
  const COPY = 5000;
  const heap = new Uint32Array(1 << 14);
  const pools = new Map<number, number>();
  heap[BUMP] = 100_000;
  const create = (n: number) => {
    const ptr = heap[BUMP]!;
    heap[BUMP] = ptr + 64;
    pools.set(ptr, n);
    heap[COPY] = ptr;
    for (const r of readers) heap[r] = ptr;
  };
  create(poolThreads);
  const m: PoolModule = {
    HEAPU32: heap,
    tfjs: {
      initWithThreadsCount: create,
      // pthreadpool_get_threads_count(NULL) is 1; two readers model a value the search cannot pin to one word
      getThreadsCount: () => Math.min(...readers.map((r) => pools.get(heap[r]!) ?? 1)),
    },
  };
  return { m, heap, GLOBAL };
}

describe('locatePoolSwitch', () => {
  test('finds the one word that holds the pool, and switches between it and 1 thread with a store', () => {
    const { m, heap, GLOBAL } = fakeModule(2);
    const original = heap[GLOBAL];
    const sw = locatePoolSwitch(m);
    assert.ok(typeof sw !== 'string', String(sw));
    assert.equal(sw.poolThreads, 2);
    assert.equal(sw.current(), 2, 'the pool is back after the search');
    assert.equal(heap[GLOBAL], original);
    sw.use(1);
    assert.equal(m.tfjs.getThreadsCount(), 1);
    sw.use(2);
    assert.equal(m.tfjs.getThreadsCount(), 2);
    assert.equal(heap[GLOBAL], original, 'the same pool (its workers) is used again, not a new one');
    assert.throws(() => sw.use(3), /1 or 2 threads, not 3/);
  });

  test('a single-threaded module has nothing to switch', () => {
    const r = locatePoolSwitch(fakeModule(1).m);
    assert.equal(typeof r, 'string');
    assert.match(r as string, /nothing to switch/);
  });

  test('when no single word explains the count, it says so and leaves a working module', () => {
    const { m } = fakeModule(2, [1234, 2345]);
    const r = locatePoolSwitch(m);
    assert.match(r as string, /not found \(0 candidates\)/);
    assert.equal(m.tfjs.getThreadsCount(), 1, 'the 1-thread pool stays: correct, only slower');
  });
});

describe('OtherCpuLoad', () => {
  test('machine busy time minus ours over wall time, refreshed at most every 2 s', () => {
    let now = 0;
    let busy = 0;
    let own = 0;
    const load = new OtherCpuLoad(() => now, () => ({ busy }), () => own);
    assert.equal(load.sample(), undefined, 'one sample is not a rate');
    now = 2000;
    busy = 3000; // 1.5 cores busy over 2 s ...
    own = 1000; // ... 0.5 of them ours
    assert.equal(load.sample(), 1);
    now = 3000;
    busy = 9000;
    assert.equal(load.sample(), 1, 'not refreshed within 2 s');
    now = 4000;
    busy = 4000;
    own = 2000;
    assert.equal(load.sample(), 0, 'never negative');
  });

  test('without /proc it knows nothing', () => {
    const load = new OtherCpuLoad(() => 0, () => undefined, () => 0);
    assert.equal(load.sample(), undefined);
  });
});

describe('warmUntilSteady', () => {
  test('runs 15-frame blocks until three block medians in a row are within 5% of their neighbour', async () => {
    const blocks = [16.6, 14.4, 13.1, 11.7, 11.6, 11.6, 11.5];
    let i = 0;
    const r = await warmUntilSteady(() => blocks[Math.floor(i++ / 15)]!);
    assert.deepEqual(r.blockMedians, [16.6, 14.4, 13.1, 11.7, 11.6, 11.6]);
    assert.equal(r.frames, 90);
  });

  test('a plateau of two similar blocks in the ramp is not steady', async () => {
    const blocks = [34.3, 35.0, 23.8, 22.2, 21.9, 21.9];
    let i = 0;
    const r = await warmUntilSteady(() => blocks[Math.floor(i++ / 15)]!);
    assert.deepEqual(r.blockMedians, blocks);
  });

  test('stops at 150 frames when it never settles (frames that are promises too)', async () => {
    let i = 0;
    const r = await warmUntilSteady(async () => (Math.floor(i++ / 15) % 2 ? 10 : 20));
    assert.equal(r.frames, 150);
  });
});
