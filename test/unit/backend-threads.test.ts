/** The WASM thread-count policy and the runtime checks (agent/backend/threads.ts): pure functions, no WASM. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AUTO_MAX_THREADS,
  autoPoolThreads,
  autoThreads,
  cpuCount,
  currentRuntime,
  planThreads,
  TFJS_MAX_THREADS,
  threadSupportProblem,
  type ThreadRuntime,
} from '../../agent/backend/threads';

describe("threads: 'auto'", () => {
  test('the static count (no run-time switch): one core fewer than the machine has, at least 1, at most AUTO_MAX_THREADS', () => {
    const cpus = [1, 2, 3, 4, 5, 6, 8, 64];
    assert.deepEqual(cpus.map(autoThreads), [1, 1, 2, 3, 4, 4, 4, 4]);
    assert.equal(AUTO_MAX_THREADS, 4);
  });
  test('never below 1 (odd CPU counts)', () => {
    assert.equal(autoThreads(0), 1);
    assert.equal(autoThreads(1.5), 1);
  });
  test('the adaptive pool: 2 threads from 2 CPUs on, one core left beyond 3, at most AUTO_MAX_THREADS', () => {
    const cpus = [1, 2, 3, 4, 5, 8, 64];
    assert.deepEqual(cpus.map(autoPoolThreads), [1, 2, 2, 3, 4, 4, 4]);
  });
  test('planThreads: adaptive from 2 CPUs, and explains a pool below the CPU count', () => {
    assert.deepEqual(planThreads('auto', 1), { count: 1 });
    assert.deepEqual(planThreads('auto', 2), { count: 2, adaptive: true });
    assert.deepEqual(planThreads('auto', 4), { count: 3, adaptive: true, note: 'auto: 3 of 4 CPUs, one is left to other work' });
    assert.deepEqual(planThreads('auto', 8), { count: 4, adaptive: true, note: 'auto: 4 of 8 CPUs, at most 4' });
  });
});

describe('threads: N', () => {
  test('an explicit count is used as given, even above the CPU count', () => {
    assert.deepEqual(planThreads(1, 4), { count: 1 });
    assert.deepEqual(planThreads(3, 2), { count: 3 });
  });
  test(`above tfjs' cap of ${TFJS_MAX_THREADS}: capped, with a note saying so`, () => {
    const plan = planThreads(16, 32);
    assert.equal(plan.count, TFJS_MAX_THREADS);
    assert.match(plan.note ?? '', /caps its thread pool at 8 \(asked for 16\)/);
  });
});

describe('threadSupportProblem', () => {
  const ok: ThreadRuntime = { nodeVersion: '20.20.2', hasSharedArrayBuffer: true, wasmThreadsValid: true };
  test('a modern Node: no problem', () => {
    assert.equal(threadSupportProblem(ok), undefined);
    assert.equal(threadSupportProblem({ ...ok, nodeVersion: '18.0.0' }), undefined);
  });
  test('each missing piece is named', () => {
    assert.match(threadSupportProblem({ ...ok, nodeVersion: '16.20.2' }) ?? '', /Node 16\.20\.2 is older than 18/);
    assert.match(threadSupportProblem({ ...ok, hasSharedArrayBuffer: false }) ?? '', /SharedArrayBuffer is unavailable/);
    assert.match(threadSupportProblem({ ...ok, wasmThreadsValid: false }) ?? '', /no threads\/atomics support/);
  });
  test('this test process can run threads (else the integration tests would only see the fallback)', () => {
    assert.equal(threadSupportProblem(currentRuntime()), undefined);
  });
  test('cpuCount is a positive integer', () => {
    assert.ok(Number.isInteger(cpuCount()) && cpuCount() >= 1);
  });
});
