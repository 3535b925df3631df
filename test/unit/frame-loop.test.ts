/**
 * FrameLoop in-process: capture -> classify -> filter -> publish, head pinning and retirement, failures, the
 * head-swap re-prediction. CPU backend, the mean-colour extractor, a scripted source; no broker (publish is a spy).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { EventBus } from '../../agent/events';
import { CAMERA_PROBLEM_AFTER, FrameLoop, WASM_TRAPS_FATAL } from '../../agent/frames/frame-loop';
import { PredictionFilter } from '../../agent/frames/prediction-filter';
import { Classifier } from '../../agent/inference/classifier';
import { DenseHead } from '../../agent/inference/dense-head';
import { Problems } from '../../agent/problems';
import { FrameStats } from '../../agent/telemetry/stats';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { decodeHead } from '../../protocol/head/format';
import type { PredictionMessage } from '../../protocol/messages';
import { meanRgbExtractor, rgbHead, SAMPLE_JPEG, ScriptedSource } from '../support/agent-parts';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
});

function loop(opts: { minScore?: number; onlyOnChange?: boolean; problems?: Problems; onBroken?: (error: string) => void } = {}) {
  const head = DenseHead.fromFile(decodeHead(rgbHead('c', 1)));
  const classifier = new Classifier(meanRgbExtractor(), head, { resize: 'squash', maxPixels: 1e8, topK: 2 });
  const source = new ScriptedSource();
  const published: PredictionMessage[] = [];
  const printed: string[] = [];
  const events = new EventBus();
  const classified: string[] = [];
  events.on('frameClassified', ({ top1 }) => void classified.push(top1));
  const stats = new FrameStats();
  const frames = new FrameLoop({
    source,
    classifier,
    filter: new PredictionFilter({ minScore: opts.minScore ?? 0, onlyOnChange: opts.onlyOnChange ?? false, debounce: 1, unknownLabel: 'unknown', maxIntervalSec: 0 }),
    publish: async (m) => void published.push(m),
    events,
    stats,
    run: 4,
    extractorId: 'mean-rgb',
    print: (l) => void printed.push(l),
    problems: opts.problems,
    onBroken: opts.onBroken,
  });
  return { frames, source, published, printed, stats, classifier, classified };
}

test('a tick publishes one prediction with run, frameId, head and stage times; the console line says the same', async () => {
  const { frames, published, printed, stats, classified } = loop();
  await frames.tick();
  await frames.tick();
  assert.deepEqual(published.map((p) => [p.run, p.frameId, p.head.id, p.head.version]), [[4, 1, 'c', 1], [4, 2, 'c', 1]]);
  assert.equal(published[0]!.top.length, 2);
  assert.ok(Object.values(published[0]!.ms).every((v) => v >= 0));
  assert.match(printed[0]!, /^#1 scripted:1: \w+ \d\.\d\d/);
  assert.deepEqual([stats.ok, stats.failed, stats.published], [2, 0, 2]);
  assert.equal(classified.length, 2, 'frameClassified for each frame on the active head');
});

test('a failed capture is counted, not published, and the next tick works; capture() rethrows its own error', async () => {
  const { frames, source, published, stats } = loop();
  source.next({ error: 'no camera' });
  await frames.tick();
  assert.deepEqual([stats.ok, stats.failed, published.length], [0, 1, 0]);
  source.next({ error: 'still no camera' });
  await assert.rejects(frames.capture(), /still no camera/);
  const p = await frames.capture();
  assert.equal(p.reason, 'capture');
  assert.equal(published.at(-1), p);
  source.next({ bytes: new Uint8Array([1, 2, 3]) });
  await frames.tick();
  assert.equal(stats.failed, 3, 'undecodable bytes are a failed frame too');
});

test('filters: below minScore is not published (counted as suppressed) but printed; capture ignores the filter', async () => {
  const { frames, published, printed, stats } = loop({ minScore: 1.01 });
  await frames.tick();
  assert.equal(published.length, 0);
  assert.equal(stats.suppressed, 1);
  assert.match(printed[0]!, /\[not published\]$/);
  await frames.capture();
  assert.equal(published.length, 1);
});

test('a head installed while a frame is in flight: that frame finishes on its old head, which is disposed after it', async () => {
  const { frames, source, published, classifier, classified } = loop();
  let release!: () => void;
  source.next({ wait: new Promise<void>((r) => (release = r)), bytes: SAMPLE_JPEG });
  const old = classifier.head;
  const inFlight = frames.tick();
  await new Promise((r) => setImmediate(r));
  const next = DenseHead.fromFile(decodeHead(rgbHead('c', 2)));
  frames.install(next);
  assert.equal(classifier.head, next);
  assert.doesNotThrow(() => old.numClasses, 'not disposed while the frame runs');
  release();
  await inFlight;
  assert.deepEqual(published[0]!.head, { id: 'c', version: 1 }, 'the frame finished on the head it started with');
  assert.equal(classified.length, 0, 'a frame of a replaced head is not compared with the new one');
  assert.throws(() => old.predict(tf.zeros([1, 3]), 1), /used after dispose/);
  await frames.tick();
  assert.deepEqual(published[1]!.head, { id: 'c', version: 2 });
});

test('repredictLast: the last frame again with the new head, reason head-swap, a new frameId; nothing before a frame', async () => {
  const { frames, published, classifier } = loop();
  await frames.repredictLast();
  assert.equal(published.length, 0);
  await frames.tick();
  frames.install(DenseHead.fromFile(decodeHead(rgbHead('c', 3, ['x', 'y', 'z']))));
  await frames.repredictLast();
  const re = published.at(-1)!;
  assert.equal(re.reason, 'head-swap');
  assert.equal(re.frameId, 2);
  assert.deepEqual(re.head, { id: 'c', version: 3 });
  assert.equal(re.source, published[0]!.source);
  assert.ok(['x', 'y', 'z'].includes(re.top[0]!.label));
  frames.dispose();
  assert.throws(() => classifier.head.predict(tf.zeros([1, 3]), 1), /used after dispose/);
});

test('frames failing in a row set the camera problem with the error; the next good frame clears it', async () => {
  const problems = new Problems(() => 0);
  const { frames, source } = loop({ problems });
  for (let i = 1; i < CAMERA_PROBLEM_AFTER; i++) {
    source.next({ error: 'fswebcam on /dev/video0 failed (exit code 1)' });
    await frames.tick();
  }
  await frames.tick(); // a good frame in between starts the count again
  for (let i = 1; i < CAMERA_PROBLEM_AFTER; i++) {
    source.next({ error: 'fswebcam on /dev/video0 failed (exit code 1)' });
    await frames.tick();
  }
  assert.equal(problems.has('camera'), false, 'a glitch is not a failing camera');
  source.next({ error: 'fswebcam on /dev/video0 failed (exit code 1)' });
  await frames.tick();
  assert.deepEqual(problems.list().map((p) => [p.key, p.message]), [['camera', 'frames keep failing: fswebcam on /dev/video0 failed (exit code 1)']]);
  source.next({ error: 'no such device' });
  await frames.tick();
  assert.match(problems.list()[0]!.message, /no such device$/, 'the latest error');
  await frames.tick();
  assert.deepEqual(problems.list(), [], 'cleared by the next good frame');
});

test('a failing camera logs one "frame failed" line and the problem once, then a summary per window', async () => {
  const lines: string[] = [];
  const clock = new ManualClock();
  configureLogging({ level: 'warn', format: 'text', journal: false, clock, sink: { write: (l) => void lines.push(l) } });
  try {
    const { frames, source } = loop({ problems: new Problems(() => clock.now()) });
    for (let i = 0; i < 120; i++) {
      source.next({ error: 'no camera' });
      await frames.tick();
      clock.advance(1000);
    }
    const failed = lines.filter((l) => l.includes('frame failed'));
    assert.equal(failed.length, 3, lines.join('\n'));
    assert.doesNotMatch(failed[0]!, /repeated/);
    assert.match(failed[1]!, /frame failed \(repeated 59 times in the last 60 s\) error="no camera"/);
    assert.equal(lines.filter((l) => l.includes('problem: frames keep failing: no camera')).length, 1);
  } finally {
    configureLogging({ level: 'silent' });
  }
});

test('WebAssembly traps on every frame: onBroken once at WASM_TRAPS_FATAL in a row; other errors or a good frame reset the count', async () => {
  // The runtime's WebAssembly.RuntimeError (the lib config has no WebAssembly values, only @types/node's namespace).
  const { RuntimeError } = (globalThis as unknown as { WebAssembly: { RuntimeError: new (message: string) => Error } }).WebAssembly;
  const broken: string[] = [];
  const { frames, source, stats } = loop({ onBroken: (e) => void broken.push(e) });
  const trap = () => source.next({ throws: new RuntimeError('memory access out of bounds') });
  for (let i = 1; i < WASM_TRAPS_FATAL; i++) {
    trap();
    await frames.tick();
  }
  await frames.tick(); // a good frame: the runtime works after all
  for (let i = 1; i < WASM_TRAPS_FATAL; i++) {
    trap();
    await frames.tick();
  }
  source.next({ error: 'no camera' }); // not a trap: the camera's problem, not the runtime's
  await frames.tick();
  for (let i = 1; i < WASM_TRAPS_FATAL; i++) {
    trap();
    await frames.tick();
  }
  assert.deepEqual(broken, [], 'no streak of WASM_TRAPS_FATAL traps yet');
  source.next({ throws: new Error('wrapped', { cause: new RuntimeError('unreachable') }) });
  await frames.tick();
  assert.deepEqual(broken, ['wrapped'], 'a trap as the cause of another error counts');
  trap();
  await frames.tick();
  assert.equal(broken.length, 1, 'called once per streak');
  assert.equal(stats.failed, 9, 'every frame above failed: 2 + 2 traps, 1 camera error, 2 traps, 1 wrapped, 1 trap');
});
