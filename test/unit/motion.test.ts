/**
 * The motion/change gate: the tiny grayscale of a frame's region (decoded at a small DCT scale), the difference of
 * two, the gate's decisions (first frame, unchanged, changed, drift against the last CLASSIFIED frame, reset after a
 * swap, forced after maxAgeMs), and the frame loop with the gate: frames.unchanged counted, nothing published,
 * the heartbeat still published, captures never gated. Synthetic JPEGs (jpeg-js encoder), CPU backend.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as jpeg from 'jpeg-js';
import { EventBus } from '../../agent/events';
import { FrameLoop } from '../../agent/frames/frame-loop';
import { PredictionFilter } from '../../agent/frames/prediction-filter';
import { Classifier } from '../../agent/inference/classifier';
import { DenseHead } from '../../agent/inference/dense-head';
import { MotionGate, meanAbsDiff, tinyGray } from '../../agent/motion';
import { FrameStats } from '../../agent/telemetry/stats';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { decodeHead } from '../../protocol/head/format';
import type { PredictionMessage } from '../../protocol/messages';
import { meanRgbExtractor, rgbHead, ScriptedSource } from '../support/agent-parts';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
  await tf.ready();
});

/** A JPEG of width x height from a function of (x, y) -> [r, g, b]. */
function makeJpeg(width: number, height: number, rgb: (x: number, y: number) => [number, number, number]): Uint8Array {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([...rgb(x, y), 255], (y * width + x) * 4);
  return new Uint8Array(jpeg.encode({ data, width, height }, 90).data);
}

const grey = (v: number) => makeJpeg(320, 240, () => [v, v, v]);
/** A grey frame with a white square of `side` pixels at (x0, y0). */
const withSquare = (x0: number, y0: number, side: number) => makeJpeg(320, 240, (x, y) => (x >= x0 && x < x0 + side && y >= y0 && y < y0 + side ? [255, 255, 255] : [100, 100, 100]));

describe('tinyGray', () => {
  test('a 320x240 frame becomes a size x size grid of luma; a uniform frame is uniform', () => {
    const t = tinyGray(grey(128), { size: 16, maxPixels: 1e7 });
    assert.deepEqual([t.width, t.height], [16, 16]);
    assert.ok(t.data.every((v) => Math.abs(v - 128) <= 2), `luma of grey 128: ${[...t.data.slice(0, 4)]}`);
  });

  test('only the region is looked at', () => {
    const leftDark = makeJpeg(320, 240, (x) => (x < 160 ? [0, 0, 0] : [255, 255, 255]));
    const right = tinyGray(leftDark, { size: 8, maxPixels: 1e7, region: [0.5, 0, 0.5, 1] });
    const left = tinyGray(leftDark, { size: 8, maxPixels: 1e7, region: [0, 0, 0.5, 1] });
    assert.ok(right.data.every((v) => v >= 250), `right half white: ${[...right.data]}`);
    assert.ok(left.data.every((v) => v <= 5), `left half black: ${[...left.data]}`);
  });

  test('a region with fewer decoded pixels than size gives a smaller grid', () => {
    const t = tinyGray(grey(50), { size: 32, maxPixels: 1e7, region: [0, 0, 0.05, 0.05] });
    assert.ok(t.width <= 32 && t.width >= 1 && t.height >= 1);
    assert.equal(t.data.length, t.width * t.height);
  });

  test('meanAbsDiff: 0 for the same frame, the grey step for a uniform change, Infinity across regions', () => {
    const a = tinyGray(grey(100), { size: 8, maxPixels: 1e7 });
    const b = tinyGray(grey(120), { size: 8, maxPixels: 1e7 });
    assert.equal(meanAbsDiff(a, a), 0);
    assert.ok(Math.abs(meanAbsDiff(a, b) - 20) <= 2, `difference ${meanAbsDiff(a, b)}`);
    const r = tinyGray(grey(100), { size: 8, maxPixels: 1e7, region: [0, 0, 1, 0.5] });
    assert.equal(meanAbsDiff(a, r), Infinity);
  });
});

describe('MotionGate', () => {
  const gate = (clock = new ManualClock(), maxAgeMs = 0) => new MotionGate({ threshold: 4, size: 16, maxPixels: 1e7, maxAgeMs, now: () => clock.now() });

  test('first frame classified; the same scene then skipped; a change classified', () => {
    const g = gate();
    const first = g.look(grey(100), undefined);
    assert.deepEqual([first.classify, first.why], [true, 'first']);
    g.classified(first);
    const same = g.look(grey(100), undefined);
    assert.deepEqual([same.classify, same.why, same.difference], [false, 'unchanged', 0]);
    const moved = g.look(withSquare(100, 80, 80), undefined);
    assert.deepEqual([moved.classify, moved.why], [true, 'changed']);
  });

  test('the reference is the last CLASSIFIED frame: a slow drift adds up until it is classified', () => {
    const g = new MotionGate({ threshold: 10, size: 16, maxPixels: 1e7, maxAgeMs: 0, now: () => 0 });
    g.classified(g.look(grey(100), undefined));
    // each step is 3 grey levels from the previous frame (under 10) but the distance to the reference grows
    const steps = [103, 106, 109, 112].map((v) => g.look(grey(v), undefined));
    assert.deepEqual(steps.map((s) => s.classify), [false, false, false, true], `differences ${steps.map((s) => s.difference)}`);
  });

  test('a small object moving inside the region is a change; outside the region it is not', () => {
    const g = gate();
    g.classified(g.look(withSquare(10, 10, 40), [0.5, 0, 0.5, 1]));
    assert.equal(g.look(withSquare(60, 100, 40), [0.5, 0, 0.5, 1]).classify, false, 'moved within the left half only');
    assert.equal(g.look(withSquare(200, 100, 40), [0.5, 0, 0.5, 1]).classify, true, 'appeared in the right half');
  });

  test('reset() (a head swap) and a new region: the next frame is classified', () => {
    const g = gate();
    g.classified(g.look(grey(100), undefined));
    assert.equal(g.look(grey(100), [0, 0, 0.5, 0.5]).classify, true, 'another region');
    g.reset();
    assert.equal(g.look(grey(100), undefined).why, 'first');
  });

  test('maxAgeMs: a static scene is classified again once that long passed since the last classified frame', () => {
    const clock = new ManualClock(1000);
    const g = gate(clock, 5000);
    g.classified(g.look(grey(100), undefined));
    clock.advance(4999);
    assert.equal(g.look(grey(100), undefined).classify, false);
    clock.advance(1);
    const stale = g.look(grey(100), undefined);
    assert.deepEqual([stale.classify, stale.why], [true, 'stale']);
  });

  test('bytes it cannot read are classified (the classifier reports the error)', () => {
    const v = gate().look(new Uint8Array([1, 2, 3]), undefined);
    assert.deepEqual([v.classify, v.why], [true, 'unreadable']);
  });
});

describe('FrameLoop with the gate', () => {
  function loop(opts: { onlyOnChange?: boolean; maxIntervalSec?: number } = {}) {
    const clock = new ManualClock(0);
    const maxIntervalSec = opts.maxIntervalSec ?? 0;
    const classifier = new Classifier(meanRgbExtractor(), DenseHead.fromFile(decodeHead(rgbHead('c', 1))), { resize: 'squash', maxPixels: 1e8, topK: 2 });
    const source = new ScriptedSource();
    const published: PredictionMessage[] = [];
    const stats = new FrameStats();
    const frames = new FrameLoop({
      source,
      classifier,
      filter: new PredictionFilter({ minScore: 0, onlyOnChange: opts.onlyOnChange ?? false, debounce: 1, unknownLabel: 'unknown', maxIntervalSec }, () => clock.now()),
      publish: async (m) => void published.push(m),
      events: new EventBus(),
      stats,
      run: 1,
      extractorId: 'mean-rgb',
      gate: new MotionGate({ threshold: 4, size: 16, maxPixels: 1e8, maxAgeMs: maxIntervalSec * 1000, now: () => clock.now() }),
    });
    const show = (bytes: Uint8Array) => source.next({ bytes });
    return { frames, source, published, stats, clock, show };
  }

  test('an unchanged frame is not classified or published and counts as unchanged; a change is classified', async () => {
    const { frames, published, stats, show } = loop();
    const still = withSquare(10, 10, 40);
    for (const b of [still, still, still, withSquare(200, 100, 40)]) {
      show(b);
      await frames.tick();
    }
    assert.deepEqual([stats.ok, stats.unchanged, published.length], [2, 2, 2]);
    assert.deepEqual(published.map((p) => p.frameId), [1, 2], 'skipped frames take no frame id');
    frames.dispose();
  });

  test('after a head swap the next frame is classified even if nothing changed', async () => {
    const { frames, stats, show, published } = loop();
    const still = grey(90);
    show(still);
    await frames.tick();
    show(still);
    await frames.tick();
    assert.equal(stats.unchanged, 1);
    frames.install(DenseHead.fromFile(decodeHead(rgbHead('c', 2))));
    show(still);
    await frames.tick();
    assert.equal(stats.ok, 2);
    assert.deepEqual(published.at(-1)!.head, { id: 'c', version: 2 });
    frames.dispose();
  });

  test('capture() is never gated', async () => {
    const { frames, stats, show } = loop();
    show(grey(90));
    await frames.tick();
    show(grey(90));
    const p = await frames.capture();
    assert.equal(p.reason, 'capture');
    assert.deepEqual([stats.ok, stats.unchanged], [2, 0]);
    frames.dispose();
  });

  test('onlyOnChange: a static scene still sends the heartbeat every maxIntervalSec', async () => {
    const { frames, stats, show, published, clock } = loop({ onlyOnChange: true, maxIntervalSec: 60 });
    const still = grey(90);
    for (let i = 0; i < 13; i++) {
      show(still);
      await frames.tick();
      clock.advance(10_000); // a frame every 10 s for 2 minutes
    }
    assert.equal(published[0]!.reason, undefined, 'the first frame is a change');
    assert.deepEqual(published.slice(1).map((p) => p.reason), ['heartbeat', 'heartbeat'], 'at 60 s and 120 s');
    assert.deepEqual([stats.ok, stats.unchanged], [3, 10]);
    frames.dispose();
  });
});
