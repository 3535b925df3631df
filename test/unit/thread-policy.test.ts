import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_THREAD_POLICY, describeDecision, ThreadPolicy } from '../../agent/backend/thread-policy';

/**
 * Runs the policy over `frames` frames whose time depends on the thread count and the frame number. Returns the
 * count each frame ran with (probes included) and the count chosen after each frame.
 */
function run(policy: ThreadPolicy, ms: (threads: number, frame: number) => number, frames: number, load?: (frame: number) => number | undefined) {
  const ran: number[] = [];
  const chosen: number[] = [];
  for (let f = 0; f < frames; f++) {
    const t = policy.threads;
    ran.push(t);
    policy.observe(ms(t, f), load?.(f));
    chosen.push(policy.chosen);
  }
  return { ran, chosen };
}
const simulate = (...a: Parameters<typeof run>) => run(...a).ran;

/** Frame times of a 2-core machine: `[1 thread, 2 threads]` ms, with a little deterministic jitter. */
const machine = (one: number, two: number) => (t: number, f: number) => (t === 1 ? one : two) * (1 + 0.03 * Math.sin(f * 1.7));

describe('ThreadPolicy', () => {
  test('idle: 2 threads are faster, the first decision keeps them and says why', () => {
    const p = new ThreadPolicy(1, 2);
    const trace = simulate(p, machine(21, 12), 100);
    assert.equal(p.chosen, 2);
    assert.equal(trace[trace.length - 1], 2);
    const d = p.decision!;
    assert.equal(d.trigger, 'schedule', 'the first decision is followed by a scheduled probe within 100 frames');
    assert.match(describeDecision(d), /^2 threads: \d+(\.\d)? ms vs \d+(\.\d)? ms at 1 thread \(schedule, frame \d+\)$/);
  });

  test('contended: 1 thread is faster, the first decision moves there', () => {
    const p = new ThreadPolicy(1, 2);
    simulate(p, machine(25, 60), DEFAULT_THREAD_POLICY.warmupFrames + 2 * DEFAULT_THREAD_POLICY.probeFrames);
    assert.equal(p.chosen, 1);
    assert.equal(p.decision!.trigger, 'first');
    assert.deepEqual(Object.keys(p.decision!.medians).sort(), ['1', '2']);
  });

  test('hysteresis: a count less than 10% faster does not win, so equal speeds never flip it', () => {
    const p = new ThreadPolicy(1, 2);
    const trace = simulate(p, machine(19, 20), 2000);
    assert.equal(p.chosen, 2);
    assert.ok(trace.slice(100).filter((t) => t === 1).length < 0.05 * 1900, 'only probe frames ran at 1 thread');
  });

  test('a steady machine is probed less and less: few frames at the slower count over a long run', () => {
    const p = new ThreadPolicy(1, 2);
    const trace = simulate(p, machine(21, 12), 5000);
    const slow = trace.filter((t) => t === 1).length;
    // probes at 30, 60, 120, ... 960 frames apart: about a dozen probes of 6 slow frames.
    assert.ok(slow < 0.02 * trace.length, `${slow} of ${trace.length} frames at 1 thread`);
    assert.ok(slow > 0, 'it keeps probing');
  });

  test('contention that begins later is found from the latencies, and the policy moves to 1 thread', () => {
    const p = new ThreadPolicy(1, 2);
    const idle = machine(21, 12);
    const busy = machine(24, 55);
    const { chosen } = run(p, (t, f) => (f < 400 ? idle(t, f) : busy(t, f)), 700);
    assert.equal(chosen[399], 2, 'idle: 2 threads');
    const moved = chosen.indexOf(1, 400);
    assert.ok(moved > 400 && chosen.slice(moved).every((t) => t === 1), `on 1 thread from frame ${moved}`);
    assert.ok(moved - 400 < 60, `found ${moved - 400} frames after it began`);
    assert.equal(p.decision!.trigger, 'schedule', 'later probes confirm it');
  });

  test('contention that ends is found from /proc load (other processes drop by a core), and 2 threads come back', () => {
    const p = new ThreadPolicy(1, 2);
    const busy = machine(24, 55);
    const idle = machine(22, 12); // 1 thread barely changes: the latency alone would wait for the schedule
    const loadAt = (f: number) => (f < 600 ? 1.0 : 0.05);
    const { chosen } = run(p, (t, f) => (f < 600 ? busy(t, f) : idle(t, f)), 900, loadAt);
    assert.equal(chosen[599], 1);
    const back = chosen.indexOf(2, 600);
    assert.ok(back > 600 && back - 600 < 40 && chosen.slice(back).every((t) => t === 2), `back on 2 threads at frame ${back}`);
    const firstAfter = run(new ThreadPolicy(1, 2), (t, f) => (f < 600 ? busy(t, f) : idle(t, f)), 900).chosen.indexOf(2, 600);
    assert.ok(firstAfter === -1 || firstAfter > back, `without the load signal it waits for the schedule (frame ${firstAfter})`);
  });

  test('bad samples are ignored; the count range is checked', () => {
    const p = new ThreadPolicy(1, 4);
    for (let i = 0; i < 50; i++) p.observe(Number.NaN);
    assert.equal(p.decision, undefined);
    assert.equal(p.threads, 4);
    assert.throws(() => new ThreadPolicy(2, 2), /1 <= low < high/);
  });
});
