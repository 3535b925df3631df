/**
 * The plain retained state and the heartbeat, in-process: FrameLoop -> PredictionFilter -> `plainState` event ->
 * PlainState (agent/frames/plain-state.ts) on a fake broker; the heartbeat on the manual clock. Frames are solid
 * colour JPEGs, so the mean-colour extractor and its head name them ("red", "green", "blue").
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as jpeg from 'jpeg-js';
import { EventBus } from '../../agent/events';
import { FrameLoop } from '../../agent/frames/frame-loop';
import { PlainState } from '../../agent/frames/plain-state';
import { type FilterSettings, PredictionFilter } from '../../agent/frames/prediction-filter';
import { Classifier } from '../../agent/inference/classifier';
import { DenseHead } from '../../agent/inference/dense-head';
import { FrameStats } from '../../agent/telemetry/stats';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { decodeHead } from '../../protocol/head/format';
import type { PredictionMessage } from '../../protocol/messages';
import { meanRgbExtractor, rgbHead, ScriptedSource } from '../support/agent-parts';
import { FakeBroker } from '../support/fake-broker';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
});

const TOPIC = 'edgehead/dev1/state';
const COLOURS = { red: [255, 0, 0], green: [0, 255, 0], blue: [0, 0, 255], grey: [128, 128, 128] } as const;

function solid(colour: keyof typeof COLOURS): Uint8Array {
  const data = new Uint8Array(16 * 16 * 4);
  for (let i = 0; i < data.length; i += 4) data.set([...COLOURS[colour], 255], i);
  return new Uint8Array(jpeg.encode({ data, width: 16, height: 16 }, 95).data);
}

function setup(filter: Partial<FilterSettings> = {}) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new FakeBroker();
  const state = new PlainState(broker, TOPIC);
  state.start();
  broker.connect();
  const events = new EventBus();
  events.on('plainState', ({ label }) => state.set(label));
  const source = new ScriptedSource();
  const published: PredictionMessage[] = [];
  const frames = new FrameLoop({
    source,
    classifier: new Classifier(meanRgbExtractor(), DenseHead.fromFile(decodeHead(rgbHead('c', 1))), { resize: 'squash', maxPixels: 1e8, topK: 2 }),
    filter: new PredictionFilter({ minScore: 0, onlyOnChange: false, debounce: 1, unknownLabel: 'unknown', maxIntervalSec: 0, ...filter }, () => clock.now()),
    publish: async (m) => void published.push(m),
    events,
    stats: new FrameStats(),
    run: 1,
    extractorId: 'mean-rgb',
  });
  const show = async (colour: keyof typeof COLOURS) => {
    source.next({ bytes: solid(colour) });
    await frames.tick();
  };
  const states = () => broker.sentTo(TOPIC).map((s) => s.text);
  return { clock, broker, state, frames, source, published, show, states };
}

test('state: the top-1 label as plain text, retained QoS 1, published only when it changes', async () => {
  const { broker, show, states, published } = setup();
  await show('red');
  await show('red');
  await show('blue');
  await show('blue');
  await show('red');
  assert.deepEqual(states(), ['red', 'blue', 'red']);
  assert.ok(broker.sentTo(TOPIC).every((s) => s.opts.qos === 1 && s.opts.retain));
  assert.equal(published.length, 5, 'the JSON predictions are not affected');
});

test('state: below minScore it is unknownLabel, while the JSON prediction is still not published', async () => {
  const { show, states, published } = setup({ minScore: 0.9, unknownLabel: 'nothing' });
  await show('red');
  await show('grey'); // a grey frame scores each colour alike: ~1/3
  await show('grey');
  await show('green');
  assert.deepEqual(states(), ['red', 'nothing', 'green']);
  assert.deepEqual(published.map((p) => p.top[0]!.label), ['red', 'green']);
});

test('state: republished on every connection; a change while disconnected goes out on reconnect', async () => {
  const { broker, show, states } = setup();
  await show('red');
  broker.disconnect();
  await show('blue');
  assert.deepEqual(states(), ['red']);
  broker.connect();
  assert.deepEqual(states(), ['red', 'blue']);
  broker.disconnect();
  broker.connect();
  assert.deepEqual(states(), ['red', 'blue', 'blue'], 'once per connection, even unchanged');
});

test('state: a capture leaves it alone (it bypasses the debounce); a head swap re-prediction sets it', async () => {
  const { frames, show, source, states } = setup({ onlyOnChange: true });
  await show('red');
  source.next({ bytes: solid('blue') });
  const p = await frames.capture();
  assert.equal(p.top[0]!.label, 'blue');
  assert.deepEqual(states(), ['red']);
  frames.install(DenseHead.fromFile(decodeHead(rgbHead('c', 2, ['x', 'y', 'z']))));
  await frames.repredictLast();
  assert.deepEqual(states(), ['red', 'z'], 'the last frame (blue) under the new labels');
});

test('heartbeat (manual clock): onlyOnChange republishes the unchanged prediction after maxIntervalSec, as a fresh frame', async () => {
  const { clock, show, published, states } = setup({ onlyOnChange: true, maxIntervalSec: 60 });
  await show('red');
  clock.advance(59_000);
  await show('red');
  assert.equal(published.length, 1, 'unchanged, and not yet due');
  clock.advance(1_000);
  await show('red');
  assert.equal(published.length, 2);
  const beat = published[1]!;
  assert.equal(beat.reason, 'heartbeat');
  assert.equal(beat.top[0]!.label, 'red');
  assert.equal(beat.frameId, 3, 'its own frame, not a copy of the first one');
  await show('red');
  assert.equal(published.length, 2, 'the wait starts over');
  assert.deepEqual(states(), ['red'], 'a heartbeat does not republish the retained state');
  // Frames stop (a dead camera): nothing more is published however long it lasts.
  clock.advance(3_600_000);
  assert.equal(published.length, 2);
});
