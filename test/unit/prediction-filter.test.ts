/** PredictionFilter (agent/frames/prediction-filter.ts): minScore, onlyOnChange with debounce, reset(). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type FilterDecision, PredictionFilter } from '../../agent/frames/prediction-filter';

type Cfg = ConstructorParameters<typeof PredictionFilter>[0];
const filter = (cfg: Partial<Cfg>, now?: () => number) =>
  new PredictionFilter({ minScore: 0, onlyOnChange: false, debounce: 1, unknownLabel: 'unknown', maxIntervalSec: 0, ...cfg }, now);

/** Feeds labels (score 0.9 unless given as [label, score]) and returns one word per frame: 'publish' or the reason. */
function run(f: PredictionFilter, frames: (string | [string, number])[]): string[] {
  return frames.map((x) => {
    const [label, score] = typeof x === 'string' ? [x, 0.9] : x;
    const d: FilterDecision = f.decide({ label, score });
    return d.publish ? 'publish' : d.why;
  });
}

test('defaults (minScore 0, onlyOnChange off): every prediction is published', () => {
  assert.deepEqual(run(filter({}), ['a', 'a', ['b', 0], 'a']), ['publish', 'publish', 'publish', 'publish']);
});

test('minScore: below is dropped, equal passes', () => {
  const f = filter({ minScore: 0.5 });
  assert.deepEqual(run(f, [['a', 0.49], ['a', 0.5], ['a', 0.51], ['b', 0.1]]), ['low score', 'publish', 'publish', 'low score']);
});

test('onlyOnChange: publishes the first label and each change, not repeats', () => {
  const f = filter({ onlyOnChange: true });
  assert.deepEqual(run(f, ['a', 'a', 'b', 'b', 'a']), ['publish', 'unchanged', 'publish', 'unchanged', 'publish']);
});

test('onlyOnChange with debounce 3: a label counts after 3 frames in a row', () => {
  const f = filter({ onlyOnChange: true, debounce: 3 });
  assert.deepEqual(run(f, ['a', 'a', 'a', 'a']), ['debouncing', 'debouncing', 'publish', 'unchanged']);
  assert.deepEqual(run(f, ['b', 'b', 'b', 'b']), ['debouncing', 'debouncing', 'publish', 'unchanged']);
});

test('debounce: flicker never replaces the current label', () => {
  const f = filter({ onlyOnChange: true, debounce: 2 });
  assert.deepEqual(run(f, ['a', 'a']), ['debouncing', 'publish']);
  assert.deepEqual(run(f, ['b', 'a', 'b', 'a', 'b']), ['debouncing', 'debouncing', 'debouncing', 'debouncing', 'debouncing']);
  // Back to the current label after an interruption: it must settle again, and then it is unchanged, not re-published.
  assert.deepEqual(run(f, ['a', 'a', 'a']), ['debouncing', 'unchanged', 'unchanged']);
});

test('minScore applies before onlyOnChange; a low-score frame does not break a debounce streak (today)', () => {
  const f = filter({ minScore: 0.5, onlyOnChange: true, debounce: 2 });
  assert.deepEqual(run(f, ['a', ['b', 0.1], 'a']), ['debouncing', 'low score', 'publish']);
  assert.deepEqual(run(f, [['b', 0.4], ['b', 0.4]]), ['low score', 'low score'], 'low-score frames never become the label');
  assert.deepEqual(run(f, ['a']), ['unchanged']);
});

test('reset(): the current label is forgotten, so it is published again after settling', () => {
  const f = filter({ onlyOnChange: true, debounce: 1 });
  assert.deepEqual(run(f, ['a', 'a']), ['publish', 'unchanged']);
  f.reset();
  assert.deepEqual(run(f, ['a', 'a']), ['publish', 'unchanged']);
});

test('reset(): a streak in progress starts over', () => {
  const f = filter({ onlyOnChange: true, debounce: 3 });
  assert.deepEqual(run(f, ['a', 'a']), ['debouncing', 'debouncing']);
  f.reset();
  assert.deepEqual(run(f, ['a', 'a', 'a']), ['debouncing', 'debouncing', 'publish']);
});

test('reset() without onlyOnChange changes nothing', () => {
  const f = filter({ minScore: 0.3 });
  f.reset();
  assert.deepEqual(run(f, ['a', ['a', 0.2], 'a']), ['publish', 'low score', 'publish']);
});

/** Feeds labels like run() and returns the plain state after each frame ('-' while none has settled). */
function states(f: PredictionFilter, frames: (string | [string, number])[]): string[] {
  return frames.map((x) => {
    const [label, score] = typeof x === 'string' ? [x, 0.9] : x;
    return f.decide({ label, score }).state ?? '-';
  });
}

test('plain state: each frame\'s label, unknownLabel below minScore (while the JSON filtering stays as it was)', () => {
  const f = filter({ minScore: 0.5, unknownLabel: 'nothing' });
  assert.deepEqual(states(f, ['a', ['a', 0.4], 'b']), ['a', 'nothing', 'b']);
  assert.equal(f.plainLabel({ label: 'a', score: 0.49 }), 'nothing');
  assert.equal(f.plainLabel({ label: 'a', score: 0.5 }), 'a');
});

test('plain state with onlyOnChange: debounced like the label, and unknown must settle too', () => {
  const f = filter({ minScore: 0.5, onlyOnChange: true, debounce: 2 });
  assert.deepEqual(states(f, ['a', 'a', ['b', 0.1], 'a', ['b', 0.1], ['c', 0.2], 'a']), ['-', 'a', 'a', 'a', 'a', 'unknown', 'unknown']);
  // The JSON stream never carries unknown, and a low-score spell does not make the old label "new" again (as before).
  assert.deepEqual(run(f, ['a', 'a']), ['unchanged', 'unchanged']);
});

test('heartbeat: with onlyOnChange an unchanged label is published again once maxIntervalSec passed, then the wait starts over', () => {
  let now = 0;
  const f = filter({ onlyOnChange: true, maxIntervalSec: 300 }, () => now);
  const step = (sec: number, label = 'a') => {
    now += sec * 1000;
    const d = f.decide({ label, score: 0.9 });
    return d.publish ? (d.heartbeat ? 'heartbeat' : 'publish') : d.why;
  };
  assert.equal(step(0), 'publish');
  assert.equal(step(299), 'unchanged');
  assert.equal(step(1), 'heartbeat');
  assert.equal(step(299), 'unchanged', 'the heartbeat restarted the wait');
  assert.equal(step(100, 'b'), 'publish', 'a change is a change, not a heartbeat');
  assert.equal(step(299, 'b'), 'unchanged', 'and it restarted the wait too');
  assert.equal(step(1, 'b'), 'heartbeat');
});

test('heartbeat: never for low-score or debouncing frames, never without onlyOnChange, and 0 turns it off', () => {
  let now = 0;
  const f = filter({ onlyOnChange: true, debounce: 2, minScore: 0.5, maxIntervalSec: 10 }, () => now);
  assert.deepEqual(run(f, ['a', 'a']), ['debouncing', 'publish']);
  now = 60_000;
  assert.deepEqual(run(f, [['a', 0.1], 'b', 'a']), ['low score', 'debouncing', 'debouncing'], 'only a settled, unchanged label beats');
  assert.deepEqual(run(f, ['a']), ['publish']);
  const off = filter({ onlyOnChange: true, maxIntervalSec: 0 }, () => now);
  assert.deepEqual(run(off, ['a']), ['publish']);
  now = 1e9;
  assert.deepEqual(run(off, ['a']), ['unchanged']);
});
