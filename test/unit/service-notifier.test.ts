/**
 * The systemd-notify notifier (agent/service/systemd-notify.ts) with its command replaced by a recorder (no child
 * process here; the real spawn is in test/integration/agent-systemd-notify.test.ts): the arguments, one process at
 * a time with what is asked meanwhile merged into the next, nothing after STOPPING=1, failures logged once and
 * never thrown. And what systemd's environment turns into (agent/service/notifier.ts).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { serviceFromEnv, watchdogPeriodMs } from '../../agent/service/notifier';
import { notifyArgs, STATUS_MAX_CHARS, SystemdNotify } from '../../agent/service/systemd-notify';
import { configureLogging } from '../../base/log';
import { until } from '../support/agent-parts';

let logs: string[];
beforeEach(() => {
  logs = [];
  configureLogging({ level: 'debug', sink: { write: (l) => logs.push(l) }, repeatWindowSec: 0 });
});
afterEach(() => configureLogging({ level: 'silent' }));

/** An exec stand-in: records each call; the test settles them one by one. */
class ManualExec {
  readonly calls: { command: string; args: string[]; settle: (error?: Error) => void }[] = [];
  readonly exec = (command: string, args: string[]) =>
    new Promise<void>((resolve, reject) => this.calls.push({ command, args, settle: (e) => (e ? reject(e) : resolve()) }));
}

test('arguments: --ready, --status= (one line, cut), then WATCHDOG=1 / STOPPING=1', () => {
  assert.deepEqual(notifyArgs(new Map([['READY', '1'], ['STATUS', 'running: a']])), ['--ready', '--status=running: a']);
  assert.deepEqual(notifyArgs(new Map([['WATCHDOG', '1'], ['STATUS', 'x']])), ['--status=x', 'WATCHDOG=1']);
  assert.deepEqual(notifyArgs(new Map([['STOPPING', '1']])), ['STOPPING=1']);
  assert.deepEqual(notifyArgs(new Map([['STATUS', 'a\nREADY=1\r\nb']])), ['--status=a READY=1 b'], 'a newline would start another variable');
  const long = notifyArgs(new Map([['STATUS', 'x'.repeat(500)]]))[0]!;
  assert.equal(long.length, '--status='.length + STATUS_MAX_CHARS);
});

test('one systemd-notify at a time: what is asked meanwhile goes out merged in the next one', async () => {
  const m = new ManualExec();
  const n = new SystemdNotify({ exec: m.exec, command: 'systemd-notify' });
  n.ready('running: first');
  assert.equal(m.calls.length, 1);
  assert.deepEqual(m.calls[0]!.args, ['--ready', '--status=running: first']);
  n.watchdog('running: a');
  n.watchdog();
  n.status('running: newest');
  assert.equal(m.calls.length, 1, 'nothing else while one is in flight');
  m.calls[0]!.settle();
  await until('the merged message', () => m.calls.length === 2);
  assert.deepEqual(m.calls[1]!.args, ['--status=running: newest', 'WATCHDOG=1']);
  m.calls[1]!.settle();
  await new Promise((r) => setImmediate(r));
  assert.equal(m.calls.length, 2, 'nothing pending: no more processes');
  n.watchdog();
  assert.equal(m.calls.length, 3);
  m.calls[2]!.settle();
});

test('stopping(): STOPPING=1 after what is in flight, resolves once sent; nothing after it', async () => {
  const m = new ManualExec();
  const n = new SystemdNotify({ exec: m.exec });
  n.watchdog();
  let done = false;
  const stopped = n.stopping('stopping').then(() => (done = true));
  m.calls[0]!.settle();
  await until('STOPPING=1', () => m.calls.length === 2);
  assert.deepEqual(m.calls[1]!.args, ['--status=stopping', 'STOPPING=1']);
  assert.equal(done, false);
  m.calls[1]!.settle();
  await stopped;
  n.watchdog();
  n.status('late');
  n.ready('late');
  await new Promise((r) => setImmediate(r));
  assert.equal(m.calls.length, 2);
});

test('failures: never thrown, warned once (then debug), "works again" when one succeeds, warned again after', async () => {
  const m = new ManualExec();
  const n = new SystemdNotify({ exec: m.exec });
  const warns = () => logs.filter((l) => /^\S+ WARN .*systemd-notify failed/.test(l)).length;
  for (let i = 0; i < 3; i++) {
    n.watchdog();
    m.calls[i]!.settle(new Error(`no socket ${i}`));
    await until(`failure ${i}`, () => logs.some((l) => l.includes(`no socket ${i}`)));
  }
  assert.equal(warns(), 1, logs.join('\n'));
  assert.equal(logs.filter((l) => / DEBUG .*systemd-notify failed again/.test(l)).length, 2);
  n.watchdog();
  m.calls[3]!.settle();
  await until('works again', () => logs.some((l) => / INFO .*systemd-notify works again/.test(l)));
  n.watchdog();
  m.calls[4]!.settle(new Error('gone again'));
  await until('warned again', () => warns() === 2);
});

test('WATCHDOG_USEC: half of it in ms; none when unset, malformed (warned) or for another WATCHDOG_PID', () => {
  assert.equal(watchdogPeriodMs({}, 42), undefined);
  assert.equal(watchdogPeriodMs({ WATCHDOG_USEC: '60000000' }, 42), 30_000);
  assert.equal(watchdogPeriodMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42' }, 42), 30_000);
  assert.equal(watchdogPeriodMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '41' }, 42), undefined);
  assert.equal(watchdogPeriodMs({ WATCHDOG_USEC: '1' }, 42), 1);
  for (const bad of ['0', '-5', '60s', '1e6']) assert.equal(watchdogPeriodMs({ WATCHDOG_USEC: bad }, 42), undefined, bad);
  assert.equal(logs.filter((l) => /WARN .*WATCHDOG_USEC is not a positive number of microseconds/.test(l)).length, 4);
});

test('serviceFromEnv: nothing without NOTIFY_SOCKET; with it, systemd-notify, the watchdog period, the variables unset', () => {
  assert.equal(serviceFromEnv({}, 42), undefined);
  assert.equal(serviceFromEnv({ NOTIFY_SOCKET: '' }, 42), undefined);
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '10000000', WATCHDOG_PID: '42', PATH: '/usr/bin' };
  const s = serviceFromEnv(env, 42)!;
  assert.ok(s.notifier instanceof SystemdNotify);
  assert.equal(s.watchdogMs, 5000);
  assert.deepEqual(env, { PATH: '/usr/bin' }, 'taken out of the environment the other children inherit');
  assert.equal(serviceFromEnv({ NOTIFY_SOCKET: '/run/systemd/notify' }, 42)!.watchdogMs, undefined);
});
