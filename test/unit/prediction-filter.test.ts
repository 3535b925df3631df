/** PredictionFilter (agent/frames/prediction-filter.ts): minScore, onlyOnChange with debounce, reset(). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type FilterDecision, PredictionFilter } from '../../agent/frames/prediction-filter';

type Cfg = ConstructorParameters<typeof PredictionFilter>[0];
const filter = (cfg: Partial<Cfg>) => new PredictionFilter({ minScore: 0, onlyOnChange: false, debounce: 1, ...cfg });

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
