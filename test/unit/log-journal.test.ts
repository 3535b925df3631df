/**
 * base/log.ts under systemd and under a flood: syslog priority prefixes when stderr is the journal (JOURNAL_STREAM),
 * no timestamp of ours there; identical repeated warnings collapsed into periodic summaries (a ManualClock drives
 * the windows). No process.env is changed: the journal check takes the environment and stderr's stat as arguments.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ManualClock } from '../../base/clock';
import { configureLogging, createLogger, flushLogRepeats, REPEAT_WINDOW_SEC, stderrIsJournal } from '../../base/log';
import { VOLATILE_FIELDS } from '../../base/log-repeats';

const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/;

function capture(opts: { journal?: boolean; format?: 'text' | 'json'; level?: 'debug' | 'info' | 'warn'; repeatWindowSec?: number } = {}) {
  const lines: string[] = [];
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  configureLogging({
    level: opts.level ?? 'debug',
    format: opts.format ?? 'text',
    journal: opts.journal ?? false,
    clock,
    repeatWindowSec: opts.repeatWindowSec ?? REPEAT_WINDOW_SEC,
    sink: { write: (l) => void lines.push(l) },
  });
  return { lines, clock, log: createLogger('frames') };
}

afterEach(() => configureLogging({ level: 'silent', journal: false, sink: { write: () => undefined } }));

test('stderr is the journal only when JOURNAL_STREAM names stderr itself (device:inode)', () => {
  const stat = () => ({ dev: 64769n, ino: 1234567n });
  assert.equal(stderrIsJournal({}, stat), false, 'not set: not under systemd');
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: '64769:1234567' }, stat), true);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: '64769:7654321' }, stat), false, 'inherited, but stderr was redirected elsewhere');
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: 'yes' }, stat), false);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: '64769:1234567' }, () => { throw new Error('EBADF'); }), false, 'no stderr');
});

test('journal on: each text line starts with its syslog priority and has no timestamp; URL passwords still redacted', () => {
  const { lines, log } = capture({ journal: true });
  log.error('e');
  log.warn('broker mqtt://bob:hunter2@broker:1883 refused', { url: 'mqtts://bob:hunter2@h' });
  log.info('i', { n: 1 });
  log.debug('d');
  assert.deepEqual(lines, [
    '<3>ERROR [frames] e',
    '<4>WARN  [frames] broker mqtt://bob:***@broker:1883 refused url=mqtts://bob:***@h',
    '<6>INFO  [frames] i n=1',
    '<7>DEBUG [frames] d',
  ]);
});

test('journal on, JSON: the priority before the object, no "time" (journald stamps the line)', () => {
  const { lines, log } = capture({ journal: true, format: 'json' });
  log.warn('w', { url: 'mqtt://u:p@h' });
  assert.equal(lines.length, 1);
  assert.ok(lines[0]!.startsWith('<4>{'), lines[0]);
  assert.deepEqual(JSON.parse(lines[0]!.slice(3)), { level: 'warn', ns: 'frames', msg: 'w', url: 'mqtt://u:***@h' });
});

test('journal off: no prefix, our own timestamp, in text and JSON', () => {
  const { lines, log } = capture();
  log.warn('w');
  configureLogging({ format: 'json' });
  log.info('i');
  assert.match(lines[0]!, new RegExp(`^${ISO.source}\\.\\d{3}Z WARN  \\[frames\\] w$`));
  assert.equal(JSON.parse(lines[1]!).time, '2026-01-01T00:00:00.000Z');
});

test('a failing camera for a day at 1 s: one line, then one summary a minute instead of 86,400 lines', () => {
  const { lines, clock, log } = capture({ level: 'warn' });
  for (let s = 0; s < 86_400; s++) {
    log.warn('frame failed', { error: 'fswebcam on /dev/video0 failed (exit code 1)' });
    clock.advance(1000);
  }
  assert.equal(lines.length, 1 + 86_400 / REPEAT_WINDOW_SEC);
  assert.match(lines[0]!, /WARN {2}\[frames\] frame failed error="fswebcam on \/dev\/video0 failed \(exit code 1\)"$/);
  assert.match(lines[1]!, /WARN {2}\[frames\] frame failed \(repeated 59 times in the last 60 s\) error="fswebcam/);
  assert.match(lines.at(-1)!, /repeated 60 times in the last 60 s/);
});

test('collapsing: volatile fields ignored, other fields and messages kept apart; info never collapsed; a quiet window forgets', () => {
  const { lines, clock, log } = capture({ level: 'info' });
  log.warn('cmd exited, restarting', { code: 1, ranMs: 10, frames: 0 });
  log.warn('cmd exited, restarting', { code: 1, ranMs: 12, frames: 3 }); // same but for volatile fields: counted
  log.warn('cmd exited, restarting', { code: 2, ranMs: 12 }); // another exit code: printed
  log.warn('something else');
  log.info('hello');
  log.info('hello');
  assert.equal(lines.length, 5);
  clock.advance(REPEAT_WINDOW_SEC * 1000);
  assert.equal(lines.length, 6, 'one summary, for the only line that repeated');
  assert.match(lines[5]!, /cmd exited, restarting \(repeated 1 times in the last 60 s\) code=1 ranMs=12 frames=3$/, 'the last occurrence\'s fields');
  clock.advance(REPEAT_WINDOW_SEC * 1000); // a window without repeats: no summary, the line is forgotten
  assert.equal(lines.length, 6);
  log.warn('cmd exited, restarting', { code: 1, ranMs: 5 });
  assert.equal(lines.length, 7);
  assert.doesNotMatch(lines[6]!, /repeated/);
  assert.ok(VOLATILE_FIELDS.has('frames'));
});

test('collapsing: JSON summaries keep msg and add repeated/repeatedSec; flush writes the partial window; 0 turns it off', () => {
  const { lines, clock, log } = capture({ format: 'json', journal: true });
  log.error('head update failed', { error: 'x' });
  clock.advance(5000);
  log.error('head update failed', { error: 'x' });
  log.error('head update failed', { error: 'x' });
  clock.advance(18_000);
  flushLogRepeats();
  assert.equal(lines.length, 2);
  assert.ok(lines[1]!.startsWith('<3>'));
  assert.deepEqual(JSON.parse(lines[1]!.slice(3)), { level: 'error', ns: 'frames', msg: 'head update failed', error: 'x', repeated: 2, repeatedSec: 23 });
  clock.advance(REPEAT_WINDOW_SEC * 1000);
  assert.equal(lines.length, 2, 'flushed: nothing left to summarise');

  const off = capture({ repeatWindowSec: 0 });
  for (let i = 0; i < 3; i++) off.log.warn('w');
  assert.equal(off.lines.length, 3);
});
